"""The output folder of a run: which folders ``--out`` may name, one run at a time, and
what a killed run left behind.

A run's outputs are staged in ``.NAME.staging-PID`` beside ``--out DIR`` and published by
:func:`panen.engine.infra.staging.publish`: the old folder is moved aside to
``.NAME.old-PID``, the staging folder is renamed to ``DIR``, the old folder is removed. A
run killed anywhere leaves at most those two folders. The next run into ``DIR`` (or
``panen report DIR``) takes the folder's lock and then :func:`recover` rolls back: the
moved-aside old output is put back when its replacement never landed, and every other
leftover is removed. A complete staging folder is never published by someone else: the
run that built it did not finish (its exit code said so), and the same inputs give the
same bytes when it is run again.

Rules for ``DIR`` (:func:`check_out_dir`, :func:`check_replaceable`):

- it is not, and does not contain, an input, the config's folder, the working
  directory, the home directory or ``/`` (symlinks resolved), nor lies inside an input
  folder or under a regular file;
- an existing ``DIR`` is replaced only with ``force``, and only when a previous panen run
  wrote it (its ``manifest.json`` names a ``run_id`` and ``panen_version``) or it is empty.

:class:`OutputLock` is an exclusive lock (``flock``) on ``.NAME.lock`` beside ``DIR``,
holding the owner's PID, host and start time; a second run is refused with those. The
kernel drops the lock when its process dies, so a killed run's lock is simply taken over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from panen.engine.errors import InputError, Problem

__all__ = ["OutputLock", "Protected", "check_out_dir", "check_replaceable", "fsync_dir", "is_panen_output", "leftovers",
           "pause_point", "recover"]


@dataclass(frozen=True)
class Protected:
    """A path ``--out`` must not be or contain (``inside``: nor lie inside it, for input folders).

    ``what`` names it in the refusal (``the input inputs.policies``, ``the working directory``).
    """

    what: str
    path: Path
    inside: bool = False


def _resolve(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.fspath(path))).resolve()


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_dir(out_dir: str | os.PathLike[str], protected: Iterable[Protected], *,
                  option: str = "--out") -> Path:
    """The resolved output folder, or :class:`InputError` when it must not be written.

    Nothing is created or changed. Refused: an empty name (an unset shell variable), a
    folder that is or contains a protected path (an input, the config's folder, the
    working directory, the home directory, ``/``), one inside a protected input folder,
    one that is a file or lies under one.
    """
    if not os.fspath(out_dir).strip():
        raise InputError(Problem(f"{option} is empty (an unset shell variable?): name the output folder"))
    out = _resolve(out_dir)
    given = os.fspath(out_dir)
    where = option + (f" (given as {given})" if given != str(out) else "")
    for parent in reversed(out.parents):
        if parent.exists() and not parent.is_dir():
            raise InputError(Problem(f"{where} lies under {parent}, which is a file, not a folder", file=out))
    if out.exists() and not out.is_dir():
        raise InputError(Problem(f"{where} is a file, not a folder", file=out))
    resolved = [(p, _resolve(p.path)) for p in protected]
    # the plainest reason first: "is the working directory" before "contains an input"
    for p, target in sorted(resolved, key=lambda pt: pt[1] != out):
        if _within(target, out):
            relation = "is" if target == out else f"contains {target}, which is"
            raise InputError(Problem(f"{where} {relation} {p.what}; replacing it would delete it: choose another "
                                     f"output folder", file=out))
        if p.inside and _within(out, target):
            raise InputError(Problem(f"{where} lies inside {p.what} ({target}); writing there would change the "
                                     f"input: choose another output folder", file=out))
    return out


def is_panen_output(folder: Path) -> bool:
    """Whether ``folder`` holds a ``manifest.json`` naming a ``run_id`` and ``panen_version``."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "run_id" in manifest and "panen_version" in manifest


def check_replaceable(out: Path, *, force: bool, option: str = "--out") -> None:
    """Refuse an existing ``out`` without ``force``, and with it unless panen wrote it or it is empty."""
    if not out.exists():
        return
    if not force:
        raise InputError(Problem(f"output folder {out} already exists; pass --force to replace it", file=out))
    if not out.is_dir():
        raise InputError(Problem(f"{option} {out} is a file, not a folder", file=out))
    if is_panen_output(out):
        return
    entries = sorted(p.name for p in out.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
        raise InputError(Problem(
            f"--force replaces only a folder that a previous panen run wrote (its manifest.json names a run_id "
            f"and panen_version) or an empty folder; this one holds other files ({shown}): move them away or "
            f"choose another output folder", file=out))


# --------------------------------------------------------------------------- leftovers of killed runs
def _leftover_pattern(out: Path) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(out.name)}\.(staging|old)-(\d+)$")


