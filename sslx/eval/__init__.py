"""Evaluation of frozen features: weighted kNN, linear probe, batched feature extraction."""

from sslx.eval.probe import extract_features, knn_accuracy, knn_classify, linear_probe

__all__ = ["knn_classify", "knn_accuracy", "linear_probe", "extract_features"]
