"""Graph datasets: Planetoid (Cora, CiteSeer, PubMed) and TU graph classification sets.

Both read the datasets' *raw public files* from a data dir (offline) and, with
``download=True``, first fetch the same files from their public URLs into it.

* :func:`load_planetoid` -- the ``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``
  files of Yang et al. 2016 (Python-2 pickles), read with :class:`RestrictedUnpickler`,
  which only admits the numpy / scipy.sparse / container classes those files hold:
  ``pickle.load`` on a downloaded file would run arbitrary code. Returns a
  :class:`NodeDataset` with the public split (train = first ``len(y)`` nodes, val =
  the next 500, test = ``test.index``) and the graph as a ``jraph.GraphsTuple``
  (both edge directions, deduplicated, optional self-loops).
* :func:`load_tu` -- the TU Dortmund text files (``NAME_A.txt``,
  ``NAME_graph_indicator.txt``, ``NAME_graph_labels.txt``, optional node labels /
  attributes). Returns a :class:`GraphDataset` (node labels one-hot, or degree one-hot
  when a dataset has none; graph labels mapped to ``0..C-1``; deduplicated edges).
* :func:`pad_graph` / :func:`budget` / :meth:`GraphDataset.padded_batch` -- padding to a small set of static sizes
  (powers of two) with ``jraph.pad_with_graphs``, plus node / edge / graph masks, so a
  jitted function compiles once per budget.
"""
from __future__ import annotations

import dataclasses
import io
import os
import pickle
import shutil
import urllib.request
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional, Sequence

import jraph
import numpy as np
import scipy.sparse as sp

__all__ = [
    "GraphDataset", "NodeDataset", "PLANETOID_URL", "RestrictedUnpickler", "TU_URL", "UnsafePickleError",
    "budget", "default_graph_data_dir", "graph_masks", "load_planetoid", "load_tu", "pad_graph",
    "restricted_load", "to_graphs_tuple", "with_ppr_view",
]

DATA_DIR_ENV = "SSLX_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]

PLANETOID_NAMES = ("cora", "citeseer", "pubmed")
PLANETOID_EXTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
# Yang et al.'s repository holds the raw files (the Kipf GCN repository has copies).
PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
TU_NAMES = ("MUTAG", "PTC_MR", "PROTEINS", "IMDB-BINARY", "IMDB-MULTI")
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"
PLANETOID_NUM_VAL = 500


def default_graph_data_dir() -> Path:
    """``$SSLX_DATA_DIR/graph`` if the variable is set, else ``<repo root>/../shared/data/graph``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env) / "graph"
    return (_REPO_ROOT / ".." / "shared" / "data" / "graph").resolve()


# --------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside :data:`RestrictedUnpickler.ALLOWED`."""


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _allowed_globals() -> dict[tuple[str, str], object]:
    rec = _numpy_reconstruct()
    return {
        ("numpy.core.multiarray", "_reconstruct"): rec,
        ("numpy._core.multiarray", "_reconstruct"): rec,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("scipy.sparse.csr", "csr_matrix"): sp.csr_matrix,
        ("scipy.sparse._csr", "csr_matrix"): sp.csr_matrix,
        ("collections", "defaultdict"): defaultdict,
        ("__builtin__", "list"): list,
        ("builtins", "list"): list,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the exact globals Planetoid's files need.

    ``numpy`` arrays (``_reconstruct``, ``ndarray``, ``dtype``), ``scipy.sparse``
    ``csr_matrix`` and the ``defaultdict(list)`` adjacency. Anything else (``os.system``,
    ``builtins.eval``, ``subprocess.Popen``, ...) raises :class:`UnsafePickleError`
    *before* it is called.
    """

    ALLOWED = frozenset(_allowed_globals())

    def __init__(self, file, *, source: str = "<pickle>", **kwargs):
        kwargs.setdefault("encoding", "latin1")  # Python-2 pickles of numpy arrays
        super().__init__(file, **kwargs)
        self._source = source
        self._globals = _allowed_globals()

    def find_class(self, module: str, name: str):
        obj = self._globals.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module}.{name}: only "
                f"{sorted('.'.join(k) for k in self.ALLOWED)} are allowed in a Planetoid file. "
                "The file is corrupt or malicious; delete it and download it again.")
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: persistent ids are not allowed (got {pid!r}).")


def restricted_load(path: str | os.PathLike) -> object:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (``encoding='latin1'``)."""
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=str(path)).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated / not a pickle
        raise ValueError(f"{path}: not a readable Planetoid pickle ({type(e).__name__}: {e}); "
                         "delete it and download it again (download=True).") from e


