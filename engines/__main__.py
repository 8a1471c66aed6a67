"""Command line: ``python -m engines {train,grid,runs,export,import,cancel,delete,worker,bench}``
(``--help`` on each)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

try:  # a second of library loading: Ctrl-C here ends quietly too, as it does later
    import pandas as pd

    from engines import jobs, store
    from engines.core import EpochStats
    from engines.runner import host_info
    from engines.spec import ARCH_DEFAULTS, ARCHS, FRAMEWORKS, SCHEDULERS, RunSpec, over_seeds
except KeyboardInterrupt:
    sys.exit(130)

FOLLOW_POLL_SECONDS = 0.5


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one clear line (and exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- options -----------------------------------------------------------------------------
def folder_path(text: str) -> str:
    """A non-empty path: an empty ``--results-dir "$UNSET"`` would make ``.`` the store."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return text


def positive_int(text: str) -> int:
    value = int(text)  # argparse turns a ValueError into "invalid positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    """Hyper-parameter options shared by ``train`` and ``grid``. Each is ``None`` unless
    given, so ``--spec`` can tell a typed option from a default (RunSpec fills those in)."""
    d = RunSpec("torch", "dnn")
    arch_default = "; ".join(
        f"{arch}: {', '.join(f'{k}={v}' for k, v in values.items())}"
        for arch, values in ARCH_DEFAULTS.items()
    )
    group = parser.add_argument_group(
        "hyper-parameters", f"Per-architecture defaults: {arch_default}."
    )
    group.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    group.add_argument("--batch-size", type=int, help="training batch size")
    group.add_argument("--lr", type=float, help="Adam learning rate")
    group.add_argument("--dropout", type=float, help=f"default {d.dropout}")
    group.add_argument("--scheduler", choices=SCHEDULERS, help="LR scheduler")
    group.add_argument("--plateau-factor", type=float, help=f"default {d.plateau_factor}")
    group.add_argument("--plateau-patience", type=int, help=f"default {d.plateau_patience}")
    group.add_argument("--step-size", type=int, help=f"default {d.step_size}")
    group.add_argument("--step-gamma", type=float, help=f"default {d.step_gamma}")
    group.add_argument("--es-patience", type=int, help="early-stopping patience (epochs)")
    group.add_argument("--es-min-delta", type=float, help=f"default {d.es_min_delta}")
    group.add_argument(
        "--augment-shift",
        type=int,
        help="shift each training image by up to N px per axis, redrawn every epoch (0 = off)",
    )
    group.add_argument(
        "--augment-rotate",
        type=int,
        help="rotate each training image by up to N degrees, redrawn every epoch (0 = off)",
    )
    group.add_argument(
        "--augment-zoom",
        type=int,
        help="scale each training image by up to N percent either way, redrawn every epoch "
        "(0 = off)",
    )
    group.add_argument(
        "--label-smoothing",
        type=float,
        help="train towards targets with this much probability spread over all classes "
        "(0 = off); the validation and test losses stay plain cross-entropy",
    )
    group.add_argument("--seed", type=int, help=f"seed, default {d.seed}")
    group.add_argument(
        "--train-limit", type=int, help="use only the first N training images (quick runs)"
    )
    group.add_argument("--val-size", type=int, help=f"default {d.val_size}")
    group.add_argument("--test-limit", type=int, help="evaluate on the first N test images only")
    group.add_argument("--notes", help="free text stored with the run")


SPEC_OPTIONS = [
    "epochs", "batch_size", "lr", "dropout", "scheduler", "plateau_factor", "plateau_patience",
    "step_size", "step_gamma", "es_patience", "es_min_delta", "augment_shift", "augment_rotate",
    "augment_zoom", "label_smoothing", "seed", "train_limit", "val_size", "test_limit", "notes",
]  # fmt: skip


def spec_from_args(args: argparse.Namespace, framework: str, arch: str) -> RunSpec:
    """The spec the options describe; options not given (``None``) take RunSpec's defaults."""
    values = {name: getattr(args, name) for name in SPEC_OPTIONS}
    given = {name: value for name, value in values.items() if value is not None}
    return RunSpec(framework=framework, arch=arch, **given)


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m engines",
        description="Train, list, share and benchmark Digit Lab runs (--help on each command).",
    )
    parser.add_argument(
        "--results-dir",
        type=folder_path,
        help="run store folder (default: $RESULTS_DIR or results/)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser("train", help="train one framework/architecture pair")
    train.set_defaults(parser=train)
    train.add_argument("--framework", choices=FRAMEWORKS, help="keras, torch or lightning")
    train.add_argument("--arch", choices=ARCHS, help="dnn or cnn")
    train.add_argument("--spec", type=Path, help="read the whole RunSpec from a JSON file")
    train.add_argument("--run-dir", type=Path, help="execute an already queued run folder")
    train.add_argument("--quiet", action="store_true", help="one line per epoch, no progress bar")
    add_spec_options(train)

    grid = commands.add_parser("grid", help="train several pairs one after another, then compare")
    grid.set_defaults(parser=grid)
    grid.add_argument(
        "--framework",
        nargs="+",
        choices=FRAMEWORKS,
        default=list(FRAMEWORKS),
        help="frameworks to train (default: all three)",
    )
    grid.add_argument("--arch", nargs="+", choices=ARCHS, default=list(ARCHS), help="default: both")
    grid.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="runs per pair, with seeds --seed, --seed + 1, … (for a mean and spread; default 1)",
    )
    add_spec_options(grid)

    runs = commands.add_parser("runs", help="list the runs in the store")
    runs.add_argument(
        "--by-seed",
        action="store_true",
        help="one row per setting: the finished runs that differ only in seed, with the mean, "
        "spread and range of their test accuracy",
    )
    add_store_commands(commands)

    worker = commands.add_parser("worker", help="drain the job queue (started by the dashboard)")
    worker.add_argument(
        "--max-parallel",
        type=positive_int,
        default=jobs.DEFAULT_MAX_PARALLEL,
        help=f"trainings at once (default {jobs.DEFAULT_MAX_PARALLEL})",
    )

    from engines import bench

    bench.add_arguments(
        commands.add_parser("bench", help="measure speed and accuracy, write BENCHMARKS.md")
    )
    return parser


