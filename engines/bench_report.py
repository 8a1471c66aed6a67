"""The benchmark's raw numbers and everything computed from them.

Raw numbers: one Parquet row per measurement (``RAW_COLUMNS``), the invocation's machine,
versions and command in the file's metadata. From them: per-pair summaries (medians, means
over seeds), the issue-#4 targets and the Markdown report. These are pure functions of the
raw table, so ``--report-from`` rebuilds ``BENCHMARKS.md`` without measuring anything, and
:func:`combine` merges a re-measured part into an earlier run's numbers.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.bench_child import FULL_TRAIN_SIZE
from engines.reference import BATCH_SIZE as REFERENCE_BATCH
from engines.spec import ARCHS, FRAMEWORKS

PARTS = ("speed", "reference", "tta", "accuracy", "inference", "dashboard")  # report order
TTA_THRESHOLDS = {"cnn": 0.99, "dnn": 0.98}  # validation accuracy for "time to accuracy"
BENCH_META_KEY = b"digit_lab_bench"  # Parquet schema metadata: machine, versions, command
NOTES_MARKER = "<!-- notes: everything below this line is kept when the file is regenerated -->"
DEFAULT_NOTES = """## Notes: what we tried

Write experiments here (what was tried, what each gave, what did not help). The benchmark
command rewrites everything above the marker line and keeps this section as it is.
"""


# --- raw table ---------------------------------------------------------------------------
RAW_COLUMNS = [
    "invocation",
    "part",
    "pipeline",
    "framework",
    "arch",
    "seed",
    "metric",
    "repeat",
    "warmup",
    "value",
    "unit",
]


def raw_frame(rows: list[dict[str, Any]]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=RAW_COLUMNS)
    return frame.astype({"seed": "int64", "repeat": "int64", "warmup": "bool", "value": "float64"})


def write_raw(frame, meta: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata_ = {**(table.schema.metadata or {}), BENCH_META_KEY: json.dumps(meta).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(metadata_), path)


REQUIRED_META = {  # what the report reads from a raw file's metadata
    "date": str,
    "command": str,
    "quick": bool,
    "pairs": list,
    "parts": list,
    "warmup_epochs": int,
    "total_seconds": (int, float),
    "machine": dict,
    "load_average": list,
    "versions": dict,
    "raw_file": str,
}
REQUIRED_MACHINE = ("cpu", "cores", "affinity", "memory_gb", "platform")


def read_raw(path: Path):
    """A raw file's table and metadata. Raises ValueError, naming what is wrong, for a file
    that is not Parquet or not a benchmark's raw numbers (so ``--report-from`` can say so)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except pa.ArrowException as err:
        raise ValueError(f"not a Parquet file ({err})") from err
    try:
        meta = json.loads((table.schema.metadata or {}).get(BENCH_META_KEY, b"{}"))
    except ValueError as err:
        raise ValueError(f"its benchmark metadata is not valid JSON ({err})") from err
    check_raw(table.column_names, meta)
    return table.to_pandas(), meta


def check_raw(columns: list[str], meta: Any) -> None:
    """Raise ValueError unless the columns and metadata are a benchmark raw file's."""
    missing = [name for name in RAW_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"not benchmark raw numbers: no column {', '.join(missing)}")
    if not isinstance(meta, dict) or not meta:
        raise ValueError("it has no benchmark metadata")
    for key, kind in REQUIRED_META.items():
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"its benchmark metadata has no valid {key!r}")
    absent = [key for key in REQUIRED_MACHINE if key not in meta["machine"]]
    if absent:
        raise ValueError(f"its benchmark metadata has no machine {', '.join(map(repr, absent))}")
    unknown = [part for part in meta["parts"] if part not in PARTS]
    pairs = [tuple(pair) if isinstance(pair, list) else None for pair in meta["pairs"]]
    valid_pairs = {(f, a) for f in FRAMEWORKS for a in ARCHS}
    if unknown or any(pair not in valid_pairs for pair in pairs):
        raise ValueError("its benchmark metadata names an unknown part or pair")


# --- summaries (computed from the raw table) ---------------------------------------------
def values(frame, part: str, framework: str, arch: str, metric: str) -> list[float]:
    """The raw values of one metric for one pair, timed (non-warm-up) samples only."""
    selected = frame[
        (frame.part == part)
        & (frame.framework == framework)
        & (frame.arch == arch)
        & (frame.metric == metric)
        & ~frame.warmup
    ]
    return selected["value"].tolist()


