"""Run bundles: export picked runs as a zip, import it into another store, refuse bad zips.

Most runs here are synthetic (written with the store's own functions, a dummy model file);
one real tiny torch run checks the round trip of what training actually writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import engines
from engines import bundle, runner, store
from engines.bundle import BundleError, export_runs, import_runs
from engines.spec import RunSpec
from tests.conftest import run_cli


# --- helpers -----------------------------------------------------------------------------
def make_run(root: Path, framework: str = "torch", status: str = "done", epochs: int = 3) -> Path:
    """A small but complete synthetic run folder."""
    run_dir = store.create_run(RunSpec(framework, "dnn", epochs=epochs), root)
    run = store.read_run(run_dir)
    rows = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_accuracy": 0.8 + e / 100,
            "val_loss": 1.1 / e,
            "val_accuracy": 0.79 + e / 100,
            "lr": 1e-3 / e,
            "epoch_seconds": 1.5,
        }
        for e in range(1, epochs + 1)
    ]
    store.write_history(run_dir, run, rows)
    if status == "done":
        rng = np.random.default_rng(0)
        store.write_predictions(run_dir, rng.integers(0, 10, 50), rng.random((50, 10)))
        model_name = "model.keras" if framework == "keras" else "model.pt"
        (run_dir / model_name).write_bytes(b"weights " + run["run_id"].encode() * 100)
        store.update_run(run_dir, status="done", test_accuracy=0.91, test_loss=0.3)
    else:
        store.update_run(run_dir, status=status, error="boom" if status == "failed" else None)
    return run_dir


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its contents."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(folder.rglob("*"))
    }


def bundle_files(data: bytes) -> dict[str, bytes]:
    """The run files of an exported bundle (everything but the manifest)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist() if name != bundle.MANIFEST}


def make_bundle(files: dict[str, bytes], manifest: dict | None = None) -> bytes:
    """A zip of ``files`` with a manifest that correctly lists them (unless one is given)."""
    if manifest is None:
        manifest = {
            "format": bundle.FORMAT,
            "version": bundle.FORMAT_VERSION,
            "created_at": store.now_iso(),
            "runs": sorted({name.split("/")[0] for name in files}),
            "files": {
                name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in files.items()
            },
        }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(bundle.MANIFEST, json.dumps(manifest))
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def assert_refused(data: bytes, store_dir: Path, message: str) -> None:
    """Import raises BundleError mentioning ``message`` and the store is byte-for-byte unchanged."""
    before = snapshot(store_dir)
    with pytest.raises(BundleError, match=message):
        import_runs(data, store_dir)
    assert snapshot(store_dir) == before


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "source"
    root.mkdir()
    return root


