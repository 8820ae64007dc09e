"""Hostile ``--out`` folders, scheduler settings and inputs changing mid-run.

Every refused case exits 2 with a message that says what is wrong, and leaves every file
in the sandbox (inputs, config, previous outputs, home and working directory) exactly as
it was: no lock file, no staging folder, no created folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.config import load_config
from panen.engine.infra.outdir import OutputLock
from panen.engine.pipeline.run import run_batch

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    generate_demo_region(d / "data", n_districts=8, n_farmers=1500)
    return d


def write_config(proj: Path, *, full: bool) -> Path:
    """The demo config over ``proj/data``: every product and the adjuster (``full``), else area yield only."""
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for k in cfg["inputs"]:
        cfg["inputs"][k]["path"] = cfg["inputs"][k]["path"].replace("../demo_data/", "data/")
    cfg["output"]["dir"] = "out"
    if full:
        (proj / "wording").mkdir(exist_ok=True)
        shutil.copy(REPO / "configs" / "autp.yaml", proj / "wording" / "autp.yaml")
        cfg["adjuster"]["wording"] = "wording/autp.yaml"
    else:
        cfg.pop("adjuster")
        cfg["products"] = [p for p in cfg["products"] if p["id"] == "yield"]
        cfg["inputs"] = {k: v for k, v in cfg["inputs"].items() if k in ("districts", "yields", "policies")}
    p = proj / ("run.yaml" if full else "yield.yaml")
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def previous(region, tmp_path_factory) -> Path:
    """A finished run's output folder (area yield only: quick), copied into sandboxes as 'previous output'."""
    proj = tmp_path_factory.mktemp("previous")
    shutil.copytree(region / "data", proj / "data")
    return run_batch(load_config(write_config(proj, full=False)), proj / "out").out_dir


@dataclass
class Sandbox:
    root: Path      # everything the test may touch lives here
    proj: Path      # config folder = working directory, with data/ and wording/
    config: Path    # every product and the adjuster
    quick: Path     # area yield only
    home: Path
    prev: Path      # a previous run's output folder (proj/out)


@pytest.fixture
def box(region, previous, tmp_path, monkeypatch) -> Sandbox:
    proj = tmp_path / "proj"
    shutil.copytree(region / "data", proj / "data")
    config, quick = write_config(proj, full=True), write_config(proj, full=False)
    shutil.copytree(previous, proj / "out")
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "todo.txt").write_text("keep me")
    monkeypatch.setenv("HOME", str(home))  # never the real home: some cases aim --out at it
    monkeypatch.chdir(proj)
    monkeypatch.delenv("PANEN_SCHEDULER", raising=False)
    monkeypatch.delenv("PANEN_SCHEDULER_TIMEOUT", raising=False)
    return Sandbox(tmp_path, proj, config, quick, home, proj / "out")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones too) → content hash, link target or 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr); argparse's refusals exit 2 too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------- refused, nothing touched
def _link(box: Sandbox, target: Path) -> Path:
    link = box.root / "link"
    link.symlink_to(target, target_is_directory=True)
    return link


def _plain_folder(box: Sandbox) -> Path:
    d = box.root / "results"
    d.mkdir()
    (d / "analysis.xlsx").write_text("someone's work")
    return d


def _fake_manifest(box: Sandbox, text: str) -> Path:
    d = box.root / "fake"
    d.mkdir()
    (d / "manifest.json").write_text(text)
    (d / "data.csv").write_text("a,b\n1,2\n")
    return d


def _work_dir(box: Sandbox) -> Path:
    work = box.root / "work" / "here"
    work.mkdir(parents=True)
    (work / "draft.txt").write_text("unsaved")
    os.chdir(work)
    return work


