"""A one-file HTML report of picked runs, to send to someone without the dashboard.

The report holds the leaderboard, loss and accuracy curves, learning-rate schedules, a
confusion matrix per run and every run's spec. Charts are the dashboard's own plotly
figures (:mod:`dashboard.charts`); plotly's JavaScript is embedded once in the page, so the
file works offline and loads nothing from the network. All text from the store is escaped.
Runs that cannot be read are listed as skipped instead of breaking the report.

Pure Python (no Streamlit), so it can be called from the dashboard, a notebook or a test.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from dashboard import charts
from engines import metrics, store
from engines.compare import MISSING, curves_summary, seed_table, setting_name, setting_value
from engines.spec import RunSpec

TITLE = "Digit Lab report"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
td { white-space: nowrap; }  /* "20.1 s" and dates on one line; wide tables scroll */
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
code { font-size: 0.85rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 1rem; }
.muted { color: #666; }
"""


@dataclass
class ReportRun:
    """One readable run and what could be read of its files."""

    run_dir: Path
    run: dict[str, Any]
    history: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or self.run_dir.name)

    @cached_property
    def spec(self) -> RunSpec:
        return RunSpec.from_stored(self.run["spec"])

    @property
    def label(self) -> str:
        """Same short name as the dashboard's legends, e.g. ``torch/cnn a1b2c3``."""
        return charts.run_label({**self.spec.to_dict(), "run_id": self.run_id})


def build_report(run_dirs: list[Path]) -> str:
    """One self-contained HTML page about ``run_dirs`` (see the module docstring)."""
    runs, skipped = read_runs(run_dirs)
    runs.sort(key=_accuracy_rank)
    sections = [_header(len(runs))]
    if runs:
        sections.append(_section("Leaderboard", leaderboard_table(runs)))
        groups = seed_table(store.table_of_runs(run.run_dir for run in runs))
        if (groups["runs"] > 1).any():  # some settings were trained with several seeds
            sections.append(_section("Runs that differ only in seed", seed_group_table(groups)))
        sections += [
            _section("Training curves", _curves(runs)),
            _section("Learning-rate schedules", _lr_schedules(runs)),
            _section("Confusion matrices", _confusion_matrices(runs)),
            _section("Specs", spec_table(runs)),
        ]
    else:
        sections.append("<p>No runs to report: pick one or more finished runs first.</p>")
    problems = skipped + [problem for run in runs for problem in run.problems]
    if problems:
        sections.append(_section("Skipped or incomplete", _problem_list(problems)))
    return _page(sections, with_plotly="Plotly.newPlot" in "".join(sections))


# --- reading -----------------------------------------------------------------------------
def read_runs(run_dirs: list[Path]) -> tuple[list[ReportRun], list[str]]:
    """Readable runs, and why each of the others was skipped."""
    runs, skipped = [], []
    for run_dir in map(Path, run_dirs):
        try:
            runs.append(_read_run(run_dir))
        except store.StoreError as err:
            skipped.append(f"{err} (run skipped)")
    return runs, skipped


def _read_run(run_dir: Path) -> ReportRun:
    report_run = ReportRun(run_dir, store.read_run(run_dir))
    try:
        report_run.history = store.read_history(run_dir).assign(label=report_run.label)
    except store.StoreError as err:
        report_run.problems.append(f"{err} (no curves)")
    try:
        report_run.predictions = store.read_predictions(run_dir)
    except store.StoreError as err:
        report_run.problems.append(f"{err} (no confusion matrix)")
    return report_run


def _accuracy_rank(run: ReportRun) -> tuple[bool, float]:
    """Best test accuracy first; runs without one last."""
    accuracy = run.run.get("test_accuracy")
    if not isinstance(accuracy, int | float):
        return (True, 0.0)
    return (False, -accuracy)


