"""Host-side image data pipeline.

The host only decodes images to ``uint8`` and assembles batches; every
augmentation runs on device elsewhere. The pieces are:

* :class:`ImageDataset` -- random-access images ``uint8 [N, H, W, C]`` and
  labels ``int32 [N]``, backed either by in-memory arrays or lazily by a
  random-access source (e.g. a tensorflow-datasets ArrayRecord data source).
* :func:`load_image_dataset` -- ``digits`` (scikit-learn, bundled, no files),
  ``.npz`` files (mnist / fashion_mnist / cifar10_subset in the shared-data
  layout, or any ``<data_dir>/<name>/<split>.npz``), or any tensorflow-datasets
  dataset prepared in ArrayRecord format (``tfds.data_source``).
* :func:`global_batch_indices` / :func:`process_slice` -- a deterministic batch
  order that is a pure function of the step (so resuming reproduces batches
  exactly) and its per-process slice for multi-host training.
* :class:`BatchIterator` -- background-thread prefetching of process-local
  batches with an optional ``put_fn`` (e.g. building a sharded ``jax.Array``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "BatchIterator",
    "DIGITS_NUM_TRAIN",
    "DIGITS_SPLIT_SEED",
    "CIFAR10_SUBSET_NUM_TRAIN",
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

Batch = dict[str, np.ndarray]

# digits: fixed seeded permutation of the 1797 examples; first 1438 -> train.
DIGITS_SPLIT_SEED = 0
DIGITS_NUM_TRAIN = 1438
# cifar10_subset: train_first4000.npz; first 3000 -> train, last 1000 -> test.
CIFAR10_SUBSET_NUM_TRAIN = 3000
CIFAR10_SUBSET_FILE = "train_first4000.npz"

# Datasets read from .npz files in the shared-data layout.
NPZ_DATASETS: dict[str, int] = {"mnist": 10, "fashion_mnist": 10, "cifar10_subset": 10}
DATA_DIR_ENV = "SSLX_DATA_DIR"
TFDS_PREFIX = "tfds:"

_REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------


@runtime_checkable
class RandomAccessSource(Protocol):
    """A lazy random-access image source.

    ``source[indices]`` with ``indices`` an int array ``[B]`` returns
    ``(images uint8 [B, H, W, C], labels int32 [B])``.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """Random-access labelled images.

    Either in memory (``images`` uint8 ``[N, H, W, C]`` and ``labels`` int32
    ``[N]``; a 3-D ``[N, H, W]`` grayscale array gets a channel axis ``C=1``)
    or lazy (``source`` is a :class:`RandomAccessSource`, ``images`` and
    ``labels`` are ``None``; call :meth:`materialize` to load it all).

    ``ds[indices]`` returns ``{"image": uint8 [B, H, W, C], "label": int32 [B]}``
    for an int index array ``[B]``, or one unbatched example for an int.
    """

    images: np.ndarray | None
    labels: np.ndarray | None
    num_classes: int
    name: str
    source: RandomAccessSource | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"{self.name}: num_classes must be >= 1, got {self.num_classes}.")
        if self.source is not None:
            if self.images is not None or self.labels is not None:
                raise ValueError(
                    f"{self.name}: give either arrays (images, labels) or a lazy source, not both."
                )
            return
        if self.images is None or self.labels is None:
            raise ValueError(f"{self.name}: need images and labels arrays (or a lazy source).")
        images = _check_images(np.asarray(self.images), what=f"dataset {self.name!r} images")
        labels = _check_labels(np.asarray(self.labels), len(images), what=f"dataset {self.name!r}")
        if labels.size and labels.max() >= self.num_classes:
            raise ValueError(
                f"{self.name}: label {int(labels.max())} out of range for num_classes={self.num_classes}."
            )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)

    @property
    def is_lazy(self) -> bool:
        """Whether examples are read on demand from ``source``."""
        return self.source is not None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        if self.source is not None:
            shape = getattr(self.source, "image_shape", None)
            if shape is None:
                shape = self.source[np.zeros((1,), np.int64)][0].shape[1:]
            return tuple(int(s) for s in shape)  # type: ignore[return-value]
        assert self.images is not None
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        if self.source is not None:
            return len(self.source)
        assert self.labels is not None
        return len(self.labels)

    def __getitem__(self, indices: int | np.ndarray | Sequence[int]) -> Batch:
        if np.isscalar(indices) or (isinstance(indices, np.ndarray) and indices.ndim == 0):
            batch = self[np.asarray([indices])]
            return {"image": batch["image"][0], "label": batch["label"][0]}
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise ValueError(f"{self.name}: expected a 1-D integer index array, got {idx.dtype} {idx.shape}.")
        idx = idx.astype(np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"{self.name}: index out of range for {n} examples.")
        idx = np.where(idx < 0, idx + n, idx)
        if self.source is not None:
            images, labels = self.source[idx]
            images = _check_images(np.asarray(images), what=f"{self.name} source batch")
            labels = _check_labels(np.asarray(labels), len(idx), what=f"{self.name} source batch")
        else:
            assert self.images is not None and self.labels is not None
            images, labels = self.images[idx], self.labels[idx]
        return {"image": images, "label": labels}

    def materialize(self) -> ImageDataset:
        """Loads a lazy dataset fully into memory (no-op for in-memory data)."""
        if self.source is None:
            return self
        images, labels = dataset_arrays(self)
        return ImageDataset(images, labels, self.num_classes, self.name)