def leftovers(out: Path) -> list[Path]:
    """The staging and moved-aside folders that runs into ``out`` left beside it."""
    if not out.parent.is_dir():
        return []
    pattern = _leftover_pattern(out)
    return sorted(p for p in out.parent.iterdir() if pattern.match(p.name))


def recover(out: Path) -> list[str]:
    """Roll back what runs killed before they finished left beside ``out``; call with its lock held.

    An old output moved aside (``.NAME.old-PID``) whose replacement never landed goes back
    to ``out``; every other leftover (staging folders, old outputs already replaced) is
    removed. Returns one sentence per action, for the run's notes.
    """
    found = leftovers(out)
    olds = sorted((p for p in found if ".old-" in p.name), key=lambda p: p.stat().st_mtime_ns)
    notes = []
    if olds and not os.path.lexists(out):
        keep = olds.pop()  # with the lock there is one; else the newest
        keep.rename(out)
        fsync_dir(out.parent)
        notes.append(f"restored the previous output {out} from {keep.name}: a run was stopped after moving it "
                     f"aside and before its replacement landed")
    for p in found:
        if p.exists() and p != out:
            try:
                shutil.rmtree(p)
            except OSError as exc:
                notes.append(f"could not remove {p} left by an unfinished run: {exc}")
                continue
            notes.append(f"removed {p.name} left beside {out.name} by a run that did not finish")
    return notes


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the lock
try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True
except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True


class OutputLock:
    """Exclusive lock on the output folder ``out``: ``.NAME.lock`` beside it (a context manager).

    The lock file holds the owner's PID, host and start time, named when another run is
    refused. The lock is the kernel's (``flock``): it goes with its process, so the lock
    file of a killed run is taken over. The file is removed on release; a run that opened
    it just before then notices it locked a removed file and tries again.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.path = self.out.parent / f".{self.out.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            existed = os.path.lexists(self.path)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(Problem(f"cannot create the lock file {self.path} beside the output folder: "
                                         f"{exc.strerror}", file=self.path)) from None
            try:
                locked = _try_lock(fd)
            except OSError as exc:  # ENOLCK, EOPNOTSUPP: a file system without locks
                os.close(fd)
                if not existed:
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)
                raise InputError(Problem(f"cannot lock {self.path} ({exc.strerror}): the output folder's file system "
                                         f"does not support locks; choose an output folder on a local disk",
                                         file=self.path)) from None
            if not locked:
                holder = _read_holder(fd)
                for _ in range(20):  # it may have locked the file a moment ago and not yet written itself in
                    if "PID not yet written" not in holder:
                        break
                    time.sleep(0.05)
                    holder = _read_holder(fd)
                os.close(fd)
                raise InputError(Problem(
                    f"output folder {self.out} is in use by another panen run ({holder}; lock file {self.path}): "
                    f"wait for it to finish or choose another output folder", file=self.out))
            try:
                current = os.stat(self.path)
                mine = os.fstat(fd)
                same = (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file its previous owner had just removed: start again
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else ""}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(holder) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it: see the class docstring
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "its PID not yet written"
    host = f" on {info['host']}" if info.get("host") and info["host"] != socket.gethostname() else ""
    cmd = f", {info['command']!r}" if info.get("command") else ""
    return f"PID {info['pid']}{host}, started {info.get('started', '?')}{cmd}"


# --------------------------------------------------------------------------- test hook
def pause_point(name: str) -> None:
    """Fault-injection hook: stop this process at ``name`` when ``PANEN_TEST_PAUSE_AT`` lists it.

    The process prints ``panen: test pause at NAME (pid N)`` to stderr and stops itself
    (SIGSTOP); a test then kills it there or lets it go on (SIGCONT). Points: ``locked``
    (output folder locked and recovered, nothing read yet), ``staged`` (outputs complete
    in the staging folder, inputs not yet verified), ``recorded`` (a run with a settlement
    store: its batch recorded pending, nothing published yet), ``publish`` (between moving the old
    output aside and renaming the new one into place), ``published`` (new output in
    place, old one not yet removed), ``published_batch`` (published, the batch not yet
    committed). Unset, this costs one environment lookup.
    """
    wanted = os.environ.get("PANEN_TEST_PAUSE_AT")
    if not wanted or name not in wanted.split(",") or not hasattr(signal, "SIGSTOP"):
        return
    print(f"panen: test pause at {name} (pid {os.getpid()})", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
