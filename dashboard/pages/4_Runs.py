"""Runs: job status, cancel, delete, notes, and sharing (link, HTML report, zip bundles)."""

import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import report, sidebar, ui
from engines import bundle, jobs, store
from engines.spec import MAX_NOTES

st.set_page_config(page_title="Runs · Digit Lab", page_icon="🗂️", layout="wide")
sidebar.show()
st.title("Runs")

CONFIRM_KEY = "confirm_delete"
IMPORT_ROUND_KEY = "import_round"
IMPORT_MESSAGE = "import"  # a refused bundle's message (see ui.remember_message)
EXPORT_MESSAGE = "export"  # why Export bundle made no bundle
NOTES_RUN_KEY = "notes_run"  # the run whose notes the Notes box shows
EXPORT_KEY = "prepared_bundle"  # the zip Export bundle built, while the same runs are picked
EXPORT_HELP = "Zips the picked runs, for Import bundle on another dashboard; then download it."
TABLE_COLUMNS = ["run_id", "framework", "arch", "status", "progress", "test_accuracy", "created_at"]


def show_table() -> None:
    """Every run with its status and progress (read afresh: it may run as a live fragment)."""
    runs = ui.cached_runs()
    table = runs.assign(
        progress=[sidebar.job_progress(run) for run in runs.to_dict("records")],
        created_at=pd.to_datetime(runs["created_at"], utc=True),
    )
    st.dataframe(
        ui.accuracy_in_percent(table)[TABLE_COLUMNS + ["error"]],
        hide_index=True,
        placeholder=ui.MISSING,
        column_config={
            "run_id": "run",
            "progress": st.column_config.TextColumn("progress", width="medium"),
            "test_accuracy": ui.ACCURACY_COLUMN,
            "created_at": st.column_config.DatetimeColumn(
                "created (UTC)", format="YYYY-MM-DD HH:mm"
            ),
        },
    )


def cancel_controls(runs: pd.DataFrame) -> None:
    active = runs[runs["status"].isin(store.ACTIVE_STATUSES)]
    if active.empty:
        st.caption("No queued or running jobs.")
        return
    # The running job first, then the queue in the order it will run: the box preselects
    # the first, and Cancel should then stop what is training now.
    in_queue = active.sort_values(jobs.QUEUE_ORDER, kind="stable")
    active = in_queue.sort_values("status", key=lambda s: s != "running", kind="stable")
    labels = ui.labels_by_id(active)
    run_id = st.selectbox("Job", list(labels), format_func=labels.get, key="cancel_pick")
    run_dir = active.loc[active["run_id"] == run_id, "run_dir"].iloc[0]
    st.button(
        "Cancel job",
        key="cancel_job",
        on_click=sidebar.cancel_and_tell,
        args=(run_dir, labels[run_id]),
    )


def delete_controls(runs: pd.DataFrame) -> None:
    """Two steps: choose runs and press Delete, then confirm (or keep them).

    The confirmation holds for exactly the runs chosen when Delete was pressed: once the
    choice changes (or a chosen run disappears) it is dropped, and Delete must be pressed again.
    """
    finished = deletable(runs)
    labels = ui.labels_by_id(finished[finished["readable"]])
    labels |= {name: f"{name} (unreadable)" for name in finished["run_id"][~finished["readable"]]}
    if not labels:
        st.caption("No finished runs (cancel a job before deleting it).")
        return
    ui.drop_gone_choices("delete", labels)  # e.g. the runs this box just deleted
    chosen = st.multiselect("Runs to delete", list(labels), format_func=labels.get, key="delete")
    if st.button("Delete…", disabled=not chosen, key="delete_ask"):
        st.session_state[CONFIRM_KEY] = list(chosen)
    if not chosen or st.session_state.get(CONFIRM_KEY) != chosen:
        st.session_state.pop(CONFIRM_KEY, None)  # confirmed for another choice: ask again
        return
    confirm_delete(finished[finished["run_id"].isin(chosen)], labels)


