"""Evaluation of generators: feature spaces, metrics and the evaluator used by every run."""

from gancompare.evaluation.evaluator import Evaluator

__all__ = ["Evaluator"]
