"""Output folders that appear whole or not at all.

A run writes into a hidden sibling staging folder; :func:`publish` moves it into place
with one rename (replacing an existing folder only after the new one is complete). A
failure anywhere before that removes the staging folder: nothing half-written is left.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["discard", "new_stage", "publish"]


def new_stage(out_dir: Path) -> Path:
    """An empty staging folder beside ``out_dir`` (``.NAME.staging-PID``)."""
    stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def publish(stage: Path, out_dir: Path) -> None:
    """Move a complete staging folder to ``out_dir``, replacing what was there."""
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        out_dir.rename(old)
        stage.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        stage.rename(out_dir)


def discard(stage: Path) -> None:
    """Remove a staging folder after a failure."""
    shutil.rmtree(stage, ignore_errors=True)
