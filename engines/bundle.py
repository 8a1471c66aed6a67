"""Share runs between stores: export picked runs as one zip, import a zip into a store.

A bundle holds, per run, the run's own files under ``<run_id>/`` plus a top-level
``manifest.json`` with the format version, the run ids and the size and SHA-256 of every file.

Export takes finished runs only (``done``, ``failed`` or ``cancelled``): a queued or running
run would arrive in the other store as "running" forever. Any picked run that cannot be
exported raises :class:`BundleError` naming it, rather than silently leaving it out.

Import treats the zip as untrusted. It checks everything before the store changes: the file
names (only the expected ones, run ids of safe characters, so nothing can escape the
store), entry types (no symlinks, no encryption), declared and actual sizes (bounded per
file and in total, read with a limit, so a zip bomb stops early), checksums against the
manifest, that every ``run.json`` and Parquet file reads with the store's own readers, that
every run is finished, and that a ``done`` run has its history, predictions and model. Files
are staged in a hidden folder inside the store, then each run folder is moved into place with
``os.replace``. A run the store already has with the same files is skipped; one it has with
other files refuses the whole bundle. On any problem: :class:`BundleError` with a one-line
reason, staging removed, store unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines import store

FORMAT = "digit-lab-runs"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RUN_FILES = (store.RUN_JSON, store.HISTORY, store.PREDICTIONS, *store.MODEL_FILES)

# Limits on what an import will accept (module constants so tests can shrink them).
MAX_RUNS = 500
MAX_RUN_JSON_BYTES = 1 * 2**20
MAX_PARQUET_BYTES = 20 * 2**20
MAX_MODEL_BYTES = 50 * 2**20
MAX_MANIFEST_BYTES = 1 * 2**20
MAX_TOTAL_BYTES = 500 * 2**20

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MEMBER_PATTERN = re.compile(
    r"(?P<run_id>[^/]+)/(?P<file>" + "|".join(re.escape(name) for name in RUN_FILES) + ")"
)
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
# Said when a bundle no longer matches its manifest: unzipped and edited, trimmed, re-zipped.
CHANGED = " (the bundle was changed after export: export it again from Digit Lab)"
CHUNK = 2**20
MSDOS_DIRECTORY = 0x10


class BundleError(Exception):
    """A bundle cannot be exported or imported; the message says why in one line."""


# --- shared rules ------------------------------------------------------------------------
def valid_run_id(run_id: str) -> bool:
    """Safe as a single folder name: letters, digits, ``_ . -``; no ``..``; not hidden; not
    the benchmark's folder (no run list shows it)."""
    return (
        bool(RUN_ID_PATTERN.fullmatch(run_id)) and ".." not in run_id and run_id != store.BENCH_DIR
    )


