"""Offline evaluation: replay recorded traces through the Monitor and report.

``data`` (traces, splits, folds) → ``replay`` (one Monitor pass per trace, each policy on the
same records; ``oracle`` for the evaluation-only policies that need gold) → ``tally`` and
``summary`` (accuracy, tokens saved, regret) → ``calibrate`` (parameters under an accuracy
budget). ``pool`` runs the work in worker processes.
"""