def deletable(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs, then the folders the store could not read (``readable`` False):
    the dashboard is the one place a user sees those, so it can remove them too."""
    finished = runs[~runs["status"].isin(store.ACTIVE_STATUSES)].assign(readable=True)
    root = ui.results_root()
    broken = pd.DataFrame(
        [(name, str(root / name), False) for name, _ in runs.attrs.get("skipped", [])],
        columns=["run_id", "run_dir", "readable"],
    )
    return pd.concat([finished, broken], ignore_index=True) if len(broken) else finished


def confirm_delete(doomed: pd.DataFrame, labels: dict[str, str]) -> None:
    """The warning naming every run to delete, and the buttons to delete or keep them."""
    names = "\n".join(
        f"- `{run.run_id}` ({labels[run.run_id] if run.readable else 'unreadable folder'})"
        for run in doomed.itertuples()
    )
    st.warning(
        f"Delete {'this run' if len(doomed) == 1 else f'these {len(doomed)} runs'} and all "
        "their files? This cannot be undone.\n\n" + names
    )
    yes, no = st.columns(2)
    if yes.button(f"Yes, delete {len(doomed)} run(s)", type="primary", key="delete_yes"):
        delete_runs(doomed)
    if no.button("Keep them", key="delete_no"):
        st.session_state.pop(CONFIRM_KEY, None)
        st.rerun()


def delete_runs(doomed: pd.DataFrame) -> None:
    """Delete the runs, then say (after the rerun) how many went and which could not."""
    deleted = []
    for run in doomed.to_dict("records"):
        try:
            store.delete_run(run["run_dir"], ui.results_root())
        except (store.StoreError, OSError) as err:
            sidebar.flash(f"{run['run_id']} not deleted: {err}", error=True)
        else:
            deleted.append(run["run_id"])
    st.session_state.pop(CONFIRM_KEY, None)
    ui.pick_runs([i for i in ui.picked_run_ids() if i not in deleted])
    if deleted:
        sidebar.flash(f"Deleted {len(deleted)} run(s).")
    st.rerun()


def notes_controls(runs: pd.DataFrame) -> None:
    """Rewrite a finished run's notes (the leaderboard's Notes column), e.g. to say what the
    run turned out to show. Queued and running runs are left to their jobs.

    The Run box gets a new key when the finished runs change (one finishes, one is deleted)
    but keeps the run picked before, so notes typed for it are saved to it.
    """
    finished = runs[~runs["status"].isin(store.ACTIVE_STATUSES)]
    if finished.empty:
        st.caption("No finished runs yet.")
        return
    labels = ui.labels_by_id(finished)
    ids = list(labels)
    last = st.session_state.get(NOTES_RUN_KEY)
    run_id = st.selectbox(
        "Run",
        ids,
        index=ids.index(last) if last in ids else 0,
        format_func=labels.get,
        key=ui.key_for("notes_pick", ids),
    )
    st.session_state[NOTES_RUN_KEY] = run_id
    run = finished[finished["run_id"] == run_id].iloc[0]
    current = run["spec_notes"] if isinstance(run["spec_notes"], str) else ""
    with st.form("notes_form", border=False):
        notes = st.text_input(
            "Notes",
            value=current,
            # Never cut notes written before the limit: Save then says they are too long.
            max_chars=max(MAX_NOTES, len(current)),
            placeholder="what this run tried or showed",
            key=ui.key_for("notes_text", [run_id, current]),  # fresh when the notes change
        )
        if st.form_submit_button("Save notes"):
            save_notes(run["run_dir"], notes, labels[run_id])


def save_notes(run_dir: str, notes: str, label: str) -> None:
    try:
        store.set_notes(run_dir, notes)
    except (store.StoreError, OSError) as err:
        st.error(f"{label}: notes not saved: {err}")
        return
    sidebar.flash(f"Notes saved for {label}.")
    st.rerun()


def share_controls(runs: pd.DataFrame) -> None:
    ui.run_picker(runs, label="Runs to share", key="share_pick", placeholder="none picked")
    picked = ui.picked_runs(runs, default_status=None) if ui.picked_run_ids() else runs[:0]
    active = picked["status"].isin(store.ACTIVE_STATUSES)
    finished, unfinished = picked[~active], picked[active]  # failed and cancelled runs too
    if not unfinished.empty:
        labels = ui.labels_by_id(unfinished)
        left_out = ", ".join(f"{labels[r.run_id]} ({r.status})" for r in unfinished.itertuples())
        st.caption(f"Left out of the link, report and bundle (still queued or running): {left_out}")
    if finished.empty:
        st.caption("Pick finished runs to share them.")
    else:
        show_link(finished)
        run_dirs = [Path(d) for d in finished["run_dir"]]
        left, right = st.columns(2)
        left.download_button(
            "Download report",
            data=partial(report.build_report, run_dirs),
            file_name=f"digitlab-report-{store.file_stamp()}.html",
            mime="text/html",
            key="report",
            help="One HTML file (viewable offline): leaderboard, curves, matrices, LR schedules.",
        )
        export_controls(finished, right)
    import_controls()


def export_controls(finished: pd.DataFrame, where: DeltaGenerator) -> None:
    """Export bundle for the picked finished runs; a run that cannot go in is named with
    the reason, before the click."""
    labels = ui.labels_by_id(finished)
    problems = {r.run_id: bundle.export_problem(Path(r.run_dir)) for r in finished.itertuples()}
    left_out = [f"{labels[run_id]} ({problem})" for run_id, problem in problems.items() if problem]
    if left_out:
        where.caption(f"Left out of the bundle: {', '.join(left_out)}")
    run_dirs = [Path(r.run_dir) for r in finished.itertuples() if not problems[r.run_id]]
    if (size := bundle.export_size(run_dirs)) > bundle.MAX_TOTAL_BYTES:
        where.warning(f"No bundle: {bundle.too_large(size)}.")
    elif run_dirs:
        with where:
            export_in_two_steps(run_dirs)


def export_in_two_steps(run_dirs: list[Path]) -> None:
    """Export bundle builds the zip, then Download bundle hands it over (kept for this
    choice of runs). Built on the click, so a run that lost a file since the page was drawn
    is named in a message; a zip built lazily by the download failed without a word."""
    chosen = repr([str(run_dir) for run_dir in run_dirs])
    if st.session_state.get(EXPORT_KEY, {}).get("runs") != chosen:
        st.session_state.pop(EXPORT_KEY, None)  # made for other runs
    prepared = st.session_state.get(EXPORT_KEY)
    if st.button("Export bundle", key="export", help=EXPORT_HELP):
        prepared = prepare_bundle(run_dirs, chosen)
    if prepared is not None:
        st.download_button(
            "Download bundle",
            data=prepared["zip"],
            file_name=prepared["file_name"],
            mime="application/zip",
            key="export_download",
            on_click="ignore",
            help=f"{len(run_dirs)} run(s), {len(prepared['zip']) / 2**20:.1f} MB zipped",
        )
    ui.show_remembered(EXPORT_MESSAGE, chosen)  # until other runs are picked


def prepare_bundle(run_dirs: list[Path], chosen: str) -> dict | None:
    """The zip of ``run_dirs`` kept in the session, or None and a remembered message."""
    try:
        zipped = bundle.export_runs(run_dirs)
    except (bundle.BundleError, OSError) as err:
        st.session_state.pop(EXPORT_KEY, None)
        ui.remember_message(EXPORT_MESSAGE, chosen, f"No bundle: {err}")
        return None
    ui.forget_message(EXPORT_MESSAGE)
    file_name = f"digitlab-runs-{store.file_stamp()}.zip"
    st.session_state[EXPORT_KEY] = {"runs": chosen, "zip": zipped, "file_name": file_name}
    return st.session_state[EXPORT_KEY]


def show_link(finished: pd.DataFrame) -> None:
    """A link to the Curves page with these runs picked (this page's address, Runs → Curves)."""
    query = f"?{ui.RUNS_PARAM}={','.join(finished['run_id'])}"
    if len(finished) > 1 and st.checkbox(
        "The link groups runs that differ only in seed",
        key="link_by_seed",
        help="Opens the Curves page with its seed grouping on: one mean curve per setting.",
    ):
        query += "&by_seed=true"
    here = (st.context.url or "").split("?")[0]
    curves = here.removesuffix("/").removesuffix("/Runs") + "/Curves"
    st.write(
        "**Copy link**: opens these runs' curves (and keeps them picked on every page) "
        "on a dashboard that has these runs"
    )
    st.code(curves + query, language=None)
    st.caption(
        "For a teammate's own dashboard: they import the bundle, then put their dashboard's "
        "address in place of the part before `/Curves` (this one may be localhost)."
    )


def import_controls() -> None:
    """An uploader and Import; after an import a new uploader key gives an empty uploader,
    so the same bundle is not offered for a second import."""
    round_ = st.session_state.setdefault(IMPORT_ROUND_KEY, 0)
    uploaded = st.file_uploader("Import bundle", type=["zip"], key=f"bundle_file_{round_}")
    upload = "" if uploaded is None else uploaded.file_id
    if uploaded is not None and st.button("Import", key="bundle_import"):
        try:
            imported = bundle.import_runs(uploaded.getvalue(), ui.results_root())
        except bundle.BundleError as err:
            ui.remember_message(IMPORT_MESSAGE, upload, f"Bundle refused, nothing imported: {err}")
        except OSError as err:
            ui.remember_message(
                IMPORT_MESSAGE, upload, f"Could not import into {ui.results_root()}: {err}"
            )
        else:
            imported_and_rerun(imported, round_)
    ui.show_remembered(IMPORT_MESSAGE, upload)  # until another file is picked


def imported_and_rerun(imported: bundle.Imported, round_: int) -> None:
    """Say what the import did (after the rerun) and empty the uploader."""
    if imported.new:
        sidebar.flash(f"Imported {len(imported.new)} run(s): {', '.join(imported.new)}")
    if imported.already_here:
        sidebar.flash(
            f"Already here, unchanged (not imported again): {len(imported.already_here)} "
            f"run(s): {', '.join(imported.already_here)}"
        )
    st.session_state[IMPORT_ROUND_KEY] = round_ + 1
    st.rerun()


runs = ui.cached_runs()
ui.show_skipped(runs)
if runs.empty:
    st.info("No runs in this store yet: start some from the sidebar or import a bundle below.")
    ui.warn_missing_picks(runs)  # a shared link opened on an empty store
else:
    live = runs["status"].isin(store.ACTIVE_STATUSES).any()  # follow epochs while jobs run
    st.fragment(show_table, run_every=sidebar.PROGRESS_SECONDS if live else None)()
    st.subheader("Cancel a job")
    cancel_controls(runs)
if not runs.empty or runs.attrs.get("skipped"):
    st.subheader("Delete runs")
    delete_controls(runs)
st.subheader("Share")
if runs.empty:
    import_controls()
else:
    share_controls(runs)
if not runs.empty:
    st.subheader("Notes")
    notes_controls(runs)
st.caption(f"Store: `{ui.results_root()}` (set RESULTS_DIR to share a team folder)")
