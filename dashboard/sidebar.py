"""The sidebar on every page: the training launcher and the live job list.

Start validates the fields through ``RunSpec`` and queues one job per pair in the store
(``engines.jobs``); the job list follows them while they run, epoch by epoch, and cancels
them. Messages for the page run after a click ("flash") are shown as toasts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.charts import run_label
from dashboard.ui import (
    cached_runs,
    forget_message,
    remember_message,
    results_root,
    show_remembered,
)
from engines import jobs, store
from engines.spec import (
    ARCH_DEFAULTS,
    ARCHS,
    FIELD_LABELS,
    FRAMEWORKS,
    MAX_LR,
    MAX_NOTES,
    MNIST_TRAIN_IMAGES,
    SCHEDULERS,
    RunSpec,
    default_of,
    over_seeds,
)

# The launcher warns outside these, far from every architecture's default rate (ARCH_DEFAULTS).
HIGH_LR = 0.1
LOW_LR = 1e-5
SUBMITTED_KEY = "submitted_runs"
STATUSES_KEY = "job_statuses"
FLASH_KEY = "flash"
LAUNCH_MESSAGE = "launcher"  # remembered refusal of Start (see ui.remember_message)
PROGRESS_SECONDS = 2
QUICK_START = {"epochs": 2, "train_limit": 10_000}


# --- launching jobs ----------------------------------------------------------------------
def build_specs(
    frameworks: Sequence[str], archs: Sequence[str], settings: dict[str, Any], seeds: int = 1
) -> list[RunSpec]:
    """One RunSpec per framework x architecture pair and seed; ``ValueError`` names a bad
    field."""
    if not frameworks or not archs:
        raise ValueError("pick at least one framework and one architecture")
    pairs = [RunSpec(framework=f, arch=a, **settings) for f in frameworks for a in archs]
    return over_seeds(pairs, seeds)


def submit_jobs(specs: list[RunSpec]) -> list[Path]:
    """Queue the runs in the dashboard's store; the sidebar follows them for this session."""
    run_dirs = jobs.submit(specs, results_root())
    submitted = st.session_state.setdefault(SUBMITTED_KEY, [])
    submitted.extend(run_dir.name for run_dir in run_dirs)
    return run_dirs


def queue_jobs(specs: list[RunSpec], message_key: str, inputs: str) -> None:
    """Queue the specs and rerun the app, so the job list and the tables show them at once.

    A spec that a queued or running job already trains is skipped and named (a double click
    on Start must not train the same run twice); a store that cannot be written is reported.
    A store error is remembered under ``message_key`` for these ``inputs``
    (:func:`dashboard.ui.remember_message`).
    """
    root = results_root()
    try:
        twins = jobs.active_twins(specs, root)
        run_dirs = submit_jobs([spec for spec in specs if spec not in twins])
    except OSError as err:
        remember_message(message_key, inputs, f"Could not queue the jobs in {root}: {err}")
        return
    if twins:
        names = ", ".join(
            f"{run_label({'framework': s.framework, 'arch': s.arch, 'run_id': run_id})} "
            f"(seed {s.seed})"
            for s, run_id in twins.items()
        )
        skipped = (
            f"Not queued again, already queued or running with the same settings and seed: "
            f"{names}. Another seed (or another setting) trains another run."
        )
        flash(skipped, error=True)  # a toast: true when said, even once those jobs end
    forget_message(message_key)
    if run_dirs:
        flash(f"Queued {len(run_dirs)} job(s): progress in the sidebar.")
    st.rerun(scope="app")


def show() -> None:
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
    """The launcher's field for a RunSpec ``field`` (or "seeds"); its value is kept for the
    session."""
    return st.number_input(
        FIELD_LABELS[field],
        value=value,
        step=step,
        key=f"launch_{field}",
        persist_state="session",
        **options,
    )


