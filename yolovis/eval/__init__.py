"""Evaluation: the official YouTube-VIS video AP/AR, per-class figures, tracking metrics, checks and plots."""

from yolovis.eval.checks import ResultProblem, ResultsError, check_results
from yolovis.eval.evaluate import evaluate_files
from yolovis.eval.ytvis_eval import OFFICIAL_KEYS, VISEvaluation, evaluate_results, evaluate_vis, format_table

__all__ = [
    "OFFICIAL_KEYS",
    "ResultProblem",
    "ResultsError",
    "VISEvaluation",
    "check_results",
    "evaluate_files",
    "evaluate_results",
    "evaluate_vis",
    "format_table",
]
