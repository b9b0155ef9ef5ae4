"""Tables and reports for a run directory."""

from supernet.report.evaluation import SPLITS, RunEvaluation, SubnetRow, evaluate_run
from supernet.report.latency import plot_latency_validation

__all__ = ["SPLITS", "RunEvaluation", "SubnetRow", "evaluate_run", "plot_latency_validation"]
