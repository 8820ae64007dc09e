"""The output folder of a run or backtest: checked, locked and recovered before anything is read.

:func:`output_folder` wires the rules of :mod:`panen.engine.infra.outdir` to a config:
the paths ``--out`` must not be or contain are the config's inputs (each file a pattern
matches; an input folder also may not hold the output), the wording and loss-reference
files, the config's folder, the working directory, the home directory and ``/``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from panen.engine.infra.outdir import (OutputLock, Protected, check_out_dir, check_replaceable, pause_point,
                                       recover)
from panen.engine.pipeline.steps import input_paths

__all__ = ["OutputFolder", "output_folder", "protected_paths"]


@dataclass
class OutputFolder:
    """A checked, locked output folder: ``path`` (resolved) and what recovery did (``recovered``)."""

    path: Path
    recovered: list[str] = field(default_factory=list)


def protected_paths(config, extra: dict[str, str | Path] | None = None) -> list[Protected]:
    """What an output folder must not be or contain, for ``config`` (see the module docstring)."""
    out: list[Protected] = []
    for key, value in {**input_paths(config), **(extra or {})}.items():
        what = key if key == "loss_reference" else f"the input inputs.{key}"
        s = str(value)
        matches = sorted(glob.glob(s)) if any(c in s for c in "*?[") else [s]
        for m in matches:
            out.append(Protected(what, Path(m), inside=Path(m).is_dir()))
    if getattr(config, "adjuster_path", None) is not None:
        out.append(Protected("the named-peril wording (adjuster.wording)", Path(config.adjuster_path)))
    if getattr(config, "path", None) is not None:
        out.append(Protected("the config's folder", Path(config.path).parent))
    out.append(Protected("the working directory", Path.cwd()))
    out.append(Protected("the home directory", Path.home()))
    out.append(Protected("the root folder", Path(os.sep)))
    return out


@contextlib.contextmanager
def output_folder(config, out_dir: str | Path, *, force: bool,
                  extra: dict[str, str | Path] | None = None) -> Iterator[OutputFolder]:
    """Check ``out_dir``, lock it, roll back what killed runs left, and check it may be replaced.

    Yields an :class:`OutputFolder`; the lock is held until the block ends. Folders
    created to hold the lock file are removed again when nothing was published.

    Raises
    ------
    InputError
        ``out_dir`` is refused (:func:`~panen.engine.infra.outdir.check_out_dir`), another
        run holds its lock (named: PID, start time), or it exists and may not be replaced
        (:func:`~panen.engine.infra.outdir.check_replaceable`). Nothing is touched then.
    """
    out = check_out_dir(out_dir, protected_paths(config, extra))
    created = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with OutputLock(out):
            folder = OutputFolder(out, recover(out))
            for note in folder.recovered:
                warnings.warn(note, UserWarning, stacklevel=3)
            check_replaceable(out, force=force)
            pause_point("locked")
            yield folder
    finally:
        if not out.exists():
            for p in created:  # deepest first
                with contextlib.suppress(OSError):
                    p.rmdir()
