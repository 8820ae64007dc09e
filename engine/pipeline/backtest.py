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
The portfolio table (``portfolio.csv``, :func:`portfolio_table`) weighs district rates by
sum insured. With ``inputs.policies`` the exposure of a district and product is the sum of
its policies' sums insured [Rp] (the register's ``sum_insured``, else ``area_ha ×
sum_insured_per_ha`` rounded to the rupiah, as in the ledger). Without a register every
district counts Rp 1,000,000 (``exposure_basis = "unit"``, the unit ``pricing.csv`` quotes
premiums on), so the payout rate is the plain mean of the assessed districts' rates.
Payouts are gross of policy terms (deductibles and limits act per policy at settlement);
each district's payout is rounded to the rupiah before summing. The portfolio is the
districts with a sum insured assessed in at least one season (one never assessed is named
in the notes). The season payout is computed once, with one missing-data rule: flagged
districts pay nothing and are left out of ``exposure_assessed`` (``payout_rate = payout /
exposure_assessed``), and a season with a flagged district is ``complete = False`` — its
payout is a lower bound, reported but left out of ``tail.csv``'s return periods, which
read the complete seasons of this same table.

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
  strike/exit search on the products whose trigger plugin can be redesigned, through that
  plugin's own curves (:func:`design_search`):
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

import datetime as dt
import functools
import hashlib
import json
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from panen.engine import __version__
from panen.engine.api import Season
from panen.engine.config import RunConfig, load_config
from panen.engine.errors import ConfigError, DataQualityError, Problem
from panen.engine.infra.outdir import pause_point
from panen.engine.infra.staging import discard, new_stage, publish
from panen.engine.pipeline import steps
from panen.engine.pipeline.covers import covers_of
from panen.engine.pipeline.output import output_folder
from panen.engine.registry import get_reader
from panen.engine.research.simulation import (BASIS_BOOTSTRAP, TABLE_COLUMNS, _safe_name, _term_sheet_yaml, basis_risk,
                                             design_products, design_search, portfolio_table, pricing_summary,
                                             pricing_table, read_losses, tail_table, write_analysis_plots,
                                             write_plots, yield_losses)

__all__ = [
    "BacktestResult",
    "backtest",
    "load_backtest_config",
    "parse_years",
    "season_anchors",
]

#: Variables every trigger result carries (api.TriggerResult); other variables are dropped.
_STANDARD = ("payout_rate", "flagged", "index_value", "phase_rate", "valid_fraction")
#: Phase indices computable from monthly totals (see the module docstring).
_MONTHLY_OK = frozenset({"total"})
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
        exposure, exposure_assessed, payout, payout_rate, exposure_basis, complete`` (see
        the module docstring, "Exposure").
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
        complete seasons' portfolio payout of each product [Rp] (from ``portfolio``);
        else ``None``.
    losses, loss_threshold, basis_risk
        With a ``loss_reference:`` section: the loss reference (``district_id, season,
        loss``), its event threshold and :func:`basis_risk`; else ``None``.
    design
        With ``design:`` or ``optimise``: the :class:`DesignOutcome`; else ``None``.
    summary
        :func:`pricing_summary` when pricing or a loss reference was configured.
    series, results
        The district series per gridded input (``mean``, ``valid_fraction`` on ``(time,
        district)``) and each product's checked trigger result with every season as a
        cohort (as in :class:`~panen.engine.pipeline.run.RunResult`).
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
    series: dict[str, xr.Dataset] = field(default_factory=dict)
    results: dict[str, xr.Dataset] = field(default_factory=dict)
    data_quality: dict[str, dict] = field(default_factory=dict)


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


def load_backtest_config(path: str | Path) -> RunConfig:
    """Load a run config for a backtest: as :func:`~panen.engine.config.load_config`, but a
    policy register is optional (it only weighs the portfolio; without one every district
    has exposure 1). Every other rule of the run config holds."""
    return load_config(path, purpose="backtest")