@pytest.fixture
def one_run_files(source: Path) -> dict[str, bytes]:
    """The run files of a bundle holding one synthetic torch run."""
    return bundle_files(export_runs([make_run(source)]))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real") / "results"
    result = run_cli(
        "--results-dir", str(root), "train", "--framework", "torch", "--arch", "dnn",
        "--epochs", "1", "--train-limit", "1000", "--val-size", "300", "--test-limit", "300",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (run_dir,) = store.iter_run_dirs(root)
    return run_dir


def assert_same_run(original: Path, copy: Path) -> None:
    assert copy.name == original.name
    assert store.read_run(copy) == store.read_run(original)
    pd.testing.assert_frame_equal(store.read_history(copy), store.read_history(original))
    if (original / store.PREDICTIONS).exists():
        pd.testing.assert_frame_equal(
            store.read_predictions(copy), store.read_predictions(original)
        )
    original_model = store.model_path(original)
    if original_model is None:
        assert store.model_path(copy) is None
    else:
        assert store.model_path(copy).read_bytes() == original_model.read_bytes()


# --- round trip --------------------------------------------------------------------------
def test_real_run_round_trips_into_an_empty_store(real_run: Path, results_dir: Path) -> None:
    imported = import_runs(export_runs([real_run]), results_dir)

    assert imported.new == [real_run.name] and imported.already_here == []
    assert_same_run(real_run, results_dir / real_run.name)
    runs = engines.load_runs(results_dir)
    assert runs["run_id"].tolist() == [real_run.name]
    assert runs.loc[0, "status"] == "done"
    assert runs.loc[0, "test_accuracy"] == store.read_run(real_run)["test_accuracy"]


def test_several_runs_of_any_finished_status_round_trip(source: Path, results_dir: Path) -> None:
    runs = [make_run(source, "keras"), make_run(source, "lightning"), make_run(source, "torch")]
    runs.append(make_run(source, status="failed"))  # history only, no predictions or model
    runs.append(make_run(source, status="cancelled"))

    imported = import_runs(export_runs(runs), results_dir)

    assert imported.new == sorted(run.name for run in runs)
    for run in runs:
        assert_same_run(run, results_dir / run.name)
    assert len(engines.load_runs(results_dir)) == len(runs)
    assert not [p for p in results_dir.iterdir() if p.name.startswith(".")]  # no staging left


def test_import_creates_a_missing_store_folder(source: Path, tmp_path: Path) -> None:
    run = make_run(source)
    target = tmp_path / "new" / "store"

    import_runs(export_runs([run]), target)

    assert_same_run(run, target / run.name)


def test_bundle_has_a_manifest_with_sizes_and_checksums(source: Path) -> None:
    run = make_run(source)
    with zipfile.ZipFile(io.BytesIO(export_runs([run]))) as zf:
        manifest = json.loads(zf.read(bundle.MANIFEST))
        contents = {name: zf.read(name) for name in zf.namelist() if name != bundle.MANIFEST}

    assert manifest["format"] == bundle.FORMAT and manifest["version"] == 1
    assert manifest["runs"] == [run.name]
    assert sorted(contents) == sorted(
        f"{run.name}/{name}"
        for name in ("run.json", "history.parquet", "test_predictions.parquet", "model.pt")
    )
    for name, data in contents.items():
        assert manifest["files"][name] == {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }


# --- export refusals ---------------------------------------------------------------------
def test_export_refuses_a_run_that_is_still_running(source: Path) -> None:
    run = make_run(source, status="queued")
    with pytest.raises(BundleError, match="still queued"):
        export_runs([run])


def test_export_leaves_out_a_run_whose_training_process_was_killed(source: Path) -> None:
    """This host reads it as failed, but its run.json still says running, and an import
    (on any machine) would refuse the whole bundle for it."""
    run = make_run(source, status="failed")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.update_run(run, status="running", error=None, pid=dead.pid, host=runner.host_info())
    assert store.load_runs(source).iloc[0]["status"] == "failed"
    assert "killed" in bundle.export_problem(run)
    with pytest.raises(BundleError, match="killed"):
        export_runs([run])


def test_export_refuses_an_unreadable_run(source: Path) -> None:
    run = make_run(source)
    (run / "run.json").write_text("{broken")
    with pytest.raises(BundleError, match=f"cannot export {run.name}"):
        export_runs([run])


def test_export_refuses_a_run_whose_files_an_import_would_refuse(source: Path) -> None:
    """Checked before the zip is written: one damaged run must not make a teammate's whole
    bundle unimportable."""
    run = make_run(source)
    history = run / store.HISTORY
    history.write_bytes(history.read_bytes()[: history.stat().st_size // 2])
    assert "unreadable history.parquet" in bundle.export_problem(run)
    with pytest.raises(BundleError, match="unreadable history.parquet"):
        export_runs([run])


def test_export_refuses_runs_too_large_for_an_import_to_take(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dirs = [make_run(source), make_run(source, framework="keras")]
    monkeypatch.setattr(bundle, "MAX_TOTAL_BYTES", bundle.export_size(run_dirs) - 1)
    with pytest.raises(BundleError, match="more than one bundle may hold.*share fewer runs"):
        export_runs(run_dirs)


def test_the_dashboard_upload_limit_takes_the_largest_bundle_an_import_accepts() -> None:
    """Streamlit's default (200 MB) refused a 202 MB bundle that export had written."""
    import tomllib

    from engines.data import PROJECT_ROOT

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 >= bundle.MAX_TOTAL_BYTES


def test_export_refuses_an_empty_pick(source: Path) -> None:
    with pytest.raises(BundleError, match="no runs"):
        export_runs([])


# --- import refusals: nothing is written -------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a zip file"),
        (b"hello, not a zip", "not a zip file"),
        (b"PK\x03\x04 truncated", "damaged zip file"),
    ],
)
def test_not_a_zip_or_a_damaged_one_is_refused(
    data: bytes, message: str, results_dir: Path
) -> None:
    assert_refused(data, results_dir, message)


def test_a_bundle_cut_short_is_called_damaged(source: Path, results_dir: Path) -> None:
    whole = export_runs([make_run(source)])
    assert_refused(whole[: len(whole) // 2], results_dir, "damaged zip file")


@pytest.mark.parametrize(
    "evil_name",
    [
        "../evil/run.json",
        "../run.json",
        "/etc/run.json",
        "run/../../x",
        "..\\..\\evil/run.json",
        "C:/run.json",
        ".hidden/run.json",
        "a/b/run.json",
        "evil.sh",
    ],
)
def test_paths_escaping_the_store_are_refused(
    evil_name: str, one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    files = {**one_run_files, evil_name: b'{"status": "done"}'}
    assert_refused(make_bundle(files), results_dir, "unexpected file|invalid run id")
    assert not (results_dir.parent / "evil").exists()


def test_a_run_named_like_the_benchmark_folder_is_refused(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    """It would land in results/bench/, which no run list shows (and bench writes into)."""
    renamed = {f"bench/{name.split('/', 1)[1]}": data for name, data in one_run_files.items()}
    run = json.loads(renamed["bench/run.json"])
    renamed["bench/run.json"] = json.dumps({**run, "run_id": "bench"}).encode()
    assert_refused(make_bundle(renamed), results_dir, "invalid run id")


@pytest.mark.parametrize("extra", ["notes.txt", "model.h5", "run.json.bak", "history.csv"])
def test_unexpected_file_names_are_refused(
    extra: str, one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    run_id = next(iter(one_run_files)).split("/")[0]
    files = {**one_run_files, f"{run_id}/{extra}": b"surprise"}
    assert_refused(make_bundle(files), results_dir, "unexpected file")


def test_a_bundle_unzipped_and_zipped_again_with_its_folder_entries_imports(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    """``zip -r`` adds a ``<run_id>/`` entry per folder; they hold nothing to import."""
    data = make_bundle(one_run_files)
    run_id = next(iter(one_run_files)).split("/")[0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        target.mkdir(run_id)
        for info in source.infolist():
            target.writestr(info, source.read(info))

    imported = import_runs(buffer.getvalue(), results_dir)

    assert imported.new == [run_id]
    assert sorted(p.name for p in (results_dir / run_id).iterdir()) == sorted(
        name.split("/")[1] for name in one_run_files
    )


def test_a_bundle_zipped_with_its_folder_says_to_zip_the_files_instead(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    """``zip -r team.zip unzipped/`` puts every name one folder down."""
    data = make_bundle(one_run_files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(f"unzipped/{info.filename}", source.read(info))
    assert_refused(buffer.getvalue(), results_dir, "zip the bundle's files, not the folder")


def test_a_bundle_edited_after_export_is_refused_with_what_to_do(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    good = make_bundle(one_run_files)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(good)).read(bundle.MANIFEST))
    name = next(name for name in one_run_files if name.endswith("run.json"))
    edited = json.loads(one_run_files[name])
    edited["spec"]["notes"] = "a better note"
    files = {**one_run_files, name: json.dumps(edited).encode()}
    assert_refused(make_bundle(files, manifest), results_dir, "export it again from Digit Lab")


def test_symlink_entries_are_refused(one_run_files: dict[str, bytes], results_dir: Path) -> None:
    data = make_bundle(one_run_files)
    name = next(name for name in one_run_files if name.endswith("model.pt"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            if info.filename == name:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            target.writestr(info, source.read(info))
    assert_refused(buffer.getvalue(), results_dir, "not a plain file")


def test_a_file_over_its_size_limit_is_refused(
    one_run_files: dict[str, bytes], results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "MAX_MODEL_BYTES", 100)
    assert_refused(make_bundle(one_run_files), results_dir, "model.pt.*too large")


def test_a_bundle_over_the_total_size_limit_is_refused(
    one_run_files: dict[str, bytes], results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "MAX_TOTAL_BYTES", sum(map(len, one_run_files.values())) - 1)
    assert_refused(make_bundle(one_run_files), results_dir, "bundle is too large")


def test_too_many_runs_are_refused(
    source: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = export_runs([make_run(source), make_run(source)])
    monkeypatch.setattr(bundle, "MAX_RUNS", 1)
    assert_refused(data, results_dir, "too many")


def test_a_file_larger_than_its_declared_size_is_refused(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    """Zip-bomb guard: the declared (small) size is not trusted; reading stops at it."""
    name = next(name for name in one_run_files if name.endswith("model.pt"))
    files = {**one_run_files, name: b"\0" * 100_000}
    data = make_bundle(files)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read(bundle.MANIFEST))
    manifest["files"][name]["size"] = 10
    data = _with_declared_size(make_bundle(files, manifest), name, 10)
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo(name).file_size == 10

    assert_refused(data, results_dir, "larger than declared|damaged")


def _with_declared_size(data: bytes, name: str, size: int) -> bytes:
    """Rewrite the uncompressed size the zip's central directory declares for ``name``."""
    data = bytearray(data)
    start = data.find(b"PK\x01\x02")
    while start != -1:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46 : start + 46 + name_length].decode() == name:
            struct.pack_into("<I", data, start + 24, size)
            return bytes(data)
        start = data.find(b"PK\x01\x02", start + 46)
    raise AssertionError(f"{name} not in zip")


def test_a_checksum_mismatch_is_refused(one_run_files: dict[str, bytes], results_dir: Path) -> None:
    good = make_bundle(one_run_files)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(good)).read(bundle.MANIFEST))
    name = next(name for name in one_run_files if name.endswith("history.parquet"))
    manifest["files"][name]["sha256"] = hashlib.sha256(b"something else").hexdigest()
    assert_refused(make_bundle(one_run_files, manifest), results_dir, "checksum mismatch")


def test_a_refused_import_into_a_missing_store_leaves_no_folder(
    one_run_files: dict[str, bytes], tmp_path: Path
) -> None:
    name = next(name for name in one_run_files if name.endswith("run.json"))
    files = {**one_run_files, name: b"{not json"}
    target = tmp_path / "new-store"
    with pytest.raises(BundleError, match="unreadable run.json"):
        import_runs(make_bundle(files), target)
    assert not target.exists()


def test_a_file_missing_from_the_manifest_is_refused(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    good = make_bundle(one_run_files)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(good)).read(bundle.MANIFEST))
    manifest["files"].pop(next(name for name in one_run_files if name.endswith("model.pt")))
    assert_refused(make_bundle(one_run_files, manifest), results_dir, "do not match")


def test_a_zip_without_manifest_is_refused(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in one_run_files.items():
            zf.writestr(name, data)
    assert_refused(buffer.getvalue(), results_dir, "no manifest.json")


@pytest.mark.parametrize(
    "run_json",
    [
        b"{not json",
        b'{"run_id": "RUN", "status": "exploded", "spec": {"framework": "torch", "arch": "dnn"}}',
        b'{"run_id": "RUN", "status": "done", "spec": {"framework": "tf", "arch": "dnn"}}',
        b'{"run_id": "other", "status": "done", "spec": {"framework": "torch", "arch": "dnn"}}',
    ],
    ids=["not-json", "bad-status", "bad-spec", "other-run-id"],
)
def test_a_corrupt_run_json_is_refused(
    run_json: bytes, one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    run_id = next(iter(one_run_files)).split("/")[0]
    files = {**one_run_files, f"{run_id}/run.json": run_json.replace(b"RUN", run_id.encode())}
    assert_refused(make_bundle(files), results_dir, run_id)


@pytest.mark.parametrize("status", ["queued", "running"])
def test_bundle_with_an_unfinished_run_is_refused(
    status: str, source: Path, results_dir: Path
) -> None:
    finished, unfinished = make_run(source), make_run(source)
    files = bundle_files(export_runs([finished, unfinished]))
    run = {**store.read_run(unfinished), "status": status}
    if status == "running":
        run.update(pid=1, host={"name": "another-machine"}, progress={"epoch": 1, "epochs": 3})
    files[f"{unfinished.name}/run.json"] = json.dumps(run).encode()

    assert_refused(make_bundle(files), results_dir, f"run {unfinished.name} is still {status}")
    assert not any(results_dir.iterdir())  # not even the finished run


@pytest.mark.parametrize(
    ("left_out", "named"),
    [
        ("history.parquet", "history.parquet"),
        ("test_predictions.parquet", "test_predictions.parquet"),
        ("model.pt", "model file"),
    ],
)
def test_a_done_run_without_one_of_its_files_is_refused(
    left_out: str, named: str, one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    """Its leaderboard row would look fine and every page using the file would fail."""
    files = {name: data for name, data in one_run_files.items() if not name.endswith(left_out)}
    assert len(files) == len(one_run_files) - 1
    assert_refused(make_bundle(files), results_dir, f"is done but has no {named}")


def test_export_refuses_a_done_run_without_its_model(source: Path) -> None:
    run_dir = make_run(source)
    (run_dir / "model.pt").unlink()
    with pytest.raises(BundleError, match=f"cannot export {run_dir.name}: .* no model file"):
        export_runs([run_dir])


@pytest.mark.parametrize("column", ["predicted", "label"])
def test_predictions_with_a_non_digit_are_refused(
    column: str, one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    name = next(name for name in one_run_files if name.endswith("test_predictions.parquet"))
    frame = pd.read_parquet(io.BytesIO(one_run_files[name]))
    frame.loc[0, column] = 12
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    files = {**one_run_files, name: buffer.getvalue()}
    assert_refused(make_bundle(files), results_dir, f"has a {column} not a digit 0-9")


def test_a_corrupt_parquet_file_is_refused(
    one_run_files: dict[str, bytes], results_dir: Path
) -> None:
    name = next(name for name in one_run_files if name.endswith("history.parquet"))
    files = {**one_run_files, name: b"PAR1 this is not parquet PAR1"}
    assert_refused(make_bundle(files), results_dir, "unreadable history.parquet")
    with pytest.raises(BundleError) as refused:
        import_runs(make_bundle(files), results_dir)
    assert ".import-" not in str(refused.value)  # the hidden staging folder is not shown


def test_a_run_already_in_the_store_with_the_same_files_is_skipped_and_the_rest_imported(
    source: Path, results_dir: Path
) -> None:
    """A teammate's bundle, grown since the last import, brings only what is new."""
    existing, new = make_run(source), make_run(source)
    import_runs(export_runs([existing]), results_dir)
    before = snapshot(results_dir / existing.name)

    imported = import_runs(export_runs([existing, new]), results_dir)

    assert imported.new == [new.name] and imported.already_here == [existing.name]
    assert_same_run(new, results_dir / new.name)
    assert snapshot(results_dir / existing.name) == before


def test_a_bundle_with_nothing_new_changes_nothing(source: Path, results_dir: Path) -> None:
    run_dir = make_run(source)
    data = export_runs([run_dir])
    import_runs(data, results_dir)
    before = snapshot(results_dir)

    imported = import_runs(data, results_dir)

    assert imported.new == [] and imported.already_here == [run_dir.name]
    assert snapshot(results_dir) == before


def test_a_run_in_the_store_with_other_files_refuses_the_whole_bundle(
    source: Path, results_dir: Path
) -> None:
    existing, new = make_run(source), make_run(source)
    import_runs(export_runs([existing]), results_dir)
    store.update_run(existing, error="edited since")  # the source's copy has moved on

    assert_refused(export_runs([existing, new]), results_dir, "already exists .*other files")
    assert not (results_dir / new.name).exists()


def test_a_failure_while_moving_runs_in_undoes_the_moves(
    source: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = export_runs([make_run(source), make_run(source)])
    real_replace, calls = bundle.os.replace, []

    def replace_failing_second_time(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(bundle.os, "replace", replace_failing_second_time)
    before = snapshot(results_dir)
    with pytest.raises(OSError, match="disk full"):
        import_runs(data, results_dir)
    assert snapshot(results_dir) == before


def test_a_refused_bundle_names_every_run_already_in_the_store(
    source: Path, results_dir: Path
) -> None:
    first, second = make_run(source), make_run(source)
    import_runs(export_runs([first, second]), results_dir)
    for run_dir in (first, second):
        store.update_run(run_dir, error="edited since")

    with pytest.raises(BundleError) as refused:
        import_runs(export_runs([first, second]), results_dir)
    assert "2 runs already exist" in str(refused.value)
    assert first.name in str(refused.value) and second.name in str(refused.value)


def test_cli_import_into_a_store_that_cannot_be_written_blames_the_store_not_the_bundle(
    source: Path, tmp_path: Path
) -> None:
    zipped = tmp_path / "runs.zip"
    zipped.write_bytes(export_runs([make_run(source)]))
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the store's parent folder should be")

    result = run_cli("--results-dir", str(blocker / "results"), "import", str(zipped))

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot write runs to {blocker / 'results'}")