def _arch_default_number(field: str, step: Any, **options: Any) -> Any:
    """A field left empty by default: the run then takes its architecture's default, which
    the placeholder shows."""
    return _number(field, None, step, placeholder=_defaults_hint(field), **options)


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
        "epochs": _arch_default_number("epochs", 1),
        "train_limit": _number(
            "train_limit",
            None,
            1000,
            placeholder=f"all {MNIST_TRAIN_IMAGES - default_of('val_size'):,}",
            help="Use only the first N training images (quick runs).",
        ),
        "batch_size": _arch_default_number("batch_size", 1),
        "lr": _arch_default_number("lr", 1e-4, format="%g"),
    }
    if settings["lr"] is not None and HIGH_LR < settings["lr"] <= MAX_LR:  # above: refused
        st.warning(
            f"A learning rate of {settings['lr']:g} is far above the defaults "
            f"({_defaults_hint('lr')}): Adam will most likely diverge. Start anyway if that "
            "is the experiment."
        )
    if settings["lr"] is not None and 0 < settings["lr"] < LOW_LR:  # 0 and below: refused
        st.warning(
            f"A learning rate of {settings['lr']:g} is far below the defaults "
            f"({_defaults_hint('lr')}): the networks will barely learn in these epochs. "
            "Start anyway if that is the experiment."
        )
    with st.expander("Scheduler, early stopping, seed"):
        settings.update(_scheduler_settings())
        settings["es_patience"] = _arch_default_number("es_patience", 1)
        settings["augment_shift"] = _arch_default_number(
            "augment_shift",
            1,
            help="Move each training image by up to N pixels per axis, redrawn every epoch "
            "(0 = no augmentation). Validation and test images are never shifted.",
        )
        settings["augment_rotate"] = _arch_default_number(
            "augment_rotate",
            1,
            help="Rotate each training image by up to N degrees either way, redrawn every "
            "epoch (0 = off). Validation and test images are never rotated.",
        )
        settings["augment_zoom"] = _arch_default_number(
            "augment_zoom",
            1,
            help="Scale each training image by up to N percent either way, about its centre, "
            "redrawn every epoch (0 = off). Validation and test images are never scaled.",
        )
        settings["label_smoothing"] = _arch_default_number(
            "label_smoothing",
            0.05,
            format="%.2f",
            help="Train towards targets that give this much probability to all ten classes "
            "together (0 = off). The validation and test losses stay plain cross-entropy, "
            "so curves compare with runs without it.",
        )
        settings["dropout"] = _number("dropout", default_of("dropout"), 0.05)
        settings["seed"] = _number("seed", default_of("seed"), 1)
        seeds = _number(
            "seeds",
            1,
            1,
            help="Runs per pair, with seeds Seed, Seed + 1, …: Home's 'Group runs that differ "
            "only in seed' then shows their mean and spread.",
        )
    settings["notes"] = st.text_input(
        FIELD_LABELS["notes"],
        key="launch_notes",
        placeholder="optional: what these runs try",
        max_chars=MAX_NOTES,
        help="Stored with each run and shown on the leaderboard.",
        **keep,
    )
    inputs = repr((frameworks, archs, settings, seeds))
    if st.button("Start training", type="primary", key="launch_start"):
        _start(frameworks, archs, settings, seeds, inputs)
    show_remembered(LAUNCH_MESSAGE, inputs)


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
        values["plateau_factor"] = _number("plateau_factor", default_of("plateau_factor"), 0.1)
        values["plateau_patience"] = _number("plateau_patience", default_of("plateau_patience"), 1)
    if "step" in meant:
        values["step_size"] = _number("step_size", default_of("step_size"), 1)
        values["step_gamma"] = _number("step_gamma", default_of("step_gamma"), 0.1)
    return values


def _start(
    frameworks: list[str], archs: list[str], settings: dict[str, Any], seeds: int, inputs: str
) -> None:
    try:
        specs = build_specs(frameworks, archs, settings, seeds)
    except ValueError as err:
        remember_message(LAUNCH_MESSAGE, inputs, f"Not started: {in_launcher_words(str(err))}")
        return
    queue_jobs(specs, LAUNCH_MESSAGE, inputs)


# --- live job progress -------------------------------------------------------------------
def jobs_to_show(runs: pd.DataFrame, submitted: list[str]) -> pd.DataFrame:
    """Queued and running jobs (from any tab), plus whatever this session launched, in the
    order the worker takes them."""
    shown = runs[runs["status"].isin(store.ACTIVE_STATUSES) | runs["run_id"].isin(submitted)]
    return shown.sort_values(jobs.QUEUE_ORDER, kind="stable")


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
    """One markdown line about a job, e.g. ``**torch/dnn a1b2c3** · seed 42 · running · epoch
    3/10``; the short run id tells two jobs of one pair apart, as everywhere else."""
    seed = f"seed {run['seed']}" if pd.notna(run.get("seed")) else ""
    parts = (f"**{run_label(run)}**", seed, run["status"], job_progress(run))
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
        st.rerun(scope="app")  # a Cancel below said something: show() shows it
    st.header("Jobs")
    shown = jobs_to_show(runs, st.session_state.get(SUBMITTED_KEY, []))
    if shown.empty:
        st.caption("No jobs running. Pick pairs above and press Start training.")
    for run in shown.to_dict("records"):
        _job_card(run)


def _job_card(run: dict[str, Any]) -> None:
    """A job's line, progress bar and Cancel button; the bar and the button name the job, so
    a screen reader or voice control tells one job's Cancel from another's."""
    label = run_label(run)
    with st.container(border=True):
        st.markdown(job_line(run))
        progress = _progress(run)
        if run["status"] == "running" and progress.get("epochs"):
            epoch, epochs = progress.get("epoch", 0), progress["epochs"]
            st.progress(min(1.0, epoch / epochs), text=f"{label}: epoch {epoch}/{epochs}")
        if run["status"] == "failed":
            st.error(run.get("error") or "failed without an error message")
        if run["status"] in store.ACTIVE_STATUSES:
            # A callback, not ``if st.button(...)``: the click is handled before the list
            # reruns the whole page for a status change (a job that just started), which
            # would otherwise drop it.
            st.button(
                f"Cancel {label}",
                key=f"cancel-{run['run_id']}",
                on_click=cancel_and_tell,
                args=(run["run_dir"], label),
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
