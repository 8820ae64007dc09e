"""The research side of a backtest: pricing, tail, basis risk and trigger design on a simulation.

A backtest (:mod:`panen.engine.pipeline.backtest`) replays every product over past seasons
and hands over a *simulation*: any object with the attributes

* ``table`` — one row per district × season × product × phase (:data:`TABLE_COLUMNS`);
* ``exposure`` — ``district_id, product_id, exposure, exposure_basis``;
* ``portfolio`` — per season and product (:data:`PORTFOLIO_COLUMNS`, :func:`portfolio_table`): the
  one computation of the season portfolio payout, which ``tail.csv`` and the pricing
  summary read;
* ``years`` — ``(first, last)`` harvest years;

and, once computed here, ``pricing``, ``season_totals``, ``basis_risk`` (the backtest's
:class:`~panen.engine.pipeline.backtest.BacktestResult` is one). Everything in this module is
a function of those tables: no reading of inputs, no orchestration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from panen.engine.errors import DataQualityError, InputError, Problem
from panen.engine.maths.yieldhistory import (normal_yield_best_of, normal_yield_mean, select_season, shortfall_rate,
                                             threshold_yield, wide_table, year_columns)

#: Columns of the tidy table, in order.
TABLE_COLUMNS = ("district_id", "product_id", "season", "anchor", "phase", "index_value", "phase_rate",
                 "payout_rate", "valid_fraction", "flagged")
#: Columns of the portfolio table, in order.
PORTFOLIO_COLUMNS = ("season", "product_id", "districts", "districts_triggered", "districts_flagged", "exposure",
                     "exposure_assessed", "payout", "payout_rate", "exposure_basis", "complete")
#: Sum insured of each district when there is no policy register [Rp]: the unit the portfolio,
#: tail and premium quotes are in (``exposure_basis = "unit"``).
PREMIUM_SUM_INSURED_UNIT = 1_000_000


def simulation_table(result) -> pd.DataFrame:
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


def exposure_table(result) -> pd.DataFrame:
    """``district_id, product_id, exposure`` [Rp, or 1 per district], ``exposure_basis`` (register | unit)."""
    return result.exposure.copy()


def portfolio_table(table: pd.DataFrame, exposure: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per season and product: the portfolio payout [Rp] — computed here once, for ``portfolio.csv``
    and ``tail.csv`` alike.

    The portfolio of a product is its districts with a sum insured — the register's
    exposure [Rp], or Rp 1,000,000 per district without a register
    (:data:`PREMIUM_SUM_INSURED_UNIT`, ``exposure_basis = "unit"``, as the premium quotes of
    ``pricing.csv``) — that were assessed in at least one season: a district never
    assessed (no data in the whole record) is left out, and named in the notes. Each
    season follows one missing-data rule (:func:`panen.engine.research.pricing.season_portfolio`):
    ``payout`` = Σ over the assessed districts of round(season payout rate × sum insured),
    rounded per district to the rupiah; the season is ``complete`` when every district
    of the portfolio was assessed. A season with a flagged district is incomplete: its
    ``payout`` (the assessed districts only, a lower bound) is reported with
    ``complete = False`` and left out of the return periods of :func:`tail_table`. Payouts
    are gross of policy terms (deductibles and limits act per policy at settlement).

    Parameters
    ----------
    table
        The backtest's tidy table (:data:`TABLE_COLUMNS`).
    exposure
        ``district_id, product_id, exposure, exposure_basis`` (:func:`exposure_table`).

    Returns
    -------
    (pandas.DataFrame, list[str])
        :data:`PORTFOLIO_COLUMNS`, one row per season and product (a product without a
        portfolio district has zero exposure, an undefined rate and no complete season);
        notes.
    """
    from panen.engine.research.pricing import season_portfolio

    rates = _season_rate_rows(table)
    si, basis = _sum_insured(exposure)
    m = rates.merge(si, on=["product_id", "district_id"], how="left", validate="many_to_one")
    m["sum_insured"] = m["sum_insured"].fillna(0.0)
    assessed = m.groupby(["product_id", "district_id"])["payout_rate"].transform(lambda r: r.notna().any())
    insured = m["sum_insured"].to_numpy(np.float64) > 0
    notes = []
    never = m.loc[insured & ~assessed.to_numpy(bool)].drop_duplicates(["product_id", "district_id"])
    for pid, d in never.groupby("product_id", sort=True):
        ids = d["district_id"].tolist()
        notes.append(f"portfolio: product {pid!r}: {len(ids)} insured district(s) never assessable in any season "
                     f"(e.g. {', '.join(map(repr, ids[:5]))}), left out of the portfolio and its tail")
    members = m[insured & assessed.to_numpy(bool)]
    cols = list(PORTFOLIO_COLUMNS)
    port = (season_portfolio(members, members[["product_id", "district_id", "sum_insured"]].drop_duplicates(),
                             by=("product_id",)) if len(members) else pd.DataFrame(columns=cols))
    grid = pd.MultiIndex.from_product([np.sort(rates["season"].unique()), np.sort(rates["product_id"].unique())],
                                      names=["season", "product_id"])
    port = port.set_index(["season", "product_id"]).reindex(grid).reset_index()
    for c in ("districts", "districts_triggered", "districts_flagged", "exposure", "exposure_assessed", "payout"):
        port[c] = port[c].fillna(0).astype(np.float64).round().astype(np.int64)
    port["complete"] = port["complete"].fillna(False).astype(bool)
    port["payout_rate"] = port["payout_rate"].astype(np.float64)
    port["exposure_basis"] = basis
    return port[cols], notes


