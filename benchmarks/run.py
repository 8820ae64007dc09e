"""Benchmark: a whole seasonal batch (``panen run``) at insurer scale, step by step.

Generates the synthetic demo region (``panen.datasets.synthetic``, 36 districts, a wet
season of daily rainfall and NDVI) with ``--farmers`` farmers (default 1,000,000), each
holding the four demo covers — rainfall index, NDVI, area yield and AUTP — so the register
has four policies per farmer, and the AUTP assessments to go with them. Then, each in a
fresh child process so that peak memory is that of the step alone:

1. **baseline**: a bare pyarrow pass over the same data volume — read ``policies.csv``
   (``pyarrow.csv``) and write it back as lz4 Parquet: the I/O floor of any batch that
   must read the register and write one row per policy;
2. **panen run**: :func:`panen.engine.pipeline.run.run_batch` on ``configs/demo.yaml`` pointed at
   the region (read, validate, adjust AUTP, zonal means, triggers, ledger, index-vs-AUTP
   comparison, every output file and the HTML report).

Prints wall time [s] (inside the child, after imports), peak RSS [GiB]
(``ru_maxrss``), the ratio run / baseline and the run's own step timings (the
manifest's, plus the report).

Data are generated once under ``benchmarks/_data/run_<farmers>/`` (gitignored).
Run ``python benchmarks/run.py [--farmers N]``. This is a script that prints figures,
not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "_data"


def region(farmers: int) -> tuple[Path, Path]:
    """The generated region (made once) and a run config pointing at it (written every time
    from the current ``configs/demo.yaml``, so the benchmark never runs a stale config)."""
    import yaml

    from panen.datasets.synthetic import generate_demo_region

    folder = DATA / f"run_{farmers}"
    done = folder / "data" / ".generated"
    if not done.exists():
        t0 = time.perf_counter()
        generate_demo_region(folder / "data", n_farmers=farmers)
        done.touch()
        print(f"generated {folder} in {time.perf_counter() - t0:.1f} s")
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for spec in cfg["inputs"].values():
        spec["path"] = str(folder / "data" / Path(spec["path"]).name)
    cfg["adjuster"]["wording"] = str(REPO / "configs" / "autp.yaml")
    cfg_path = folder / "run.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder, cfg_path


def child_baseline(folder: Path) -> dict:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table = pcsv.read_csv(folder / "data" / "policies.csv")
    pq.write_table(table, folder / "baseline.parquet", compression="lz4")
    return {"wall_s": time.perf_counter() - t0, "rows": table.num_rows}


def child_run(folder: Path, cfg_path: Path) -> dict:
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    config = load_config(cfg_path)
    t0 = time.perf_counter()
    result = run_batch(config, folder / "out", force=True, progress=False)
    wall = time.perf_counter() - t0
    # result.timings also holds the report, timed after manifest.json was written
    return {"wall_s": wall, "timings_s": result.timings, "counts": result.counts}


def _child(kind: str, farmers: int) -> dict:
    cmd = [sys.executable, __file__, "--farmers", str(farmers), "--child", kind]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"benchmark step {kind!r} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--farmers", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["baseline", "run"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    folder, cfg_path = region(args.farmers)
    if args.child:
        out = child_baseline(folder) if args.child == "baseline" else child_run(folder, cfg_path)
        out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(out))
        return 0

    print(f"panen run benchmark: {args.farmers:,} farmers × 4 covers; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    base = _child("baseline", args.farmers)
    run = _child("run", args.farmers)
    gib = 2**30
    print(f"  baseline: read policies.csv + write Parquet (pyarrow)  {base['wall_s']:7.2f} s   "
          f"peak {base['maxrss'] / gib:.2f} GiB   ({base['rows']:,} rows)")
    print(f"  panen run (every output and the report)             {run['wall_s']:7.2f} s   "
          f"peak {run['maxrss'] / gib:.2f} GiB   = {run['wall_s'] / base['wall_s']:.1f} × the baseline")
    print("  steps [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in run["timings_s"].items()))
    c = run["counts"]
    print(f"  {c['ledger_rows']:,} ledger rows, {c['policies_paid']:,} paid, {c['plots_assessed']:,} AUTP plots "
          f"assessed; load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
