"""Image objectives."""
from sslx.methods.image.amdim import amdim, yadim
from sslx.methods.image.byol import byol
from sslx.methods.image.cpc import cpc
from sslx.methods.image.moco import moco
from sslx.methods.image.simclr import simclr
from sslx.methods.image.swav import swav

__all__ = ["amdim", "byol", "cpc", "moco", "simclr", "swav", "yadim"]
