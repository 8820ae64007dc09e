"""Historical backtest: every configured product, every district, every past season.

``panen backtest CONFIG --years 1981-2020 --out DIR`` (and :func:`backtest` for notebooks)
replays a season's term sheets over decades of archive with the *same* engine as the
seasonal batch (:mod:`panen.engine.pipeline.run`): the same readers, the same zonal weights and
kernel, the same trigger plugins from the registry. Nothing about any trigger is
implemented twice. The orchestrator only wires:

1. open the inputs the products need (lazy), build the zonal weights once per grid;
2. reduce each grid to its district series over the time range the seasons touch, in one
   streamed Dask pass (one task per time chunk, so a 40-year daily archive never has to fit
   in memory), and compute that small ``time × district`` series **once**;
3. evaluate each product on it:

   * triggers fed by gridded series (weather index, NDVI) get **one cohort per season**
     — the season start moved to each year — and are evaluated **once** over the whole
     archive: the weather trigger cuts each cohort's windows from the one series, and the
     NDVI trigger standardises against its baseline years as in a seasonal run;
   * triggers fed by tables only (area yield) read ``season.year``: they are evaluated
     once per harvest year (cheap: tables only);

   a plugin may choose explicitly with a class attribute ``backtest_by = "cohort"`` or
   ``"season"``;
4. gather the results into one tidy table and a portfolio table; write outputs atomically.

Seasons
-------
A season is labelled by its **harvest year** ``Y`` (``season.year`` of the config, default
the year of ``season.end``): the 2023-11-01..2024-03-31 season is season 2024, and
``--years 1981-2020`` means harvest years 1981 to 2020. Season ``Y`` starts on the config's
``season.start`` moved by ``Y − season.year`` years, keeping month and day (29 February
becomes 28 February in common years). A season whose windows leave the data is kept and
**flagged** (rate NaN), never dropped and never paid.

Anchors
-------
``anchor: season_start`` products are evaluated at the season start, exactly as in the
seasonal batch. ``anchor: sowing_date`` products settle each policy on its own sowing
date, which history does not have; the backtest uses one representative anchor per season:
the season start plus ``sowing_offset`` days (default 0; ``--sowing-offset``). The offset
is recorded in the manifest.

Monthly rainfall
----------------
Weather-index phases are windows of days, and the weather trigger refuses rainfall in
mm/month (CHIRPS monthly, IMERG monthly). Daily rain is never fabricated. A phase with
``index: total`` over a window, however, only needs the *amount* of rain in the window, and
that is known from monthly totals when the window edges fall on month boundaries (the sum
of whole months). :func:`monthly_to_daily_equivalent` therefore spreads each district's
monthly total evenly over the days of its month — after the zonal mean, on the small
district series, never on the grid — so the weather trigger's own ``total`` index sums
whole months exactly. The series is labelled ``units: mm/day`` (what the trigger checks)
with ``derived_from: "monthly totals [mm/month], evenly distributed over the days of each
month"`` and ``valid_for: "total"``. Products with any other phase index (``dry_spell``,
``max_n_day``, ``rainy_days``) need true daily data and are refused
(:class:`~panen.engine.errors.DataQualityError`). A ``total`` window that cuts a month
gets that month pro rata (its days × the month's mean daily rain): a warning says so, and
the manifest lists the products concerned.

Exposure
--------
The portfolio table weighs district rates by exposure. With ``inputs.policies`` the
exposure of a district and product is the sum of its policies' sums insured [Rp] (the
register's ``sum_insured``, else ``area_ha × sum_insured_per_ha`` rounded to the rupiah, as
in the ledger) and payouts are in rupiah. Without a register every district has exposure 1
(``exposure_basis = "unit"``): the portfolio payout is then in district-equivalents and the
payout rate is the plain mean of the assessed districts' rates. Payouts are gross of
policy terms (deductibles and limits act per policy at settlement); each district's payout
is rounded to the rupiah before summing. Flagged districts pay nothing and are left out of
``exposure_assessed``; ``payout_rate = payout / exposure_assessed``.

Outputs (``out_dir``)
---------------------
``backtest.csv`` / ``backtest.parquet`` (the tidy table, ``output.formats``),
``portfolio.csv``, ``exposure.csv``, ``rejects.csv`` (register rows that could not be used;
only with a register), ``plots/payout_rate_<product>.png`` (district × season heat map) and
``plots/portfolio.png``, ``manifest.json`` (version, config and input hashes, years,
anchors, counts, notes, timings, and the analysis settings), plus the analysis outputs of
the next section when configured. Written into a staging folder and moved into place in one
rename; an existing folder is replaced only with ``force``. The named-peril adjuster
(``adjuster:``) settles one season's field assessments and is not backtested.

Pricing, basis risk and trigger design
--------------------------------------
Optional config sections (validated with the config, ignored by the seasonal ``panen run``)
add an analysis of the simulation, written beside it:

* ``pricing:`` → ``pricing.csv`` (:func:`pricing_table`: per product × district the burn
  cost, its standard error, the payout frequency, the gross premium rate with the
  loadings and risk load, the Bühlmann–Straub credibility rate and Z with the exposure
  as weights, and the premium / subsidy / farmer share on the district's exposure [Rp]
  or, without a register, per Rp 1,000,000 sum insured) and ``tail.csv``
  (:func:`tail_table`: per product the empirical 1-in-N year portfolio payout [Rp] and
  the probable maximum loss, over the seasons without a flagged district);
* ``loss_reference:`` → ``loss_reference.csv`` (a realised loss rate per district and
  season: the yields shortfall below the normal of the preceding years,
  :func:`yield_losses`, or a table, :func:`read_losses`), ``basis_risk.csv``
  (:func:`basis_risk`: POD, FAR, threat score, unpaid loss shares, Spearman and hedging
  effectiveness with bootstrap intervals, per product × district and per product) and
  ``plots/loss_vs_payout_<product>.png``;
* ``design:`` (or ``optimise=True`` / ``--optimise``; needs a loss reference) → the
  strike/exit search on the weather-index products (:func:`design_search`):
  ``design_candidates.csv``, ``design_chosen.csv``, ``design_frontier.csv``,
  ``plots/tradeoff_<product>.png`` and the chosen term sheet ``design_<product>.yaml``.

All of it is computed by :mod:`panen.engine.research.pricing`, :mod:`panen.engine.research.basis` and
:mod:`panen.engine.research.design` from the two hook tables below; this module only wires. Flagged
district-seasons are left out of every statistic (never priced as "no payout").

Hook for pricing and basis risk
-------------------------------
:func:`simulation_table` returns the tidy simulation table (``district_id, product_id,
season, phase, index_value, payout_rate`` + ``season_payout_rate, valid_fraction,
flagged``) and :func:`exposure_table` the exposure (``district_id, product_id, exposure,
exposure_basis``) that burn-cost, credibility and basis-risk code consumes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from panen.engine import __version__
from panen.engine.api import Season, TriggerInputs
from panen.engine.config import RunConfig, load_config, parse_config
from panen.engine.errors import ConfigError, DataQualityError, InputError, Problem
from panen.engine.registry import get_trigger
from panen.engine.infra.staging import discard, new_stage, publish
from panen.engine.maths.yieldhistory import (normal_yield_best_of, normal_yield_mean, select_season, shortfall_rate, threshold_yield,
                           wide_table, year_columns)

__all__ = [
    "BacktestResult",
    "DesignOutcome",
    "backtest",
    "basis_risk",
    "design_search",
    "exposure_table",
    "load_backtest_config",
    "monthly_to_daily_equivalent",
    "parse_years",
    "pricing_summary",
    "pricing_table",
    "read_losses",
    "season_anchors",
    "simulation_table",
    "tail_table",
    "yield_losses",
]

#: Variables every trigger result carries (api.TriggerResult); other variables are dropped.
_STANDARD = ("payout_rate", "flagged", "index_value", "phase_rate", "valid_fraction")
#: Phase indices computable from monthly totals (see the module docstring).
_MONTHLY_OK = frozenset({"total"})
#: Columns of the tidy table, in order.
TABLE_COLUMNS = ("district_id", "product_id", "season", "anchor", "phase", "index_value", "phase_rate",
                 "payout_rate", "valid_fraction", "flagged")
#: Columns of the portfolio table, in order.
PORTFOLIO_COLUMNS = ("season", "product_id", "districts", "districts_triggered", "districts_flagged", "exposure",
                     "exposure_assessed", "payout", "payout_rate", "exposure_basis")
_YEAR_RANGE = (1800, 2200)


@dataclass
class BacktestResult:
    """What a backtest produced.

    Attributes
    ----------
    table
        Tidy table, one row per district × season × product × phase: ``district_id,
        product_id, season`` [harvest year], ``anchor`` [date of day 0 of the windows],
        ``phase, index_value`` [index units], ``phase_rate`` [fraction: the phase's weighted
        rate], ``payout_rate`` [fraction: the product's capped season total, repeated on each
        phase row], ``valid_fraction`` [0..1], ``flagged`` (the season could not be assessed:
        ``payout_rate`` is NaN).
    portfolio
        Per season and product: ``districts, districts_triggered, districts_flagged,
        exposure, exposure_assessed, payout, payout_rate, exposure_basis`` (see the module
        docstring, "Exposure").
    exposure
        ``district_id, product_id, exposure, exposure_basis``.
    years
        ``(first, last)`` harvest years.
    counts, timings, notes
        Row counts, step timings [s], and the decisions and warnings of the run.
    out_dir, plots, files
        Where outputs were written (``None``/empty when ``out_dir`` was not given).
    pricing, tail, season_totals
        With a ``pricing:`` section: :func:`pricing_table`, :func:`tail_table` and the
        complete portfolio payout per season of each product [Rp]; else ``None``.
    losses, loss_threshold, basis_risk
        With a ``loss_reference:`` section: the loss reference (``district_id, season,
        loss``), its event threshold and :func:`basis_risk`; else ``None``.
    design
        With ``design:`` or ``optimise``: the :class:`DesignOutcome`; else ``None``.
    summary
        :func:`pricing_summary` when pricing or a loss reference was configured.
    """

    table: pd.DataFrame
    portfolio: pd.DataFrame
    exposure: pd.DataFrame
    years: tuple[int, int]
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    pricing: pd.DataFrame | None = None
    tail: pd.DataFrame | None = None
    season_totals: dict[str, pd.Series] | None = None
    losses: pd.DataFrame | None = None
    loss_threshold: float = 0.0
    basis_risk: pd.DataFrame | None = None
    design: Any = None
    summary: pd.DataFrame | None = None


# --------------------------------------------------------------------------- small public helpers
def parse_years(text: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"1981-2020"`` (or ``"2020"``, or ``(1981, 2020)``) → ``(1981, 2020)``, inclusive harvest years.

    Raises
    ------
    ConfigError
        Not ``YYYY`` or ``YYYY-YYYY``, first year after the last, or outside 1800–2200.

    Examples
    --------
    >>> parse_years("1981-2020"), parse_years("2024")
    ((1981, 2020), (2024, 2024))
    """
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise ConfigError(Problem(f"years must be (first, last); got {text!r}", key="--years"))
        first, last = (int(v) for v in text)
    else:
        m = re.fullmatch(r"\s*(\d{4})\s*(?:[-–:]\s*(\d{4})\s*)?", str(text))
        if m is None:
            raise ConfigError(Problem(f"must be YYYY or YYYY-YYYY (e.g. 1981-2020); got {text!r}",
                                      key="--years"))
        first = int(m.group(1))
        last = int(m.group(2) or m.group(1))
    if first > last:
        raise ConfigError(Problem(f"the first year ({first}) is after the last ({last})", key="--years"))
    lo, hi = _YEAR_RANGE
    if first < lo or last > hi:
        raise ConfigError(Problem(f"years must lie in {lo}..{hi}; got {first}-{last}", key="--years"))
    return first, last


