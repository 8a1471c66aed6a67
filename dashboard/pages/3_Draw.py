"""Draw: draw (or upload) a digit and see what every finished model answers.

The drawing goes through ``engines.preprocess.find_digit`` (the same 28x28 preparation as
MNIST), and each picked model predicts it. Models are loaded once per model file
(``st.cache_resource``), so a new stroke answers quickly. Loading a Keras and a PyTorch
model in this one process is safe: ``engines.load_predictor`` imports the torch side first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

import engines
from dashboard import charts, sidebar, ui
from engines import core, store
from engines.core import Predictor
from engines.preprocess import BLANK, NoDigit, find_digit, load_image_file

CANVAS_SIZE = 280
PREVIEW_SIZE = 140
DRAW, UPLOAD = "Draw", "Upload a picture"
EMPTY_MESSAGE = "Draw a digit on the canvas (or upload a picture of one) to see the predictions."
UPLOAD_MESSAGE = "Upload a PNG or JPEG picture of one digit to see the predictions."
CHOICE_KEY = "draw_models_choice"  # the Models box's last options, picks and choice


# --- input -----------------------------------------------------------------------------------
def clear_canvas() -> None:
    """A new canvas key gives a fresh, empty canvas."""
    st.session_state["canvas_round"] = st.session_state.get("canvas_round", 0) + 1


def drawn_image() -> tuple[np.ndarray | None, int]:
    """The canvas's RGBA pixels (white strokes on black), or None before the first stroke;
    and the stroke width.

    The default width, drawn at the canvas's usual digit size, comes out as thick as MNIST's
    strokes (~2.5 px at 20 px); 18 gave ~1.6 px, and the weakest model misread more digits.
    """
    from streamlit_drawable_canvas import st_canvas  # raises outside the Streamlit runtime

    width = st.slider("Stroke width", min_value=4, max_value=40, value=26, key="stroke_width")
    result = st_canvas(
        stroke_width=width,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=CANVAS_SIZE,
        width=CANVAS_SIZE,
        drawing_mode="freedraw",
        return_image_data=True,
        key=f"draw_canvas_{st.session_state.get('canvas_round', 0)}",
    )
    st.button("Clear drawing", on_click=clear_canvas, key="clear_canvas")
    return result.image_data, width


def uploaded_image() -> tuple[np.ndarray | None, str | None]:
    """An uploaded picture's pixels and file name; no pixels, with an error shown, when it
    does not decode; (None, None) before an upload."""
    upload = st.file_uploader("A picture of one digit", type=["png", "jpg", "jpeg"])
    if upload is None:
        return None, None
    try:
        return decoded_upload(upload.getvalue()), upload.name
    except ValueError as err:  # not an image, or too large (preprocess.ImageTooLarge)
        st.error(f"{upload.name}: {err}")
        return None, upload.name


@st.cache_data(show_spinner=False, max_entries=8)
def decoded_upload(data: bytes) -> np.ndarray:
    """An upload's pixels, decoded (and shrunk) once per file content, not on every rerun."""
    return load_image_file(data)


def digit_in(
    image: np.ndarray, name: str | None, pen_width: int = 0
) -> tuple[np.ndarray | None, bool]:
    """The 28x28 the models get, and whether a reason for having none was shown.

    An untouched canvas is blank too; that needs no message beyond the page's prompt.
    """
    try:
        return find_digit(image, pen_width), False
    except NoDigit as err:
        if name is None and str(err) == BLANK:
            return None, False
        st.warning(f"{name}: {err}" if name else f"Nothing to read yet: {err}")
        return None, True


