"""Page helpers shared by every dashboard page.

* Cached reads of the run store, invalidated when a run's files change on disk.
* The picked runs: kept in the URL (``?runs=id1,id2``) so a copied link opens the same
  comparison, and mirrored in ``st.session_state`` so the pick survives page switches.
* How runs are shown: labels, accuracy in percent, the settings that differ.

The sidebar (launcher and job list) is :mod:`dashboard.sidebar`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.charts import run_label
from engines import compare, store
from engines.compare import seed_curves, seed_group_labels, seed_table

MISSING = compare.MISSING  # the tables' placeholder for a value a run does not have (yet)
RUNS_PARAM = "runs"
PICKED_KEY = "picked_runs"


# --- messages that outlast a rerun -------------------------------------------------------
MESSAGES_KEY = "remembered_messages"


def remember_message(key: str, inputs: str, text: str, kind: str = "error") -> None:
    """Keep a refusal ("Not started: …") for :func:`show_remembered`.

    A message written during a page run vanishes with the next rerun, and the sidebar
    reruns the page whenever a job changes status: a refusal could be gone within a second.
    """
    st.session_state.setdefault(MESSAGES_KEY, {})[key] = (inputs, kind, text)


def forget_message(key: str) -> None:
    st.session_state.get(MESSAGES_KEY, {}).pop(key, None)


def show_remembered(key: str, inputs: str) -> None:
    """The message remembered under ``key``, for as long as the inputs it was about (the
    launcher's fields, an uploaded file) are unchanged; once they change it is dropped."""
    messages = st.session_state.get(MESSAGES_KEY, {})
    if key not in messages:
        return
    said_for, kind, text = messages[key]
    if said_for != inputs:
        del messages[key]
    elif kind == "error":
        st.error(text)
    else:
        st.warning(text)


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

    Runs before their first epoch have no history yet: left out quietly while queued or
    running, named in a caption if they ended there; other unreadable ones are warned about.
    A run that failed or was cancelled says so in its label (``torch/dnn a1b2c3 (cancelled)``).
    """
    frames = []
    for run in runs.to_dict("records"):
        if not (Path(run["run_dir"]) / store.HISTORY).exists() and run["status"] != "done":
            if run["status"] in ("failed", "cancelled"):
                st.caption(f"{run_label(run)}: {run['status']} before its first epoch: no curves")
            continue  # a queued or running one has its curves from its first epoch on
        try:
            history = cached_history(run["run_dir"])
        except store.StoreError as err:  # its message starts with the folder: named once
            st.warning(f"{run_label(run)}: {str(err).removeprefix(run['run_id'] + ': ')}")
            continue
        ended = f" ({run['status']})" if run["status"] in ("failed", "cancelled") else ""
        frames.append(history.assign(label=run_label(run) + ended))  # not mistaken for done
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def seed_history(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """``history`` (of ``runs``) averaged per seed group, each group labelled like
    ``torch/dnn · 3 seeds``: with the settings that set it apart when its pair has several
    groups (``… · learning rate 0.01``), and the run count when it repeats a seed. A group
    with a run whose loss is not a number is named: its mean is blank there."""
    table = seed_table(runs)
    curves = seed_curves(history, table)
    curves = curves.assign(label=curves["group"].map(seed_group_labels(table)))
    diverged = curves.loc[curves[["train_loss", "val_loss"]].isna().any(axis=1), "label"]
    if not diverged.empty:
        st.caption(
            "A run's loss was not a number (diverged?), so its setting's mean is blank there: "
            + ", ".join(diverged.unique())
        )
    return curves


CURVES_TABLE_COLUMNS = {
    "run": "run",
    "epochs": "epochs",
    "last_val_accuracy": st.column_config.NumberColumn("last val accuracy", format="%.2f %%"),
    "best_val_accuracy": st.column_config.NumberColumn("best val accuracy", format="%.2f %%"),
    "best_accuracy_epoch": "best at epoch",
    "last_val_loss": st.column_config.NumberColumn("last val loss", format="%.4f"),
    "lowest_val_loss": st.column_config.NumberColumn("lowest val loss", format="%.4f"),
    "lowest_loss_epoch": "lowest at epoch",
}


def show_curves_table(history: pd.DataFrame) -> None:
    """The curves in numbers (:func:`engines.compare.curves_summary`), in an expander: the
    charts' text alternative, read without hovering."""
    table = compare.curves_summary(history)
    percent = table[["last_val_accuracy", "best_val_accuracy"]] * 100
    with st.expander("Curves as a table"):
        st.dataframe(
            table.assign(**percent),
            hide_index=True,
            column_config=CURVES_TABLE_COLUMNS,
            placeholder=MISSING,
            key="curves_table",
        )


def show_skipped(runs: pd.DataFrame) -> None:
    """Folders the store could not read, in an expander (never a traceback)."""
    skipped = runs.attrs.get("skipped", [])
    if skipped:
        with st.expander(f"{len(skipped)} run folder(s) skipped: unreadable"):
            st.caption("Fix their files, or remove them under Delete runs on the Runs page.")
            for name, reason in skipped:
                st.write(f"**{name}**: {reason.removeprefix(f'{name}: ')}")


def show_incomplete(runs: pd.DataFrame) -> None:
    """Done runs missing a file the pages need, in an expander: their leaderboard row looks
    fine, but Curves, Confusion or Draw would fail on them."""
    incomplete = {
        run.run_id: missing
        for run in runs[runs["status"] == "done"].itertuples()
        if (missing := store.missing_parts(Path(run.run_dir), run.status))
    }
    if incomplete:
        labels = labels_by_id(runs)
        with st.expander(f"{len(incomplete)} done run(s) incomplete: files missing"):
            st.caption("A page that needs a missing file says so; delete them on the Runs page.")
            for run_id, missing in incomplete.items():
                st.write(f"**{labels[run_id]}**: no {missing}")


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
    picked = picked_run_ids()
    missing = [i for i in picked if i not in known]
    if missing:
        st.warning(
            f"Not in this store: {', '.join(missing)}. They were deleted, or they come from "
            "another dashboard: then import their bundle on the Runs page (or point "
            "RESULTS_DIR at their store). They stay picked until then, or until forgotten."
        )
        here = [i for i in picked if i in known]
        st.button(
            "Forget the runs not in this store",
            key="forget_missing",
            on_click=pick_runs,
            args=(here,),
        )


ON_OFF = ("true", "false")  # how a toggle or checkbox bound to the URL is written there


def warn_unknown_link_values(allowed: dict[str, Iterable[str]]) -> None:
    """Name the values in the address that the widgets bound to it (``bind="query-params"``)
    cannot take, such as ``x=foo``: Streamlit drops them silently, and the page then reads as
    if the link had asked for the default. Warned once per session."""
    for param, choices in allowed.items():
        choices = [str(choice).lower() for choice in choices]
        bad = [v for v in st.query_params.get_all(param) if v and v.lower() not in choices]
        if bad and not st.session_state.get(f"warned_link_{param}"):
            st.session_state[f"warned_link_{param}"] = True
            takes = ", ".join(choices[:-1]) + f" or {choices[-1]}"
            st.warning(f"Ignored from the link: {param}={', '.join(bad)} ({param} takes {takes}).")


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


def run_picker(
    runs: pd.DataFrame,
    label: str = "Runs to compare",
    key: str = "pick",
    placeholder: str = "none picked: pages show every finished run",
) -> None:
    """A multiselect of every run in the store that reads and writes the picked runs.

    It shows the picked runs this store has, every time: a run picked by a link before it
    was imported appears once it is here, one deleted meanwhile goes. Changing the pick keeps
    the picked runs the store does not have (yet): a link's run still to be imported is not
    lost by adding another run (:func:`warn_missing_picks` offers to forget them).
    """
    labels = labels_by_id(runs)
    here = [run_id for run_id in picked_run_ids() if run_id in labels]
    if st.session_state.get(key) != here:
        st.session_state[key] = here

    def changed() -> None:
        elsewhere = [run_id for run_id in picked_run_ids() if run_id not in labels]
        pick_runs(st.session_state[key] + elsewhere)

    st.multiselect(
        label,
        options=list(labels),
        format_func=lambda run_id: labels[run_id],
        key=key,
        on_change=changed,
        placeholder=placeholder,
    )


def key_for(prefix: str, options: Iterable[str]) -> str:
    """A widget key that changes with ``options``: Streamlit then draws a fresh widget
    instead of one whose browser side still holds a value that is no longer offered."""
    return f"{prefix}_{hashlib.sha1(' '.join(options).encode()).hexdigest()[:12]}"


def run_selectbox(label: str, ids: list[str], labels: dict[str, str], param: str) -> str:
    """A selectbox over ``ids`` whose choice is kept as a run id in the URL's ``param``.

    (Streamlit's own ``bind="query-params"`` would put the displayed label in the URL.)
    The run a link asks for stays asked for until another is chosen in the box: while it is
    not among ``ids`` the box shows the first of them and the URL keeps the link's id, so a
    link opened before its runs were imported picks them once they are here. A linked id
    that is none of ``labels`` (the runs the page shows) is named in a warning.
    The box gets a new key whenever ``ids`` change: a box whose chosen run was deleted kept
    showing it in the browser while the page showed another run.
    """
    wanted = _wanted_run(param, ids, labels)
    index = ids.index(wanted) if wanted in ids else 0  # the first, while the wanted one is not here
    key = key_for(f"{param}_box", ids)
    chosen = st.selectbox(
        label,
        ids,
        index=index,
        format_func=labels.get,
        key=key,
        on_change=_choose_run,
        args=(param, key),
    )
    st.session_state.setdefault(param, chosen)
    st.query_params[param] = st.session_state[param]
    return chosen


def _wanted_run(param: str, ids: list[str], labels: dict[str, str]) -> str | None:
    """The run id wanted in a :func:`run_selectbox`: the one last chosen in this session, or
    the link's (warned about once, when the page does not show it)."""
    from_link = st.query_params.get(param)
    if from_link is not None and param not in st.session_state:  # a link was opened
        st.session_state[param] = from_link
        if from_link not in labels:
            st.warning(f"Run {from_link!r} ({param}= in the address) is not one of the finished "
                       f"runs shown here; showing {labels[ids[0]]} instead.")  # fmt: skip
    return st.session_state.get(param)


def _choose_run(param: str, key: str) -> None:
    """A run chosen in a :func:`run_selectbox` (``key``) becomes the wanted one."""
    st.session_state[param] = st.session_state[key]
