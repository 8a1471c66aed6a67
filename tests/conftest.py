"""Shared fixtures: where MNIST is, an empty store per test, a small store of real runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = PROJECT_ROOT.parent / "shared" / "data" / "mnist"

# Tests never download: they read MNIST from MNIST_DIR (CI sets it; default the shared copy).
os.environ.setdefault("MNIST_DIR", str(SHARED_MNIST))

# The real runs behind the training and dashboard tests: small but real, one per framework
# and architecture, so every page sees every kind of model.
# 3,000 training images, 2 epochs, scored on the first 1,000 test images.
TINY_RUN_OPTIONS = [
    "--epochs", "2", "--train-limit", "3000", "--val-size", "1000", "--test-limit", "1000",
]  # fmt: skip


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900):
    """``python -m engines …`` in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "engines", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def results_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty run store, also exported as RESULTS_DIR for code and child processes."""
    store = tmp_path / "results"
    store.mkdir()
    monkeypatch.setenv("RESULTS_DIR", str(store))
    return store


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one finished tiny run per framework × architecture (six runs)."""
    store = tmp_path_factory.mktemp("trained") / "results"
    result = run_cli("--results-dir", str(store), "grid", *TINY_RUN_OPTIONS, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return store