# --------------------------------------------------------------------------
# Containers and GraphsTuple helpers
# --------------------------------------------------------------------------


def _dedup_edges(senders: np.ndarray, receivers: np.ndarray, num_nodes: int, *, symmetric: bool,
                 self_loops: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unique directed edges sorted by (receiver, sender); optionally both directions / with
    every self-loop exactly once / without self-loops."""
    s, r = np.asarray(senders, np.int64), np.asarray(receivers, np.int64)
    if symmetric:
        s, r = np.concatenate([s, r]), np.concatenate([r, s])
    keep = s != r
    s, r = s[keep], r[keep]
    if self_loops:
        loops = np.arange(num_nodes, dtype=np.int64)
        s, r = np.concatenate([s, loops]), np.concatenate([r, loops])
    key = np.unique(r * num_nodes + s)
    return (key % num_nodes).astype(np.int32), (key // num_nodes).astype(np.int32)


def to_graphs_tuple(nodes: np.ndarray, senders: np.ndarray, receivers: np.ndarray,
                    n_node: Optional[Sequence[int]] = None, globals_: Optional[np.ndarray] = None
                    ) -> jraph.GraphsTuple:
    """A ``jraph.GraphsTuple`` of numpy arrays (one graph unless ``n_node`` says otherwise);
    ``n_edge`` is computed from which graph each receiver belongs to (edges sorted by graph)."""
    nodes = np.asarray(nodes)
    if n_node is None:
        n_node = [nodes.shape[0]]
    n_node = np.asarray(n_node, np.int32)
    graph_of_node = np.repeat(np.arange(len(n_node)), n_node)
    n_edge = np.bincount(graph_of_node[receivers], minlength=len(n_node)).astype(np.int32) \
        if len(receivers) else np.zeros(len(n_node), np.int32)
    return jraph.GraphsTuple(nodes=nodes, edges=None, senders=np.asarray(senders, np.int32),
                             receivers=np.asarray(receivers, np.int32), n_node=n_node, n_edge=n_edge,
                             globals=globals_)


@dataclasses.dataclass
class NodeDataset:
    """One graph with node labels and split masks (a Planetoid dataset).

    graph: ``GraphsTuple`` (nodes ``float32 [N, F]``, senders / receivers ``int32 [E]``,
    both directions, sorted by receiver). labels ``int32 [N]`` (-1 where a node has no
    label, e.g. CiteSeer's isolated test-range ids); masks ``bool [N]``.
    """
    name: str
    graph: jraph.GraphsTuple
    labels: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return int(self.graph.nodes.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.graph.senders.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.graph.nodes.shape[1])


@dataclasses.dataclass
class GraphDataset:
    """Many small graphs with graph labels (a TU dataset), stored concatenated.

    nodes ``float32 [N_total, F]``; senders / receivers ``int32 [E_total]`` (global node
    ids, both directions, sorted by graph); n_node / n_edge ``int32 [G]``; labels ``int32 [G]``;
    edges (optional) per-edge features ``float32 [E_total, D_e]``, carried into the batches
    (e.g. the two edge weights of :func:`with_ppr_view`).
    """
    name: str
    nodes: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    n_node: np.ndarray
    n_edge: np.ndarray
    labels: np.ndarray
    num_classes: int
    edges: Optional[np.ndarray] = None

    def __post_init__(self):
        self._node_offset = np.concatenate([[0], np.cumsum(self.n_node)]).astype(np.int64)
        self._edge_offset = np.concatenate([[0], np.cumsum(self.n_edge)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.n_node)

    @property
    def num_features(self) -> int:
        return int(self.nodes.shape[1])

    def graph(self, i: int) -> jraph.GraphsTuple:
        """Graph ``i`` alone (local node ids)."""
        if not 0 <= i < len(self):
            raise IndexError(f"graph index {i} out of range for {self.name} with {len(self)} graphs.")
        n0, n1 = self._node_offset[i], self._node_offset[i + 1]
        e0, e1 = self._edge_offset[i], self._edge_offset[i + 1]
        return jraph.GraphsTuple(nodes=self.nodes[n0:n1], edges=None if self.edges is None else self.edges[e0:e1],
                                 senders=(self.senders[e0:e1] - n0).astype(np.int32),
                                 receivers=(self.receivers[e0:e1] - n0).astype(np.int32),
                                 n_node=self.n_node[i:i + 1], n_edge=self.n_edge[i:i + 1],
                                 globals=self.labels[i:i + 1])

    def batch(self, indices: Sequence[int]) -> jraph.GraphsTuple:
        """The graphs ``indices`` as one (unpadded) ``GraphsTuple``; ``globals`` holds their labels."""
        return jraph.batch_np([self.graph(int(i)) for i in indices])

    def padded_batch(self, indices: Sequence[int], sizes: Optional[tuple[int, int, int]] = None
                     ) -> tuple[jraph.GraphsTuple, dict[str, np.ndarray]]:
        """:meth:`batch` padded to ``sizes`` (default: :func:`budget`, powers of two) with its
        ``node_mask`` / ``edge_mask`` / ``graph_mask``; ``globals`` (labels) of padding graphs are 0."""
        return pad_graph(self.batch(indices), sizes)

    def max_budget(self, batch_size: int) -> tuple[int, int, int]:
        """One static (nodes, edges, graphs) budget that fits *any* ``batch_size`` graphs of this
        dataset (the largest graphs together), so a whole epoch compiles once."""
        if not 0 < batch_size <= len(self):
            raise ValueError(f"batch_size must be in 1..{len(self)}, got {batch_size}.")
        n = int(np.sort(self.n_node)[::-1][:batch_size].sum()) + 1
        e = int(np.sort(self.n_edge)[::-1][:batch_size].sum())
        return _next_pow2(n, 16), _next_pow2(e, 16), _next_pow2(batch_size + 1, 2)


# --------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (atomically, via a temporary file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"downloading {url} to {dest} failed ({type(e).__name__}: {e}); check the "
                           f"network, or place the file there by hand and use download=False.") from e
    os.replace(tmp, dest)


# Swappable in tests (``monkeypatch.setattr(graph, "fetch", ...)``).
fetch: Callable[[str, Path], None] = _fetch


# --------------------------------------------------------------------------
# Planetoid
# --------------------------------------------------------------------------


def _planetoid_dir(name: str, data_dir) -> Path:
    root = Path(data_dir) if data_dir is not None else default_graph_data_dir()
    return root / name


def _sparse_rows(obj, path: Path) -> sp.csr_matrix:
    if sp.issparse(obj):
        m = obj.tocsr()
        # A freshly built matrix: the pickled one carries attributes of an old scipy.
        return sp.csr_matrix((np.asarray(m.data), np.asarray(m.indices), np.asarray(m.indptr)), shape=m.shape)
    if isinstance(obj, np.ndarray) and obj.ndim == 2:
        return sp.csr_matrix(obj)
    raise ValueError(f"{path}: expected a 2-d sparse feature matrix, got {type(obj).__name__}.")


def _dense_labels(obj, path: Path) -> np.ndarray:
    if not isinstance(obj, np.ndarray) or obj.ndim != 2:
        raise ValueError(f"{path}: expected a 2-d one-hot label array, got {type(obj).__name__} "
                         f"with shape {getattr(obj, 'shape', None)}.")
    return obj


def load_planetoid(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False,
                   normalize_features: bool = True, self_loops: bool = False,
                   url: str = PLANETOID_URL) -> NodeDataset:
    """Load Cora / CiteSeer / PubMed with the public Planetoid split.

    Files: ``<data_dir>/<name>/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``
    (``data_dir`` default: :func:`default_graph_data_dir`). ``download=True`` fetches the
    missing ones from ``url`` first. Node order: ``allx`` rows, then the test range
    ``min(test.index)..max(test.index)`` with ``tx`` rows placed at ``test.index``; ids in
    that range missing from ``test.index`` (CiteSeer's 15 isolated nodes) get zero
    features and label -1 (as the standard loaders do). ``normalize_features`` divides each
    row by its sum (rows summing to 0 stay 0). Edges: both directions, deduplicated,
    without self-loops unless ``self_loops``.
    """
    name = name.lower()
    if name not in PLANETOID_NAMES:
        raise ValueError(f"Planetoid dataset {name!r} is unknown; use one of {PLANETOID_NAMES}.")
    d = _planetoid_dir(name, data_dir)
    paths = {ext: d / f"ind.{name}.{ext}" for ext in PLANETOID_EXTS}
    missing = [p for p in paths.values() if not p.is_file()]
    if missing and download:
        for p in missing:
            fetch(f"{url.rstrip('/')}/{p.name}", p)
        missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Planetoid {name}: missing {[str(p) for p in missing]}. Pass download=True (needs internet), "
            f"or put the raw ind.{name}.* files in {d} (data_dir=..., or set ${DATA_DIR_ENV}).")

    x, tx, allx = (_sparse_rows(restricted_load(paths[k]), paths[k]) for k in ("x", "tx", "allx"))
    y, ty, ally = (_dense_labels(restricted_load(paths[k]), paths[k]) for k in ("y", "ty", "ally"))
    adj = restricted_load(paths["graph"])
    if not isinstance(adj, dict):
        raise ValueError(f"{paths['graph']}: expected a dict of adjacency lists, got {type(adj).__name__}.")
    try:
        test_index = np.loadtxt(paths["test.index"], dtype=np.int64, ndmin=1)
    except ValueError as e:
        raise ValueError(f"{paths['test.index']}: expected one integer node id per line ({e}).") from e
    if len(test_index) != tx.shape[0] or tx.shape[0] != ty.shape[0]:
        raise ValueError(f"{paths['test.index']}: {len(test_index)} ids but tx has {tx.shape[0]} rows and "
                         f"ty {ty.shape[0]}; the files are from different datasets or truncated.")
    if allx.shape[0] != ally.shape[0] or x.shape[0] > allx.shape[0]:
        raise ValueError(f"{d}: allx has {allx.shape[0]} rows, ally {ally.shape[0]}, x {x.shape[0]}; "
                         "the files are inconsistent.")
    num_feats = allx.shape[1]
    if tx.shape[1] != num_feats or x.shape[1] != num_feats:
        raise ValueError(f"{d}: feature widths differ (x {x.shape[1]}, tx {tx.shape[1]}, allx {num_feats}).")

    n_all = allx.shape[0]
    lo, hi = int(test_index.min()), int(test_index.max())
    if lo < n_all:
        raise ValueError(f"{paths['test.index']}: test ids start at {lo}, inside the allx range 0..{n_all - 1}.")
    num_nodes = hi + 1
    feats = sp.lil_matrix((num_nodes, num_feats), dtype=np.float32)
    feats[:n_all] = allx
    feats[test_index] = tx
    feats = feats.tocsr()
    onehot = np.zeros((num_nodes, ally.shape[1]), np.float32)
    onehot[:n_all] = ally
    onehot[test_index] = ty
    labels = np.where(onehot.sum(1) > 0, onehot.argmax(1), -1).astype(np.int32)

    dense = np.asarray(feats.todense(), np.float32)
    if normalize_features:
        rs = dense.sum(1, keepdims=True)
        dense = np.divide(dense, rs, out=np.zeros_like(dense), where=rs != 0)

    src, dst = [], []
    for u, nbrs in adj.items():
        for v in nbrs:
            src.append(int(u))
            dst.append(int(v))
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    if len(src) and (src.min() < 0 or dst.min() < 0 or max(src.max(), dst.max()) >= num_nodes):
        raise ValueError(f"{paths['graph']}: node ids outside 0..{num_nodes - 1}.")
    senders, receivers = _dedup_edges(src, dst, num_nodes, symmetric=True, self_loops=self_loops)

    idx = np.arange(num_nodes)
    train_mask = idx < y.shape[0]
    val_mask = (idx >= y.shape[0]) & (idx < y.shape[0] + PLANETOID_NUM_VAL)
    test_mask = np.zeros(num_nodes, bool)
    test_mask[test_index] = True
    graph = to_graphs_tuple(dense, senders, receivers)
    return NodeDataset(name=name, graph=graph, labels=labels, train_mask=train_mask, val_mask=val_mask,
                       test_mask=test_mask, num_classes=int(ally.shape[1]))


# --------------------------------------------------------------------------
# TU datasets
# --------------------------------------------------------------------------


def _read_ints(path: Path, cols: int) -> np.ndarray:
    try:
        arr = np.loadtxt(path, delimiter="," if cols > 1 else None, dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: expected {cols} integer(s) per line ({e}).") from e
    if arr.shape[1] != cols:
        raise ValueError(f"{path}: expected {cols} integer column(s), found {arr.shape[1]}.")
    return arr if cols > 1 else arr[:, 0]


def _tu_download(name: str, d: Path, url: str) -> None:
    """Fetch ``<url>/<name>.zip`` and extract only the ``<name>/<name>_*.txt`` members into ``d``."""
    zpath = d.parent / f"{name}.zip"
    fetch(f"{url.rstrip('/')}/{name}.zip", zpath)
    d.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(zpath) as zf:
            for info in zf.infolist():
                base = info.filename.rsplit("/", 1)[-1]
                if info.is_dir() or not base.startswith(f"{name}_") or not base.endswith(".txt"):
                    continue  # never write a member's own path (no traversal): only known names
                with zf.open(info) as src, open(d / base, "wb") as out:
                    shutil.copyfileobj(src, out)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{zpath}: not a zip archive ({e}); delete it and download again.") from e
    finally:
        zpath.unlink(missing_ok=True)


def load_tu(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False,
            use_node_attr: bool = False, max_degree: Optional[int] = None,
            url: str = TU_URL) -> GraphDataset:
    """Load a TU Dortmund graph-classification dataset from its raw text files.

    Files in ``<data_dir>/<name>/``: ``<name>_A.txt`` (``i, j`` 1-based node ids),
    ``<name>_graph_indicator.txt`` (1-based graph id per node), ``<name>_graph_labels.txt``,
    optional ``<name>_node_labels.txt`` / ``<name>_node_attributes.txt``. Node features:
    one-hot node labels (``label - min``), with ``use_node_attr`` the attributes appended;
    without node labels, one-hot degrees ``0..max_degree`` (default: the dataset's
    maximum; larger degrees are an error). Graph labels are mapped to ``0..C-1`` in sorted
    order (MUTAG's -1/1 -> 0/1). Edges are made symmetric and deduplicated; self-loops dropped.
    """
    root = Path(data_dir) if data_dir is not None else default_graph_data_dir()
    d = root / name
    req = {k: d / f"{name}_{k}.txt" for k in ("A", "graph_indicator", "graph_labels")}
    if download and any(not p.is_file() for p in req.values()):
        _tu_download(name, d, url)
    missing = [str(p) for p in req.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"TU dataset {name}: missing {missing}. Pass download=True (needs internet), "
                                f"or put the raw {name}_*.txt files in {d} (data_dir=..., or ${DATA_DIR_ENV}).")

    edges = _read_ints(req["A"], 2) - 1
    gid = _read_ints(req["graph_indicator"], 1) - 1
    raw_labels = _read_ints(req["graph_labels"], 1)
    num_nodes, num_graphs = len(gid), len(raw_labels)
    if num_nodes == 0 or gid.min() < 0 or gid.max() >= num_graphs:
        raise ValueError(f"{req['graph_indicator']}: graph ids must lie in 1..{num_graphs} (the number of lines "
                         f"of {req['graph_labels'].name}).")
    if np.any(np.diff(gid) < 0):
        raise ValueError(f"{req['graph_indicator']}: graph ids must be non-decreasing (nodes grouped by graph).")
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise ValueError(f"{req['A']}: node ids must lie in 1..{num_nodes} (lines of the graph indicator).")
    if edges.size and np.any(gid[edges[:, 0]] != gid[edges[:, 1]]):
        raise ValueError(f"{req['A']}: an edge joins nodes of two different graphs.")

    senders, receivers = _dedup_edges(edges[:, 0], edges[:, 1], num_nodes, symmetric=True, self_loops=False)
    # _dedup_edges sorts by receiver, and nodes are grouped by graph, so edges are grouped by graph too.
    n_node = np.bincount(gid, minlength=num_graphs).astype(np.int32)
    n_edge = np.bincount(gid[receivers], minlength=num_graphs).astype(np.int32)

    feats = []
    nl_path = d / f"{name}_node_labels.txt"
    if nl_path.is_file():
        nl = _read_ints(nl_path, 1)
        if len(nl) != num_nodes:
            raise ValueError(f"{nl_path}: {len(nl)} lines, expected one per node ({num_nodes}).")
        nl = nl - nl.min()
        feats.append(np.eye(int(nl.max()) + 1, dtype=np.float32)[nl])
    if use_node_attr:
        na_path = d / f"{name}_node_attributes.txt"
        if not na_path.is_file():
            raise FileNotFoundError(f"use_node_attr=True but {na_path} does not exist.")
        try:
            na = np.loadtxt(na_path, delimiter=",", dtype=np.float32, ndmin=2)
        except ValueError as e:
            raise ValueError(f"{na_path}: expected comma-separated floats ({e}).") from e
        if len(na) != num_nodes:
            raise ValueError(f"{na_path}: {len(na)} lines, expected one per node ({num_nodes}).")
        feats.append(na)
    if not feats:
        deg = np.bincount(receivers, minlength=num_nodes)
        top = int(deg.max()) if max_degree is None else int(max_degree)
        if deg.max() > top:
            raise ValueError(f"{name}: a node has degree {deg.max()} > max_degree={top}; raise max_degree.")
        feats.append(np.eye(top + 1, dtype=np.float32)[deg])
    nodes = np.concatenate(feats, axis=1).astype(np.float32)

    classes, labels = np.unique(raw_labels, return_inverse=True)
    return GraphDataset(name=name, nodes=nodes, senders=senders, receivers=receivers, n_node=n_node,
                        n_edge=n_edge, labels=labels.astype(np.int32), num_classes=len(classes))


def with_ppr_view(ds: GraphDataset, alpha: float = 0.2, eps: float = 1e-4, topk: int = 0) -> GraphDataset:
    """``ds`` with a personalised-PageRank diffusion view (graph-level MVGRL), computed once on the host.

    For every graph: ``S = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`` (dense,
    :func:`sslx.augment.graph_views.ppr_matrix_host`), sparsified to the entries ``>= eps``
    (and the ``topk`` largest per row when ``topk > 0``;
    :func:`sslx.augment.graph_views.sparsify_diffusion`). The edge list becomes the *union* of
    the adjacency edges and the kept diffusion entries (diagonal included), sorted by
    (receiver, sender) within each graph, with ``edges [E, 2]`` float32: column 0 is 1 for an
    adjacency edge (else 0), column 1 the diffusion weight ``S[i, j]`` (0 when not kept). The
    nodes, graphs and labels are unchanged; ``n_edge`` counts the union.
    """
    from sslx.augment.graph_views import ppr_matrix_host, sparsify_diffusion

    if ds.edges is not None:
        raise ValueError(f"with_ppr_view: dataset {ds.name!r} already has edge features {ds.edges.shape}; "
                         "pass the plain dataset.")
    senders, receivers, feats, n_edge = [], [], [], []
    for i in range(len(ds)):
        g = ds.graph(i)
        n = int(g.n_node[0])
        adj = np.zeros((n, n), np.float32)
        adj[g.receivers, g.senders] = 1.0
        ds_s, ds_r, ds_w = sparsify_diffusion(ppr_matrix_host(g.senders, g.receivers, n, alpha), eps, topk)
        diff = np.zeros((n, n), np.float64)
        diff[ds_r, ds_s] = ds_w
        r, c = np.nonzero((adj > 0) | (diff > 0))
        off = int(ds._node_offset[i])
        senders.append(c + off)
        receivers.append(r + off)
        feats.append(np.stack([adj[r, c], diff[r, c]], axis=1).astype(np.float32))
        n_edge.append(len(r))
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros((0,), dt)  # noqa: E731
    return GraphDataset(name=ds.name, nodes=ds.nodes, senders=cat(senders, np.int32),
                        receivers=cat(receivers, np.int32), n_node=ds.n_node, n_edge=np.asarray(n_edge, np.int32),
                        labels=ds.labels, num_classes=ds.num_classes,
                        edges=np.concatenate(feats) if feats else np.zeros((0, 2), np.float32))


# --------------------------------------------------------------------------
# Padding to static budgets
# --------------------------------------------------------------------------


def _next_pow2(n: int, minimum: int) -> int:
    n = max(int(n), int(minimum))
    return 1 << (n - 1).bit_length()


def budget(graph: jraph.GraphsTuple, min_nodes: int = 16, min_edges: int = 16, min_graphs: int = 2
           ) -> tuple[int, int, int]:
    """Static (n_node, n_edge, n_graph) sizes for padding ``graph``: each count (+1 padding
    node / graph, as ``jraph.pad_with_graphs`` needs) rounded up to a power of two, so a
    stream of batches compiles only a handful of shapes."""
    n = int(np.sum(graph.n_node)) + 1
    e = int(np.sum(graph.n_edge))
    g = len(graph.n_node) + 1
    return _next_pow2(n, min_nodes), _next_pow2(e, min_edges), _next_pow2(g, min_graphs)


def graph_masks(graph: jraph.GraphsTuple) -> dict[str, np.ndarray]:
    """``node_mask [N]``, ``edge_mask [E]``, ``graph_mask [G]``: True for real entries of a graph
    padded by ``jraph.pad_with_graphs`` (the padding graphs are the trailing ones)."""
    return {"node_mask": np.asarray(jraph.get_node_padding_mask(graph)),
            "edge_mask": np.asarray(jraph.get_edge_padding_mask(graph)),
            "graph_mask": np.asarray(jraph.get_graph_padding_mask(graph))}


def pad_graph(graph: jraph.GraphsTuple, sizes: Optional[tuple[int, int, int]] = None
              ) -> tuple[jraph.GraphsTuple, dict[str, np.ndarray]]:
    """Pad ``graph`` to ``sizes`` (default :func:`budget`) and return it with its masks.

    Padding nodes / edges / graphs are zeros; padding edges join padding nodes only, so a
    message-passing layer's output on real nodes is unchanged.
    """
    n, e, g = sizes if sizes is not None else budget(graph)
    real_n, real_e, real_g = int(np.sum(graph.n_node)), int(np.sum(graph.n_edge)), len(graph.n_node)
    if n < real_n + 1 or e < real_e or g < real_g + 1:
        raise ValueError(f"padding sizes (nodes {n}, edges {e}, graphs {g}) are too small for a graph with "
                         f"{real_n} nodes, {real_e} edges, {real_g} graphs (need > nodes, >= edges, > graphs); "
                         "use budget(graph).")
    padded = jraph.pad_with_graphs(graph, n, e, g)
    return padded, graph_masks(padded)