def _shift_year(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February in a common year
        return d.replace(year=d.year + years, day=28)


def season_anchors(season, years: tuple[int, int]) -> pd.DataFrame:
    """Start and end of every historical season: the config's season moved to each harvest year.

    Parameters
    ----------
    season
        The config's ``season`` section (``start``, ``end``, ``harvest_year``).
    years
        ``(first, last)`` harvest years, inclusive.

    Returns
    -------
    pandas.DataFrame
        ``season`` [harvest year], ``start``, ``end`` (``datetime64[D]`` as numpy dates).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = SimpleNamespace(start=dt.date(2023, 11, 1), end=dt.date(2024, 3, 31), harvest_year=2024)
    >>> season_anchors(s, (1998, 1999))["start"].astype(str).tolist()
    ['1997-11-01', '1998-11-01']
    """
    rows = []
    for y in range(years[0], years[1] + 1):
        k = y - season.harvest_year
        rows.append({"season": y, "start": np.datetime64(_shift_year(season.start, k), "D"),
                     "end": np.datetime64(_shift_year(season.end, k), "D")})
    return pd.DataFrame(rows)


def monthly_to_daily_equivalent(series: xr.Dataset) -> xr.Dataset:
    """Spread monthly district totals evenly over the days of each month (for ``total`` phases only).

    Parameters
    ----------
    series
        District series from :func:`panen.engine.maths.zonal.zonal_mean` of monthly rainfall:
        ``mean`` [mm/month] and ``valid_fraction`` [1] on ``(time, district)``, one step per
        calendar month (any day of the month as its stamp), gap-free (the reader inserts
        missing months as NaN).

    Returns
    -------
    xarray.Dataset
        Daily steps from the first day of the first month to the last day of the last:
        ``mean`` = the month's total / its number of days, with ``units: "mm/day"``,
        ``derived_from`` and ``valid_for: "total"`` attributes; ``valid_fraction`` = the
        month's. The sum over whole months equals the monthly totals (exact up to
        float rounding); any other daily statistic of this series is meaningless, which is
        why only ``total`` phases may use it.

    Examples
    --------
    >>> t = pd.to_datetime(["2021-01-01", "2021-02-01"])
    >>> s = xr.Dataset({"mean": (("time", "district"), [[31.0], [56.0]], {"units": "mm/month"}),
    ...                 "valid_fraction": (("time", "district"), [[1.0], [1.0]])},
    ...                coords={"time": t, "district": ["a"]})
    >>> d = monthly_to_daily_equivalent(s)
    >>> d.sizes["time"], float(d["mean"][0, 0]), float(d["mean"][-1, 0]), float(d["mean"].sum())
    (59, 1.0, 2.0, 87.0)
    """
    mean = series["mean"].transpose("time", "district")
    units = mean.attrs.get("units")
    if units not in (None, "mm/month"):
        raise DataQualityError(f"monthly_to_daily_equivalent needs monthly totals [mm/month]; got {units!r}")
    months = pd.DatetimeIndex(mean["time"].values).to_period("M")
    if months.has_duplicates or (len(months) > 1 and not (np.diff(months.asi8) == 1).all()):
        raise DataQualityError("monthly rainfall must have exactly one step per calendar month, without gaps")
    days = months.days_in_month.to_numpy()
    first = months[0].start_time.to_datetime64().astype("datetime64[D]")
    time_d = first + np.arange(int(days.sum())).astype("timedelta64[D]")
    m = np.asarray(mean.values, dtype=np.float64) / days[:, None]
    v = np.asarray(series["valid_fraction"].transpose("time", "district").values, dtype=np.float64)
    attrs = {"units": "mm/day", "frequency": "day",
             "derived_from": "monthly totals [mm/month], evenly distributed over the days of each month",
             "valid_for": "total"}
    coords = {"time": time_d.astype("datetime64[ns]"), "district": mean["district"].values}
    return xr.Dataset({"mean": (("time", "district"), np.repeat(m, days, axis=0), attrs),
                       "valid_fraction": (("time", "district"), np.repeat(v, days, axis=0),
                                          dict(series["valid_fraction"].attrs))}, coords=coords)


def load_backtest_config(path: str | Path) -> RunConfig:
    """Load a run config for a backtest: as :func:`~panen.engine.config.load_config`, but a
    policy register is optional (it only weighs the portfolio; without one every district
    has exposure 1). Every other rule of the run config holds."""
    path = Path(path)
    try:
        return load_config(path)
    except ConfigError as exc:
        from panen.engine.infra.yamlio import load_located_yaml

        try:
            doc = load_located_yaml(path)
        except ConfigError:
            raise exc from None
        data = doc.data
        inputs = data.get("inputs") if isinstance(data, dict) else None
        if not isinstance(inputs, dict) or inputs.get("policies") is not None:
            raise
        # a placeholder that exists (the config's own folder) satisfies the settlement
        # rule "products need inputs.policies"; it is removed again right away
        data = {**data, "inputs": {**inputs, "policies": {"path": "."}}}
        cfg = parse_config(data, base_dir=path.parent, source=path, lines=doc.lines, sha256=doc.sha256)
        return dataclasses.replace(cfg, inputs=cfg.inputs.model_copy(update={"policies": None}))


def simulation_table(result: BacktestResult) -> pd.DataFrame:
    """The tidy simulation table for pricing and basis-risk code.

    Columns ``district_id, product_id, season`` (int, harvest year), ``phase,
    index_value, payout_rate`` (the phase's weighted rate [fraction]), then
    ``season_payout_rate`` (the product's capped season rate — what is paid),
    ``valid_fraction, flagged``. Burn cost uses one ``season_payout_rate`` per district,
    product and season (e.g. ``drop_duplicates(["district_id", "product_id", "season"])``).
    """
    t = result.table
    return pd.DataFrame({
        "district_id": t["district_id"], "product_id": t["product_id"], "season": t["season"].astype("int64"),
        "phase": t["phase"], "index_value": t["index_value"], "payout_rate": t["phase_rate"],
        "season_payout_rate": t["payout_rate"], "valid_fraction": t["valid_fraction"], "flagged": t["flagged"],
    })


def exposure_table(result: BacktestResult) -> pd.DataFrame:
    """``district_id, product_id, exposure`` [Rp, or 1 per district], ``exposure_basis`` (register | unit)."""
    return result.exposure.copy()


# --------------------------------------------------------------------------- the orchestrator
def backtest(config: RunConfig | str | Path, years: tuple[int, int] | str = (1981, 2020), *,
             out_dir: str | Path | None = None, force: bool = False, scheduler: str | None = None,
             progress: bool = False, sowing_offset: int = 0, optimise: bool = False) -> BacktestResult:
    """Evaluate every configured product for every district and historical season.

    Parameters
    ----------
    config
        A validated run config, or the path of one (read with :func:`load_backtest_config`:
        a policy register is optional).
    years
        ``(first, last)`` harvest years, inclusive, or ``"1981-2020"``.
    out_dir
        Write ``backtest.csv`` / ``backtest.parquet``, ``portfolio.csv``, ``exposure.csv``,
        plots and ``manifest.json`` here (staged, then moved into place in one rename). It
        must not exist unless ``force``. ``None``: compute only.
    force
        Replace an existing ``out_dir``.
    scheduler
        Address of a Dask distributed scheduler; ``None`` uses local threads.
    progress
        Progress bar for the streamed zonal pass (stderr).
    sowing_offset
        Days after the season start used as the representative anchor of
        ``anchor: sowing_date`` products [days] (see the module docstring).
    optimise
        Run the trigger-design search on the weather-index products (also done whenever the
        config has a ``design:`` section); needs ``loss_reference:``.

    Returns
    -------
    BacktestResult
        With the config's ``pricing:`` / ``loss_reference:`` / ``design:`` sections also the
        pricing, tail, basis-risk and design results (see the module docstring, "Pricing,
        basis risk and trigger design").

    Raises
    ------
    ConfigError
        ``optimise`` (or ``design:``) without a ``loss_reference:`` section or without a
        weather-index product — checked before anything is read.
    """
    from panen.engine.pipeline.run import _compute, _Timer, _check_overlap, _client, _open_input
    from panen.engine.maths.zonal import build_weights, zonal_mean

    if not isinstance(config, RunConfig):
        config = load_backtest_config(config)
    years = parse_years(years)
    if out_dir is not None:
        out_dir = Path(out_dir).resolve()
        if out_dir.exists() and not force:
            raise InputError(Problem(f"output folder {out_dir} already exists; pass --force to replace it"))
    if optimise or config.design is not None:
        why = "--optimise" if optimise else "the design section"
        if config.loss_reference is None:
            raise ConfigError(Problem(f"{why} needs a loss_reference section (source: yields, or a path to a "
                                      f"table of district_id, season, loss) to design triggers against",
                                      key="loss_reference"))
        if not design_products(config):
            raise ConfigError(Problem(f"{why}: the trigger design tunes weather_index products, and the config has "
                                      f"none", key="design" if config.design is not None else None))
    if not -366 <= int(sowing_offset) <= 366:
        raise ConfigError(Problem(f"sowing offset must be within ±366 days; got {sowing_offset}", key="--sowing-offset"))
    t = _Timer()
    t_start = time.perf_counter()
    notes: list[str] = []
    seasons = season_anchors(config.season, years)
    season_years = seasons["season"].to_numpy(np.int64)
    plugins = {p.id: get_trigger(p.trigger) for p in config.products}
    anchors = {p.id: _anchors(p, seasons, int(sowing_offset)) for p in config.products}
    if sowing_offset and not any(p.anchor == "sowing_date" for p in config.products):
        notes.append("--sowing-offset given but no product is anchored on the sowing date; ignored")
    for p in config.products:
        if p.anchor == "sowing_date":
            notes.append(f"product {p.id!r} (anchor: sowing_date) is evaluated at one representative anchor per "
                         f"season: the season start + {int(sowing_offset)} days")

    with t("read_inputs"):
        from panen.datasets.districts import read_districts

        districts = None
        if config.inputs.districts is not None:
            districts = read_districts(config.inputs.districts.path, id_column=config.inputs.districts.id_column,
                                       layer=config.inputs.districts.layer)
        grids: dict[str, xr.DataArray] = {}
        ready: dict[str, xr.Dataset] = {}
        tables: dict[str, pd.DataFrame] = {}
        for name in sorted({n for pl in plugins.values() for n in pl.inputs}):
            kind, obj = _open_input(name, getattr(config.inputs, name))
            {"grid": grids, "series": ready, "table": tables}[kind][name] = obj
    if districts is not None:
        district_ids = np.asarray(districts["district_id"].astype(str))
    else:  # a table-only backtest (area yield): the districts are those of the tables
        ids = set()
        for tab in tables.values():
            if "district_id" in tab.columns:
                ids |= set(tab["district_id"].astype(str))
        district_ids = np.array(sorted(ids), dtype=object)

    monthly = {name for name, g in grids.items() if g.attrs.get("frequency") == "month"}
    for name in monthly:
        users = [p for p in config.products if name in plugins[p.id].inputs]
        _check_monthly_products(users, name, getattr(config.inputs, name).path)
        prorated = [p.id for p in users if _cuts_months(p, anchors[p.id])]
        notes.append(f"{name}: monthly totals spread evenly over each month's days (mm/day equivalent, "
                     f"valid for 'total' phases only)")
        if prorated:
            msg = (f"{name} is monthly: phase windows of product(s) {', '.join(map(repr, prorated))} cut calendar "
                   f"months in some seasons; those months count pro rata (days in the window × the month's "
                   f"mean daily rain)")
            warnings.warn(msg, UserWarning, stacklevel=2)
            notes.append(msg)

    client = _client(scheduler)
    try:
        with t("zonal_weights"):
            lazy: dict[str, xr.Dataset] = {}
            for name, grid in grids.items():
                window = _needed_time(config.products, plugins, anchors, name, monthly=name in monthly)
                if window is not None:
                    grid = grid.sel(time=slice(*window))
                if grid.sizes["time"] == 0:
                    raise DataQualityError(Problem(
                        f"the {name} data has no time step in the seasons {years[0]}-{years[1]} need "
                        f"({window[0]} .. {window[1]})", file=getattr(config.inputs, name).path))
                weights = build_weights(districts, grid.isel(time=0), id_column="district_id")
                _check_overlap(weights, districts, grid, name, getattr(config.inputs, name).path)
                lazy[name] = zonal_mean(grid, weights)
        with t("zonal_compute"):
            series = _compute(lazy, client=client, progress=progress, optimize_graph=True)  # plain zonal series: fusion is safe
    finally:
        if client is not None:
            client.close()
    for name in monthly:
        series[name] = monthly_to_daily_equivalent(series[name])
    series.update(ready)

    with t("evaluate"):
        frames = []
        base = Season(config.season.id, np.datetime64(config.season.start, "D"),
                      np.datetime64(config.season.end, "D"), config.season.harvest_year)
        for p in config.products:
            plugin = plugins[p.id]
            feeds = {n: series[n] for n in plugin.inputs if n in series}
            tabs = {n: tables[n] for n in plugin.inputs if n in tables}
            by = getattr(plugin, "backtest_by", None) or ("cohort" if feeds else "season")
            a = anchors[p.id]
            if by == "cohort":
                ds = plugin().evaluate(p, TriggerInputs(season=base, cohorts=a, district_ids=district_ids,
                                                        series=feeds, tables=tabs)).data
                ds = _standard(ds, district_ids)
            else:
                parts = []
                for y, start, end, anchor in zip(season_years, seasons["start"], seasons["end"], a):
                    s = Season(str(int(y)), np.datetime64(start, "D"), np.datetime64(end, "D"), int(y))
                    res = plugin().evaluate(p, TriggerInputs(season=s, cohorts=np.array([anchor], "datetime64[D]"),
                                                             district_ids=district_ids, series=feeds, tables=tabs))
                    parts.append(_standard(res.data, district_ids))
                ds = xr.concat(parts, dim="cohort", coords="minimal", compat="override", join="override")
            ds = _compute_small(ds)
            frames.append(_tidy(ds, p.id, season_years, a))
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(TABLE_COLUMNS))
        table = table.sort_values(["product_id", "district_id", "season", "phase"], kind="stable").reset_index(drop=True)

    with t("portfolio"):
        exposure, policy_counts, rejects = _exposure(config, district_ids)
        portfolio = portfolio_table(table, exposure)

    season_rows = table.drop_duplicates(["product_id", "district_id", "season"])
    counts = {
        "products": len(config.products),
        "districts": int(len(district_ids)),
        "seasons": int(len(season_years)),
        "rows": int(len(table)),
        "district_seasons": int(len(season_rows)),
        "district_seasons_flagged": int(season_rows["flagged"].sum()),
        "district_seasons_paid": int((season_rows["payout_rate"] > 0).sum()),
        **policy_counts,
    }
    result = BacktestResult(table=table, portfolio=portfolio, exposure=exposure, years=years, counts=counts,
                            timings=t.timings, notes=notes)
    if config.pricing is not None or config.loss_reference is not None or optimise or config.design is not None:
        with t("analysis"):
            _analyse(config, result, tables, district_ids, optimise=optimise)
    if out_dir is not None:
        with t("write"):
            _write(result, config, out_dir, rejects=rejects, scheduler=scheduler, sowing_offset=int(sowing_offset),
                   t_start=t_start)
    t.timings["total"] = round(time.perf_counter() - t_start, 3)
    return result


