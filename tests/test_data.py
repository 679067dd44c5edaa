"""Tests for the host-side image pipeline (sslx.data)."""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path

import chex
import numpy as np
import pytest

from sslx.data import (
    BatchIterator,
    ImageDataset,
    dataset_arrays,
    global_batch_indices,
    load_image_dataset,
    process_slice,
    write_npz_dataset,
)
from sslx.data import image as image_lib


def _shared_data_dir() -> Path:
    env = os.environ.get("SSLX_SHARED_DATA")
    if env:
        return Path(env)
    return (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()


SHARED = _shared_data_dir()
needs_shared = pytest.mark.skipif(
    not (SHARED / "image").is_dir(),
    reason=f"shared real datasets not found at {SHARED}/image (set SSLX_SHARED_DATA to the shared data folder)",
)


def _random_dataset(n: int = 37, hw: int = 4, c: int = 1, classes: int = 5, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, hw, hw, c), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.int32)
    return ImageDataset(images, labels, num_classes=classes, name="random")


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def test_digits_splits_shapes_and_determinism():
    from sklearn.datasets import load_digits

    tr = load_image_dataset("digits", "train")
    te = load_image_dataset("digits", "test")
    al = load_image_dataset("digits", "all")
    chex.assert_shape(tr.images, (1438, 8, 8, 1))
    chex.assert_shape(te.images, (359, 8, 8, 1))
    chex.assert_shape(al.images, (1797, 8, 8, 1))
    chex.assert_type([tr.images, te.images, al.images], np.uint8)
    chex.assert_type([tr.labels, te.labels, al.labels], np.int32)
    assert al.images.min() == 0 and al.images.max() == 255
    assert tr.num_classes == te.num_classes == 10
    assert set(np.unique(al.labels)) == set(range(10))

    # 'all' matches scikit-learn (0..16 rescaled to 0..255).
    raw = load_digits()
    np.testing.assert_array_equal(al.labels, raw.target)
    np.testing.assert_allclose(al.images[..., 0].astype(float), raw.images * 255 / 16, atol=0.5)

    # train/test partition 'all': match each example back to its index in 'all'.
    def row_ids(ds: ImageDataset) -> list[bytes]:
        return [im.tobytes() + bytes([lb]) for im, lb in zip(ds.images, ds.labels)]

    all_rows = row_ids(al)
    tr_rows, te_rows = row_ids(tr), row_ids(te)
    from collections import Counter

    assert Counter(tr_rows) + Counter(te_rows) == Counter(all_rows)
    # Deterministic and not just the first 1438 in file order.
    tr2 = load_image_dataset("digits", "train")
    np.testing.assert_array_equal(tr.images, tr2.images)
    np.testing.assert_array_equal(tr.labels, tr2.labels)
    assert not np.array_equal(tr.labels, al.labels[:1438])

    with pytest.raises(ValueError, match="unknown split"):
        load_image_dataset("digits", "validation")


def test_dataset_indexing():
    ds = _random_dataset()
    idx = np.array([3, 0, 36, -1])
    batch = ds[idx]
    chex.assert_shape(batch["image"], (4, 4, 4, 1))
    chex.assert_type(batch["image"], np.uint8)
    chex.assert_type(batch["label"], np.int32)
    np.testing.assert_array_equal(batch["image"], ds.images[[3, 0, 36, 36]])
    one = ds[5]
    np.testing.assert_array_equal(one["image"], ds.images[5])
    assert one["label"] == ds.labels[5]
    with pytest.raises(IndexError):
        ds[np.array([37])]
    x, y = dataset_arrays(ds)
    assert x is ds.images and y is ds.labels
    x, y = dataset_arrays(ds, max_examples=10, seed=4)
    assert len(x) == 10 and len({im.tobytes() for im in x}) == 10
    rows = {im.tobytes(): i for i, im in enumerate(ds.images)}
    picked = [rows[im.tobytes()] for im in x]
    assert picked == sorted(picked)
    np.testing.assert_array_equal(y, ds.labels[picked])
    x2, _ = dataset_arrays(ds, max_examples=10, seed=5)
    assert not np.array_equal(x, x2)
    # 3-D grayscale input gets a channel axis.
    gray = ImageDataset(np.zeros((2, 5, 5), np.uint8), np.array([0, 1]), num_classes=2, name="g")
    assert gray.image_shape == (5, 5, 1)


