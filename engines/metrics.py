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
    positive where the first run has more. Pass :func:`shared_test_images` of two runs
    tested on different images, or the difference mixes models with test sets."""
    return confusion_matrix(predictions, normalize) - confusion_matrix(other, normalize)


def shared_test_images(
    predictions: pd.DataFrame, other: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' predictions for the test images both were tested on (by ``index``).

    A run with ``--test-limit N`` is tested on the first N images; compared on all of their
    own images, a run on 500 and one on 10,000 differ by their test sets as much as by their
    models (a digit the 500 images hold few of swings by whole points).
    """
    common = np.intersect1d(predictions["index"], other["index"])
    return (
        predictions[predictions["index"].isin(common)],
        other[other["index"].isin(common)],
    )


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the share of each true digit); the row of a digit with
    no test images is NaN (undefined), not a row of measured zeros."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.full(matrix.shape, np.nan), where=totals > 0)


def per_class_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support per digit.

    Undefined values are NaN, not 0: the precision of a digit the model never predicted, the
    recall of one with no test images, and the F1 of either (a 0 would read as measured).
    F1 is 0 when precision and recall are both 0.
    """
    matrix = confusion_matrix(predictions)
    hits = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)  # NaN if either is undefined
    f1[(precision == 0) & (recall == 0)] = 0.0  # defined, and as bad as it gets
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
    """``numerator / denominator``, NaN where the denominator is 0 (or NaN)."""
    denominator = np.asarray(denominator, dtype=float)
    return np.divide(numerator, denominator, out=np.full(DIGITS, np.nan), where=denominator > 0)
