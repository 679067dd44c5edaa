"""Defaults shared by every config. Each objective's file overrides what it needs."""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 256  # global, over all devices and processes

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "digits"
    c.dataset.data_dir = config_dict.placeholder(str)  # None: $SSLX_DATA_DIR or ../shared/data/image
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.dataset.download = False
    c.dataset.image_size = 0  # > 0: host resizes the shorter side and centre-crops (variable-size tfds images)

    c.model = ml_collections.ConfigDict()
    c.model.encoder = "resnet18"
    c.model.encoder_kwargs = {}
    c.model.dtype = "float32"
    c.model.sync_bn = True  # BatchNorm statistics over the global batch
    c.model.proj_hidden = (2048,)
    c.model.proj_dim = 128

    c.augment = ml_collections.ConfigDict()
    c.augment.crop_size = 32
    c.augment.crop_scale = (0.08, 1.0)
    c.augment.flip_p = 0.5
    c.augment.jitter_p = 0.8
    c.augment.jitter_strength = 0.5
    c.augment.grayscale_p = 0.2
    c.augment.blur_p = 0.0
    c.augment.solarize_p = 0.0
    c.augment.identity = False  # True: no augmentation, only a resize to crop_size

    c.method = ml_collections.ConfigDict()
    c.method.name = "simclr"
    c.method.temperature = 0.5

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"
    c.optimizer.lr = 1e-3
    c.optimizer.lr_batch_scaling = False
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 0
    c.optimizer.end_lr_factor = 0.0
    c.optimizer.weight_decay = 0.0
    c.optimizer.momentum = 0.9
    c.optimizer.grad_clip = 0.0
    c.optimizer.accum_steps = 1

    c.train = ml_collections.ConfigDict()
    c.train.num_epochs = 10
    c.train.num_steps = 0  # > 0 overrides num_epochs
    c.train.parallel = "jit"  # or "pmap"
    c.train.log_every = 10
    c.train.checkpoint_every = 500
    c.train.keep_checkpoints = 3
    c.train.async_checkpoint = True
    c.train.eval_every = 0  # kNN monitor every N steps (0: only at the end)
    c.train.prefetch = 2

    c.eval = ml_collections.ConfigDict()
    c.eval.knn_k = 200
    c.eval.knn_temperature = 0.1
    c.eval.probe_epochs = 100
    c.eval.batch_size = 512
    c.eval.max_train_examples = 0  # > 0: subsample the train features for the final probe
    c.eval.at_end = True  # linear probe + kNN after training
    c.eval.compare_random_init = True

    c.distributed = ml_collections.ConfigDict()
    c.distributed.initialize = False
    c.distributed.coordinator_address = config_dict.placeholder(str)
    c.distributed.num_processes = config_dict.placeholder(int)
    c.distributed.process_id = config_dict.placeholder(int)
    return c


DATASET_PRESETS = ("digits", "mnist", "fashion_mnist", "cifar10_subset", "cifar10", "imagenet")