def add_store_commands(commands: argparse._SubParsersAction) -> None:
    """``export``, ``import``, ``cancel`` and ``delete``: the Runs page's buttons, for a shell."""
    runs_help = "run ids as 'runs' lists them, or their last part (the 6 hex digits)"
    export = commands.add_parser("export", help="write finished runs to a zip bundle")
    export.add_argument("run_ids", nargs="*", metavar="RUN", help=f"{runs_help}; default: all")
    export.add_argument(
        "--output",
        "-o",
        type=Path,
        help="zip file to write, or a folder to write it in (default name: "
        "digitlab-runs-<date>-<time>.zip, to the second)",
    )
    imp = commands.add_parser("import", help="add the runs of a zip bundle to the store")
    imp.add_argument("bundle", type=Path, help="a zip written by export or the dashboard")
    cancel = commands.add_parser("cancel", help="cancel queued or running jobs")
    cancel.add_argument("run_ids", nargs="+", metavar="RUN", help=runs_help)
    delete = commands.add_parser("delete", help="delete finished runs and all their files")
    delete.add_argument("run_ids", nargs="+", metavar="RUN", help=runs_help)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")


# --- commands ----------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, parser: Parser) -> int:
    _refuse_ignored_options(args, parser)
    if args.run_dir is not None:
        run_dir = args.run_dir
        try:
            run = store.read_run(run_dir)
        except store.StoreError as err:
            parser.error(f"--run-dir: {err}")
        if run["status"] != "queued":
            parser.error(f"--run-dir: {run_dir} is {run['status']}, not queued")
    else:
        spec = _spec_for_train(args, parser)
        try:
            # Created running (never queued: a worker draining this store must not take it
            # too) and owned by this process from the start.
            run_dir = store.create_run(
                spec, args.results_dir, status="running", pid=os.getpid(), host=host_info()
            )
        except OSError as err:
            return _cannot_write(args.results_dir, err)
    try:
        return _execute(run_dir, quiet=args.quiet)
    except KeyboardInterrupt:  # outside the runner's training (it records its own cancel)
        status = "unknown"
        with contextlib.suppress(store.StoreError, OSError):
            status = store.read_run(run_dir)["status"]
            if status == "running":
                store.update_run(run_dir, status="cancelled", error="cancelled before training")
                status = "cancelled"
        print(f"\ninterrupted: {run_dir.name} is {status}", file=sys.stderr)
        return 130


