"""Shared fixtures: where MNIST is, an empty store per test, a small store of real runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = PROJECT_ROOT.parent / "shared" / "data" / "mnist"

# Tests read MNIST from MNIST_DIR (CI sets it). Without it: the shared copy beside the
# checkout when there is one, else the project's data/mnist (downloaded once, see below).
if "MNIST_DIR" not in os.environ and SHARED_MNIST.is_dir():
    os.environ["MNIST_DIR"] = str(SHARED_MNIST)

# The real runs behind the training and dashboard tests: small but real, one per framework
# and architecture, so every page sees every kind of model.
# 3,000 training images, 2 epochs, scored on the first 1,000 test images.
# 3,000 images for 2 epochs, trained as the reference trains: batch 32 gives enough steps to
# learn (the default 128 would make only 47), and no augmentation, which pays off only over
# longer runs.
TINY_RUN_OPTIONS = [
    "--epochs", "2", "--train-limit", "3000", "--val-size", "1000", "--test-limit", "1000",
    "--batch-size", "32", "--lr", "0.001", "--augment-shift", "0", "--augment-rotate", "0",
    "--augment-zoom", "0", "--label-smoothing", "0",
]  # fmt: skip


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900):
    """``python -m engines …`` in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "engines", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,  # never a terminal: no command may wait for an answer
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate, timeout: float = 300.0, every: float = 0.5) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


@pytest.fixture(scope="session", autouse=True)
def mnist_on_disk() -> None:
    """Make sure the dataset is there before any test reads it (a download at most once)."""
    from engines.data import load_mnist

    load_mnist()


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests need Debian's Chromium: skipped (with the reason) where it is missing,
    except in CI (DIGITLAB_REQUIRE_BROWSER=1), where a missing browser must fail loudly."""
    if Path("/usr/bin/chromium").exists() or os.environ.get("DIGITLAB_REQUIRE_BROWSER") == "1":
        return
    skip = pytest.mark.skip(reason="needs /usr/bin/chromium (apt-get install -y chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
