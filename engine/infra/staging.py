"""Output folders that appear whole or not at all.

A run writes into a hidden sibling staging folder; :func:`publish` moves it into place
(replacing an existing folder only after the new one is complete). A failure anywhere
before that removes the staging folder: nothing half-written is left. A run *killed*
mid-way leaves the staging folder, or the old output moved aside, behind;
:func:`panen.engine.infra.outdir.recover` rolls them back on the next run.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from panen.engine.infra.outdir import fsync_dir, pause_point

__all__ = ["discard", "new_stage", "publish"]


def new_stage(out_dir: Path) -> Path:
    """An empty staging folder beside ``out_dir`` (``.NAME.staging-PID``)."""
    stage = out_dir.parent / f".{out_dir.name}.staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def publish(stage: Path, out_dir: Path) -> None:
    """Move a complete staging folder to ``out_dir``, replacing what was there.

    Two renames in one folder: the old output to ``.NAME.old-PID``, the staging folder to
    ``out_dir``; then the old output is removed. An exception between the renames (Ctrl-C)
    puts the old output back at once; killed there, ``out_dir`` is missing until the next
    run or ``panen report`` puts the old output back
    (:func:`~panen.engine.infra.outdir.recover`).
    """
    _fsync_tree(stage)
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        out_dir.rename(old)
        try:
            pause_point("publish")
            stage.rename(out_dir)
        except BaseException:  # e.g. Ctrl-C between the renames: put the old output back now
            if not os.path.lexists(out_dir):
                old.rename(out_dir)
            raise
        fsync_dir(out_dir.parent)
        pause_point("published")
        shutil.rmtree(old, ignore_errors=True)
    else:
        pause_point("publish")
        stage.rename(out_dir)
        fsync_dir(out_dir.parent)
        pause_point("published")


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk (a power cut after publishing
    must not leave a manifest or report of zero bytes)."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            except OSError as exc:  # where a read-only handle cannot be flushed (Windows): the writer did
                if exc.errno not in (errno.EBADF, errno.EINVAL):
                    raise
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def discard(stage: Path) -> None:
    """Remove a staging folder after a failure."""
    shutil.rmtree(stage, ignore_errors=True)
