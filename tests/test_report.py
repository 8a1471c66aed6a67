"""The HTML report: one offline page with leaderboard, curves, LR, confusion matrices, specs."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dashboard.report import build_report
from engines import store
from engines.spec import RunSpec
from tests.conftest import run_cli

VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "source", "wbr", "col", "area", "base"}
PLOTLY_JS_MIN_CHARS = 1_000_000  # plotly.min.js is several MB; a figure's script is far smaller


class PageChecker(HTMLParser):
    """Parses a page, noting unbalanced tags, script sources and script sizes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open_tags: list[str] = []
        self.errors: list[str] = []
        self.script_sources: list[str] = []
        self.script_sizes: list[int] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.add(tag)
        if tag == "script":
            self.script_sizes.append(0)
            if attributes.get("src"):
                self.script_sources.append(attributes["src"])
        if tag == "link" and attributes.get("href"):
            self.links.append(attributes["href"])
        if tag not in VOID_TAGS:
            self.open_tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open_tags or self.open_tags[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open_tags[-1:]}")
        else:
            self.open_tags.pop()

    def handle_data(self, data: str) -> None:
        if self.open_tags and self.open_tags[-1] == "script":
            self.script_sizes[-1] += len(data)
        else:
            self.text.append(data)


def check_page(page: str) -> PageChecker:
    """The parsed page; fails unless it is a complete, balanced, self-contained HTML page."""
    assert page.startswith("<!DOCTYPE html>")
    checker = PageChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == []
    assert checker.open_tags == []
    assert checker.script_sources == [] and checker.links == []  # nothing loaded from outside
    return checker


