"""Digit Lab engines: train MNIST classifiers in Keras, PyTorch and Lightning into a run store.

Public API (used by the dashboard, the tests and notebooks):

* :func:`load_runs` — every run in the store as a pandas table.
* :func:`load_predictor` — ``predict_proba(uint8 (N, 28, 28)) -> (N, 10)`` for a finished run.
* :func:`engines.preprocess.to_mnist` — a drawn or uploaded image as an MNIST-like 28x28,
  or None for a blank one; :func:`engines.preprocess.find_digit` (the Draw page's) raises
  :class:`~engines.preprocess.NoDigit` with the reason instead.

Importing this package is cheap: frameworks are imported only when a run needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from engines.core import Predictor

__all__ = ["load_predictor", "load_runs"]


def load_runs(results_dir: str | Path | None = None) -> pd.DataFrame:
    """All readable runs, newest first; unreadable ones are listed in ``.attrs["skipped"]``."""
    from engines.store import load_runs as _load_runs

    return _load_runs(results_dir)


def load_predictor(run_dir: str | Path) -> Predictor:
    """A predictor for a finished run, whichever framework trained it."""
    from engines.core import load_predictor as _load_predictor

    return _load_predictor(run_dir)