def _write_analysis(result: BacktestResult, stage: Path) -> dict[str, Path]:
    """Write the pricing, tail, loss-reference, basis-risk and design tables and plots into ``stage``."""
    from panen.engine.infra.atomic import write_table_atomic

    if result.pricing is not None:
        write_table_atomic(result.pricing, stage / "pricing.csv", "csv")
    if result.tail is not None:
        write_table_atomic(result.tail, stage / "tail.csv", "csv")
    if result.losses is not None:
        write_table_atomic(result.losses, stage / "loss_reference.csv", "csv")
    if result.basis_risk is not None:
        write_table_atomic(result.basis_risk, stage / "basis_risk.csv", "csv")
    if result.design is not None:
        for what, name in (("designs", "design_candidates"), ("chosen", "design_chosen"),
                           ("frontier", "design_frontier")):
            write_table_atomic(result.design.table(what), stage / f"{name}.csv", "csv")
        for pid in result.design.results:
            text = _term_sheet_yaml(result.design, pid)
            if text is not None:
                (stage / f"design_{_safe_name(pid)}.yaml").write_text(text, encoding="utf-8")
    if result.losses is None and result.design is None:
        return {}
    return write_analysis_plots(result, stage / "plots")


def _analysis_manifest(config: RunConfig, result: BacktestResult) -> dict[str, Any]:
    """What the analysis sections were (settings and the loss table's hash), for the manifest."""
    from panen.engine.infra.manifest import sha256_file

    out: dict[str, Any] = {}
    if config.pricing is not None:
        out["pricing"] = config.pricing.model_dump(mode="json")
    if config.loss_reference is not None:
        ref = config.loss_reference.model_dump(mode="json")
        if getattr(config.loss_reference, "path", None) is not None:
            ref["sha256"] = sha256_file(Path(config.loss_reference.path))
        out["loss_reference"] = ref
        out["basis_bootstrap"] = dict(BASIS_BOOTSTRAP)
    if result.design is not None:
        from panen.engine.config import DesignConfig

        out["design"] = (config.design or DesignConfig()).model_dump(mode="json")
        out["design"]["unresolved"] = int(sum(len(r.unresolved) for r in result.design.results.values()))
    return out


