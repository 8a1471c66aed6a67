"""All six pairs really learn, and a grid leaves six complete, loadable runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import data, load_predictor, load_runs, store
from engines.spec import ARCHS, FRAMEWORKS

# 3,000 training images, 2 epochs, 1,000 test images (see conftest.TINY_RUN_OPTIONS).
# Chance is 10 %; a model with a broken layer, loss or label order stays far below these.
MIN_ACCURACY = {"dnn": 0.82, "cnn": 0.90}  # seen: DNN 0.86-0.87, CNN 0.92-0.93
EXPECTED_PARAMS = {"dnn": 109_770, "cnn": 421_834}


def runs_by_pair(store_dir: Path) -> dict[tuple[str, str], dict]:
    return {
        (row.framework, row.arch): row._asdict()
        for row in load_runs(store_dir).itertuples(index=False)
    }


def test_grid_trains_all_six_pairs_to_done(trained_store: Path) -> None:
    runs = runs_by_pair(trained_store)
    assert set(runs) == {(f, a) for f in FRAMEWORKS for a in ARCHS}
    assert {run["status"] for run in runs.values()} == {"done"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("arch", ARCHS)
def test_each_pair_scores_far_above_chance(trained_store: Path, framework: str, arch: str) -> None:
    run = runs_by_pair(trained_store)[(framework, arch)]
    assert run["test_accuracy"] >= MIN_ACCURACY[arch], run


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("arch", ARCHS)
def test_run_files_are_complete_and_consistent(
    trained_store: Path, framework: str, arch: str
) -> None:
    run = runs_by_pair(trained_store)[(framework, arch)]
    run_dir = Path(run["run_dir"])
    history = store.read_history(run_dir)
    assert history["epoch"].tolist() == list(range(1, len(history) + 1))
    assert len(history) == run["stopped_epoch"] <= 2
    assert history[store.HISTORY_COLUMNS].notna().all().all()
    predictions = store.read_predictions(run_dir)
    assert len(predictions) == 1000
    accuracy = (predictions["label"] == predictions["predicted"]).mean()
    assert accuracy == pytest.approx(run["test_accuracy"], abs=1e-6)
    assert np.allclose(predictions[store.PROB_COLUMNS].sum(axis=1), 1.0, atol=1e-4)
    assert run["trainable_params"] == EXPECTED_PARAMS[arch]
    assert store.model_path(run_dir) is not None


def test_saved_models_reproduce_the_stored_predictions(trained_store: Path) -> None:
    """Keras and torch models load in one process (torch side imported first) and agree."""
    test_images = data.load_mnist(allow_download=False).x_test[:200]
    for run in runs_by_pair(trained_store).values():
        run_dir = Path(run["run_dir"])
        probabilities = load_predictor(run_dir).predict_proba(test_images)
        stored = store.read_predictions(run_dir)[store.PROB_COLUMNS].to_numpy()[:200]
        assert probabilities.shape == (200, 10)
        assert np.allclose(probabilities, stored, atol=1e-4), run["run_id"]


def test_every_predictor_reads_pixel_values_0_to_255_and_refuses_0_to_1_images(
    trained_store: Path,
) -> None:
    """A notebook passing int64 or float pixels gets the uint8 answer; 0-1 floats (a common
    normalisation) are refused with a hint, not classified as a near-black image."""
    images = data.load_mnist(allow_download=False).x_test[:20]
    for run in runs_by_pair(trained_store).values():
        predictor = load_predictor(run["run_dir"])
        expected = predictor.predict_proba(images)
        for same in (images.astype(np.int64), images.astype(np.float32)):
            assert np.allclose(predictor.predict_proba(same), expected, atol=1e-6), run["run_id"]
        with pytest.raises(ValueError, match="0-255.*scale 0-1 images by 255"):
            predictor.predict_proba(images / 255.0)