def apply_dataset_preset(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
    """The settings every objective shares for a dataset; each config then overrides its own.

    ``digits``: scikit-learn's 8x8 digits, a small strided convnet, AdamW, kNN k=20.
    ``mnist`` / ``fashion_mnist``: 28 px, a small convnet, AdamW, probe on 10k train images.
    ``cifar10_subset``: the 4000-image bit-exact subset, a narrow CIFAR-stem ResNet-18.
    ``cifar10``: tfds CIFAR-10, ResNet-18 with the CIFAR stem.
    ``imagenet``: tfds ``imagenet2012`` (shorter side 256 + centre crop on the host, 224 crops on
    device), ResNet-50 in bfloat16.
    """
    if arg == "digits":
        c.dataset.name = "digits"
        c.batch_size = 256
        c.model.encoder = "small_convnet"
        c.model.encoder_kwargs = {"features": (32, 64, 128), "strides": (1, 2, 1)}
        c.augment.crop_size = 8
        c.augment.crop_scale = (0.4, 1.0)
        c.augment.flip_p = 0.0
        c.augment.grayscale_p = 0.0
        c.augment.blur_p = 0.0
        c.optimizer.name = "adamw"
        c.optimizer.lr = 2e-3
        c.optimizer.weight_decay = 1e-4
        c.train.checkpoint_every = 200
        c.eval.knn_k = 20  # ~144 training images per class: k=200 would mix classes
    elif arg in ("mnist", "fashion_mnist"):
        c.dataset.name = arg
        c.batch_size = 256
        c.model.encoder = "small_convnet"
        c.model.encoder_kwargs = {"features": (32, 64, 128)}
        c.augment.crop_size = 28
        c.augment.crop_scale = (0.3, 1.0)
        c.augment.flip_p = 0.0
        c.optimizer.name = "adamw"
        c.optimizer.lr = 2e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 100
        c.eval.max_train_examples = 10000
    elif arg == "cifar10_subset":
        c.dataset.name = "cifar10_subset"
        c.batch_size = 256
        c.model.encoder = "resnet18"
        c.model.encoder_kwargs = {"stem": "cifar", "width": 16}
        c.augment.crop_size = 32
        c.optimizer.name = "adamw"
        c.optimizer.lr = 1e-3
        c.optimizer.weight_decay = 1e-4
        c.optimizer.warmup_steps = 50
    elif arg == "cifar10":
        c.dataset.name = "cifar10"
        c.model.encoder = "resnet18"
        c.model.encoder_kwargs = {"stem": "cifar"}
        c.augment.crop_size = 32
        c.train.eval_every = 5000
    elif arg == "imagenet":
        c.dataset.name = "imagenet2012"
        c.dataset.eval_split = "validation"
        c.dataset.image_size = 256  # host: shorter side 256 + centre crop; device: random resized crop 224
        c.model.encoder = "resnet50"
        c.model.encoder_kwargs = {"stem": "imagenet"}
        c.model.dtype = "bfloat16"
        c.augment.crop_size = 224
        c.train.checkpoint_every = 2000
        c.train.eval_every = 0
    else:
        raise ValueError(f"dataset preset {arg!r} is unknown; use one of {', '.join(DATASET_PRESETS)}.")
    return c


def node_level_config(method: str, dataset: str, *, features=(512,), lr: float = 1e-3, weight_decay: float = 0.0,
                      max_epochs: int, patience: int = 20) -> ml_collections.ConfigDict:
    """The block every full-graph node-level objective shares (DGI's transductive protocol).

    One Planetoid graph per step (``batch_size`` 1) with row-normalised features, a GCN with
    widths ``features``, constant-rate Adam(W) at ``lr``, at most ``max_epochs`` full-graph
    epochs with early stopping on the training loss after ``patience`` epochs without
    improvement (0: none); probe: logistic regression (Adam lr 0.01, 100 epochs, no weight
    decay) on the public train nodes, 50 runs. Each config then sets its own method keys.
    """
    c = base_config()
    c.method.name = method
    del c.method.temperature
    c.dataset.name = dataset
    c.dataset.normalize_features = True
    c.batch_size = 1  # one full graph per step
    c.model.encoder = "gcn"
    c.model.features = tuple(features)
    c.optimizer.name = "adamw"
    c.optimizer.lr = lr
    c.optimizer.weight_decay = weight_decay
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.train.max_epochs = max_epochs
    c.train.patience = patience
    c.eval.probe_runs = 50
    c.eval.probe_epochs = 100
    c.eval.probe_lr = 0.01
    c.eval.probe_weight_decay = 0.0
    return c


TU_DATASETS = {"mutag": "MUTAG", "imdb_binary": "IMDB-BINARY", "ptc_mr": "PTC_MR", "proteins": "PROTEINS",
               "imdb_multi": "IMDB-MULTI"}


def graph_level_config(method: str, arg: str) -> ml_collections.ConfigDict:
    """The block the unsupervised graph-level objectives share (InfoGraph's setting and protocol).

    TU dataset ``TU_DATASETS[arg]`` (node labels one-hot; the IMDB sets, which have none, the
    one-hot node degree, as issue 5 specifies), batches of 128 graphs, a 5-layer GIN of width 32
    with synced BatchNorm and PyTorch's Linear initialisation, Adam lr 1e-3, 20 epochs;
    evaluation: 10-fold CV of an RBF SVM with C from inner 5-fold CV. Each config then sets its own method keys.
    """
    c = base_config()
    c.method.name = method
    del c.method.temperature
    c.dataset.name = TU_DATASETS[arg]
    c.dataset.node_features = "degree" if arg.startswith("imdb") else "labels"
    c.batch_size = 128
    c.model.encoder = "gin"
    c.model.hidden = 32
    c.model.num_layers = 5
    c.model.sync_bn = True
    c.model.init = "torch"  # PyTorch's nn.Linear initialisation, as the authors' code ('flax': flax defaults)
    del c.model.proj_hidden, c.model.proj_dim
    c.optimizer.name = "adamw"  # weight_decay 0: Adam
    c.optimizer.lr = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "constant"
    c.optimizer.warmup_steps = 0
    c.train.num_epochs = 20
    c.eval.kernel = "rbf"
    c.eval.folds = 10
    c.eval.inner_folds = 5
    c.eval.at_end = True
    return c
