"""Evaluation of frozen features: weighted kNN, linear probe, batched feature extraction."""

from sslx.eval.node import node_probe
from sslx.eval.graph_level import svm_cross_validation
from sslx.eval.probe import extract_features, knn_accuracy, knn_classify, linear_probe

__all__ = ["knn_classify", "knn_accuracy", "linear_probe", "extract_features"]
__all__ += ["node_probe", "svm_cross_validation"]
from sslx.eval.text import bag_of_words_accuracy, cv_logistic_accuracy, probe_sentences, sentence_features  # noqa: E402

__all__ += ["bag_of_words_accuracy", "cv_logistic_accuracy", "probe_sentences", "sentence_features"]
