"""Content hashes and environment facts for ``manifest.json``.

A run is identified by what went in (the config's bytes and every input's content), not
by where the files lie, so the same inputs give the same run id anywhere.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

__all__ = ["hash_input", "package_versions", "sha256_file", "sha256_tree"]


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes [hex], read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(paths: list[Path]) -> str:
    """One SHA-256 over files and folders: each file's relative name and hash, in sorted order."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in files:
            h.update(str(q.relative_to(p) if p.is_dir() else q.name).encode())
            h.update(sha256_file(q).encode())
    return h.hexdigest()


def hash_input(path: str | Path) -> dict[str, str]:
    """``{"path", "sha256", "files"}`` of an input: a file, a folder, or a glob pattern."""
    s = str(path)
    paths = [Path(p) for p in sorted(glob.glob(s))] if any(c in s for c in "*?[") else [Path(s)]
    return {"path": s, "sha256": sha256_tree(paths), "files": str(len(paths))}


def package_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour decides the output bytes."""
    from importlib.metadata import version

    return {m: version(m) for m in ("numpy", "pandas", "xarray", "dask", "pyarrow")}
