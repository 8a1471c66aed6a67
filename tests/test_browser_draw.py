"""Draw page in a real browser: mouse strokes on the canvas get an answer from every model."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

import engines
from tests.streamlit_server import browser_page, running_app, wait_for_idle

pytestmark = pytest.mark.browser

CANVAS = '[data-testid="stBidiComponentIsolated"] canvas.upper-canvas'
EMPTY_MESSAGE = "Draw a digit on the canvas"
ANSWER_TIMEOUT_MS = 180_000  # the first stroke loads every model: slow on a shared machine


@pytest.fixture(scope="module")
def done_runs(trained_store: Path) -> list[str]:
    runs = engines.load_runs(trained_store)
    done = runs[runs["status"] == "done"]
    assert set(done["framework"]) >= {"keras", "torch"}, "need Keras and PyTorch models"
    return [f"{run.framework}/{run.arch} {run.run_id[-6:]}" for run in done.itertuples()]


@pytest.fixture(scope="module")
def draw_page(trained_store: Path) -> Iterator:
    """The Draw page of an app serving the trained store, with the canvas ready."""
    with running_app(trained_store) as url, browser_page() as page:
        page.goto(f"{url}/Draw")
        wait_for_idle(page)
        page.locator(CANVAS).wait_for()
        yield page


def draw_seven(page, canvas) -> None:
    """A top bar and a diagonal, as a person would draw a 7 with the mouse."""
    box = canvas.bounding_box()

    def at(fx: float, fy: float) -> tuple[float, float]:
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    page.mouse.move(*at(0.25, 0.2))
    page.mouse.down()
    page.mouse.move(*at(0.75, 0.2), steps=15)
    page.mouse.move(*at(0.45, 0.85), steps=20)
    page.mouse.up()


def wait_for_answers(page, count: int) -> None:
    """Until ``count`` prediction cards are on the page (the first answer loads every model)."""
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= {count}",
        timeout=ANSWER_TIMEOUT_MS,
    )


def test_empty_canvas_asks_for_a_digit_instead_of_predicting(draw_page) -> None:
    page = draw_page
    page.get_by_text(EMPTY_MESSAGE).wait_for()
    assert page.locator('[data-testid="stMetric"]').count() == 0


def test_drawn_digit_gets_one_prediction_per_finished_model(draw_page, done_runs) -> None:
    page = draw_page
    draw_seven(page, page.locator(CANVAS))
    cards = page.locator('[data-testid="stMetric"]')
    wait_for_answers(page, len(done_runs))
    page.locator('[data-testid="stPlotlyChart"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_for_idle(page, ANSWER_TIMEOUT_MS)
    assert cards.count() == len(done_runs)
    texts = [cards.nth(i).inner_text() for i in range(cards.count())]
    for label in done_runs:
        card = next((text for text in texts if label in text), None)
        assert card is not None, f"no prediction for {label}: {texts}"
        assert any(re.fullmatch(r"\d", line.strip()) for line in card.splitlines()), card
    assert page.get_by_text("What the models see").is_visible()
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1
    assert page.get_by_text(re.compile("cannot be loaded|failed to predict")).count() == 0
    assert page.get_by_text(EMPTY_MESSAGE).count() == 0


def test_clear_button_empties_the_canvas_and_the_predictions(draw_page) -> None:
    page = draw_page
    if page.locator('[data-testid="stMetric"]').count() == 0:
        draw_seven(page, page.locator(CANVAS))
        page.locator('[data-testid="stMetric"]').first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.get_by_role("button", name="Clear drawing").click()
    page.get_by_text(EMPTY_MESSAGE).wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator('[data-testid="stMetric"]').count() == 0


def fresh_canvas(page):
    """The canvas of a freshly loaded Draw page.

    After Clear drawing a new canvas replaces the old one, and for a moment the old one can
    still be the only canvas on the page: a stroke drawn on it then is lost. Reloading the
    page gives a canvas that stays.
    """
    page.reload()
    wait_for_idle(page)
    canvas = page.locator(CANVAS)  # Playwright locators see into the component's shadow root
    expect(canvas).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    page.get_by_text(EMPTY_MESSAGE).wait_for(timeout=ANSWER_TIMEOUT_MS)
    return canvas


def test_a_dot_is_called_a_speck_not_classified(draw_page) -> None:
    page = draw_page
    box = fresh_canvas(page).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 3, y + 2, steps=5)  # a short wiggle: one blob of the default stroke
    page.mouse.up()
    page.get_by_text(re.compile("only a small speck of ink|only a dot")).wait_for(
        timeout=ANSWER_TIMEOUT_MS
    )
    wait_for_idle(page, ANSWER_TIMEOUT_MS)
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert page.get_by_text(EMPTY_MESSAGE).count() == 0  # the reason, not the generic prompt
    page.get_by_role("button", name="Clear drawing").click()
    page.get_by_text(EMPTY_MESSAGE).wait_for(timeout=ANSWER_TIMEOUT_MS)


def test_a_drawing_survives_a_look_at_the_upload_tab(draw_page, done_runs) -> None:
    page = draw_page
    draw_seven(page, fresh_canvas(page))
    page.locator('[data-testid="stPlotlyChart"]').wait_for(timeout=ANSWER_TIMEOUT_MS)

    page.get_by_role("tab", name="Upload a picture").click()
    page.get_by_text("Upload a PNG or JPEG picture").wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_for_idle(page, ANSWER_TIMEOUT_MS)
    assert page.locator('[data-testid="stMetric"]').count() == 0  # the drawing is not the input

    page.get_by_role("tab", name="Draw").click()
    wait_for_answers(page, len(done_runs))
    wait_for_idle(page, ANSWER_TIMEOUT_MS)
    assert page.locator('[data-testid="stMetric"]').count() == len(done_runs)
    assert page.get_by_text(EMPTY_MESSAGE).count() == 0


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def seven_on_paper_png() -> bytes:
    """A photo-like upload: a dark 7 on light paper."""
    paper = Image.new("RGB", (300, 400), (235, 232, 220))
    ImageDraw.Draw(paper).line([(70, 80), (230, 80), (120, 330)], fill=(30, 30, 40), width=22)
    return png_bytes(paper)


def upload(page, name: str, data: bytes) -> None:
    uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    uploader.set_input_files(files=[{"name": name, "mimeType": "image/png", "buffer": data}])


def test_uploaded_picture_is_predicted_and_garbage_is_refused(draw_page, done_runs) -> None:
    page = draw_page
    page.get_by_role("tab", name="Upload a picture").click()
    page.get_by_text("Upload a PNG or JPEG picture").wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_for_idle(page, ANSWER_TIMEOUT_MS)  # the tab's rerun done: no drawing's answers left
    upload(page, "seven.png", seven_on_paper_png())
    wait_for_answers(page, len(done_runs))
    assert page.locator('[data-testid="stMetric"]').count() == len(done_runs)

    upload(page, "broken.png", b"this is not a picture")
    page.get_by_text("not an image").wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_for_idle(page, ANSWER_TIMEOUT_MS)
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert page.get_by_text("Upload a PNG or JPEG picture").count() == 0  # no generic prompt

    upload(page, "blank.png", png_bytes(Image.new("RGB", (300, 300), "white")))
    page.get_by_text("blank.png: no digit found").wait_for(timeout=ANSWER_TIMEOUT_MS)
    wait_for_idle(page, ANSWER_TIMEOUT_MS)
    assert page.locator('[data-testid="stMetric"]').count() == 0


def test_a_broken_model_gets_a_warning_and_the_others_still_answer(
    trained_store: Path, tmp_path: Path
) -> None:
    """A store with a good PyTorch run and a Keras run whose model file is damaged."""
    store = tmp_path / "results"
    runs = engines.load_runs(trained_store)
    good = runs[(runs["framework"] == "torch") & (runs["status"] == "done")].iloc[0]
    broken = runs[(runs["framework"] == "keras") & (runs["status"] == "done")].iloc[0]
    shutil.copytree(good["run_dir"], store / good["run_id"])
    shutil.copytree(broken["run_dir"], store / broken["run_id"])
    (store / broken["run_id"] / "model.keras").write_bytes(b"not a model")

    with running_app(store) as url, browser_page() as page:
        page.goto(f"{url}/Draw")
        wait_for_idle(page)
        draw_seven(page, page.locator(CANVAS))
        page.locator('[data-testid="stPlotlyChart"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
        wait_for_idle(page, ANSWER_TIMEOUT_MS)
        cards = page.locator('[data-testid="stMetric"]')
        assert cards.count() == 1
        assert good["run_id"][-6:] in cards.first.inner_text()
        warning = page.get_by_text("its model cannot be loaded")
        assert warning.count() == 1
        assert broken["run_id"][-6:] in warning.inner_text()
        assert "model.keras is damaged or cut short" in warning.inner_text()
        assert (
            "StoreError" not in warning.inner_text()
            and "File not found" not in warning.inner_text()
        )
        assert page.locator('[data-testid="stException"]').count() == 0


def test_a_run_that_finishes_while_the_page_is_open_joins_the_predictions(
    trained_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "results"
    runs = engines.load_runs(trained_store)
    done = runs[(runs["framework"] == "torch") & (runs["status"] == "done")]
    first, later = done.iloc[0], done.iloc[1]
    shutil.copytree(first["run_dir"], store / first["run_id"])

    with running_app(store) as url, browser_page() as page:
        page.goto(f"{url}/Draw")
        wait_for_idle(page)
        page.locator(CANVAS).wait_for()
        shutil.copytree(later["run_dir"], store / later["run_id"])  # a job has just finished
        draw_seven(page, page.locator(CANVAS))
        page.locator('[data-testid="stPlotlyChart"]').wait_for(timeout=ANSWER_TIMEOUT_MS)
        wait_for_idle(page, ANSWER_TIMEOUT_MS)
        cards = page.locator('[data-testid="stMetric"]').all_inner_texts()
        assert len(cards) == 2, cards
        assert any(later["run_id"][-6:] in card for card in cards)
