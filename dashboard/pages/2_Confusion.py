"""Confusion matrices, per-class metrics and the misclassified test digits of one run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, sidebar, ui
from engines import metrics, store
from engines.data import MnistError, load_mnist, mnist_dir

st.set_page_config(page_title="Confusion · Digit Lab", page_icon="🔍", layout="wide")
sidebar.show()
st.title("Confusion matrices")

GALLERY_COLUMNS = 8


@st.cache_resource(show_spinner="Loading the MNIST test images…")
def test_images(directory: str) -> np.ndarray:
    """The 10k MNIST test images (uint8), read once per server; never downloads."""
    return load_mnist(directory, allow_download=False).x_test


def predictions_of(run_dir: str) -> pd.DataFrame | None:
    try:
        return ui.cached_predictions(run_dir)
    except store.StoreError as err:
        st.error(str(err))
        return None


def show_matrix(predictions: pd.DataFrame, label: str, normalize: bool) -> None:
    matrix = metrics.confusion_matrix(predictions, normalize)
    left, right = st.columns([3, 2])
    title = f"{label}: {'share of each true digit' if normalize else 'counts'}"
    left.plotly_chart(charts.confusion_figure(matrix, title), key="matrix")
    right.metric("test accuracy", f"{metrics.accuracy(predictions):.2%}")
    right.caption(f"on {len(predictions):,} test images")
    table = metrics.per_class_metrics(predictions)
    if table.isna().any(axis=None):
        right.caption(
            "“–” marks an undefined score: the precision of a digit the run never predicted, "
            "the recall of one with no test images, and the F1 of either."
        )
    # As text: Streamlit writes "None" for an undefined (NaN) number, and ignores a Styler's.
    scores = {name: table[name].map(score_text) for name in ("precision", "recall", "f1")}
    right.dataframe(table.assign(**scores), hide_index=True, key="per_class")


def score_text(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.3f}"


def show_difference(
    predictions: pd.DataFrame, other: pd.DataFrame, names: tuple[str, str], normalize: bool
) -> None:
    """``names[0]`` minus ``names[1]``, on the test images both runs were tested on."""
    mine, theirs = metrics.shared_test_images(predictions, other)
    if mine.empty:
        st.warning("The two runs were tested on different test images; nothing to compare.")
        return
    if len(mine) < max(len(predictions), len(other)):
        st.info(
            f"Compared on the {len(mine):,} test images both runs were tested on "
            f"({names[0]} on {len(predictions):,}, {names[1]} on {len(other):,})."
        )
    first, second = metrics.accuracy(mine), metrics.accuracy(theirs)
    st.caption(
        f"Test accuracy on these images: {names[0]} {first:.2%}, {names[1]} {second:.2%} "
        f"({(first - second) * 100:+.2f} points). Blue: more in {names[0]}, which is better on "
        "the diagonal (correct answers) and worse off it (mistakes); red: more in the compared "
        "run. The colours are scaled to the cells off the diagonal (which mistakes changed); a "
        "diagonal cell beyond that range takes the darkest shade."
    )
    difference = metrics.confusion_difference(mine, theirs, normalize)
    if not np.nan_to_num(difference).any():
        st.info("The two confusion matrices are the same on these images: no cell differs.")
    title = f"{names[0]} minus {names[1]}"
    figure = charts.confusion_figure(difference, title, difference=True)
    st.plotly_chart(figure, key="difference")


def show_gallery(predictions: pd.DataFrame) -> None:
    try:
        images = test_images(str(mnist_dir()))
    except MnistError as err:
        st.info(f"The MNIST test images are not available here, so no gallery ({err}).")
        return
    wrong = metrics.mistakes(predictions)
    digit = st.selectbox("True digit", ["any", *range(10)], key="gallery_digit")
    if digit != "any":
        wrong = wrong[wrong["label"] == digit]
    count = st.slider("How many", 8, 96, 32, step=8, key="gallery_count")
    st.caption(f"{len(wrong)} misclassified; most confident mistakes first.")
    wrong = wrong.head(count)
    for start in range(0, len(wrong), GALLERY_COLUMNS):
        row = wrong.iloc[start : start + GALLERY_COLUMNS]
        for column, item in zip(st.columns(GALLERY_COLUMNS), row.itertuples(), strict=False):
            caption = f"true {item.label} → {item.predicted} ({ui.confidence(item.confidence)})"
            column.image(images[item.index], caption=caption, width=84)


runs = ui.cached_runs()
done = ui.picked_runs(runs)
done = done[done["status"] == "done"].set_index("run_id", drop=False)
if done.empty:
    ui.explain_nothing_to_show()
    st.stop()
labels = ui.labels_by_id(done)
ids = list(labels)

run_id = ui.run_selectbox("Run", ids, labels, param="run")
ui.warn_unknown_link_values({"norm": ui.ON_OFF})
normalize = st.toggle("Row-normalised (share of each true digit)", key="norm", bind="query-params")
predictions = predictions_of(done.loc[run_id, "run_dir"])
if predictions is None:
    st.stop()
show_matrix(predictions, labels[run_id], normalize)

st.subheader("Difference between two runs")
others = [i for i in ids if i != run_id]
if not others:
    st.caption("Pick a second finished run to compare matrices.")
else:
    other_id = ui.run_selectbox("Compared with", others, labels, param="other")
    other = predictions_of(done.loc[other_id, "run_dir"])
    if other is not None:
        show_difference(predictions, other, (labels[run_id], labels[other_id]), normalize)

st.subheader("Misclassified test digits")
show_gallery(predictions)