def _refuse_ignored_options(args: argparse.Namespace, parser: Parser) -> None:
    """``--spec`` and ``--run-dir`` bring the whole spec: any other setting would be ignored."""
    source = "--spec" if args.spec is not None else "--run-dir" if args.run_dir else None
    if source is None:
        return
    if args.spec is not None and args.run_dir is not None:
        parser.error("give --spec or --run-dir, not both")
    given = [  # every one of these options is None unless typed
        "--" + name.replace("_", "-")
        for name in ["framework", "arch", *SPEC_OPTIONS]
        if getattr(args, name) is not None
    ]
    if given:
        parser.error(f"{source} brings the whole spec; leave out {' '.join(given)}")


def _cannot_write(results_dir: str | None, err: OSError) -> int:
    print(
        f"error: cannot write runs to {store.results_dir(results_dir)} ({err.strerror or err})",
        file=sys.stderr,
    )
    return 1


def _spec_for_train(args: argparse.Namespace, parser: Parser) -> RunSpec:
    if args.spec is not None:
        try:
            return RunSpec.from_json(args.spec.read_text())
        except OSError as err:
            parser.error(f"--spec: cannot read {args.spec} ({err.strerror})")
        except ValueError as err:
            parser.error(f"--spec: {err}")
    if args.framework is None or args.arch is None:
        parser.error("give --framework and --arch (or --spec FILE, or --run-dir DIR)")
    try:
        return spec_from_args(args, args.framework, args.arch)
    except ValueError as err:
        parser.error(str(err))
    raise AssertionError("unreachable")


def _execute(run_dir: Path, quiet: bool) -> int:
    from engines.progress import EpochProgress
    from engines.runner import execute

    spec = RunSpec.from_stored(store.read_run(run_dir)["spec"])
    print(f"run {run_dir.name}: {spec.label}, up to {spec.epochs} epochs", flush=True)
    with EpochProgress(spec, quiet=quiet) as progress:
        try:
            run = execute(run_dir, on_epoch=progress.update)
        except Exception as err:  # recorded in run.json by the runner; say it plainly here
            print(f"error: {spec.label} failed: {err}", file=sys.stderr)
            return 1
    print(summary_line(run, run_dir))
    return {"done": 0, "cancelled": 130}.get(run["status"], 1)


def summary_line(run: dict, run_dir: Path) -> str:
    if run["status"] != "done":
        trained = f" after {n} epoch(s)" if (n := run.get("stopped_epoch")) else ""
        return f"{run['status']}{trained}: {run.get('error') or ''} ({run_dir})"
    budget = run["spec"]["epochs"]
    stopped = run["stopped_epoch"]
    early = f", stopped early at {stopped} of {budget}" if stopped < budget else ""
    return (
        f"done: test accuracy {run['test_accuracy']:.4f}, test loss {run['test_loss']:.4f}, "
        f"best epoch {run['best_epoch']}/{stopped}{early}, "
        f"{run['wall_seconds']:.1f} s ({run['seconds_per_epoch']:.2f} s/epoch) → {run_dir}"
    )


