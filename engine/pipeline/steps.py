"""The named public steps of every run: the seasonal batch, the backtest and in-season runs.

Each step is a function of data in → data out; the orchestrators
(:func:`panen.engine.pipeline.run.run_batch`, :func:`panen.engine.pipeline.backtest.backtest`)
only call them in order and time them. In order:

1. :func:`fingerprint_inputs`, :func:`open_inputs` — fingerprint every input (file
   stamps and content hash), then open every input a cover needs with the reader
   registered for it (lazy where gridded), and check the inputs' headers against each
   product (:func:`check_inputs` does the same from the headers alone, for ``panen validate``);
2. :func:`zones` — which districts each cover settles on: the district layer's when there
   is one, else those of the tables and series the product reads;
3. :func:`policy_rules`, :func:`check_policies` — the register's rows, valid or rejected
   with a reason;
4. :func:`district_series` — every grid reduced to district series (zonal mean, one
   streamed Dask pass, weights built once), monthly totals made daily equivalents;
5. :func:`evaluate` — each index cover's trigger per district and cohort, its result
   checked and completed (:func:`panen.engine.api.standardise_result`);
   :func:`adjust_claims` — each named-peril cover's field assessments, plot by plot;
6. :func:`settle` — every cover through one ledger → terms → rounding → district
   totals (reconciled) → payments;
7. :func:`compare` — index payouts against the named-peril cover's indemnities, per farmer;
   :func:`projection` — in season (``--as-of`` with ``projection:``), each index cover's open
   windows filled with each analogue year's weather and settled (``projection.csv``);
8. writing and the manifest (:mod:`panen.engine.pipeline.run`); :func:`verify_inputs`
   before anything is published.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import xarray as xr

from panen.engine.api import (InputInfo, OpenedInput, Season, TriggerInputs, check_guaranteed_rate, check_result_values,
                              standardise_result)
from panen.engine.errors import DataQualityError, InputError, PluginError, Problem
from panen.engine.infra.manifest import InputFingerprint, fingerprint_input
from panen.engine.infra.manifest import verify_inputs as verify_fingerprints
from panen.engine.maths.series import totals_to_daily_equivalent
from panen.engine.maths.zonal import build_weights, zonal_mean
from panen.engine.pipeline.covers import Cover, IndexCover, NamedPerilCover
from panen.engine.registry import get_reader
from panen.engine.settlement.ledger import (
    ReconciliationError,
    build_ledger,
    district_totals,
    payments,
    reconcile,
)
from panen.engine.settlement.policies import Limits, ProductRules, validate_policies
from panen.engine.settlement.rates import PolicyAmounts, RateTable

__all__ = [
    "Settlement",
    "Timer",
    "Zones",
    "adjust_claims",
    "check_inputs",
    "check_policies",
    "check_scheduler",
    "cohorts_of",
    "compare",
    "connect",
    "district_index",
    "district_series",
    "evaluate",
    "fingerprint_inputs",
    "input_paths",
    "insured_areas",
    "on_account",
    "open_inputs",
    "policy_rules",
    "premiums",
    "product_summary",
    "projection",
    "raise_if_referred",
    "raise_if_strict",
    "rate_tables",
    "season_of",
    "settle",
    "verify_inputs",
    "with_basis_risk",
    "zones",
]

#: The district layer's input name and the policy register's: the two inputs whose role
#: the pipeline knows (every other input is whatever its reader opens).
DISTRICTS, POLICIES = "districts", "policies"


class Timer:
    """Wall time per named step [s], summed over repeated steps."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 3)


def season_of(config) -> Season:
    """The config's season as the plugin API's :class:`~panen.engine.api.Season`."""
    s = config.season
    return Season(s.id, np.datetime64(s.start, "D"), np.datetime64(s.end, "D"), s.harvest_year)


# --------------------------------------------------------------------------- 1. inputs
def _needed(config, covers: list[Cover], *, register: bool) -> list[str]:
    names = {n for c in covers for n in c.inputs()}
    if config.inputs.get(DISTRICTS) is not None:
        names.add(DISTRICTS)
    if register and config.inputs.get(POLICIES) is not None:
        names.add(POLICIES)
    return sorted(names)


def input_paths(config) -> dict[str, Any]:
    """Every configured input's paths, keyed as in ``manifest.json``: ``name`` for its
    ``path``, ``name.field`` for its other path fields (e.g. ``ndvi.cropland_mask``)."""
    out = {}
    for name in sorted(config.inputs):
        spec = config.inputs[name]
        for fname in type(spec).path_fields:
            value = getattr(spec, fname, None)
            if value is not None:
                out[name if fname == "path" else f"{name}.{fname}"] = value
    return out


def fingerprint_inputs(config, extra: Mapping[str, Any] | None = None) -> dict[str, InputFingerprint]:
    """Fingerprint every configured input before it is opened (and ``extra`` files by key).

    Each file's size, modification/change time and inode, and the content hash the
    manifest records (:func:`panen.engine.infra.manifest.fingerprint_input`). Pass the
    result to :func:`verify_inputs` before publishing.
    """
    paths = {**input_paths(config), **(extra or {})}
    return {key: fingerprint_input(value, name=_label(key)) for key, value in paths.items()}


def verify_inputs(fingerprints: Mapping[str, InputFingerprint]) -> None:
    """Fail (``InputError``, naming input and file) when an input changed since it was fingerprinted."""
    verify_fingerprints({_label(k): v for k, v in fingerprints.items()})


def _label(key: str) -> str:
    return {"loss_reference": "loss_reference", "adjuster_wording": "adjuster.wording"}.get(key, f"inputs.{key}")


def open_inputs(config, covers: list[Cover], *, register: bool = True) -> dict[str, OpenedInput]:
    """Open every input the covers need (and the district layer and register when configured).

    Each input is opened by the reader registered for its name, with the hints of the
    covers that read it (e.g. the wording's peril codes for assessments). Grids stay lazy.

    Raises
    ------
    InputError, DataQualityError
        A file cannot be read; a product's check of its inputs fails (units, time step) —
        every problem at once; a grid without district polygons to reduce it.
    """
    opened: dict[str, OpenedInput] = {}
    for name in _needed(config, covers, register=register):
        spec = config.inputs.get(name)
        if spec is None:
            raise InputError(Problem(f"inputs.{name} is needed by "
                                     f"{', '.join(c.label for c in covers if name in c.inputs())} but not configured"))
        hints: dict[str, Any] = {}
        for c in covers:
            if name in c.inputs():
                hints.update(c.hints(name))
        opened[name] = get_reader(name)().open(spec, **hints)
    _check_products(config, covers, {n: o.info for n, o in opened.items()})
    polygons = opened.get(DISTRICTS)
    for c in covers:
        for name in c.inputs():
            if opened[name].kind == "grid" and (polygons is None or polygons.kind != "polygons"):
                raise DataQualityError(Problem(
                    f"{c.label}: the gridded input {name!r} must be reduced to districts, which needs the district "
                    f"polygons (inputs.districts)", file=opened[name].info.path))
    return opened


def check_inputs(config, covers: list[Cover] | None = None) -> dict[str, InputInfo]:
    """Read every configured input's header and check it against the products (for ``panen validate``).

    Returns
    -------
    dict
        Input name → :class:`~panen.engine.api.InputInfo`.

    Raises
    ------
    InputError, DataQualityError
        Every problem at once: unreadable files or missing columns (file and column
        named), and each product's objections to its inputs (units, time step).
    """
    from panen.engine.pipeline.covers import covers_of

    covers = covers_of(config) if covers is None else covers
    infos: dict[str, InputInfo] = {}
    problems: list[Problem] = []
    for name in sorted(config.inputs):
        try:
            infos[name] = get_reader(name)().inspect(config.inputs[name])
        except (InputError, DataQualityError) as exc:
            problems.extend(exc.problems)
        except PluginError as exc:
            problems.append(Problem(str(exc), key=f"inputs.{name}"))
    if problems:
        raise InputError(problems)
    _check_products(config, covers, infos)
    _check_history(config, infos)
    return infos


