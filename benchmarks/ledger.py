"""Benchmark: the 10-million-policy ledger (prints figures; not a test).

Target (the issue): ledger + payouts.parquet for 10,000,000 policies in <= 10 s with
peak memory <= 3 GiB.

What is measured, each in a fresh child process so that one phase's memory does not
count against another:

* ``read``     — read_policies of the register from Parquet, and validate_policies.
* ``ledger``   — build_ledger(parquet_path=payouts.parquet) (policies already in memory as
                 the valid DataFrame): the ledger built and written together, row groups
                 handed to a writer thread as they are ready — what ``panen run`` does.
                 Time and peak memory against the target come from this phase.
* ``breakdown``— the two steps apart: build_ledger in memory, then write_table_atomic of
                 the whole table (and a check that the file is byte-identical to the
                 streamed one). Plus two baselines measured in the same process: a bare
                 ``pyarrow.parquet.write_table`` of the same ledger table with pyarrow's
                 defaults, and the bare numpy gather of 10M rates from the (district,
                 cohort) matrix.

Memory: peak resident set size (RSS), sampled every 5 ms by a thread (psutil) during the
phase, and the process's lifetime peak from ``resource.getrusage`` (``ru_maxrss``). RSS is
what the machine must actually provide; tracemalloc would miss Arrow's own memory pool
(jemalloc/mimalloc allocations are invisible to it). The input table itself is resident
before the phase starts and is reported separately ("input RSS").

Data (deterministic, seed 20240101) is generated once under benchmarks/_data/: 500
districts, one product anchored on the sowing date with 60 sowing-date cohorts, areas
0.1–2 ha, string policy ids (``P`` + 9 digits, rows in random order), farmer ids (about
1.3 policies per farmer) and farmer groups (about 25 policies per group).

Usage: ``python benchmarks/ledger.py [--n 10000000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
N_DISTRICTS = 500
N_COHORTS = 60
FIRST_SOWING = np.datetime64("2023-10-15")
SEED = 20240101


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def district_ids() -> list[str]:
    return [str(3101 + i) for i in range(N_DISTRICTS)]


def generate(n: int, path: Path) -> None:
    """Write a synthetic register of ``n`` policies to ``path`` (Parquet)."""
    rng = np.random.default_rng(SEED)
    districts = pa.array(district_ids())
    table = pa.table({
        "policy_id": _ids("P", rng.permutation(n), 9),
        "farmer_id": _ids("F", rng.integers(0, max(n * 10 // 13, 1), n), 8),
        "district_id": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, N_DISTRICTS, n), pa.int32()), districts),
        "product_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["rain"])),
        "area_ha": np.round(rng.uniform(0.1, 2.0, n), 2),
        "sowing_date": pa.array((FIRST_SOWING + rng.integers(0, N_COHORTS, n)).astype("datetime64[D]")),
        "group_id": _ids("G", rng.integers(0, max(n // 25, 1), n), 6),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20)


def rate_table():
    from panen.engine.settlement.rates import RateTable

    rng = np.random.default_rng(SEED + 1)
    rate = rng.random((N_DISTRICTS, N_COHORTS))
    rate = np.where(rate < 0.6, 0.0, np.round((rate - 0.6) / 0.4, 4))
    flagged = rng.random((N_DISTRICTS, N_COHORTS)) < 0.02
    rate[flagged] = np.nan
    cohorts = (FIRST_SOWING + np.arange(N_COHORTS)).astype("datetime64[D]")
    return RateTable("rain", np.array(district_ids()), cohorts, rate, flagged, anchor="sowing_date")


def products():
    from panen.engine.settlement.policies import ProductRules

    last = (FIRST_SOWING + N_COHORTS - 1).astype(date)
    return {"rain": ProductRules(6_000_000, "sowing_date", (FIRST_SOWING.astype(date), last))}


class PeakRSS:
    """Sample this process's RSS every ``interval`` s in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _timed(fn, repeats: int):
    times, cpu, result = [], [], None
    for _ in range(repeats):
        result = None
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return result, times, cpu


