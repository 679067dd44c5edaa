"""On-device (pure JAX, jit/vmap-able) data augmentation."""

from sslx.augment.image import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_batch,
    color_jitter,
    gaussian_blur,
    hsv_to_rgb,
    make_view_fn,
    random_flip,
    random_grayscale,
    random_resized_crop,
    rgb_to_grayscale,
    rgb_to_hsv,
    rotate90,
    sample_crop_box,
    solarize,
    to_float,
)

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "augment_batch",
    "color_jitter",
    "gaussian_blur",
    "hsv_to_rgb",
    "make_view_fn",
    "random_flip",
    "random_grayscale",
    "random_resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "rotate90",
    "sample_crop_box",
    "solarize",
    "to_float",
]
from sslx.augment.patches import augment_patches, extract_patches, grid_size, make_patch_view_fn  # noqa: E402

__all__ += ["augment_patches", "extract_patches", "grid_size", "make_patch_view_fn"]