# --------------------------------------------------------------------------- wiring helpers
def _anchors(params, seasons: pd.DataFrame, sowing_offset: int) -> np.ndarray:
    """Window anchors, one per season: the season start (+ the offset for sowing-date products)."""
    start = seasons["start"].to_numpy().astype("datetime64[D]")
    if params.anchor == "sowing_date":
        start = start + np.timedelta64(sowing_offset, "D")
    return start


def _check_monthly_products(products, name: str, path) -> None:
    """Only products whose every phase is a ``total`` may use monthly totals; list the others."""
    problems = []
    for p in products:
        phases = getattr(p, "phases", None)
        if phases is None:
            problems.append(Problem(f"product {p.id!r} (trigger {p.trigger}) cannot use monthly {name}: only "
                                    f"phases with index 'total' can be computed from monthly totals", file=path))
            continue
        for ph in phases:
            if ph.index not in _MONTHLY_OK:
                problems.append(Problem(
                    f"product {p.id!r}, phase {ph.name!r}: index {ph.index!r} needs true daily rainfall; the {name} "
                    f"input is monthly [mm/month], from which only 'total' phases can be computed (panen never "
                    f"invents daily rain)", file=path))
    if problems:
        raise DataQualityError(problems)


def _cuts_months(params, anchors: np.ndarray) -> bool:
    """True when some phase window of some season starts or ends inside a calendar month."""
    for ph in getattr(params, "phases", None) or ():
        for edge in (ph.start_day, ph.end_day):
            d = anchors + np.timedelta64(edge, "D")
            if (d != d.astype("datetime64[M]").astype("datetime64[D]")).any():
                return True
    return False


def _needed_time(products, plugins, anchors: dict, name: str, *, monthly: bool):
    """Time slice of a grid every season's windows touch; ``None`` (everything) when a product
    using it does not declare its reach (NDVI: its baseline years)."""
    lo = hi = None
    for p in products:
        if name not in plugins[p.id].inputs:
            continue
        reach = getattr(p, "reach", None)
        if reach is None:
            return None
        a = anchors[p.id]
        s, e = a.min() + np.timedelta64(reach[0], "D"), a.max() + np.timedelta64(reach[1] - 1, "D")
        lo, hi = (s, e) if lo is None else (min(lo, s), max(hi, e))
    if lo is None:
        return None
    if monthly:  # month stamps may be on any day of the month: take whole months
        lo = lo.astype("datetime64[M]").astype("datetime64[D]")
        hi = (hi.astype("datetime64[M]") + 1).astype("datetime64[D]") - np.timedelta64(1, "D")
    return str(lo), str(hi)


def _compute_small(ds: xr.Dataset) -> xr.Dataset:
    """A trigger result on computed series is small; compute any lazy rest (same workaround as run.py)."""
    import dask

    if any(v.chunks for v in ds.data_vars.values()):
        (ds,) = dask.compute(ds, scheduler="threads", optimize_graph=False)
    return ds


def _standard(ds: xr.Dataset, district_ids: np.ndarray) -> xr.Dataset:
    """The api.TriggerResult variables, districts in ``district_ids`` order (as strings)."""
    missing = [v for v in _STANDARD if v not in ds]
    if missing:
        raise DataQualityError(f"trigger result lacks {', '.join(missing)} (api.TriggerResult)")
    ds = ds[list(_STANDARD)]
    if "district" in ds.coords:
        ds = ds.assign_coords(district=ds["district"].values.astype(str))
        if not np.array_equal(ds["district"].values, np.asarray(district_ids, dtype=str)):
            ds = ds.reindex(district=np.asarray(district_ids, dtype=str))
    else:
        ds = ds.assign_coords(district=np.asarray(district_ids, dtype=str))
    return ds


def _tidy(ds: xr.Dataset, product_id: str, season_years: np.ndarray, anchors: np.ndarray) -> pd.DataFrame:
    """(phase, district, cohort) → rows; cohort i is season ``season_years[i]``."""
    ds = ds.transpose("phase", "district", "cohort")
    nph, nd, nc = ds["index_value"].shape
    if nc != len(season_years):
        raise DataQualityError(f"product {product_id!r}: the trigger returned {nc} cohorts for "
                               f"{len(season_years)} seasons")
    total = np.asarray(ds["payout_rate"].transpose("district", "cohort").values, dtype=np.float64)
    flagged = np.asarray(ds["flagged"].transpose("district", "cohort").values, dtype=bool) | np.isnan(total)
    shape = (nph, nd, nc)
    return pd.DataFrame({
        "district_id": np.broadcast_to(ds["district"].values.astype(str)[None, :, None], shape).ravel(),
        "product_id": product_id,
        "season": np.broadcast_to(season_years[None, None, :], shape).ravel().astype(np.int64),
        "anchor": pd.to_datetime(np.broadcast_to(anchors[None, None, :], shape).ravel()).strftime("%Y-%m-%d"),
        "phase": np.broadcast_to(ds["phase"].values.astype(str)[:, None, None], shape).ravel(),
        "index_value": np.asarray(ds["index_value"].values, dtype=np.float64).ravel(),
        "phase_rate": np.asarray(ds["phase_rate"].values, dtype=np.float64).ravel(),
        "payout_rate": np.broadcast_to(total[None], shape).ravel(),
        "valid_fraction": np.asarray(ds["valid_fraction"].values, dtype=np.float64).ravel(),
        "flagged": np.broadcast_to(flagged[None], shape).ravel(),
    })


def _exposure(config: RunConfig, district_ids: np.ndarray) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame | None]:
    """Exposure per district and product: Σ sum insured of the register [Rp], else 1 per district."""
    pids = [p.id for p in config.products]
    grid = pd.MultiIndex.from_product([np.asarray(district_ids, dtype=str), pids], names=["district_id", "product_id"])
    if config.inputs.policies is None:
        out = pd.DataFrame(index=grid).reset_index()
        out["exposure"] = 1.0
        out["exposure_basis"] = "unit"
        return out, {}, None
    from panen.engine.settlement.policies import ProductRules, read_policies, validate_policies
    from panen.engine.maths.terms import round_rupiah

    register = read_policies(config.inputs.policies.path)
    # sowing dates do not enter the backtest (one representative anchor per season), so a
    # policy without one still counts towards its district's exposure
    rules = {p.id: ProductRules(sum_insured_per_ha=p.sum_insured_per_ha) for p in config.products}
    adjuster = getattr(config, "adjuster", None)
    if adjuster is not None and adjuster.id not in rules:
        # the named-peril cover settles on one season's field assessments: its rows are
        # valid policies (checked like any other), just not backtested
        rules[adjuster.id] = ProductRules(sum_insured_per_ha=1)
    valid, rejects = validate_policies(register, district_ids=set(np.asarray(district_ids, dtype=str)),
                                       products=rules)
    backtested = valid["product_id"].astype(str).isin(pids).to_numpy()
    skipped = int((~backtested).sum())
    valid = valid[backtested]
    per_ha = valid["product_id"].astype(str).map({p.id: p.sum_insured_per_ha for p in config.products})
    si = round_rupiah(valid["area_ha"].to_numpy(np.float64) * per_ha.to_numpy(np.float64)).astype(np.int64)
    if "sum_insured" in valid.columns:
        given = valid["sum_insured"]
        si = np.where(given.isna().to_numpy(), si, given.fillna(0).to_numpy(np.int64))
    frame = pd.DataFrame({"district_id": valid["district_id"].astype(str), "product_id": valid["product_id"].astype(str),
                          "exposure": si})
    agg = frame.groupby(["district_id", "product_id"])["exposure"].sum()
    out = agg.reindex(grid, fill_value=0).astype(np.int64).reset_index()
    out["exposure_basis"] = "register"
    counts = {"policies_valid": int(len(valid)), "policies_rejected": int(len(rejects)),
              "policies_not_backtested": int(skipped)}
    return out, counts, rejects


def portfolio_table(table: pd.DataFrame, exposure: pd.DataFrame) -> pd.DataFrame:
    """Per season and product: exposure-weighted payout (see the module docstring, "Exposure").

    ``payout`` = Σ over assessed districts of ``exposure × payout_rate`` (each district
    rounded to the rupiah when the exposure is in rupiah); ``payout_rate`` = ``payout /
    exposure_assessed`` (NaN when nothing was assessed).
    """
    from panen.engine.maths.terms import round_rupiah

    seasons = table.drop_duplicates(["product_id", "district_id", "season"])[
        ["product_id", "district_id", "season", "payout_rate", "flagged"]]
    m = seasons.merge(exposure, on=["district_id", "product_id"], how="left", validate="many_to_one")
    basis = str(exposure["exposure_basis"].iloc[0]) if len(exposure) else "unit"
    e = m["exposure"].fillna(0).to_numpy(np.float64)
    rate = m["payout_rate"].to_numpy(np.float64)
    ok = ~m["flagged"].to_numpy(bool) & np.isfinite(rate)
    pay = np.where(ok, e * np.where(ok, rate, 0.0), 0.0)
    if basis == "register":
        pay = round_rupiah(pay).astype(np.int64)
    m = m.assign(exposure=e, exposure_assessed=np.where(ok, e, 0.0), payout=pay,
                 triggered=ok & (rate > 0), flagged_=~ok)
    g = m.groupby(["season", "product_id"], sort=True)
    out = pd.DataFrame({
        "districts": g.size(),
        "districts_triggered": g["triggered"].sum().astype(np.int64),
        "districts_flagged": g["flagged_"].sum().astype(np.int64),
        "exposure": g["exposure"].sum(),
        "exposure_assessed": g["exposure_assessed"].sum(),
        "payout": g["payout"].sum(),
    }).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["payout_rate"] = np.where(out["exposure_assessed"] > 0, out["payout"] / out["exposure_assessed"], np.nan)
    if basis == "register":
        for c in ("exposure", "exposure_assessed", "payout"):
            out[c] = out[c].round().astype(np.int64)
    out["exposure_basis"] = basis
    return out[list(PORTFOLIO_COLUMNS)]


