"""Metrics: pure functions and torchmetrics classes."""

from nslightning.metrics.ranking import FilteredRanking, average_precision, filtered_ranks

__all__ = ["FilteredRanking", "average_precision", "filtered_ranks"]
