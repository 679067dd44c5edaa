"""Stateless flax.linen modules (params / batch_stats passed in)."""
from sslx.models.amdim import AMDIMEncoder
from sslx.models.context_encoder import ChannelWiseFC, ContextEncoderDiscriminator, ContextEncoderGenerator
from sslx.models.cpc import ContextNetwork, CPCPredictor, MaskedConv
from sslx.models.gnn import GCN, GIN, BilinearDiscriminator, GCNConv, GINConv
from sslx.models.heads import MLPHead
from sslx.models.resnet import (BasicBlock, Bottleneck, ResNet, ResNet18, ResNet34, ResNet50,
                                SmallConvNet, make_encoder)

__all__ = ["AMDIMEncoder", "BasicBlock", "Bottleneck", "ContextNetwork", "CPCPredictor", "MaskedConv",
           "MLPHead", "ResNet", "ResNet18", "ResNet34", "ResNet50", "SmallConvNet", "make_encoder"]
__all__ += ["ChannelWiseFC", "ContextEncoderDiscriminator", "ContextEncoderGenerator"]
__all__ += ["BilinearDiscriminator", "GCN", "GCNConv", "GIN", "GINConv"]
from sslx.models.transformer import Transformer, transformer_param_count  # noqa: E402

__all__ += ["Transformer", "transformer_param_count"]
from sslx.models.embedding import WordEmbeddings  # noqa: E402

__all__ += ["WordEmbeddings"]
