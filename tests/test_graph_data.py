"""Graph data: restricted unpickling, Planetoid and TU loaders (synthetic files and the real
ones in ../shared/data), downloads through file:// URLs, padding to static budgets."""
import os
import pickle
import zipfile
from collections import defaultdict

import jraph
import numpy as np
import pytest
import scipy.sparse as sp

from sslx.data import graph as G


# --------------------------------------------------------------------------- restricted unpickler

class _SystemCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalCall:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": _SystemCall(marker)}, protocol=protocol))
    assert not marker.exists()
    with pytest.raises(G.UnsafePickleError, match=r"evil\.pkl.*(posix|os|nt)\.system"):
        G.restricted_load(path)
    assert not marker.exists()  # the reduce call never ran
    path.write_bytes(pickle.dumps(_EvalCall(), protocol=protocol))
    with pytest.raises(G.UnsafePickleError, match="eval"):
        G.restricted_load(path)


def test_restricted_unpickler_reads_what_planetoid_files_hold(tmp_path):
    adj = defaultdict(list, {0: [1, 2], 2: [0]})
    obj = {"x": sp.csr_matrix(np.eye(3, dtype=np.float32)), "y": np.arange(6, dtype=np.int32).reshape(2, 3),
           "graph": adj}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    back = G.restricted_load(path)
    np.testing.assert_array_equal(back["x"].toarray(), np.eye(3))
    np.testing.assert_array_equal(back["y"], obj["y"])
    assert dict(back["graph"]) == dict(adj)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match=r"ok\.pkl"):
        G.restricted_load(path)


# --------------------------------------------------------------------------- Planetoid (synthetic)

