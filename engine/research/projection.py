"""In-season projection of open windows with past years' weather (analogue years).

With data up to an as-of date, the days of a product's windows after that date are not
known yet. Following FEWS NET's *extended* Water Requirement Satisfaction Index — which
completes the current season's index by filling the dekads still to come with each
historical year's data for the same dekads, giving one outcome per historical year —
every day after the as-of date is filled with the weather of each *analogue year* for the
same day of the season, and the product is evaluated once per analogue year by the
trigger plugin's **own** :meth:`~panen.engine.api.Trigger.evaluate` (never a copy of its
curves). The analogue years are a batch: they are stacked onto the district dimension
and evaluated in one call, so thousands of district-years cost one evaluation.

Day mapping. An analogue year ``y`` is the season whose harvest year is ``y``; its
season starts on the anniversary of the current season's start ``k = year − y`` years
earlier (a 29 February start falls on 28 February in a common year), and a day ``t`` of
the current season maps to ``analogue start + (t − season start)``: the same *day-of-season
offset*. A wet-season window crossing the year boundary (November–March) therefore maps
onto the analogue's November–March, and a 29 February in the current season takes the
analogue's day of the same offset (1 March of a common year) — no day is dropped or used
twice.

Money. Each analogue year's payout rates are settled through the one ledger
(:func:`panen.engine.settlement.ledger.build_ledger`: sum insured, rounding, the product's
policy terms), so a projected rupiah is what the ledger would pay if that year's weather
followed. An analogue year in which a district's policies would be withheld for missing
data (the history lacks days of the window, or the observed part does) is skipped for that
district, never read as no rain.

Guaranteed minimum. A lower bound no later data can lower: by default the trivial one of
the *closed* windows — phases whose window ended by the as-of date, evaluated by the plugin
with every later day missing, summed and capped as the plugin's declared design terms say
(:class:`~panen.engine.api.DesignTerms`: season rate = min(Σ phase rates, season cap)); a
trigger that declares none guarantees 0. A finer bound (an ``above`` phase's current
payout, computed by the in-season settlement) can be passed in instead; either way every
analogue year must pay at least it, and a projection that does not is refused.

References
----------
Verdin, J. and Klaver, R. (2002). Grid-cell-based crop water accounting for the famine early
warning system. *Hydrological Processes* 16(8), 1617–1630 (the WRSI, and its extension to
the end of the season with historical data). FEWS NET, *Water Requirement Satisfaction
Index (WRSI)* documentation, USGS/EROS Early Warning (the "extended WRSI": the current
season's WRSI completed with each year of the historical record for the remaining dekads).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from panen.engine.api import (
    InputKind,
    ProductParams,
    Season,
    Trigger,
    TriggerInputs,
    check_result_values,
    standardise_result,
)
from panen.engine.errors import ConfigError, DataQualityError, Problem
from panen.engine.maths.terms import Terms, round_rupiah
from panen.engine.settlement.ledger import build_ledger
from panen.engine.settlement.policies import ProductRules
from panen.engine.settlement.rates import RateTable

__all__ = [
    "PROJECTION_COLUMNS",
    "QUANTILES",
    "Projection",
    "analogue_days",
    "analogue_start",
    "continued_series",
    "not_projectable",
    "project_rates",
    "projection_table",
    "unprojectable_rows",
]

#: Columns of ``projection.csv`` (money in integer rupiah; rates and probabilities in [0, 1]).
PROJECTION_COLUMNS: tuple[str, ...] = ("district_id", "product_id", "years", "p_payout", "expected_rate",
                                       "expected_payout", "q10", "q50", "q90", "guaranteed", "sum_insured",
                                       "projectable", "reason")
#: Quantiles of the projected district payout reported [fraction] (the fan chart's 10/50/90 %).
QUANTILES: tuple[float, ...] = (0.10, 0.50, 0.90)


# --------------------------------------------------------------------------- what can be projected
def not_projectable(trigger: type[Trigger], params: ProductParams, kinds: Mapping[str, InputKind | None],
                    history: Mapping[str, str]) -> str | None:
    """Why a product cannot be projected with analogue years, or ``None`` when it can.

    Decided from what the product declares, never from its name: its windows must be
    fixed offsets from an anchor (:attr:`ProductParams.reach`; an NDVI climatology reads its
    whole baseline record, which replacing days with past years would change too), every
    input it reads must be a daily grid or series (a yields table is not weather that can
    be continued day by day), and each must have a history configured.

    Parameters
    ----------
    trigger, params
        The plugin and the product's term sheet.
    kinds
        Input name → kind of the opened input (``grid``, ``series``, ``table``, ...).
    history
        ``projection.history``: input name → the input holding its past years.
    """
    needs = trigger.required_inputs(params)
    tables = [n for n in needs if kinds.get(n) not in ("grid", "series")]
    if tables:
        return (f"reads {', '.join(f'inputs.{n}' for n in tables)}, which is not a daily weather series: the "
                f"{trigger.name} index cannot be continued with past years' weather (no index can be projected "
                f"from a table, e.g. a harvest yield)")
    if params.reach is None:
        return (f"its windows are not fixed offsets from an anchor (the {trigger.name} trigger declares no reach: its "
                f"index reads the whole record, e.g. a baseline climatology, which filling the days after the as-of "
                f"date with past years would change too)")
    missing = [n for n in needs if n not in history]
    if missing:
        return f"no history configured for {', '.join(f'inputs.{n}' for n in missing)} (projection.history)"
    return None


# --------------------------------------------------------------------------- day mapping
def analogue_start(season_start: np.datetime64 | dt.date, years_back: int) -> np.datetime64:
    """The analogue season's first day: the season start's anniversary ``years_back`` years earlier [date].

    A 29 February start falls on 28 February of a common year.

    >>> str(analogue_start(np.datetime64("2023-11-01"), 3))
    '2020-11-01'
    >>> str(analogue_start(np.datetime64("2024-02-29"), 1))
    '2023-02-28'
    """
    ts = pd.Timestamp(np.datetime64(season_start, "D")) - pd.DateOffset(years=int(years_back))
    return np.datetime64(ts.date(), "D")


def analogue_days(days: np.ndarray, season: Season, year: int) -> np.ndarray:
    """The analogue year's days for the current season's ``days``: the same day-of-season offsets.

    Parameters
    ----------
    days
        Days of the current season [datetime64[D]] (any, e.g. those after the as-of date).
    season
        The current season (its start and harvest year).
    year
        The analogue's harvest year.

    Returns
    -------
    numpy.ndarray
        ``analogue_start(season.start, season.year − year) + (days − season.start)`` [datetime64[D]].

    >>> s = Season("2024-MT1", np.datetime64("2023-11-01"), np.datetime64("2024-03-31"), 2024)
    >>> [str(d) for d in analogue_days(np.array(["2023-12-31", "2024-01-01", "2024-02-29"], "M8[D]"), s, 2022)]
    ['2021-12-31', '2022-01-01', '2022-03-01']
    """
    start = np.datetime64(season.start, "D")
    offset = np.asarray(days, dtype="datetime64[D]") - start
    return analogue_start(start, season.year - int(year)) + offset


def continued_series(observed: xr.Dataset, history: xr.Dataset, *, season: Season, as_of: dt.date,
                     years: Sequence[int], span: tuple[np.datetime64, np.datetime64]) -> xr.Dataset:
    """The observed district series up to ``as_of``, continued with each analogue year's days after it.

    Parameters
    ----------
    observed
        The season's district series: ``mean`` [input units] and ``valid_fraction`` [0..1]
        on ``(time, district)``; days after ``as_of`` are ignored.
    history
        The same variable over past years, same districts (``mean``, ``valid_fraction``).
    season, as_of
        The current season and the last day of data [date].
    years
        Analogue harvest years.
    span
        First and last day the product's windows read [datetime64[D]], inclusive.

    Returns
    -------
    xarray.Dataset
        ``mean`` and ``valid_fraction`` on ``(member, time, district)``: one member per
        analogue year, then one with every day after ``as_of`` missing — what the closed
        windows alone say — and a last one with every day after ``as_of`` a valid dry day
        (0 mm), whose flags are those of the observed days alone. A day the history lacks is missing
        (``mean`` NaN, ``valid_fraction`` 0), never zero rain. ``mean`` keeps the observed
        series' attributes (units).
    """
    lo, hi = (np.datetime64(s, "D") for s in span)
    time = np.arange(lo, hi + np.timedelta64(1, "D"), dtype="datetime64[D]")
    cut = np.datetime64(as_of, "D")
    after = time > cut
    districts = observed["district"].values
    obs = observed[["mean", "valid_fraction"]].assign_coords(
        time=observed["time"].values.astype("datetime64[D]").astype("datetime64[ns]"))
    obs = obs.reindex(time=time.astype("datetime64[ns]"), district=districts)
    obs_mean = np.asarray(obs["mean"].transpose("time", "district").values, dtype=float)
    obs_valid = np.nan_to_num(np.asarray(obs["valid_fraction"].transpose("time", "district").values, dtype=float))
    obs_mean[after] = np.nan
    obs_valid[after] = 0.0
    n_after = int(after.sum())
    hist = history[["mean", "valid_fraction"]].assign_coords(
        time=history["time"].values.astype("datetime64[D]").astype("datetime64[ns]")).reindex(district=districts)
    wanted = np.concatenate([analogue_days(time[after], season, y) for y in years]) if len(years) else \
        np.array([], dtype="datetime64[D]")
    got = hist.reindex(time=wanted.astype("datetime64[ns]"))
    h_mean = np.asarray(got["mean"].transpose("time", "district").values, dtype=float)
    h_valid = np.nan_to_num(np.asarray(got["valid_fraction"].transpose("time", "district").values, dtype=float))
    h_mean = h_mean.reshape(len(years), n_after, len(districts))
    h_valid = h_valid.reshape(len(years), n_after, len(districts))
    n_members = len(years) + 2
    mean = np.broadcast_to(obs_mean, (n_members, *obs_mean.shape)).copy()
    valid = np.broadcast_to(obs_valid, (n_members, *obs_valid.shape)).copy()
    mean[:-2, after] = h_mean
    valid[:-2, after] = h_valid
    mean[-1, after] = 0.0
    valid[-1, after] = 1.0
    coords = {"member": np.arange(n_members), "time": time.astype("datetime64[ns]"), "district": districts}
    return xr.Dataset({"mean": (("member", "time", "district"), mean, dict(observed["mean"].attrs)),
                       "valid_fraction": (("member", "time", "district"), valid,
                                          dict(observed["valid_fraction"].attrs))}, coords=coords)


# --------------------------------------------------------------------------- rates per analogue year
@dataclass(frozen=True)
class Projection:
    """A product's payout rates per analogue year.

    Attributes
    ----------
    product_id
        The product.
    years
        Analogue harvest years, in order.
    district_ids, cohorts
        The run's districts and window anchors [datetime64[D]].
    rate
        ``(district, cohort, year)`` payout rate [fraction of sum insured]; NaN where flagged.
    flagged
        ``(district, cohort, year)``: the trigger could not assess that analogue year (a day
        of the window without data, observed or historical).
    closed_rate
        ``(district, cohort)`` rate of the closed windows alone [fraction]: the trivial
        guaranteed minimum (0 where the trigger declares no design terms).
    observed_flagged
        ``(district, cohort)``: the observed days up to the as-of date already lack data for
        a window — flagged whatever weather follows (the season's run withholds them too).
    notes
        What was decided (for the manifest).
    """

    product_id: str
    years: np.ndarray
    district_ids: np.ndarray
    cohorts: np.ndarray
    rate: np.ndarray
    flagged: np.ndarray
    closed_rate: np.ndarray
    observed_flagged: np.ndarray
    notes: list[str] = field(default_factory=list)


def project_rates(trigger: type[Trigger], params: ProductParams, *, season: Season, cohorts: np.ndarray,
                  district_ids: np.ndarray, observed: Mapping[str, xr.Dataset], history: Mapping[str, xr.Dataset],
                  as_of: dt.date, years: Sequence[int]) -> Projection:
    """Evaluate a product once per analogue year, with the plugin's own ``evaluate``, in one call.

    Parameters
    ----------
    trigger, params
        The trigger plugin and the product's term sheet (it must be projectable:
        :func:`not_projectable`).
    season, cohorts, district_ids
        As the run evaluates the product (:class:`~panen.engine.api.TriggerInputs`).
    observed
        Input name → the season's district series (days after ``as_of`` are ignored).
    history
        Input name → the same variable's district series over the analogue years.
    as_of
        Last day of observed data [date].
    years
        Analogue harvest years (each before the season's).

    Returns
    -------
    Projection

    Notes
    -----
    The analogue years — and two more members: every day after ``as_of`` missing (the
    closed windows), and every day after it a valid dry day (the observed days' own gaps)
    — are stacked onto the district dimension: the plugin sees
    ``len(district_ids) × (len(years) + 2)`` districts and evaluates them in one call.
    """
    cohorts = np.asarray(cohorts, dtype="datetime64[D]")
    district_ids = np.asarray([str(d) for d in np.asarray(district_ids).tolist()], dtype=object)
    reach = params.reach
    span = (cohorts.min() + np.timedelta64(reach[0], "D"), cohorts.max() + np.timedelta64(reach[1] - 1, "D"))
    n_d, n_c, n_m = len(district_ids), len(cohorts), len(years) + 2
    feeds = {}
    for name in trigger.required_inputs(params):
        obs = observed[name].reindex(district=district_ids)
        cont = continued_series(obs, history[name], season=season, as_of=as_of, years=years, span=span)
        # member-major stacking: stacked district i*n_d + d is member i of district d
        stacked = cont.transpose("time", "member", "district").stack(unit=("member", "district"))
        stacked = stacked.drop_vars(["unit", "member", "district"]).rename(unit="district")
        feeds[name] = stacked.assign_coords(district=np.arange(n_m * n_d).astype(str).astype(object))
    ids = np.arange(n_m * n_d).astype(str).astype(object)
    result = trigger().evaluate(params, TriggerInputs(season=season, cohorts=cohorts, district_ids=ids,
                                                     series=feeds, tables={}, insured_area=None))
    ds = standardise_result(result, trigger=trigger.name, product_id=params.id, district_ids=ids, cohorts=cohorts)
    if any(v.chunks for v in ds.data_vars.values()):
        import dask

        (ds,) = dask.compute(ds, scheduler="threads", optimize_graph=False)  # as steps._evaluate_one
    ds = check_result_values(ds, trigger=trigger.name, product_id=params.id)
    rate = np.asarray(ds["payout_rate"].transpose("district", "cohort").values, dtype=float).reshape(n_m, n_d, n_c)
    flagged = np.asarray(ds["flagged"].transpose("district", "cohort").values, dtype=bool).reshape(n_m, n_d, n_c)
    phase = np.asarray(ds["phase_rate"].transpose("phase", "district", "cohort").values, dtype=float)
    phase = phase.reshape(phase.shape[0], n_m, n_d, n_c)[:, -2]  # the member with no day after as_of
    notes: list[str] = []
    closed = np.zeros((n_d, n_c))
    try:
        terms = trigger.design_terms(params)
    except ConfigError:
        terms = None
    if terms is None:
        notes.append(f"projection {params.id}: the {trigger.name} trigger declares no design terms (season rate = "
                     f"capped sum of phase rates), so its closed windows guarantee nothing here (guaranteed 0)")
    else:
        closed = np.minimum(np.nansum(phase, axis=0), float(terms.season_cap))
    final = ~flagged[-2] & np.isfinite(rate[-2])  # every window closed: the rate is final
    closed = np.where(final, rate[-2], closed)
    return Projection(product_id=params.id, years=np.asarray(years, dtype=int), district_ids=district_ids,
                      cohorts=cohorts, rate=np.moveaxis(rate[:-2], 0, -1), flagged=np.moveaxis(flagged[:-2], 0, -1),
                      closed_rate=closed, observed_flagged=flagged[-1], notes=notes)


# --------------------------------------------------------------------------- money per analogue year
def _district_money(policies: pd.DataFrame, table: RateTable, rules: ProductRules, terms: Terms | None,
                    season_end) -> pd.DataFrame:
    """Per district: net payout [Rp], Σ rate × sum insured, sum insured [Rp], withheld policies."""
    pid = table.product_id
    ledger = build_ledger(policies, {pid: table}, {pid: rules}, {pid: terms}, season_end=season_end)
    frame = ledger.select(["district_id", "sum_insured", "payout_rate", "net_payout", "status"]).to_pandas()
    frame["district_id"] = frame["district_id"].astype(str)
    frame["weighted"] = frame["payout_rate"].fillna(0.0) * frame["sum_insured"]
    frame["withheld"] = (frame["status"].astype(str) == "withheld_missing_data").astype(np.int64)
    return frame.groupby("district_id", sort=True)[["net_payout", "weighted", "sum_insured", "withheld"]].sum()


def projection_table(projection: Projection, policies: pd.DataFrame, rules: ProductRules, terms: Terms | None, *,
                     anchor: str, season_end, min_years: int,
                     guaranteed: pd.Series | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Per district: probability of a payout, expected payout and its 10/50/90 % quantiles, guaranteed minimum.

    Parameters
    ----------
    projection
        The product's rates per analogue year (:func:`project_rates`).
    policies
        Valid register rows (any products; the projection's are used).
    rules, terms
        The product's ledger rules and policy terms (as the run settles it).
    anchor
        The product's anchor (``season_start`` or ``sowing_date``).
    season_end
        The season's last day (term context, as :func:`build_ledger` takes it).
    min_years
        Usable analogue years a district needs for its statistics; with fewer its row
        says so and carries none.
    guaranteed
        Guaranteed minimum per district [Rp] (index: district id) from the in-season
        settlement; ``None``: the closed windows' bound (:attr:`Projection.closed_rate`,
        settled through the same ledger).

    Returns
    -------
    (pandas.DataFrame, list of str)
        :data:`PROJECTION_COLUMNS`, one row per district with policies of the product:
        ``years`` (usable analogue years), ``p_payout`` (share of them with a net payout
        > 0), ``expected_rate`` (mean over them of the sum-insured-weighted payout rate
        [fraction]), ``expected_payout``, ``q10``, ``q50``, ``q90`` (mean and quantiles —
        linear interpolation between order statistics — of the district's net payout,
        half-up to the rupiah) and ``guaranteed`` [Rp]; ``sum_insured`` [Rp]. And notes.

    Raises
    ------
    DataQualityError
        An analogue year pays a district less than its guaranteed minimum — the bound or
        the data is wrong, and no number of this projection can be trusted.
    """
    pid = projection.product_id
    mine = policies[(policies["product_id"].astype(str) == pid).to_numpy()]
    ids, cohorts = projection.district_ids, projection.cohorts
    insured = sorted(set(mine["district_id"].astype(str)) & set(ids))
    n_y = len(projection.years)
    net = np.zeros((len(insured), n_y), dtype=np.int64)
    weighted = np.zeros((len(insured), n_y))
    usable = np.zeros((len(insured), n_y), dtype=bool)
    sum_insured = np.zeros(len(insured), dtype=np.int64)
    # policies the observed days already withhold are withheld in every analogue year: left out, said so
    gaps = RateTable(product_id=pid, district_ids=ids, cohorts=cohorts, rate=np.zeros(projection.closed_rate.shape),
                     flagged=projection.observed_flagged, anchor=anchor)
    base = _district_money(mine, gaps, rules, terms, season_end).reindex(insured)
    policies_in = mine.groupby(mine["district_id"].astype(str)).size().reindex(insured).to_numpy()
    withheld_base = base["withheld"].to_numpy(dtype=np.int64)
    for k in range(n_y):  # one ledger per analogue year (each vectorised over the policies)
        table = RateTable(product_id=pid, district_ids=ids, cohorts=cohorts, rate=projection.rate[:, :, k],
                          flagged=projection.flagged[:, :, k], anchor=anchor)
        m = _district_money(mine, table, rules, terms, season_end).reindex(insured)
        net[:, k] = m["net_payout"].to_numpy(dtype=np.int64)
        weighted[:, k] = m["weighted"].to_numpy(dtype=float)
        usable[:, k] = m["withheld"].to_numpy() == withheld_base
        sum_insured = m["sum_insured"].to_numpy(dtype=np.int64)
    if guaranteed is None:
        closed = RateTable(product_id=pid, district_ids=ids, cohorts=cohorts, rate=projection.closed_rate,
                           flagged=projection.observed_flagged, anchor=anchor)
        floor = _district_money(mine, closed, rules, terms, season_end).reindex(insured)["net_payout"]
        floor = floor.to_numpy(dtype=np.int64)
    else:
        floor = guaranteed.reindex(insured).fillna(0).to_numpy(dtype=np.int64)
    rows, notes = [], []
    skipped: dict[int, int] = {}
    for i, district in enumerate(insured):
        ok = usable[i]
        row = {"district_id": district, "product_id": pid, "years": int(ok.sum()), "guaranteed": int(floor[i]),
               "sum_insured": int(sum_insured[i]), "projectable": True, "reason": ""}
        gap = (f"{withheld_base[i]:,} of {policies_in[i]:,} policies withheld for missing observed data before the "
               f"as-of date (as the season's run withholds them): not projected")
        if withheld_base[i] == policies_in[i]:
            row.update(years=0, reason=gap)
            rows.append(row)
            continue
        for y in projection.years[~ok]:
            skipped[int(y)] = skipped.get(int(y), 0) + 1
        n = int(ok.sum())
        if withheld_base[i]:
            row["reason"] = gap.replace(": not projected", ": left out (they pay nothing in every analogue year)")
        if n < min_years:
            row["reason"] = "; ".join(filter(None, [
                f"only {n} usable analogue year(s) of {n_y} (min_years: {min_years}); the others lack history data "
                f"for a window", row["reason"]]))
            rows.append(row)
            continue
        paid = net[i, ok]
        low = int(paid.min())
        if low < floor[i]:
            year = int(projection.years[ok][int(np.argmin(paid))])
            raise DataQualityError(Problem(
                f"projection {pid}: analogue year {year} pays district {district} Rp {low:,}, below its guaranteed "
                f"minimum of Rp {int(floor[i]):,}: a guaranteed payout must be paid whatever weather follows"))
        q = np.quantile(paid.astype(float), QUANTILES)
        row.update(p_payout=float((paid > 0).mean()),
                   expected_rate=float(weighted[i, ok].mean() / sum_insured[i]) if sum_insured[i] else 0.0,
                   expected_payout=int(round_rupiah(paid.astype(float).mean())),
                   **{f"q{int(round(p * 100))}": int(round_rupiah(v)) for p, v in zip(QUANTILES, q)})
        rows.append(row)
    if skipped:
        notes.append(f"projection {pid}: analogue year(s) skipped for missing data in a window (district count): "
                     + ", ".join(f"{y} ({c})" for y, c in sorted(skipped.items())))
    return _typed(pd.DataFrame(rows, columns=list(PROJECTION_COLUMNS))), notes


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer money and counts as nullable integers (an empty cell, never 0, where there is no value)."""
    for c in ("years", "expected_payout", "q10", "q50", "q90", "guaranteed", "sum_insured"):
        frame[c] = frame[c].astype("Int64")
    for c in ("p_payout", "expected_rate"):
        frame[c] = frame[c].astype(float)
    frame["projectable"] = frame["projectable"].astype(bool)
    frame["reason"] = frame["reason"].fillna("").astype(str)
    return frame


def unprojectable_rows(product_id: str, district_ids: Sequence[str], reason: str) -> pd.DataFrame:
    """Rows of ``projection.csv`` for a product that cannot be projected: every value empty, the reason given."""
    rows = [{"district_id": str(d), "product_id": product_id, "projectable": False, "reason": reason}
            for d in district_ids]
    return _typed(pd.DataFrame(rows, columns=list(PROJECTION_COLUMNS)))
