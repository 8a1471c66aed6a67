"""Confusion matrix and per-class metrics from a predictions table with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engines import metrics


def predictions(labels: list[int], predicted: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"index": range(len(labels)), "label": labels, "predicted": predicted})


# true 0 0 1 1 2 2 2 / predicted 0 1 1 1 2 0 2
SMALL = predictions([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2])


def test_confusion_matrix_counts_true_digits_in_rows_and_predictions_in_columns() -> None:
    expected = np.zeros((10, 10), dtype=int)
    expected[0, 0], expected[0, 1] = 1, 1
    expected[1, 1] = 2
    expected[2, 2], expected[2, 0] = 2, 1

    np.testing.assert_array_equal(metrics.confusion_matrix(SMALL), expected)


def test_confusion_matrix_adds_up_to_the_number_of_images() -> None:
    rng = np.random.default_rng(0)
    frame = predictions(list(rng.integers(0, 10, 500)), list(rng.integers(0, 10, 500)))

    matrix = metrics.confusion_matrix(frame)

    assert matrix.shape == (10, 10)
    assert matrix.sum() == 500
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(frame["label"], minlength=10))


def test_per_class_metrics_match_hand_computed_precision_recall_f1() -> None:
    table = metrics.per_class_metrics(SMALL).set_index("digit")

    assert table.loc[0, "precision"] == pytest.approx(1 / 2)  # predicted 0 twice, right once
    assert table.loc[0, "recall"] == pytest.approx(1 / 2)
    assert table.loc[0, "f1"] == pytest.approx(1 / 2)
    assert table.loc[1, "precision"] == pytest.approx(2 / 3)
    assert table.loc[1, "recall"] == pytest.approx(1.0)
    assert table.loc[1, "f1"] == pytest.approx(0.8)
    assert table.loc[2, "precision"] == pytest.approx(1.0)
    assert table.loc[2, "recall"] == pytest.approx(2 / 3)
    assert table.loc[2, "f1"] == pytest.approx(0.8)
    assert list(table["support"]) == [2, 2, 3, 0, 0, 0, 0, 0, 0, 0]


def test_undefined_precision_recall_and_f1_are_nan_not_a_measured_zero() -> None:
    frame = predictions([3, 3, 4], [9, 9, 4])  # 3 is never predicted, 9 never the truth

    table = metrics.per_class_metrics(frame).set_index("digit")

    assert np.isnan(table.loc[3, "precision"]) and table.loc[3, "recall"] == 0.0
    assert table.loc[9, "precision"] == 0.0 and np.isnan(table.loc[9, "recall"])
    assert np.isnan(table.loc[3, "f1"]) and np.isnan(table.loc[9, "f1"])
    assert table.loc[4, ["precision", "recall", "f1"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc[0, ["precision", "recall", "f1"]].isna().all()  # neither seen nor predicted


def test_f1_is_zero_when_a_digit_is_both_predicted_and_present_but_never_right() -> None:
    frame = predictions([3, 5], [5, 3])

    table = metrics.per_class_metrics(frame).set_index("digit")

    assert table.loc[3, ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]


def test_normalized_rows_are_shares_of_each_true_digit() -> None:
    shares = metrics.normalize_rows(metrics.confusion_matrix(SMALL))

    np.testing.assert_allclose(shares[:3].sum(axis=1), 1.0)
    assert shares[2, 0] == pytest.approx(1 / 3)
    assert np.isnan(shares[3:]).all()  # digits with no test images: undefined, not 0 %


def test_accuracy_is_the_share_of_right_predictions() -> None:
    assert metrics.accuracy(SMALL) == pytest.approx(5 / 7)


def test_confusion_difference_is_positive_where_the_first_run_has_more() -> None:
    other = predictions([0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 2, 2, 2])  # all right

    counts = metrics.confusion_difference(SMALL, other)
    shares = metrics.confusion_difference(SMALL, other, normalize=True)

    assert counts[0, 1] == 1 and counts[0, 0] == -1  # SMALL's 0 → 1 mistake
    assert counts[2, 0] == 1 and counts[2, 2] == -1
    assert counts.sum() == 0
    assert shares[2, 0] == pytest.approx(1 / 3) and shares[2, 2] == pytest.approx(-1 / 3)


def test_mistakes_lists_only_wrong_predictions_most_confident_first() -> None:
    frame = predictions([0, 1, 2, 3], [0, 7, 5, 8])
    given = [0.9, 0.6, 0.95, 0.4]
    for digit in range(10):
        frame[f"p{digit}"] = 0.0
    for row, (digit, p) in enumerate(zip(frame["predicted"], given, strict=True)):
        frame.loc[row, f"p{digit}"] = p

    wrong = metrics.mistakes(frame)

    assert wrong["label"].tolist() == [2, 1, 3]  # the right answer (label 0) is not a mistake
    assert wrong["confidence"].tolist() == [0.95, 0.6, 0.4]


def test_runs_tested_on_different_images_are_compared_on_the_ones_they_share() -> None:
    everything = predictions([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 9])
    first_four = predictions([0, 1, 2, 3], [0, 7, 2, 3])  # as with --test-limit 4

    mine, theirs = metrics.shared_test_images(everything, first_four)

    assert mine["index"].tolist() == theirs["index"].tolist() == [0, 1, 2, 3]
    difference = metrics.confusion_difference(mine, theirs)
    assert difference[1, 1] == 1 and difference[1, 7] == -1
    assert np.count_nonzero(difference) == 2  # image 5's mistake is not a difference