def dataset_arrays(
    ds: ImageDataset,
    max_examples: int | None = None,
    seed: int = 0,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """All of ``ds`` (or a seeded subset) as ``(uint8 [M,H,W,C], int32 [M])``.

    ``max_examples`` None or <= 0 (or >= len) keeps every example in order;
    otherwise ``max_examples`` examples drawn without replacement by
    ``np.random.default_rng(seed)``, kept in dataset order. Lazy datasets are
    read in chunks of ``chunk``.
    """
    n = len(ds)
    if max_examples is None or max_examples <= 0 or max_examples >= n:
        if not ds.is_lazy:
            assert ds.images is not None and ds.labels is not None
            return ds.images, ds.labels
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=int(max_examples), replace=False))
    if not ds.is_lazy:
        assert ds.images is not None and ds.labels is not None
        return ds.images[idx], ds.labels[idx]
    parts = [ds[idx[i : i + chunk]] for i in range(0, len(idx), chunk)]
    return np.concatenate([p["image"] for p in parts]), np.concatenate([p["label"] for p in parts])


def _check_images(images: np.ndarray, what: str) -> np.ndarray:
    """Validates uint8 ``[N,H,W]`` or ``[N,H,W,C]``; returns ``[N,H,W,C]``."""
    if images.dtype != np.uint8:
        raise ValueError(
            f"{what}: expected dtype uint8 (values 0..255), got {images.dtype}. "
            "Fix: convert with np.clip(x, 0, 255).astype(np.uint8) (rescale floats in [0,1] by 255 first)."
        )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"{what}: expected rank 4 [N,H,W,C] (or rank 3 [N,H,W] grayscale), got shape {images.shape}."
        )
    return images


def _check_labels(labels: np.ndarray, n: int, what: str) -> np.ndarray:
    """Validates integer labels ``[N]`` >= 0; returns int32 ``[N]``."""
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{what}: expected labels of shape [{n}], got {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what}: expected integer labels, got dtype {labels.dtype}.")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{what}: labels must be >= 0, got min {int(labels.min())}.")
    return labels.astype(np.int32)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$SSLX_DATA_DIR`` if set, else ``<repo root>/../shared/data/image``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return (_REPO_ROOT / ".." / "shared" / "data" / "image").resolve()


