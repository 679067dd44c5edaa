"""Training core: state, optimisers, the compiled step, the loop."""
from sslx.train.optim import decay_mask, make_optimizer, make_schedule
from sslx.train.parallel import maybe_initialize_distributed
from sslx.train.state import TrainState, create_train_state
from sslx.train.step import ParallelStep, check_global_batch, make_step_fn

__all__ = ["decay_mask", "make_optimizer", "make_schedule", "maybe_initialize_distributed",
           "TrainState", "create_train_state", "ParallelStep", "check_global_batch", "make_step_fn"]
from sslx.train.graph_level import embed_dataset, load_graph_dataset, train_graph_level  # noqa: E402

__all__ += ["embed_dataset", "load_graph_dataset", "train_graph_level"]
