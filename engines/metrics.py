"""Classification metrics computed from a run's ``test_predictions.parquet``.

Kept here (not in the dashboard) so the report, notebooks and tests compute the same numbers
from the same table: one row per test image with ``label`` (true digit) and ``predicted``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engines.store import PROB_COLUMNS

DIGITS = 10


def confusion_matrix(predictions: pd.DataFrame, normalize: bool = False) -> np.ndarray:
    """10x10 counts: row = true digit, column = predicted digit; with ``normalize``, each
    row as shares of that true digit (see :func:`normalize_rows`)."""
    labels = predictions["label"].to_numpy(dtype=np.int64)
    predicted = predictions["predicted"].to_numpy(dtype=np.int64)
    cells = np.bincount(labels * DIGITS + predicted, minlength=DIGITS * DIGITS)
    matrix = cells.reshape(DIGITS, DIGITS)
    return normalize_rows(matrix) if normalize else matrix


def confusion_difference(
    predictions: pd.DataFrame, other: pd.DataFrame, normalize: bool = False
) -> np.ndarray:
    """One run's confusion matrix minus another's (counts, or shares with ``normalize``):
    positive where the first run has more."""
    return confusion_matrix(predictions, normalize) - confusion_matrix(other, normalize)


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the share of each true digit); empty rows stay 0."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)


def per_class_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support per digit.

    A digit that is never predicted has precision 0, one that never occurs has recall 0,
    and F1 is 0 when precision and recall are both 0 (no division-by-zero NaNs).
    """
    matrix = confusion_matrix(predictions)
    hits = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return pd.DataFrame(
        {
            "digit": np.arange(DIGITS),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
    )


def mistakes(predictions: pd.DataFrame) -> pd.DataFrame:
    """The misclassified test images, most confident mistake first, with ``confidence``:
    the probability the model gave its (wrong) predicted digit."""
    wrong = predictions[predictions["label"] != predictions["predicted"]]
    wrong = wrong.assign(confidence=wrong[PROB_COLUMNS].max(axis=1))
    return wrong.sort_values("confidence", ascending=False, kind="stable")


def accuracy(predictions: pd.DataFrame) -> float:
    """Share of test images whose predicted digit is the true one."""
    return float((predictions["label"] == predictions["predicted"]).mean())


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    denominator = np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.zeros(DIGITS), where=denominator > 0)