# --------------------------------------------------------------------------- the orchestrator
def backtest(config: RunConfig | str | Path, years: tuple[int, int] | str = (1981, 2020), *,
             out_dir: str | Path | None = None, force: bool = False, scheduler: str | None = None,
             progress: bool = False, sowing_offset: int = 0, optimise: bool = False,
             scheduler_timeout: float | None = None) -> BacktestResult:
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
        must not exist unless ``force``; it is locked for the whole backtest, and what
        killed runs left beside it is rolled back first (as for :func:`panen.engine.pipeline.run.run_batch`).
        ``None``: compute only.
    force
        Replace an existing ``out_dir`` — only one panen wrote, or an empty one.
    scheduler
        Address of a Dask distributed scheduler; ``None`` uses local threads.
    scheduler_timeout
        How long to wait for a worker of ``scheduler`` [s].
    progress
        Progress bar for the streamed zonal pass (stderr).
    sowing_offset
        Days after the season start used as the representative anchor of
        ``anchor: sowing_date`` products [days] (see the module docstring).
    optimise
        Run the trigger-design search on the products whose trigger plugin can be
        redesigned (also done whenever the config has a ``design:`` section); needs
        ``loss_reference:``.

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
        redesignable product, or with a term sheet its plugin cannot redesign — checked
        before anything is read.
    """
    if not isinstance(config, RunConfig):
        config = load_backtest_config(config)
    years = parse_years(years)
    if optimise or config.design is not None:
        why = "--optimise" if optimise else "the design section"
        if config.loss_reference is None:
            raise ConfigError(Problem(f"{why} needs a loss_reference section (source: yields, or a path to a "
                                      f"table of district_id, season, loss) to design triggers against",
                                      key="loss_reference"))
        if not design_products(config):
            raise ConfigError(Problem(f"{why}: the trigger design tunes products whose trigger plugin can be "
                                      f"redesigned (design_terms), and the config has none",
                                      key="design" if config.design is not None else None))
    if not -366 <= int(sowing_offset) <= 366:
        raise ConfigError(Problem(f"sowing offset must be within ±366 days; got {sowing_offset}", key="--sowing-offset"))
    steps.check_scheduler(scheduler, scheduler_timeout)
    extra = ({"loss_reference": config.loss_reference.path}
             if getattr(config.loss_reference, "path", None) is not None else {})
    run = functools.partial(_backtest, config, years, scheduler=scheduler, progress=progress,
                            sowing_offset=sowing_offset, optimise=optimise, scheduler_timeout=scheduler_timeout,
                            extra=extra)
    if out_dir is None:
        return run(None, recovered=[])
    with output_folder(config, out_dir, force=force, extra=extra) as folder:
        return run(folder.path, recovered=folder.recovered)


def _backtest(config: RunConfig, years: tuple[int, int], out_dir: Path | None, *, scheduler: str | None,
              progress: bool, sowing_offset: int, optimise: bool, scheduler_timeout: float | None,
              extra: dict[str, Any], recovered: list[str]) -> BacktestResult:
    t = steps.Timer()
    t_start = time.perf_counter()
    notes: list[str] = list(recovered)
    seasons = season_anchors(config.season, years)
    season_years = seasons["season"].to_numpy(np.int64)
    base = steps.season_of(config)
    # the named-peril cover settles one season's field assessments: it is not backtested
    covers = [c for c in covers_of(config) if not c.per_policy]
    anchors = {c.id: _anchors(c, seasons, int(sowing_offset)) for c in covers}
    history = [Season(str(int(y)), np.datetime64(s, "D"), np.datetime64(e, "D"), int(y))
               for y, s, e in zip(season_years, seasons["start"], seasons["end"])]
    if sowing_offset and not any(c.anchor == "sowing_date" for c in covers):
        notes.append("--sowing-offset given but no product is anchored on the sowing date; ignored")
    for c in covers:
        if c.anchor == "sowing_date":
            notes.append(f"product {c.id!r} (anchor: sowing_date) is evaluated at one representative anchor per "
                         f"season: the season start + {int(sowing_offset)} days")

    quality: dict[str, dict] = {}
    with t("read_inputs"):
        fingerprints = steps.fingerprint_inputs(config, extra)
        opened = steps.open_inputs(config, covers, register=False)
        zoned = steps.zones(covers, opened)
    client = steps.connect(scheduler, timeout=scheduler_timeout)
    try:
        with t("zonal_compute"):
            series = steps.district_series(opened, covers, anchors, client=client, progress=progress, notes=notes,
                                           what=f"the seasons {years[0]}-{years[1]} need", timeout=scheduler_timeout,
                                           quality=quality)
    finally:
        if client is not None:
            client.close()
    with t("evaluate"):
        tables = {n: o.data for n, o in opened.items() if o.kind == "table"}
        results = steps.evaluate(covers, base, anchors, zoned, series, tables, seasons=history, notes=notes)
        frames = [_tidy(results[c.id], c.id, season_years, anchors[c.id]) for c in covers]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(TABLE_COLUMNS))
        table = table.sort_values(["product_id", "district_id", "season", "phase"], kind="stable").reset_index(drop=True)
    district_ids = zoned.layer if zoned.layer is not None else np.array(
        sorted({d for c in covers for d in (zoned.by_cover[c.id] if zoned.by_cover[c.id] is not None else ())}),
        dtype=object)

    with t("portfolio"):
        exposure, policy_counts, rejects = _exposure(config, covers_of(config), zoned, base)
        portfolio, portfolio_notes = portfolio_table(table, exposure)
        notes.extend(portfolio_notes)

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
                            timings=t.timings, notes=notes, series=series, results=results, data_quality=quality)
    if config.pricing is not None or config.loss_reference is not None or optimise or config.design is not None:
        with t("analysis"):
            _analyse(config, result, tables, district_ids, optimise=optimise)
    if out_dir is not None:
        with t("write"):
            _write(result, config, out_dir, fingerprints, rejects=rejects, scheduler=scheduler,
                   sowing_offset=int(sowing_offset), t_start=t_start)
    else:
        steps.verify_inputs(fingerprints)
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


def _analysis_manifest(config: RunConfig, result: BacktestResult, fingerprints) -> dict[str, Any]:
    """What the analysis sections were (settings and the loss table's hash as read), for the manifest."""
    out: dict[str, Any] = {}
    if config.pricing is not None:
        out["pricing"] = config.pricing.model_dump(mode="json")
    if config.loss_reference is not None:
        ref = config.loss_reference.model_dump(mode="json")
        if getattr(config.loss_reference, "path", None) is not None:
            ref["sha256"] = fingerprints["loss_reference"].sha256
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


def _exposure(config: RunConfig, covers, zoned: steps.Zones, season: Season
              ) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame | None]:
    """Exposure per district and product: Σ sum insured of the register [Rp], else 1 per district."""
    from panen.engine.maths.terms import round_rupiah

    index = [c for c in covers if not c.per_policy]
    pids = [c.id for c in index]
    districts = zoned.layer if zoned.layer is not None else np.array(
        sorted({str(d) for c in index for d in zoned.by_cover[c.id]}), dtype=object)
    grid = pd.MultiIndex.from_product([np.asarray(districts, dtype=str), pids], names=["district_id", "product_id"])
    if config.inputs.policies is None:
        out = pd.DataFrame(index=grid).reset_index()
        out["exposure"] = 1.0
        out["exposure_basis"] = "unit"
        return out, {}, None
    opened = {steps.POLICIES: get_reader(steps.POLICIES)().open(config.inputs.policies)}
    every = zoned
    # sowing dates do not enter the backtest (one representative anchor per season), so a
    # policy without one still counts towards its district's exposure; the named-peril
    # cover's rows are valid policies (checked like any other), just not backtested
    rules = steps.policy_rules(covers, season, opened, every, sowing_windows=False)
    valid, rejects = steps.check_policies(opened, rules, every, config.limits)
    backtested = valid["product_id"].astype(str).isin(pids).to_numpy()
    skipped = int((~backtested).sum())
    valid = valid[backtested]
    per_ha = valid["product_id"].astype(str).map({c.id: c.sum_insured_per_ha for c in index})
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