#: (id, setup → argv, expected message); every case exits 2
REFUSED = [
    ("empty --out (unset variable)", lambda b: ["run", b.config, "--out", "", "--force"],
     r"--out: the folder name is empty \(an unset shell variable\?\)"),
    ("blank --out", lambda b: ["run", b.config, "--out", "  ", "--force"], r"folder name is empty"),
    ("the data folder", lambda b: ["run", b.config, "--out", "data", "--force"],
     r"--out \(given as data\) contains .*, which is the input inputs\.\w+; replacing it would delete it"),
    ("an input file", lambda b: ["run", b.config, "--out", "data/policies.csv", "--force"],
     r"data/policies\.csv: --out \(given as data/policies\.csv\) is a file, not a folder"),
    ("an input folder (zarr store)", lambda b: ["run", b.config, "--out", "data/rainfall.zarr", "--force"],
     r"is the input inputs\.rainfall; replacing it would delete it"),
    ("inside an input folder", lambda b: ["run", b.config, "--out", "data/ndvi.zarr/results"],
     r"lies inside the input inputs\.ndvi .*writing there would change the input"),
    ("the config's folder (.)", lambda b: ["run", b.config, "--out", ".", "--force"],
     r"--out \(given as \.\) is the config's folder"),
    ("the config's folder, absolute", lambda b: ["run", b.config, "--out", b.proj, "--force"],
     r"--out is the config's folder"),
    ("a folder holding the config's", lambda b: ["run", b.config, "--out", b.root, "--force"],
     r"--out contains .*, which is (the config's folder|the input)"),
    ("the working directory", lambda b: ["run", b.config, "--out", _work_dir(b), "--force"],
     r"--out is the working directory"),
    ("a folder holding the working directory", lambda b: ["run", b.config, "--out", _work_dir(b).parent, "--force"],
     r"--out contains .*here, which is the working directory"),
    ("the home directory", lambda b: ["run", b.config, "--out", b.home, "--force"], r"--out is the home directory"),
    ("a symlink to the home directory", lambda b: ["run", b.config, "--out", _link(b, b.home), "--force"],
     r"--out \(given as .*link\) is the home directory"),
    ("a symlink to the data folder", lambda b: ["run", b.config, "--out", _link(b, b.proj / "data"), "--force"],
     r"--out \(given as .*link\) contains .*, which is the input"),
    ("the root folder", lambda b: ["run", b.config, "--out", "/"], r"--out is the root folder"),
    ("the wording's folder", lambda b: ["run", b.config, "--out", b.proj / "wording", "--force"],
     r"contains .*autp\.yaml, which is the named-peril wording"),
    ("under a regular file", lambda b: ["run", b.config, "--out", "run.yaml/out"],
     r"--out \(given as run\.yaml/out\) lies under .*run\.yaml, which is a file, not a folder"),
    ("deep under a regular file", lambda b: ["run", b.config, "--out", "data/yields.csv/a/b", "--force"],
     r"lies under .*yields\.csv, which is a file"),
    ("an existing file", lambda b: ["run", b.config, "--out", b.home / "notes" / "todo.txt", "--force"],
     r"todo\.txt: --out is a file, not a folder"),
    ("a previous output without --force", lambda b: ["run", b.config, "--out", b.prev],
     r"output folder .*out already exists; pass --force to replace it"),
    ("someone's folder, --force", lambda b: ["run", b.config, "--out", _plain_folder(b), "--force"],
     r"--force replaces only a folder that a previous panen run wrote .* \(analysis\.xlsx\)"),
    ("a manifest without run_id, --force", lambda b: ["run", b.config, "--out", _fake_manifest(b, '{"a": 1}'),
                                                      "--force"], r"--force replaces only a folder"),
    ("an unreadable manifest, --force", lambda b: ["run", b.config, "--out", _fake_manifest(b, "{not json"),
                                                   "--force"], r"--force replaces only a folder"),
    ("a bad scheduler address", lambda b: ["run", b.config, "--out", b.root / "new", "--scheduler", "not-a-url"],
     r"--scheduler: not a Dask scheduler address: 'not-a-url'"),
    ("a scheduler of an unknown scheme", lambda b: ["run", b.config, "--out", b.root / "new", "--scheduler",
                                                    "http://10.0.0.5:8786"], r"unknown scheme 'http'"),
    ("a zero scheduler timeout", lambda b: ["run", b.config, "--out", b.root / "new", "--scheduler-timeout", "0"],
     r"--scheduler-timeout: not a positive number of seconds: '0'"),
    ("backtest: empty --out", lambda b: ["backtest", b.quick, "--years", "2020", "--out", ""], r"folder name is empty"),
    ("backtest: the data folder", lambda b: ["backtest", b.quick, "--years", "2020", "--out", "data", "--force"],
     r"contains .*, which is the input inputs\."),
    ("backtest: someone's folder, --force", lambda b: ["backtest", b.quick, "--years", "2020", "--out",
                                                       _plain_folder(b), "--force"], r"--force replaces only"),
    ("backtest: under a file", lambda b: ["backtest", b.quick, "--years", "2020", "--out", "yield.yaml/bt"],
     r"lies under .*yield\.yaml, which is a file"),
    ("report: empty folder name", lambda b: ["report", ""], r"folder name is empty"),
    ("report: not a panen output", lambda b: ["report", _plain_folder(b)], r"not a panen output folder"),
    ("report: under a file", lambda b: ["report", "run.yaml/out"], r"not a panen output folder"),
]


