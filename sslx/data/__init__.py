"""Host-side data loading: datasets, deterministic batch order, prefetching."""

from sslx.data.image import (
    BatchIterator,
    ImageDataset,
    RandomAccessSource,
    TfdsImageSource,
    dataset_arrays,
    default_data_dir,
    global_batch_indices,
    load_image_dataset,
    process_slice,
    write_npz_dataset,
)

__all__ = [
    "BatchIterator",
    "ImageDataset",
    "RandomAccessSource",
    "TfdsImageSource",
    "dataset_arrays",
    "default_data_dir",
    "global_batch_indices",
    "load_image_dataset",
    "process_slice",
    "write_npz_dataset",
]