def show_preprocessed(digit: np.ndarray) -> None:
    """The 28x28 the models see, enlarged with hard pixel edges."""
    enlarged = Image.fromarray(digit).resize((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.NEAREST)
    st.image(enlarged, caption="What the models see (28×28)")


# --- models ----------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=32)
def cached_predictor(run_dir: str, model_stamp: float | None) -> Predictor:
    """One loaded model per run folder and model file version (mtime)."""
    return engines.load_predictor(run_dir)


def model_stamp(run_dir: str) -> float | None:
    path = store.model_path(run_dir)
    return path.stat().st_mtime if path is not None else None


def chosen_models(done: pd.DataFrame) -> pd.DataFrame:
    """The finished runs that should predict: the picked ones by default, else all.

    A run that finishes while the page is open joins the choice; models the user took out
    stay out. The box gets a new key whenever its options (or the picks) change, so a click
    made meanwhile, carrying the old box's value, cannot undo that.
    """
    labels = ui.labels_by_id(done)
    picked = [i for i in ui.picked_run_ids() if i in labels]
    last = st.session_state.get(CHOICE_KEY)
    if last is None or last["picked"] != picked:
        default = picked or list(labels)
    else:
        default = [i for i in labels if i in last["chosen"] or i not in last["options"]]
    chosen = st.multiselect(
        "Models",
        options=list(labels),
        default=default,
        format_func=labels.get,
        key=ui.key_for("draw_models", [*labels, "|", *picked]),
    )
    st.session_state[CHOICE_KEY] = {"options": list(labels), "picked": picked, "chosen": chosen}
    return done[done["run_id"].isin(chosen)]


def predict_all(models: pd.DataFrame, digit: np.ndarray) -> dict[str, np.ndarray]:
    """Ten probabilities per model label; a model that fails gets a warning, not a traceback."""
    answers = {}
    for run in models.to_dict("records"):
        label = charts.run_label(run)
        try:  # any framework's load or predict error: report it, keep going
            with st.spinner(f"Loading {label}…"):
                predictor = cached_predictor(run["run_dir"], model_stamp(run["run_dir"]))
        except Exception as err:
            st.warning(
                f"{label}: {load_problem(err, run['run_id'])}; the other models still answer"
            )
            continue
        try:
            probabilities = predictor.predict_proba(digit[np.newaxis])[0]
        except Exception as err:
            st.warning(f"{label}: this model failed to predict ({core.short_error(err)})")
            continue
        answers[label] = np.asarray(probabilities, dtype=np.float64)
    return answers


def load_problem(err: Exception, run_id: str) -> str:
    """Why a model did not load, in words: ``engines.load_predictor``'s message (which names
    the run, as the label does already), or the error's own first line."""
    if isinstance(err, store.StoreError):
        return str(err).removeprefix(f"{run_id}: ")
    return f"its model cannot be loaded ({core.short_error(err)})"


# --- results ---------------------------------------------------------------------------------
def show_top1(answers: dict[str, np.ndarray]) -> None:
    """One card per model: the predicted digit and its probability."""
    columns = st.columns(min(len(answers), 6))
    for number, (label, probabilities) in enumerate(answers.items()):
        digit = int(np.argmax(probabilities))
        with columns[number % len(columns)]:
            st.metric(label, str(digit))
            st.caption(f"confidence {ui.confidence(probabilities[digit])}")


# --- page ------------------------------------------------------------------------------------
st.set_page_config(page_title="Draw · Digit Lab", layout="wide")
sidebar.show()
st.title("Draw a digit")

runs = ui.cached_runs()
done = runs[runs["status"] == "done"]

left, right = st.columns([3, 2])
with left:
    # Tabs, not a radio: both inputs stay on the page, so a drawing survives a look at the
    # upload tab and back. Only the open tab's input is predicted.
    draw_tab, upload_tab = st.tabs([DRAW, UPLOAD], key="input_tab", on_change="rerun")
    with draw_tab:
        drawn, pen_width = drawn_image()
    with upload_tab:
        uploaded, upload_name = uploaded_image()
    source = UPLOAD if upload_tab.open else DRAW
    if source == DRAW:
        image, name = drawn, None
    else:
        image, name, pen_width = uploaded, upload_name, 0
    if image is None:  # nothing drawn yet, or an upload that does not decode (said why)
        digit, explained = None, name is not None
    else:
        digit, explained = digit_in(image, name, pen_width)
with right:
    if digit is not None:
        show_preprocessed(digit)

if done.empty:
    st.info(
        "No finished runs to predict with yet. Train one with **Start training** in the "
        f"sidebar, or from a terminal: `{ui.cli_example()}`."
    )
    st.stop()

models = chosen_models(done)
if digit is None:
    if not explained:  # an upload that does not decode, or a speck, is explained above
        st.info(EMPTY_MESSAGE if source == DRAW else UPLOAD_MESSAGE)
elif models.empty:
    st.info("Pick at least one model above.")
else:
    answers = predict_all(models, digit)
    frameworks = {charts.run_label(run): run["framework"] for run in models.to_dict("records")}
    if answers:
        show_top1(answers)
        st.plotly_chart(charts.probabilities_figure(answers, frameworks))
