"""Pure loss functions (arrays in, scalar and aux dict out)."""
from sslx.losses.contrastive import info_nce, l2_normalize, nt_xent

__all__ = ["info_nce", "l2_normalize", "nt_xent"]