# --------------------------------------------------------------------------- outputs
def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "product"


def write_plots(result: BacktestResult, folder: Path) -> dict[str, Path]:
    """PNG plots (matplotlib, Agg): a district × season heat map of the season payout rate per
    product, and the portfolio payout by season. Returns ``{name: path}``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    rows = result.table.drop_duplicates(["product_id", "district_id", "season"])
    for pid, d in rows.groupby("product_id", sort=True):
        wide = d.pivot(index="district_id", columns="season", values="payout_rate")
        nd, ns = wide.shape
        fig = Figure(figsize=(min(max(6, 0.22 * ns + 2), 18), min(max(3, 0.14 * nd + 1.5), 30)), layout="constrained")
        ax = fig.subplots()
        cmap = plt.get_cmap("YlOrRd").with_extremes(bad="0.8")
        im = ax.imshow(np.ma.masked_invalid(wide.to_numpy(np.float64)), aspect="auto", cmap=cmap, vmin=0, vmax=1,
                       interpolation="nearest")
        ax.set_xticks(range(ns), [str(s) for s in wide.columns], rotation=90, fontsize=7)
        if nd <= 80:
            ax.set_yticks(range(nd), wide.index.tolist(), fontsize=6)
        else:
            ax.set_yticks([])
        ax.set_xlabel("season (harvest year)")
        ax.set_ylabel(f"district ({nd})")
        ax.set_title(f"{pid}: season payout rate (grey = flagged, not assessable)")
        fig.colorbar(im, ax=ax, label="payout rate [fraction of sum insured]")
        p = folder / f"payout_rate_{_safe_name(pid)}.png"
        fig.savefig(p, dpi=110)
        paths[f"payout_rate_{pid}"] = p

    port = result.portfolio
    if len(port):
        pids = sorted(port["product_id"].unique())
        fig = Figure(figsize=(10, 2.2 * len(pids) + 0.8), layout="constrained")
        axes = np.atleast_1d(fig.subplots(len(pids), 1, sharex=True))
        unit = "Rp" if (port["exposure_basis"] == "register").all() else "district-equivalents"
        for ax, pid in zip(axes, pids):
            d = port[port["product_id"] == pid]
            ax.bar(d["season"], d["payout"], color="tab:red")
            none = d[d["exposure_assessed"] <= 0]  # nothing assessable that season: say so, not 0
            ax.plot(none["season"], np.zeros(len(none)), "x", color="0.5", label="not assessable")
            if len(none):
                ax.legend(loc="upper right", fontsize=7)
            ax.set_ylabel(f"payout [{unit}]")
            ax.set_title(f"{pid}: portfolio payout by season", fontsize=9)
        axes[-1].set_xlabel("season (harvest year)")
        p = folder / "portfolio.png"
        fig.savefig(p, dpi=110)
        paths["portfolio"] = p
    return paths


def _write(result: BacktestResult, config: RunConfig, out_dir: Path, *, rejects, scheduler, sowing_offset: int,
           t_start: float) -> None:
    from panen.engine.infra.atomic import write_table_atomic
    from panen.engine.infra.manifest import package_versions, sha256_file
    from panen.engine.pipeline.run import _hash_inputs

    stage = new_stage(out_dir)
    try:
        for fmt in config.output.formats:
            write_table_atomic(result.table, stage / f"backtest.{fmt}", fmt)
        write_table_atomic(result.portfolio, stage / "portfolio.csv", "csv")
        write_table_atomic(result.exposure, stage / "exposure.csv", "csv")
        if rejects is not None:
            write_table_atomic(rejects, stage / "rejects.csv", "csv")
        plots = write_plots(result, stage / "plots")
        plots.update(_write_analysis(result, stage))
        files = {str(f.relative_to(stage)): sha256_file(f) for f in sorted(stage.rglob("*")) if f.is_file()}
        inputs_hashed = _hash_inputs(config)
        content = {k: v["sha256"] for k, v in inputs_hashed.items()}
        analysis = _analysis_manifest(config, result)
        ident = {"config": config.sha256, "inputs": content, "version": __version__, "years": list(result.years),
                 "sowing_offset": sowing_offset}
        if analysis:  # only then: a plain backtest keeps its run id
            ident["analysis"] = analysis
        run_id = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
        result.timings["total"] = round(time.perf_counter() - t_start, 3)
        manifest = {
            "run_id": run_id,
            "kind": "backtest",
            "panen_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "config": {"path": str(config.path) if config.path else None, "sha256": config.sha256},
            "years": list(result.years),
            "season_template": {"id": config.season.id, "start": str(config.season.start),
                                "end": str(config.season.end), "year": config.season.harvest_year},
            "sowing_offset_days": sowing_offset,
            "anchors": {p.id: p.anchor for p in config.products},
            "exposure_basis": str(result.exposure["exposure_basis"].iloc[0]) if len(result.exposure) else "unit",
            "inputs": inputs_hashed,
            "products": [p.model_dump(mode="json") for p in config.products],
            "counts": result.counts,
            **({"analysis": analysis} if analysis else {}),
            "notes": result.notes,
            "timings_s": result.timings,
            "outputs": files,
            "environment": {"python": platform.python_version(), **package_versions()},
            "scheduler": scheduler or "local-threads",
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        publish(stage, out_dir)
    except BaseException:
        discard(stage)
        raise
    result.out_dir = out_dir
    result.files = files
    result.manifest = manifest
    result.plots = {k: out_dir / v.relative_to(stage) for k, v in plots.items()}


# --------------------------------------------------------------------------- pricing, basis risk, trigger design
def read_losses(path: str | Path) -> pd.DataFrame:
    """Read a loss reference table (CSV or Parquet): ``district_id, season, loss``.

    Parameters
    ----------
    path
        Table with ``district_id`` (text), ``season`` [harvest year, whole number] and
        ``loss`` [realised loss rate, fraction of the insured value, 0..1; blank = unknown].

    Returns
    -------
    pandas.DataFrame
        ``district_id`` [str], ``season`` [int64], ``loss`` [float64, NaN = unknown].

    Raises
    ------
    InputError
        File missing or unreadable, a column absent, an empty district id, a season that is
        not a whole number, a loss that is not a number in [0, 1], or duplicate
        ``(district_id, season)`` rows — every problem at once, with row and column.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(Problem("loss reference file not found", file=path))
    try:
        if path.suffix.lower() in (".parquet", ".pq", ".parq"):
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - any reader failure is an unreadable input
        raise InputError(Problem(f"cannot read the loss reference: {exc}", file=path)) from None
    missing = [c for c in ("district_id", "season", "loss") if c not in raw.columns]
    if missing:
        raise InputError(Problem(f"loss reference lacks the column(s) {', '.join(missing)}; it has "
                                 f"{', '.join(map(str, raw.columns))}", file=path))
    problems: list[Problem] = []
    ids = raw["district_id"].astype(str).str.strip()
    for i in np.flatnonzero((ids == "") | raw["district_id"].isna().to_numpy()):
        problems.append(Problem("district id is empty", file=path, row=int(i) + 1, column="district_id"))
    season = pd.to_numeric(raw["season"], errors="coerce")
    for i in np.flatnonzero(~(np.isfinite(season.to_numpy(np.float64)) & (season % 1 == 0).to_numpy())):
        problems.append(Problem(f"season must be a harvest year; got {raw['season'].iloc[i]!r}", file=path,
                                row=int(i) + 1, column="season"))
    text = raw["loss"].astype(str).str.strip()
    blank = raw["loss"].isna().to_numpy() | text.str.lower().isin(["", "nan", "na", "n/a", "null"]).to_numpy()
    loss = pd.to_numeric(raw["loss"].where(~blank), errors="coerce").to_numpy(np.float64)
    bad = ~blank & ~(np.isfinite(loss) & (loss >= 0) & (loss <= 1))
    for i in np.flatnonzero(bad):
        problems.append(Problem(f"loss must be a fraction in [0, 1] (blank = unknown); got {raw['loss'].iloc[i]!r}",
                                file=path, row=int(i) + 1, column="loss"))
    out = pd.DataFrame({"district_id": ids.to_numpy(), "season": season.fillna(0).astype(np.int64).to_numpy(),
                        "loss": np.where(blank, np.nan, loss)})
    dup = out.duplicated(["district_id", "season"], keep=False).to_numpy()
    for i in np.flatnonzero(dup):
        problems.append(Problem(f"more than one row for district {out['district_id'].iloc[i]!r}, season "
                                f"{out['season'].iloc[i]}", file=path, row=int(i) + 1))
    if problems:
        raise InputError(problems)
    return out