def make_run(
    root: Path, status: str = "done", notes: str = "", seed: int = 42, accuracy: float = 0.8765
) -> Path:
    """A synthetic run (written with the store's functions) with 3 epochs of history."""
    run_dir = store.create_run(RunSpec("keras", "cnn", epochs=3, notes=notes, seed=seed), root)
    run = store.read_run(run_dir)
    rows = [
        dict(epoch=e, train_loss=1 / e, train_accuracy=0.9, val_loss=1 / e, val_accuracy=0.9,
             lr=1e-3, epoch_seconds=2.0)
        for e in (1, 2, 3)
    ]  # fmt: skip
    store.write_history(run_dir, run, rows)
    if status == "done":
        labels = np.arange(40) % 10
        store.write_predictions(run_dir, labels, np.eye(10)[labels])
        store.update_run(run_dir, status="done", test_accuracy=accuracy, test_loss=0.5)
    else:
        store.update_run(run_dir, status=status, error="it broke")
    return run_dir


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real tiny torch runs (DNN and CNN), two epochs each."""
    root = tmp_path_factory.mktemp("report") / "results"
    for arch in ("dnn", "cnn"):
        result = run_cli(
            "--results-dir", str(root), "train", "--framework", "torch", "--arch", arch,
            "--epochs", "2", "--train-limit", "1000", "--val-size", "300", "--test-limit", "300",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return store.iter_run_dirs(root)


@pytest.fixture(scope="module")
def real_report(real_runs: list[Path]) -> str:
    return build_report(real_runs)


# --- real runs ---------------------------------------------------------------------------
def test_report_lists_every_run_with_its_test_accuracy(
    real_runs: list[Path], real_report: str
) -> None:
    assert len(real_runs) == 2
    for run_dir in real_runs:
        run = store.read_run(run_dir)
        assert run["run_id"] in real_report
        assert f"{run['test_accuracy']:.2%}" in real_report
        assert f"{run['test_loss']:.4f}" in real_report
        assert f"{run['trainable_params']:,}" in real_report


def test_report_leaderboard_says_how_many_images_each_run_trained_and_was_tested_on(
    real_report: str,
) -> None:
    """An accuracy on 300 test images is not one on 10,000: the leaderboard row says which."""
    assert "images train / test" in real_report
    assert real_report.count("1,000 / 300") == 2  # both runs: --train-limit 1000 --test-limit 300


def test_report_draws_curves_lr_and_one_confusion_matrix_per_run(
    real_runs: list[Path], real_report: str
) -> None:
    loss_and_accuracy, lr = 2, 1
    assert real_report.count("Plotly.newPlot(") == loss_and_accuracy + lr + len(real_runs)
    for heading in ("Leaderboard", "Training curves", "Learning-rate schedules", "Confusion"):
        assert f"<h2>{heading}" in real_report


def test_report_is_one_self_contained_page_with_plotly_embedded_once(real_report: str) -> None:
    checker = check_page(real_report)
    big_scripts = [size for size in checker.script_sizes if size > PLOTLY_JS_MIN_CHARS]
    assert len(big_scripts) == 1


def test_report_shows_each_runs_spec(real_runs: list[Path], real_report: str) -> None:
    text = " ".join(check_page(real_report).text)
    for field in ("batch_size", "scheduler", "train_limit", "es_patience"):
        assert field in text
    assert "cosine" in text  # the default scheduler of both architectures


# --- edge cases --------------------------------------------------------------------------
def test_report_with_no_runs_is_a_valid_page_saying_so() -> None:
    page = build_report([])

    checker = check_page(page)
    assert "No runs to report" in " ".join(checker.text)
    assert "Plotly.newPlot" not in page
    assert checker.script_sizes == []


def test_unreadable_runs_are_listed_as_skipped_and_the_rest_reported(tmp_path: Path) -> None:
    good = make_run(tmp_path)
    broken = make_run(tmp_path)
    (broken / "run.json").write_text("{not json")
    missing = tmp_path / "gone"

    page = build_report([good, broken, missing])

    text = " ".join(check_page(page).text)
    assert good.name in text and "87.65%" in text
    assert f"{broken.name}: unreadable run.json" in text
    assert "gone: no run.json (run skipped)" in text
    assert page.count("Plotly.newPlot(") == 2 + 1 + 1


def test_a_run_without_predictions_gets_curves_but_no_confusion_matrix(tmp_path: Path) -> None:
    done, failed = make_run(tmp_path), make_run(tmp_path, status="failed")

    page = build_report([done, failed])

    text = " ".join(check_page(page).text)
    assert failed.name in text and "failed" in text
    assert f"{failed.name}: no test_predictions.parquet (no confusion matrix)" in text
    assert page.count("Plotly.newPlot(") == 2 + 1 + 1  # one confusion matrix, for `done`


def test_report_groups_runs_that_differ_only_in_seed_when_there_are_some(tmp_path: Path) -> None:
    one_seed = build_report([make_run(tmp_path / "a", seed=1, accuracy=0.90)])
    seeds = [make_run(tmp_path / "b", seed=s, accuracy=a) for s, a in [(1, 0.90), (2, 0.92)]]

    page = build_report(seeds)

    assert "Runs that differ only in seed" not in one_seed  # nothing to average
    text = " ".join(check_page(page).text)
    assert "Runs that differ only in seed" in text
    assert "1, 2" in text and "91.00%" in text and "1.41" in text  # mean, std in points


def test_text_from_the_store_is_escaped(tmp_path: Path) -> None:
    nasty = "<script>alert('notes')</script>"
    run = make_run(tmp_path, notes=nasty)
    odd_folder = tmp_path / "<img src=x onerror=alert(1)>"
    odd_folder.mkdir()

    page = build_report([run, odd_folder])

    checker = check_page(page)
    assert nasty not in page and "img" not in checker.tags
    assert html.escape(nasty) in page
    text = " ".join(checker.text)
    assert nasty in text  # shown to the reader as plain text
    assert "<img src=x onerror=alert(1)>: no run.json" in text


class DetailsTables(HTMLParser):
    """The tables folded under the charts: {summary: rows of cell texts}."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.summary: str | None = None
        self.in_summary = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "summary":
            self.in_summary, self.summary = True, ""
        elif tag == "tr" and self.summary is not None:
            self.tables.setdefault(self.summary, []).append([])
        elif tag in ("td", "th") and self.summary is not None:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "summary":
            self.in_summary = False
        elif tag in ("td", "th") and self.cell is not None:
            self.tables[self.summary][-1].append("".join(self.cell))
            self.cell = None
        elif tag == "details":
            self.summary = None

    def handle_data(self, data: str) -> None:
        if self.in_summary:
            self.summary += data
        elif self.cell is not None:
            self.cell.append(data)


def test_each_chart_has_its_numbers_as_a_table_under_it(tmp_path: Path) -> None:
    """A text alternative (screen readers, exact values to copy) folded under each chart."""
    run_dir = make_run(tmp_path)
    run = store.read_run(run_dir)
    rows = [
        dict(epoch=e, train_loss=0.5, train_accuracy=0.9, val_loss=loss, val_accuracy=accuracy,
             lr=lr, epoch_seconds=2.0)
        for e, loss, accuracy, lr in [(1, 0.4, 0.91, 1e-3), (2, 0.3, 0.95, 5e-4),
                                      (3, 0.35, 0.93, 1e-4)]
    ]  # fmt: skip
    store.write_history(run_dir, run, rows)

    tables = DetailsTables()
    tables.feed(build_report([run_dir]))

    label = f"keras/cnn {run_dir.name[-6:]}"
    curves = tables.tables["The curves in numbers"]
    assert curves[1] == [label, "3", "93.00%", "95.00%", "2", "0.3500", "0.3000", "2"]
    rates = tables.tables["The rates in numbers"]
    assert rates == [["epoch", label], ["1", "0.001"], ["2", "0.0005"], ["3", "0.0001"]]
    counts = tables.tables["The counts"]  # 40 test images, all right: 4 of each digit
    assert counts[0] == ["true \\ predicted", *map(str, range(10))]
    assert counts[3] == ["2", "0", "0", "4", *["0"] * 7]
