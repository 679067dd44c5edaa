"""Image objectives."""
from sslx.methods.image.byol import byol
from sslx.methods.image.moco import moco
from sslx.methods.image.simclr import simclr

__all__ = ["byol", "moco", "simclr"]
