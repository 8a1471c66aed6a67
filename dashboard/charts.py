"""Plotly figure builders: pure functions from store tables to figures.

Used by the dashboard pages and by the HTML report, so a chart looks the same in both.
``history`` is the concatenation of the picked runs' ``history.parquet`` tables plus a
``label`` column naming each run (one line per label).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb
from plotly.subplots import make_subplots

FRAMEWORK_COLOURS = {"keras": "#d62728", "torch": "#1f77b4", "lightning": "#9467bd"}
# Further runs of one framework: darker and lighter shades of its colour, in this order.
# Every one has at least 3:1 contrast against the white chart (WCAG 1.4.11), so the lighter
# ones lean a little in hue (orange-red, sky or royal blue, orchid) to stay apart.
FRAMEWORK_SHADES = {
    "keras": ("#d62728", "#8c1414", "#e85d5e", "#5c0d0d", "#e14b2e"),
    "torch": ("#1f77b4", "#0b3f66", "#1e96d3", "#06263d", "#285aa1"),
    "lightning": ("#9467bd", "#583878", "#c275d1", "#34214a", "#863ea2"),
}
ARCH_DASHES = {"dnn": "solid", "cnn": "dash"}
MARKERS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "pentagon")
# "seconds" sums each epoch's time (training and validation), so start-up, data loading,
# testing and saving, which the leaderboard's wall time includes, are not on this axis.
X_AXES = {"epoch": "epoch", "seconds": "seconds of training (epoch times summed)"}
METRICS = ("accuracy", "loss")
CHARTS_PER_ROW = 3  # probability bar charts side by side
# Run legends sit in rows below the plot, not in a column beside it: a column took 40 % of
# a phone-width chart. Plotly widens the bottom margin to fit them, below the axis titles;
# the chart grows by a row's height per run (the rows a phone needs; a wide screen, with
# several runs per row, gets a taller plot instead).
LEGEND_BELOW = {
    "orientation": "h", "y": -0.25, "yanchor": "top", "x": 0,
    "title_text": "run", "title_side": "top",  # not beside the entries, eating phone width
}  # fmt: skip
PLOT_HEIGHT, HEIGHT_PER_RUN = 400, 14


def run_label(run: pd.Series | dict) -> str:
    """Short name of a run for legends and pickers, e.g. ``torch/cnn a1b2c3``."""
    return f"{run['framework']}/{run['arch']} {str(run['run_id'])[-6:]}"


def with_elapsed_seconds(history: pd.DataFrame) -> pd.DataFrame:
    """Adds ``seconds``: each run's cumulative training time at the end of each epoch."""
    history = history.sort_values(["label", "epoch"])
    return history.assign(seconds=history.groupby("label")["epoch_seconds"].cumsum())


def curves_figure(
    history: pd.DataFrame, metric: str, x: str = "epoch", log_y: bool = False
) -> go.Figure:
    """Train (left) and validation (right) ``metric`` of every run, overlaid.

    Colour = framework (a new shade for each further run of it), dash = architecture, and
    marker shape tells runs apart too. ``log_y``: a log-scale y axis (for the loss, where
    one diverging run would otherwise flatten every other curve to the bottom).
    """
    if metric not in METRICS:
        raise ValueError(f"metric: must be one of {'|'.join(METRICS)}, got {metric!r}")
    if x not in X_AXES:
        raise ValueError(f"x: must be one of {'|'.join(X_AXES)}, got {x!r}")
    figure = make_subplots(
        rows=1, cols=2, shared_yaxes=True, subplot_titles=(f"train {metric}", f"val {metric}")
    )
    history = with_elapsed_seconds(history)
    styles = _run_styles(history)
    for label, run in _each_run(history, styles):
        style = styles[label]
        for col, split in enumerate(("train", "val"), start=1):
            column = f"{split}_{metric}"
            hover = {"hovertemplate": _hover(split, metric, x)}
            if f"{column}_min" in run:  # a seed group's mean: its runs' range behind
                for trace in _range_band(run, x, column, label, style):
                    figure.add_trace(trace, row=1, col=col)
                hover = {
                    "customdata": run[[f"{column}_min", f"{column}_max", "runs"]].to_numpy(),
                    "hovertemplate": _hover(split, metric, x, group=True),
                }
            figure.add_trace(
                go.Scatter(
                    x=run[x],
                    y=run[column],
                    name=label,
                    legendgroup=label,
                    showlegend=col == 1,
                    mode="lines+markers",
                    **hover,
                    **style,
                ),
                row=1,
                col=col,
            )
    figure.update_xaxes(title_text=X_AXES[x])
    if x == "epoch":
        _whole_epoch_ticks(figure, history["epoch"].max())
    figure.update_yaxes(title_text=metric, col=1)
    if log_y:
        figure.update_yaxes(type="log", exponentformat="power")
    if metric == "accuracy":
        figure.update_yaxes(tickformat=".0%")
    figure.update_layout(hovermode="closest")
    _legend_below(figure, runs=len(styles))
    return figure


