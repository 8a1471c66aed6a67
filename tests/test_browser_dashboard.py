"""The dashboard in a real browser: launch a job from the sidebar, watch it finish, share it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

import engines
from engines import store
from engines.spec import RunSpec
from tests.streamlit_server import browser_page, running_app, wait_for_idle

pytestmark = pytest.mark.browser

TRAINING_TIMEOUT_MS = 600_000  # one tiny epoch, but the machine is shared and imports are slow
SIDEBAR = '[data-testid="stSidebar"]'
MULTISELECT = '[data-testid="stMultiSelect"]'
EXCEPTION = '[data-testid="stException"]'


def launch_tiny_torch_dnn(page) -> None:
    """Sidebar: keep only torch x dnn, 1 epoch on 1000 images, press Start training."""
    sidebar = page.locator(SIDEBAR)
    for name in ("keras", "lightning", "cnn"):
        sidebar.get_by_label(f"Remove {name}").click()
        wait_for_idle(page)
    for label, value in (("Max epochs", "1"), ("Training images", "1000")):
        field = sidebar.get_by_role("spinbutton", name=label)
        field.fill(value)
        field.press("Enter")
        wait_for_idle(page)
    sidebar.get_by_role("button", name="Start training").click()


def test_sidebar_job_reaches_done_live_and_its_report_downloads(
    results_dir: Path, tmp_path: Path
) -> None:
    with running_app(results_dir) as url, browser_page() as page:
        page.goto(url)
        wait_for_idle(page)
        page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

        launch_tiny_torch_dnn(page)

        job = page.locator(SIDEBAR).get_by_text(
            re.compile(r"torch/dnn [0-9a-f]{6} · seed 42 · (queued|running)")
        )
        job.wait_for(timeout=60_000)
        page.locator(SIDEBAR).get_by_text(
            re.compile(r"torch/dnn [0-9a-f]{6} · seed 42 · done · epoch 1/1")
        ).wait_for(timeout=TRAINING_TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument === true")  # refreshed in place
        runs = engines.load_runs(results_dir)
        assert runs[["framework", "arch", "status"]].values.tolist() == [["torch", "dnn", "done"]]
        run_id = runs["run_id"][0]

        page.goto(f"{url}/Runs?runs={run_id}")
        wait_for_idle(page)
        link = page.locator('[data-testid="stCode"]').inner_text().strip()
        assert link == f"{url}/Curves?runs={run_id}"
        with page.expect_download() as download:
            page.get_by_role("button", name="Download report").click()
        name = download.value.suggested_filename  # dated: two teammates' files differ
        assert re.fullmatch(r"digitlab-report-\d{8}-\d{6}\.html", name), name
        report = tmp_path / "report.html"
        download.value.save_as(report)

        # A teammate opening the link (a page load is a new session: only the URL carries over).
        page.goto(link + "&x=seconds")
        wait_for_idle(page)
        assert page.get_by_role("radio", name="seconds").is_checked()
        page.get_by_text(f"torch/dnn {run_id[-6:]}").first.wait_for()  # in the chart legend

    html = report.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "plotly" in html.lower() and "Plotly.newPlot" in html
    assert run_id in html


def copy_runs(trained_store: Path, results_dir: Path, count: int) -> list[Path]:
    """Copies of the first ``count`` trained runs in the test's store (safe to delete)."""
    return [
        Path(shutil.copytree(d, results_dir / d.name))
        for d in store.iter_run_dirs(trained_store)[:count]
    ]


def short_label(run_dir: Path) -> str:
    """The name pickers show for a run: ``torch/dnn a1b2c3``."""
    return "{2}/{3} {4}".format(*run_dir.name.split("-"))


def choose(page, box_label: str, option: str) -> None:
    """Pick ``option`` in the multiselect labelled ``box_label`` and close its list."""
    page.locator(MULTISELECT).filter(has_text=box_label).click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    wait_for_idle(page)


def test_deleted_runs_leave_the_runs_page_choices_without_a_traceback(
    results_dir: Path, trained_store: Path
) -> None:
    deleted, gone, kept = copy_runs(trained_store, results_dir, 3)
    label = {d: short_label(d) for d in (deleted, gone, kept)}
    with running_app(results_dir) as url, browser_page() as page:
        page.goto(f"{url}/Runs")
        wait_for_idle(page)

        # Deleted on this page: its chip leaves the delete box, and the page goes on working.
        choose(page, "Runs to delete", label[deleted])
        page.get_by_role("button", name="Delete…").click()
        wait_for_idle(page)
        page.get_by_role("button", name=re.compile("Yes, delete")).click()
        page.get_by_text("Deleted 1 run(s).").wait_for()  # the rerun has happened
        wait_for_idle(page)
        assert not deleted.exists()
        delete_box = page.locator(MULTISELECT).filter(has_text="Runs to delete")
        expect(delete_box).not_to_contain_text(label[deleted])

        # Deleted elsewhere (another tab, a teammate) while chosen here.
        choose(page, "Runs to delete", label[gone])
        choose(page, "Runs to share", label[gone])
        shutil.rmtree(gone)
        choose(page, "Runs to share", label[kept])

        expect(page.locator(EXCEPTION)).to_have_count(0)
        expect(delete_box).not_to_contain_text(label[gone])
        share_box = page.locator(MULTISELECT).filter(has_text="Runs to share")
        expect(share_box).to_contain_text(label[kept])
        expect(share_box).not_to_contain_text(label[gone])
        expect(page.get_by_role("button", name="Export bundle")).to_be_visible()


def test_a_sidebar_cancel_clicked_as_the_job_list_changes_is_not_lost(results_dir: Path) -> None:
    job = store.create_run(RunSpec("torch", "dnn"), results_dir, status="queued")
    with running_app(results_dir) as url, browser_page() as page:
        page.goto(url)
        wait_for_idle(page)
        name = f"Cancel torch/dnn {job.name[-6:]}"
        cancel = page.locator(SIDEBAR).get_by_role("button", name=name).element_handle()

        # Another job appears (a teammate, a worker starting one) just before the click:
        # the job list reruns the whole page for it, which used to drop the click.
        store.create_run(RunSpec("torch", "cnn"), results_dir, status="queued")
        cancel.click()

        expect(page.get_by_text("cancelled before it started")).to_be_visible(timeout=60_000)
    assert store.read_run(job)["status"] == "cancelled"


def test_a_run_deleted_while_shown_on_confusion_leaves_its_box(
    results_dir: Path, trained_store: Path
) -> None:
    """The Run box must name the run whose matrix is shown, never a deleted one."""
    first, doomed, third = copy_runs(trained_store, results_dir, 3)
    with running_app(results_dir) as url, browser_page() as page:
        page.goto(f"{url}/Confusion?run={doomed.name}")
        wait_for_idle(page)
        run_box = page.get_by_role("combobox", name="Run", exact=True)
        expect(run_box).to_have_value(short_label(doomed))

        shutil.rmtree(doomed)  # from another tab, or by a teammate
        page.get_by_text("Row-normalised").click()
        wait_for_idle(page)

        expect(page.locator(EXCEPTION)).to_have_count(0)
        expect(run_box).not_to_have_value(short_label(doomed))
        shown = run_box.input_value()
        assert shown in (short_label(first), short_label(third))
        expect(page.get_by_text(f"{shown}: share of each true digit")).to_be_visible()
