"""Pure loss functions (arrays in, scalar and aux dict out)."""
from sslx.losses.contrastive import info_nce, l2_normalize, moco_info_nce, nt_xent
from sslx.losses.regression import byol_loss

__all__ = ["byol_loss", "info_nce", "l2_normalize", "moco_info_nce", "nt_xent"]