# --- tables ------------------------------------------------------------------------------
LEADERBOARD_HEADERS = [
    "run", "framework", "arch", "status", "test accuracy", "test loss", "images train / test",
    "best / stopped epoch", "wall time", "median s / epoch", "params", "seed", "created", "run_id",
]  # fmt: skip


def leaderboard_table(runs: list[ReportRun]) -> str:
    rows = []
    for report_run in runs:
        run, spec = report_run.run, report_run.spec
        rows.append(
            [
                report_run.label,
                spec.framework,
                spec.arch,
                store.effective_status(run),
                _percent(run.get("test_accuracy")),
                _number(run.get("test_loss"), ".4f"),
                f"{spec.train_images:,} / {spec.test_images:,}",  # 1,000 and 10,000 differ
                f"{_number(run.get('best_epoch'), 'd')} / {_number(run.get('stopped_epoch'), 'd')}",
                _seconds(run.get("wall_seconds")),
                _format(run.get("seconds_per_epoch"), ".2f", " s"),
                _number(run.get("trainable_params"), ",d"),
                str(spec.seed),
                str(run.get("created_at") or MISSING),
                report_run.run_id,
            ]
        )
    return _table(LEADERBOARD_HEADERS, rows, numeric={4, 5, 6, 7, 8, 9, 10, 11})


SEED_NUMBERS = ["mean test accuracy", "± std (points)", "worst", "best", "median s / epoch"]


def seed_group_table(groups: pd.DataFrame) -> str:
    """:func:`engines.compare.seed_table`'s rows as HTML."""
    settings = [column for column in groups.columns if column.startswith("spec_")]
    headers = ["framework", "arch", *map(setting_name, settings),
               "runs", "seeds", *SEED_NUMBERS]  # fmt: skip
    rows = []
    for _, group in groups.iterrows():
        rows.append(
            [group["framework"], group["arch"], *(setting_value(group[c]) for c in settings),
             str(group["runs"]), group["seeds"], _percent(group["accuracy_mean"]),
             _format(100 * group["accuracy_std"], ".2f"), _percent(group["accuracy_min"]),
             _percent(group["accuracy_max"]), _format(group["seconds_per_epoch"], ".2f", " s")]
        )  # fmt: skip
    numeric = {i for i, header in enumerate(headers) if header in ("runs", *SEED_NUMBERS)}
    return _table(headers, rows, numeric=numeric)


def spec_table(runs: list[ReportRun]) -> str:
    """One column per run, one row per spec field: differences are easy to spot."""
    specs = [run.spec.to_dict() for run in runs]
    rows = [[name] + [_text(spec.get(name)) for spec in specs] for name in specs[0]]
    return _table(["field"] + [run.label for run in runs], rows)


def _table(headers: list[str], rows: list[list[str]], numeric: Collection[int] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(cell)}</td>'
            if i in numeric
            else f"<td>{html.escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _percent(value: Any) -> str:
    return _format(value, ".2%")


def _number(value: Any, spec: str) -> str:
    return _format(value, spec)


def _seconds(value: Any) -> str:
    return _format(value, ".1f", " s")


def _format(value: Any, spec: str, unit: str = "") -> str:
    """``value`` formatted, or shown as it is when a hand-edited run.json has an odd type."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    try:
        return format(value, spec) + unit
    except (TypeError, ValueError):
        return str(value)


def _text(value: Any) -> str:
    return MISSING if value is None or value == "" else str(value)


# --- charts ------------------------------------------------------------------------------
def _curves(runs: list[ReportRun]) -> str:
    history = _all_history(runs)
    if history is None:
        return _muted("No epoch history in these runs.")
    figures = "".join(_figure(charts.curves_figure(history, metric)) for metric in charts.METRICS)
    return figures + _as_text("The curves in numbers", curves_table(history))


def curves_table(history: pd.DataFrame) -> str:
    """:func:`engines.compare.curves_summary` as HTML: the curves' text alternative."""
    headers = ["run", "epochs", "last val accuracy", "best val accuracy", "best at epoch",
               "last val loss", "lowest val loss", "lowest at epoch"]  # fmt: skip
    rows = [
        [row.run, _number(row.epochs, "d"), _percent(row.last_val_accuracy),
         _percent(row.best_val_accuracy), _number(row.best_accuracy_epoch, "d"),
         _number(row.last_val_loss, ".4f"), _number(row.lowest_val_loss, ".4f"),
         _number(row.lowest_loss_epoch, "d")]
        for row in curves_summary(history).itertuples()
    ]  # fmt: skip
    return _table(headers, rows, numeric=range(1, len(headers)))


