"""Image objectives."""
from sslx.methods.image.amdim import amdim, yadim
from sslx.methods.image.byol import byol
from sslx.methods.image.context_encoder import context_encoder
from sslx.methods.image.cpc import cpc
from sslx.methods.image.deepcluster import deepcluster
from sslx.methods.image.moco import moco
from sslx.methods.image.relative_patch import relative_patch
from sslx.methods.image.rotation import rotation
from sslx.methods.image.simclr import simclr
from sslx.methods.image.swav import swav

__all__ = ["amdim", "byol", "cpc", "deepcluster", "moco", "simclr", "swav", "yadim"]
__all__ += ["relative_patch", "rotation"]
__all__ += ["context_encoder"]