# --------------------------------------------------------------------------- child phases


def phase_read(path: Path, repeats: int) -> dict:
    from panen.datasets.policies import read_policies
    from panen.engine.settlement.policies import validate_policies

    register, read_t, _ = _timed(lambda: read_policies(path), repeats)
    ids = district_ids()
    prods = products()
    (valid, rejects), val_t, val_cpu = _timed(lambda: validate_policies(register, district_ids=ids, products=prods),
                                              repeats)
    return {"rows": register.n_rows, "valid": len(valid), "rejects": len(rejects),
            "read_s": read_t, "validate_s": val_t, "validate_cpu_s": val_cpu,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def phase_ledger(path: Path, repeats: int, out: Path) -> dict:
    from panen.engine.infra.atomic import write_table_atomic
    from panen.engine.settlement.ledger import build_ledger
    from panen.datasets.policies import read_policies
    from panen.engine.settlement.policies import validate_policies

    valid, _ = validate_policies(read_policies(path), district_ids=district_ids(), products=products())
    rates = {"rain": rate_table()}
    prods = products()
    # warm the numba kernels on a tiny slice (compiled once, cached on disk)
    build_ledger(valid.iloc[:1000], rates, prods)
    gc.collect()
    input_rss = _rss()
    total_t, total_cpu, peaks = [], [], []
    ledger = None
    for _ in range(repeats):
        # the batch's way: build_ledger writes payouts.parquet row group by row group while
        # it builds (a writer thread), as panen run does
        ledger = None
        gc.collect()
        with PeakRSS() as peak:
            t0, c0 = time.perf_counter(), time.process_time()
            ledger = build_ledger(valid, rates, prods, parquet_path=out / "payouts.parquet")
            t2, c2 = time.perf_counter(), time.process_time()
        total_t.append(t2 - t0)
        total_cpu.append(c2 - c0)
        peaks.append(peak.peak)  # absolute: includes the resident input
    return {"rows": ledger.num_rows, "total_s": total_t, "total_cpu_s": total_cpu, "input_rss": input_rss,
            "peak_rss": peaks, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "file_mib": (out / "payouts.parquet").stat().st_size / 2**20}


def phase_breakdown(path: Path, repeats: int, out: Path) -> dict:
    """The two steps apart (build in memory, then write the whole table) and the baselines."""
    from panen.engine.infra.atomic import write_table_atomic
    from panen.engine.settlement.ledger import build_ledger
    from panen.datasets.policies import read_policies
    from panen.engine.settlement.policies import validate_policies

    valid, _ = validate_policies(read_policies(path), district_ids=district_ids(), products=products())
    rates = {"rain": rate_table()}
    prods = products()
    build_ledger(valid.iloc[:1000], rates, prods)
    ledger_t, write_t = [], []
    ledger = None
    for _ in range(repeats):
        ledger = None
        gc.collect()
        t0 = time.perf_counter()
        ledger = build_ledger(valid, rates, prods)
        t1 = time.perf_counter()
        write_table_atomic(ledger, out / "payouts_whole.parquet")
        ledger_t.append(t1 - t0)
        write_t.append(time.perf_counter() - t1)
    same = (out / "payouts.parquet").read_bytes() == (out / "payouts_whole.parquet").read_bytes()

    # baselines, same process, same table
    def bare_write():  # pyarrow's defaults: snappy, dictionary and statistics on every column, no fsync
        pq.write_table(ledger, out / "bare.parquet")

    _, bare_t, bare_cpu = _timed(bare_write, repeats)
    rt = rate_table()
    rng = np.random.default_rng(0)
    d = rng.integers(0, N_DISTRICTS, len(valid))
    c = rng.integers(0, N_COHORTS, len(valid))
    flat_rate = rt.rate.ravel()
    _, gather_t, _ = _timed(lambda: flat_rate[d * N_COHORTS + c], repeats)
    paid = int(pc.sum(pc.equal(pc.cast(ledger["status"], pa.string()), "paid")).as_py() or 0)
    return {"paid": paid, "ledger_s": ledger_t, "write_s": write_t, "bare_write_s": bare_t,
            "bare_write_cpu_s": bare_cpu, "gather_s": gather_t, "same_bytes": same}


# --------------------------------------------------------------------------- driver


def _child(phase: str, path: Path, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--child", phase, "--data", str(path), "--repeats", str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"benchmark phase {phase!r} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=["read", "ledger", "breakdown"])
    ap.add_argument("--data", type=Path)
    args = ap.parse_args()

    if args.child:
        out = DATA / "out"
        out.mkdir(parents=True, exist_ok=True)
        phase = {"read": lambda: phase_read(args.data, args.repeats),
                 "ledger": lambda: phase_ledger(args.data, args.repeats, out),
                 "breakdown": lambda: phase_breakdown(args.data, args.repeats, out)}[args.child]
        result = phase()
        print(json.dumps(result))
        return

    path = DATA / f"policies_{args.n}.parquet"
    if not path.exists():
        t0 = time.perf_counter()
        generate(args.n, path)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    load = os.getloadavg()
    print(f"panen ledger benchmark: {args.n:,} policies, {N_DISTRICTS} districts, {N_COHORTS} cohorts, "
          f"median of {args.repeats}; {os.cpu_count()} CPUs, load average {load[0]:.2f} at start")
    r = _child("read", path, args.repeats)
    g = _child("ledger", path, args.repeats)
    g.update(_child("breakdown", path, args.repeats))
    gib = 2**30
    print(f"  read_policies (Parquet)         {_med(r['read_s']):7.2f} s")
    print(f"  validate_policies               {_med(r['validate_s']):7.2f} s   (cpu {_med(r['validate_cpu_s']):.2f} s; "
          f"{r['valid']:,} valid, {r['rejects']:,} rejects)")
    print(f"  build_ledger, in memory         {_med(g['ledger_s']):7.2f} s")
    print(f"  then write_table_atomic         {_med(g['write_s']):7.2f} s   ({g['file_mib']:.0f} MiB)"
          f"   -> one after the other {_med(g['ledger_s']) + _med(g['write_s']):.2f} s")
    print(f"  ledger + write, streamed        {_med(g['total_s']):7.2f} s   (cpu {_med(g['total_cpu_s']):.2f} s;"
          f" row groups written while later rows are built)   target <= 10 s")
    print(f"  streamed file = whole-table file, byte for byte: {g['same_bytes']}")
    wall_ratio = _med(g["total_s"]) / _med(g["bare_write_s"])
    cpu_ratio = _med(g["total_cpu_s"]) / _med(g["bare_write_cpu_s"])
    print(f"  baseline: bare pq.write_table   {_med(g['bare_write_s']):7.2f} s   "
          f"(cpu {_med(g['bare_write_cpu_s']):.2f} s) -> ledger + write = {wall_ratio:.2f} x bare write "
          f"(cpu: {cpu_ratio:.2f} x)")
    print(f"  baseline: numpy rate gather     {_med(g['gather_s']):7.3f} s   "
          f"-> build_ledger = {_med(g['ledger_s']) / _med(g['gather_s']):.0f} x the bare gather")
    print(f"  input RSS (valid DataFrame etc) {g['input_rss'] / gib:7.2f} GiB")
    print(f"  peak RSS, ledger + write        {max(g['peak_rss']) / gib:7.2f} GiB   (sampled; includes the input)"
          f"   target <= 3 GiB")
    print(f"  ru_maxrss, ledger process       {g['maxrss'] / gib:7.2f} GiB   (lifetime, includes reading)")
    print(f"  ru_maxrss, read+validate        {r['maxrss'] / gib:7.2f} GiB")
    print(f"  paid policies                   {g['paid']:,} of {g['rows']:,}")
    print(f"  load average at end             {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
