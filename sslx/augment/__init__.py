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
from sslx.augment.patches import (NEIGHBOUR_OFFSETS, check_patch_grid, drop_channels,  # noqa: E402
                                  make_relative_patch_fn, random_resample, resample_patch,
                                  sample_patch_pair_positions, sample_relative_patch_pair)

__all__ += ["NEIGHBOUR_OFFSETS", "check_patch_grid", "drop_channels", "make_relative_patch_fn", "random_resample",
            "resample_patch", "sample_patch_pair_positions", "sample_relative_patch_pair"]

from sslx.augment.masks import (MASK_MODES, central_block_mask, make_mask_fn, random_blocks_mask,  # noqa: E402
                                random_shape_mask)

__all__ += ["MASK_MODES", "central_block_mask", "make_mask_fn", "random_blocks_mask", "random_shape_mask"]

from sslx.augment.text import mlm_mask, word_start_mask, word_start_table  # noqa: E402

__all__ += ["mlm_mask", "word_start_mask", "word_start_table"]
