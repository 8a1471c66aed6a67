"""Chart styling a reader relies on to tell runs apart."""

from __future__ import annotations

import pandas as pd

from dashboard import charts


def history_of(*runs: tuple[str, str, str]) -> pd.DataFrame:
    """Three epochs for each (label, framework, arch), shaped like stacked history.parquet;
    run ids in the order given (oldest first)."""
    rows = [
        {"label": label, "framework": framework, "arch": arch, "epoch": epoch,
         "run_id": f"20261127-{number:06d}-{framework}-{arch}-{label[-6:]}",
         "train_loss": 1 / epoch, "val_loss": 1 / epoch, "train_accuracy": 0.9,
         "val_accuracy": 0.9, "lr": 1e-3 / epoch, "epoch_seconds": 2.0}
        for number, (label, framework, arch) in enumerate(runs)
        for epoch in (1, 2, 3)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def colours(figure) -> dict[str, str]:
    return {trace.name: trace.line.color for trace in figure.data}


def test_runs_of_one_framework_get_different_shades_of_its_colour() -> None:
    history = history_of(
        ("torch/dnn aaaaaa", "torch", "dnn"),
        ("torch/dnn bbbbbb", "torch", "dnn"),
        ("keras/dnn cccccc", "keras", "dnn"),
    )
    shown = colours(charts.curves_figure(history, "loss"))
    assert shown["torch/dnn aaaaaa"] != shown["torch/dnn bbbbbb"]
    assert {shown["torch/dnn aaaaaa"], shown["torch/dnn bbbbbb"]} <= set(
        charts.FRAMEWORK_SHADES["torch"]
    )
    assert shown["keras/dnn cccccc"] == charts.FRAMEWORK_COLOURS["keras"]


def test_a_run_has_the_same_style_in_the_curves_and_the_lr_chart() -> None:
    history = history_of(
        ("torch/dnn bbbbbb", "torch", "dnn"),
        ("torch/cnn aaaaaa", "torch", "cnn"),
        ("torch/dnn cccccc", "torch", "dnn"),
    )
    curves = charts.curves_figure(history, "accuracy")
    lr = charts.lr_figure(history)
    styles = {t.name: (t.line.color, t.line.dash, t.marker.symbol) for t in curves.data}
    assert styles == {t.name: (t.line.color, t.line.dash, t.marker.symbol) for t in lr.data}
    assert len({colour for colour, _, _ in styles.values()}) == 3


def test_the_lr_chart_ticks_whole_epochs_only() -> None:
    history = history_of(("torch/dnn aaaaaa", "torch", "dnn"))

    axis = charts.lr_figure(history).layout.xaxis

    assert list(axis.tickvals) == [1, 2, 3]  # no 1.5, 2.5 between epochs


def test_epoch_ticks_of_a_long_run_stop_at_its_last_epoch() -> None:
    history = history_of(("torch/dnn aaaaaa", "torch", "dnn"))
    long_run = pd.concat([history.assign(epoch=history["epoch"] + 3 * k) for k in range(13)])

    axis = charts.lr_figure(long_run).layout.xaxis  # 39 epochs: every 4th epoch ticked

    assert list(axis.tickvals) == list(range(1, 38, 4))  # 1, 5, …, 37: none past 39


def test_log_y_puts_only_the_asked_chart_on_a_log_scale() -> None:
    history = history_of(("torch/dnn aaaaaa", "torch", "dnn"))

    assert charts.curves_figure(history, "loss", log_y=True).layout.yaxis.type == "log"
    assert charts.curves_figure(history, "loss").layout.yaxis.type != "log"


def test_adding_a_newer_run_keeps_the_colours_of_the_runs_already_shown() -> None:
    older = [("torch/dnn ffffff", "torch", "dnn"), ("torch/dnn aaaaaa", "torch", "dnn")]
    newer = ("torch/dnn 000000", "torch", "dnn")  # sorts first by label, created last

    before = colours(charts.curves_figure(history_of(*older), "loss"))
    after = colours(charts.curves_figure(history_of(*older, newer), "loss"))

    assert {label: after[label] for label in before} == before
    assert after[newer[0]] not in before.values()


def test_every_chart_lists_the_runs_oldest_first() -> None:
    runs = [("torch/dnn ffffff", "torch", "dnn"), ("keras/cnn 000000", "keras", "cnn")]
    history = history_of(*runs).sample(frac=1, random_state=0)  # rows in any order

    curves = charts.curves_figure(history, "loss")
    legend = [trace.name for trace in curves.data if trace.showlegend]

    assert legend == [label for label, _, _ in runs]
    assert [trace.name for trace in charts.lr_figure(history).data] == legend
    assert list(curves.data[0].x) == [1, 2, 3]  # each line still runs epoch by epoch


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a ``#rrggbb`` colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    red, green, blue = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels
    ]
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_with_white(colour: str) -> float:
    return 1.05 / (relative_luminance(colour) + 0.05)


def test_every_run_colour_stands_out_against_the_white_chart_at_3_to_1() -> None:
    """WCAG 1.4.11: the lines and markers that tell runs apart need 3:1 against the page."""
    colours = {*charts.FRAMEWORK_COLOURS.values()}
    colours |= {shade for shades in charts.FRAMEWORK_SHADES.values() for shade in shades}

    faint = {colour: round(contrast_with_white(colour), 2) for colour in sorted(colours)}
    assert {colour: ratio for colour, ratio in faint.items() if ratio < 3} == {}


def test_each_framework_has_distinct_shades_starting_from_its_colour() -> None:
    for framework, shades in charts.FRAMEWORK_SHADES.items():
        assert shades[0] == charts.FRAMEWORK_COLOURS[framework]
        assert len(set(shades)) == len(shades)


def test_run_legends_sit_below_the_plot_and_the_chart_grows_to_hold_them() -> None:
    """A legend column beside the plot took 40 % of a phone-width chart."""
    few = history_of(("torch/dnn aaaaaa", "torch", "dnn"))
    many = history_of(*[(f"torch/dnn {n:06d}", "torch", "dnn") for n in range(12)])

    for figure_of in (lambda h: charts.curves_figure(h, "loss"), charts.lr_figure):
        small, large = figure_of(few), figure_of(many)
        assert small.layout.legend.orientation == "h" and small.layout.legend.y < 0
        assert large.layout.height > small.layout.height