# --------------------------------------------------------------------------
# npz path
# --------------------------------------------------------------------------


def test_npz_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (12, 6, 6), dtype=np.uint8)
    labels = rng.integers(0, 10, 12).astype(np.uint8)
    write_npz_dataset(tmp_path / "mnist" / "train.npz", imgs, labels)
    ds = load_image_dataset("mnist", "train", data_dir=tmp_path)
    chex.assert_shape(ds.images, (12, 6, 6, 1))
    chex.assert_type(ds.labels, np.int32)
    np.testing.assert_array_equal(ds.images[..., 0], imgs)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.num_classes == 10

    # Parent folder (shared 'data' layout with an 'image/' subfolder) also works.
    write_npz_dataset(tmp_path / "shared" / "image" / "fashion_mnist" / "test.npz", imgs, labels)
    ds2 = load_image_dataset("fashion_mnist", "test", data_dir=tmp_path / "shared")
    np.testing.assert_array_equal(ds2.images[..., 0], imgs)

    # Environment variable default.
    old = os.environ.get("SSLX_DATA_DIR")
    os.environ["SSLX_DATA_DIR"] = str(tmp_path)
    try:
        ds3 = load_image_dataset("mnist", "train")
    finally:
        if old is None:
            del os.environ["SSLX_DATA_DIR"]
        else:
            os.environ["SSLX_DATA_DIR"] = old
    np.testing.assert_array_equal(ds3.labels, labels)

    # A user's own npz dataset under any name, with stored num_classes.
    col = rng.integers(0, 256, (9, 5, 5, 3), dtype=np.uint8)
    write_npz_dataset(tmp_path / "mine" / "val.npz", col, np.arange(9) % 3, num_classes=7)
    mine = load_image_dataset("mine", "val", data_dir=tmp_path)
    np.testing.assert_array_equal(mine.images, col)
    assert mine.num_classes == 7


