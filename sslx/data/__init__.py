"""Host-side data loading: datasets, deterministic batch order, prefetching."""

from sslx.data.graph import GraphDataset, NodeDataset, load_planetoid, load_tu, pad_graph

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
__all__ += ["GraphDataset", "NodeDataset", "load_planetoid", "load_tu", "pad_graph"]
from sslx.data.text import (  # noqa: E402
    CharTokenizer, SubwordTokenizer, TextDataset, WordTokenizer, load_sentence_dataset, load_text_corpus,
    load_tfds_text, pack_sequences, pad_sequences, sample_windows, split_sentences, train_subword_tokenizer,
    window_starts)

__all__ += ["CharTokenizer", "SubwordTokenizer", "TextDataset", "WordTokenizer", "load_sentence_dataset",
            "load_text_corpus", "load_tfds_text", "pack_sequences", "pad_sequences", "sample_windows",
            "split_sentences", "train_subword_tokenizer", "window_starts"]
