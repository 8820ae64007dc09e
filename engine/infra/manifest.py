"""Content hashes and environment facts for ``manifest.json``; input fingerprints.

A run is identified by what went in (the config's bytes and every input's content), not
by where the files lie, so the same inputs give the same run id anywhere.

An input is fingerprinted when the run opens it (:func:`fingerprint_input`): each file's
size, modification and change times and inode, and the SHA-256 the manifest records.
Before a run publishes anything it checks the cheap part again (:func:`verify_inputs`):
a file replaced or rewritten while the run read it fails the run, so a ledger never
carries the hash (and run id) of a file it was not computed from.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from panen.engine.errors import InputError, Problem

__all__ = ["FileStamp", "InputFingerprint", "fingerprint_input", "hash_input", "package_versions", "sha256_file",
           "sha256_tree", "verify_inputs"]


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes [hex], read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree_files(p: Path) -> list[Path]:
    return sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]


def sha256_tree(paths: list[Path]) -> str:
    """One SHA-256 over files and folders: each file's relative name and hash, in sorted order."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        for q in _tree_files(p):
            h.update(str(q.relative_to(p) if p.is_dir() else q.name).encode())
            h.update(sha256_file(q).encode())
    return h.hexdigest()


def _expand(path: str | Path) -> list[Path]:
    """The files and folders an input names: itself, or a glob pattern's sorted matches."""
    s = str(path)
    return [Path(p) for p in sorted(glob.glob(s))] if any(c in s for c in "*?[") else [Path(s)]


def hash_input(path: str | Path) -> dict[str, str]:
    """``{"path", "sha256", "files"}`` of an input: a file, a folder, or a glob pattern."""
    paths = _expand(path)
    return {"path": str(path), "sha256": sha256_tree(paths), "files": str(len(paths))}


@dataclass(frozen=True)
class FileStamp:
    """What the file system says about one file, cheap to read again [bytes, ns since the epoch]."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, path: Path) -> "FileStamp":
        s = os.stat(path)
        return cls(str(path), s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, s.st_dev)


def _stamps(path: str | Path) -> tuple[FileStamp, ...]:
    out = []
    for p in _expand(path):
        for q in _tree_files(p):
            try:
                out.append(FileStamp.of(q))
            except FileNotFoundError:
                continue
    return tuple(out)


@dataclass(frozen=True)
class InputFingerprint:
    """An input as the run read it: every file's :class:`FileStamp` and the content hash.

    Attributes
    ----------
    path
        The file, folder or glob pattern configured.
    stamps
        One per file (a folder's files, a pattern's matches), in sorted order.
    sha256
        :func:`hash_input`'s hash (recorded in ``manifest.json`` and the run id).
    entries
        How many files or folders the path names (``files`` in the manifest).
    """

    path: str
    stamps: tuple[FileStamp, ...]
    sha256: str
    entries: int

    def manifest(self) -> dict[str, str]:
        """The manifest's ``{"path", "sha256", "files"}`` (as :func:`hash_input`)."""
        return {"path": self.path, "sha256": self.sha256, "files": str(self.entries)}

    def changes(self) -> list[str]:
        """What differs now from when the input was fingerprinted (empty: unchanged)."""
        before = {s.path: s for s in self.stamps}
        now = {s.path: s for s in _stamps(self.path)}
        out = []
        for p in sorted(before.keys() - now.keys()):
            out.append(f"{p} was removed")
        for p in sorted(now.keys() - before.keys()):
            out.append(f"{p} appeared")
        for p in sorted(before.keys() & now.keys()):
            a, b = before[p], now[p]
            if (a.inode, a.device) != (b.inode, b.device):
                out.append(f"{p} was replaced by another file")
            elif a.size != b.size:
                out.append(f"{p} changed size ({a.size:,} → {b.size:,} bytes)")
            elif a.mtime_ns != b.mtime_ns:
                out.append(f"{p} was modified ({_when(a.mtime_ns)} → {_when(b.mtime_ns)})")
            elif a.ctime_ns != b.ctime_ns:
                out.append(f"{p} was rewritten or its attributes changed (change time {_when(a.ctime_ns)} → "
                           f"{_when(b.ctime_ns)})")
        return out


def _when(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat(timespec="microseconds")


def fingerprint_input(path: str | Path, *, name: str | None = None) -> InputFingerprint:
    """Fingerprint an input before it is read: file stamps, then the content hash.

    Raises
    ------
    InputError
        The input changed while it was being hashed (``name`` labels it).
    """
    stamps = _stamps(path)
    paths = _expand(path)
    fp = InputFingerprint(str(path), stamps, sha256_tree(paths), len(paths))
    moved = fp.changes()
    if moved:
        raise InputError([Problem(f"{name or 'an input'} changed while it was being read: {m}; let whatever writes "
                                  f"it finish, then run again", file=path) for m in moved])
    return fp


def verify_inputs(fingerprints: Mapping[str, InputFingerprint]) -> None:
    """Check that no input changed since it was fingerprinted (stamps only: no re-hashing).

    Raises
    ------
    InputError
        One problem per changed file, naming the input and the file: the outputs were
        computed from contents the manifest could not name, so nothing may be published.
    """
    problems = []
    for name, fp in fingerprints.items():
        for m in fp.changes():
            problems.append(Problem(f"{name} changed while the run was reading it: {m}. Nothing was published; "
                                    f"run again once the file is final", file=fp.path))
    if problems:
        raise InputError(problems)


def package_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour decides the output bytes."""
    from importlib.metadata import version

    return {m: version(m) for m in ("numpy", "pandas", "xarray", "dask", "pyarrow")}