@dataclass
class Speed:
    seconds: float  # median seconds per timed epoch
    epochs: int
    n_train: int
    peak_mb: float | None
    params: int | None
    batch_size: int | None = None

    @property
    def images_per_second(self) -> float:
        return self.n_train / self.seconds

    @property
    def full_epoch_seconds(self) -> float:
        """Seconds per epoch scaled to the 55,000 training images of the targets."""
        return self.seconds * FULL_TRAIN_SIZE / self.n_train


def default_speed_of(frame, framework: str, arch: str) -> Speed | None:
    """The engine's speed with its default spec: measured separately where the default
    batch differs from the reference's, else the same-batch measurement."""
    return speed_of(frame, "default_speed", framework, arch) or speed_of(
        frame, "speed", framework, arch
    )


def speed_of(frame, part: str, framework: str, arch: str) -> Speed | None:
    epochs = values(frame, part, framework, arch, "epoch_seconds")
    if not epochs:
        return None
    n_train = values(frame, part, framework, arch, "n_train")
    peak = values(frame, part, framework, arch, "peak_rss_mb")
    params = values(frame, part, framework, arch, "trainable_params")
    batch = values(frame, part, framework, arch, "batch_size")
    return Speed(
        seconds=statistics.median(epochs),
        epochs=len(epochs),
        n_train=int(n_train[0]),
        peak_mb=peak[0] if peak else None,
        params=int(params[0]) if params else None,
        batch_size=int(batch[0]) if batch else None,
    )


@dataclass
class Training:
    """The accuracy runs of one pair, one entry per seed."""

    test_accuracies: list[float]
    epochs_run: list[int]
    max_epochs: int
    wall_seconds: list[float]
    tta_seconds: list[float | None]  # per seed; None = threshold not reached
    tta_epochs: list[int | None]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test_accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.test_accuracies) if len(self.test_accuracies) > 1 else 0.0


def training_of(frame, framework: str, arch: str) -> Training | None:
    runs = frame[(frame.part == "training") & (frame.framework == framework) & (frame.arch == arch)]
    if runs.empty:
        return None
    per_seed = [seed_run for _, seed_run in runs.groupby("seed", sort=True)]
    tta = [time_to_accuracy(seed_run, TTA_THRESHOLDS[arch]) for seed_run in per_seed]

    def single(seed_run, metric: str) -> float:
        return float(seed_run.loc[seed_run.metric == metric, "value"].iloc[0])

    return Training(
        test_accuracies=[single(r, "test_accuracy") for r in per_seed],
        epochs_run=[int(single(r, "epochs_run")) for r in per_seed],
        max_epochs=int(single(per_seed[0], "max_epochs")),
        wall_seconds=[single(r, "wall_seconds") for r in per_seed],
        tta_seconds=[seconds for seconds, _ in tta],
        tta_epochs=[epoch for _, epoch in tta],
    )


def time_to_accuracy(seed_run, threshold: float) -> tuple[float | None, int | None]:
    """Seconds since ``train`` started and epoch at which val accuracy first reached it."""
    accuracy = seed_run[seed_run.metric == "val_accuracy"].set_index("repeat")["value"]
    elapsed = seed_run[seed_run.metric == "elapsed_seconds"].set_index("repeat")["value"]
    reached = accuracy[accuracy >= threshold]
    if reached.empty:
        return None, None
    epoch = int(reached.index.min())
    return float(elapsed[epoch]), epoch


def latency_of(frame, framework: str, arch: str) -> dict[str, float] | None:
    samples = values(frame, "inference", framework, arch, "latency_ms")
    if not samples:
        return None
    load = values(frame, "inference", framework, arch, "load_seconds")
    stand_in = values(frame, "inference", framework, arch, "stand_in_model")
    return {
        "p50": float(np.percentile(samples, 50)),
        "p95": float(np.percentile(samples, 95)),
        "reps": len(samples),
        "load": load[0],
        "trained": not stand_in,
    }


def dashboard_of(frame) -> dict[str, float] | None:
    times = frame[(frame.part == "dashboard") & (frame.metric == "load_runs_seconds")]["value"]
    if times.empty:
        return None
    runs = frame[(frame.part == "dashboard") & (frame.metric == "store_runs")]["value"]
    return {
        "runs": int(runs.iloc[0]),
        "median": float(times.median()),
        "min": float(times.min()),
        "max": float(times.max()),
        "repeats": len(times),
    }