@pytest.mark.parametrize("setup, expected", [pytest.param(s, e, id=i) for i, s, e in REFUSED])
def test_a_hostile_output_folder_is_refused_and_nothing_is_touched(box, capsys, setup, expected):
    argv = setup(box)
    before = snapshot(box.root)
    code, err = cli(argv, capsys)
    assert code == 2, err
    assert re.search(expected, err), err
    assert snapshot(box.root) == before
    assert "internal error" not in err and "Traceback" not in err


def test_the_environment_s_scheduler_timeout_is_checked(box, capsys, monkeypatch):
    monkeypatch.setenv("PANEN_SCHEDULER_TIMEOUT", "soon")
    before = snapshot(box.root)
    code, err = cli(["run", box.config, "--out", box.root / "new", "--scheduler", "tcp://127.0.0.1:1"], capsys)
    assert code == 2 and "PANEN_SCHEDULER_TIMEOUT: not a positive number of seconds: 'soon'" in err
    assert snapshot(box.root) == before


def test_a_folder_another_run_holds_is_refused_naming_that_run(box, capsys):
    out = box.root / "busy"
    with OutputLock(out):
        holder = json.loads((box.root / ".busy.lock").read_text())
        before = snapshot(box.root)
        for argv in (["run", box.quick, "--out", out], ["backtest", box.quick, "--years", "2020", "--out", out]):
            code, err = cli(argv, capsys)
            assert code == 2, err
            assert f"is in use by another panen run (PID {os.getpid()}, started {holder['started']}" in err
        assert snapshot(box.root) == before
    assert not (box.root / ".busy.lock").exists()  # released and removed


def test_a_file_system_without_locks_is_refused_not_run_unlocked(box, capsys, monkeypatch):
    import errno

    from panen.engine.infra import outdir

    def no_locks(fd):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(outdir, "_try_lock", no_locks)
    before = snapshot(box.root)
    code, err = cli(["run", box.quick, "--out", box.root / "new"], capsys)
    assert code == 2 and "does not support locks" in err, err
    assert snapshot(box.root) == before


def test_report_waits_for_no_one_and_refuses_a_folder_being_published(box, capsys):
    with OutputLock(box.prev):
        before = snapshot(box.root)
        code, err = cli(["report", box.prev], capsys)
        assert code == 2 and "in use by another panen run" in err
        assert snapshot(box.root) == before
    code, err = cli(["report", box.prev], capsys)
    assert code == 0, err
    assert sorted(p.name for p in box.proj.iterdir() if p.name.startswith(".")) == []


# --------------------------------------------------------------------------- what --force may replace
def test_force_replaces_an_empty_folder_or_a_previous_output_and_leaves_nothing_beside(box, capsys):
    empty = box.root / "empty"
    empty.mkdir()
    code, err = cli(["run", box.quick, "--out", empty, "--force", "--quiet"], capsys)
    assert code == 0, err
    assert (empty / "payouts.parquet").is_file()
    old_manifest = json.loads((box.prev / "manifest.json").read_text())
    (box.prev / "marker.txt").write_text("old")
    code, err = cli(["run", box.quick, "--out", "out", "--force", "--quiet"], capsys)
    assert code == 0, err
    assert not (box.prev / "marker.txt").exists()
    assert json.loads((box.prev / "manifest.json").read_text())["run_id"] == old_manifest["run_id"]
    # beside the folders only the settlement store that recorded each batch (by default, in the
    # output folder's parent): no staging, old-output or lock leftovers
    assert sorted(p.name for p in box.root.iterdir()) == ["empty", "home", "panen-settlement.sqlite", "proj"]
    assert not [p for p in box.proj.iterdir() if p.name.startswith(".")]
    assert (box.proj / "panen-settlement.sqlite").is_file()


def test_a_refused_run_into_new_nested_folders_creates_none(box, capsys, monkeypatch):
    # the folders made to hold the lock file go again when nothing was published
    pol = box.proj / "data" / "policies.csv"
    pol.write_text(pol.read_text().replace("policy_id", "polis_id", 1))  # the register's key column is gone
    code, err = cli(["run", box.quick, "--out", box.root / "a" / "b" / "out"], capsys)
    assert code == 2, err
    assert not (box.root / "a").exists()


