"""``python -m engines bench --quick`` works end to end and writes what readers rely on.

Structure only: no speed is asserted (the machine is shared; the benchmark itself checks
the targets).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from engines import bench, bench_report
from engines.data import PROJECT_ROOT
from engines.reference import BATCH_SIZE as REFERENCE_BATCH
from engines.spec import RunSpec
from engines.store import bench_dir, iter_run_dirs, load_runs
from tests.conftest import run_cli

SECTIONS = [
    "## Speed per epoch",
    "## Time to accuracy",
    "## Accuracy",
    "## Inference",
    "## Dashboard scale",
    "## Targets (issue #4)",
    "## Machine and versions",
]


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """One quick benchmark of torch/dnn into a temporary store; (report, store, result)."""
    root = tmp_path_factory.mktemp("bench")
    store, report = root / "results", root / "B.md"
    report.write_text(
        "old numbers\n" + bench_report.NOTES_MARKER + "\n\n## Notes: what we tried\nkept\n"
    )
    result = run_cli(
        "bench", "--quick", "--framework", "torch", "--arch", "dnn", "--output", str(report),
        env={"RESULTS_DIR": str(store)}, timeout=600,
    )  # fmt: skip
    return report, store, result


def test_quick_bench_exits_0_and_reports_every_part(quick_run) -> None:
    report, _, result = quick_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = report.read_text()
    for heading in SECTIONS:
        assert heading in text, heading
    assert "| torch/dnn |" in text
    assert "python -m engines bench --quick --framework torch --arch dnn" in text
    assert "torch 2." in text  # library versions
    assert "Quick mode" in text


def test_the_benchmark_folder_in_the_store_is_not_listed_as_a_broken_run(quick_run) -> None:
    _, root, _ = quick_run
    assert any(bench_dir(root).glob("*.parquet"))
    assert load_runs(root).attrs["skipped"] == []
    assert iter_run_dirs(root) == []


def test_report_names_the_cpu_and_its_yardstick(quick_run) -> None:
    """Absolute seconds from two invocations compare only on a comparable CPU: each
    invocation records its vector units and a measured matrix-product speed."""
    report, store, _ = quick_run
    (raw_file,) = (store / "bench").glob("*.parquet")
    _, meta = bench_report.read_raw(raw_file)
    assert meta["machine"]["matmul_gflops"] > 1  # any real CPU; a broken timer gives 0 or inf
    assert meta["machine"]["matmul_gflops"] < 1e5
    machine = report.read_text().split("## Machine and versions")[1]
    assert f"{meta['machine']['matmul_gflops']:.0f} GFLOP/s" in machine
    assert f"Vector units: {meta['machine']['vector_units']}" in machine


def test_quick_bench_computes_the_targets_it_measured(quick_run) -> None:
    text = quick_run[0].read_text()
    targets = text.split("## Targets (issue #4)")[1].split("##")[0]
    for name in ("faster than its reference", "epoch (55k images)", "test accuracy (mean)",
                 "inference p95", "leaderboard"):  # fmt: skip
        line = next(line for line in targets.splitlines() if name in line)
        _, _, measured, status, margin, _, _ = line.split("|")
        assert measured.strip() != "–"
        assert status.strip() in ("✅ met", "❌ missed")
        assert margin.strip().startswith(status.split()[-1])  # "met …" or "missed …"


def test_regenerating_the_report_keeps_the_notes_section(quick_run) -> None:
    text = quick_run[0].read_text()
    assert "old numbers" not in text
    assert text.count(bench_report.NOTES_MARKER) == 1
    assert text.rstrip().endswith("## Notes: what we tried\nkept")


def test_raw_numbers_are_parquet_with_one_row_per_measurement(quick_run) -> None:
    _, store, _ = quick_run
    (raw_file,) = (store / "bench").glob("*.parquet")
    raw = pd.read_parquet(raw_file)
    assert list(raw.columns) == bench_report.RAW_COLUMNS
    default_batch = RunSpec("torch", "dnn").batch_size
    parts = {"speed", "reference", "training", "inference", "dashboard"}
    if default_batch != REFERENCE_BATCH:  # then the default spec is timed as well
        parts.add("default_speed")
    assert set(raw["part"]) == parts
    assert (raw["value"] > 0).all()
    batches = raw[raw.metric == "batch_size"].groupby("part")["value"].first()
    assert batches["speed"] == REFERENCE_BATCH  # the ratio compares the same batch
    assert batches.get("default_speed", default_batch) == default_batch
    speed = raw[(raw.part == "speed") & (raw.metric == "epoch_seconds")]
    assert list(speed["warmup"]) == [True, False]  # 1 warm-up + 1 timed epoch in quick mode
    assert len(raw[raw.metric == "latency_ms"]) == 20
    reference = raw[(raw.part == "reference") & (raw.metric == "trainable_params")]
    engine = raw[(raw.part == "speed") & (raw.metric == "trainable_params")]
    assert reference["value"].tolist() == engine["value"].tolist() == [109_770]


def test_report_can_be_rebuilt_from_the_raw_numbers(quick_run, tmp_path: Path) -> None:
    _, store, _ = quick_run
    (raw_file,) = (store / "bench").glob("*.parquet")
    rebuilt = tmp_path / "again.md"
    result = run_cli("bench", "--report-from", str(raw_file), "--output", str(rebuilt))
    assert result.returncode == 0, result.stderr
    original = quick_run[0].read_text().split(bench_report.NOTES_MARKER)[0]
    assert rebuilt.read_text().split(bench_report.NOTES_MARKER)[0] == original


def test_a_later_partial_run_replaces_only_what_it_measured(quick_run, tmp_path: Path) -> None:
    """--report-from full.parquet accuracy-only.parquet: accuracy from the second, the rest
    (speed, inference, …) from the first, and the report names both invocations."""
    _, store, _ = quick_run
    (first,) = (store / "bench").glob("*.parquet")
    frame, meta = bench_report.read_raw(first)
    retrained = frame[frame.part == "training"].copy()
    retrained.loc[retrained.metric == "test_accuracy", "value"] = 0.4321
    later = tmp_path / "later.parquet"
    later_meta = {**meta, "parts": ["accuracy", "tta"], "command": "python -m engines bench --x"}
    bench_report.write_raw(retrained, later_meta, later)

    combined = tmp_path / "combined.md"
    result = run_cli("bench", "--report-from", str(first), str(later), "--output", str(combined))
    assert result.returncode == 0, result.stderr
    text = combined.read_text()
    assert "Combined from 2 invocations" in text
    assert "`python -m engines bench --x`" in text and "--quick --framework torch" in text
    assert text.count("CPU yardstick") == 2  # one per invocation
    accuracy = text.split("## Accuracy")[1].split("##")[0]
    assert "43.21 ± 0.00 %" in accuracy or "| 43.21 %" in accuracy
    speed = text.split("## Speed per epoch")[1].split("##")[0]
    original = quick_run[0].read_text().split("## Speed per epoch")[1].split("##")[0]
    assert speed == original


def bench_settings(*options: str) -> bench.Settings:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return bench.settings_from_args(parser.parse_args(list(options)))


@pytest.mark.parametrize(
    "options", [["--arch", "cnn"], ["--parts", "accuracy", "tta"], ["--framework", "keras"]]
)
def test_a_run_of_some_parts_or_pairs_does_not_replace_benchmarks_md(
    options: list[str], tmp_path: Path
) -> None:
    output = bench.default_output(bench_settings(*options), tmp_path, "20261126-170000")
    assert output == tmp_path / "BENCHMARKS-20261126-170000.md"


def test_only_a_full_run_writes_benchmarks_md_by_default(tmp_path: Path) -> None:
    assert bench.default_output(bench_settings(), tmp_path, "S") == PROJECT_ROOT / "BENCHMARKS.md"
    quick = bench.default_output(bench_settings("--quick", "--arch", "dnn"), tmp_path, "S")
    assert quick == tmp_path / "BENCHMARKS-quick.md"


def test_report_from_a_missing_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = run_cli("bench", "--report-from", str(tmp_path / "nope.parquet"))
    assert result.returncode == 2
    assert "no such file" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs: must be at least 1"),
        (["--parts", "speedy"], "invalid choice: 'speedy'"),
        (["--train-limit", "60000"], "--train-limit: at most 55000"),
        (["--train-limit", "1"], "--train-limit: must be at least 2"),
        (["--output", "."], "--output: . is a folder"),
        (["--output", "no/such/folder/B.md"], "--output: no/such/folder is not a folder"),
        (["--report-from", "x.parquet", "--quick", "--seeds", "2"], "leave out --seeds, --quick"),
    ],
)
def test_bad_bench_option_exits_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = run_cli("bench", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_store_that_cannot_hold_the_raw_numbers_is_refused_before_measuring(
    tmp_path: Path,
) -> None:
    """An hour of measuring must not end in a traceback: the raw-numbers folder is made first."""
    blocker = tmp_path / "results"
    blocker.write_text("a file where the store should be")
    result = run_cli("bench", "--quick", env={"RESULTS_DIR": str(blocker)})
    assert result.returncode == 1
    assert "cannot create" in result.stderr and "Traceback" not in result.stderr
    assert "benchmark:" not in result.stdout  # nothing was measured


def saved_raw(quick_run, folder: Path, name: str, **meta_changes) -> Path:
    """The quick run's raw numbers saved again with some metadata changed."""
    (first,) = (quick_run[1] / "bench").glob("*.parquet")
    frame, meta = bench_report.read_raw(first)
    path = folder / name
    bench_report.write_raw(frame, {**meta, **meta_changes}, path)
    return path