def cmd_grid(args: argparse.Namespace, parser: Parser) -> int:
    """Queue one job per pair and follow them to the end.

    The jobs go through the store's queue, like the dashboard's: its one worker trains them
    one after another, each in its own process (TensorFlow and torch never mix), and never
    at the same time as a job someone queued from the dashboard.
    """
    frameworks, archs = dict.fromkeys(args.framework), dict.fromkeys(args.arch)  # once each
    try:
        pairs = [spec_from_args(args, f, a) for f in frameworks for a in archs]
        specs = over_seeds(pairs, args.seeds)
    except ValueError as err:
        parser.error(str(err))
    try:
        twins = jobs.active_twins(specs, args.results_dir)
        for spec, run_id in twins.items():
            print(f"already queued or running: {spec.label} seed {spec.seed} ({run_id})")
        specs = [spec for spec in specs if spec not in twins]
        run_dirs = jobs.submit(specs, args.results_dir) if specs else []
    except OSError as err:
        return _cannot_write(args.results_dir, err)
    root = store.results_dir(args.results_dir)
    if not run_dirs:
        print("nothing new to queue")
        return 0
    print(f"queued {len(run_dirs)} runs in {root}; Ctrl-C cancels them", flush=True)
    try:
        follow(run_dirs, specs)
    except KeyboardInterrupt:
        for run_dir in run_dirs:
            with contextlib.suppress(store.StoreError, jobs.CancelRefused):
                jobs.cancel(run_dir)
        print("\ninterrupted: the grid's unfinished runs are cancelled", file=sys.stderr)
        return 130
    runs = store.load_runs(root)  # the same table as ``runs``, for the grid's runs only
    runs = runs[runs["run_id"].isin([run_dir.name for run_dir in run_dirs])]
    if not runs.empty:
        print("\n" + runs_table(runs.sort_values(["arch", "framework"])))
        if args.seeds > 1:
            print("\n" + seed_table_text(runs))
    finished = len(runs) == len(run_dirs) and bool((runs["status"] == "done").all())
    return 0 if finished else 1


def follow(run_dirs: list[Path], specs: list[RunSpec]) -> None:
    """Show each run's epochs as its training process records them, until all have ended."""
    from engines.progress import EpochProgress

    for number, (run_dir, spec) in enumerate(zip(run_dirs, specs, strict=True), start=1):
        print(f"\n[{number}/{len(run_dirs)}] {spec.label} seed {spec.seed}", flush=True)
        shown = 0
        with EpochProgress(spec) as progress:
            while (run := _run_if_kept(run_dir)) is not None:
                epochs = _recorded_epochs(run_dir)
                for row in epochs[shown:]:
                    progress.update(EpochStats(**row))
                shown = max(shown, len(epochs))
                if store.effective_status(run) not in store.ACTIVE_STATUSES:
                    break
                time.sleep(FOLLOW_POLL_SECONDS)
        if run is None:
            print(f"deleted meanwhile: {run_dir.name}", flush=True)
        else:
            print(summary_line(run, run_dir), flush=True)


def _run_if_kept(run_dir: Path) -> dict | None:
    """The run's ``run.json``, or None once it has been deleted (from the dashboard, say)."""
    try:
        return store.read_run(run_dir)
    except store.StoreError:
        return None


def _recorded_epochs(run_dir: Path) -> list[dict]:
    """The epochs in the run's history so far (none before the first is written)."""
    try:
        history = store.read_history(run_dir)
    except store.StoreError:
        return []
    fields = list(EpochStats.__dataclass_fields__)
    return history[fields].to_dict("records")


def runs_table(runs: pd.DataFrame) -> str:
    """``engines.load_runs()``'s rows for a terminal, in their order: accuracy in percent,
    counts as whole numbers, "-" where a run has no value (not finished)."""

    def column(name: str, form: str) -> pd.Series:
        return runs[name].map(lambda value: "-" if pd.isna(value) else form.format(value))

    table = pd.DataFrame(
        {
            "run": runs["run_id"],
            "status": runs["status"],
            "test acc": column("test_accuracy", "{:.2%}"),
            "test loss": column("test_loss", "{:.4f}"),
            "best/stopped": column("best_epoch", "{:.0f}")
            + "/"
            + column("stopped_epoch", "{:.0f}"),
            "s/epoch": column("seconds_per_epoch", "{:.2f}"),
            "wall s": column("wall_seconds", "{:.0f}"),
            "params": column("trainable_params", "{:,.0f}"),
            "seed": column("seed", "{:.0f}"),
        }
    )
    width = table["run"].str.len().max()  # run ids read best aligned left
    table["run"] = table["run"].str.ljust(width)
    return table.rename(columns={"run": "run".ljust(width)}).to_string(index=False)


