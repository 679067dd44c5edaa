"""Stateless flax.linen modules (params / batch_stats passed in)."""
from sslx.models.amdim import AMDIMEncoder
from sslx.models.cpc import ContextNetwork, CPCPredictor, MaskedConv
from sslx.models.heads import MLPHead
from sslx.models.resnet import (BasicBlock, Bottleneck, ResNet, ResNet18, ResNet34, ResNet50,
                                SmallConvNet, make_encoder)

__all__ = ["AMDIMEncoder", "BasicBlock", "Bottleneck", "ContextNetwork", "CPCPredictor", "MaskedConv",
           "MLPHead", "ResNet", "ResNet18", "ResNet34", "ResNet50", "SmallConvNet", "make_encoder"]