def _range_band(
    run: pd.DataFrame, x: str, column: str, label: str, style: dict
) -> list[go.Scatter]:
    """Two traces that shade, in the line's colour, between ``column``'s min and max."""
    red, green, blue = hex_to_rgb(style["line"]["color"])
    edge = {"x": run[x], "name": label, "mode": "lines", "line": {"width": 0},
            "legendgroup": label, "showlegend": False, "hoverinfo": "skip"}  # fmt: skip
    return [
        go.Scatter(y=run[f"{column}_max"], **edge),
        go.Scatter(
            y=run[f"{column}_min"],
            fill="tonexty",
            fillcolor=f"rgba({red},{green},{blue},0.18)",
            **edge,
        ),
    ]


def lr_figure(history: pd.DataFrame) -> go.Figure:
    """The learning rate each run used in each epoch, on a log scale."""
    figure = go.Figure()
    styles = _run_styles(history)
    for label, run in _each_run(history, styles):
        figure.add_trace(
            go.Scatter(
                x=run["epoch"],
                y=run["lr"],
                name=label,
                mode="lines+markers",
                line_shape="hv",
                hovertemplate="<b>%{fullData.name}</b><br>epoch %{x}<br>lr %{y:.3g}<extra></extra>",
                **styles[label],
            )
        )
    figure.update_layout(
        xaxis_title="epoch",
        yaxis_title="learning rate",
        yaxis_type="log",
        yaxis_exponentformat="power",  # 10⁻³, 10⁻⁴: not plotly's mix of 0.001 and 100μ
    )
    _legend_below(figure, runs=len(styles))
    _whole_epoch_ticks(figure, history["epoch"].max())
    return figure


def _each_run(history: pd.DataFrame, styles: dict[str, dict]):
    """``(label, that run's rows by epoch)`` in the order of ``styles`` (oldest run first), so
    every chart's legend lists the runs in the same order."""
    by_label = dict(tuple(history.sort_values("epoch").groupby("label", sort=False)))
    return ((label, by_label[label]) for label in styles)


def _legend_below(figure: go.Figure, runs: int) -> None:
    figure.update_layout(
        legend=LEGEND_BELOW, height=PLOT_HEIGHT + HEIGHT_PER_RUN * runs, margin={"t": 40}
    )


def _whole_epoch_ticks(figure: go.Figure, last_epoch: int) -> None:
    """Ticks on whole epochs only (plotly would also label 1.5, 2.5), about ten at most."""
    step = max(1, int(np.ceil(last_epoch / 10)))
    figure.update_xaxes(tickvals=list(range(1, last_epoch + 1, step)))  # none past the last


def confusion_figure(matrix: np.ndarray, title: str, difference: bool = False) -> go.Figure:
    """Heatmap of a 10x10 confusion matrix (rows = true digit, columns = predicted).

    An integer matrix holds counts, a float one shares (``metrics.confusion_matrix(…,
    normalize=True)``; NaN in the row of a digit with no test images, drawn blank). A
    ``difference`` of two runs gets a red-blue scale centred on zero whose range is set by the
    off-diagonal cells: each diagonal cell is minus the sum of its row's other cells, so it
    would take the whole range and leave the changed mistakes nearly white (it is capped at
    the darkest shade; its text gives the value).
    """
    values = np.asarray(matrix)
    digits = [str(d) for d in range(values.shape[0])]
    shares = values.dtype.kind == "f"
    heatmap = go.Heatmap(
        z=values,
        x=digits,
        y=digits,
        text=_cell_texts(values, shares=shares, signed=difference),
        texttemplate="%{text}",
        hovertemplate=f"true %{{y}} → predicted %{{x}}: {_hover_value(shares, difference)}"
        "<extra></extra>",
        **(_difference_scale(values, shares) if difference else _count_scale(shares)),
    )
    figure = go.Figure(heatmap)
    figure.update_layout(
        title=title,
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis_autorange="reversed",
        height=520,
    )
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure


def _hover_value(shares: bool, signed: bool) -> str:
    sign = "+" if signed else ""
    return f"%{{z:{sign}.2%}}" if shares else f"%{{z:{sign},d}}"