def seed_table_text(runs: pd.DataFrame) -> str:
    """:func:`engines.compare.seed_table` for a terminal."""
    from engines.compare import SUMMARY, seed_table, setting_name, setting_value

    table = seed_table(runs)
    if table.empty:
        return "no finished runs to group"

    def shown(column: str, form: str, scale: float = 1) -> pd.Series:
        values = table[column] * scale
        return values.map(lambda value: "-" if pd.isna(value) else form.format(value))

    text = table.drop(columns=[*SUMMARY[2:], "distinct_seeds", "run_ids"]).assign(
        mean=shown("accuracy_mean", "{:.2%}"),
        **{"± std (points)": shown("accuracy_std", "{:.2f}", scale=100)},
        worst=shown("accuracy_min", "{:.2%}"),
        best=shown("accuracy_max", "{:.2%}"),
        **{"s/epoch": shown("seconds_per_epoch", "{:.2f}")},
    )
    settings = [column for column in text.columns if column.startswith("spec_")]
    text[settings] = text[settings].map(setting_value)
    text = text.rename(columns={column: setting_name(column) for column in settings})
    return text.to_string(index=False)


def cmd_runs(args: argparse.Namespace) -> int:
    from engines.store import load_runs

    if _store_is_a_file(args.results_dir):
        return 2
    runs = load_runs(args.results_dir)
    if runs.empty:
        root = store.results_dir(args.results_dir)
        print(f"no runs in {root}" + ("" if root.is_dir() else " (no such folder)"))
    elif args.by_seed:
        print(seed_table_text(runs))
    else:
        print(runs_table(runs))
    for name, reason in runs.attrs["skipped"]:
        print(f"skipped {name}: {reason.removeprefix(f'{name}: ')}", file=sys.stderr)
    for run in runs.itertuples():
        if missing := store.missing_parts(Path(run.run_dir), run.status):
            print(f"incomplete {run.run_id}: done but has no {missing}", file=sys.stderr)
        if run.status == "failed":
            lines = run.error.strip().splitlines() if isinstance(run.error, str) else []
            print(
                f"failed {run.run_id}: {lines[0] if lines else 'no reason recorded'}",
                file=sys.stderr,
            )
    return 0


def _store_is_a_file(results_dir: str | None) -> bool:
    """Say so when the run store named is a file (a wrong ``--results-dir``)."""
    root = store.results_dir(results_dir)
    if root.exists() and not root.is_dir():
        print(f"error: {root} is a file, not a run store folder", file=sys.stderr)
        return True
    return False


class UnknownRun(Exception):
    """A run id on the command line that names no run folder (or several)."""


def find_run_dirs(run_ids: list[str], results_dir: str | None) -> list[Path]:
    """The run folders named on the command line, by full id or by its last part."""
    root = store.results_dir(results_dir)
    if root.exists() and not root.is_dir():
        raise UnknownRun(f"{root} is a file, not a run store folder")
    folders = store.iter_run_dirs(results_dir)
    found = []
    for run_id in run_ids:
        matches = [f for f in folders if f.name == run_id]  # a full id wins over endings
        matches = matches or [f for f in folders if f.name.endswith(f"-{run_id}")]
        if len(matches) != 1:
            where = store.results_dir(results_dir)
            reason = "no run" if not matches else f"{len(matches)} runs"
            raise UnknownRun(f"{reason} in {where} called {run_id!r} (see: python -m engines runs)")
        if matches[0] not in found:
            found.append(matches[0])
    return found


def cmd_export(args: argparse.Namespace) -> int:
    """Named runs must all go in; with none named, every finished run that can goes in, as
    many as one bundle may hold (the others are named)."""
    from engines import bundle

    dated_name = f"digitlab-runs-{store.file_stamp()}.zip"
    output = args.output or Path(dated_name)
    if output.is_dir():  # a folder to put the bundle in
        output = output / dated_name
    if output.exists():
        print(f"error: {output} exists; remove it or give another --output", file=sys.stderr)
        return 1
    if not output.parent.is_dir():  # a typo in the folder: say so rather than create it
        print(f"error: --output: {output.parent} is not a folder", file=sys.stderr)
        return 2
    if _store_is_a_file(args.results_dir):
        return 2
    named = find_run_dirs(args.run_ids, args.results_dir) if args.run_ids else None
    problems = {d: bundle.export_problem(d) for d in named or store.iter_run_dirs(args.results_dir)}
    if named is None:
        _leave_out_what_does_not_fit(problems)
    for run_dir, problem in problems.items():
        if problem:
            print(f"left out {run_dir.name}: {problem}", file=sys.stderr)
    chosen = [run_dir for run_dir, problem in problems.items() if not problem]
    if named and len(chosen) < len(named):
        print("error: nothing exported", file=sys.stderr)
        return 1
    if not chosen:
        root = store.results_dir(args.results_dir)
        print(f"error: no finished runs to export in {root}", file=sys.stderr)
        return 1
    try:
        data = bundle.export_runs(chosen)
        store.atomic_write(output, lambda tmp: Path(tmp).write_bytes(data))
    except bundle.BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: cannot write {output} ({err.strerror or err})", file=sys.stderr)
        return 1
    print(f"exported {len(chosen)} run(s) to {output} ({len(data) / 2**20:.1f} MiB)")
    return 0