def yield_losses(yields: pd.DataFrame, reference, district_ids, years: tuple[int, int]) -> pd.DataFrame:
    """Realised district loss rate per season from a yields history (the shortfall below normal).

    For season (harvest year) Y of district d with actual yield A [t/ha]: the normal yield
    is the mean (``normal: {method: mean, years: w}``) or the mean of the best ``best``
    (``{method: best_of, best, of: w}``) of the available yields of the *preceding* w
    years Y − w … Y − 1 — the area-yield trigger's rule (PMFBY), computed by the same
    functions (:mod:`panen.engine.maths.yieldhistory`) — and

        loss = clip((T − A) / T, 0, 1),  T = indemnity_level × normal  [fraction of T].

    A yield that is missing, zero, negative or infinite is unavailable. The loss is NaN (unknown,
    never "no loss") when A is unavailable or fewer than ``min_years`` (default w) history
    years are.

    Parameters
    ----------
    yields
        ``district_id, year, yield`` [t/ha] (+ ``season``), as
        :func:`panen.datasets.yields.read_yields` returns.
    reference
        The config's ``loss_reference`` (source: yields).
    district_ids
        Districts of the backtest (text).
    years
        ``(first, last)`` harvest years.

    Returns
    -------
    pandas.DataFrame
        ``district_id, season, loss`` [fraction 0..1, NaN = unknown], one row per district
        and season (districts × seasons).

    Raises
    ------
    DataQualityError
        Several crop seasons in the table without ``yield_season``, ``yield_season``
        without a season column, or duplicate ``(district, year)`` rows.

    References
    ----------
    PMFBY Operational Guidelines (2020), para. 21.1 (threshold yield, shortfall);
    DOMAIN.md "Products" (area yield).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> y = pd.DataFrame({"district_id": "a", "year": [2001, 2002, 2003], "yield": [5.0, 5.0, 4.0]})
    >>> ref = SimpleNamespace(normal=SimpleNamespace(method="mean", window=2), min_years=None,
    ...                       indemnity_level=1.0, yield_season=None)
    >>> yield_losses(y, ref, ["a"], (2003, 2003))["loss"].tolist()
    [0.2]
    """
    table = select_season(yields, reference.yield_season, label="loss_reference",
                          setting="loss_reference.yield_season")
    key = table[["district_id", "year"]].astype({"district_id": str})
    if key.duplicated().any():
        first = key[key.duplicated()].iloc[0]
        raise DataQualityError(f"loss_reference: the yields table has rows sharing a (district, year), e.g. "
                               f"district {first['district_id']!r}, year {int(first['year'])}")
    spec = reference.normal
    w = int(spec.window)
    need = max(int(reference.min_years or w), 1)
    first, last = years
    ids = [str(d) for d in district_ids]
    y = year_columns(wide_table(table, "yield", ids), np.arange(first - w, last + 1))
    y = np.where(np.isfinite(y), y, np.nan)  # an infinite yield is unavailable too
    seasons = np.arange(first, last + 1)
    # (districts, seasons, w): the w preceding years of every season
    hist = np.stack([y[:, i:i + w] for i in range(len(seasons))], axis=1)
    if spec.method == "best_of":
        normal = normal_yield_best_of(hist, spec.best, w, need)
    else:
        normal = normal_yield_mean(hist, w, need)
    loss = shortfall_rate(threshold_yield(normal, reference.indemnity_level), y[:, w:])
    return pd.DataFrame({"district_id": np.repeat(np.asarray(ids, dtype=object), len(seasons)),
                         "season": np.tile(seasons, len(ids)).astype(np.int64), "loss": loss.ravel()})


def _season_rates(result: BacktestResult) -> pd.DataFrame:
    """``product_id, district_id, season, payout_rate`` (NaN = flagged), one row per district-season."""
    sim = simulation_table(result).drop_duplicates(["product_id", "district_id", "season"])
    rate = sim["season_payout_rate"].to_numpy(np.float64)
    rate = np.where(sim["flagged"].to_numpy(bool), np.nan, rate)
    return pd.DataFrame({"product_id": sim["product_id"].astype(str).to_numpy(),
                         "district_id": sim["district_id"].astype(str).to_numpy(),
                         "season": sim["season"].to_numpy(np.int64), "payout_rate": rate})


def _detrended(rates: pd.DataFrame) -> pd.DataFrame:
    """Each district's payout-rate history with its linear trend removed, re-centred at its latest
    season and clipped to [0, 1] (:func:`panen.engine.research.pricing.detrend_linear`)."""
    from panen.engine.research.pricing import detrend_linear

    out = rates.copy()
    for (pid, did), part in rates.groupby(["product_id", "district_id"], sort=False):
        try:
            v = detrend_linear(part["payout_rate"].to_numpy(np.float64), part["season"].to_numpy(np.float64))
        except DataQualityError as exc:
            raise DataQualityError(f"pricing.detrend: product {pid!r}, district {did!r}: {exc}") from None
        out.loc[part.index, "payout_rate"] = np.clip(v, 0.0, 1.0)
    return out


#: Sum insured a district's premium is quoted on when there is no policy register [Rp].
PREMIUM_SUM_INSURED_UNIT = 1_000_000
#: Columns of :func:`pricing_table`, in order.
PRICING_COLUMNS = ("product_id", "district_id", "seasons", "missing", "burn_cost", "std", "standard_error",
                   "frequency", "max_rate", "gross_premium_rate", "exposure", "exposure_basis", "credibility_z",
                   "credibility_rate", "sum_insured", "premium", "subsidy", "farmer_share")


def pricing_table(result: BacktestResult, pricing) -> tuple[pd.DataFrame, list[str]]:
    """Burn cost, gross rate, credibility and premium split per product and district.

    Per product × district, over the district's assessed seasons (flagged seasons are left
    out and counted in ``missing``, never priced as "no payout"):

    * ``seasons, missing, burn_cost`` (mean payout rate = pure premium rate), ``std``,
      ``standard_error`` (std / √n), ``frequency`` (share of seasons paying),
      ``max_rate`` — :func:`panen.engine.research.pricing.burn_cost`; with ``pricing.detrend``
      each district's rate history is first detrended (linear, re-centred at its latest
      season, clipped to [0, 1]) and everything below uses the detrended rates;
    * ``gross_premium_rate`` = burn cost × (1 + expense + profit loading) + the risk load
      measured on the district's own rate history
      (:func:`panen.engine.research.pricing.gross_premium_rate`);
    * ``credibility_z, credibility_rate``: Bühlmann–Straub credibility of the district
      within its product's portfolio (:func:`panen.engine.research.pricing.buhlmann_straub`), with
      the exposure of :func:`exposure_table` as the weight of each of its seasons. A
      district with zero exposure (no policies in the register) has Z = 0 and the
      portfolio mean; a product where credibility is undefined (one district, one
      season) gets NaN and a note;
    * ``sum_insured, premium, subsidy, farmer_share`` [Rp]: the gross premium on the
      district's exposure (register) or on Rp 1,000,000 sum insured (no register),
      split by ``pricing.subsidy_share`` (:func:`panen.engine.research.pricing.premium_split`);
      empty when the district has no assessed season.

    Returns
    -------
    (pandas.DataFrame, list[str])
        :data:`PRICING_COLUMNS`, sorted by product and district; notes.
    """
    from panen.engine.research.pricing import buhlmann_straub, burn_cost, gross_premium_rate, premium_split

    notes: list[str] = []
    rates = _season_rates(result)
    if pricing.detrend:
        rates = _detrended(rates)
        notes.append("pricing: payout rates detrended per district (linear, re-centred at the latest season)")
    burn = burn_cost(rates, by=("product_id", "district_id"))
    history = None
    if pricing.risk_load is not None:
        wide = rates.pivot(index=["product_id", "district_id"], columns="season", values="payout_rate")
        history = wide.reindex(pd.MultiIndex.from_frame(burn[["product_id", "district_id"]])).to_numpy(np.float64)
    gross = gross_premium_rate(burn["burn_cost"].to_numpy(np.float64), expense_loading=pricing.expense_loading,
                               profit_loading=pricing.profit_loading,
                               risk_load=pricing.risk_load.model_dump() if pricing.risk_load is not None else None,
                               history=history)
    out = burn.assign(gross_premium_rate=np.asarray(gross, dtype=np.float64))
    exposure = result.exposure.astype({"district_id": str, "product_id": str})
    out = out.merge(exposure, on=["product_id", "district_id"], how="left", validate="one_to_one")

    m = rates.merge(exposure[["product_id", "district_id", "exposure"]], on=["product_id", "district_id"])
    m = m[m["exposure"].to_numpy(np.float64) > 0]
    cred = []
    for pid, part in m.groupby("product_id", sort=True):
        try:
            bs = buhlmann_straub(part, "exposure", by=("product_id",))
        except DataQualityError as exc:
            notes.append(f"pricing: no credibility for product {pid!r}: {exc}")
            continue
        cred.append(bs[["product_id", "district_id", "Z", "credibility_rate", "portfolio_mean"]])
    cols = ["product_id", "district_id", "Z", "credibility_rate", "portfolio_mean"]
    cred_df = pd.concat(cred, ignore_index=True) if cred else pd.DataFrame(columns=cols)
    out = out.merge(cred_df, on=["product_id", "district_id"], how="left")
    collective = cred_df.drop_duplicates("product_id").set_index("product_id")["portfolio_mean"]
    zero = (out["exposure"].to_numpy(np.float64) <= 0) & (out["seasons"].to_numpy() > 0)
    out.loc[zero, "Z"] = 0.0
    out.loc[zero, "credibility_rate"] = out.loc[zero, "product_id"].map(collective).to_numpy(np.float64)
    out = out.rename(columns={"Z": "credibility_z"})

    register = (out["exposure_basis"] == "register").to_numpy()
    si = np.where(register, out["exposure"].to_numpy(np.float64), float(PREMIUM_SUM_INSURED_UNIT))
    out["sum_insured"] = np.round(si).astype(np.int64)
    g = out["gross_premium_rate"].to_numpy(np.float64)
    ok = np.isfinite(g)
    for c in ("premium", "subsidy", "farmer_share"):
        out[c] = pd.array([pd.NA] * len(out), dtype="Int64")
    if ok.any():
        split = premium_split(g[ok], si[ok], pricing.subsidy_share)
        for c, v in zip(("premium", "subsidy", "farmer_share"), split):
            out.loc[ok, c] = np.asarray(v, dtype=np.int64)
    unassessed = int((~ok).sum())
    if unassessed:
        notes.append(f"pricing: {unassessed} product × district(s) have no assessed season (not priced)")
    out = out.sort_values(["product_id", "district_id"], kind="stable").reset_index(drop=True)
    return out[list(PRICING_COLUMNS)], notes


