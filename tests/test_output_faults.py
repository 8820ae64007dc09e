"""Runs killed anywhere (SIGKILL, a real subprocess), and two runs into one output folder.

``--out`` must always end up holding the old output or the complete new one, and the next
run (or ``panen report``) must leave nothing else beside it. The kills inside the publish
step land deterministically through the ``PANEN_TEST_PAUSE_AT`` hook (the run stops
itself at the named point); the others at random times.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.infra.outdir import OutputLock, recover

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")

#: Seed of the random kill times (``PANEN_FAULT_SEED`` to replay a failure).
SEED = int(os.environ.get("PANEN_FAULT_SEED", "20241"))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The small region with an area-yield config (no grids: a quick run) and a finished output to replace."""
    d = tmp_path_factory.mktemp("faults")
    generate_demo_region(d / "data", n_districts=8, n_farmers=1500)
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg.pop("adjuster")
    cfg["products"] = [p for p in cfg["products"] if p["id"] == "yield"]
    cfg["inputs"] = {k: {**v, "path": v["path"].replace("../demo_data/", "data/")}
                     for k, v in cfg["inputs"].items() if k in ("districts", "yields", "policies")}
    cfg["output"]["dir"] = "out"
    # the output folder's own guarantees, with nothing else beside it: no settlement store. The
    # same kills with the store on (its batch and the folder kept consistent) are in
    # tests/test_run_settlement_cases.py
    cfg["settlement"] = False
    (d / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(d / "run.yaml"), "--out", str(d / "template"), "--quiet"]) == 0
    return d


def files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def old_output(project: Path, parent: Path) -> tuple[Path, dict[str, str]]:
    """A previous run's output at ``parent/out``, marked so that it cannot pass for the new one."""
    out = parent / "out"
    shutil.copytree(project / "template", out)
    (out / "OLD").write_text("the previous output")
    return out, files(out)


def state(out: Path, old: dict[str, str]) -> str:
    """``old`` or ``new`` (complete: every file its manifest lists, with that hash, and the report); else fail."""
    assert out.is_dir(), f"{out} is missing"
    now = files(out)
    if now == old:
        return "old"
    manifest = json.loads((out / "manifest.json").read_text())
    assert "OLD" not in now, f"{out} mixes the old and the new output: {sorted(now)}"
    for name, digest in manifest["outputs"].items():
        assert now.get(name) == digest, f"{out}/{name} is missing or not what the manifest says"
    assert "report.html" in now
    return "new"


def beside(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir())