def _leave_out_what_does_not_fit(problems: dict[Path, str | None]) -> None:
    """Give each exportable run that would take the bundle past its size limit a reason."""
    from engines import bundle

    room = bundle.MAX_TOTAL_BYTES
    for run_dir, problem in problems.items():
        if problem is None:
            size = bundle.export_size([run_dir])
            if size > room:
                problems[run_dir] = "the bundle is full (export it by name into another)"
            else:
                room -= size


def cmd_import(args: argparse.Namespace) -> int:
    from engines import bundle

    try:
        data = args.bundle.read_bytes()
    except OSError as err:
        print(f"error: cannot read {args.bundle} ({err.strerror or err})", file=sys.stderr)
        return 1
    try:
        imported = bundle.import_runs(data, args.results_dir)
    except OSError as err:
        return _cannot_write(args.results_dir, err)
    except bundle.BundleError as err:
        print(f"error: {args.bundle}: {err}; nothing imported", file=sys.stderr)
        return 1
    if imported.new:
        print(f"imported {len(imported.new)} run(s): {', '.join(imported.new)}")
    else:
        print("nothing new to import")
    if imported.already_here:
        print(f"already here, unchanged: {', '.join(imported.already_here)}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    failed = 0
    for run_dir in find_run_dirs(args.run_ids, args.results_dir):
        try:
            print(f"{run_dir.name}: {jobs.cancel(run_dir)}")
        except (store.StoreError, jobs.CancelRefused) as err:
            print(f"error: {run_dir.name}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Finished runs only (a job is cancelled first); asks before deleting unless --yes."""
    run_dirs = find_run_dirs(args.run_ids, args.results_dir)
    for run_dir in run_dirs:
        with contextlib.suppress(store.StoreError):  # an unreadable folder may go
            status = store.effective_status(store.read_run(run_dir))
            if status in store.ACTIVE_STATUSES:
                print(f"error: {run_dir.name} is {status}; cancel it first", file=sys.stderr)
                return 1
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: deleting cannot be undone; add --yes to confirm", file=sys.stderr)
            return 1
        names = "\n  ".join(run_dir.name for run_dir in run_dirs)
        try:
            answer = input(f"Delete {len(run_dirs)} run(s) and all their files?\n  {names}\n[y/N] ")
        except EOFError:  # Ctrl-D: no answer is a no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    failed = 0
    for run_dir in run_dirs:
        try:
            store.delete_run(run_dir, args.results_dir)
        except (store.StoreError, OSError) as err:
            print(f"error: {run_dir.name} not deleted: {err}", file=sys.stderr)
            failed += 1
        else:
            print(f"deleted {run_dir.name}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.results_dir:
        os.environ["RESULTS_DIR"] = str(Path(args.results_dir).resolve())
    try:
        return run_command(args)
    except KeyboardInterrupt:  # the commands record what an interrupt leaves; no traceback
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # ``runs | head``: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0


def run_command(args: argparse.Namespace) -> int:
    if args.command == "train":
        return cmd_train(args, args.parser)
    if args.command == "grid":
        return cmd_grid(args, args.parser)
    if args.command == "runs":
        return cmd_runs(args)
    if args.command in STORE_COMMANDS:
        try:
            return STORE_COMMANDS[args.command](args)
        except UnknownRun as err:  # a wrong value, as argparse's own errors
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.command == "worker":
        try:
            jobs.run_worker(store.results_dir(args.results_dir), args.max_parallel)
        except OSError as err:
            return _cannot_write(args.results_dir, err)
        return 0
    from engines import bench

    return bench.main(args)


STORE_COMMANDS = {"export": cmd_export, "import": cmd_import, "cancel": cmd_cancel,
                  "delete": cmd_delete}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