def _portfolio_exposure(result: BacktestResult, pid: str) -> tuple[pd.DataFrame, str]:
    """Sum insured per district of one product [Rp]: the register's, else Rp 1,000,000 each."""
    e = result.exposure[result.exposure["product_id"].astype(str) == pid]
    basis = str(e["exposure_basis"].iloc[0]) if len(e) else "unit"
    si = e["exposure"].to_numpy(np.float64) if basis == "register" else np.full(len(e), float(PREMIUM_SUM_INSURED_UNIT))
    return pd.DataFrame({"district_id": e["district_id"].astype(str).to_numpy(), "product_id": pid,
                         "sum_insured": si}), basis


def _portfolio_totals(result: BacktestResult, pid: str, rates: pd.DataFrame) -> tuple[pd.Series, dict[str, Any]]:
    """Portfolio payout per complete season of one product [Rp] and what was left out."""
    from panen.engine.research.pricing import portfolio_payouts

    exposure, basis = _portfolio_exposure(result, pid)
    part = rates[rates["product_id"] == pid]
    assessed = part.groupby("district_id")["payout_rate"].apply(lambda s: bool(s.notna().any()))
    keep = exposure[(exposure["sum_insured"] > 0) & exposure["district_id"].map(assessed).fillna(False).astype(bool)]
    never = int(((exposure["sum_insured"] > 0) & ~exposure["district_id"].map(assessed).fillna(False)).sum())
    info = {"exposure_basis": basis, "districts": int(len(keep)), "sum_insured": float(keep["sum_insured"].sum()),
            "never_assessed": never}
    if not len(keep):
        return pd.Series(dtype=np.float64), {**info, "incomplete": int(part["season"].nunique())}
    totals = portfolio_payouts(part[part["district_id"].isin(keep["district_id"])], keep)
    complete = totals.dropna().astype(np.float64)
    return complete, {**info, "incomplete": int(totals.isna().sum())}


def tail_table(result: BacktestResult, pricing) -> tuple[pd.DataFrame, dict[str, pd.Series], list[str]]:
    """Empirical 1-in-N year portfolio payouts and the probable maximum loss per product.

    The portfolio of a product is its districts with a sum insured [Rp] — the register's
    exposure, else Rp 1,000,000 per district (``exposure_basis = unit``) — and at least
    one assessed season. A season's total is Σ round(payout rate × sum insured)
    (:func:`panen.engine.research.pricing.portfolio_payouts`); a season with a flagged district is
    incomplete (its total is unknown, not smaller) and is left out, counted in
    ``seasons_incomplete``. The 1-in-N year payout is the empirical quantile of the complete
    season totals at 1 − 1/N with Weibull plotting positions
    (:func:`panen.engine.research.pricing.return_period_losses`): NaN when N > n + 1. The PML is the
    1-in-``pricing.pml_period`` year payout.

    Returns
    -------
    (pandas.DataFrame, dict, list[str])
        One row per product: ``product_id, exposure_basis, districts, sum_insured`` [Rp],
        ``seasons, seasons_incomplete, mean_payout, max_payout`` [Rp], ``max_season``,
        ``payout_1in<N>`` [Rp] per return period, ``pml_return_period`` [years], ``pml``
        [Rp], ``pml_rate`` [fraction of the portfolio's sum insured]; the complete season
        totals per product; notes.
    """
    from panen.engine.research.pricing import return_period_losses

    rates = _season_rates(result)
    rows, totals, notes = [], {}, []
    periods = list(pricing.return_periods)
    pml_period = float(pricing.pml_period)
    for pid in sorted(rates["product_id"].unique()):
        complete, info = _portfolio_totals(result, pid, rates)
        totals[pid] = complete
        if info["never_assessed"]:
            notes.append(f"tail: product {pid!r}: {info['never_assessed']} district(s) never assessable, "
                         f"left out of the portfolio")
        if info["incomplete"]:
            notes.append(f"tail: product {pid!r}: {info['incomplete']} season(s) with a flagged district left out "
                         f"(incomplete totals)")
        row = {"product_id": pid, "exposure_basis": info["exposure_basis"], "districts": info["districts"],
               "sum_insured": info["sum_insured"], "seasons": int(len(complete)),
               "seasons_incomplete": info["incomplete"]}
        if len(complete):
            loss = return_period_losses(complete, [*periods, pml_period])
            row.update(mean_payout=float(complete.mean()), max_payout=float(complete.max()),
                       max_season=int(complete.idxmax()))
            row.update({f"payout_1in{p:g}": float(loss.iloc[i]) for i, p in enumerate(periods)})
            pml = float(loss.iloc[-1])
        else:
            notes.append(f"tail: product {pid!r} has no complete season")
            row.update(mean_payout=np.nan, max_payout=np.nan, max_season=pd.NA)
            row.update({f"payout_1in{p:g}": np.nan for p in periods})
            pml = np.nan
        si = info["sum_insured"]
        row.update(pml_return_period=pml_period, pml=pml, pml_rate=pml / si if si > 0 else np.nan)
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["max_season"] = out["max_season"].astype("Int64")
    return out, totals, notes


#: Bootstrap resamples and seed of the basis-risk intervals.
BASIS_BOOTSTRAP = {"n_boot": 1000, "seed": 0, "alpha": 0.05}


def basis_risk(result: BacktestResult, losses: pd.DataFrame, *, premium: pd.DataFrame | None = None,
               loss_threshold: float = 0.0) -> pd.DataFrame:
    """Basis risk of every product against the loss reference, per district and per product.

    The season payout rate of each assessed district-season is compared with the realised
    loss rate of the same district and season (:func:`panen.engine.research.basis.basis_risk_table`;
    flagged seasons and unknown losses are left out). Rows with ``scope = "district"`` are
    one product in one district; ``scope = "product"`` pools the product's district-seasons
    (``district_id`` empty). The hedging effectiveness uses revenue = 1 − loss and, as the
    premium, each district's gross premium rate (``premium``: ``product_id, district_id,
    premium_rate``; from ``pricing.csv``) or, without a pricing section, its burn cost.
    Percentile intervals from 1,000 bootstrap resamples (seed 0).

    Returns
    -------
    pandas.DataFrame
        ``scope, product_id, district_id`` then
        :data:`panen.engine.research.basis.BASIS_RISK_COLUMNS`.
    """
    from panen.engine.research.basis import BASIS_RISK_COLUMNS, basis_risk_table

    sim = _season_rates(result).dropna(subset=["payout_rate"])
    if premium is None:
        premium = sim.groupby(["product_id", "district_id"], as_index=False)["payout_rate"].mean().rename(
            columns={"payout_rate": "premium_rate"})
    sim = sim.merge(premium[["product_id", "district_id", "premium_rate"]], on=["product_id", "district_id"],
                    how="left")
    lo = losses[["district_id", "season", "loss"]].astype({"district_id": str})
    kw = dict(premium="premium_rate", loss_threshold=loss_threshold, **BASIS_BOOTSTRAP)
    per_d = basis_risk_table(sim, lo, by=("product_id", "district_id"), **kw)
    per_p = basis_risk_table(sim, lo, by=("product_id",), **kw)
    per_d.insert(0, "scope", "district")
    per_p.insert(0, "scope", "product")
    per_p.insert(2, "district_id", "")
    cols = ["scope", "product_id", "district_id", *BASIS_RISK_COLUMNS]
    return pd.concat([per_d[cols], per_p[cols]], ignore_index=True)


@dataclass
class DesignOutcome:
    """The trigger-design search of a backtest: one :class:`panen.engine.research.design.DesignResult` per
    product (``results``) and the chosen term sheets per product (``term_sheets``: zone → params)."""

    results: dict[str, Any]
    term_sheets: dict[str, dict[str, Any]]
    by: str
    notes: list[str] = field(default_factory=list)

    def table(self, what: str) -> pd.DataFrame:
        """``designs``, ``chosen`` or ``frontier`` of every product, concatenated."""
        parts = [getattr(r, what) for r in self.results.values() if len(getattr(r, what))]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["product_id", "zone"])


#: Decimals of the default (quantile) strike and exit grids of the design search [index units].
_DESIGN_DECIMALS = 2


def design_products(config: RunConfig) -> list:
    """The products the design search tunes: weather-index term sheets (strike/exit phases)."""
    return [p for p in config.products if p.trigger == "weather_index"]


