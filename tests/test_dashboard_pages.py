"""Every dashboard page, run headless with Streamlit's AppTest on real stores.

Empty store: each page explains itself instead of failing. ``trained_store`` (six real tiny
runs): the numbers a user reads on the pages are the ones in the run store.
"""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import engines
from dashboard.ui import confidence
from engines import bundle, jobs, metrics, store
from engines.spec import ARCH_DEFAULTS, ARCHS, RunSpec
from tests.conftest import PROJECT_ROOT

PAGES = {
    "home": "dashboard/Home.py",
    "curves": "dashboard/pages/1_Curves.py",
    "confusion": "dashboard/pages/2_Confusion.py",
    "draw": "dashboard/pages/3_Draw.py",
    "runs": "dashboard/pages/4_Runs.py",
}
TIMEOUT_S = 120  # a shared, busy machine; pages read Parquet and build plotly figures


def open_page(name: str, runs: list[str] | None = None) -> AppTest:
    """Run a page once (optionally with ``?runs=…``) and check it raised nothing."""
    app = AppTest.from_file(str(PROJECT_ROOT / PAGES[name]), default_timeout=TIMEOUT_S)
    if runs:
        app.query_params["runs"] = ",".join(runs)
    return rerun(app)


def rerun(app: AppTest) -> AppTest:
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def press(app: AppTest, button) -> AppTest:
    button.click()
    return rerun(app)


def box(app: AppTest, label: str):
    """The page's selectbox labelled ``label`` (its key changes with its options)."""
    (found,) = [selectbox for selectbox in app.selectbox if selectbox.label == label]
    return found


def figures(app: AppTest) -> list[dict]:
    """The page's plotly figures as JSON dicts (``data`` traces and ``layout``)."""
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def values(array) -> np.ndarray:
    """A plotly JSON array: a list, or the base64 ``{dtype, bdata, shape}`` typed form."""
    if isinstance(array, dict):
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        shape = array.get("shape")
        return flat.reshape([int(n) for n in shape.split(",")]) if shape else flat
    return np.asarray(array)


def traces(figure: dict, name: str | None = None, axis: str = "x") -> list[dict]:
    """Traces of a figure (optionally only ``name``'s) on one x axis (x = left, x2 = right)."""
    return [
        trace
        for trace in figure["data"]
        if trace.get("xaxis", "x") == axis and (name is None or trace["name"] == name)
    ]


def trace_names(figure: dict) -> set[str]:
    return {trace["name"] for trace in figure["data"]}


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def table_in(app: AppTest, expander: str):
    """The (first) dataframe in the page's expander labelled ``expander``."""
    (found,) = [e for e in app.main.expander if e.label == expander]
    return found.dataframe[0]


def label(run: pd.Series) -> str:
    return f"{run.framework}/{run.arch} {run.run_id[-6:]}"


