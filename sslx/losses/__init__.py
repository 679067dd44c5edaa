"""Pure loss functions (arrays in, scalar and aux dict out)."""
from sslx.losses.amdim import amdim_loss, amdim_nce, tanh_clip
from sslx.losses.contrastive import info_nce, l2_normalize, moco_info_nce, nt_xent
from sslx.losses.cpc import cpc_loss
from sslx.losses.regression import byol_loss
from sslx.losses.swav import sinkhorn, swav_loss

__all__ = ["amdim_loss", "amdim_nce", "byol_loss", "cpc_loss", "info_nce", "l2_normalize", "moco_info_nce",
           "nt_xent", "sinkhorn", "swav_loss", "tanh_clip"]
