"""Checkpoint directories that are never half-written and are checked before they are trusted.

A checkpoint is written into `iter_<n>.partial/`, then a manifest (size and sha256 of every
file) is added and the directory is renamed to `iter_<n>/` in one `rename`: a run killed while
writing leaves only a `.partial` directory, which nothing reads. On resume the newest
checkpoint whose files still match their manifest is used; one that does not (a truncated or
overwritten file, a missing one) is skipped with a warning and the previous one is tried.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

MANIFEST = "manifest.json"
PARTIAL = ".partial"


class CorruptCheckpoint(RuntimeError):
    """A checkpoint whose files no longer match its manifest (or that cannot be loaded)."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def checkpoint_dir(root: str | Path, iteration: int) -> Path:
    return Path(root) / f"iter_{iteration:06d}"


def partial_dir(root: str | Path, iteration: int) -> Path:
    """Where checkpoint `iteration` is written before `commit` seals it."""
    final = checkpoint_dir(root, iteration)
    return final.with_name(final.name + PARTIAL)


def begin(root: str | Path, iteration: int) -> Path:
    """A fresh `partial_dir` to write checkpoint `iteration` into (a leftover one is removed)."""
    partial = partial_dir(root, iteration)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def commit(partial: Path, keep: int = 0) -> Path:
    """Seal a `.partial` directory: manifest, fsync, rename into place; then keep the newest `keep`."""
    files = _files(partial)
    manifest = {str(p.relative_to(partial)): {"bytes": p.stat().st_size, "sha256": _digest(p)} for p in files}
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
    for p in [*files, partial / MANIFEST]:
        with p.open("rb") as f:
            os.fsync(f.fileno())
    final = partial.with_name(partial.name.removesuffix(PARTIAL))
    if final.exists():  # rewriting the same iteration (a resumed run that repeats it)
        shutil.rmtree(final)
    os.replace(partial, final)
    _fsync_dir(final.parent)
    if keep:
        for old in complete(final.parent)[:-keep]:
            # renamed first, so a run killed mid-delete leaves a partial, not a torn "complete" one
            doomed = partial_dir(final.parent, int(old.name.removeprefix("iter_")))
            shutil.rmtree(doomed, ignore_errors=True)
            os.replace(old, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
    for stale in final.parent.glob(f"iter_*{PARTIAL}"):  # left by a kill; the run is past them now
        if stale.name < final.name:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def complete(root: str | Path) -> list[Path]:
    """Sealed checkpoints under `root`, oldest first."""
    root = Path(root)
    return sorted(p for p in root.glob("iter_*") if p.is_dir() and not p.name.endswith(PARTIAL)
                  and (p / MANIFEST).exists())


def verify(path: str | Path) -> None:
    """Raise CorruptCheckpoint unless every file listed in the manifest is there, unchanged."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise CorruptCheckpoint(f"{path}: unreadable manifest ({e})") from None
    for name, expected in manifest.items():
        file = path / name
        if not file.is_file():
            raise CorruptCheckpoint(f"{path}: {name} is missing")
        if file.stat().st_size != expected["bytes"]:
            raise CorruptCheckpoint(f"{path}: {name} has {file.stat().st_size} bytes, expected {expected['bytes']}")
        if _digest(file) != expected["sha256"]:
            raise CorruptCheckpoint(f"{path}: {name} does not match its checksum")


def load_latest(root: str | Path, load: Callable[[Path], object]) -> tuple[Path, object] | None:
    """(path, load(path)) of the newest checkpoint that verifies and loads; earlier ones are
    tried, with a warning, when a newer one is corrupt. None when there is no usable one."""
    for path in reversed(complete(root)):
        try:
            verify(path)
            return path, load(path)
        except Exception as e:  # a checkpoint that fails to load is as unusable as a corrupt one
            message = f"checkpoint {path} is unusable ({e}); trying the previous one"
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            print(f"[resume] warning: {message}", flush=True)
    return None