def load_image_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    image_key: str = "image",
    label_key: str = "label",
    image_size: int | tuple[int, int] | None = None,
) -> ImageDataset:
    """Loads an image classification dataset as an :class:`ImageDataset`.

    Sources, by ``name``:

    * ``"digits"``: scikit-learn's bundled ``load_digits()`` (no files, no
      download), 1797 images ``[8, 8, 1]``, pixel values 0..16 rescaled to uint8
      0..255 (``round(v * 255 / 16)``). Splits: ``"train"`` = the first 1438
      of a fixed permutation (``np.random.default_rng(0)``), ``"test"`` = the
      remaining 359, ``"all"`` = all 1797 in original order.
    * ``"mnist"``, ``"fashion_mnist"``, ``"cifar10_subset"`` (and any ``name``
      with a ``<data_dir>/<name>/<split>.npz`` file): ``.npz`` files with keys
      ``images`` (uint8 ``[N,H,W]`` or ``[N,H,W,C]``) and ``labels``. cifar10_subset
      has only ``train_first4000.npz``: ``"train"`` = its first 3000 images,
      ``"test"`` = its last 1000, ``"all"`` = all 4000. ``data_dir`` defaults to
      ``$SSLX_DATA_DIR``, then ``<repo>/../shared/data/image``.
    * anything else (``"cifar10"``, ``"imagenet2012"``, a user's dataset, a
      ``"tfds:<name>"`` to force tfds for e.g. ``"tfds:mnist"``, or the path of a
      prepared ``<name>/<version>`` directory): a tensorflow-datasets data
      source in ArrayRecord format, read lazily (images decoded by tfds with
      Pillow; TensorFlow is not needed). ``data_dir=None`` means tfds's
      default (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      ``image_size`` resizes (shorter side) and center-crops each image, which
      is required for variable-size datasets such as ImageNet.

    Returns images uint8 ``[N, H, W, C]`` and labels int32 ``[N]``.
    """
    if name == "digits":
        return _load_digits(split)
    tfds_forced = name.startswith(TFDS_PREFIX)
    if tfds_forced:
        name = name[len(TFDS_PREFIX):]
    elif _is_tfds_dir(name):
        return _load_tfds(name, split, None, False, image_key, label_key, image_size)
    else:
        root = _npz_root(name, data_dir)
        if name in NPZ_DATASETS:
            return _load_npz_dataset(name, split, root, data_dir)
        if root is not None and (root / name / f"{split}.npz").is_file():
            return _load_npz_dataset(name, split, root, data_dir)
    return _load_tfds(name, split, data_dir, download, image_key, label_key, image_size)


def _load_digits(split: str) -> ImageDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    if split == "train":
        idx = perm[:DIGITS_NUM_TRAIN]
    elif split == "test":
        idx = perm[DIGITS_NUM_TRAIN:]
    elif split == "all":
        idx = np.arange(len(labels))
    else:
        raise ValueError(f"digits: unknown split {split!r}; expected 'train', 'test' or 'all'.")
    return ImageDataset(images[idx], labels[idx], num_classes=10, name=f"digits/{split}")