# --------------------------------------------------------------------------- inputs changing mid-run
def test_a_register_replaced_mid_run_fails_the_run_and_publishes_nothing(box, capsys, monkeypatch):
    from panen.engine.pipeline import steps

    register = box.proj / "data" / "policies.csv"
    original = steps.check_policies

    def check_then_replace(*args, **kwargs):
        out = original(*args, **kwargs)  # the register has been read: now a new one lands
        tmp = register.with_suffix(".new")
        tmp.write_text(register.read_text().replace(",1.", ",2.", 5))
        os.replace(tmp, register)
        return out

    monkeypatch.setattr(steps, "check_policies", check_then_replace)
    prev = snapshot(box.prev)
    code, err = cli(["run", box.quick, "--out", box.prev, "--force", "--quiet"], capsys)
    assert code == 2, err
    assert f"{register}: inputs.policies changed while the run was reading it: {register} was replaced" in err
    assert "Nothing was published" in err
    assert snapshot(box.prev) == prev
    assert not [p for p in box.proj.iterdir() if p.name.startswith(".")]


def test_an_input_rewritten_in_place_mid_run_is_caught_too(box, monkeypatch):
    from panen.engine.errors import InputError
    from panen.engine.pipeline import steps

    yields = box.proj / "data" / "yields.csv"
    original = steps.evaluate

    def evaluate_then_append(*args, **kwargs):
        with open(yields, "a") as f:  # same file (inode), new bytes
            f.write("\n")
        return original(*args, **kwargs)

    monkeypatch.setattr(steps, "evaluate", evaluate_then_append)
    with pytest.raises(InputError, match=r"inputs\.yields changed while the run was reading it: .*yields\.csv "
                                         r"changed size"):
        run_batch(load_config(box.quick), None)  # compute-only runs check too: the run id names the inputs


def test_the_manifest_records_the_hashes_taken_when_the_inputs_were_opened(box, previous):
    from panen.engine.infra.manifest import hash_input

    manifest = json.loads((previous / "manifest.json").read_text())
    for name, entry in manifest["inputs"].items():
        assert entry == hash_input(entry["path"]), name


# --------------------------------------------------------------------------- exit codes: schedulers, pipes
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_exits_2_naming_it(box, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    code, err = cli(["run", box.quick, "--out", box.root / "new", "--quiet", "--scheduler", address,
                     "--scheduler-timeout", "1"], capsys)
    assert code == 2 and f"--scheduler: cannot reach the Dask scheduler at {address}" in err, err
    assert not (box.root / "new").exists() and not (box.root / ".new.lock").exists()


def test_a_cluster_without_workers_times_out_with_exit_2_instead_of_hanging(box, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        monkeypatch.setenv("PANEN_SCHEDULER_TIMEOUT", "1")
        code, err = cli(["run", box.quick, "--out", box.root / "new", "--quiet", "--scheduler",
                         cluster.scheduler_address], capsys)
    assert code == 2, err
    assert f"the Dask scheduler at {cluster.scheduler_address} has no workers: none joined within 1 s" in err
    assert not (box.root / "new").exists()


def test_a_computation_whose_workers_all_left_fails_once_none_came_back():
    distributed = pytest.importorskip("distributed")
    import dask

    from panen.engine.errors import InputError
    from panen.engine.pipeline import steps

    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with pytest.raises(InputError, match="lost all its workers and none came back within 0.5 s"):
            steps.compute({"x": dask.delayed(sum)([1, 2])}, client=client, timeout=0.5)


def test_output_piped_to_a_reader_that_left_exits_0_quietly_with_the_run_published(box):
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # `panen run ... | head` after head has left: every write to stdout fails
    # block-buffered, as in a user's shell: the summary would fail only when flushed at exit
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED" and not k.startswith("PANEN_")}
    try:
        proc = subprocess.run([sys.executable, "-m", "panen.engine.cli", "run", str(box.quick), "--out",
                               str(box.root / "piped"), "--quiet"], stdout=write, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=box.proj, timeout=300)
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads((box.root / "piped" / "manifest.json").read_text())["run_id"]


class _LeftPipe:
    """A stdout whose reader has gone, unbuffered: the first print fails."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise OSError("not a real file")


def test_a_print_failing_on_a_pipe_whose_reader_left_exits_0(box, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdout", _LeftPipe())
    assert main(["validate", str(box.quick)]) == 0
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_that_is_not_stdout_s_is_an_internal_error(box, monkeypatch, capsys):
    from panen.engine import cli as cli_module

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a socket of ours, not the reader of stdout

    monkeypatch.setattr(cli_module, "_cmd_validate", broken)
    assert main(["validate", str(box.quick)]) == 1
    assert "internal error" in capsys.readouterr().err