def test_report_from_numbers_of_some_parts_leaves_benchmarks_md_alone(
    quick_run, tmp_path: Path
) -> None:
    """Rebuilding from a partial (non-quick) run would replace BENCHMARKS.md with tables that
    lack every part and pair it did not measure: it goes to results/bench/ instead."""
    raw = saved_raw(quick_run, tmp_path, "partial.parquet", quick=False)
    store = tmp_path / "results"
    before = (PROJECT_ROOT / "BENCHMARKS.md").read_bytes()
    result = run_cli("bench", "--report-from", str(raw), env={"RESULTS_DIR": str(store)})
    assert result.returncode == 0, result.stderr
    assert (PROJECT_ROOT / "BENCHMARKS.md").read_bytes() == before
    (written,) = (store / "bench").glob("BENCHMARKS-*.md")
    assert "| torch/dnn |" in written.read_text()
    assert "do not replace BENCHMARKS.md" in result.stdout


def test_benchmarks_md_is_rewritten_only_from_numbers_covering_every_part_of_every_pair(
    tmp_path: Path,
) -> None:
    every_pair = [[f, a] for f in ("keras", "torch", "lightning") for a in ("dnn", "cnn")]
    full = {"quick": False, "parts": list(bench_report.PARTS), "pairs": every_pair}
    dnn_only = {**full, "pairs": [p for p in every_pair if p[1] == "dnn"]}
    cnn_speed = {**full, "parts": ["speed"], "pairs": [p for p in every_pair if p[1] == "cnn"]}
    cnn_rest = {**cnn_speed, "parts": [p for p in bench_report.PARTS if p != "speed"]}
    benchmarks_md = PROJECT_ROOT / "BENCHMARKS.md"
    assert bench.rerender_output([full], tmp_path, tmp_path) == benchmarks_md
    assert bench.rerender_output([dnn_only, cnn_speed, cnn_rest], tmp_path, tmp_path) == (
        benchmarks_md
    )
    # every part and every pair named somewhere, but the CNNs' accuracy never measured
    gap = bench.rerender_output([dnn_only, cnn_speed], tmp_path, tmp_path)
    assert gap.parent == tmp_path and gap.name.startswith("BENCHMARKS-")
    quick = bench.rerender_output([{**full, "quick": True}], tmp_path, tmp_path)
    assert quick == tmp_path / "BENCHMARKS-quick.md"