def _npz_root(name: str, data_dir: str | os.PathLike | None) -> Path | None:
    """Folder holding ``<name>/``; accepts the shared ``data`` folder too."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    for cand in (base, base / "image"):
        if (cand / name).is_dir():
            return cand
    return base if data_dir is not None or name in NPZ_DATASETS else None


def _npz_fix_hint(name: str) -> str:
    wanted = CIFAR10_SUBSET_FILE if name == "cifar10_subset" else "train.npz"
    return (
        f"Fix: pass --config.data_dir=... (load_image_dataset(..., data_dir=...)) pointing at a folder "
        f"with {name}/{wanted} (e.g. ../shared/data/image), or set ${DATA_DIR_ENV}; "
        f"write your own with sslx.data.write_npz_dataset; or use name='digits' which needs no files."
    )


def _load_npz_dataset(
    name: str, split: str, root: Path | None, data_dir: str | os.PathLike | None
) -> ImageDataset:
    assert root is not None
    where = "data_dir" if data_dir is not None else f"default data dir (${DATA_DIR_ENV} or ../shared/data/image)"
    if not root.is_dir():
        raise FileNotFoundError(
            f"{name}: {where} {str(root)!r} does not exist; expected {root / name}/<split>.npz. "
            + _npz_fix_hint(name)
        )
    sel: slice = slice(None)
    if name == "cifar10_subset":
        file = root / name / CIFAR10_SUBSET_FILE
        splits = {
            "train": slice(0, CIFAR10_SUBSET_NUM_TRAIN),
            "test": slice(CIFAR10_SUBSET_NUM_TRAIN, None),
            "all": slice(None),
        }
        if split not in splits:
            raise ValueError(f"cifar10_subset: unknown split {split!r}; expected one of {sorted(splits)}.")
        sel = splits[split]
    else:
        file = root / name / f"{split}.npz"
    if not file.is_file():
        present = sorted(p.name for p in (root / name).glob("*.npz")) if (root / name).is_dir() else []
        raise FileNotFoundError(
            f"{name}/{split}: file {str(file)!r} not found (npz files present in {root / name}: "
            f"{present or 'none'}). " + _npz_fix_hint(name)
        )
    images, labels, stored_classes = _read_npz(file)
    images, labels = images[sel], labels[sel]
    if name in NPZ_DATASETS:
        num_classes = NPZ_DATASETS[name]
    elif stored_classes is not None:
        num_classes = stored_classes
    else:
        num_classes = int(labels.max()) + 1 if labels.size else 1
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"{file}: label {int(labels.max())} >= num_classes {num_classes}.")
    return ImageDataset(images, labels, num_classes=num_classes, name=f"{name}/{split}")


def _read_npz(file: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Reads and validates an image npz; returns (images [N,H,W,C], labels [N], num_classes)."""
    expected = "keys 'images' (uint8 [N,H,W] or [N,H,W,C]) and 'labels' (integer [N])"
    try:
        npz = np.load(file, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - reported with the path below
        raise ValueError(f"{str(file)!r} is not a readable .npz file ({e}); expected {expected}.") from e
    with npz:
        missing = [k for k in ("images", "labels") if k not in npz.files]
        if missing:
            raise ValueError(
                f"{str(file)!r} has keys {npz.files} but is missing {missing}; expected {expected}. "
                "Fix: re-save it with sslx.data.write_npz_dataset(path, images, labels)."
            )
        images, labels = npz["images"], npz["labels"]
        num_classes = int(npz["num_classes"]) if "num_classes" in npz.files else None
    images = _check_images(images, what=repr(str(file)) + " 'images'")
    labels = _check_labels(labels, len(images), what=repr(str(file)))
    return images, labels, num_classes


def write_npz_dataset(
    path: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int | None = None,
) -> Path:
    """Writes ``images`` uint8 ``[N,H,W(,C)]`` and ``labels`` int ``[N]`` to an npz.

    The file is readable by :func:`load_image_dataset` when placed at
    ``<data_dir>/<name>/<split>.npz``. Parent folders are created.
    """
    path = Path(path)
    images = np.asarray(images)
    labels = np.asarray(labels)
    _check_images(images, what=f"write_npz_dataset({str(path)!r}) images")
    labels = _check_labels(labels, len(images), what=f"write_npz_dataset({str(path)!r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"images": images, "labels": labels}
    if num_classes is not None:
        arrays["num_classes"] = np.asarray(num_classes, np.int64)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


# --------------------------------------------------------------------------
# tensorflow-datasets data sources
# --------------------------------------------------------------------------


def _is_tfds_dir(name: str) -> bool:
    return ("/" in name or os.sep in name) and (Path(name) / "dataset_info.json").is_file()


class TfdsImageSource:
    """Lazy :class:`RandomAccessSource` over a tfds data source.

    ``source[indices]`` decodes the records (tfds decodes images with Pillow)
    and returns ``(uint8 [B, H, W, C], int32 [B])``. With ``image_size`` every
    image is resized (shorter side) and center-cropped to that size.
    """

    def __init__(
        self,
        data_source: Any,
        image_key: str = "image",
        label_key: str = "label",
        image_size: tuple[int, int] | None = None,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        self.data_source = data_source
        self.image_key = image_key
        self.label_key = label_key
        self.image_size = image_size
        self.image_shape = image_shape

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = [int(i) for i in np.asarray(indices).reshape(-1)]
        getitems = getattr(self.data_source, "__getitems__", None)
        records = getitems(keys) if getitems is not None else [self.data_source[k] for k in keys]
        images = [self._image(r[self.image_key]) for r in records]
        labels = np.asarray([r[self.label_key] for r in records], dtype=np.int64)
        if not images:
            shape = self.image_shape or (0, 0, 0)
            return np.zeros((0, *shape), np.uint8), labels.astype(np.int32)
        return np.stack(images), labels.astype(np.int32)

    def _image(self, img: Any) -> np.ndarray:
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[..., None]
        if img.dtype != np.uint8:
            raise ValueError(f"tfds feature {self.image_key!r}: expected uint8 images, got {img.dtype}.")
        if self.image_size is not None and img.shape[:2] != self.image_size:
            img = _resize_center_crop(img, self.image_size)
        return img


def _resize_center_crop(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes uint8 ``[h, w, C]`` so it covers ``size`` then center-crops to ``[*size, C]``."""
    from PIL import Image

    th, tw = size
    h, w, c = img.shape
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    pil = Image.fromarray(img[..., 0] if c == 1 else img)
    arr = np.asarray(pil.resize((nw, nh), Image.BICUBIC))
    if arr.ndim == 2:
        arr = arr[..., None]
    top, left = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(arr[top : top + th, left : left + tw])


def _tfds_fix_hint(name: str, data_dir: Any) -> str:
    dd = data_dir if data_dir is not None else "<data_dir>"
    return (
        f"Fix: check the name and data_dir; prepare the data in ArrayRecord format on a machine with "
        f"internet (`tfds build {name} --file_format=array_record --data_dir={dd}`, or "
        f"load_image_dataset(..., download=True)) and copy it to <data_dir>/{name}/<version>/; "
        f"or use name='digits' (no files) or mnist/fashion_mnist/cifar10_subset .npz files."
    )


def _load_tfds(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None,
    download: bool,
    image_key: str,
    label_key: str,
    image_size: int | tuple[int, int] | None,
) -> ImageDataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # pragma: no cover - tfds is a dependency
        raise ImportError(f"dataset {name!r} needs tensorflow-datasets: pip install tensorflow-datasets") from e

    dd = str(data_dir) if data_dir is not None else None
    try:
        if _is_tfds_dir(name):
            builder = tfds.builder_from_directory(name)
            ds = builder.as_data_source(split=split)
        else:
            # With an explicit data_dir tfds does not default to ArrayRecord;
            # force it so download=True prepares a random-access format.
            ds = tfds.data_source(
                name,
                split=split,
                data_dir=dd,
                download=download,
                builder_kwargs={"file_format": "array_record"},
            )
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(
            f"tfds dataset {name!r} not found: it is not a registered tfds builder and no prepared copy "
            f"was found under data_dir {dd!r} (looked for <data_dir>/{name}/<version>/dataset_info.json). "
            + _tfds_fix_hint(name, dd)
        ) from e
    except ValueError as e:  # e.g. unknown split; tfds lists the valid ones
        raise ValueError(f"tfds dataset {name!r}, split {split!r} (data_dir {dd!r}): {e}") from e
    except (KeyError, FileNotFoundError, NotImplementedError, AssertionError) as e:
        if download:
            raise RuntimeError(
                f"tfds dataset {name!r}: download/prepare into {dd!r} failed ({type(e).__name__}: {e}). "
                + _tfds_fix_hint(name, dd)
            ) from e
        raise FileNotFoundError(
            f"tfds dataset {name!r}, split {split!r}: no prepared ArrayRecord data under data_dir {dd!r} "
            f"(tfds said {type(e).__name__}: {e}). Pass download=True to let tfds fetch it (needs internet). "
            + _tfds_fix_hint(name, dd)
        ) from e
    except Exception as e:  # noqa: BLE001 - e.g. network/import errors during download
        raise RuntimeError(
            f"tfds dataset {name!r}, split {split!r} (data_dir {dd!r}, download={download}) failed with "
            f"{type(e).__name__}: {e}. " + _tfds_fix_hint(name, dd)
        ) from e

    features = ds.dataset_info.features
    for key in (image_key, label_key):
        if key not in features:
            raise ValueError(
                f"tfds dataset {name!r} has features {list(features.keys())}, no {key!r}; "
                "pass image_key=/label_key= to load_image_dataset."
            )
    num_classes = getattr(features[label_key], "num_classes", None)
    if not num_classes:
        raise ValueError(f"tfds dataset {name!r}: feature {label_key!r} is not a ClassLabel with num_classes.")
    feat_shape = tuple(features[image_key].shape)
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    if size is not None:
        size = (int(size[0]), int(size[1]))
        shape: tuple[int, int, int] | None = (*size, int(feat_shape[-1])) if feat_shape[-1] else None
    elif len(feat_shape) == 3 and all(s is not None for s in feat_shape):
        shape = tuple(int(s) for s in feat_shape)  # type: ignore[assignment]
    else:
        raise ValueError(
            f"tfds dataset {name!r}: images have variable shape {feat_shape}, so they cannot be batched; "
            "pass image_size=<int or (H, W)> to resize and center-crop them on the host."
        )
    source = TfdsImageSource(ds, image_key, label_key, image_size=size, image_shape=shape)
    return ImageDataset(None, None, num_classes=int(num_classes), name=f"{name}/{split}", source=source)


# --------------------------------------------------------------------------
# Deterministic batch order
# --------------------------------------------------------------------------

_WARNED_LEFTOVER: set[tuple[int, int]] = set()
_WARN_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    perm = np.random.default_rng((seed, epoch)).permutation(num_examples)
    perm.setflags(write=False)
    return perm


def global_batch_indices(
    step: int, num_examples: int, global_batch: int, seed: int, sample_weights: np.ndarray | None = None
) -> np.ndarray:
    """Example indices ``int64 [global_batch]`` of the global batch at ``step``.

    ``epoch = step // (num_examples // global_batch)``; each epoch uses the
    permutation ``np.random.default_rng((seed, epoch))`` and drops its last
    ``num_examples % global_batch`` examples (warned once). A pure function of
    its arguments, so resuming at any step reproduces the batches exactly.

    With ``sample_weights`` (``[num_examples]``, >= 0, not all 0) the batch is instead
    ``global_batch`` independent draws with replacement, example ``i`` with probability
    ``w_i / sum(w)``, from ``np.random.default_rng((seed, step, 1))`` (e.g. DeepCluster's
    uniform sampling over clusters); still a pure function of (step, seed, weights).
    """
    if sample_weights is not None:
        return _weighted_batch_indices(step, num_examples, global_batch, seed, sample_weights)
    if global_batch < 1:
        raise ValueError(f"global_batch must be >= 1, got {global_batch}.")
    if global_batch > num_examples:
        raise ValueError(
            f"global_batch {global_batch} > num_examples {num_examples}: not even one full batch per epoch. "
            "Fix: lower the batch size or use a larger dataset/split."
        )
    if step < 0 or seed < 0:
        raise ValueError(f"step and seed must be >= 0, got step={step}, seed={seed}.")
    steps_per_epoch = num_examples // global_batch
    leftover = num_examples - steps_per_epoch * global_batch
    if leftover:
        with _WARN_LOCK:
            first = (num_examples, global_batch) not in _WARNED_LEFTOVER
            _WARNED_LEFTOVER.add((num_examples, global_batch))
        if first:
            warnings.warn(
                f"{leftover} of {num_examples} examples are left out each epoch (global_batch {global_batch}, "
                f"{steps_per_epoch} steps per epoch; the incomplete last batch is dropped, a different "
                "subset each epoch).",
                stacklevel=2,
            )
    epoch, pos = divmod(step, steps_per_epoch)
    perm = _epoch_permutation(num_examples, seed, epoch)
    return perm[pos * global_batch : (pos + 1) * global_batch].astype(np.int64)


def _weighted_batch_indices(
    step: int, num_examples: int, global_batch: int, seed: int, sample_weights: np.ndarray
) -> np.ndarray:
    w = np.asarray(sample_weights, np.float64)
    if w.shape != (num_examples,):
        raise ValueError(
            f"sample_weights: expected shape [{num_examples}] (one weight per example), got {w.shape}."
        )
    if global_batch < 1 or step < 0 or seed < 0:
        raise ValueError(f"need global_batch >= 1, step >= 0, seed >= 0; got {global_batch}, {step}, {seed}.")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("sample_weights must be finite and >= 0 with a positive sum; fix the weights "
                         "(e.g. 1 / cluster size) or pass None for uniform epochs.")
    cdf = np.cumsum(w)
    u = np.random.default_rng((seed, step, 1)).random(global_batch) * cdf[-1]
    return np.minimum(np.searchsorted(cdf, u, side="right"), num_examples - 1).astype(np.int64)


def process_slice(global_indices: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
    """This process's contiguous slice ``[global_batch // process_count]`` of ``global_indices``."""
    global_indices = np.asarray(global_indices)
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"need 0 <= process_index < process_count, got {process_index} and {process_count}.")
    n = len(global_indices)
    if n % process_count:
        raise ValueError(
            f"global batch {n} is not divisible by process_count {process_count}. "
            f"Fix: use a global batch that is a multiple of {process_count} "
            f"(e.g. {max(process_count, n // process_count * process_count)})."
        )
    local = n // process_count
    return global_indices[process_index * local : (process_index + 1) * local]


# --------------------------------------------------------------------------
# Prefetching iterator
# --------------------------------------------------------------------------


class _WorkerError:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


class BatchIterator:
    """Iterates process-local batches for steps ``start_step, start_step+1, ...``.

    Each item is ``{"image": uint8 [local_batch, H, W, C], "label": int32
    [local_batch]}`` (``local_batch = global_batch // process_count``), or
    ``put_fn(batch)`` if given; ``put_fn`` runs in the prefetch thread (e.g. to
    build a globally sharded ``jax.Array``). ``prefetch`` batches are prepared
    ahead in a background thread. Runs forever unless ``num_steps`` is set.
    ``next_step`` is the step of the next batch returned. Use as a context
    manager or call :meth:`close`; worker exceptions re-raise in ``__next__``.
    ``sample_weights`` ``[N]`` draws batches with these per-example weights (see
    :func:`global_batch_indices`); ``with_index`` adds ``"index"`` (int32 global
    example indices ``[local_batch]``) to every batch.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        global_batch: int,
        seed: int,
        start_step: int = 0,
        process_index: int | None = None,
        process_count: int | None = None,
        *,
        prefetch: int = 2,
        put_fn: Callable[[Batch], Any] | None = None,
        num_steps: int | None = None,
        sample_weights: np.ndarray | None = None,
        with_index: bool = False,
    ) -> None:
        if process_index is None or process_count is None:
            import jax

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}.")
        self.sample_weights = None if sample_weights is None else np.asarray(sample_weights, np.float64)
        self.with_index = with_index
        # Validate eagerly so configuration errors surface in the caller.
        process_slice(global_batch_indices(start_step, len(dataset), global_batch, seed, self.sample_weights),
                      process_index, process_count)
        self.dataset = dataset
        self.global_batch = global_batch
        self.seed = seed
        self.start_step = start_step
        self.next_step = start_step
        self.process_index = process_index
        self.process_count = process_count
        self.put_fn = put_fn
        self.num_steps = num_steps
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._work, name="sslx-batch-prefetch", daemon=True)
        self._thread.start()

    def batch_at(self, step: int) -> Batch:
        """The host batch (before ``put_fn``) for ``step``, computed synchronously."""
        idx = global_batch_indices(step, len(self.dataset), self.global_batch, self.seed, self.sample_weights)
        local = process_slice(idx, self.process_index, self.process_count)
        batch = self.dataset[local]
        if self.with_index:
            batch["index"] = local.astype(np.int32)
        return batch

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        step = self.start_step
        try:
            while not self._stop.is_set():
                if self.num_steps is not None and step >= self.start_step + self.num_steps:
                    self._put(_DONE)
                    return
                batch: Any = self.batch_at(step)
                if self.put_fn is not None:
                    batch = self.put_fn(batch)
                if not self._put(batch):
                    return
                step += 1
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(_WorkerError(e))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._finished = True
                    raise StopIteration from None
        if item is _DONE:
            self._finished = True
            self.close()
            raise StopIteration
        if isinstance(item, _WorkerError):
            self._finished = True
            self.close()
            raise item.exc
        self.next_step += 1
        return item

    @property
    def is_alive(self) -> bool:
        """Whether the prefetch thread is running."""
        return self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Stops the prefetch thread and drops prefetched batches."""
        self._stop.set()
        self._finished = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> BatchIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._stop.set()
        except AttributeError:
            pass
