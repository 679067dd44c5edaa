"""Image objectives."""
from sslx.methods.image.simclr import simclr

__all__ = ["simclr"]