# --- targets (issue #4) ------------------------------------------------------------------
@dataclass
class Target:
    name: str
    measured: float | None
    limit: float
    higher_is_better: bool
    unit: str  # "s", "ms", "×", "%", "points"
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.higher_is_better:
            return self.measured >= self.limit
        return self.measured <= self.limit

    def margin(self) -> str:
        """How far from the line: points for accuracies, else absolute and relative."""
        if self.measured is None:
            return "not measured"
        outcome = "met" if self.met else "missed"
        gap = abs(self.measured - self.limit)
        factor = self.measured / self.limit
        if self.unit in ("%", "points"):
            return f"{outcome} by {gap:.2f} points"
        if self.unit == "×" and self.higher_is_better:
            return f"{outcome}: {factor:.0%} of the {self.limit:g}× target"
        if self.unit == "×":
            side = "under" if self.met else "over"
            return f"{outcome}: {abs(factor - 1):.0%} {side} the {self.limit:g}× limit"
        return f"{outcome} by {fmt(gap, self.unit)} ({factor:.2f}× the limit)"


def fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "points":
        return f"{value:.2f} points"
    if unit == "×":
        return f"{value:.2f}×"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.2f} s"


def targets(frame, settings_pairs: list[tuple[str, str]]) -> list[Target]:
    """Every target of issue #4 that this invocation measured data for."""
    found: list[Target] = []
    same_batch = {p: speed_of(frame, "speed", *p) for p in settings_pairs}
    engine = {p: default_speed_of(frame, *p) for p in settings_pairs}
    reference = {p: speed_of(frame, "reference", *p) for p in settings_pairs}
    for pair in settings_pairs:
        if same_batch[pair] and reference[pair]:
            ratio = reference[pair].seconds / same_batch[pair].seconds
            found.append(
                Target(
                    f"{label(pair)} ≥ 3× faster than its reference (same batch)",
                    ratio,
                    3.0,
                    True,
                    "×",
                )
            )

    def full_epoch(pair: tuple[str, str]) -> float | None:
        return engine[pair].full_epoch_seconds if engine.get(pair) else None

    scaled = {p: s.n_train != FULL_TRAIN_SIZE for p, s in engine.items() if s}
    limits = [
        (("torch", "cnn"), 8.0),
        (("lightning", "dnn"), 1.0),
        (("torch", "dnn"), 1.0),
        (("keras", "dnn"), 1.5),
    ]
    for pair, limit in limits:
        if full_epoch(pair) is not None:
            note = f"scaled from {engine[pair].n_train} images" if scaled[pair] else ""
            found.append(
                Target(
                    f"{label(pair)} epoch (55k images) ≤ {limit:g} s",
                    full_epoch(pair),
                    limit,
                    False,
                    "s",
                    note,
                )
            )
    torch_cnn = engine.get(("torch", "cnn"))
    for framework, limit in (("lightning", 1.1), ("keras", 1.5)):
        other = engine.get((framework, "cnn"))
        if torch_cnn and other:
            found.append(
                Target(
                    f"{framework}/cnn epoch ≤ {limit}× torch/cnn",
                    other.seconds / torch_cnn.seconds,
                    limit,
                    False,
                    "×",
                )
            )

    training = {p: training_of(frame, *p) for p in settings_pairs}
    for pair in settings_pairs:
        run = training[pair]
        if run is not None:
            limit = 99.5 if pair[1] == "cnn" else 98.6
            note = f"{len(run.test_accuracies)} seed(s)"
            found.append(
                Target(
                    f"{label(pair)} test accuracy (mean) ≥ {limit} %",
                    100 * run.mean,
                    limit,
                    True,
                    "%",
                    note,
                )
            )
    for arch in ARCHS:
        means = [100 * t.mean for (f, a), t in training.items() if a == arch and t]
        if len(means) > 1:
            found.append(
                Target(
                    f"{arch}: frameworks within 0.2 points",
                    max(means) - min(means),
                    0.2,
                    False,
                    "points",
                    f"{len(means)} frameworks",
                )
            )

    for pair in settings_pairs:
        latency = latency_of(frame, *pair)
        if latency:
            found.append(
                Target(f"{label(pair)} inference p95 ≤ 20 ms", latency["p95"], 20.0, False, "ms")
            )
    board = dashboard_of(frame)
    if board:
        note = "" if board["runs"] == 500 else f"store of {board['runs']} runs, not 500"
        found.append(
            Target("leaderboard data of 500 runs ≤ 1 s", board["median"], 1.0, False, "s", note)
        )
    return found


