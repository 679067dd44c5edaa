"""Stateless flax.linen modules (params / batch_stats passed in)."""
from sslx.models.heads import MLPHead
from sslx.models.resnet import (BasicBlock, Bottleneck, ResNet, ResNet18, ResNet34, ResNet50,
                                SmallConvNet, make_encoder)

__all__ = ["MLPHead", "BasicBlock", "Bottleneck", "ResNet", "ResNet18", "ResNet34", "ResNet50",
           "SmallConvNet", "make_encoder"]
