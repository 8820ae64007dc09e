"""Benchmark: a correction batch through the settlement store, end to end, against a plain batch.

On the region of ``benchmarks/run.py`` (``--farmers`` farmers × four covers = 4 × farmers
policies; default 2,500,000 farmers = 10,000,000 policies), paid per policy
(``payments_by: farmer``: one payee per farmer and product, the most payees
panen pays by), each step in a fresh child
process so that its peak memory is its own:

(a) **plain**: ``panen run`` without a settlement store (the baseline);
(b) **final**: the first final batch with a new SQLite store (every paid policy a payment);
(c) **correction**: the register with the area of 1 % of the policies (every 100th row)
    scaled by 1.1, run as ``settlement: {kind: correction, corrects: <(b)>}``: the store pays
    the top-ups and lists the recoveries. Every repeat starts from a copy of the store as
    (b) left it, so each records the same correction.

Prints wall times [s] (inside the child, after imports), the settlement step's own times
(``difference``: the run's ``settlement`` step — the due table, the store's difference and
the batch's payment table; ``record``: ``record_pending`` + ``commit``), the ratio (c)/(a),
the store file's size and its growth per batch [bytes], and peak RSS [GiB]. With
``--repeat N`` (a) and (c) run N times each, and medians are quoted.

Data are those of ``benchmarks/run.py`` (generated once under ``benchmarks/_data/``); the
corrected register is written once beside them. Run
``python benchmarks/settlement.py [--farmers N] [--repeat N]``. A script that prints
figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import region  # noqa: E402  (benchmarks/run.py: the generated region and its config)

SHARE_CHANGED = 100  # every 100th policy row: 1 %
SCALE = 1.1


def corrected_register(folder: Path) -> Path:
    """``policies.csv`` with the area of every 100th row scaled by 1.1 (made once)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    out = folder / "correction" / "policies.csv"
    if out.exists():
        return out
    out.parent.mkdir(exist_ok=True)
    source = folder / "data" / "policies.csv"
    table = pcsv.read_csv(source, convert_options=pcsv.ConvertOptions(column_types={"area_ha": pa.string()}))
    area = pc.cast(table["area_ha"], pa.float64()).to_numpy(zero_copy_only=False).copy()
    area[::SHARE_CHANGED] = (area[::SHARE_CHANGED] * SCALE).round(2)
    text = pa.array([f"{a:.2f}" for a in area.tolist()])
    table = table.set_column(table.schema.get_field_index("area_ha"), "area_ha", text)
    tmp = out.with_suffix(".tmp")
    pcsv.write_csv(table, tmp, pcsv.WriteOptions(quoting_style="none"))
    tmp.rename(out)
    return out


def config(folder: Path, cfg_path: Path, step: str, corrects: str | None) -> Path:
    import yaml

    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["output"]["payments_by"] = "farmer"
    if step != "plain":
        cfg["settlement"] = {"url": str(folder / "bench-store" / "panen-settlement.sqlite"),
                             "kind": "final" if step == "final" else "correction"}
        if corrects:
            cfg["settlement"]["corrects"] = corrects
    if step == "correction":
        cfg["inputs"]["policies"]["path"] = str(corrected_register(folder))
    path = folder / f"settlement-{step}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def child(folder: Path, cfg_path: Path, step: str) -> dict:
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch
    from panen.engine.settlement.store import SettlementStore

    recording = {"record_s": 0.0}
    original = SettlementStore.record_pending, SettlementStore.commit

    def timed(f):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                recording["record_s"] += time.perf_counter() - t
        return wrapper

    SettlementStore.record_pending, SettlementStore.commit = (timed(f) for f in original)
    cfg = load_config(cfg_path)
    t0 = time.perf_counter()
    result = run_batch(cfg, folder / f"out-{step}", force=True, progress=False)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "timings_s": result.timings, "settlement": result.settlement,
            "payments": int(len(result.payments)), **recording}


def _child(folder: Path, farmers: int, step: str, cfg_path: Path) -> dict:
    cmd = [sys.executable, __file__, "--farmers", str(farmers), "--child", step, "--config", str(cfg_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"benchmark step {step!r} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--farmers", type=int, default=2_500_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", choices=["plain", "final", "correction"], help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    folder, cfg_path = region(args.farmers)
    if args.child:
        out = child(folder, Path(args.config), args.child)
        out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(out))
        return 0

    print(f"settlement benchmark: {args.farmers:,} farmers × 4 covers = {4 * args.farmers:,} policies, paid per "
          f"farmer and product; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    corrected_register(folder)
    store_dir = folder / "bench-store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir()
    db = store_dir / "panen-settlement.sqlite"
    plain_cfg = config(folder, cfg_path, "plain", None)
    final = _child(folder, args.farmers, "final", config(folder, cfg_path, "final", None))
    after_final = store_bytes(db)
    snapshot = store_dir / "after-final"
    snapshot.mkdir()
    for p in store_dir.glob("panen-settlement.sqlite*"):
        shutil.copy2(p, snapshot / p.name)
    fix_cfg = config(folder, cfg_path, "correction", final["settlement"]["batch_id"])
    plains, fixes = [], []
    for _ in range(args.repeat):
        plains.append(_child(folder, args.farmers, "plain", plain_cfg))
        for p in store_dir.glob("panen-settlement.sqlite*"):
            p.unlink()
        for p in snapshot.iterdir():
            shutil.copy2(p, store_dir / p.name)
        fixes.append(_child(folder, args.farmers, "correction", fix_cfg))
    after_fix = store_bytes(db)

    def med(runs: list[dict], f) -> float:
        return statistics.median(f(r) for r in runs)

    gib = 2**30
    a = med(plains, lambda r: r["wall_s"])
    c = med(fixes, lambda r: r["wall_s"])
    n = f" (median of {args.repeat})" if args.repeat > 1 else ""
    fs, cs = final["settlement"], fixes[-1]["settlement"]
    print(f"  (a) plain batch, no store{n:<24} {a:8.2f} s   peak {med(plains, lambda r: r['maxrss']) / gib:.2f} GiB")
    print(f"  (b) first final batch with the store         {final['wall_s']:8.2f} s   peak "
          f"{final['maxrss'] / gib:.2f} GiB   difference {final['timings_s']['settlement']:.2f} s, record "
          f"{final['record_s']:.2f} s; {fs['payments']:,} payments, Rp {fs['paid']:,}")
    print(f"  (c) correction, 1 % of policies changed{n:<7} {c:8.2f} s   peak "
          f"{med(fixes, lambda r: r['maxrss']) / gib:.2f} GiB   difference "
          f"{med(fixes, lambda r: r['timings_s']['settlement']):.2f} s, record {med(fixes, lambda r: r['record_s']):.2f} s; "
          f"{cs['payments']:,} top-ups Rp {cs['paid']:,}, {cs['recoveries']:,} recoveries Rp {cs['recovered']:,}")
    print(f"  (c) / (a) = {c / a:.2f}   (target ≤ 1.5; difference target ≤ 10 s)")
    print(f"  store: {after_final:,} bytes after (b) ({after_final / max(fs['payments'], 1):,.0f} bytes a payment), "
          f"{after_fix:,} after (c): {after_fix - after_final:,} bytes for the correction batch")
    for name, runs in (("plain", plains), ("correction", fixes)):
        steps = {k: med(runs, lambda r, k=k: r["timings_s"].get(k, 0.0)) for k in runs[0]["timings_s"]}
        print(f"  {name} steps [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    print(f"  load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