def label(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"


# --- the Markdown report -----------------------------------------------------------------
def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in r) + " |" for r in rows]
    return "\n".join(lines)


def num(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def render(frame, meta: dict[str, Any]) -> str:
    pairs = [tuple(p) for p in meta["pairs"]]
    parts = meta["parts"]
    sections = [header_section(meta)]
    if "speed" in parts or "reference" in parts:
        sections.append(speed_section(frame, pairs, meta))
    if "tta" in parts:
        sections.append(tta_section(frame, pairs))
    if "accuracy" in parts:
        sections.append(accuracy_section(frame, pairs))
    if "inference" in parts:
        sections.append(inference_section(frame, pairs))
    if "dashboard" in parts:
        sections.append(dashboard_section(frame))
    sections.append(targets_section(frame, pairs))
    if meta.get("failures"):
        failures = "\n".join(
            f"- **{name}**: `{error.splitlines()[-1]}`" for name, error in meta["failures"]
        )
        sections.append("## Failed measurements\n\n" + failures)
    sections.append(machine_section(meta))
    return "\n\n".join(sections) + "\n"


def header_section(meta: dict[str, Any]) -> str:
    lines = [
        "<!-- generated by `python -m engines bench`: edit only below the notes marker -->",
        "# Benchmarks",
        "",
        *measured_with(meta),
        "",
        "Every process measures one thing (one pair, one pipeline); each figure is a median of "
        "several measurements; comparisons are ratios taken in one invocation. The "
        "machine may be shared, so absolute seconds vary between invocations.",
    ]
    if meta.get("interrupted_after") is not None:
        lines += [
            "",
            f"> **Interrupted** after {meta['interrupted_after']} of {meta['planned']} "
            "measurements: the tables show only what was measured.",
        ]
    if meta["quick"]:
        lines += [
            "",
            "> **Quick mode**: tiny subset, 1 timed epoch, 1 seed. These numbers "
            "prove the command works; they are not the benchmark.",
        ]
    return "\n".join(lines)


def measured_with(meta: dict[str, Any]) -> list[str]:
    """Where the numbers come from: one invocation, or several combined by --report-from."""
    where = f"on {meta['machine']['cpu']} ({meta['machine']['cores']} cores)"
    if not meta.get("sources"):
        return [
            f"Measured {meta['date']} {where} in {meta['total_seconds'] / 60:.1f} min with:",
            "",
            f"    {meta['command']}",
            "",
            f"Raw numbers: `{meta['raw_file']}`.",
        ]
    lines = [
        f"Combined from {len(meta['sources'])} invocations {where}; for each part and pair the "
        "tables use the latest invocation that measured it:",
        "",
    ]
    for source in meta["sources"]:
        lines.append(
            f"- {source['date']}, {source['total_seconds'] / 60:.1f} min"
            f"{yardstick_text(source.get('machine', {}))}: `{source['command']}` "
            f"(raw numbers `{source['raw_file']}`): {source['supplies']}"
        )
    if meta.get("mixed_ratios"):
        lines += [
            "",
            f"> **Mixed runs**: the speed-ups of {', '.join(meta['mixed_ratios'])} divide a "
            "reference time from one invocation by a Digit Lab time from another.",
        ]
    return lines


def speed_section(frame, pairs: list[tuple[str, str]], meta: dict[str, Any]) -> str:
    rows = []
    for pair in pairs:
        ours, ref = speed_of(frame, "speed", *pair), speed_of(frame, "reference", *pair)
        if not ours and not ref:
            continue
        ratio = ref.seconds / ours.seconds if ours and ref else None
        params = {s.params for s in (ours, ref) if s and s.params}
        rows.append(
            [
                label(pair),
                num(ref.seconds if ref else None),
                num(ours.seconds if ours else None),
                num(ratio, 1, "×"),
                num(ref.images_per_second if ref else None, 0),
                num(ours.images_per_second if ours else None, 0),
                num(ours.full_epoch_seconds if ours else None),
                num(ref.peak_mb if ref else None, 0),
                num(ours.peak_mb if ours else None, 0),
                " / ".join(f"{p:,}" for p in sorted(params)) or "–",
            ]
        )
    any_speed = next((s for p in pairs if (s := speed_of(frame, "speed", *p))), None)
    any_ref = next((s for p in pairs if (s := speed_of(frame, "reference", *p))), None)
    sample = any_speed or any_ref
    settings = (
        f"{sample.n_train:,} training images, median of {sample.epochs} timed epoch(s) after "
        f"{meta['warmup_epochs']} warm-up epoch; an epoch includes the validation pass."
        if sample
        else "No measurement succeeded."
    )
    headers = [
        "pair",
        "reference s/epoch",
        "Digit Lab s/epoch",
        "speed-up",
        "reference img/s",
        "Digit Lab img/s",
        "Digit Lab s/epoch at 55k",
        "reference peak MB",
        "Digit Lab peak MB",
        "params",
    ]
    return "\n".join(
        [
            "## Speed per epoch: Digit Lab vs the reference pipelines",
            "",
            settings + " Speed-up = reference s/epoch ÷ Digit Lab s/epoch. Peak MB = the "
            "measuring process's peak resident memory (framework included). Reference = the "
            "tutorial-style pipelines in `engines/reference.py`; Digit Lab = the engines' `train`, "
            f"early stopping off, otherwise the default spec, at the reference's batch size "
            f"({REFERENCE_BATCH}).",
            "",
            md_table(headers, rows),
            default_speed_table(frame, pairs),
        ]
    )


def default_speed_table(frame, pairs: list[tuple[str, str]]) -> str:
    """Digit Lab at its default batch size, where that differs from the reference's."""
    rows = []
    for pair in pairs:
        ours, same = speed_of(frame, "default_speed", *pair), speed_of(frame, "speed", *pair)
        if ours:
            gain = same.seconds / ours.seconds if same else None
            rows.append(
                [
                    label(pair),
                    ours.batch_size or "–",
                    num(ours.seconds),
                    num(ours.images_per_second, 0),
                    num(ours.full_epoch_seconds),
                    num(gain, 1, "×"),
                    num(ours.peak_mb, 0),
                ]
            )
    if not rows:
        return ""
    headers = [
        "pair",
        "default batch",
        "s/epoch",
        "img/s",
        "s/epoch at 55k",
        f"vs batch {REFERENCE_BATCH}",
        "peak MB",
    ]
    return "\n".join(
        [
            "",
            "Digit Lab with its default spec (the batch size the accuracy runs below use; "
            "the absolute epoch targets are checked against these figures):",
            "",
            md_table(headers, rows),
        ]
    )


def tta_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows = []
    for pair in pairs:
        run = training_of(frame, *pair)
        if run is None:
            continue
        reached = [s for s in run.tta_seconds if s is not None]
        epochs = [e for e in run.tta_epochs if e is not None]
        seeds = len(run.tta_seconds)
        if reached:
            seconds = num(statistics.median(reached), 1)
            epoch = num(statistics.median(epochs), 1)
        else:
            seconds = f"not reached in {max(run.epochs_run)} epochs"
            epoch = "–"
        rows.append(
            [
                label(pair),
                f"{100 * TTA_THRESHOLDS[pair[1]]:.1f} %",
                seconds,
                epoch,
                f"{len(reached)}/{seeds}",
            ]
        )
    return "\n".join(
        [
            "## Time to accuracy",
            "",
            "Wall seconds from the start of `train()` until the validation accuracy first reaches "
            "the threshold, in the default-spec runs of the accuracy table (median over the seeds "
            "that reached it).",
            "",
            md_table(
                ["pair", "threshold (val)", "median seconds", "median epoch", "seeds reaching it"],
                rows,
            ),
        ]
    )


def accuracy_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows, by_arch = [], {}
    for pair in pairs:
        run = training_of(frame, *pair)
        if run is None:
            continue
        by_arch.setdefault(pair[1], []).append((pair[0], 100 * run.mean))
        rows.append(
            [
                label(pair),
                f"{100 * run.mean:.2f} ± {100 * run.std:.2f} %",
                len(run.test_accuracies),
                ", ".join(f"{100 * a:.2f}" for a in run.test_accuracies),
                f"{statistics.median(run.epochs_run):g} (max {run.max_epochs})",
                num(statistics.median(run.wall_seconds), 0),
            ]
        )
    spreads = []
    for arch, means in by_arch.items():
        if len(means) > 1:
            best, worst = max(means, key=lambda m: m[1]), min(means, key=lambda m: m[1])
            spreads.append(
                [
                    arch,
                    f"{best[1] - worst[1]:.2f} points",
                    f"{best[0]} {best[1]:.2f} % / {worst[0]} {worst[1]:.2f} %",
                ]
            )
    parts = [
        "## Accuracy",
        "",
        "Default spec per pair (early stopping on the validation loss, best weights restored), "
        "test accuracy on the test images as mean ± sample std over seeds (the seed also "
        "draws the train/validation split).",
        "",
        md_table(
            [
                "pair",
                "test accuracy",
                "seeds",
                "per seed (%)",
                "epochs run (median)",
                "wall s (median)",
            ],
            rows,
        ),
    ]
    if spreads:
        parts += [
            "",
            "Spread between frameworks (best mean − worst mean):",
            "",
            md_table(["arch", "spread", "best / worst"], spreads),
        ]
    return "\n".join(parts)


def inference_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows = []
    for pair in pairs:
        latency = latency_of(frame, *pair)
        if latency:
            source = "accuracy run" if latency["trained"] else "stand-in (1 epoch)"
            rows.append(
                [
                    label(pair),
                    num(latency["p50"]),
                    num(latency["p95"]),
                    latency["reps"],
                    num(latency["load"]),
                    source,
                ]
            )
    return "\n".join(
        [
            "## Inference",
            "",
            "One 28×28 test image through `load_predictor(run_dir).predict_proba` after 10 warm-up "
            "calls (same process, model loaded once).",
            "",
            md_table(["pair", "p50 ms", "p95 ms", "calls", "model load s", "model"], rows),
        ]
    )


def dashboard_section(frame) -> str:
    board = dashboard_of(frame)
    rows = []
    if board:
        rows.append(
            [
                board["runs"],
                num(board["median"], 3),
                num(board["min"], 3),
                num(board["max"], 3),
                board["repeats"],
            ]
        )
    return "\n".join(
        [
            "## Dashboard scale",
            "",
            "`engines.load_runs()` (the leaderboard's data) on a synthetic store of finished runs "
            "(run.json + 10-epoch history each), warm file cache.",
            "",
            md_table(["runs", "median s", "min s", "max s", "repeats"], rows),
        ]
    )


def targets_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows = []
    for target in targets(frame, pairs):
        status = {True: "✅ met", False: "❌ missed", None: "–"}[target.met]
        measured = "–" if target.measured is None else fmt(target.measured, target.unit)
        rows.append([target.name, measured, status, target.margin(), target.note])
    met = sum(1 for r in rows if r[2] == "✅ met")
    return "\n".join(
        [
            "## Targets (issue #4)",
            "",
            f"{met} of {len(rows)} measured targets met. Computed from the tables above; epoch "
            "seconds at 55k are scaled linearly when fewer images were used.",
            "",
            md_table(["target", "measured", "status", "margin", "note"], rows),
        ]
    )


def machine_section(meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    threads = machine.get("threads", {})
    before, after = meta["load_average"]
    lines = [
        "## Machine and versions",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} logical cores "
        f"({machine['affinity']} usable by this process), {machine['memory_gb']:.1f} GB RAM",
        f"- Platform: {machine['platform']}",
        *yardstick_lines(machine),
        f"- Threads: {threads_text(threads)}",
        f"- Load average (1 min): {before:.2f} before the start (other work on the machine), "
        f"{after:.2f} at the end (includes the benchmark itself)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
    ]
    if meta.get("sources"):  # the machine, load and versions above are the latest run's
        lines[-2:] = [
            "- Dates and commands: see the top of this file; the lines above describe the "
            f"latest run ({meta['date']})"
        ]
    return "\n".join(lines)


def yardstick_lines(machine: dict[str, Any]) -> list[str]:
    """The CPU yardstick (see ``engines.bench.matmul_gflops``); runs from before it existed
    have none."""
    if "matmul_gflops" not in machine:
        return []
    return [
        f"- Vector units: {machine['vector_units']}; FP32 matrix product "
        f"{machine['matmul_gflops']:.0f} GFLOP/s (NumPy, 1024×1024, at the start)"
    ]


def yardstick_text(machine: dict[str, Any]) -> str:
    if "matmul_gflops" not in machine:
        return ""
    return f", CPU yardstick {machine['matmul_gflops']:.0f} GFLOP/s"


def threads_text(threads: dict[str, Any]) -> str:
    parts = []
    if "torch_threads" in threads:
        parts.append(
            f"torch intra-op {threads['torch_threads']}, "
            f"inter-op {threads['torch_interop_threads']}"
        )
    if "tf_intra_op_threads" in threads:
        intra, inter = threads["tf_intra_op_threads"], threads["tf_inter_op_threads"]
        parts.append(
            f"TensorFlow intra-op {intra or 'default (all cores)'}, inter-op {inter or 'default'}"
        )
    return "; ".join(parts) or "not recorded"


def write_report(text: str, path: Path) -> None:
    """Write the generated part; keep the notes section of an existing file as it is."""
    notes = NOTES_MARKER + "\n\n" + DEFAULT_NOTES
    if path.is_file():
        old = path.read_text()
        if NOTES_MARKER in old:
            notes = old[old.index(NOTES_MARKER) :]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n" + notes.rstrip("\n") + "\n")


# --- several runs as one -----------------------------------------------------------------
def combine(sources: list[tuple[Any, dict[str, Any]]]) -> tuple[Any, dict[str, Any]]:
    """Several runs' raw numbers as one: each (part, pair) comes from the latest run (by
    its date, whatever the order given) that measured it, so a part can be re-measured
    without re-running the whole benchmark.

    The report names every run and what it supplied, and warns where a speed-up would divide
    numbers from two different runs."""
    import pandas as pd

    sources = sorted(sources, key=lambda source: source[1]["date"])  # oldest first
    keys = [row_keys(frame) for frame, _ in sources]
    owner = {key: index for index, frame_keys in enumerate(keys) for key in frame_keys}
    kept = [
        frame[[owner[key] == index for key in frame_keys]]
        for index, ((frame, _), frame_keys) in enumerate(zip(sources, keys, strict=True))
    ]

    metas = [meta for _, meta in sources]
    latest = metas[-1]
    pairs = {tuple(pair) for meta in metas for pair in meta["pairs"]}
    parts = {part for meta in metas for part in meta["parts"]}
    timed = [m for m in metas if {"speed", "reference"} & set(m["parts"])]
    meta = {
        **latest,
        "pairs": [(f, a) for f in FRAMEWORKS for a in ARCHS if (f, a) in pairs],
        "parts": [part for part in PARTS if part in parts],
        "quick": any(m["quick"] for m in metas),
        "warmup_epochs": (timed or metas)[-1]["warmup_epochs"],
        "machine": {
            **latest["machine"],
            "threads": (timed or metas)[-1]["machine"].get("threads", {}),
        },
        "failures": [failure for m in metas for failure in m.get("failures", [])],
        "interrupted_after": None,
        "sources": [
            {
                **{
                    name: m[name]
                    for name in ("date", "command", "raw_file", "total_seconds", "machine")
                },
                "supplies": supplied_text([key for key, i in owner.items() if i == index]),
            }
            for index, m in enumerate(metas)
        ],
        "mixed_ratios": [
            f"{framework}/{arch}"
            for (part, framework, arch), index in owner.items()
            if part == "speed" and owner.get(("reference", framework, arch), index) != index
        ],
    }
    return pd.concat(kept, ignore_index=True), meta


def row_keys(frame) -> list[tuple[str, str, str]]:
    """Each raw row's (part, framework, arch); "" where a part has no pair (dashboard)."""
    return list(zip(frame.part, frame.framework.fillna(""), frame.arch.fillna(""), strict=True))


RAW_PART_NAMES = {  # raw `part` column -> what the report calls it
    "speed": f"speed at batch {REFERENCE_BATCH}",
    "reference": "reference speed",
    "default_speed": "speed with the default spec",
    "training": "accuracy and time to accuracy",
    "inference": "inference",
    "dashboard": "dashboard scale",
}


def supplied_text(keys: list[tuple[str, str, str]]) -> str:
    """[("training", "torch", "cnn"), …] as "accuracy and time to accuracy (torch/cnn, …), …"."""
    if not keys:
        return "nothing (all its numbers were measured again later)"
    texts = []
    for part, name in RAW_PART_NAMES.items():
        labels = sorted(f"{f}/{a}" for p, f, a in keys if p == part and f)
        if labels:
            every_pair = len(labels) == len(FRAMEWORKS) * len(ARCHS)
            texts.append(f"{name} ({'all pairs' if every_pair else ', '.join(labels)})")
        elif any(p == part for p, _, _ in keys):
            texts.append(name)
    return ", ".join(texts)
