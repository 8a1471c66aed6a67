"""Page helpers shared by every dashboard page.

* Cached reads of the run store, invalidated when a run's files change on disk.
* The picked runs: kept in the URL (``?runs=id1,id2``) so a copied link opens the same
  comparison, and mirrored in ``st.session_state`` so the pick survives page switches.
* :func:`sidebar`: the training launcher and the live job list, on every page.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.charts import run_label
from engines import jobs, store
from engines.spec import (
    ARCH_DEFAULTS,
    ARCHS,
    FRAMEWORKS,
    MNIST_TEST_IMAGES,
    MNIST_TRAIN_IMAGES,
    SCHEDULERS,
    RunSpec,
)

HIGH_LR = 0.1  # the launcher warns above this (Adam's defaults here are 2e-3 and 3e-3)
RUNS_PARAM = "runs"
PICKED_KEY = "picked_runs"
SUBMITTED_KEY = "submitted_runs"
STATUSES_KEY = "job_statuses"
FLASH_KEY = "flash"
PROGRESS_SECONDS = 2
ACTIVE = store.ACTIVE_STATUSES
QUICK_START = {"epochs": 2, "train_limit": 10_000}
FIELD_LABELS = {  # RunSpec field -> its label in the sidebar launcher
    "epochs": "Max epochs",
    "train_limit": "Training images",
    "batch_size": "Batch size",
    "lr": "Learning rate",
    "es_patience": "Early-stopping patience",
    "augment_shift": "Random shift (px)",
    "augment_rotate": "Random rotation (degrees)",
    "augment_zoom": "Random zoom (%)",
    "label_smoothing": "Label smoothing",
    "dropout": "Dropout",
    "seed": "Seed",
    "plateau_factor": "Plateau factor",
    "plateau_patience": "Plateau patience",
    "step_size": "Step size (epochs)",
    "step_gamma": "Step gamma",
}
MISSING = "–"  # shown in tables for a number a run does not have (yet)


# --- reading the store (cached) ----------------------------------------------------------
def cli_example() -> str:
    """A terminal command that trains into the store this dashboard shows (run from the
    project folder after the README's set-up)."""
    command = ".venv/bin/python -m engines"
    if os.environ.get("RESULTS_DIR"):  # a shell of its own would not have it
        command += f" --results-dir {shlex.quote(str(results_root()))}"
    return command + " grid --epochs 2 --train-limit 10000"


def results_root() -> Path:
    """The store the dashboard shows: ``RESULTS_DIR`` if set, else ``results/``."""
    return store.results_dir()


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def store_signature(root: Path) -> tuple:
    """Changes whenever a run folder appears, disappears or rewrites its ``run.json``."""
    return tuple(
        (run_dir.name, _file_stamp(run_dir / store.RUN_JSON))
        for run_dir in store.iter_run_dirs(root)
    )


@st.cache_data(show_spinner=False, max_entries=4)
def _load_runs(root: str, signature: tuple) -> pd.DataFrame:
    return store.load_runs(root)


def cached_runs() -> pd.DataFrame:
    """``engines.store.load_runs`` of the dashboard's store, re-read only when it changed
    (running runs are re-checked every time: a killed process leaves no file change)."""
    root = results_root()
    return store.recheck_running(_load_runs(str(root), store_signature(root)))


@st.cache_data(show_spinner=False, max_entries=64)
def _read_history(run_dir: str, stamp: tuple | None) -> pd.DataFrame:
    return store.read_history(run_dir)


@st.cache_data(show_spinner=False, max_entries=16)
def _read_predictions(run_dir: str, stamp: tuple | None) -> pd.DataFrame:
    return store.read_predictions(run_dir)


def cached_history(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``history.parquet`` (raises ``StoreError`` when missing or unreadable)."""
    return _read_history(str(run_dir), _file_stamp(Path(run_dir) / store.HISTORY))


def cached_predictions(run_dir: str | Path) -> pd.DataFrame:
    """A run's ``test_predictions.parquet`` (raises ``StoreError`` when missing)."""
    return _read_predictions(str(run_dir), _file_stamp(Path(run_dir) / store.PREDICTIONS))


# --- showing runs ------------------------------------------------------------------------
ACCURACY_COLUMN = st.column_config.NumberColumn("test accuracy", format="%.2f %%")


def accuracy_in_percent(runs: pd.DataFrame) -> pd.DataFrame:
    """A display copy of a runs table with ``test_accuracy`` in percent (for ACCURACY_COLUMN)."""
    return runs.assign(test_accuracy=runs["test_accuracy"] * 100)


def confidence(probability: float) -> str:
    """A model's probability as a percentage that never rounds up to a certain 100 %."""
    return ">99.9%" if probability > 0.999 else f"{probability:.1%}"


def labels_by_id(runs: pd.DataFrame) -> dict[str, str]:
    return {row.run_id: run_label(row._asdict()) for row in runs.itertuples()}


def history_of(runs: pd.DataFrame) -> pd.DataFrame:
    """The histories of ``runs`` stacked, with a ``label`` column.

    Queued runs have no history yet and are left out quietly; other unreadable ones warned.
    """
    frames = []
    for run in runs.to_dict("records"):
        if run["status"] == "queued":
            continue
        try:
            history = cached_history(run["run_dir"])
        except store.StoreError as err:
            st.warning(f"{run_label(run)}: {err}")
            continue
        frames.append(history.assign(label=run_label(run)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


SETTINGS_SHOWN_ELSEWHERE = ("framework", "arch", "seed", "notes")


def settings_that_differ(runs: pd.DataFrame) -> pd.DataFrame:
    """The spec columns (``spec_<field>``) whose values differ between runs of the same
    architecture, as W&B shows the config that sets runs apart. A limit left empty reads as
    the number of images the run used (55,000 training, 10,000 test with the default split).
    """
    train_images = runs["spec_train_limit"].fillna(MNIST_TRAIN_IMAGES - runs["spec_val_size"])
    test_images = runs["spec_test_limit"].fillna(MNIST_TEST_IMAGES)
    spec = runs.filter(like="spec_").assign(
        spec_train_limit=train_images.astype("Int64"), spec_test_limit=test_images.astype("Int64")
    )
    shown = [f"spec_{name}" for name in SETTINGS_SHOWN_ELSEWHERE]
    varied = spec.drop(columns=shown).groupby(runs["arch"]).nunique(dropna=False).gt(1).any()
    return spec[list(varied[varied].index)]


def setting_label(column: str) -> str:
    """``spec_train_limit`` -> "training images": the launcher's words where it has them,
    lower-case like the other column names."""
    field = column.removeprefix("spec_")
    if field == "test_limit":
        return "test images"
    return FIELD_LABELS.get(field, field.replace("_", " ")).lower()


def show_skipped(runs: pd.DataFrame) -> None:
    """Folders the store could not read, in an expander (never a traceback)."""
    skipped = runs.attrs.get("skipped", [])
    if skipped:
        with st.expander(f"{len(skipped)} run folder(s) skipped: unreadable"):
            st.caption("Fix their files, or remove them under Delete runs on the Runs page.")
            for name, reason in skipped:
                st.write(f"**{name}**: {reason.removeprefix(f'{name}: ')}")


# --- picked runs (URL + session) ---------------------------------------------------------
def picked_run_ids() -> list[str]:
    """The picked runs: the URL's ``runs`` if it names any, else this session's pick.

    Streamlit drops query parameters on a page switch, so the session copy puts them back:
    the address bar always carries the current comparison.
    """
    from_url = [i for i in st.query_params.get(RUNS_PARAM, "").split(",") if i]
    if from_url:
        st.session_state[PICKED_KEY] = from_url
        return from_url
    ids = list(st.session_state.get(PICKED_KEY, []))
    if ids:
        st.query_params[RUNS_PARAM] = ",".join(ids)
    return ids


def pick_runs(ids: list[str]) -> None:
    """Make ``ids`` the picked runs (URL and session)."""
    ids = list(dict.fromkeys(str(i) for i in ids))
    st.session_state[PICKED_KEY] = ids
    if ids:
        st.query_params[RUNS_PARAM] = ",".join(ids)
    else:
        st.query_params.pop(RUNS_PARAM, None)


def picked_runs(runs: pd.DataFrame, default_status: str | None = "done") -> pd.DataFrame:
    """Rows of ``runs`` that are picked; with no pick, every run with ``default_status``.

    Picked ids that are not in this store (deleted, or a link from another store) are
    mentioned once, not an error.
    """
    ids = picked_run_ids()
    if not ids:
        return runs if default_status is None else runs[runs["status"] == default_status]
    warn_missing_picks(runs)
    return runs[runs["run_id"].isin(ids)]


def warn_missing_picks(runs: pd.DataFrame) -> None:
    """Name the picked runs (from a shared link, say) that this store does not have."""
    known = set(runs["run_id"])
    missing = [i for i in picked_run_ids() if i not in known]
    if missing:
        st.warning(
            f"Not in this store: {', '.join(missing)}. They were deleted, or they come from "
            "another dashboard: then import their bundle on the Runs page (or point "
            "RESULTS_DIR at their store)."
        )


def explain_nothing_to_show() -> None:
    """Why a page that shows finished runs is empty, and what to do about it."""
    if not picked_run_ids():
        st.info("No finished runs to show yet: start some from the sidebar.")
        return
    st.info("None of the picked runs is a finished run in this store.")
    if st.button("Show every finished run instead", key="clear_pick"):
        pick_runs([])
        st.rerun()


def drop_gone_choices(key: str, options: Iterable[str]) -> None:
    """Before a multiselect is drawn, drop the choices in its state that are no longer options.

    A run deleted (on this page, in another tab, by a teammate sharing the store) stays
    chosen in the browser's copy of the widget, which sends it back with the next click;
    Streamlit would then hand the unknown id to ``format_func``. Setting the state here also
    clears the stale chip in the browser.
    """
    chosen = st.session_state.get(key)
    if chosen is None:
        return
    known = set(options)
    kept = [choice for choice in chosen if choice in known]
    if kept != list(chosen):
        st.session_state[key] = kept


def run_picker(runs: pd.DataFrame, label: str = "Runs to compare", key: str = "pick") -> None:
    """A multiselect of every run in the store that reads and writes the picked runs."""
    labels = labels_by_id(runs)
    if key not in st.session_state:
        st.session_state[key] = [i for i in picked_run_ids() if i in labels]
    drop_gone_choices(key, labels)

    def changed() -> None:
        pick_runs(st.session_state[key])

    st.multiselect(
        label,
        options=list(labels),
        format_func=lambda run_id: labels[run_id],
        key=key,
        on_change=changed,
        placeholder="none picked: pages show every finished run",
    )


def run_selectbox(label: str, ids: list[str], labels: dict[str, str], param: str) -> str:
    """A selectbox over ``ids`` whose choice is kept as a run id in the URL's ``param``.

    (Streamlit's own ``bind="query-params"`` would put the displayed label in the URL.)
    A run id in a link that is not among ``ids`` is named in a warning, not dropped quietly.
    """
    wanted = st.query_params.get(param)
    if wanted is not None and param not in st.session_state:  # a link was opened
        if wanted in ids:
            st.session_state[param] = wanted
        else:
            st.warning(f"Run {wanted!r} ({param}= in the address) is not one of the finished "
                       f"runs shown here; showing {labels[ids[0]]} instead.")  # fmt: skip
    if st.session_state.get(param) not in ids:
        st.session_state.pop(param, None)  # the picked runs changed under it
    chosen = st.selectbox(label, ids, format_func=labels.get, key=param)
    st.query_params[param] = chosen
    return chosen


# --- launching jobs ----------------------------------------------------------------------
def build_specs(
    frameworks: Sequence[str], archs: Sequence[str], settings: dict[str, Any]
) -> list[RunSpec]:
    """One RunSpec per framework x architecture pair; ``ValueError`` names a bad field."""
    if not frameworks or not archs:
        raise ValueError("pick at least one framework and one architecture")
    return [RunSpec(framework=f, arch=a, **settings) for f in frameworks for a in archs]


def submit_jobs(specs: list[RunSpec]) -> list[Path]:
    """Queue the runs in the dashboard's store; the sidebar follows them for this session."""
    run_dirs = jobs.submit(specs, results_root())
    submitted = st.session_state.setdefault(SUBMITTED_KEY, [])
    submitted.extend(run_dir.name for run_dir in run_dirs)
    return run_dirs


def queue_jobs(specs: list[RunSpec]) -> None:
    """Queue the specs and rerun the app, so the job list and the tables show them at once.

    A spec that a queued or running job already trains is skipped and named (a double click
    on Start must not train the same run twice); a store that cannot be written is reported.
    """
    root = results_root()
    try:
        twins = jobs.active_twins(specs, root)
        run_dirs = submit_jobs([spec for spec in specs if spec not in twins])
    except OSError as err:
        st.error(f"Could not queue the jobs in {root}: {err}")
        return
    if twins:
        names = ", ".join(
            run_label({"framework": s.framework, "arch": s.arch, "run_id": run_id})
            for s, run_id in twins.items()
        )
        skipped = (
            f"Not queued again, already queued or running with the same settings: {names}. "
            "Change the seed (or another setting) to train another run."
        )
        if not run_dirs:
            st.warning(skipped)
            return
        flash(skipped, error=True)
    flash(f"Queued {len(run_dirs)} job(s): progress in the sidebar.")
    st.rerun(scope="app")


def sidebar() -> None:
    """The training launcher and the live job list (call once per page)."""
    st.session_state[STATUSES_KEY] = _statuses(cached_runs())  # what this page run shows
    for message, error in st.session_state.pop(FLASH_KEY, []):  # before the job list looks
        if error:  # stays until closed: a failure must not slip by unseen
            st.toast(message, icon="⚠️", duration="infinite")
        else:
            st.toast(message)
    with st.sidebar:
        _launcher()
        st.divider()
        _job_progress()


def flash(message: str, error: bool = False) -> None:
    """A message shown (as a toast) on the next run, for actions followed by ``st.rerun``."""
    st.session_state.setdefault(FLASH_KEY, []).append((message, error))


def _defaults_hint(name: str) -> str:
    return " · ".join(f"{arch} {values[name]}" for arch, values in ARCH_DEFAULTS.items())


def _number(field: str, value: Any, step: Any, **options: Any) -> Any:
    """The launcher's field for a RunSpec ``field``; its value is kept for the session."""
    return st.number_input(
        FIELD_LABELS[field],
        value=value,
        step=step,
        key=f"launch_{field}",
        persist_state="session",
        **options,
    )


def in_launcher_words(message: str) -> str:
    """A RunSpec error (``train_limit: must be …``) with the field's label from the launcher
    (``Training images: must be …``)."""
    field, sep, rest = message.partition(": ")
    return f"{FIELD_LABELS[field]}: {rest}" if sep and field in FIELD_LABELS else message


@st.fragment
def _launcher() -> None:
    """Widgets rerun only this fragment; Start validates through RunSpec and queues.

    Fields left empty take the architecture's reference default (shown as placeholder).
    Fields are not clamped: RunSpec is the one validator, and its message is shown.
    """
    st.header("Train")
    keep = {"persist_state": "session"}
    frameworks = st.multiselect(
        "Frameworks", FRAMEWORKS, default=FRAMEWORKS, key="launch_fw", **keep
    )
    archs = st.multiselect("Architectures", ARCHS, default=ARCHS, key="launch_arch", **keep)
    settings: dict[str, Any] = {
        "epochs": _number("epochs", None, 1, placeholder=_defaults_hint("epochs")),
        "train_limit": _number(
            "train_limit",
            None,
            1000,
            placeholder="all 55,000",
            help="Use only the first N training images (quick runs).",
        ),
        "batch_size": _number("batch_size", None, 1, placeholder=_defaults_hint("batch_size")),
        "lr": _number(
            "lr",
            None,
            1e-4,
            format="%.5f",
            placeholder=_defaults_hint("lr"),
        ),
    }
    if settings["lr"] is not None and settings["lr"] > HIGH_LR:
        st.warning(
            f"A learning rate of {settings['lr']:g} is far above the defaults "
            f"({_defaults_hint('lr')}): Adam will most likely diverge. Start anyway if that "
            "is the experiment."
        )
    with st.expander("Scheduler, early stopping, seed"):
        settings.update(_scheduler_settings())
        settings["es_patience"] = _number(
            "es_patience",
            None,
            1,
            placeholder=_defaults_hint("es_patience"),
        )
        settings["augment_shift"] = _number(
            "augment_shift",
            None,
            1,
            placeholder=_defaults_hint("augment_shift"),
            help="Move each training image by up to N pixels per axis, redrawn every epoch "
            "(0 = no augmentation). Validation and test images are never shifted.",
        )
        settings["augment_rotate"] = _number(
            "augment_rotate",
            None,
            1,
            placeholder=_defaults_hint("augment_rotate"),
            help="Rotate each training image by up to N degrees either way, redrawn every "
            "epoch (0 = off). Validation and test images are never rotated.",
        )
        settings["augment_zoom"] = _number(
            "augment_zoom",
            None,
            1,
            placeholder=_defaults_hint("augment_zoom"),
            help="Scale each training image by up to N percent either way, about its centre, "
            "redrawn every epoch (0 = off). Validation and test images are never scaled.",
        )
        settings["label_smoothing"] = _number(
            "label_smoothing",
            None,
            0.05,
            format="%.2f",
            placeholder=_defaults_hint("label_smoothing"),
            help="Train towards targets that give this much probability to all ten classes "
            "together (0 = off). The validation and test losses stay plain cross-entropy, "
            "so curves compare with runs without it.",
        )
        settings["dropout"] = _number("dropout", 0.3, 0.05)
        settings["seed"] = _number("seed", 42, 1)
    if st.button("Start training", type="primary", key="launch_start"):
        _start(frameworks, archs, settings)


def _scheduler_settings() -> dict[str, Any]:
    """The scheduler choice and the parameters of the scheduler(s) it may mean (the
    architecture default may mean a different scheduler per architecture)."""
    defaults = {values["scheduler"] for values in ARCH_DEFAULTS.values()}
    hint = next(iter(defaults)) if len(defaults) == 1 else _defaults_hint("scheduler")
    default = f"architecture default ({hint})"
    choice = st.selectbox(
        "LR scheduler", [default, *SCHEDULERS], key="launch_scheduler", persist_state="session"
    )
    scheduler = None if choice == default else choice
    meant = defaults if scheduler is None else {scheduler}
    values: dict[str, Any] = {"scheduler": scheduler}
    if "plateau" in meant:
        values["plateau_factor"] = _number("plateau_factor", 0.5, 0.1)
        values["plateau_patience"] = _number("plateau_patience", 3, 1)
    if "step" in meant:
        values["step_size"] = _number("step_size", 5, 1)
        values["step_gamma"] = _number("step_gamma", 0.5, 0.1)
    return values


def _start(frameworks: list[str], archs: list[str], settings: dict[str, Any]) -> None:
    try:
        specs = build_specs(frameworks, archs, settings)
    except ValueError as err:
        st.error(f"Not started: {in_launcher_words(str(err))}")
        return
    queue_jobs(specs)


# --- live job progress -------------------------------------------------------------------
def jobs_to_show(runs: pd.DataFrame, submitted: list[str]) -> pd.DataFrame:
    """Queued and running jobs (from any tab), plus whatever this session launched, in the
    order the worker takes them (a batch shares its creation second)."""
    shown = runs[runs["status"].isin(ACTIVE) | runs["run_id"].isin(submitted)]
    return shown.sort_values(["created_at", "queued_at"], kind="stable")


def job_progress(run: dict[str, Any]) -> str:
    """Where a job is: epoch k/N, the latest validation accuracy, the test accuracy when done."""
    progress = _progress(run)
    parts = []
    if run["status"] == "running" or progress.get("epoch"):
        parts.append(f"epoch {progress.get('epoch', 0)}/{progress.get('epochs', '?')}")
    if progress.get("val_accuracy") is not None:
        parts.append(f"val acc {progress['val_accuracy']:.2%}")
    if run["status"] == "done" and pd.notna(run.get("test_accuracy")):
        parts.append(f"test acc {run['test_accuracy']:.2%}")
    return " · ".join(parts)


def job_line(run: dict[str, Any]) -> str:
    """One markdown line about a job, e.g. ``**torch/dnn a1b2c3** · running · epoch 3/10``;
    the short run id tells two jobs of one pair apart, as everywhere else."""
    parts = (f"**{run_label(run)}**", run["status"], job_progress(run))
    return " · ".join(part for part in parts if part)


def _statuses(runs: pd.DataFrame) -> dict[str, str]:
    return dict(zip(runs["run_id"], runs["status"], strict=True))


def _progress(run: dict[str, Any]) -> dict[str, Any]:
    progress = run.get("progress")
    return progress if isinstance(progress, dict) else {}


@st.fragment(run_every=PROGRESS_SECONDS)
def _job_progress() -> None:
    """Reruns on its own every few seconds; a status change refreshes the whole page."""
    runs = cached_runs()
    if _statuses(runs) != st.session_state.get(STATUSES_KEY):
        st.rerun(scope="app")  # a job was queued, started or finished: the page is stale
    if st.session_state.get(FLASH_KEY):
        st.rerun(scope="app")  # a Cancel below said something: sidebar() shows it
    st.header("Jobs")
    shown = jobs_to_show(runs, st.session_state.get(SUBMITTED_KEY, []))
    if shown.empty:
        st.caption("No jobs running. Pick pairs above and press Start training.")
    for run in shown.to_dict("records"):
        _job_card(run)


def _job_card(run: dict[str, Any]) -> None:
    with st.container(border=True):
        st.markdown(job_line(run))
        progress = _progress(run)
        if run["status"] == "running" and progress.get("epochs"):
            st.progress(min(1.0, progress.get("epoch", 0) / progress["epochs"]))
        if run["status"] == "failed":
            st.error(run.get("error") or "failed without an error message")
        if run["status"] in ACTIVE:
            # A callback, not ``if st.button(...)``: the click is handled before the list
            # reruns the whole page for a status change (a job that just started), which
            # would otherwise drop it.
            st.button(
                "Cancel",
                key=f"cancel-{run['run_id']}",
                on_click=cancel_and_tell,
                args=(run["run_dir"], run_label(run)),
            )


def cancel_and_tell(run_dir: str | Path, label: str) -> None:
    """A Cancel button's callback: cancel the job and queue a toast saying what happened.

    Run before the page, so the page run that follows already shows the new status and
    the toast; a message written during the page run vanished with the rerun that the
    status change set off a moment later.
    """
    done, message = cancel_job(run_dir)
    flash(f"{label}: {message}", error=not done)


def cancel_job(run_dir: str | Path) -> tuple[bool, str]:
    """``engines.jobs.cancel``: False and why when it was refused, else True and what it did."""
    try:
        return True, jobs.cancel(run_dir)
    except jobs.CancelRefused as err:
        return False, f"not cancelled: {err}"
    except store.StoreError as err:
        return True, f"nothing to cancel: {err}"