def _write_planetoid(d, name="cora"):
    """A 10-node Planetoid-format dataset: allx rows 0..5 (x = the first 2), test.index
    [8, 6, 9] (node 7 in the test range has no features / label), 3 classes, 4 features."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    allx = (rng.random((6, 4)) < 0.5).astype(np.float32)
    allx[:, 0] = 1.0  # no all-zero rows
    tx = np.array([[1, 0, 0, 1], [0, 2, 0, 0], [0, 0, 3, 1]], np.float32)
    ally = np.eye(3, dtype=np.int32)[[0, 1, 2, 0, 1, 2]]
    ty = np.eye(3, dtype=np.int32)[[2, 1, 0]]
    graph = defaultdict(list, {0: [1, 1, 2], 1: [0], 2: [2, 8], 6: [9], 9: [6, 5]})  # dup, self-loop, both dirs
    files = {"x": sp.csr_matrix(allx[:2]), "tx": sp.csr_matrix(tx), "allx": sp.csr_matrix(allx),
             "y": ally[:2], "ty": ty, "ally": ally, "graph": graph}
    for ext, obj in files.items():
        (d / f"ind.{name}.{ext}").write_bytes(pickle.dumps(obj, protocol=4))
    (d / f"ind.{name}.test.index").write_text("8\n6\n9\n")
    return allx, tx


def test_planetoid_synthetic_layout_split_and_edges(tmp_path):
    allx, tx = _write_planetoid(tmp_path / "cora")
    ds = G.load_planetoid("cora", tmp_path, normalize_features=False)
    assert ds.num_nodes == 10 and ds.num_features == 4 and ds.num_classes == 3
    x = ds.graph.nodes
    np.testing.assert_array_equal(x[:6], allx)
    np.testing.assert_array_equal(x[[8, 6, 9]], tx)          # tx rows go to test.index
    np.testing.assert_array_equal(x[7], 0.0)                 # isolated test-range id: zero row
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 0, 1, 2, 1, -1, 2, 0])
    np.testing.assert_array_equal(np.flatnonzero(ds.train_mask), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(ds.val_mask), np.arange(2, 10))  # "next 500", capped at N
    np.testing.assert_array_equal(np.flatnonzero(ds.test_mask), [6, 8, 9])
    edges = set(zip(ds.graph.senders.tolist(), ds.graph.receivers.tolist()))
    undirected = {(0, 1), (0, 2), (2, 8), (6, 9), (5, 9)}
    assert edges == undirected | {(b, a) for a, b in undirected}  # deduplicated, both directions, no loops
    assert np.all(np.diff(ds.graph.receivers) >= 0)
    assert isinstance(ds.graph, jraph.GraphsTuple) and ds.graph.n_edge.tolist() == [10]

    norm = G.load_planetoid("cora", tmp_path, normalize_features=True, self_loops=True)
    np.testing.assert_allclose(norm.graph.nodes[:6].sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(norm.graph.nodes[8], tx[0] / tx[0].sum())
    np.testing.assert_array_equal(norm.graph.nodes[7], 0.0)
    loops = norm.graph.senders == norm.graph.receivers
    assert loops.sum() == 10 and norm.num_edges == 20


def test_planetoid_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="unknown"):
        G.load_planetoid("nope", tmp_path)
    _write_planetoid(tmp_path / "cora")
    (tmp_path / "cora" / "ind.cora.ty").unlink()
    with pytest.raises(FileNotFoundError, match=r"ind\.cora\.ty.*download=True"):
        G.load_planetoid("cora", tmp_path)
    _write_planetoid(tmp_path / "cora")
    (tmp_path / "cora" / "ind.cora.graph").write_bytes(pickle.dumps(_SystemCall(tmp_path / "m"), protocol=4))
    with pytest.raises(G.UnsafePickleError, match=r"ind\.cora\.graph"):
        G.load_planetoid("cora", tmp_path)
    assert not (tmp_path / "m").exists()
    _write_planetoid(tmp_path / "cora")
    (tmp_path / "cora" / "ind.cora.test.index").write_text("8\n6\n")
    with pytest.raises(ValueError, match=r"ind\.cora\.test\.index"):
        G.load_planetoid("cora", tmp_path)
    _write_planetoid(tmp_path / "cora")
    (tmp_path / "cora" / "ind.cora.y").write_bytes(pickle.dumps([1, 2], protocol=4))
    with pytest.raises(ValueError, match=r"ind\.cora\.y"):
        G.load_planetoid("cora", tmp_path)


def test_planetoid_download_via_file_url(tmp_path):
    src = tmp_path / "mirror"
    _write_planetoid(src / "cora")
    flat = tmp_path / "flat"  # the public mirror is one flat folder of ind.* files
    flat.mkdir()
    for p in (src / "cora").iterdir():
        (flat / p.name).write_bytes(p.read_bytes())
    dest = tmp_path / "data"
    with pytest.raises(FileNotFoundError):
        G.load_planetoid("cora", dest)
    ds = G.load_planetoid("cora", dest, download=True, url=flat.as_uri())
    assert ds.num_nodes == 10
    assert sorted(p.name for p in (dest / "cora").iterdir()) == sorted(p.name for p in flat.iterdir())
    with pytest.raises(RuntimeError, match="ind.citeseer.x"):
        G.load_planetoid("citeseer", dest, download=True, url=flat.as_uri())


def test_planetoid_download_uses_the_fetch_hook(tmp_path, monkeypatch):
    src = tmp_path / "src" / "cora"
    _write_planetoid(src)
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((src / url.rsplit("/", 1)[-1]).read_bytes())

    monkeypatch.setattr(G, "fetch", fake_fetch)
    (tmp_path / "d" / "cora").mkdir(parents=True)
    (tmp_path / "d" / "cora" / "ind.cora.x").write_bytes((src / "ind.cora.x").read_bytes())
    G.load_planetoid("cora", tmp_path / "d", download=True)
    assert len(calls) == 7 and all(c.startswith(G.PLANETOID_URL) for c in calls)  # only the missing files


# --------------------------------------------------------------------------- Planetoid (real files)

def test_real_cora_and_citeseer_counts(shared_data):
    cora = G.load_planetoid("cora", shared_data / "graph")
    assert (cora.num_nodes, cora.num_edges, cora.num_features, cora.num_classes) == (2708, 10556, 1433, 7)
    assert (cora.train_mask.sum(), cora.val_mask.sum(), cora.test_mask.sum()) == (140, 500, 1000)
    assert not (cora.train_mask & cora.test_mask).any() and not (cora.val_mask & cora.test_mask).any()
    np.testing.assert_allclose(cora.graph.nodes.sum(1), 1.0, rtol=1e-5)
    s, r = cora.graph.senders, cora.graph.receivers
    assert set(zip(s.tolist(), r.tolist())) == set(zip(r.tolist(), s.tolist())) and not np.any(s == r)
    assert np.bincount(cora.labels[cora.train_mask]).tolist() == [20] * 7
    cite = G.load_planetoid("citeseer", shared_data / "graph")
    assert (cite.num_nodes, cite.num_edges, cite.num_features, cite.num_classes) == (3327, 9104, 3703, 6)
    assert (cite.train_mask.sum(), cite.val_mask.sum(), cite.test_mask.sum()) == (120, 500, 1000)
    assert (cite.labels < 0).sum() == 15 and not cite.test_mask[cite.labels < 0].any()


# --------------------------------------------------------------------------- TU

def _write_tu(d, name="TOY", node_labels=True, label_values=(-1, 1, -1)):
    """3 graphs: a triangle (nodes 1-3), a path 4-5 (listed twice), and a single node 6."""
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}_A.txt").write_text("1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n4, 5\n5, 4\n")
    (d / f"{name}_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n3\n")
    (d / f"{name}_graph_labels.txt").write_text("".join(f"{v}\n" for v in label_values))
    if node_labels:
        (d / f"{name}_node_labels.txt").write_text("1\n3\n1\n2\n2\n3\n")


def test_tu_synthetic_features_labels_and_dedup(tmp_path):
    _write_tu(tmp_path / "TOY")
    ds = G.load_tu("TOY", tmp_path)
    assert len(ds) == 3 and ds.num_classes == 2
    np.testing.assert_array_equal(ds.labels, [0, 1, 0])                  # -1 / 1 -> 0 / 1
    np.testing.assert_array_equal(ds.nodes, np.eye(3)[[0, 2, 0, 1, 1, 2]])  # one-hot of label - min
    np.testing.assert_array_equal(ds.n_node, [3, 2, 1])
    np.testing.assert_array_equal(ds.n_edge, [6, 2, 0])                 # duplicates dropped
    g1 = ds.graph(1)
    assert sorted(zip(g1.senders.tolist(), g1.receivers.tolist())) == [(0, 1), (1, 0)]
    b = ds.batch([2, 0])
    assert b.n_node.tolist() == [1, 3] and b.globals.tolist() == [0, 0]
    with pytest.raises(IndexError):
        ds.graph(3)


def test_tu_degree_features_when_no_node_labels(tmp_path):
    _write_tu(tmp_path / "TOY", node_labels=False, label_values=(3, 1, 2))
    ds = G.load_tu("TOY", tmp_path)
    np.testing.assert_array_equal(ds.nodes, np.eye(3)[[2, 2, 2, 1, 1, 0]])  # degree one-hot 0..max
    np.testing.assert_array_equal(ds.labels, [2, 0, 1])
    assert ds.num_classes == 3
    wide = G.load_tu("TOY", tmp_path, max_degree=5)
    assert wide.num_features == 6
    with pytest.raises(ValueError, match="max_degree"):
        G.load_tu("TOY", tmp_path, max_degree=1)


def test_tu_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="TOY_A.txt"):
        G.load_tu("TOY", tmp_path)
    _write_tu(tmp_path / "TOY")
    (tmp_path / "TOY" / "TOY_A.txt").write_text("1, x\n")
    with pytest.raises(ValueError, match="TOY_A.txt"):
        G.load_tu("TOY", tmp_path)
    _write_tu(tmp_path / "TOY")
    (tmp_path / "TOY" / "TOY_A.txt").write_text("1, 4\n")
    with pytest.raises(ValueError, match="two different graphs"):
        G.load_tu("TOY", tmp_path)
    _write_tu(tmp_path / "TOY")
    (tmp_path / "TOY" / "TOY_node_labels.txt").write_text("1\n2\n")
    with pytest.raises(ValueError, match="TOY_node_labels.txt"):
        G.load_tu("TOY", tmp_path)
    _write_tu(tmp_path / "TOY")
    (tmp_path / "TOY" / "TOY_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n4\n")
    with pytest.raises(ValueError, match="graph_indicator"):
        G.load_tu("TOY", tmp_path)


def test_tu_download_from_a_zip_via_file_url(tmp_path):
    src = tmp_path / "src"
    _write_tu(src / "TOY")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "TOY.zip", "w") as zf:
        for p in (src / "TOY").iterdir():
            zf.write(p, f"TOY/{p.name}")
        zf.writestr("../evil_TOY_A.txt", "1, 2\n")  # never written outside the dataset folder
    ds = G.load_tu("TOY", tmp_path / "data", download=True, url=mirror.as_uri())
    assert len(ds) == 3 and ds.n_edge.tolist() == [6, 2, 0]
    assert not (tmp_path / "evil_TOY_A.txt").exists() and not (tmp_path / "data" / "TOY.zip").exists()


def test_real_tu_counts(shared_data):
    mutag = G.load_tu("MUTAG", shared_data / "graph")
    assert len(mutag) == 188 and mutag.nodes.shape == (3371, 7) and len(mutag.senders) == 7442
    assert np.bincount(mutag.labels).tolist() == [63, 125]
    imdb = G.load_tu("IMDB-BINARY", shared_data / "graph")
    assert len(imdb) == 1000 and len(imdb.senders) == 193062 and imdb.num_classes == 2
    np.testing.assert_array_equal(imdb.nodes.sum(1), 1.0)  # degree one-hot
    np.testing.assert_array_equal(imdb.nodes.argmax(1), np.bincount(imdb.receivers, minlength=len(imdb.nodes)))


# --------------------------------------------------------------------------- padding

def test_padding_budgets_and_masks(tmp_path):
    _write_tu(tmp_path / "TOY")
    ds = G.load_tu("TOY", tmp_path)
    b = ds.batch([0, 1, 2])
    assert G.budget(b) == (16, 16, 4)
    assert G.budget(b, min_nodes=1, min_edges=1, min_graphs=1) == (8, 8, 4)  # 6+1 -> 8, 8 -> 8, 3+1 -> 4
    padded, masks = G.pad_graph(b)
    assert padded.nodes.shape == (16, 3) and padded.senders.shape == (16,) and padded.n_node.shape == (4,)
    assert masks["node_mask"].sum() == 6 and masks["edge_mask"].sum() == 8 and masks["graph_mask"].sum() == 3
    # padding edges join padding nodes only
    assert np.all(masks["node_mask"][padded.senders[~masks["edge_mask"]]] == 0)
    np.testing.assert_array_equal(padded.nodes[:6], b.nodes)
    with pytest.raises(ValueError, match="too small"):
        G.pad_graph(b, (6, 16, 4))


def test_padded_batches_share_one_budget(shared_data):
    mutag = G.load_tu("MUTAG", shared_data / "graph")
    sizes = mutag.max_budget(32)
    rng = np.random.default_rng(0)
    for _ in range(3):
        idx = rng.choice(len(mutag), 32, replace=False)
        g, masks = mutag.padded_batch(idx, sizes)
        assert (g.nodes.shape[0], g.senders.shape[0], g.n_node.shape[0]) == sizes
        assert masks["graph_mask"].sum() == 32 and masks["node_mask"].sum() == mutag.n_node[idx].sum()
        np.testing.assert_array_equal(g.globals[:32], mutag.labels[idx])
    with pytest.raises(ValueError, match="batch_size"):
        mutag.max_budget(0)