def test_cifar10_subset_split_on_written_file(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (4000, 2, 2, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 4000)
    write_npz_dataset(tmp_path / "cifar10_subset" / "train_first4000.npz", imgs, labels)
    tr = load_image_dataset("cifar10_subset", "train", data_dir=tmp_path)
    te = load_image_dataset("cifar10_subset", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(tr.images, imgs[:3000])
    np.testing.assert_array_equal(te.images, imgs[3000:])
    np.testing.assert_array_equal(te.labels, labels[3000:])


@needs_shared
def test_real_shared_data():
    root = SHARED / "image"
    mn = load_image_dataset("mnist", "train", data_dir=root)
    chex.assert_shape(mn.images, (60000, 28, 28, 1))
    chex.assert_type(mn.images, np.uint8)
    assert set(np.unique(mn.labels)) == set(range(10))
    mt = load_image_dataset("mnist", "test", data_dir=root)
    chex.assert_shape(mt.images, (10000, 28, 28, 1))
    fm = load_image_dataset("fashion_mnist", "test", data_dir=SHARED)  # parent folder works too
    chex.assert_shape(fm.images, (10000, 28, 28, 1))
    if (root / "cifar10_subset" / "train_first4000.npz").is_file():
        raw = np.load(root / "cifar10_subset" / "train_first4000.npz")
        tr = load_image_dataset("cifar10_subset", "train", data_dir=root)
        te = load_image_dataset("cifar10_subset", "test", data_dir=root)
        chex.assert_shape(tr.images, (3000, 32, 32, 3))
        chex.assert_shape(te.images, (1000, 32, 32, 3))
        np.testing.assert_array_equal(te.images, raw["images"][3000:])
        np.testing.assert_array_equal(tr.labels, raw["labels"][:3000])


# --------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------


def test_missing_dir_message(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as ei:
        load_image_dataset("mnist", "train", data_dir=missing)
    msg = str(ei.value)
    assert str(missing) in msg and "mnist/train.npz" in msg and "digits" in msg and "data_dir" in msg

    (tmp_path / "mnist").mkdir()
    with pytest.raises(FileNotFoundError) as ei:
        load_image_dataset("mnist", "test", data_dir=tmp_path)
    assert str(tmp_path / "mnist" / "test.npz") in str(ei.value)


def test_npz_missing_images_key(tmp_path):
    path = tmp_path / "mnist" / "train.npz"
    path.parent.mkdir()
    np.savez(path, x=np.zeros((3, 4, 4), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError) as ei:
        load_image_dataset("mnist", "train", data_dir=tmp_path)
    msg = str(ei.value)
    assert str(path) in msg and "'images'" in msg and "write_npz_dataset" in msg


def test_npz_wrong_dtype_and_rank(tmp_path):
    path = tmp_path / "mnist" / "train.npz"
    path.parent.mkdir()
    np.savez(path, images=np.zeros((3, 4, 4), np.float32), labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError) as ei:
        load_image_dataset("mnist", "train", data_dir=tmp_path)
    assert str(path) in str(ei.value) and "uint8" in str(ei.value) and "float32" in str(ei.value)

    np.savez(path, images=np.zeros((3, 4), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="rank 4"):
        load_image_dataset("mnist", "train", data_dir=tmp_path)

    np.savez(path, images=np.zeros((3, 4, 4), np.uint8), labels=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        load_image_dataset("mnist", "train", data_dir=tmp_path)


# --------------------------------------------------------------------------
# tensorflow-datasets data source path
# --------------------------------------------------------------------------


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """Writes a tiny ArrayRecord dataset with an unregistered tfds builder."""
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = tmp_path_factory.mktemp("tfds")
    rng = np.random.default_rng(3)
    written = {
        "train": (rng.integers(0, 256, (11, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, 11)),
        "test": (rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, 5)),
    }

    # skip_registration: the loader must find the data from data_dir alone,
    # as for a dataset prepared elsewhere.
    class SslxTinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 3)),
                        "label": tfds.features.ClassLabel(num_classes=3),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in written}

        def _generate_examples(self, split):
            imgs, labels = written[split]
            for i, (im, lb) in enumerate(zip(imgs, labels)):
                yield i, {"image": _png(im), "label": int(lb)}

    builder = SslxTinyImages(data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare()
    return data_dir, builder.name, written


def test_tfds_data_source(tfds_dir):
    data_dir, name, written = tfds_dir
    ds = load_image_dataset(name, "train", data_dir=data_dir)
    assert ds.is_lazy and len(ds) == 11 and ds.num_classes == 3 and ds.image_shape == (8, 8, 3)
    imgs, labels = written["train"]
    # tfds shuffles records when preparing; match by image content.
    batch = ds[np.arange(len(ds))]
    chex.assert_type(batch["image"], np.uint8)
    chex.assert_type(batch["label"], np.int32)
    chex.assert_shape(batch["image"], (11, 8, 8, 3))
    expected = {im.tobytes(): int(lb) for im, lb in zip(imgs, labels)}
    got = {im.tobytes(): int(lb) for im, lb in zip(batch["image"], batch["label"])}
    assert got == expected
    sub = ds[np.array([4, 1])]
    np.testing.assert_array_equal(sub["image"], batch["image"][[4, 1]])

    x, y = dataset_arrays(ds, max_examples=6, seed=2)
    sel = np.sort(np.random.default_rng(2).choice(11, 6, replace=False))
    np.testing.assert_array_equal(x, batch["image"][sel])
    np.testing.assert_array_equal(y, batch["label"][sel])

    mem = ds.materialize()
    assert not mem.is_lazy
    np.testing.assert_array_equal(mem.images, batch["image"])

    test = load_image_dataset(f"tfds:{name}", "test", data_dir=data_dir)
    assert len(test) == 5

    # A prepared <name>/<version> directory path works without registration.
    by_dir = load_image_dataset(str(data_dir / name / "1.0.0"), "test")
    np.testing.assert_array_equal(by_dir[np.arange(5)]["image"], test[np.arange(5)]["image"])

    resized = load_image_dataset(name, "train", data_dir=data_dir, image_size=4)
    assert resized.image_shape == (4, 4, 3)
    small = resized[np.array([0, 1])]["image"]
    chex.assert_shape(small, (2, 4, 4, 3))
    np.testing.assert_array_equal(small[1], image_lib._resize_center_crop(batch["image"][1], (4, 4)))

    # Resizing keeps the center: left/right quarters 0, middle half 255.
    wide = np.zeros((4, 8, 3), np.uint8)
    wide[:, 2:6] = 255
    np.testing.assert_array_equal(image_lib._resize_center_crop(wide, (4, 4)), np.full((4, 4, 3), 255, np.uint8))
    flat = np.full((8, 8, 1), 77, np.uint8)
    np.testing.assert_array_equal(image_lib._resize_center_crop(flat, (4, 4)), np.full((4, 4, 1), 77, np.uint8))

    # The lazy dataset feeds the batch iterator like an in-memory one.
    with BatchIterator(ds, 4, seed=0, process_index=0, process_count=1, num_steps=2) as it:
        out = list(it)
    np.testing.assert_array_equal(out[1]["image"], ds[global_batch_indices(1, 11, 4, 0)]["image"])


def test_tfds_errors(tfds_dir, tmp_path):
    data_dir, name, _ = tfds_dir
    with pytest.raises(ValueError) as ei:
        load_image_dataset("sslx_no_such_dataset", "train", data_dir=tmp_path)
    msg = str(ei.value)
    assert "sslx_no_such_dataset" in msg and str(tmp_path) in msg and "array_record" in msg
    with pytest.raises(ValueError, match="validation"):
        load_image_dataset(name, "validation", data_dir=data_dir)
    with pytest.raises(ValueError, match="image_key"):
        load_image_dataset(name, "train", data_dir=data_dir, image_key="img")
    # A registered tfds builder whose data is not prepared in data_dir.
    with pytest.raises(FileNotFoundError) as ei:
        load_image_dataset("cifar10", "train", data_dir=tmp_path / "empty")
    assert "cifar10" in str(ei.value) and "download=True" in str(ei.value)


# --------------------------------------------------------------------------
# batch order
# --------------------------------------------------------------------------


def test_epochs_are_permutations():
    n, b, seed = 50, 7, 11
    spe = n // b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epochs = [np.concatenate([global_batch_indices(e * spe + s, n, b, seed) for s in range(spe)]) for e in range(3)]
    for ep in epochs:
        assert len(ep) == spe * b == len(np.unique(ep))
        assert ep.min() >= 0 and ep.max() < n
    assert not np.array_equal(epochs[0], epochs[1])  # fresh permutation each epoch


def test_batch_order_resume_and_seeds():
    n, b = 64, 8
    a = [global_batch_indices(s, n, b, seed=3) for s in range(20)]
    # Pure function of step: evaluating a later step first changes nothing.
    later = global_batch_indices(13, n, b, seed=3)
    np.testing.assert_array_equal(later, a[13])
    np.testing.assert_array_equal(global_batch_indices(13, n, b, seed=3), a[13])
    other = [global_batch_indices(s, n, b, seed=4) for s in range(8)]
    assert not np.array_equal(np.stack(a[:8]), np.stack(other))
    # Exactly divisible: each epoch covers every example.
    np.testing.assert_array_equal(np.sort(np.concatenate(a[:8])), np.arange(n))


def test_leftover_warns_once_and_batch_too_large():
    image_lib._WARNED_LEFTOVER.clear()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for s in range(10):
            global_batch_indices(s, 23, 5, 0)
        global_batch_indices(0, 20, 5, 0)  # divisible: no warning
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1 and "3 of 23" in msgs[0]
    with pytest.raises(ValueError, match="global_batch 30 > num_examples 23"):
        global_batch_indices(0, 23, 30, 0)


def test_process_slices_partition():
    g = global_batch_indices(5, 100, 12, 0)
    parts = [process_slice(g, i, 4) for i in range(4)]
    assert all(len(p) == 3 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), g)
    with pytest.raises(ValueError) as ei:
        process_slice(g, 0, 5)
    assert "12" in str(ei.value) and "5" in str(ei.value) and "multiple" in str(ei.value)


# --------------------------------------------------------------------------
# BatchIterator
# --------------------------------------------------------------------------


def _expected(ds, step, gb, seed, pi=0, pc=1):
    return ds[process_slice(global_batch_indices(step, len(ds), gb, seed), pi, pc)]


def test_batch_iterator_matches_direct_indexing_and_resume():
    ds = _random_dataset(n=40)
    with BatchIterator(ds, 8, seed=5, process_index=1, process_count=2, num_steps=12) as it:
        got = list(it)
    assert len(got) == 12 and it.next_step == 12
    for s, batch in enumerate(got):
        exp = _expected(ds, s, 8, 5, 1, 2)
        chex.assert_shape(batch["image"], (4, 4, 4, 1))
        chex.assert_type(batch["label"], np.int32)
        np.testing.assert_array_equal(batch["image"], exp["image"])
        np.testing.assert_array_equal(batch["label"], exp["label"])
    # Resuming at step 7 reproduces steps 7.. exactly.
    with BatchIterator(ds, 8, seed=5, start_step=7, process_index=1, process_count=2) as it:
        resumed = [next(it) for _ in range(5)]
    for a, b in zip(got[7:], resumed):
        np.testing.assert_array_equal(a["image"], b["image"])
    # Default process index/count from jax (single process here).
    with BatchIterator(ds, 8, seed=5, num_steps=1) as it:
        (only,) = list(it)
    np.testing.assert_array_equal(only["label"], _expected(ds, 0, 8, 5)["label"])


def test_batch_iterator_put_fn_runs_in_thread():
    ds = _random_dataset()
    threads = []

    def put_fn(batch):
        threads.append(threading.current_thread())
        return {"sum": batch["image"].astype(np.int64).sum(), "label": batch["label"]}

    with BatchIterator(ds, 6, seed=1, process_index=0, process_count=1, put_fn=put_fn, num_steps=3) as it:
        out = list(it)
    assert [o["sum"] for o in out] == [int(_expected(ds, s, 6, 1)["image"].astype(np.int64).sum()) for s in range(3)]
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_batch_iterator_put_fn_builds_jax_array():
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    ds = _random_dataset(n=32)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    put_fn = lambda b: jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), b)  # noqa: E731
    with BatchIterator(ds, 8, seed=0, put_fn=put_fn, num_steps=2) as it:
        out = list(it)
    assert isinstance(out[1]["image"], jax.Array)
    np.testing.assert_array_equal(np.asarray(out[1]["image"]), _expected(ds, 1, 8, 0)["image"])
    assert out[1]["image"].dtype == jnp.uint8


def test_batch_iterator_propagates_worker_exception():
    ds = _random_dataset()

    def put_fn(batch):
        if put_fn.calls == 2:
            raise RuntimeError("boom in worker")
        put_fn.calls += 1
        return batch

    put_fn.calls = 0
    it = BatchIterator(ds, 4, seed=0, process_index=0, process_count=1, put_fn=put_fn)
    next(it)
    next(it)
    with pytest.raises(RuntimeError, match="boom in worker"):
        next(it)
    it._thread.join(5)
    assert not it.is_alive
    with pytest.raises(StopIteration):
        next(it)


def test_batch_iterator_close_stops_thread():
    ds = _random_dataset()
    it = BatchIterator(ds, 4, seed=0, process_index=0, process_count=1, prefetch=2)
    next(it)
    assert it.is_alive  # infinite iterator, blocked on a full queue
    it.close()
    assert not it.is_alive
    with pytest.raises(StopIteration):
        next(it)
    with BatchIterator(ds, 4, seed=0, process_index=0, process_count=1) as it2:
        next(it2)
    assert not it2.is_alive


def test_batch_iterator_config_errors():
    ds = _random_dataset(n=10)
    with pytest.raises(ValueError, match="num_examples 10"):
        BatchIterator(ds, 16, seed=0, process_index=0, process_count=1)
    with pytest.raises(ValueError, match="not divisible by process_count 3"):
        BatchIterator(ds, 4, seed=0, process_index=0, process_count=3)