def _lr_schedules(runs: list[ReportRun]) -> str:
    history = _all_history(runs)
    if history is None:
        return _muted("No epoch history in these runs.")
    return _figure(charts.lr_figure(history)) + _as_text("The rates in numbers", lr_table(history))


def lr_table(history: pd.DataFrame) -> str:
    """One row per epoch, one column per run: the learning rate it trained that epoch with."""
    rates = history.pivot_table(index="epoch", columns="label", values="lr", dropna=False)
    labels = list(dict.fromkeys(history["label"]))
    rows = [
        [str(epoch), *(_number(rates.at[epoch, label], ".3g") for label in labels)]
        for epoch in rates.index
    ]
    return _table(["epoch", *labels], rows, numeric=range(1, len(labels) + 1))


def _all_history(runs: list[ReportRun]) -> pd.DataFrame | None:
    frames = [run.history for run in runs if run.history is not None and not run.history.empty]
    return pd.concat(frames, ignore_index=True) if frames else None


def _confusion_matrices(runs: list[ReportRun]) -> str:
    figures = []
    for run in runs:
        if run.predictions is None:
            continue
        matrix = metrics.confusion_matrix(run.predictions)
        figure = _figure(charts.confusion_figure(matrix, run.label))
        figures.append(f"<div>{figure}{_as_text('The counts', confusion_table(matrix))}</div>")
    if not figures:
        return _muted("No test predictions in these runs.")
    return f'<div class="grid">{"".join(figures)}</div>'


def confusion_table(matrix: Any) -> str:
    """A confusion matrix as HTML: a row per true digit, a column per predicted one."""
    rows = [[str(true), *(f"{int(count):,}" for count in row)] for true, row in enumerate(matrix)]
    headers = ["true \\ predicted", *map(str, range(len(matrix)))]
    return _table(headers, rows, numeric=range(1, len(headers)))


def _as_text(title: str, table: str) -> str:
    """A chart's numbers, folded away under it: for screen readers, and to copy exact values."""
    return f"<details><summary>{html.escape(title)}</summary>{table}</details>"


def _figure(figure: go.Figure) -> str:
    """The figure as a ``<div>`` + ``<script>``; plotly.js itself is in the page head."""
    return figure.to_html(
        full_html=False, include_plotlyjs=False, config=PLOTLY_CONFIG, default_height="480px"
    )


# --- page --------------------------------------------------------------------------------
def _header(run_count: int) -> str:
    when = store.now_iso().replace("T", " ").replace("Z", " UTC")
    return (
        f"<h1>{html.escape(TITLE)}</h1>"
        f'<p class="muted">Generated {html.escape(when)} · {run_count} run(s)</p>'
    )


def _section(title: str, content: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{content}</section>"


def _problem_list(problems: list[str]) -> str:
    items = "".join(f"<li>{html.escape(problem)}</li>" for problem in problems)
    return f"<ul>{items}</ul>"


def _muted(text: str) -> str:
    return f'<p class="muted">{html.escape(text)}</p>'


def _page(sections: list[str], with_plotly: bool) -> str:
    plotly_js = f'<script charset="utf-8">{get_plotlyjs()}</script>' if with_plotly else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(TITLE)}</title><style>{STYLE}</style>{plotly_js}</head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