def complete_season_payouts(portfolio: pd.DataFrame, product_id: str) -> pd.Series:
    """The complete seasons' portfolio payout of one product [Rp], indexed by season (float).

    Read from :func:`portfolio_table`'s output: the seasons with ``complete`` set.
    """
    p = portfolio[(portfolio["product_id"].astype(str) == str(product_id)) & portfolio["complete"].astype(bool)]
    return pd.Series(p["payout"].to_numpy(np.float64), index=pd.Index(p["season"].to_numpy(np.int64), name="season"),
                     name="payout")


def _season_rate_rows(table: pd.DataFrame) -> pd.DataFrame:
    """``product_id, district_id, season, payout_rate`` (NaN = flagged), one row per district-season."""
    t = table.drop_duplicates(["product_id", "district_id", "season"])
    rate = np.where(t["flagged"].to_numpy(bool), np.nan, t["payout_rate"].to_numpy(np.float64))
    return pd.DataFrame({"product_id": t["product_id"].astype(str).to_numpy(),
                         "district_id": t["district_id"].astype(str).to_numpy(),
                         "season": t["season"].to_numpy(np.int64), "payout_rate": rate})


def _sum_insured(exposure: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Sum insured per district and product [Rp] (the register's, else Rp 1,000,000 each) and the basis."""
    basis = str(exposure["exposure_basis"].iloc[0]) if len(exposure) else "unit"
    e = exposure.astype({"district_id": str, "product_id": str})
    si = (e["exposure"].to_numpy(np.float64) if basis == "register"
          else np.full(len(e), float(PREMIUM_SUM_INSURED_UNIT)))
    return pd.DataFrame({"product_id": e["product_id"].to_numpy(), "district_id": e["district_id"].to_numpy(),
                         "sum_insured": si}), basis


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "product"


def write_plots(result, folder: Path) -> dict[str, Path]:
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
        unit = "Rp" if (port["exposure_basis"] == "register").all() else "Rp, Rp 1M per district"
        for ax, pid in zip(axes, pids):
            d = port[port["product_id"] == pid]
            whole = d["complete"].astype(bool).to_numpy()
            ax.bar(d.loc[whole, "season"], d.loc[whole, "payout"], color="tab:red")
            part = d[~whole & (d["exposure_assessed"] > 0).to_numpy()]  # a district flagged: a lower bound
            ax.bar(part["season"], part["payout"], color="none", edgecolor="tab:red", hatch="///",
                   label="incomplete (a district flagged)")
            none = d[d["exposure_assessed"] <= 0]  # nothing assessable that season: say so, not 0
            ax.plot(none["season"], np.zeros(len(none)), "x", color="0.5", label="not assessable")
            if len(none) or len(part):
                ax.legend(loc="upper right", fontsize=7)
            ax.set_ylabel(f"payout [{unit}]")
            ax.set_title(f"{pid}: portfolio payout by season", fontsize=9)
        axes[-1].set_xlabel("season (harvest year)")
        p = folder / "portfolio.png"
        fig.savefig(p, dpi=110)
        paths["portfolio"] = p
    return paths


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
    PMFBY Operational Guidelines (2020), para. 21.1 (threshold yield, shortfall).

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


def _season_rates(result) -> pd.DataFrame:
    """``product_id, district_id, season, payout_rate`` (NaN = flagged), one row per district-season."""
    return _season_rate_rows(result.table)


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


#: Columns of :func:`pricing_table`, in order.
PRICING_COLUMNS = ("product_id", "district_id", "seasons", "missing", "burn_cost", "std", "standard_error",
                   "frequency", "max_rate", "gross_premium_rate", "exposure", "exposure_basis", "credibility_z",
                   "credibility_rate", "sum_insured", "premium", "subsidy", "farmer_share", "premium_rate",
                   "tariff_flag", "subsidy_share")


def pricing_table(result, pricing, premiums: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, list[str]]:
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
    * ``premium_rate, tariff_flag``: the gross rate clamped into the product's tariff band
      (its term sheet's ``premium.tariff``, the regulator's — OJK's — floor and ceiling),
      flagged ``below_floor`` / ``above_ceiling`` when clamped (empty inside the band or
      without one) (:func:`panen.engine.maths.premium.apply_tariff`);
    * ``sum_insured, premium, subsidy, farmer_share`` [Rp]: the premium at ``premium_rate``
      on the district's exposure (register) or on Rp 1,000,000 sum insured (no register),
      split by ``subsidy_share``: the term sheet's ``premium.subsidy_share``, else
      ``pricing.subsidy_share`` (:func:`panen.engine.maths.premium.policy_premiums`, the one
      premium rule; per-policy charges and no-claim discounts do not apply to a district's
      exposure); empty when the district has no assessed season.

    ``premiums``: the validated ``premium:`` section per product id (``RunConfig.premiums``).

    Returns
    -------
    (pandas.DataFrame, list[str])
        :data:`PRICING_COLUMNS`, sorted by product and district; notes.
    """
    from panen.engine.maths.premium import PremiumTerms, policy_premiums
    from panen.engine.research.pricing import (
        buhlmann_straub,
        burn_cost,
        gross_premium_rate,
    )

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
    out["premium_rate"] = g
    out["tariff_flag"] = ""
    out["subsidy_share"] = float(pricing.subsidy_share)
    sheets = premiums or {}
    for pid in out["product_id"].astype(str).unique():
        sheet = sheets.get(pid)
        share = sheet.subsidy_share if sheet is not None and sheet.subsidy_share is not None \
            else float(pricing.subsidy_share)
        at = (out["product_id"].astype(str) == pid).to_numpy()
        out.loc[at, "subsidy_share"] = share
        rows = at & ok
        if not rows.any():
            continue
        money = policy_premiums(si[rows], g[rows], subsidy_share=share,
                                terms=PremiumTerms(tariff=sheet.tariff if sheet is not None else None))
        out.loc[rows, "premium_rate"] = money["premium_rate"].to_numpy(np.float64)
        out.loc[rows, "tariff_flag"] = money["tariff_flag"].to_numpy(object)
        for c in ("premium", "subsidy", "farmer_share"):
            out.loc[rows, c] = money[c].to_numpy(np.int64)
        clamped = int((money["tariff_flag"] != "").sum())
        if clamped:
            notes.append(f"pricing: product {pid!r}: the gross rate of {clamped} district(s) is outside the tariff "
                         f"band and was clamped to it (tariff_flag)")
    unassessed = int((~ok).sum())
    if unassessed:
        notes.append(f"pricing: {unassessed} product × district(s) have no assessed season (not priced)")
    out = out.sort_values(["product_id", "district_id"], kind="stable").reset_index(drop=True)
    return out[list(PRICING_COLUMNS)], notes


def tail_table(result, pricing) -> tuple[pd.DataFrame, dict[str, pd.Series], list[str]]:
    """Empirical 1-in-N year portfolio payouts and the probable maximum loss per product.

    Read from the backtest's portfolio table (:func:`portfolio_table`, ``portfolio.csv``):
    the same season payouts, the same portfolio (districts with a sum insured [Rp] — the
    register's exposure, else Rp 1,000,000 per district — assessed at least once) and the
    same missing-data rule. Only complete seasons enter: a season with a flagged district
    is incomplete (its total is unknown, not smaller), counted in ``seasons_incomplete``.
    The 1-in-N year payout is the empirical quantile of the complete season payouts at
    1 − 1/N with Weibull plotting positions
    (:func:`panen.engine.research.pricing.return_period_losses`): NaN when N > n + 1. The PML
    is the 1-in-``pricing.pml_period`` year payout.

    Returns
    -------
    (pandas.DataFrame, dict, list[str])
        One row per product: ``product_id, exposure_basis, districts, sum_insured`` [Rp],
        ``seasons, seasons_incomplete, mean_payout, max_payout`` [Rp], ``max_season``,
        ``payout_1in<N>`` [Rp] per return period, ``pml_return_period`` [years], ``pml``
        [Rp], ``pml_rate`` [fraction of the portfolio's sum insured]; the complete season
        payouts per product; notes.
    """
    from panen.engine.research.pricing import return_period_losses

    port = result.portfolio
    rows, totals, notes = [], {}, []
    periods = list(pricing.return_periods)
    pml_period = float(pricing.pml_period)
    for pid in sorted(port["product_id"].astype(str).unique()):
        p = port[port["product_id"].astype(str) == pid]
        complete = complete_season_payouts(port, pid)
        totals[pid] = complete
        incomplete = int((~p["complete"].astype(bool)).sum())
        if incomplete:
            notes.append(f"tail: product {pid!r}: {incomplete} season(s) with a flagged district left out "
                         f"(incomplete totals)")
        si = float(p["exposure"].max()) if len(p) else 0.0
        row = {"product_id": pid, "exposure_basis": str(p["exposure_basis"].iloc[0]) if len(p) else "unit",
               "districts": int(p["districts"].max()) if len(p) else 0, "sum_insured": si,
               "seasons": int(len(complete)), "seasons_incomplete": incomplete}
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
        row.update(pml_return_period=pml_period, pml=pml, pml_rate=pml / si if si > 0 else np.nan)
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out["max_season"] = out["max_season"].astype("Int64")
    return out, totals, notes


#: Bootstrap resamples and seed of the basis-risk intervals.
BASIS_BOOTSTRAP = {"n_boot": 1000, "seed": 0, "alpha": 0.05}


def basis_risk(result, losses: pd.DataFrame, *, loadings: tuple[float, float] = (0.0, 0.0),
               loss_threshold: float = 0.0) -> pd.DataFrame:
    """Basis risk of every product against the loss reference, per district and per product.

    The season payout rate of each assessed district-season is compared with the realised
    loss rate of the same district and season (:func:`panen.engine.research.basis.basis_risk_table`;
    flagged seasons and unknown losses are left out). Rows with ``scope = "district"`` are
    one product in one district; ``scope = "product"`` pools the product's district-seasons
    (``district_id`` empty). The hedging effectiveness
    (:func:`panen.engine.research.scores.hedging_effectiveness`) uses revenue = 1 − loss and,
    as the premium, each district's burn cost over its compared seasons loaded by
    ``loadings`` (:func:`panen.engine.research.scores.premium_rates`) — the rule of the
    trigger-design search, so ``basis_risk.csv`` and ``design_chosen.csv`` give the same HE
    for the same term sheet. It equals ``pricing.csv``'s gross rate when every assessed
    season has a known loss and the pricing adds no risk load and no detrending. Percentile
    intervals from 1,000 bootstrap resamples (seed 0).

    Parameters
    ----------
    result
        A backtest result (see the module docstring).
    losses
        Loss reference ``district_id, season, loss`` [fraction 0..1, NaN = unknown].
    loadings
        ``(expense_loading, profit_loading)`` of the premium [fraction of the pure rate].
    loss_threshold
        A loss event is loss > this [fraction].

    Returns
    -------
    pandas.DataFrame
        ``scope, product_id, district_id`` then
        :data:`panen.engine.research.basis.BASIS_RISK_COLUMNS`.
    """
    from panen.engine.research.basis import BASIS_RISK_COLUMNS, basis_risk_table

    sim = _season_rates(result).dropna(subset=["payout_rate"])
    lo = losses[["district_id", "season", "loss"]].astype({"district_id": str})
    kw = dict(loadings=tuple(loadings), loss_threshold=loss_threshold, **BASIS_BOOTSTRAP)
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


def design_products(config) -> list:
    """The products the design search tunes: those whose trigger plugin declares design terms.

    A product is designable when its plugin says so
    (:meth:`panen.engine.api.Trigger.design_terms` is not ``None``), whatever it is called.

    Raises
    ------
    ConfigError
        A designable trigger refuses this term sheet (e.g. a step schedule without a
        trigger point), with the plugin's reason.
    """
    from panen.engine.registry import get_trigger

    return [p for p in config.products if get_trigger(p.trigger).design_terms(p) is not None]


def design_search(config, result, losses: pd.DataFrame, design, *,
                  loadings: tuple[float, float], loss_threshold: float = 0.0) -> DesignOutcome:
    """Search the phases of every designable product against the loss reference.

    One :func:`panen.engine.research.design.search` per product (:func:`design_products`) on
    the backtest's index values (:func:`simulation_table`), through the product's own
    trigger plugin (:meth:`~panen.engine.research.design.DesignSpace.from_term_sheet`):
    each phase keeps its curve, direction and weight; linear phases vary strike and exit,
    phases without an exit (binary, step) their strike, at the default quantiles of the
    index rounded to 0.01 index units; grouped by ``design.by``. The constraints are those
    of ``design``, the season cap the term sheet's; the gross rate and the premium of the
    hedging effectiveness use ``loadings`` (the pricing section's expense and profit
    loadings; a risk load does not enter the search). The chosen term sheets are the
    plugin's own (:attr:`~panen.engine.research.design.DesignResult.term_sheets`).
    """
    from panen.engine.research.design import Constraints, DesignSpace, search

    zones = design.zones
    if isinstance(zones, Path):
        z = pd.read_parquet(zones) if zones.suffix.lower() in (".parquet", ".pq", ".parq") else pd.read_csv(
            zones, dtype=str)
        if not {"district_id", "zone"} <= set(z.columns):
            raise InputError(Problem("a zones table needs the columns district_id, zone", file=zones))
        zones = dict(zip(z["district_id"].astype(str), z["zone"].astype(str)))
    sim = simulation_table(result)
    lo = losses[["district_id", "season", "loss"]].astype({"district_id": str})
    cons = Constraints(max_premium_rate=design.max_premium_rate,
                       min_payout_frequency_in_worst=design.min_payout_frequency_in_worst,
                       worst_share=design.worst_share, meaningful_rate=design.meaningful_rate)
    results, sheets, notes = {}, {}, []
    for p in design_products(config):
        space = DesignSpace.from_term_sheet(p, by=design.by, zones=zones)
        # quantile grids rounded to 0.01 index units: term sheets read 60.0 mm, not 59.99999999999999
        space = space.model_copy(update={"phases": {n: ps.model_copy(update={"decimals": _DESIGN_DECIMALS})
                                                    for n, ps in space.phases.items()}})
        res = search(sim[sim["product_id"] == p.id], lo, space, cons, objective=design.objective,
                     loadings=loadings, loss_threshold=loss_threshold)
        results[p.id] = res
        notes.extend(f"design: {n}" for n in res.notes)
        sheets[p.id] = res.term_sheets
    return DesignOutcome(results=results, term_sheets=sheets, by=design.by, notes=notes)


def pricing_summary(result) -> pd.DataFrame:
    """One line per product: burn cost and gross rate of the portfolio, 1-in-10 year payout, POD, HE.

    ``burn_cost`` / ``gross_premium_rate``: the district rates weighted by sum insured (the
    register's, else equal) — the expected payout (premium) per rupiah insured;
    ``payout_1in10`` [Rp] as in :func:`tail_table`; ``pod``, ``hedging_effectiveness``
    pooled over the product's district-seasons (NaN without a loss reference).
    """
    from panen.engine.research.pricing import return_period_losses

    rows = []
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
                totals = complete_season_payouts(result.portfolio, pid)
            row["payout_1in10"] = float(return_period_losses(totals, [10]).iloc[0]) if len(totals) else np.nan
        if result.basis_risk is not None:
            b = result.basis_risk[(result.basis_risk["scope"] == "product") & (result.basis_risk["product_id"] == pid)]
            row["pod"] = float(b["pod"].iloc[0]) if len(b) else np.nan
            row["hedging_effectiveness"] = float(b["hedging_effectiveness"].iloc[0]) if len(b) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def write_analysis_plots(result, folder: Path) -> dict[str, Path]:
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


def _finite_only(value: Any) -> Any:
    """A dumped term sheet without its non-finite numbers (open defaults; a config refuses them)."""
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items() if not (isinstance(v, float) and not np.isfinite(v))}
    if isinstance(value, list):
        return [_finite_only(v) for v in value]
    return value


def _term_sheet_yaml(outcome: DesignOutcome, pid: str) -> str | None:
    """The chosen term sheet(s) of a product as YAML: one mapping (``by: product``), else a list of
    term sheets with ids ``<product>-<zone>`` (paste under ``products:``)."""
    import yaml

    sheets = outcome.term_sheets.get(pid) or {}
    if not sheets:
        return None

    def dump(params) -> dict:
        # infinite values are open defaults (a step band's edge): left out, as a config must write them
        tidy = _finite_only(params.model_dump(mode="json", exclude_none=True))
        # unset optional keys are left out only when that reads back as the same term sheet
        return tidy if type(params).model_validate(tidy) == params else _finite_only(params.model_dump(mode="json"))

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