def size_limit(file_name: str) -> int:
    if file_name == store.RUN_JSON:
        return MAX_RUN_JSON_BYTES
    if file_name in store.MODEL_FILES:
        return MAX_MODEL_BYTES
    return MAX_PARQUET_BYTES


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- export ------------------------------------------------------------------------------
def export_runs(run_dirs: list[Path]) -> bytes:
    """A zip bundle of the given run folders (see the module docstring)."""
    if not run_dirs:
        raise BundleError("no runs to export: pick at least one run")
    names = [Path(run_dir).name for run_dir in run_dirs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BundleError(f"run {duplicates[0]} is picked twice")
    if (size := export_size(run_dirs)) > MAX_TOTAL_BYTES:
        raise BundleError(too_large(size))
    files: dict[str, bytes] = {}
    for run_dir in run_dirs:
        files.update(_run_files(Path(run_dir)))
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": store.now_iso(),
        "runs": names,
        "files": {
            name: {"size": len(data), "sha256": sha256(data)} for name, data in files.items()
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def export_size(run_dirs: list[Path]) -> int:
    """Bytes of run files a bundle of ``run_dirs`` would hold (unpacked), without reading them."""
    return sum(
        (Path(run_dir) / name).stat().st_size
        for run_dir in run_dirs
        for name in RUN_FILES
        if (Path(run_dir) / name).is_file()
    )


def too_large(size: int) -> str:
    """Why a bundle of ``size`` bytes is not made: an import would refuse it."""
    return (
        f"{size / 2**20:.0f} MB of run files, more than one bundle may hold "
        f"({MAX_TOTAL_BYTES / 2**20:.0f} MB): share fewer runs at a time"
    )


def export_problem(run_dir: Path) -> str | None:
    """Why the run cannot be exported (``"it is still running"``…), or ``None`` if it can."""
    try:
        run = store.read_run(run_dir)
    except store.StoreError as err:
        return str(err).removeprefix(f"{run_dir.name}: ")
    if not valid_run_id(run_dir.name):
        return "folder name is not a valid run id"
    if store.effective_status(run) in store.ACTIVE_STATUSES:
        return f"it is still {run['status']}"
    if run["status"] in store.ACTIVE_STATUSES:  # an import reads run.json, not this host's pids
        return "its training process ended without recording an end (killed?)"
    if missing := store.missing_parts(run_dir, run["status"]):
        return f"it is done but has no {missing}"
    try:
        store.check_run_files(run_dir)  # what import will check
    except store.StoreError as err:
        return str(err).removeprefix(f"{run_dir.name}: ")
    return None


def _run_files(run_dir: Path) -> dict[str, bytes]:
    """``{"<run_id>/<file>": contents}`` for one exportable run."""
    run_id = run_dir.name
    if problem := export_problem(run_dir):
        raise BundleError(f"cannot export {run_id}: {problem}")
    files = {}
    for file_name in RUN_FILES:
        path = run_dir / file_name
        if path.is_file():
            data = path.read_bytes()
            if len(data) > size_limit(file_name):
                raise BundleError(f"cannot export {run_id}: {file_name} is too large")
            files[f"{run_id}/{file_name}"] = data
    return files


# --- import ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    """One expected file of the bundle, checked against the manifest."""

    info: zipfile.ZipInfo
    run_id: str
    file_name: str
    sha256: str


@dataclass(frozen=True)
class Imported:
    """What an import did: the runs it added, and those the store already had, unchanged."""

    new: list[str]
    already_here: list[str]


def import_runs(data: bytes, results_dir: str | Path | None = None) -> Imported:
    """Add the bundle's runs to the store. Nothing is written if the bundle is invalid.

    A run the store already has with the very same files is left as it is (a teammate's
    updated bundle imports only what is new); one it has with other files refuses the bundle.
    """
    root = store.results_dir(results_dir)
    zf = _open_zip(data)
    with zf:
        members = _check_contents(zf)
        already_here = _already_here(root, members)
        members = [member for member in members if member.run_id not in already_here]
        run_ids = sorted({member.run_id for member in members})
        if not run_ids:
            return Imported(new=[], already_here=sorted(already_here))
        created_root = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f".import-{secrets.token_hex(4)}"
        try:
            _stage(zf, members, staging)
            _check_staged_runs(staging, run_ids)
            _move_into_store(staging, root, run_ids)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if created_root and not any(root.iterdir()):
                root.rmdir()  # a failed import leaves not even the store folder behind
    return Imported(new=run_ids, already_here=sorted(already_here))


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as err:
        if data.startswith(b"PK"):  # a zip's signature, but no readable directory at its end
            raise BundleError("damaged zip file (cut short?): it cannot be opened") from err
        raise BundleError("not a zip file") from err


# step 1: names, entry types, sizes and manifest, without writing anything
def _check_contents(zf: zipfile.ZipFile) -> list[Member]:
    infos = [info for info in zf.infolist() if not _is_run_folder_entry(info)]
    names = [info.filename for info in infos]
    if len(names) != len(set(names)):
        raise BundleError("bundle has duplicate file entries")
    if MANIFEST not in names:
        if any(name.endswith(f"/{MANIFEST}") for name in names):
            raise BundleError(
                f"{MANIFEST} is inside a folder: zip the bundle's files, not the folder holding "
                "them (or export the runs again from Digit Lab)"
            )
        raise BundleError(f"bundle has no {MANIFEST}: not a Digit Lab runs bundle")
    if len(infos) > 1 + MAX_RUNS * len(RUN_FILES):
        raise BundleError(f"bundle has too many files ({len(infos)})")
    for info in infos:
        _check_entry(info)
    if (size := sum(info.file_size for info in infos)) > MAX_TOTAL_BYTES:
        raise BundleError(f"bundle is too large: {too_large(size)}")
    manifest = _read_manifest(zf)
    files = [info for info in infos if info.filename != MANIFEST]
    return _match_manifest(files, manifest)


def _is_run_folder_entry(info: zipfile.ZipInfo) -> bool:
    """A ``<run_id>/`` folder entry, which ``zip -r`` adds and export does not: it holds no
    data and is never extracted, so it is passed over rather than refused."""
    return info.is_dir() and info.file_size == 0 and valid_run_id(info.filename.rstrip("/"))


def _check_entry(info: zipfile.ZipInfo) -> None:
    """One zip entry: an expected name, a plain unencrypted file, within its size limit."""
    name = info.filename
    if name != MANIFEST:
        match = MEMBER_PATTERN.fullmatch(name)
        if match is None:
            raise BundleError(f"unexpected file in bundle: {name!r}")
        if not valid_run_id(match["run_id"]):
            raise BundleError(f"invalid run id in bundle: {match['run_id']!r}")
    file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool recorded none
    if info.is_dir() or info.external_attr & MSDOS_DIRECTORY or file_type not in (0, stat.S_IFREG):
        raise BundleError(f"{name!r} in bundle is not a plain file (symlink or folder?)")
    if info.flag_bits & 0x1:
        raise BundleError(f"{name!r} in bundle is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleError(f"{name!r} in bundle uses an unsupported compression method")
    limit = MAX_MANIFEST_BYTES if name == MANIFEST else size_limit(Path(name).name)
    if info.file_size > limit:
        raise BundleError(f"{name!r} in bundle is too large ({info.file_size} > {limit} bytes)")


def _read_manifest(zf: zipfile.ZipFile) -> dict[str, Any]:
    info = zf.getinfo(MANIFEST)
    try:
        manifest = json.loads(_read_limited(zf, info, MAX_MANIFEST_BYTES))
    except ValueError as err:
        raise BundleError(f"unreadable {MANIFEST} ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST} is not a Digit Lab runs manifest")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle format version {version!r} not supported (need {FORMAT_VERSION})"
        )
    if not isinstance(manifest.get("runs"), list) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{MANIFEST} lacks its runs or files list")
    return manifest


def _match_manifest(files: list[zipfile.ZipInfo], manifest: dict[str, Any]) -> list[Member]:
    """Every file listed with its size and checksum, every listed file present, runs agree."""
    listed = manifest["files"]
    if sorted(listed) != sorted(info.filename for info in files):
        raise BundleError(f"files in bundle do not match {MANIFEST}{CHANGED}")
    members = []
    for info in files:
        entry = listed[info.filename]
        if not isinstance(entry, dict) or entry.get("size") != info.file_size:
            raise BundleError(f"size of {info.filename!r} does not match {MANIFEST}{CHANGED}")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not SHA256_PATTERN.fullmatch(digest):
            raise BundleError(f"{MANIFEST} has no valid sha256 for {info.filename!r}")
        run_id, file_name = info.filename.split("/")
        members.append(Member(info, run_id, file_name, digest))
    _check_runs(members, manifest["runs"])
    return members


def _check_runs(members: list[Member], listed_runs: list[Any]) -> None:
    files_by_run: dict[str, list[str]] = {}
    for member in members:
        files_by_run.setdefault(member.run_id, []).append(member.file_name)
    if not files_by_run:
        raise BundleError("bundle holds no runs")
    if len(files_by_run) > MAX_RUNS:
        raise BundleError(f"bundle holds too many runs ({len(files_by_run)} > {MAX_RUNS})")
    if sorted(files_by_run) != sorted(str(run_id) for run_id in listed_runs):
        raise BundleError(f"runs in bundle do not match {MANIFEST}{CHANGED}")
    for run_id, file_names in files_by_run.items():
        if store.RUN_JSON not in file_names:
            raise BundleError(f"run {run_id} in bundle has no {store.RUN_JSON}")
        if len(set(file_names) & set(store.MODEL_FILES)) > 1:
            raise BundleError(f"run {run_id} in bundle has more than one model file")


def _already_here(root: Path, members: list[Member]) -> set[str]:
    """The bundle's runs that the store has with exactly the same files. Refuses the whole
    bundle, naming every one, if any of its runs is in the store with other files."""
    files_by_run: dict[str, dict[str, str]] = {}
    for member in members:
        files_by_run.setdefault(member.run_id, {})[member.file_name] = member.sha256
    same, different = set(), []
    for run_id, files in files_by_run.items():
        if os.path.lexists(root / run_id):
            (same.add if _has_files(root / run_id, files) else different.append)(run_id)
    if len(different) == 1:
        raise BundleError(f"run {different[0]} already exists in {root}, with other files")
    if different:
        raise BundleError(
            f"{len(different)} runs already exist in {root}, with other files: "
            + ", ".join(sorted(different))
        )
    return same


def _has_files(run_dir: Path, files: dict[str, str]) -> bool:
    """Whether the run folder holds exactly these run files (name -> sha256)."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        return False
    present = {name for name in RUN_FILES if (run_dir / name).is_file()}
    return present == set(files) and all(
        sha256((run_dir / name).read_bytes()) == digest for name, digest in files.items()
    )


# step 2: unpack into a hidden staging folder, verifying sizes and checksums on the way
def _stage(zf: zipfile.ZipFile, members: list[Member], staging: Path) -> None:
    staging.mkdir()
    for member in members:
        data = _read_limited(zf, member.info, size_limit(member.file_name))
        if sha256(data) != member.sha256:
            raise BundleError(
                f"checksum mismatch for {member.info.filename!r}: damaged or edited{CHANGED}"
            )
        run_dir = staging / member.run_id
        run_dir.mkdir(exist_ok=True)
        (run_dir / member.file_name).write_bytes(data)


def _read_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The entry's bytes, refusing more than its declared size or ``limit`` (zip bombs)."""
    allowed = min(info.file_size, limit)
    chunks, total = [], 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(min(CHUNK, allowed + 1 - total)):
                total += len(chunk)
                if total > allowed:
                    raise BundleError(f"{info.filename!r} in bundle is larger than declared")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise BundleError(f"{info.filename!r} in bundle is damaged ({err})") from err
    if total != info.file_size:
        raise BundleError(f"{info.filename!r} in bundle is shorter than declared")
    return b"".join(chunks)


def _check_staged_runs(staging: Path, run_ids: list[str]) -> None:
    """Each staged run must be finished and read with the store's own readers, as the
    dashboard will (they also check run ids, field types, Parquet columns and digits)."""
    for run_id in run_ids:
        run_dir = staging / run_id
        try:
            status = store.read_run(run_dir)["status"]
            store.check_run_files(run_dir)
        except store.StoreError as err:
            raise BundleError(f"run {err}") from err
        if status in store.ACTIVE_STATUSES:  # it would stay "running" here for ever
            raise BundleError(f"run {run_id} is still {status}, not finished")
        if missing := store.missing_parts(run_dir, status):
            raise BundleError(f"run {run_id} is done but has no {missing}")


# step 3: move each staged run folder into the store; undo all moves if one fails
def _move_into_store(staging: Path, root: Path, run_ids: list[str]) -> None:
    moved: list[str] = []
    try:
        for run_id in run_ids:
            if os.path.lexists(root / run_id):  # another import may have raced this one
                raise BundleError(f"run {run_id} already exists in {root}")
            os.replace(staging / run_id, root / run_id)
            moved.append(run_id)
    except BaseException:
        for run_id in moved:
            os.replace(root / run_id, staging / run_id)
        raise