def test_combined_numbers_take_each_part_from_the_latest_run_whatever_the_order_given(
    quick_run, tmp_path: Path
) -> None:
    (first,) = (quick_run[1] / "bench").glob("*.parquet")
    frame, meta = bench_report.read_raw(first)
    retrained = frame[frame.part == "training"].copy()
    retrained.loc[retrained.metric == "test_accuracy", "value"] = 0.4321
    later_meta = {**meta, "date": "2099-01-01 00:00 UTC", "parts": ["accuracy", "tta"]}
    combined, combined_meta = bench_report.combine([(retrained, later_meta), (frame, meta)])
    accuracy = combined[(combined.part == "training") & (combined.metric == "test_accuracy")]
    assert accuracy["value"].tolist() == [0.4321]
    assert combined_meta["date"] == "2099-01-01 00:00 UTC"  # machine lines: the latest run's


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quick": None}, "no valid 'quick'"),
        ({"machine": {"cpu": "x"}}, "no machine 'cores'"),
        ({"pairs": [["torch", "mlp"]]}, "unknown part or pair"),
    ],
)
def test_report_from_a_file_with_broken_metadata_exits_2_naming_it(
    quick_run, tmp_path: Path, change: dict, message: str
) -> None:
    raw = saved_raw(quick_run, tmp_path, "broken.parquet", **change)
    result = run_cli("bench", "--report-from", str(raw), "--output", str(tmp_path / "B.md"))
    assert result.returncode == 2
    assert f"cannot read {raw}: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "B.md").exists()


@pytest.mark.parametrize("kind", ["metadata is a list", "wrong columns", "not parquet"])
def test_report_from_a_file_that_is_not_benchmark_numbers_exits_2(
    tmp_path: Path, kind: str
) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = tmp_path / "other.parquet"
    if kind == "not parquet":
        raw.write_text("hello")
    else:
        columns = bench_report.RAW_COLUMNS if kind == "metadata is a list" else ["epoch", "loss"]
        table = pa.table({name: [1] for name in columns})
        meta = [1, 2] if kind == "metadata is a list" else {"date": "2026-01-01 00:00 UTC"}
        metadata = {bench_report.BENCH_META_KEY: json.dumps(meta).encode()}
        pq.write_table(table.replace_schema_metadata(metadata), raw)
    result = run_cli("bench", "--report-from", str(raw), "--output", str(tmp_path / "B.md"))
    assert result.returncode == 2
    assert f"cannot read {raw}: " in result.stderr and "Traceback" not in result.stderr