def start(project: Path, out: Path, *, pause: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANEN_")}
    if pause:
        env["PANEN_TEST_PAUSE_AT"] = pause
    return subprocess.Popen([sys.executable, "-m", "panen.engine.cli", "run", str(project / "run.yaml"), "--out",
                             str(out), "--force", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


class Lines:
    """A subprocess's stderr, read by a thread (so that waiting for a line can time out)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.seen, self._q = proc, [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._q.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; stderr so far:\n{''.join(self.seen)}")

    def rest(self) -> str:
        self.proc.wait(timeout=120)
        while (line := self._q.get(timeout=10)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def recovered(out: Path) -> list[str]:
    """What the next run does first, under the folder's lock."""
    with OutputLock(out):
        return recover(out)


# --------------------------------------------------------------------------- kills at the publish step's points
#: point → what --out holds right after the kill (None: nothing) and after the next run's recovery
POINTS = {
    "locked": ("old", "old"),      # folder locked, nothing read yet
    "staged": ("old", "old"),      # new output complete in the staging folder, inputs not yet verified
    "publish": (None, "old"),      # old output moved aside, the new one not yet in place
    "published": ("new", "new"),   # new output in place, the old one not yet removed
}


def test_a_run_killed_at_each_point_of_publishing_leaves_the_old_or_the_complete_new_output(project, tmp_path):
    runs = {}
    try:
        for point in POINTS:  # in parallel, each into its own folder
            (tmp_path / point).mkdir()
            out, old = old_output(project, tmp_path / point)
            proc = start(project, out, pause=point)
            runs[point] = (out, old, proc, Lines(proc))
        for point, (out, old, proc, lines) in runs.items():
            lines.wait_for(rf"test pause at {point} \(pid {proc.pid}\)")
            kill(proc)
    finally:
        for _, _, proc, _ in runs.values():
            kill(proc)
    for point, (out, old, proc, _) in runs.items():
        before, after = POINTS[point]
        assert proc.returncode == -signal.SIGKILL
        if before is None:
            assert not out.exists() and f".out.old-{proc.pid}" in beside(out), point
        else:
            assert state(out, old) == before, point
        notes = recovered(out)
        assert state(out, old) == after, point
        assert beside(out) == ["out"], (point, notes)  # staging, old and lock files all gone
        assert (point == "publish") == any("restored the previous output" in n for n in notes), (point, notes)


def test_panen_report_rolls_back_a_publish_that_was_killed_between_the_renames(project, tmp_path, capsys):
    out, old = old_output(project, tmp_path)
    proc = start(project, out, pause="publish")
    try:
        Lines(proc).wait_for("test pause at publish")
    finally:
        kill(proc)
    assert not out.exists()
    assert main(["report", str(out)]) == 0
    assert "restored the previous output" in capsys.readouterr().err
    assert (out / "OLD").exists() and {k: v for k, v in files(out).items() if k not in ("report.html", "districts.gpkg")} \
        == {k: v for k, v in old.items() if k not in ("report.html", "districts.gpkg")}
    assert beside(out) == ["out"]


def test_an_interruption_between_the_renames_puts_the_old_output_back_at_once(project, tmp_path, monkeypatch):
    from panen.engine.config import load_config
    from panen.engine.infra import staging
    from panen.engine.pipeline.run import run_batch

    out, old = old_output(project, tmp_path)

    def interrupt(point):
        if point == "publish":
            assert not out.exists()  # between the renames
            raise KeyboardInterrupt

    monkeypatch.setattr(staging, "pause_point", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_batch(load_config(project / "run.yaml"), out, force=True)
    assert state(out, old) == "old"
    assert beside(out) == ["out"]


# --------------------------------------------------------------------------- kills at random times
def test_runs_killed_at_random_times_leave_the_old_or_the_complete_new_output(project, tmp_path):
    rng = random.Random(SEED)
    delays = sorted(rng.uniform(0.5, 12.0) for _ in range(6))  # six runs in parallel take ~10 s here
    procs = []
    try:
        for i, delay in enumerate(delays):  # in parallel, each into its own folder
            folder = tmp_path / f"k{i}"
            folder.mkdir()
            out, old = old_output(project, folder)
            procs.append((delay, out, old, start(project, out)))
        t0 = time.monotonic()
        for delay, _, _, proc in procs:
            time.sleep(max(0.0, t0 + delay - time.monotonic()))
            kill(proc)
    finally:
        for *_, proc in procs:
            kill(proc)
    seen = []
    for delay, out, old, proc in procs:
        where = f"killed after {delay:.2f} s (PANEN_FAULT_SEED={SEED}), exit {proc.returncode}"
        if out.exists():
            seen.append(state(out, old))
        else:
            seen.append("missing")
        recovered(out)
        assert state(out, old) in ("old", "new"), where
        assert beside(out) == ["out"], where
    # the mix of outcomes depends on the machine's speed; each one was checked
    print("killed at", [f"{d:.1f}s" for d, *_ in procs], "found --out:", seen)


def test_the_next_real_run_after_a_kill_takes_the_stale_lock_rolls_back_and_publishes(project, tmp_path):
    out, old = old_output(project, tmp_path)
    proc = start(project, out, pause="publish")
    try:
        Lines(proc).wait_for("test pause at publish")
    finally:
        kill(proc)
    lock = json.loads((tmp_path / ".out.lock").read_text())
    assert lock["pid"] == proc.pid  # its lock file stays; the kernel dropped the lock itself
    assert sorted(beside(out)) == sorted([".out.lock", f".out.old-{proc.pid}", f".out.staging-{proc.pid}"])
    nxt = start(project, out)
    err = Lines(nxt).rest()
    assert nxt.returncode == 0, err
    assert "restored the previous output" in err
    assert state(out, old) == "new"
    assert beside(out) == ["out"]


# --------------------------------------------------------------------------- two runs into one folder
def test_a_second_run_is_refused_while_the_first_holds_the_folder_even_mid_publish(project, tmp_path, capsys):
    out, old = old_output(project, tmp_path)
    first = start(project, out, pause="publish")
    lines = Lines(first)
    try:
        lines.wait_for("test pause at publish")
        assert not out.exists()  # the window a second run must not "recover"
        holder = json.loads((tmp_path / ".out.lock").read_text())
        assert main(["run", str(project / "run.yaml"), "--out", str(out), "--force", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"in use by another panen run (PID {first.pid}, started {holder['started']}" in err
        assert main(["report", str(out)]) == 2
        assert not out.exists() and f".out.old-{first.pid}" in beside(out)  # the second run touched nothing
        os.killpg(first.pid, signal.SIGCONT)
        rest = lines.rest()
    finally:
        kill(first)
    assert first.returncode == 0, rest
    assert state(out, old) == "new"
    assert beside(out) == ["out"]


def test_two_runs_started_together_never_both_publish_silently(project, tmp_path):
    out, old = old_output(project, tmp_path)
    runs = [start(project, out), start(project, out)]
    errs = [Lines(p).rest() for p in runs]
    codes = [p.returncode for p in runs]
    assert 0 in codes and set(codes) <= {0, 2}, (codes, errs)
    for code, err in zip(codes, errs):
        if code == 2:  # refused, naming the run that holds the folder
            other = runs[1 - codes.index(2)].pid
            assert f"in use by another panen run (PID {other}," in err, err
    assert state(out, old) == "new"
    assert beside(out) == ["out"]