# --------------------------------------------------------------------------- outputs
def _write(result: BacktestResult, config: RunConfig, out_dir: Path, fingerprints, *, rejects, scheduler,
           sowing_offset: int, t_start: float) -> None:
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
        inputs_hashed = _hash_inputs(fingerprints)
        content = {k: v["sha256"] for k, v in inputs_hashed.items()}
        analysis = _analysis_manifest(config, result, fingerprints)
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
            "data_quality": result.data_quality,
            "timings_s": result.timings,
            "outputs": files,
            "environment": {"python": platform.python_version(), **package_versions()},
            "scheduler": scheduler or "local-threads",
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        pause_point("staged")
        steps.verify_inputs(fingerprints)  # every input as it was when read, else nothing is published
        publish(stage, out_dir)
    except BaseException:
        discard(stage)
        raise
    result.out_dir = out_dir
    result.files = files
    result.manifest = manifest
    result.plots = {k: out_dir / v.relative_to(stage) for k, v in plots.items()}


def _analyse(config: RunConfig, result: BacktestResult, tables: dict[str, pd.DataFrame], district_ids, *,
             optimise: bool) -> None:
    """Pricing, loss reference, basis risk and design search, as the config's sections ask."""
    notes = result.notes
    if config.pricing is not None:
        result.pricing, n = pricing_table(result, config.pricing, config.premiums)
        notes.extend(n)
        result.tail, result.season_totals, n = tail_table(result, config.pricing)
        notes.extend(n)
    ref = config.loss_reference
    if ref is not None:
        if getattr(ref, "source", None) == "yields":
            y = tables.get("yields")
            if y is None:
                y = get_reader("yields")().open(config.inputs.yields).data
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
        # one premium rule for the hedging effectiveness of basis_risk.csv and of the design
        # search: each district's burn cost, loaded by the pricing section's loadings
        # (the defaults without one), so both report the same HE for the same term sheet
        from panen.engine.config import PricingConfig

        p = config.pricing or PricingConfig()
        loadings = (p.expense_loading, p.profit_loading)
        result.basis_risk = basis_risk(result, result.losses, loadings=loadings, loss_threshold=ref.loss_threshold)
        if optimise or config.design is not None:
            from panen.engine.config import DesignConfig

            result.design = design_search(config, result, result.losses, config.design or DesignConfig(),
                                          loadings=loadings, loss_threshold=ref.loss_threshold)
            notes.extend(result.design.notes)
    if config.pricing is not None or ref is not None:
        result.summary = pricing_summary(result)
