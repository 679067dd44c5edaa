"""Pure loss functions (arrays in, scalar and aux dict out)."""
from sslx.losses.amdim import amdim_loss, amdim_nce, tanh_clip
from sslx.losses.classification import accuracy, softmax_cross_entropy
from sslx.losses.clustering import normalized_mutual_info, uniform_cluster_weights
from sslx.losses.contrastive import info_nce, l2_normalize, moco_info_nce, nt_xent
from sslx.losses.cpc import cpc_loss
from sslx.losses.graph import dgi_bce, grace_loss, jsd_mi
from sslx.losses.graph_mi import (gmi_edge_loss, gmi_edge_loss_sampled, gmi_jsd, merit_cross_network,
                                 merit_cross_view, merit_loss, mvgrl_bce)
from sslx.losses.inpainting import (discriminator_loss, generator_adversarial_loss, masked_weighted_l2,
                                   overlap_weight_map)
from sslx.losses.regression import byol_loss
from sslx.losses.swav import sinkhorn, swav_loss

__all__ = ["amdim_loss", "amdim_nce", "byol_loss", "cpc_loss", "info_nce", "l2_normalize", "moco_info_nce",
           "nt_xent", "sinkhorn", "swav_loss", "tanh_clip"]
__all__ += ["accuracy", "softmax_cross_entropy"]
__all__ += ["dgi_bce", "grace_loss", "jsd_mi"]
__all__ += ["gmi_edge_loss", "gmi_edge_loss_sampled", "gmi_jsd", "merit_cross_network", "merit_cross_view", "merit_loss", "mvgrl_bce"]
__all__ += ["normalized_mutual_info", "uniform_cluster_weights"]
__all__ += ["discriminator_loss", "generator_adversarial_loss", "masked_weighted_l2", "overlap_weight_map"]
from sslx.losses.text import token_cross_entropy  # noqa: E402

__all__ += ["token_cross_entropy"]
from sslx.losses.word2vec import negative_sampling_loss  # noqa: E402

__all__ += ["negative_sampling_loss"]
from sslx.losses.graph_proto import (graphlog_graph_nce, graphlog_node_nce, hierarchical_kmeans,  # noqa: E402
                                     hierarchical_proto_nce, spherical_kmeans)

__all__ += ["graphlog_graph_nce", "graphlog_node_nce", "hierarchical_kmeans", "hierarchical_proto_nce",
            "spherical_kmeans"]
from sslx.losses.text_pairs import candidate_info_nce, neighbour_contrastive_loss  # noqa: E402

__all__ += ["candidate_info_nce", "neighbour_contrastive_loss"]