@pytest.fixture
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue jobs without starting the background worker (nothing trains)."""
    monkeypatch.setattr(jobs, "start_worker", lambda *args, **kwargs: None)


@pytest.fixture
def trained(trained_store: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """The dashboard pointed at the six-run store; returns its runs (read-only!)."""
    monkeypatch.setenv("RESULTS_DIR", str(trained_store))
    return engines.load_runs(trained_store)


def queued_specs(results_dir: Path) -> list[RunSpec]:
    runs = engines.load_runs(results_dir)
    assert set(runs["status"]) <= {"queued"}
    return [RunSpec.from_dict(store.read_run(d)["spec"]) for d in runs["run_dir"]]


# --- empty store ---------------------------------------------------------------------------
def test_the_empty_stores_terminal_command_trains_into_the_store_shown(results_dir: Path) -> None:
    app = open_page("home")

    command = shlex.split(texts(app.code))
    assert command[:3] == [".venv/bin/python", "-m", "engines"]
    assert Path(command[command.index("--results-dir") + 1]) == results_dir  # RESULTS_DIR's


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_opens_on_an_empty_store_without_error(results_dir: Path, page: str) -> None:
    app = open_page(page)

    assert not app.error
    assert app.sidebar.button(key="launch_start").label == "Start training"


def test_empty_home_says_how_to_start_a_run(results_dir: Path) -> None:
    app = open_page("home")

    assert "Start training" in texts(app.info)
    assert "python -m engines" in texts(app.code) and " grid " in texts(app.code)
    assert not app.dataframe


def test_quick_start_queues_all_six_pairs_with_a_short_spec(results_dir: Path, no_worker) -> None:
    app = open_page("home")

    quick_start = next(b for b in app.button if b.label.startswith("Quick start"))
    press(app, quick_start)

    specs = queued_specs(results_dir)
    assert sorted(s.label for s in specs) == sorted(
        f"{f}/{a}" for f in ("keras", "torch", "lightning") for a in ("dnn", "cnn")
    )
    assert {(s.epochs, s.train_limit) for s in specs} == {(2, 10_000)}
    assert len(app.dataframe[0].value) == 6  # the leaderboard shows them at once
    worker_order = [d.name[-6:] for d in jobs.queued_runs(results_dir)]
    cards = [m.value for m in app.sidebar.markdown if str(m.value).startswith("**")]
    assert [card.split("**")[1][-6:] for card in cards] == worker_order  # the job list's order


def test_sidebar_start_queues_one_job_per_chosen_pair_with_the_chosen_settings(
    results_dir: Path, no_worker
) -> None:
    app = open_page("curves")
    app.sidebar.multiselect(key="launch_fw").set_value(["torch"])
    app.sidebar.multiselect(key="launch_arch").set_value(["dnn", "cnn"])
    app.sidebar.number_input(key="launch_epochs").set_value(3)
    app.sidebar.number_input(key="launch_train_limit").set_value(1000)
    app.sidebar.number_input(key="launch_seed").set_value(7)
    app.sidebar.text_input(key="launch_notes").set_value("seed 7 check")

    press(app, app.sidebar.button(key="launch_start"))

    specs = queued_specs(results_dir)
    assert sorted(s.label for s in specs) == ["torch/cnn", "torch/dnn"]
    assert {(s.epochs, s.train_limit, s.seed, s.notes) for s in specs} == {
        (3, 1000, 7, "seed 7 check")
    }
    # Left empty: each arch's default.
    fields = (
        "scheduler",
        "es_patience",
        "augment_shift",
        "augment_rotate",
        "augment_zoom",
        "label_smoothing",
    )
    assert {s.arch: tuple(getattr(s, f) for f in fields) for s in specs} == {
        arch: tuple(ARCH_DEFAULTS[arch][f] for f in fields) for arch in ("dnn", "cnn")
    }
    assert "Queued 2 job(s)" in texts(app.toast)
    for run in engines.load_runs(results_dir).itertuples():  # followed in the job list
        assert f"**{label(run)}** · seed 7" in texts(app.sidebar.markdown)


def test_sidebar_start_with_three_seeds_queues_each_pair_three_times_seed_by_seed(
    results_dir: Path, no_worker
) -> None:
    app = open_page("home")
    app.sidebar.multiselect(key="launch_fw").set_value(["torch", "keras"])
    app.sidebar.multiselect(key="launch_arch").set_value(["dnn"])
    app.sidebar.number_input(key="launch_seed").set_value(7)
    app.sidebar.number_input(key="launch_seeds").set_value(3)

    press(app, app.sidebar.button(key="launch_start"))

    in_worker_order = [
        RunSpec.from_stored(store.read_run(d)["spec"]) for d in jobs.queued_runs(results_dir)
    ]
    assert [(s.framework, s.seed) for s in in_worker_order] == [
        ("torch", 7), ("keras", 7), ("torch", 8), ("keras", 8), ("torch", 9), ("keras", 9),
    ]  # fmt: skip
    assert "Queued 6 job(s)" in texts(app.toast)


def sidebar_number_keys(app: AppTest) -> set[str]:
    return {field.key for field in app.sidebar.number_input}


def test_the_launcher_shows_only_the_chosen_schedulers_settings(
    results_dir: Path, no_worker
) -> None:
    plateau = {"launch_plateau_factor", "launch_plateau_patience"}
    step = {"launch_step_size", "launch_step_gamma"}
    assert {ARCH_DEFAULTS[arch]["scheduler"] for arch in ARCHS} == {"cosine"}
    app = open_page("home")
    assert not (plateau | step) & sidebar_number_keys(app)  # cosine has none of them

    app.sidebar.selectbox(key="launch_scheduler").set_value("plateau")
    rerun(app)
    assert plateau <= sidebar_number_keys(app)
    assert not step & sidebar_number_keys(app)

    app.sidebar.number_input(key="launch_plateau_patience").set_value(2)
    press(app, app.sidebar.button(key="launch_start"))
    assert {(s.scheduler, s.plateau_patience) for s in queued_specs(results_dir)} == {
        ("plateau", 2)
    }


def test_the_launcher_warns_about_a_learning_rate_that_will_diverge_but_still_starts(
    results_dir: Path, no_worker
) -> None:
    app = open_page("home")
    app.sidebar.number_input(key="launch_lr").set_value(0.01)
    assert not rerun(app).sidebar.warning  # 0.01 is high but plausible

    app.sidebar.number_input(key="launch_lr").set_value(5.0)
    assert "will most likely diverge" in texts(rerun(app).sidebar.warning)
    press(app, app.sidebar.button(key="launch_start"))

    assert {spec.lr for spec in queued_specs(results_dir)} == {5.0}


def test_the_launcher_warns_about_a_learning_rate_too_small_to_learn_with(
    results_dir: Path, no_worker
) -> None:
    app = open_page("home")
    app.sidebar.number_input(key="launch_lr").set_value(1e-4)
    assert not rerun(app).sidebar.warning  # low but plausible

    app.sidebar.number_input(key="launch_lr").set_value(1e-9)
    assert "will barely learn" in texts(rerun(app).sidebar.warning)


def test_pressing_start_again_does_not_queue_the_same_job_twice(
    results_dir: Path, no_worker
) -> None:
    app = open_page("home")
    app.sidebar.multiselect(key="launch_fw").set_value(["torch"])
    app.sidebar.multiselect(key="launch_arch").set_value(["dnn"])
    press(app, app.sidebar.button(key="launch_start"))
    (first,) = engines.load_runs(results_dir).itertuples()

    press(app, app.sidebar.button(key="launch_start"))  # a double click

    assert len(engines.load_runs(results_dir)) == 1
    toasts = texts(app.toast)  # stays until closed, and is not undone by the job ending
    assert f"running with the same settings and seed: {label(first)} (seed 42)" in toasts
    assert "Queued 0 job(s)" not in toasts
    app.sidebar.number_input(key="launch_seed").set_value(7)
    press(app, app.sidebar.button(key="launch_start"))  # another seed is another run
    assert sorted(s.seed for s in queued_specs(results_dir)) == [7, 42]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("launch_lr", 0.0, "Learning rate: must be"),
        ("launch_train_limit", 0, "Training images: must be between 2 and 55000"),
        ("launch_train_limit", 55_001, "Training images: must be between 2 and 55000"),
        ("launch_seeds", 0, "Seeds per pair: must be between 1 and 10"),
    ],
)
def test_sidebar_refuses_invalid_settings_and_queues_nothing(
    results_dir: Path, no_worker, field: str, value: float, message: str
) -> None:
    app = open_page("home")
    app.sidebar.number_input(key=field).set_value(value)

    press(app, app.sidebar.button(key="launch_start"))

    assert message in texts(app.sidebar.error)
    assert engines.load_runs(results_dir).empty


def test_a_refused_start_stays_on_screen_until_its_fields_change(
    results_dir: Path, no_worker
) -> None:
    app = open_page("home")
    app.sidebar.number_input(key="launch_train_limit").set_value(0)
    press(app, app.sidebar.button(key="launch_start"))

    rerun(app)  # the sidebar reruns the page whenever a job changes status
    assert "Not started: Training images" in texts(app.sidebar.error)

    app.sidebar.number_input(key="launch_train_limit").set_value(1000)
    assert not rerun(app).sidebar.error  # said about other settings


def test_the_launcher_warns_about_a_high_learning_rate_only_where_start_takes_it(
    results_dir: Path, no_worker
) -> None:
    app = open_page("home")
    app.sidebar.number_input(key="launch_lr").set_value(5.0)
    assert "Start anyway" in texts(rerun(app).sidebar.warning)

    app.sidebar.number_input(key="launch_lr").set_value(50.0)
    assert "Start anyway" not in texts(rerun(app).sidebar.warning)


def test_sidebar_refuses_to_start_without_a_framework(results_dir: Path, no_worker) -> None:
    app = open_page("home")
    app.sidebar.multiselect(key="launch_fw").set_value([])

    press(app, app.sidebar.button(key="launch_start"))

    assert "framework" in texts(app.sidebar.error)
    assert engines.load_runs(results_dir).empty


def test_unreadable_run_folders_are_listed_not_raised(results_dir: Path) -> None:
    (results_dir / "broken-run").mkdir()
    (results_dir / "broken-run" / "run.json").write_text("{ not json")

    app = open_page("home")

    assert "broken-run" in texts(app.expander[0].markdown)


def test_a_done_run_missing_its_files_is_named_on_home(results_dir: Path) -> None:
    done = store.create_run(RunSpec("torch", "dnn"), results_dir)
    store.update_run(done, status="done", test_accuracy=0.9)

    app = open_page("home")

    assert "1 done run(s) incomplete" in app.expander[0].label
    assert "no history.parquet, test_predictions.parquet, model file" in texts(
        app.expander[0].markdown
    )
    assert done.name in set(app.dataframe[0].value["run_id"])  # still listed


# --- trained store -------------------------------------------------------------------------
def test_leaderboard_shows_every_run_with_the_accuracy_in_its_run_json(trained) -> None:
    app = open_page("home")

    table = app.dataframe[0].value.set_index("run_id")
    assert set(table.index) == set(trained["run_id"])
    assert list(table.columns) == ["run", *store.LEADERBOARD_COLUMNS[1:]]
    assert table["run"].to_dict() == {run.run_id: label(run) for run in trained.itertuples()}
    assert "run_id" not in app.dataframe[0].proto.column_order  # the short name instead
    for run_dir in trained["run_dir"]:
        run = json.loads((Path(run_dir) / "run.json").read_text())
        shown = table.loc[run["run_id"], "test_accuracy"]  # shown in percent
        assert shown == pytest.approx(100 * run["test_accuracy"], abs=1e-9)
        assert table.loc[run["run_id"], "trainable_params"] == run["trainable_params"]
    accuracies = table["test_accuracy"].tolist()
    assert accuracies == sorted(accuracies, reverse=True)  # best first


def test_leaderboard_shows_notes_only_when_a_run_has_some(results_dir: Path) -> None:
    store.create_run(RunSpec("torch", "dnn"), results_dir)
    assert "spec_notes" not in open_page("home").dataframe[0].value.columns

    noted = store.create_run(RunSpec("torch", "cnn", notes="wider kernels?"), results_dir)
    table = open_page("home").dataframe[0].value.set_index("run_id")

    assert table.loc[noted.name, "spec_notes"] == "wider kernels?"
    assert table.columns[-1] == "spec_notes"  # after the numbers


def test_leaderboard_names_the_machine_only_when_runs_come_from_several(
    results_dir: Path,
) -> None:
    mine = store.create_run(RunSpec("torch", "dnn"), results_dir, host={"name": "my-laptop"})
    assert "host" not in open_page("home").dataframe[0].value.columns  # one machine

    theirs = store.create_run(RunSpec("torch", "cnn"), results_dir, host={"name": "lab-server"})
    table = open_page("home").dataframe[0].value.set_index("run_id")

    assert table.loc[mine.name, "host"] == "my-laptop"
    assert table.loc[theirs.name, "host"] == "lab-server"


def test_leaderboard_filters_by_framework_and_architecture(trained) -> None:
    app = open_page("home")
    app.multiselect(key="filter_framework").set_value(["keras"])
    app.multiselect(key="filter_arch").set_value(["cnn"])

    table = rerun(app).dataframe[0].value

    assert table[["framework", "arch"]].drop_duplicates().values.tolist() == [["keras", "cnn"]]


def test_grouping_by_seed_shows_each_settings_mean_and_spread(results_dir: Path) -> None:
    accuracies = {1: 0.97, 2: 0.98, 3: 0.99}
    for seed, accuracy in accuracies.items():
        run_dir = store.create_run(RunSpec("torch", "dnn", seed=seed), results_dir)
        store.update_run(run_dir, status="done", test_accuracy=accuracy)
    other = store.create_run(RunSpec("torch", "dnn", lr=0.01), results_dir)
    store.update_run(other, status="done", test_accuracy=0.95)
    app = open_page("home")
    assert len(app.dataframe[0].value) == 4  # one row per run until asked

    app.toggle(key="by_seed").set_value(True)
    table = rerun(app).dataframe[0].value

    assert table["runs"].tolist() == [3, 1] and table["seeds"].tolist() == ["1, 2, 3", "42"]
    assert table["accuracy_mean"].tolist() == pytest.approx([98.0, 95.0])
    assert table["accuracy_std"].iloc[0] == pytest.approx(1.0)  # points
    assert table["spec_lr"].tolist() == [ARCH_DEFAULTS["dnn"]["lr"], 0.01]  # what differs


def test_picked_runs_round_trip_through_the_url(trained) -> None:
    first, second, third = trained["run_id"][:3]
    app = open_page("home", runs=[first, second])
    assert app.multiselect(key="pick").value == [first, second]

    app.multiselect(key="pick").unselect(first).select(third)
    rerun(app)

    assert app.query_params["runs"] == f"{second},{third}"
    rerun(app.switch_page("pages/1_Curves.py"))  # the pick follows to another page
    expected = {label(run) for run in trained.itertuples() if run.run_id in (second, third)}
    assert trace_names(figures(app)[0]) == expected


def test_curves_show_loss_accuracy_and_lr_of_the_picked_runs(trained) -> None:
    picked = trained.iloc[:2]
    app = open_page("curves", runs=list(picked["run_id"]))

    accuracy, loss, lr = figures(app)
    assert trace_names(accuracy) == {label(run) for run in picked.itertuples()}
    lr_table = table_in(app, "Learning rate per epoch (table)").value
    for run in picked.itertuples():
        history = store.read_history(run.run_dir)
        (val_accuracy,) = traces(accuracy, label(run), axis="x2")
        np.testing.assert_allclose(values(val_accuracy["y"]), history["val_accuracy"])
        (train_loss,) = traces(loss, label(run), axis="x")
        np.testing.assert_allclose(values(train_loss["y"]), history["train_loss"])
        (schedule,) = traces(lr, label(run))
        np.testing.assert_allclose(values(schedule["y"]), history["lr"])
        np.testing.assert_allclose(lr_table[label(run)].to_numpy(), history["lr"])
    assert lr["layout"]["yaxis"]["type"] == "log"


def test_curves_loss_goes_on_a_log_scale_when_asked_and_the_lr_table_keeps_4_digits(
    trained,
) -> None:
    app = open_page("curves", runs=[trained["run_id"].iloc[0]])
    app.checkbox(key="log_loss").check()

    accuracy, loss, _ = figures(rerun(app))

    assert loss["layout"]["yaxis"]["type"] == "log"
    assert accuracy["layout"]["yaxis"].get("type") != "log"
    lr_table = table_in(app, "Learning rate per epoch (table)")
    lr_column = json.loads(lr_table.proto.columns)[label(trained.iloc[0])]
    assert lr_column["type_config"]["format"] == "%.4g"  # 0.00225 shown, not 0.0023


def test_curves_default_to_every_finished_run(trained) -> None:
    app = open_page("curves")

    expected = {label(run) for run in trained.itertuples() if run.status == "done"}
    assert trace_names(figures(app)[0]) == expected


def test_curves_by_wall_clock_use_cumulative_epoch_seconds(trained) -> None:
    run = trained.iloc[0]
    app = open_page("curves", runs=[run.run_id])

    app.radio(key="x").set_value("seconds")
    accuracy, _, _ = figures(rerun(app))

    history = store.read_history(run.run_dir)
    (train_accuracy,) = traces(accuracy)
    np.testing.assert_allclose(values(train_accuracy["x"]), history["epoch_seconds"].cumsum())


def test_curves_grouped_by_seed_draw_each_settings_mean_inside_its_range(
    results_dir: Path,
) -> None:
    val_accuracy = {1: [0.90, 0.94], 2: [0.92, 0.98]}
    for seed, accuracies in val_accuracy.items():
        run_dir = store.create_run(RunSpec("torch", "dnn", seed=seed), results_dir)
        run = store.update_run(run_dir, status="done", test_accuracy=accuracies[-1])
        rows = [
            {"epoch": epoch, "train_loss": 0.1, "train_accuracy": 0.9, "val_loss": 0.2,
             "val_accuracy": accuracy, "lr": 0.001, "epoch_seconds": 1.0}
            for epoch, accuracy in enumerate(accuracies, start=1)
        ]  # fmt: skip
        store.write_history(run_dir, run, rows)
    app = open_page("curves")
    assert len(trace_names(figures(app)[0])) == 2  # one line per run until asked

    app.toggle(key="by_seed").set_value(True)
    accuracy, _, lr = figures(rerun(app))

    group = "torch/dnn · 2 seeds"
    assert trace_names(accuracy) == {group} and trace_names(lr) == {group}
    top, bottom, mean = traces(accuracy, group, axis="x2")  # the band's edges, then the line
    np.testing.assert_allclose(values(mean["y"]), [0.91, 0.96])
    np.testing.assert_allclose(values(top["y"]), [0.92, 0.98])
    np.testing.assert_allclose(values(bottom["y"]), [0.90, 0.94])
    assert bottom["fill"] == "tonexty" and not bottom["showlegend"]
    # hovering the mean gives the range and the run count, not the mean alone
    np.testing.assert_allclose(values(mean["customdata"]), [[0.90, 0.92, 2], [0.94, 0.98, 2]])
    assert (
        "range %{customdata[0]:.2%} – %{customdata[1]:.2%} (runs: %{customdata[2]})"
        in (mean["hovertemplate"])
    )


def test_a_share_link_can_open_the_curves_grouped_by_seed(results_dir: Path) -> None:
    for seed in (1, 2):
        run_dir = store.create_run(RunSpec("torch", "dnn", seed=seed), results_dir)
        run = store.update_run(run_dir, status="done", test_accuracy=0.9)
        row = {"epoch": 1, "train_loss": 0.1, "train_accuracy": 0.9, "val_loss": 0.2,
               "val_accuracy": 0.9, "lr": 0.001, "epoch_seconds": 1.0}  # fmt: skip
        store.write_history(run_dir, run, [row])
    ids = list(engines.load_runs(results_dir)["run_id"])
    app = open_page("runs", runs=ids)
    assert "by_seed" not in texts(app.code)

    app.checkbox(key="link_by_seed").check()
    link = texts(rerun(app).code)

    query = link.split("?", 1)[1]
    assert query == f"runs={','.join(ids)}&by_seed=true"
    curves = AppTest.from_file(str(PROJECT_ROOT / PAGES["curves"]), default_timeout=TIMEOUT_S)
    curves.query_params.update(dict(part.split("=") for part in query.split("&")))
    accuracy, _, _ = figures(rerun(curves))
    assert trace_names(accuracy) == {"torch/dnn · 2 seeds"}


def test_grouped_curves_name_what_sets_apart_two_settings_of_one_pair(results_dir: Path) -> None:
    for spec in (RunSpec("torch", "dnn", seed=1), RunSpec("torch", "dnn", seed=1),
                 RunSpec("torch", "dnn", lr=0.01)):  # fmt: skip
        run_dir = store.create_run(spec, results_dir)
        run = store.update_run(run_dir, status="done", test_accuracy=0.9)
        row = {"epoch": 1, "train_loss": 0.1, "train_accuracy": 0.9, "val_loss": 0.2,
               "val_accuracy": 0.9, "lr": spec.lr, "epoch_seconds": 1.0}  # fmt: skip
        store.write_history(run_dir, run, [row])
    app = open_page("curves")

    app.toggle(key="by_seed").set_value(True)
    accuracy, _, _ = figures(rerun(app))

    assert trace_names(accuracy) == {
        "torch/dnn · 2 runs, 1 seed · learning rate 0.003",  # the same seed twice
        "torch/dnn · 1 seed · learning rate 0.01",
    }
    assert accuracy["layout"]["legend"]["title"]["text"] == "setting (mean of its runs)"
    expanders = [e.label for e in app.main.expander]
    assert expanders == ["Curves as a table"]  # no LR table of means no run used


def test_curves_name_a_run_that_ended_before_its_first_epoch(results_dir: Path) -> None:
    cancelled = store.create_run(RunSpec("lightning", "cnn"), results_dir, status="queued")
    store.update_run(cancelled, status="cancelled", error="cancelled")

    app = open_page("curves", runs=[cancelled.name])

    assert "cancelled before its first epoch: no curves" in texts(app.caption)
    assert "history.parquet" not in texts(app.warning)


def test_curves_of_a_cancelled_run_are_labelled_cancelled(results_dir: Path) -> None:
    """Its shorter curve must not read as a finished run that simply stopped early."""
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir)
    row = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.4,
           "val_accuracy": 0.85, "lr": 0.001, "epoch_seconds": 1.0}  # fmt: skip
    store.write_history(run_dir, store.read_run(run_dir), [row])
    store.update_run(run_dir, status="cancelled", error="cancelled")

    app = open_page("curves", runs=[run_dir.name])

    (accuracy, _, _) = figures(app)
    assert trace_names(accuracy) == {f"torch/dnn {run_dir.name[-6:]} (cancelled)"}


def test_curves_name_a_run_with_a_damaged_history_and_draw_the_others(results_dir: Path) -> None:
    run_dirs = []
    for seed in (1, 2):
        run_dir = store.create_run(RunSpec("torch", "dnn", seed=seed), results_dir)
        run = store.update_run(run_dir, status="done", test_accuracy=0.9)
        row = {"epoch": 1, "train_loss": 0.1, "train_accuracy": 0.9, "val_loss": 0.2,
               "val_accuracy": 0.9, "lr": 0.001, "epoch_seconds": 1.0}  # fmt: skip
        store.write_history(run_dir, run, [row])
        run_dirs.append(run_dir)
    damaged = pd.read_parquet(run_dirs[0] / store.HISTORY).assign(epoch=["1x"])  # a teammate's
    store.write_parquet(run_dirs[0] / store.HISTORY, damaged)

    app = open_page("curves")

    assert "non-numeric 'epoch' values" in texts(app.warning)
    (accuracy, _, _) = figures(app)
    assert trace_names(accuracy) == {f"torch/dnn {run_dirs[1].name[-6:]}"}


def test_confusion_matrix_and_per_class_table_match_the_run_predictions(trained) -> None:
    run = trained.iloc[0]
    app = open_page("confusion", runs=[run.run_id])

    predictions = store.read_predictions(run.run_dir)
    expected = pd.crosstab(predictions["label"], predictions["predicted"])
    expected = expected.reindex(index=range(10), columns=range(10), fill_value=0)
    np.testing.assert_array_equal(values(figures(app)[0]["data"][0]["z"]), expected.to_numpy())
    shown = app.dataframe[0].value
    expected = metrics.per_class_metrics(predictions)
    scores = ["precision", "recall", "f1"]
    pd.testing.assert_frame_equal(shown.drop(columns=scores), expected.drop(columns=scores))
    shown_scores = shown[scores].replace("–", "nan").astype(float)
    np.testing.assert_allclose(shown_scores, expected[scores], atol=5e-4)  # three decimals
    assert app.metric[0].value == f"{run.test_accuracy:.2%}"  # same as the engine measured
    assert f"on {len(predictions):,} test images" in texts(app.caption)  # quick runs test fewer


def test_row_normalised_matrix_shows_shares_of_each_true_digit(trained) -> None:
    app = open_page("confusion", runs=[trained["run_id"][0]])

    app.toggle(key="norm").set_value(True)
    matrix = values(figures(rerun(app))[0]["data"][0]["z"])

    present = matrix.sum(axis=1) > 0
    np.testing.assert_allclose(matrix[present].sum(axis=1), 1.0)


def test_difference_of_two_runs_is_their_count_matrices_subtracted(trained) -> None:
    first, second = trained.iloc[0], trained.iloc[1]
    app = open_page("confusion", runs=[first.run_id, second.run_id])
    box(app, "Run").set_value(first.run_id)
    rerun(app)

    difference = values(figures(app)[1]["data"][0]["z"])

    own = metrics.confusion_matrix(store.read_predictions(first.run_dir))
    other = metrics.confusion_matrix(store.read_predictions(second.run_dir))
    np.testing.assert_array_equal(difference, own - other)


def test_runs_tested_on_different_numbers_of_images_are_compared_on_the_shared_ones(
    trained_store: Path, results_dir: Path
) -> None:
    """A run tested with --test-limit 500 has the first 500 test images: the difference is
    taken on those, or it would show the test sets' differences as the models'."""
    first, second = copy_runs(trained_store, results_dir, 2)
    fewer = store.read_predictions(second).iloc[:500]  # as if tested with --test-limit 500
    store.write_predictions(second, fewer["label"].to_numpy(), fewer[store.PROB_COLUMNS])
    app = open_page("confusion", runs=[first.name, second.name])
    box(app, "Run").set_value(first.name)
    rerun(app)

    difference = values(figures(app)[1]["data"][0]["z"])

    own = store.read_predictions(first).iloc[:500]
    np.testing.assert_array_equal(
        difference, metrics.confusion_matrix(own) - metrics.confusion_matrix(fewer)
    )
    assert "Compared on the 500 test images both runs were tested on" in texts(app.info)
    accuracy = f"{metrics.accuracy(own):.2%}"
    assert f"{first.name[-6:]} {accuracy}, " in texts(app.caption)


def test_two_runs_with_the_same_matrix_are_said_to_be_the_same(
    trained_store: Path, results_dir: Path
) -> None:
    first, second = copy_runs(trained_store, results_dir, 2)
    same = store.read_predictions(first)
    store.write_predictions(second, same["label"].to_numpy(), same[store.PROB_COLUMNS])
    app = open_page("confusion", runs=[first.name, second.name])

    assert "no cell differs" in texts(app.info)
    heatmap = figures(app)[1]["data"][0]
    assert heatmap["colorscale"][0][1] != heatmap["colorscale"][-1][1]  # still red to blue
    assert heatmap["zmin"] == -heatmap["zmax"]  # centred: the zeros are white


def test_a_confusion_link_opens_the_run_and_comparison_it_names(trained) -> None:
    first, second, third = trained["run_id"][:3]
    app = AppTest.from_file(str(PROJECT_ROOT / PAGES["confusion"]), default_timeout=TIMEOUT_S)
    app.query_params.update(runs=f"{first},{second},{third}", run=third, other=first)
    rerun(app)

    assert box(app, "Run").value == third
    assert box(app, "Compared with").value == first
    assert app.metric[0].value == f"{trained.set_index('run_id').at[third, 'test_accuracy']:.2%}"

    box(app, "Run").set_value(second)
    rerun(app)
    assert (app.query_params["run"], app.query_params["other"]) == (second, first)  # run ids


def test_a_confusion_link_to_an_unknown_run_says_so(trained) -> None:
    first, second = trained["run_id"][:2]
    app = AppTest.from_file(str(PROJECT_ROOT / PAGES["confusion"]), default_timeout=TIMEOUT_S)
    app.query_params.update(runs=f"{first},{second}", run="20990101-000000-torch-dnn-gone00")
    rerun(app)

    assert "'20990101-000000-torch-dnn-gone00' (run= in the address) is not one" in texts(
        app.warning
    )
    assert box(app, "Run").value == first


def finished_run(results_dir: Path, spec: RunSpec, accuracies: tuple[float, ...] = (0.9,)) -> Path:
    """A done run without a model: a history with one epoch per validation accuracy, and
    predictions on 100 test images (the first ``accuracy`` share of them right)."""
    run_dir = store.create_run(spec, results_dir)
    run = store.update_run(run_dir, status="done", test_accuracy=accuracies[-1])
    rows = [
        {"epoch": epoch, "train_loss": 1 - accuracy, "train_accuracy": accuracy,
         "val_loss": 1.1 - accuracy, "val_accuracy": accuracy, "lr": 0.001, "epoch_seconds": 1.0}
        for epoch, accuracy in enumerate(accuracies, start=1)
    ]  # fmt: skip
    store.write_history(run_dir, run, rows)
    labels = np.arange(100) % 10
    predicted = np.where(np.arange(100) < accuracies[-1] * 100, labels, (labels + 1) % 10)
    store.write_predictions(run_dir, labels, np.eye(10)[predicted])
    return run_dir


def test_curves_give_each_runs_last_and_best_validation_numbers_as_a_table(
    results_dir: Path,
) -> None:
    run_dir = finished_run(results_dir, RunSpec("torch", "dnn"), (0.8, 0.9, 0.85))

    app = open_page("curves")

    table = table_in(app, "Curves as a table").value
    assert table.to_dict("records") == [
        {"run": f"torch/dnn {run_dir.name[-6:]}", "epochs": 3,
         "last_val_accuracy": pytest.approx(85.0), "best_val_accuracy": pytest.approx(90.0),
         "best_accuracy_epoch": 2, "last_val_loss": pytest.approx(0.25),
         "lowest_val_loss": pytest.approx(0.2), "lowest_loss_epoch": 2}
    ]  # fmt: skip


def test_a_confusion_link_opened_before_its_run_is_imported_picks_it_once_it_is_here(
    results_dir: Path, tmp_path: Path
) -> None:
    kept = finished_run(results_dir, RunSpec("torch", "dnn", seed=1))
    later = finished_run(tmp_path / "teammate", RunSpec("keras", "cnn", seed=2), (0.8,))
    app = AppTest.from_file(str(PROJECT_ROOT / PAGES["confusion"]), default_timeout=TIMEOUT_S)
    app.query_params.update(runs=f"{kept.name},{later.name}", run=later.name, other=kept.name)
    rerun(app)
    assert box(app, "Run").value == kept.name  # shown until the linked run is here
    assert app.query_params["run"] == later.name  # the link still asks for it

    shutil.move(later, results_dir / later.name)  # imported meanwhile
    rerun(app)

    assert (box(app, "Run").value, box(app, "Compared with").value) == (later.name, kept.name)
    assert "other= in the address" not in texts(app.warning)
    assert (app.query_params["run"], app.query_params["other"]) == (later.name, kept.name)


def test_a_confusion_link_whose_compared_run_is_the_shown_run_says_nothing_about_it(
    results_dir: Path,
) -> None:
    for seed in (1, 2):
        finished_run(results_dir, RunSpec("torch", "dnn", seed=seed))
    first, second = map(Path, engines.load_runs(results_dir)["run_dir"])  # the boxes' order
    gone = "20990101-000000-torch-dnn-gone00"
    app = AppTest.from_file(str(PROJECT_ROOT / PAGES["confusion"]), default_timeout=TIMEOUT_S)
    app.query_params.update(runs=f"{first.name},{second.name}", run=gone, other=first.name)
    rerun(app)

    assert box(app, "Run").value == first.name
    assert box(app, "Compared with").value == second.name
    assert "other= in the address" not in texts(app.warning)

    box(app, "Run").set_value(second.name)  # chosen in the box: the link's run is dropped
    rerun(app)
    assert (box(app, "Run").value, box(app, "Compared with").value) == (second.name, first.name)
    assert (app.query_params["run"], app.query_params["other"]) == (second.name, first.name)


def test_curves_of_a_link_opened_before_its_runs_are_imported_draw_them_once_here(
    results_dir: Path, tmp_path: Path
) -> None:
    kept = finished_run(results_dir, RunSpec("torch", "dnn", seed=1))
    later = finished_run(tmp_path / "teammate", RunSpec("keras", "cnn", seed=2))
    app = open_page("curves", runs=[kept.name, later.name])
    assert f"Not in this store: {later.name}" in texts(app.warning)

    shutil.move(later, results_dir / later.name)
    rerun(app)

    assert trace_names(figures(app)[0]) == {
        f"torch/dnn {kept.name[-6:]}",
        f"keras/cnn {later.name[-6:]}",
    }
    assert not app.warning


@pytest.mark.parametrize("page", ["curves", "confusion"])
def test_a_pick_of_unknown_runs_offers_every_finished_run_instead(trained, page: str) -> None:
    app = open_page(page, runs=["20990101-000000-torch-dnn-gone00"])
    assert "Not in this store: 20990101-000000-torch-dnn-gone00" in texts(app.warning)
    assert "None of the picked runs is a finished run in this store." in texts(app.info)
    assert "No finished runs to show yet" not in texts(app.info)

    press(app, app.button(key="clear_pick"))

    assert "runs" not in app.query_params
    assert len(figures(app)) >= 1


def test_gallery_shows_the_most_confident_mistakes_with_their_labels(trained) -> None:
    run = trained.iloc[0]
    app = open_page("confusion", runs=[run.run_id])

    predictions = store.read_predictions(run.run_dir)
    wrong = predictions[predictions["label"] != predictions["predicted"]]
    captions = [image.proto.imgs[0].caption for image in app.get("image")]
    assert len(captions) == min(32, len(wrong))
    top = wrong.loc[wrong[store.PROB_COLUMNS].max(axis=1).idxmax()]
    assert captions[0].startswith(f"true {int(top['label'])} → {int(top['predicted'])} (")


@pytest.mark.parametrize(
    ("probability", "shown"), [(0.9996, ">99.9%"), (0.999, "99.9%"), (0.5, "50.0%")]
)
def test_confidence_never_rounds_up_to_certainty(probability: float, shown: str) -> None:
    assert confidence(probability) == shown


def test_gallery_without_mnist_files_says_so(trained, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "no-mnist-here"))

    app = open_page("confusion", runs=[trained["run_id"][0]])

    assert "not available" in texts(app.info)
    assert not app.get("image")


def test_runs_page_lists_runs_and_offers_sharing_for_the_picked_ones(trained) -> None:
    picked = list(trained["run_id"][:2])
    app = open_page("runs", runs=picked)

    assert set(app.dataframe[0].value["run_id"]) == set(trained["run_id"])
    assert f"?runs={','.join(picked)}" in texts(app.code)
    assert "Download report" in {button.proto.label for button in app.get("download_button")}
    assert app.button(key="export").label == "Export bundle"


def test_a_done_run_missing_its_model_is_named_and_left_out_of_the_bundle(
    results_dir: Path, trained_store: Path
) -> None:
    complete, broken = copy_runs(trained_store, results_dir, 2)
    store.model_path(broken).unlink()

    app = open_page("runs", runs=[complete.name, broken.name])

    assert f"{broken.name[-6:]} (it is done but has no model file" in texts(app.caption)
    assert app.button(key="export").label == "Export bundle"
    assert not app.exception


def exportable_runs(results_dir: Path, count: int) -> list[Path]:
    """``count`` finished runs that an export takes (with a stand-in model file)."""
    run_dirs = [finished_run(results_dir, RunSpec("torch", "dnn", seed=s)) for s in range(count)]
    for run_dir in run_dirs:
        (run_dir / "model.pt").write_bytes(b"weights")
    return run_dirs


def test_export_builds_the_bundle_when_pressed_then_offers_its_download(results_dir: Path) -> None:
    run_dirs = exportable_runs(results_dir, 2)
    app = open_page("runs", runs=[d.name for d in run_dirs])
    assert "Download bundle" not in {b.proto.label for b in app.get("download_button")}

    press(app, app.button(key="export"))
    rerun(app)  # the sidebar reruns the page whenever a job changes status

    (download,) = [b for b in app.get("download_button") if b.proto.label == "Download bundle"]
    assert download.proto.help.startswith("2 run(s)")
    assert not app.error


def test_export_leaves_out_a_run_whose_model_went_after_the_page_was_drawn(
    results_dir: Path,
) -> None:
    kept, broken = exportable_runs(results_dir, 2)
    app = open_page("runs", runs=[kept.name, broken.name])
    (broken / "model.pt").unlink()  # another tab, a teammate: the page still offers both

    press(app, app.button(key="export"))

    assert f"{broken.name[-6:]} (it is done but has no model file" in texts(app.caption)
    (download,) = [b for b in app.get("download_button") if b.proto.label == "Download bundle"]
    assert download.proto.help.startswith("1 run(s)")


def test_an_export_that_fails_as_it_builds_says_why(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, broken = exportable_runs(results_dir, 2)
    app = open_page("runs", runs=[kept.name, broken.name])
    real_export = bundle.export_runs

    def export_as_the_model_goes(run_dirs: list[Path]) -> bytes:
        (broken / "model.pt").unlink()  # between the page's check and the zip
        return real_export(run_dirs)

    monkeypatch.setattr(bundle, "export_runs", export_as_the_model_goes)
    press(app, app.button(key="export"))

    expected = f"No bundle: cannot export {broken.name}: it is done but has no model file"
    assert expected in texts(app.error)
    assert "Download bundle" not in {b.proto.label for b in app.get("download_button")}


def test_a_damaged_history_is_named_once_on_curves_and_the_other_runs_drawn(
    results_dir: Path, trained_store: Path
) -> None:
    runs = damaged, intact = copy_runs(trained_store, results_dir, 2)
    history = damaged / "history.parquet"
    history.write_bytes(history.read_bytes()[:100])

    app = open_page("curves", runs=[intact.name, damaged.name])

    damaged_label, intact_label = ("{2}/{3} {4}".format(*d.name.split("-")) for d in runs)
    (warning,) = [w.value for w in app.warning]
    assert warning.startswith(f"{damaged_label}: unreadable history.parquet")
    assert damaged.name not in warning
    assert intact_label in trace_names(figures(app)[0])
    assert not app.exception


# --- runs management (copies of runs in a scratch store) -------------------------------------
def test_cancel_marks_a_queued_job_cancelled(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir)
    app = open_page("runs")

    press(app, app.button(key="cancel_job"))

    assert store.read_run(run_dir)["status"] == "cancelled"
    assert list(app.dataframe[0].value["status"]) == ["cancelled"]  # the page was refreshed
    assert "cancelled before it started" in texts(app.toast)  # and says what happened


def test_each_sidebar_job_card_names_its_job_on_its_cancel_button_and_progress_bar(
    results_dir: Path,
) -> None:
    queued = store.create_run(RunSpec("torch", "cnn"), results_dir)
    running = store.create_run(RunSpec("keras", "dnn"), results_dir, status="running")
    store.update_run(
        running, pid=1, host={"name": "other-machine"}, progress={"epoch": 1, "epochs": 4}
    )

    app = open_page("home")

    names = {d.name: "{2}/{3} {4}".format(*d.name.split("-")) for d in (queued, running)}
    labels = {b.key: b.label for b in app.sidebar.button if b.key.startswith("cancel-")}
    assert labels == {f"cancel-{run_id}": f"Cancel {name}" for run_id, name in names.items()}
    (bar,) = app.sidebar.get("progress")
    assert bar.proto.text == f"{names[running.name]}: epoch 1/4"


def test_the_job_to_cancel_is_the_running_one_before_the_queue(results_dir: Path) -> None:
    store.create_run(RunSpec("torch", "cnn"), results_dir)  # queued first, still waiting
    running = store.create_run(RunSpec("torch", "dnn"), results_dir, status="running")
    store.update_run(running, pid=1, host={"name": "other-machine"})

    app = open_page("runs")

    assert app.selectbox(key="cancel_pick").value == running.name


def test_delete_asks_for_confirmation_first(results_dir: Path, trained_store: Path) -> None:
    kept, doomed = [
        Path(shutil.copytree(d, results_dir / d.name))
        for d in store.iter_run_dirs(trained_store)[:2]
    ]
    app = open_page("runs")
    app.multiselect(key="delete").set_value([doomed.name])
    rerun(app)
    press(app, app.button(key="delete_ask"))
    assert doomed.exists()  # not yet: a warning and two buttons first
    assert "cannot be undone" in texts(app.warning)

    press(app, app.button(key="delete_no"))
    assert doomed.exists()

    press(app, app.button(key="delete_ask"))
    press(app, app.button(key="delete_yes"))
    assert not doomed.exists()
    assert kept.exists()
    assert list(app.dataframe[0].value["run_id"]) == [kept.name]


def copy_runs(trained_store: Path, results_dir: Path, count: int) -> list[Path]:
    """Copies of the first ``count`` trained runs in the scratch store (safe to delete)."""
    return [
        Path(shutil.copytree(d, results_dir / d.name))
        for d in store.iter_run_dirs(trained_store)[:count]
    ]


def ask_to_delete(app: AppTest, run_dirs: list[Path]) -> AppTest:
    """Choose ``run_dirs`` in the delete box and press Delete… (the confirmation step)."""
    app.multiselect(key="delete").set_value([d.name for d in run_dirs])
    rerun(app)
    return press(app, app.button(key="delete_ask"))


def button_keys(app: AppTest) -> set[str]:
    return {button.key for button in app.button}


def test_delete_confirmation_names_the_runs_it_will_delete(
    results_dir: Path, trained_store: Path
) -> None:
    kept, doomed = copy_runs(trained_store, results_dir, 2)
    app = ask_to_delete(open_page("runs"), [doomed])

    warning = texts(app.warning)
    assert doomed.name in warning
    assert kept.name not in warning


@pytest.mark.parametrize("with_a_good_run", [True, False], ids=["beside-a-run", "alone"])
def test_an_unreadable_run_folder_can_be_deleted_from_the_runs_page(
    results_dir: Path, trained_store: Path, with_a_good_run: bool
) -> None:
    kept = copy_runs(trained_store, results_dir, 1) if with_a_good_run else []
    broken = results_dir / "20240101-000000-torch-dnn-broken"
    broken.mkdir()
    (broken / store.RUN_JSON).write_text("{not json")
    app = open_page("runs")
    box = app.multiselect(key="delete")
    assert box.format_func(broken.name) == f"{broken.name} (unreadable)"

    ask_to_delete(app, [broken])
    assert f"- `{broken.name}` (unreadable folder)" in texts(app.warning)  # named once
    press(app, app.button(key="delete_yes"))

    assert not broken.exists()
    assert [d.name for d in store.iter_run_dirs(results_dir)] == [d.name for d in kept]


@pytest.mark.parametrize("new_choice", ["another run", "nothing"])
def test_changing_the_delete_choice_drops_the_confirmation(
    results_dir: Path, trained_store: Path, new_choice: str
) -> None:
    first, second = copy_runs(trained_store, results_dir, 2)
    app = ask_to_delete(open_page("runs"), [first])

    app.multiselect(key="delete").set_value([second.name] if new_choice == "another run" else [])
    rerun(app)

    assert "delete_yes" not in button_keys(app)  # nothing left to confirm: ask again
    assert not app.warning
    assert first.exists() and second.exists()


def test_a_failed_delete_is_reported_and_not_counted(
    results_dir: Path, trained_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked, deletable = copy_runs(trained_store, results_dir, 2)
    real_delete = store.delete_run

    def delete_unless_locked(run_dir, root=None) -> None:
        if Path(run_dir).name == locked.name:
            raise PermissionError(13, "Permission denied", str(run_dir))
        real_delete(run_dir, root)

    monkeypatch.setattr(store, "delete_run", delete_unless_locked)
    app = ask_to_delete(open_page("runs"), [locked, deletable])

    press(app, app.button(key="delete_yes"))

    assert locked.exists() and not deletable.exists()
    toasts = texts(app.toast)
    assert "Deleted 1 run(s)" in toasts
    assert f"{locked.name} not deleted" in toasts and "Permission denied" in toasts


def test_cancel_of_a_job_running_on_another_machine_says_where_and_signals_nothing(
    results_dir: Path,
) -> None:
    bystander = subprocess.Popen(["sleep", "60"])  # a local pid the wrong cancel would kill
    try:
        run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir, status="running")
        store.update_run(run_dir, pid=bystander.pid, host={"name": "other-machine"})
        app = open_page("runs")

        press(app, app.button(key="cancel_job"))

        assert "running on other-machine; cancel it there" in texts(app.toast)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_imported_bundle_adds_its_runs_to_the_store(results_dir: Path, trained_store) -> None:
    run_dirs = store.iter_run_dirs(trained_store)[:2]
    app = open_page("runs", runs=[d.name for d in run_dirs])  # a teammate's link, then import
    zipped = bundle.export_runs(run_dirs)
    app.file_uploader(key="bundle_file_0").upload("runs.zip", zipped, "application/zip")
    rerun(app)

    press(app, app.button(key="bundle_import"))

    imported = {d.name for d in run_dirs}
    assert set(engines.load_runs(results_dir)["run_id"]) == imported
    assert set(app.dataframe[0].value["run_id"]) == imported
    assert "Imported 2 run(s)" in texts(app.toast)
    assert "bundle_import" not in button_keys(app)  # an empty uploader: no second import
    assert set(app.multiselect(key="share_pick").value) == imported  # what the link shares

    # The same bundle again (from a teammate, say): nothing new, and the page says so.
    app.file_uploader(key="bundle_file_1").upload("runs.zip", zipped, "application/zip")
    rerun(app)
    press(app, app.button(key="bundle_import"))
    assert "Already here, unchanged (not imported again): 2 run(s)" in texts(app.toast)
    assert not app.error


def test_an_import_into_a_store_that_cannot_be_written_names_the_store(
    tmp_path: Path, trained_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the store's parent folder should be")
    monkeypatch.setenv("RESULTS_DIR", str(blocker / "results"))
    app = open_page("runs")
    zipped = bundle.export_runs(store.iter_run_dirs(trained_store)[:1])
    app.file_uploader(key="bundle_file_0").upload("runs.zip", zipped, "application/zip")
    rerun(app)

    press(app, app.button(key="bundle_import"))

    assert f"Could not import into {blocker / 'results'}" in texts(app.error)


def test_a_bad_bundle_is_refused_with_a_message_and_nothing_written(results_dir: Path) -> None:
    app = open_page("runs")
    app.file_uploader(key="bundle_file_0").upload("runs.zip", b"not a zip", "application/zip")
    rerun(app)

    press(app, app.button(key="bundle_import"))
    rerun(app)  # the sidebar reruns the page whenever a job changes status

    assert "Bundle refused" in texts(app.error)  # still there
    assert engines.load_runs(results_dir).empty


def test_sharing_takes_failed_and_cancelled_runs_and_names_the_ones_still_queued(
    results_dir: Path, trained_store: Path
) -> None:
    (done,) = copy_runs(trained_store, results_dir, 1)
    cancelled = store.create_run(RunSpec("torch", "dnn"), results_dir, status="queued")
    store.update_run(cancelled, status="cancelled", error="cancelled")
    queued = store.create_run(RunSpec("torch", "cnn"), results_dir, status="queued")

    app = open_page("runs", runs=[done.name, cancelled.name, queued.name])

    left_out = f"(still queued or running): torch/cnn {queued.name[-6:]} (queued)"
    assert left_out in texts(app.caption)
    link = texts(app.code)
    assert done.name in link and cancelled.name in link and queued.name not in link


def test_home_names_the_linked_runs_this_store_does_not_have(results_dir: Path) -> None:
    here = store.create_run(RunSpec("torch", "dnn"), results_dir, status="queued")
    gone = "20990101-000000-torch-dnn-gone00"

    app = open_page("home", runs=[gone, here.name])

    assert f"Not in this store: {gone}" in texts(app.warning)
    assert app.multiselect(key="pick").value == [here.name]


def test_changing_the_pick_keeps_a_linked_run_still_to_be_imported_until_forgotten(
    results_dir: Path,
) -> None:
    here = store.create_run(RunSpec("torch", "dnn"), results_dir, status="queued")
    also = store.create_run(RunSpec("keras", "dnn"), results_dir, status="queued")
    gone = "20990101-000000-torch-dnn-gone00"
    app = open_page("home", runs=[gone, here.name])

    app.multiselect(key="pick").select(also.name)
    rerun(app)
    assert app.query_params["runs"] == f"{here.name},{also.name},{gone}"
    assert f"Not in this store: {gone}" in texts(app.warning)

    press(app, app.button(key="forget_missing"))
    assert app.query_params["runs"] == f"{here.name},{also.name}"
    assert "Not in this store" not in texts(app.warning)


@pytest.mark.parametrize("page", ["home", "runs"])
def test_a_link_opened_on_an_empty_store_names_the_runs_it_asked_for(
    results_dir: Path, page: str
) -> None:
    app = open_page(page, runs=["20990101-000000-torch-dnn-gone00"])

    warning = texts(app.warning)
    assert "Not in this store: 20990101-000000-torch-dnn-gone00" in warning
    assert "import their bundle" in warning


@pytest.mark.parametrize("page", ["home", "runs"])
def test_numbers_a_run_does_not_have_yet_show_a_dash_not_none(results_dir: Path, page) -> None:
    store.create_run(RunSpec("torch", "dnn"), results_dir, status="queued")

    table = open_page(page).dataframe[0]

    assert table.value["test_accuracy"].isna().all()
    assert table.proto.placeholder == "–"


def test_leaderboard_shows_the_settings_that_set_runs_of_one_architecture_apart(
    results_dir: Path,
) -> None:
    for spec in (
        RunSpec("torch", "dnn", train_limit=1000),
        RunSpec("keras", "dnn"),
        RunSpec("torch", "cnn", seed=7),  # arch defaults differ from the DNN's: not shown
    ):
        store.create_run(spec, results_dir, status="queued")

    table = open_page("home").dataframe[0].value

    settings = [column for column in table.columns if column.startswith("spec_")]
    assert settings == ["spec_train_limit"]  # the seed has its own column
    assert sorted(table["spec_train_limit"].dropna()) == [1000, 55_000, 55_000]


def open_link(page: str, **query: str | list[str]) -> AppTest:
    """A page opened from a link whose address carries ``query``."""
    app = AppTest.from_file(str(PROJECT_ROOT / PAGES[page]), default_timeout=TIMEOUT_S)
    app.query_params.update(query)
    return rerun(app)


def test_a_link_value_a_page_cannot_show_is_named_and_the_rest_of_the_link_applies(
    results_dir: Path,
) -> None:
    """Streamlit drops x=foo silently; the page would then read as if the link asked for
    epochs. The page says which value it ignored and still applies the valid ones."""
    finished_run(results_dir, RunSpec("torch", "dnn"), (0.8, 0.9))
    curves = open_link("curves", x="foo", log_loss="true")
    assert "Ignored from the link: x=foo (x takes epoch or seconds)." in texts(curves.warning)
    assert curves.radio(key="x").value == "epoch"
    assert curves.checkbox(key="log_loss").value is True

    home = open_link("home", filter_framework=["torch", "banana"], by_seed="maybe")
    warnings = texts(home.warning)
    assert "filter_framework=banana (filter_framework takes keras, torch or lightning)" in warnings
    assert "by_seed=maybe (by_seed takes true or false)" in warnings
    assert home.multiselect(key="filter_framework").value == ["torch"]

    confusion = open_link("confusion", norm="rows")
    assert "norm=rows (norm takes true or false)" in texts(confusion.warning)

    assert "Ignored from the link" not in texts(open_link("curves", x="seconds").warning)


def test_notes_edited_on_the_runs_page_reach_the_store_and_the_leaderboard(
    results_dir: Path,
) -> None:
    first = store.create_run(RunSpec("torch", "dnn", notes="baseline"), results_dir)
    second = store.create_run(RunSpec("keras", "cnn"), results_dir)
    running = store.create_run(RunSpec("torch", "cnn"), results_dir, status="running")
    for run_dir in (first, second):
        store.update_run(run_dir, status="done", test_accuracy=0.97, test_loss=0.1)
    for day, run_dir in enumerate((first, second, running), start=1):  # newest listed first
        store.update_run(run_dir, created_at=f"2026-11-0{day}T10:00:00Z")
    labels = {run.run_id: label(run) for _, run in engines.load_runs(results_dir).iterrows()}
    app = open_page("runs")
    picker = box(app, "Run")
    assert sorted(picker.options) == sorted(labels[d.name] for d in (first, second))  # no job

    picker.set_value(second.name)
    rerun(app)
    notes_field(app).set_value("rotations help?")
    store.update_run(running, status="done", test_accuracy=0.9, test_loss=0.3)  # meanwhile
    press(app, app.button(key=SAVE_NOTES))

    picker = box(app, "Run")  # a new box: the finished runs changed
    assert picker.options[0] != labels[second.name]  # a box starting afresh shows another run
    assert picker.value == second.name  # still the run the notes were typed for
    assert store.read_run(second)["spec"]["notes"] == "rotations help?"
    assert store.read_run(first)["spec"]["notes"] == "baseline"
    table = open_page("home").dataframe[0].value.set_index("run_id")
    assert table.loc[second.name, "spec_notes"] == "rotations help?"


def test_notes_stored_before_the_length_limit_are_not_cut_short_by_saving(
    results_dir: Path,
) -> None:
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir)
    long_notes = "x" * 600
    run = store.read_run(run_dir)
    store.update_run(run_dir, status="done", spec=run["spec"] | {"notes": long_notes})
    app = open_page("runs")
    assert notes_field(app).value == long_notes

    press(app, app.button(key=SAVE_NOTES))

    assert "keep them to 500" in texts(app.error)
    assert store.read_run(run_dir)["spec"]["notes"] == long_notes


SAVE_NOTES = "FormSubmitter:notes_form-Save notes"


def notes_field(app: AppTest):
    (field,) = [field for field in app.text_input if field.key.startswith("notes_text")]
    return field