def _check_history(config, infos: Mapping[str, InputInfo]) -> None:
    """Each ``projection.history`` input can stand for the input it continues: a grid or series of its time step."""
    proj = getattr(config, "projection", None)
    problems = []
    for name, source in (proj.history.items() if proj is not None else ()):
        hist, season = infos.get(source), infos.get(name)
        if hist is None or season is None:
            continue
        if hist.kind not in ("grid", "series") or hist.frequency != season.frequency:
            problems.append(Problem(
                f"projection.history: inputs.{source} ({hist.kind}, time step {hist.frequency}) cannot stand for "
                f"inputs.{name} ({season.kind}, time step {season.frequency})", file=hist.path,
                key=f"projection.history.{name}"))
    if problems:
        raise DataQualityError(problems)


def _check_products(config, covers: list[Cover], infos: Mapping[str, InputInfo]) -> None:
    problems = []
    for i, c in enumerate(covers):
        if isinstance(c, IndexCover):
            mine = {n: infos[n] for n in c.inputs() if n in infos}
            for msg in c.plugin.check_inputs(c.params, mine):
                problems.append(Problem(f"{c.label}: {msg}", file=config.path, key=f"products[{i}]"))
    if problems:
        raise DataQualityError(problems)


# --------------------------------------------------------------------------- 2. zones
@dataclass(frozen=True)
class Zones:
    """Which districts each cover settles on.

    Attributes
    ----------
    layer
        District ids of the run's district layer (polygons or a plain list), in the layer's
        order; ``None`` when the run has none.
    by_cover
        Cover id → district ids (text) its trigger is evaluated on; for a named-peril cover,
        the layer's ids or ``None`` (any district: it settles per policy).
    source
        Cover id → what its districts come from, for reject messages.
    """

    layer: np.ndarray | None
    by_cover: dict[str, np.ndarray | None]
    source: dict[str, str]


def zones(covers: list[Cover], opened: Mapping[str, OpenedInput]) -> Zones:
    """The districts of each cover: the district layer's if configured, else its own data's.

    Without a district layer, an index cover settles on the union of the districts of the
    tables and series it reads (sorted); a policy in another district is rejected as
    unknown *to that data*. A named-peril cover then checks no district.
    """
    layer_input = opened.get(DISTRICTS)
    layer = None
    if layer_input is not None:
        data = layer_input.data
        layer = np.asarray(data["district_id"].astype(str), dtype=object)
    by_cover: dict[str, np.ndarray | None] = {}
    source: dict[str, str] = {}
    for c in covers:
        if layer is not None:
            by_cover[c.id], source[c.id] = layer, "the district layer"
            continue
        if c.per_policy:
            by_cover[c.id], source[c.id] = None, "the district layer"
            continue
        ids: set[str] = set()
        names = []
        for name in c.inputs():
            info = opened[name].info
            if info.zones is not None:
                ids |= set(info.zones)
                names.append(f"the {name} {'table' if info.kind == 'table' else 'data'} (inputs.{name})")
        by_cover[c.id] = np.array(sorted(ids), dtype=object)
        source[c.id] = " or ".join(names) or "the product's data"
    return Zones(layer=layer, by_cover=by_cover, source=source)


# --------------------------------------------------------------------------- 3. policies
def _sowing_window(cover: Cover, season: Season, opened: Mapping[str, OpenedInput]) -> tuple[dt.date, dt.date] | None:
    """Sowing dates a sowing-anchored cover can assess: inside the season, windows inside the data."""
    if cover.anchor != "sowing_date":
        return None
    lo, hi = season.start, season.end
    reach = cover.reach
    for name in cover.inputs():
        info = opened[name].info if name in opened else None
        if info is not None and info.kind in ("grid", "series") and info.time_range is not None and reach is not None:
            t0, t1 = info.time_range
            lo = max(lo, t0 - np.timedelta64(reach[0], "D"))
            hi = min(hi, t1 + np.timedelta64(1, "D") - np.timedelta64(reach[1], "D"))
            if lo > hi:
                raise DataQualityError(Problem(
                    f"{cover.label}: the {name} data ({t0} .. {t1}) cannot assess any sowing date of the season "
                    f"{season.start} .. {season.end}: the windows reach days {reach[0]} .. {reach[1] - 1} after "
                    f"sowing", file=info.path))
    return (lo.astype(dt.date), hi.astype(dt.date))


def policy_rules(covers: list[Cover], season: Season, opened: Mapping[str, OpenedInput], zoned: Zones, *,
                 sowing_windows: bool = True) -> dict[str, ProductRules]:
    """What the register check needs to know about each cover (:class:`ProductRules`)."""
    rules = {}
    for c in covers:
        own = zoned.by_cover.get(c.id)
        rules[c.id] = ProductRules(
            sum_insured_per_ha=c.sum_insured_per_ha, anchor=c.anchor if sowing_windows else "season_start",
            sowing_window=_sowing_window(c, season, opened) if sowing_windows else None,
            districts=None if (zoned.layer is not None or own is None) else frozenset(own),
            districts_source=zoned.source.get(c.id, "the product's data"),
            cover_times=c.cover_times, harvest_date=c.reads_harvest_date, sum_insured_factor=c.sum_insured_factor)
    return rules