def _count_scale(shares: bool) -> dict:
    return {"colorscale": "Blues", "colorbar": {"tickformat": ".0%"} if shares else None}


def _difference_scale(values: np.ndarray, shares: bool) -> dict:
    off_diagonal = values[~np.eye(values.shape[0], dtype=bool)]
    largest = np.nanmax(np.abs(off_diagonal), initial=0.0)
    if largest == 0:  # no mistake changed: any range draws the zeros white
        largest = 0.01 if shares else 1
    return {
        "colorscale": "RdBu",
        "zmin": -largest,
        "zmax": largest,
        "colorbar": {"tickformat": "+.0%"} if shares else {"tickformat": "+d"},
    }


def _run_styles(history: pd.DataFrame) -> dict[str, dict]:
    """Line and marker style of each run (label): its framework's colour, the first run of a
    framework in the base shade and each further one in the next shade, so that two
    torch/dnn runs (different seeds, say) do not look alike.

    Runs take shades oldest first (run ids start with their creation time), so adding a newer
    run to a comparison leaves the colours of the runs already shown as they were.
    """
    styles, seen = {}, {}
    order = "run_id" if "run_id" in history else "label"
    runs = history.drop_duplicates("label").sort_values([order, "label"])  # same in every chart
    for number, (label, framework, arch) in enumerate(
        zip(runs["label"], runs["framework"], runs["arch"], strict=True)
    ):
        shades = FRAMEWORK_SHADES.get(framework, ("#7f7f7f",))
        colour = shades[seen.get(framework, 0) % len(shades)]
        seen[framework] = seen.get(framework, 0) + 1
        styles[label] = {
            "line": {"color": colour, "dash": ARCH_DASHES.get(arch, "dot")},
            "marker": {"color": colour, "symbol": MARKERS[number % len(MARKERS)], "size": 7},
        }
    return styles


def _cell_texts(values: np.ndarray, shares: bool, signed: bool) -> list[list[str]]:
    """Cell labels: shares as percentages, counts as integers; a difference of 0 is blank
    (the hover gives it); "–" where a digit has no test images (a share of nothing)."""
    sign = "+" if signed else ""

    def text(value: float) -> str:
        if np.isnan(value):
            return "–"
        if signed and value == 0:
            return ""
        return f"{value:{sign}.1%}" if shares else f"{int(value):{sign}d}"

    return [[text(value) for value in row] for row in values]


def _hover(split: str, metric: str, x: str, group: bool = False) -> str:
    """A point's hover text; a seed ``group``'s mean also gives its runs' range and count
    (the trace's ``customdata``: lowest, highest, runs)."""
    x_text = "epoch %{x}" if x == "epoch" else "%{x:.1f} s"
    fmt = ":.2%" if metric == "accuracy" else ":.4f"
    value = f"{split} {metric} %{{y{fmt}}}"
    if group:
        value = (
            f"{split} {metric} mean %{{y{fmt}}}<br>range %{{customdata[0]{fmt}}} – "
            f"%{{customdata[1]{fmt}}} (runs: %{{customdata[2]}})"
        )
    return f"<b>%{{fullData.name}}</b><br>{x_text}<br>{value}<extra></extra>"


def probabilities_figure(answers: dict[str, np.ndarray], frameworks: dict[str, str]) -> go.Figure:
    """Small multiples: each model's ten probabilities, the top-1 bar in full colour."""
    rows = math.ceil(len(answers) / CHARTS_PER_ROW)
    cols = min(len(answers), CHARTS_PER_ROW)
    figure = make_subplots(
        rows=rows, cols=cols, subplot_titles=list(answers), shared_yaxes=True,
        vertical_spacing=0.25 / rows, horizontal_spacing=0.04,
    )  # fmt: skip
    for number, (label, probabilities) in enumerate(answers.items()):
        colour = FRAMEWORK_COLOURS.get(frameworks[label], "#7f7f7f")
        top = int(np.argmax(probabilities))
        figure.add_bar(
            x=list(range(10)),
            y=probabilities,
            marker_color=colour,
            marker_opacity=[1.0 if d == top else 0.45 for d in range(10)],
            name=label,
            hovertemplate=f"<b>{label}</b><br>digit %{{x}}: %{{y:.1%}}<extra></extra>",
            row=number // cols + 1,
            col=number % cols + 1,
        )
    figure.update_xaxes(tickmode="linear", dtick=1)
    figure.update_yaxes(range=[0, 1], tickformat=".0%")
    figure.update_layout(showlegend=False, height=260 * rows, margin={"t": 40, "b": 20})
    return figure