def design_search(config: RunConfig, result: BacktestResult, losses: pd.DataFrame, design, *,
                  loadings: tuple[float, float], loss_threshold: float = 0.0) -> DesignOutcome:
    """Search strike and exit of every weather-index product against the loss reference.

    One :func:`panen.engine.research.design.search` per product on the backtest's index values
    (:func:`simulation_table`): the space is the term sheet's phases with strikes and exits
    at the default quantiles of the index, rounded to 0.01 index units
    (:meth:`~panen.engine.research.design.DesignSpace.from_term_sheet`, each phase keeping its
    direction and weight), grouped by ``design.by``; the constraints
    are those of ``design`` with the product's ``season_cap`` as the season cap; the gross
    rate uses ``loadings`` (the pricing section's expense and profit loadings; a risk load
    does not enter the search). Each chosen design becomes a term sheet with
    :func:`panen.engine.research.design.to_term_sheet` (every phase a linear curve).
    """
    from panen.engine.research.design import Constraints, DesignSpace, search, to_term_sheet

    zones = design.zones
    if isinstance(zones, Path):
        z = pd.read_parquet(zones) if zones.suffix.lower() in (".parquet", ".pq", ".parq") else pd.read_csv(
            zones, dtype=str)
        if not {"district_id", "zone"} <= set(z.columns):
            raise InputError(Problem("a zones table needs the columns district_id, zone", file=zones))
        zones = dict(zip(z["district_id"].astype(str), z["zone"].astype(str)))
    sim = simulation_table(result)
    lo = losses[["district_id", "season", "loss"]].astype({"district_id": str})
    results, sheets, notes = {}, {}, []
    for p in design_products(config):
        space = DesignSpace.from_term_sheet(p, by=design.by, zones=zones)
        # quantile grids rounded to 0.01 index units: term sheets read 60.0 mm, not 59.99999999999999
        space = space.model_copy(update={"phases": {n: ps.model_copy(update={"decimals": _DESIGN_DECIMALS})
                                                    for n, ps in space.phases.items()}})
        cons = Constraints(max_premium_rate=design.max_premium_rate,
                           min_payout_frequency_in_worst=design.min_payout_frequency_in_worst,
                           worst_share=design.worst_share, meaningful_rate=design.meaningful_rate,
                           max_rate=p.season_cap)
        res = search(sim[sim["product_id"] == p.id], lo, space, cons, objective=design.objective,
                     loadings=loadings, loss_threshold=loss_threshold)
        results[p.id] = res
        notes.extend(f"design: {n}" for n in res.notes)
        sheets[p.id] = {str(row["zone"]): to_term_sheet(p, row) for _, row in res.chosen.iterrows()}
    return DesignOutcome(results=results, term_sheets=sheets, by=design.by, notes=notes)


def pricing_summary(result: BacktestResult) -> pd.DataFrame:
    """One line per product: burn cost and gross rate of the portfolio, 1-in-10 year payout, POD, HE.

    ``burn_cost`` / ``gross_premium_rate``: the district rates weighted by sum insured (the
    register's, else equal) — the expected payout (premium) per rupiah insured;
    ``payout_1in10`` [Rp] as in :func:`tail_table`; ``pod``, ``hedging_effectiveness``
    pooled over the product's district-seasons (NaN without a loss reference).
    """
    from panen.engine.research.pricing import return_period_losses

    rows = []
    rates = _season_rates(result)
    for pid in sorted(result.table["product_id"].astype(str).unique()):
        row: dict[str, Any] = {"product_id": pid}
        if result.pricing is not None:
            pr = result.pricing[result.pricing["product_id"] == pid]
            ok = pr["burn_cost"].notna() & (pr["sum_insured"] > 0)
            w = pr.loc[ok, "sum_insured"].to_numpy(np.float64)
            for c in ("burn_cost", "gross_premium_rate"):
                row[c] = float(np.average(pr.loc[ok, c], weights=w)) if w.sum() > 0 else np.nan
            totals = result.season_totals.get(pid) if result.season_totals else None
            if totals is None:
                totals, _ = _portfolio_totals(result, pid, rates)
            row["payout_1in10"] = float(return_period_losses(totals, [10]).iloc[0]) if len(totals) else np.nan
        if result.basis_risk is not None:
            b = result.basis_risk[(result.basis_risk["scope"] == "product") & (result.basis_risk["product_id"] == pid)]
            row["pod"] = float(b["pod"].iloc[0]) if len(b) else np.nan
            row["hedging_effectiveness"] = float(b["hedging_effectiveness"].iloc[0]) if len(b) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def write_analysis_plots(result: BacktestResult, folder: Path) -> dict[str, Path]:
    """``loss_vs_payout_<product>.png`` (scatter of loss vs payout rate over district-seasons, by
    contingency cell) and ``tradeoff_<product>.png`` (design search). Returns ``{name: path}``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if result.losses is not None:
        rates = _season_rates(result).dropna(subset=["payout_rate"])
        m = rates.merge(result.losses.astype({"district_id": str}), on=["district_id", "season"]).dropna(
            subset=["loss"])
        thr = result.loss_threshold
        for pid in sorted(rates["product_id"].unique()):
            d = m[m["product_id"] == pid]
            fig = Figure(figsize=(5.6, 5.0), layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.subplots()
            paid = d["payout_rate"].to_numpy() > 0
            lost = d["loss"].to_numpy() > thr
            for mask, label, colour in ((paid & lost, "hit", "tab:green"), (~paid & lost, "miss", "tab:red"),
                                        (paid & ~lost, "false alarm", "tab:orange"),
                                        (~paid & ~lost, "correct negative", "0.6")):
                ax.scatter(d.loc[mask, "loss"], d.loc[mask, "payout_rate"], s=10, alpha=0.6, lw=0, color=colour,
                           label=f"{label} ({int(mask.sum())})")
            ax.plot([0, 1], [0, 1], ls=":", color="k", lw=0.8)
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("realised loss rate (loss reference) [fraction]")
            ax.set_ylabel("index payout rate [fraction of sum insured]")
            title = f"{pid}: loss vs payout, {len(d)} district-seasons"
            if result.basis_risk is not None:
                b = result.basis_risk[(result.basis_risk["scope"] == "product") &
                                      (result.basis_risk["product_id"] == pid)]
                if len(b):
                    title += f"\nPOD {b['pod'].iloc[0]:.2f}, FAR {b['far'].iloc[0]:.2f}, " \
                             f"Spearman {b['spearman'].iloc[0]:.2f}"
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
            p = folder / f"loss_vs_payout_{_safe_name(pid)}.png"
            fig.savefig(p, dpi=110)
            paths[f"loss_vs_payout_{pid}"] = p
    if result.design is not None:
        from panen.engine.research.design import plot_tradeoff

        for pid, res in result.design.results.items():
            paths[f"tradeoff_{pid}"] = plot_tradeoff(res, folder / f"tradeoff_{_safe_name(pid)}.png")
    return paths


def _term_sheet_yaml(outcome: DesignOutcome, pid: str) -> str | None:
    """The chosen term sheet(s) of a product as YAML: one mapping (``by: product``), else a list of
    term sheets with ids ``<product>-<zone>`` (paste under ``products:``)."""
    import yaml

    sheets = outcome.term_sheets.get(pid) or {}
    if not sheets:
        return None

    def dump(params) -> dict:
        tidy = params.model_dump(mode="json", exclude_none=True)
        # unset optional keys are left out only when that reads back as the same term sheet
        return tidy if type(params).model_validate(tidy) == params else params.model_dump(mode="json")

    res = outcome.results[pid]
    head = (f"# chosen by `panen backtest --optimise`: objective {res.objective}, loadings "
            f"{res.loadings[0]:g}/{res.loadings[1]:g}, one design per {outcome.by}\n")
    chosen = res.chosen.set_index("zone")
    if outcome.by == "product" and len(sheets) == 1:
        ((zone, params),) = sheets.items()
        c = chosen.loc[zone]
        head += (f"# burn cost {c['burn_cost']:.4f}, gross premium rate {c['gross_premium_rate']:.4f}, POD "
                 f"{c['pod']:.3f}, hedging effectiveness {c['hedging_effectiveness']:.3f} over "
                 f"{int(c['seasons'])} district-seasons\n")
        return head + yaml.safe_dump(dump(params), sort_keys=False, allow_unicode=True)
    docs = [{**dump(params), "id": f"{pid}-{zone}"} for zone, params in sheets.items()]
    return head + yaml.safe_dump(docs, sort_keys=False, allow_unicode=True)


def _analyse(config: RunConfig, result: BacktestResult, tables: dict[str, pd.DataFrame], district_ids, *,
             optimise: bool) -> None:
    """Pricing, loss reference, basis risk and design search, as the config's sections ask."""
    notes = result.notes
    if config.pricing is not None:
        result.pricing, n = pricing_table(result, config.pricing)
        notes.extend(n)
        result.tail, result.season_totals, n = tail_table(result, config.pricing)
        notes.extend(n)
    ref = config.loss_reference
    if ref is not None:
        if getattr(ref, "source", None) == "yields":
            y = tables.get("yields")
            if y is None:
                from panen.engine.pipeline.run import _open_input

                _, y = _open_input("yields", config.inputs.yields)
            result.losses = yield_losses(y, ref, district_ids, result.years)
        else:
            result.losses = read_losses(ref.path)
        result.loss_threshold = float(ref.loss_threshold)
        known = result.losses.dropna(subset=["loss"])
        ids = set(np.asarray(district_ids, dtype=str))
        seasons = set(range(result.years[0], result.years[1] + 1))
        usable = known[known["district_id"].isin(ids) & known["season"].isin(seasons)]
        notes.append(f"loss reference ({ref.source}): {len(usable):,} district-season loss rates within the "
                     f"backtest's districts and seasons ({int((usable['loss'] > ref.loss_threshold).sum()):,} "
                     f"loss seasons)")
        premium = None
        if result.pricing is not None:
            premium = result.pricing.rename(columns={"gross_premium_rate": "premium_rate"})
        result.basis_risk = basis_risk(result, result.losses, premium=premium, loss_threshold=ref.loss_threshold)
        if optimise or config.design is not None:
            from panen.engine.config import DesignConfig, PricingConfig

            p = config.pricing or PricingConfig()
            result.design = design_search(config, result, result.losses, config.design or DesignConfig(),
                                          loadings=(p.expense_loading, p.profit_loading),
                                          loss_threshold=ref.loss_threshold)
            notes.extend(result.design.notes)
    if config.pricing is not None or ref is not None:
        result.summary = pricing_summary(result)