def check_policies(opened: Mapping[str, OpenedInput], rules: Mapping[str, ProductRules],
                   zoned: Zones, limits=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the register into valid policies and rejects (:func:`validate_policies`), with the
    config's plausibility bounds (``limits``, a :class:`~panen.engine.config.LimitsConfig`)."""
    register = opened[POLICIES].data
    bounds = None if limits is None else Limits(max_area_ha=limits.max_area_ha, max_sum_insured=limits.max_sum_insured,
                                                max_sum_insured_per_ha=limits.max_sum_insured_per_ha)
    return validate_policies(register, district_ids=zoned.layer, products=rules, limits=bounds)


def cohorts_of(cover: Cover, valid: pd.DataFrame, season: Season) -> np.ndarray:
    """Window anchors [datetime64[D]]: every distinct sowing date of the cover's policies, or the season start."""
    if cover.anchor == "sowing_date" and "sowing_date" in valid.columns:
        sow = valid.loc[(valid["product_id"] == cover.id).to_numpy(), "sowing_date"]
        cohorts = np.unique(pd.to_datetime(sow).to_numpy().astype("datetime64[D]"))
        cohorts = cohorts[~np.isnat(cohorts)]
        if cohorts.size:
            return cohorts
    return np.array([season.start], dtype="datetime64[D]")


# --------------------------------------------------------------------------- 4. district series
def needed_time(covers: list[Cover], anchors: Mapping[str, np.ndarray], name: str, *,
                monthly: bool = False, period: str | None = None) -> tuple[str, str] | None:
    """The time slice of input ``name`` the covers' windows touch; ``None``: all of it.

    ``None`` when a cover reading it declares no reach (an NDVI climatology reads its
    baseline years). For monthly (``period="month"``, or ``monthly=True``) and dekadal
    (``period="dekad"``) totals, whole months or dekads are taken.
    """
    period = period or ("month" if monthly else None)
    lo = hi = None
    for c in covers:
        if name not in c.inputs():
            continue
        reach = c.reach
        if reach is None:
            return None
        a = np.asarray(anchors[c.id]).astype("datetime64[D]")
        s, e = a.min() + np.timedelta64(reach[0], "D"), a.max() + np.timedelta64(reach[1] - 1, "D")
        lo, hi = (s, e) if lo is None else (min(lo, s), max(hi, e))
    if lo is None:
        return None
    if period is not None:  # stamps may be on any day of their month or dekad: take whole ones
        lo_m, hi_m = lo.astype("datetime64[M]").astype("datetime64[D]"), hi.astype("datetime64[M]").astype("datetime64[D]")
        end_m = (hi.astype("datetime64[M]") + 1).astype("datetime64[D]") - np.timedelta64(1, "D")
        if period == "month":
            lo, hi = lo_m, end_m
        else:  # dekads: days 1-10, 11-20, 21 to the month's end
            k_lo = min(int((lo - lo_m).astype(int)) // 10, 2)
            k_hi = min(int((hi - hi_m).astype(int)) // 10, 2)
            lo = lo_m + np.timedelta64(10 * k_lo, "D")
            hi = end_m if k_hi == 2 else hi_m + np.timedelta64(10 * k_hi + 9, "D")
    return str(lo), str(hi)


def _check_overlap(weights, districts, grid: xr.DataArray, name: str, path) -> None:
    """A district set that misses the grid entirely is almost always a CRS mix-up: say so."""
    ncells = np.diff(weights.indptr)
    if len(ncells) and not ncells.any():
        bounds = ", ".join(f"{v:.4g}" for v in districts.total_bounds)
        gb = [float(grid["x"].min()), float(grid["y"].min()), float(grid["x"].max()), float(grid["y"].max())]
        raise DataQualityError(Problem(
            f"no district overlaps the {name} grid: districts span [{bounds}] in CRS {districts.crs}, the grid "
            f"spans [{', '.join(f'{v:.4g}' for v in gb)}] in CRS {grid.rio.crs}. Check the CRS of both files.",
            file=path))


#: How long a run waits for a Dask scheduler's first worker, or for one to come back when
#: all left mid-computation [s] (``--scheduler-timeout``, ``PANEN_SCHEDULER_TIMEOUT``).
DEFAULT_SCHEDULER_TIMEOUT = 180.0
#: The longest a run waits for a scheduler to answer at all [s] (capped by the timeout).
SCHEDULER_CONNECT_TIMEOUT = 20.0


def check_scheduler(scheduler: str | None, timeout: float | None = None) -> None:
    """Refuse a malformed scheduler address or timeout before anything is read.

    Raises
    ------
    InputError
        The address is not ``SCHEME://HOST:PORT`` (schemes: tcp, tls, ws, wss, ucx, inproc)
        or the timeout is not a positive number of seconds.
    """
    if timeout is not None and not (timeout > 0 and np.isfinite(timeout)):
        raise InputError(Problem(f"the scheduler timeout must be a positive number of seconds; got {timeout}",
                                 key="--scheduler-timeout"))
    if not scheduler:
        return
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, loc = parse_address(scheduler, strict=False)
        if scheme not in backends:
            raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(sorted(backends))}")
        if scheme != "inproc":
            parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise InputError(Problem(f"not a Dask scheduler address: {scheduler!r} ({exc}); expected "
                                 f"tcp://HOST:PORT", key="--scheduler")) from None


def connect(scheduler: str | None, *, timeout: float | None = None):
    """A Dask distributed client for ``scheduler`` (``tcp://host:port``) with a worker, or ``None`` for local threads.

    Parameters
    ----------
    scheduler
        The scheduler's address; ``None`` or empty: local threads.
    timeout
        How long to wait for the first worker [s] (default
        :data:`DEFAULT_SCHEDULER_TIMEOUT`); the scheduler itself must answer within
        :data:`SCHEDULER_CONNECT_TIMEOUT` or the timeout, whichever is shorter.

    Raises
    ------
    InputError
        A malformed address, a scheduler that does not answer, or one without workers.
    """
    if not scheduler:
        return None
    timeout = DEFAULT_SCHEDULER_TIMEOUT if timeout is None else float(timeout)
    check_scheduler(scheduler, timeout)
    from distributed import Client

    wait = min(timeout, SCHEDULER_CONNECT_TIMEOUT)
    try:
        client = Client(scheduler, timeout=f"{wait}s")
    except OSError as exc:
        raise InputError(Problem(f"cannot reach the Dask scheduler at {scheduler}: {exc}", key="--scheduler")) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise InputError(Problem(
            f"the Dask scheduler at {scheduler} has no workers: none joined within {timeout:g} s. Start workers "
            f"(dask worker {scheduler}), raise --scheduler-timeout / PANEN_SCHEDULER_TIMEOUT, or run without "
            f"--scheduler", key="--scheduler")) from None
    return client


def _gather(client, futures, *, timeout: float):
    """``client.gather`` that gives up when the cluster has had no worker for ``timeout`` seconds."""
    from distributed import wait

    alone_since = None
    while True:
        try:
            wait(futures, timeout=min(5.0, timeout))
            return client.gather(futures)
        except TimeoutError:
            pass
        workers = client.scheduler_info().get("workers", {})
        if workers:
            alone_since = None
            continue
        alone_since = alone_since or time.monotonic()
        if time.monotonic() - alone_since >= timeout:
            client.cancel(futures)
            raise InputError(Problem(
                f"the Dask scheduler at {client.scheduler.address} lost all its workers and none came back within "
                f"{timeout:g} s (--scheduler-timeout / PANEN_SCHEDULER_TIMEOUT); nothing was written",
                key="--scheduler"))


def compute(lazy: Mapping[str, Any], *, client=None, progress: bool = False,
            optimize_graph: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Compute named lazy objects in one pass (distributed client or local threads), with a progress bar.

    On a cluster, a computation whose workers all left fails once none has come back
    within ``timeout`` seconds (default :data:`DEFAULT_SCHEDULER_TIMEOUT`) instead of
    waiting forever.
    """
    import dask

    if not lazy:
        return {}
    keys = list(lazy)
    if client is not None:
        futures = client.compute([lazy[k] for k in keys], optimize_graph=optimize_graph)
        if progress:
            from distributed import progress as dprogress

            dprogress(futures)
            print(file=sys.stderr)
        done = _gather(client, futures, timeout=DEFAULT_SCHEDULER_TIMEOUT if timeout is None else float(timeout))
    else:
        ctx = contextlib.nullcontext()
        if progress:
            from dask.diagnostics import ProgressBar

            ctx = ProgressBar(out=sys.stderr)
        with ctx:
            done = dask.compute(*[lazy[k] for k in keys], scheduler="threads", optimize_graph=optimize_graph)
    return dict(zip(keys, done))


def district_series(opened: Mapping[str, OpenedInput], covers: list[Cover], anchors: Mapping[str, np.ndarray], *,
                    client=None, progress: bool = False, notes: list[str] | None = None,
                    what: str = "the season", quality: dict[str, dict] | None = None,
                    timeout: float | None = None) -> dict[str, xr.Dataset]:
    """Every grid the covers read, reduced to district series; series inputs as they are.

    The zonal weights are built once per grid (only the time steps the covers' windows
    touch are read, :func:`needed_time`), and every grid is reduced in one streamed Dask
    pass (one task per time chunk: a 40-year daily archive never has to fit in memory);
    the small ``time × district`` series are returned computed. Monthly totals become
    daily equivalents (:func:`panen.engine.maths.series.totals_to_daily_equivalent`) —
    whether a product may use them is the product's call (:meth:`Trigger.check_inputs`).
    An input-level ``min_valid_fraction`` (reader attribute) masks steps with too little
    data for every product. Values outside the input's ``valid_range`` (declared by its
    reader: rainfall above the world records or below zero, NDVI outside [-1, 1]) are
    missing — an undeclared fill value such as 9.97e36 is never read as rain — and are
    counted, in the same pass, into ``quality`` (per input: ``valid_range``,
    ``implausible_values``, ``time_steps_affected``, ``first``, ``last``).

    Returns
    -------
    dict
        Input name → ``xr.Dataset`` with ``mean`` [the input's units] and
        ``valid_fraction`` [0..1] on ``(time, district)``.
    """
    notes = notes if notes is not None else []
    quality = quality if quality is not None else {}
    polygons = opened.get(DISTRICTS)
    used = sorted({n for c in covers for n in c.inputs() if n in opened})
    lazy: dict[str, xr.Dataset] = {}
    ready: dict[str, xr.Dataset] = {}
    masks: dict[str, float] = {}
    monthly: set[str] = set()
    counts: dict[str, Any] = {}
    for name in used:
        o = opened[name]
        if o.kind == "series":
            ready[name], counts[name] = _plausible(o.data["mean"], o.data["mean"].attrs.get("valid_range"),
                                                   ("district",))
            ready[name] = o.data.assign(mean=ready[name])
        if o.kind == "stations":
            ready[name] = station_series(o, polygons, notes=notes, quality=quality)
        if o.kind != "grid":
            continue
        grid, counts[name] = _plausible(o.data, o.data.attrs.get("valid_range"), ("y", "x"))
        if grid.attrs.get("frequency") in ("month", "dekad"):
            monthly.add(name)
        if grid.attrs.get("min_valid_fraction") is not None:
            masks[name] = float(grid.attrs["min_valid_fraction"])
        window = needed_time(covers, anchors, name,
                             period=grid.attrs.get("frequency") if name in monthly else None)
        if window is not None:
            grid = grid.sel(time=slice(*window))
        if grid.sizes["time"] == 0:
            raise DataQualityError(Problem(f"the {name} data has no time step in {what} "
                                           f"({window[0]} .. {window[1]})", file=o.info.path))
        gdf = polygons.data
        weights = build_weights(gdf, grid.isel(time=0), id_column="district_id")
        _check_overlap(weights, gdf, grid, name, o.info.path)
        lazy[name] = zonal_mean(grid, weights)
    counted = {f"count:{n}": c for n, c in counts.items() if c is not None}
    try:
        done = compute({**lazy, **counted}, client=client, progress=progress, optimize_graph=True,  # fusion is safe
                       timeout=timeout)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # a corrupt chunk, a codec error, a vanished file
        read = ", ".join(f"{n} ({opened[n].info.path})" for n in lazy) or "the inputs"
        raise InputError(Problem(f"cannot read the gridded input(s) {read}: {type(exc).__name__}: {exc} (a corrupt "
                                 f"or unreadable chunk; if the files read fine elsewhere, please report this)")) from exc
    series = {n: done[n] for n in lazy}
    for n, rng in ((n, opened[n].data.attrs.get("valid_range") if opened[n].kind == "grid"
                    else opened[n].data["mean"].attrs.get("valid_range")) for n in counts if counts[n] is not None):
        per_step = done[f"count:{n}"]
        bad = int(per_step.sum())
        steps_hit = per_step["time"].values[np.asarray(per_step.values) > 0].astype("datetime64[D]")
        quality[n] = {"valid_range": rng, "implausible_values": bad, "time_steps_affected": int(len(steps_hit)),
                      "first": str(steps_hit[0]) if len(steps_hit) else None,
                      "last": str(steps_hit[-1]) if len(steps_hit) else None}
        if bad:
            notes.append(f"{n}: {bad:,} value(s) outside the physically possible range [{rng[0]:g}, {rng[1]:g}] "
                         f"on {len(steps_hit)} time step(s) ({steps_hit[0]} .. {steps_hit[-1]}) treated as missing, "
                         f"never as data")
    for name, limit in masks.items():
        s = series[name]
        series[name] = s.assign(mean=s["mean"].where(s["valid_fraction"] >= limit))
    for name in sorted(monthly):
        step = opened[name].data.attrs.get("frequency")
        series[name] = totals_to_daily_equivalent(series[name], step)
        word = "monthly" if step == "month" else "dekadal"
        notes.append(f"{name}: {word} totals spread evenly over each {step}'s days (mm/day equivalent, "
                     f"valid for 'total' phases only)")
    series.update(ready)
    return series


def station_series(o: OpenedInput, polygons: OpenedInput | None, *, notes: list[str],
                   quality: dict[str, dict]) -> xr.Dataset:
    """Station rainfall made the district series each district settles on.

    Each district gets its reference station and back-ups (:func:`panen.engine.maths.stations.assign_stations`:
    the stations named per district in the input's ``assign.table``, or the nearest to the
    district polygon's representative point within ``assign.max_distance_km``); a day the
    reference did not measure comes from the first back-up that did, then from the input's
    bias-adjusted satellite pixel when configured (:func:`~panen.engine.maths.stations.settlement_series`).

    Returns
    -------
    xarray.Dataset
        ``mean`` [mm/day], ``valid_fraction`` (1 or 0) and ``source`` (int8: 0 the
        reference, k the k-th back-up, −2 the satellite, −1 missing) on ``(time,
        district)``; coords ``reference``; attrs ``backups`` (district → back-up ids),
        ``stations`` (the input's path), ``bias``. The days not measured at the reference
        are the audit trail (the run writes them to ``station_fills.csv``).
    """
    from panen.engine.maths.stations import SOURCE_MISSING, SOURCE_SATELLITE, assign_stations, settlement_series

    ds = o.data
    unplaced: list[str] = []
    table = ds.attrs.get("assign_table")
    if table is not None:
        zones = pd.DataFrame({"zone": [r["district_id"] for r in table], "station": [r["station_id"] for r in table],
                              "backups": [";".join(r["backups"]) for r in table]})
        assignments = assign_stations(zones, ds, station_column="station", backup_column="backups")
    else:
        if polygons is None or polygons.kind != "polygons":
            raise DataQualityError(Problem("stations are given to districts by distance, which needs the district "
                                           "polygons (inputs.districts); or name them per district in "
                                           "inputs.stations.assign.table", file=o.info.path))
        gdf = polygons.data
        points = gdf.geometry.representative_point()
        if gdf.crs is not None and not gdf.crs.is_geographic:
            points = points.to_crs("EPSG:4326")
        zones = pd.DataFrame({"zone": gdf["district_id"].astype(str).to_numpy(), "lat": points.y.to_numpy(),
                              "lon": points.x.to_numpy()})
        rule = ds.attrs.get("assign", {})
        assignments = assign_stations(zones, ds, max_distance_km=rule.get("max_distance_km"),
                                      backups=int(rule.get("backups", 2)), unplaced=unplaced)
    fill = ds.attrs.get("fill")
    series, filled = settlement_series(ds, assignments,
                                       satellite=ds["satellite"] if "satellite" in ds else None,
                                       bias=(fill or {}).get("bias", "ratio"),
                                       min_overlap=int((fill or {}).get("min_overlap", 30)))
    src = series["source"].values
    counts = {"reference_days": int((src == 0).sum()), "backup_days": int((src > 0).sum()),
              "satellite_days": int((src == SOURCE_SATELLITE).sum()), "missing_days": int((src == SOURCE_MISSING).sum())}
    quality[o.info.name] = {"stations": int(ds.sizes["station"]), **counts}
    notes.append(f"{o.info.name}: {len(assignments)} district(s) settle on stations; {counts['backup_days']:,} "
                 f"district-day(s) taken from a back-up station, {counts['satellite_days']:,} from the bias-adjusted "
                 f"satellite grid, {counts['missing_days']:,} still missing (station_fills.csv lists every one)")
    series.attrs.update({"backups": {a.zone: list(a.backups) for a in assignments}, "stations": o.info.path,
                         "bias": (fill or {}).get("bias")})
    if unplaced:
        # no station near enough: the district has no rain at all, so its policies are withheld, never paid on
        # a station that does not measure its rain
        empty = xr.full_like(series.isel(district=slice(0, 0)), np.nan).reindex(district=unplaced)
        empty["valid_fraction"] = empty["valid_fraction"].fillna(0.0)
        empty["source"] = empty["source"].fillna(SOURCE_MISSING).astype(np.int8)
        empty = empty.assign_coords(reference=("district", np.array([""] * len(unplaced), dtype=object)))
        series = xr.concat([series, empty], dim="district")
        notes.append(f"{o.info.name}: {len(unplaced)} district(s) have no station within "
                     f"{ds.attrs.get('assign', {}).get('max_distance_km'):g} km and cannot be settled on stations "
                     f"(their policies are withheld): {', '.join(unplaced[:10])}{' ...' if len(unplaced) > 10 else ''}")
    return series


def station_fills(series: Mapping[str, xr.Dataset]) -> pd.DataFrame | None:
    """The audit trail of station-settled series: every district-day not measured at its reference station.

    Returns
    -------
    pandas.DataFrame or None
        ``input, district_id, date, reference, source, value`` [mm/day] — ``source`` the
        back-up station id, ``satellite:<bias>`` or ``missing`` (then ``value`` is empty) —
        sorted by input, district and date; ``None`` when no series came from stations.
    """
    from panen.engine.maths.stations import SOURCE_MISSING

    frames = []
    for name in sorted(series):
        s = series[name]
        if "source" not in s or "reference" not in s.coords:
            continue
        src = np.asarray(s["source"].transpose("district", "time").values)
        val = np.asarray(s["mean"].transpose("district", "time").values, dtype=np.float64)
        days = pd.DatetimeIndex(s["time"].values).strftime("%Y-%m-%d").to_numpy()
        backups = s.attrs.get("backups", {})
        bias = s.attrs.get("bias")
        for i, district in enumerate(np.asarray(s["district"].values).astype(str)):
            j = np.flatnonzero(src[i] != 0)
            if not j.size:
                continue
            chain = [str(s["reference"].values[i]), *backups.get(district, [])]
            label = np.array([chain[k] if k > 0 else ("missing" if k == SOURCE_MISSING else f"satellite:{bias}")
                              for k in src[i, j].tolist()], dtype=object)
            frames.append(pd.DataFrame({"input": name, "district_id": district, "date": days[j],
                                        "reference": chain[0], "source": label,
                                        "value": np.where(src[i, j] == SOURCE_MISSING, np.nan, val[i, j])}))
    if not frames:
        return None if not any("source" in s for s in series.values()) else pd.DataFrame(
            columns=["input", "district_id", "date", "reference", "source", "value"])
    return pd.concat(frames, ignore_index=True).sort_values(["input", "district_id", "date"], kind="stable",
                                                             ignore_index=True)


def _plausible(values: xr.DataArray, valid_range, dims: tuple[str, ...]) -> tuple[xr.DataArray, xr.DataArray | None]:
    """Values outside ``valid_range`` made missing, and a lazy count of them per time step."""
    if valid_range is None:
        return values, None
    lo, hi = float(valid_range[0]), float(valid_range[1])
    bad = values.notnull() & ((values < lo) | (values > hi))
    kept = values.where(~bad)
    kept.attrs = dict(values.attrs)
    return kept, bad.sum(dims)


# --------------------------------------------------------------------------- 5. evaluate covers
def _evaluate_one(cover: IndexCover, season: Season, cohorts: np.ndarray, district_ids: np.ndarray,
                  series: Mapping[str, xr.Dataset], tables: Mapping[str, pd.DataFrame],
                  insured_area: pd.Series | None = None, as_of: np.datetime64 | None = None) -> xr.Dataset:
    feeds = {n: series[n] for n in cover.inputs() if n in series}
    tabs = {n: tables[n] for n in cover.inputs() if n in tables}
    inputs = TriggerInputs(season=season, cohorts=cohorts, district_ids=district_ids, series=feeds, tables=tabs,
                           insured_area=insured_area, as_of=as_of)
    result = cover.plugin().evaluate(cover.params, inputs)
    ds = standardise_result(result, trigger=cover.plugin.name, product_id=cover.id, district_ids=district_ids,
                            cohorts=cohorts)
    if any(v.chunks for v in ds.data_vars.values()):
        import dask

        # optimize_graph=False: with dask 2026.8, computing a Dataset holding both a variable
        # and a lazy derivative of it (payout_rate and flagged = payout_rate.isnull()) in one
        # call fails after blockwise fusion ("Missing dependency ('clip-…', 0, 0)")
        (ds,) = dask.compute(ds, scheduler="threads", optimize_graph=False)
    ds = check_result_values(ds, trigger=cover.plugin.name, product_id=cover.id)
    if as_of is not None:  # in season: what no later data can lower (the plugin's own rule)
        guaranteed = cover.plugin.guaranteed_rate(cover.params, inputs, ds)
        if guaranteed.chunks:
            guaranteed = guaranteed.compute(scheduler="threads")
        ds = ds.assign(guaranteed_rate=check_guaranteed_rate(guaranteed, ds, trigger=cover.plugin.name,
                                                             product_id=cover.id))
    return ds


def evaluate(covers: list[Cover], season: Season, cohorts: Mapping[str, np.ndarray], zoned: Zones,
             series: Mapping[str, xr.Dataset], tables: Mapping[str, pd.DataFrame], *,
             seasons: list[Season] | None = None, notes: list[str] | None = None,
             insured_area: Mapping[str, pd.Series] | None = None,
             as_of: np.datetime64 | None = None) -> dict[str, xr.Dataset]:
    """Each index cover's trigger per district and cohort, checked and completed.

    Parameters
    ----------
    covers
        The run's covers (named-peril covers are skipped here).
    season
        The season settled (a backtest: the config's template season).
    cohorts
        Cover id → window anchors [datetime64[D]].
    zoned
        The districts each cover is evaluated on.
    series, tables
        District series and tables by input name.
    seasons
        Backtest only: one :class:`Season` per cohort (same order). A trigger that reads
        the season itself (``backtest_by = "season"``, e.g. area yield reads the harvest
        year) is then evaluated once per season; one reading only series gets every
        season as a cohort of one evaluation.
    insured_area
        Cover id → insured area [ha] per district of its valid policies
        (:func:`insured_areas`); ``None`` (a backtest) gives the triggers none.
    as_of
        In season (``panen run --as-of``): the last day of known data [datetime64[D]] (the
        series are cut there, :func:`panen.engine.pipeline.inseason.as_of_series`); each
        result then also holds ``guaranteed_rate`` (:meth:`panen.engine.api.Trigger.guaranteed_rate`).

    Returns
    -------
    dict
        Cover id → computed ``xr.Dataset`` (:func:`panen.engine.api.standardise_result`
        variables, ``reason`` filled by :func:`panen.engine.api.check_result_values`).
    """
    out: dict[str, xr.Dataset] = {}
    for c in covers:
        if not isinstance(c, IndexCover):
            continue
        district_ids = zoned.by_cover[c.id]
        a = np.asarray(cohorts[c.id]).astype("datetime64[D]")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            by = c.plugin.backtest_by or ("cohort" if any(n in series for n in c.inputs()) else "season")
            if seasons is None or by == "cohort":
                area = None if insured_area is None else insured_area.get(c.id, pd.Series(dtype=float))
                out[c.id] = _evaluate_one(c, season, a, district_ids, series, tables, area, as_of)
            else:
                parts = [_evaluate_one(c, s, a[i:i + 1], district_ids, series, tables) for i, s in enumerate(seasons)]
                out[c.id] = xr.concat(parts, dim="cohort", coords="minimal", compat="override", join="override",
                                      data_vars="all")
        shown: set[str] = set()
        for w in caught:  # the plugin's warnings reach the user, and the manifest's notes — each once
            if str(w.message) in shown:
                continue
            shown.add(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if notes is not None and issubclass(w.category, UserWarning) and str(w.message) not in notes:
                notes.append(str(w.message))  # once: a backtest evaluates a product season by season
    return out


def rate_tables(results: Mapping[str, xr.Dataset], covers: list[Cover], zoned: Zones, *,
                variable: str = "payout_rate") -> dict[str, RateTable]:
    """Each index cover's computed result as the ledger's :class:`RateTable` (districts in zone order).

    ``variable`` names the rate: ``payout_rate`` (the final claim), or ``on_account_rate``
    (an advance, :func:`on_account`; covers whose result has none are left out, and a NaN
    is "none due", flagged).
    """
    out = {}
    for c in covers:
        if c.id not in results or variable not in results[c.id]:
            continue
        ds = results[c.id].transpose("district", "cohort", ...)
        rate = np.asarray(ds[variable].transpose("district", "cohort").values, dtype=float)
        flagged = np.asarray(ds["flagged"].values, dtype=bool) if variable == "payout_rate" else np.isnan(rate)
        out[c.id] = RateTable(product_id=c.id, district_ids=np.asarray(zoned.by_cover[c.id]),
                              cohorts=ds["cohort"].values.astype("datetime64[D]"), rate=rate, flagged=flagged,
                              anchor=c.anchor,
                              reason=np.asarray(ds["reason"].values, dtype=object) if variable == "payout_rate"
                              else None)
    return out


def insured_areas(valid: pd.DataFrame, covers: list[Cover]) -> dict[str, pd.Series]:
    """Per index cover, the insured area [ha] per district of its valid policies (index: district id)."""
    out = {}
    for c in covers:
        if c.per_policy:
            continue
        mine = valid.loc[(valid["product_id"] == c.id).to_numpy(), ["district_id", "area_ha"]]
        area = mine.groupby(mine["district_id"].astype(str), sort=True)["area_ha"].sum()
        out[c.id] = area.astype(float)
    return out


#: Columns of ``on_account.csv`` (money in integer rupiah).
ON_ACCOUNT_COLUMNS: tuple[str, ...] = ("policy_id", "farmer_id", "district_id", "product_id", "sum_insured",
                                       "on_account_rate", "on_account_payout")


def on_account(results: Mapping[str, xr.Dataset], covers: list[Cover], zoned: Zones, valid: pd.DataFrame,
               rules: Mapping[str, ProductRules]) -> pd.DataFrame | None:
    """On-account (advance) payments per policy, apart from the final payouts; ``None`` if no cover has any.

    A trigger result's ``on_account_rate`` (e.g. PMFBY mid-season adversity: a share of the
    likely claim of a notified district) is settled through the same ledger as the final
    claim — the same sum insured per policy, the same rounding to the rupiah, and the
    ledger's own reconciliation — without policy terms (a deductible applies once, to the
    final claim). Policies of districts with no on-account due are left out.

    Returns
    -------
    pandas.DataFrame or None
        :data:`ON_ACCOUNT_COLUMNS`, sorted like the ledger: ``on_account_payout`` [Rp, int64]
        = ``round_rupiah(sum_insured × on_account_rate)``.

    Notes
    -----
    The ledger (``payouts.csv``) never deducts these amounts. An in-season on-account
    batch (``panen run --as-of`` with ``settlement:``) pays them per payee, flagged
    recoverable (:func:`panen.engine.pipeline.inseason.on_account_due`), and a final batch
    through the settlement store pays only what is still owed after what was actually
    paid on account. Without a store an insurer deducts a paid advance itself.
    """
    tables = rate_tables(results, covers, zoned, variable="on_account_rate")
    if not tables:
        return None
    mine = valid[valid["product_id"].isin(list(tables)).to_numpy()]
    ledger = build_ledger(mine, tables, {k: rules[k] for k in tables}, {k: None for k in tables})
    reconcile(ledger, district_totals(ledger))
    frame = ledger.select(["policy_id", "farmer_id", "district_id", "product_id", "sum_insured", "payout_rate",
                           "gross_payout"]).to_pandas()
    frame = frame[frame["payout_rate"].notna().to_numpy()].rename(
        columns={"payout_rate": "on_account_rate", "gross_payout": "on_account_payout"})
    for col in ("policy_id", "farmer_id", "district_id", "product_id"):
        frame[col] = frame[col].astype(str)
    frame["on_account_payout"] = frame["on_account_payout"].astype(np.int64)
    frame["sum_insured"] = frame["sum_insured"].astype(np.int64)
    return frame[list(ON_ACCOUNT_COLUMNS)].reset_index(drop=True)


def adjust_claims(cover: NamedPerilCover, opened: Mapping[str, OpenedInput], valid: pd.DataFrame,
                  season: Season) -> tuple[pd.DataFrame, PolicyAmounts, pd.DataFrame]:
    """A named-peril cover's field assessments decided plot by plot, and rolled up per policy.

    Returns
    -------
    claims
        :func:`panen.engine.perils.adjuster.adjust`'s per-plot decisions.
    amounts
        Per policy of the cover: gross [Rp], outcome, reason
        (:func:`panen.engine.perils.adjuster.policy_amounts`).
    policies
        The cover's valid policies.
    """
    from panen.engine.perils.adjuster import adjust, policy_amounts

    mine = valid[(valid["product_id"] == cover.id).to_numpy()]
    assessments = opened[cover.inputs()[0]].data
    start, end = season.start.astype(dt.date), season.end.astype(dt.date)
    claims, rows = adjust(assessments, cover.wording, season_start=start, season_end=end, policies=mine,
                          return_rows=True)
    amounts = policy_amounts(claims, mine, cover.wording, season_start=season.start, claim_rows=rows)
    return claims, amounts, mine


# --------------------------------------------------------------------------- 6. settle
@dataclass
class Settlement:
    """The money of a run: ledger, reconciled district totals, payments.

    Attributes
    ----------
    ledger
        One row per policy and cover (:func:`panen.engine.settlement.ledger.build_ledger`),
        money in integer rupiah.
    totals
        Per cover and district, plus a grand total [Rp] (reconciled with the ledger).
    payments
        Payable amount per payee and cover [Rp].
    """

    ledger: pa.Table
    totals: pd.DataFrame
    payments: pd.DataFrame


def settle(valid: pd.DataFrame, sources: Mapping[str, RateTable | PolicyAmounts], rules: Mapping[str, ProductRules],
           terms: Mapping[str, Any], *, payments_by: str, season_id: str,
           parquet_path: Path | None = None, season_end: Any = None) -> Settlement:
    """Every cover through one path: ledger → terms → rounding → totals (reconciled) → payments.

    ``season_end`` (a date) is an index cover's event date for a deductible limited to the
    policy's first months, and the due date of the season's payments (instalments count
    from it).
    """
    ledger = build_ledger(valid, sources, rules, terms, parquet_path=parquet_path, season_end=season_end)
    totals = district_totals(ledger)
    reconcile(ledger, totals)
    schedule = {pid: t.instalments for pid, t in terms.items() if t is not None}
    paid = payments(ledger, by=payments_by, season_id=season_id, instalments=schedule, due=season_end)
    net = int(totals.loc[totals["level"] == "total", "net_payout"].sum())
    if int(paid["amount"].sum()) != net:  # payments (instalments included) pay the ledger's net, to the rupiah
        raise ReconciliationError(f"payments sum to Rp {int(paid['amount'].sum()):,}, the ledger's net payouts "
                                  f"to Rp {net:,}")
    return Settlement(ledger=ledger, totals=totals, payments=paid)


def district_index(results: Mapping[str, xr.Dataset]) -> pd.DataFrame:
    """``district_index.csv``: the audit trail of every index, per district, cohort and phase.

    Columns ``district_id, product_id, cohort, phase, index_value, payout_rate`` (the
    phase's weighted rate), ``valid_fraction, flagged, reason``. A row is flagged when its
    phase has no index or when its district and cohort could not be assessed (then
    ``reason`` says why), so a withheld district never shows an unflagged row. A phase without
    an index in a district that was nevertheless settled (a trigger that pays on something
    else, e.g. a notified prevented sowing) is flagged with the reason "no index value; the
    district was settled without it", never "missing data".
    """
    frames = []
    for pid, ds in results.items():
        df = ds[["index_value", "phase_rate", "valid_fraction"]].to_dataframe().reset_index()
        df = df.rename(columns={"district": "district_id", "phase_rate": "payout_rate"})
        df.insert(1, "product_id", pid)
        level = ds[["flagged", "reason"]].to_dataframe().reset_index().rename(columns={"district": "district_id"})
        df = df.merge(level, on=["district_id", "cohort"], how="left", validate="many_to_one")
        settled = ~df["flagged"].fillna(False).astype(bool)  # the district and cohort were assessed
        df["flagged"] = df["index_value"].isna() | ~settled
        # a phase without an index in a district settled without it (e.g. a notified prevented sowing)
        without = np.where(settled, "no index value; the district was settled without it", "missing data")
        df["reason"] = np.where(df["flagged"], df["reason"].fillna("").mask(df["reason"].fillna("") == "", without),
                                "")
        df["cohort"] = pd.to_datetime(df["cohort"]).dt.strftime("%Y-%m-%d")
        frames.append(df[["district_id", "product_id", "cohort", "phase", "index_value", "payout_rate",
                          "valid_fraction", "flagged", "reason"]])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["district_id", "product_id", "cohort", "phase", "index_value", "payout_rate", "valid_fraction",
                 "flagged", "reason"])
    return out.sort_values(["product_id", "district_id", "cohort", "phase"], kind="stable").reset_index(drop=True)


#: Columns of :func:`premiums` before the premium rule's own (:data:`panen.engine.maths.premium.PREMIUM_COLUMNS`).
PREMIUM_KEYS: tuple[str, ...] = ("policy_id", "farmer_id", "district_id", "product_id", "sum_insured")


def premiums(ledger: pa.Table, covers: list[Cover], valid: pd.DataFrame) -> pd.DataFrame:
    """Premium of every policy of every cover that prices one (:meth:`Cover.premiums`).

    An index product prices one when its term sheet gives ``premium.rate`` (on the ledger's
    sum insured); a named-peril wording always does (its rate on the insured area, capped
    per farmer). One row per policy: :data:`PREMIUM_KEYS`, then the premium rule's columns
    (rate after the tariff band, its flag, and ``gross_premium, no_claim_discount,
    rate_premium, charges, premium, subsidy, farmer_share`` [Rp, int64]), sorted by
    product and policy.
    """
    from panen.engine.maths.premium import PREMIUM_COLUMNS

    import pyarrow.compute as pc

    # Arrow throughout: ids are matched by one hash lookup and sorted once (a pandas merge and
    # sort of the string ids took 7.3 s for 2.5 M AUTP policies, this takes under 2 s)
    tables = []
    product = ledger["product_id"]
    product = pc.cast(product, pa.string()) if pa.types.is_dictionary(product.type) else product
    extra = [c for c in ("area_ha", "no_claim_years") if c in valid.columns]
    for c in covers:
        if not c.prices_premium:
            continue
        rows = ledger.filter(pc.equal(product, c.id)).select(list(PREMIUM_KEYS))
        if not rows.num_rows:
            continue
        rows = pa.table({k: pc.cast(rows[k], pa.string()) if pa.types.is_dictionary(rows[k].type) else rows[k]
                         for k in PREMIUM_KEYS})
        mine = valid.loc[(valid["product_id"] == c.id).to_numpy(bool), ["policy_id", *extra]]
        # in the register's order: the order a per-farmer area cap is filled in at settlement
        ids = pa.array(mine["policy_id"].astype(str), pa.string())
        at = pc.index_in(ids, value_set=rows["policy_id"].combine_chunks())
        if at.null_count or len(ids) != rows.num_rows:  # the ledger has one row per valid policy
            raise RuntimeError(f"premiums: the ledger and the register disagree on the policies of {c.id!r}")
        rows = rows.take(at)
        policies = pd.DataFrame({"farmer_id": rows["farmer_id"].to_pandas(),
                                 "sum_insured": rows["sum_insured"].to_numpy(),
                                 **{e: mine[e].to_numpy() for e in extra}})
        money = c.premiums(policies)
        if money is None:
            continue
        money = pa.Table.from_pandas(money.reset_index(drop=True), preserve_index=False)
        tables.append(pa.table({**{k: rows[k] for k in PREMIUM_KEYS},
                                **{k: money[k] for k in PREMIUM_COLUMNS}}))
    columns = [*PREMIUM_KEYS, *PREMIUM_COLUMNS]
    if not tables:
        return pd.DataFrame(columns=columns)
    out = pa.concat_tables(tables)
    out = out.take(pc.sort_indices(out, sort_keys=[("product_id", "ascending"), ("policy_id", "ascending")]))
    return out.to_pandas()


def product_summary(ledger: pa.Table, covers: list[Cover], valid: pd.DataFrame,
                    premium_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per cover: policies, districts, districts triggered, policies paid/withheld/referred, money [Rp].

    A cover that prices a premium also gets its premium, government subsidy and farmers'
    share [Rp]: the sums of :func:`premiums` (``premium_table``, computed when not given),
    so they reconcile to the rupiah with the per-policy amounts. Computed with Arrow
    group-bys on the ledger (no per-policy Python objects).
    """
    import pyarrow.compute as pc

    t = ledger
    product = pc.cast(t["product_id"], pa.string()) if pa.types.is_dictionary(t["product_id"].type) \
        else t["product_id"]
    district = pc.cast(t["district_id"], pa.string()) if pa.types.is_dictionary(t["district_id"].type) \
        else t["district_id"]
    status = pc.cast(t["status"], pa.string()) if pa.types.is_dictionary(t["status"].type) else t["status"]
    keys = pa.table({
        "product_id": product, "district_id": district,
        "paid": pc.cast(pc.greater(t["net_payout"], 0), pa.int64()),
        "withheld": pc.cast(pc.equal(status, "withheld_missing_data"), pa.int64()),
        "referred": pc.cast(pc.equal(status, "referred"), pa.int64()),
        "triggered": pc.fill_null(pc.greater(t["payout_rate"], 0), False),
        "sum_insured": t["sum_insured"], "net_payout": t["net_payout"],
    })
    per = keys.group_by("product_id", use_threads=False).aggregate(
        [("district_id", "count"), ("district_id", "count_distinct"), ("paid", "sum"), ("withheld", "sum"),
         ("referred", "sum"), ("sum_insured", "sum"), ("net_payout", "sum")])
    trig = keys.filter(keys["triggered"]).group_by("product_id", use_threads=False).aggregate(
        [("district_id", "count_distinct")])
    triggered = dict(zip(trig["product_id"].to_pylist(), trig["district_id_count_distinct"].to_pylist()))
    out = pd.DataFrame({
        "product_id": per["product_id"].to_pylist(),
        "policies": per["district_id_count"].to_numpy().astype(np.int64),
        "districts": per["district_id_count_distinct"].to_numpy().astype(np.int64),
        "districts_triggered": [int(triggered.get(p, 0)) for p in per["product_id"].to_pylist()],
        "policies_paid": per["paid_sum"].to_numpy().astype(np.int64),
        "policies_withheld": per["withheld_sum"].to_numpy().astype(np.int64),
        "policies_referred": per["referred_sum"].to_numpy().astype(np.int64),
        "sum_insured": per["sum_insured_sum"].to_numpy().astype(np.int64),
        "net_payout": per["net_payout_sum"].to_numpy().astype(np.int64),
    }).sort_values("product_id", kind="stable").reset_index(drop=True)
    prem = premiums(ledger, covers, valid) if premium_table is None else premium_table
    if len(prem):
        sums = prem.groupby("product_id", sort=True)[["premium", "subsidy", "farmer_share"]].sum()
        for col in ("premium", "subsidy", "farmer_share"):
            out[col] = out["product_id"].map(sums[col]).astype("float64")  # NaN: the cover prices none
    return out


# --------------------------------------------------------------------------- 7. compare
def compare(ledger: pa.Table, claims: pd.DataFrame, valid: pd.DataFrame,
            cover: NamedPerilCover) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Index payouts beside the named-peril cover's indemnities, per farmer; basis-risk summary.

    ``None`` when there is no index cover to compare (a named-peril-only run).
    """
    from panen.engine.research.compare import basis_risk_summary, compare_farmers

    import pyarrow.compute as pc

    product = ledger["product_id"]
    product = pc.cast(product, pa.string()) if pa.types.is_dictionary(product.type) else product
    # the cover's own rows are not compared; only the columns the comparison reads are converted
    # (no policy ids: claims are linked to farmers through the register, a superset of the ledger)
    keep = [c for c in ("farmer_id", "district_id", "product_id", "sum_insured", "net_payout", "status",
                        "payout_rate") if c in ledger.column_names]
    index = ledger.select(keep).filter(pc.not_equal(product, cover.id))
    if index.num_rows == 0:
        return None
    comparison = compare_farmers(index, claims, register=valid[["policy_id", "farmer_id", "product_id"]],
                                 autp_product_id=cover.id)
    return comparison, basis_risk_summary(comparison)


def with_basis_risk(totals: pd.DataFrame, basis: pd.DataFrame) -> pd.DataFrame:
    """``summary.csv``: money totals per product and district, beside the basis-risk metrics.

    District rows get their district's metrics; one ``product`` row per product carries the
    product-wide metrics (and its money totals); the ``total`` row stays last.
    """
    metrics = [c for c in basis.columns if c not in totals.columns and c != "index_payout"]
    key = ["product_id", "district_id"]
    b = basis.assign(product_id=basis["product_id"].astype(str), district_id=basis["district_id"].astype(str))
    t = totals.assign(product_id=totals["product_id"].astype(str), district_id=totals["district_id"].astype(str))
    district = t[t["level"] == "district"].merge(b.loc[b["level"] == "district", key + metrics], on=key, how="left")
    money = [c for c in ("policies", "withheld", "referred", "area_ha", "sum_insured", "gross_payout", "deductible",
                         "net_payout") if c in district.columns]
    product = district.groupby("product_id", sort=True)[money].sum().reset_index()
    product = product.assign(level="product", district_id="").merge(
        b.loc[b["level"] == "product", ["product_id"] + metrics], on="product_id", how="left")
    return pd.concat([district, product[district.columns], t[t["level"] == "total"]], ignore_index=True)


def raise_if_referred(claims: Mapping[str, pd.DataFrame], opened: Mapping[str, OpenedInput],
                      covers: list[Cover]) -> None:
    """``--strict``: a claim referred to a person (e.g. an unknown peril name) fails the run (exit 2).

    Each of the first 50 is named by the assessments file, its text line (for a CSV whose
    reader recorded ``attrs["lines"]``) and data row (as ``rejects.csv`` gives them) and
    column ``peril``, with the reason and the peril as written; a run without ``--strict``
    lists them as ``referred`` in ``autp_claims.csv`` instead.
    """
    problems: list[Problem] = []
    total = 0
    for c in covers:
        if not isinstance(c, NamedPerilCover) or c.id not in claims:
            continue
        cl = claims[c.id]
        referred = cl[(cl["decision"] == "referred").to_numpy(bool)]
        total += len(referred)
        data = opened[c.inputs()[0]]
        info = data.info
        numbered = pd.api.types.is_integer_dtype(referred.index.dtype)
        first = referred.head(max(50 - len(problems), 0))
        locate = getattr(data.data, "attrs", {}).get("lines")
        lines = [None] * len(first)
        if numbered and callable(locate) and len(first):
            lines = [int(x) for x in locate(first.index.to_numpy(np.int64) - 1)]
        for row, line, r in zip(first.index, lines, first.itertuples()):
            problems.append(Problem(f"referred ({r.reason}): peril {r.peril!r} of policy {r.policy_id!r}, plot "
                                    f"{r.plot_id!r} matches no peril of the {c.id} wording; add the name to the "
                                    f"wording or correct the assessment", file=getattr(info, "path", None),
                                    row=int(row) if numbered else None, line=line, column="peril"))
    if problems:
        if total > len(problems):
            problems.append(Problem(f"... and {total - len(problems)} more referred claims"))
        raise InputError(problems)


def raise_if_strict(rejects: pd.DataFrame, *, first: Problem | None = None) -> None:
    """``--strict``: any rejected row fails the run (exit 2), listing the first 50 (after ``first``)."""
    if len(rejects):
        raise InputError(([first] if first is not None else []) + [
                          Problem(f"{r.reason}: {r.message}", file=r.file, row=int(r.row),
                                  column=None if pd.isna(r.column) else r.column,
                                  line=None if pd.isna(getattr(r, "line", None)) else int(r.line))
                          for r in rejects.head(50).itertuples()]
                         + ([Problem(f"... and {len(rejects) - 50} more rejected rows")] if len(rejects) > 50 else []))


# --------------------------------------------------------------------------- in season: projection
def projection(config, covers: list[Cover], season: Season, cohorts: Mapping[str, np.ndarray], zoned: Zones,
               series: Mapping[str, xr.Dataset], opened: Mapping[str, OpenedInput], valid: pd.DataFrame,
               rules: Mapping[str, ProductRules], *, as_of: dt.date | None, client=None, progress: bool = False,
               notes: list[str] | None = None, timeout: float | None = None,
               guaranteed: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """``projection.csv``: each index cover's open windows projected with analogue years (FEWS NET extended WRSI).

    Only for an in-season run (``as_of``) with a ``projection:`` section; ``None`` otherwise.
    Each history input (``projection.history``) is opened by its reader and reduced to
    district series over the analogue seasons in one streamed pass (as the season's grids);
    each projectable cover is evaluated once over every analogue year by its plugin and
    settled through the ledger (:mod:`panen.engine.research.projection`). A cover that cannot
    be projected (a yields table, no fixed windows, no history) gets rows saying why.

    Parameters
    ----------
    guaranteed
        The in-season guaranteed minimum per ``district_id, product_id`` [Rp]
        (``guaranteed``); ``None``: the closed windows' bound.
    """
    proj = getattr(config, "projection", None)
    if proj is None or as_of is None:
        return None
    from panen.engine.research.projection import (
        PROJECTION_COLUMNS,
        analogue_days,
        not_projectable,
        project_rates,
        projection_table,
        unprojectable_rows,
    )

    notes = notes if notes is not None else []
    years = list(range(proj.years[0], proj.years[1] + 1))
    kinds = {n: o.kind for n, o in opened.items()}
    index_covers = [c for c in covers if isinstance(c, IndexCover)]
    insured = {c.id: sorted(set(valid.loc[(valid["product_id"] == c.id).to_numpy(), "district_id"].astype(str))
                            & {str(d) for d in zoned.by_cover[c.id]}) for c in index_covers}
    frames, ready = [], []
    for c in index_covers:
        reason = not_projectable(c.plugin, c.params, kinds, proj.history)
        if reason is None:
            ready.append(c)
            continue
        frames.append(unprojectable_rows(c.id, insured[c.id], f"not projectable: {reason}"))
        notes.append(f"projection: {c.label} is not projected: {reason}")
    if ready:
        hist_opened: dict[str, OpenedInput] = {DISTRICTS: opened[DISTRICTS]} if DISTRICTS in opened else {}
        for name in sorted({n for c in ready for n in c.inputs()}):
            source = proj.history[name]
            hist_opened[name] = (opened[source] if source in opened
                                 else get_reader(source)().open(config.inputs[source]))
            _check_history(config, {name: opened[name].info, source: hist_opened[name].info})
        anchors = {c.id: np.concatenate([analogue_days(np.asarray(cohorts[c.id]), season, y) for y in years])
                   for c in ready}
        found: list[str] = []
        history = district_series(hist_opened, ready, anchors, client=client, progress=progress, notes=found,
                                  what=f"the analogue years {years[0]}..{years[-1]}", quality={}, timeout=timeout)
        notes.extend(f"projection history: {n}" for n in found)
        for c in ready:
            p = project_rates(c.plugin, c.params, season=season, cohorts=cohorts[c.id],
                              district_ids=zoned.by_cover[c.id], observed={n: series[n] for n in c.inputs()},
                              history={n: history[n] for n in c.inputs()}, as_of=as_of, years=years)
            floor = None
            if guaranteed is not None:
                mine = guaranteed[guaranteed["product_id"].astype(str) == c.id]
                floor = mine.set_index(mine["district_id"].astype(str))["guaranteed"]
            table, said = projection_table(p, valid, rules[c.id], c.terms, anchor=c.anchor, season_end=season.end,
                                           min_years=proj.min_years, guaranteed=floor)
            frames.append(table)
            notes.extend(p.notes + said)
    if not frames:
        return pd.DataFrame(columns=list(PROJECTION_COLUMNS))
    order = {c.id: i for i, c in enumerate(index_covers)}
    out = pd.concat(frames, ignore_index=True)
    out = out.iloc[np.lexsort((out["district_id"].to_numpy(), out["product_id"].map(order).to_numpy()))]
    return out.reset_index(drop=True)
