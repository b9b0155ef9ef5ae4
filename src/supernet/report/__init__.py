"""Tables and reports for a run directory."""

from supernet.report.evaluation import SPLITS, RunEvaluation, SubnetRow, evaluate_run

__all__ = ["SPLITS", "RunEvaluation", "SubnetRow", "evaluate_run"]
