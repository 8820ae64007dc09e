"""Trigger design search against brute-force loops written plainly here.

The expectations never go through panen's curve, pricing or basis code: the payout, the
premium, HE and b/(a+b) are recomputed below from their textbook formulas (Vedenov & Barnett 2004; WMO forecast verification).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from panen.engine.research.design import Constraints, DesignSpace, PhaseSpace, Range, plot_tradeoff, search, to_term_sheet
from panen.engine.errors import ConfigError, InputError

# 20 seasons of a rainfall index [mm]; the loss is exactly clip((100 − I) / 60, 0, 1)
INDEX = np.array([150, 130, 95, 60, 120, 110, 85, 45, 140, 100, 70, 125, 35, 115, 90, 135, 55, 105, 145, 80.0])
SEASONS = np.arange(2001, 2021)


def true_loss(index, strike=100.0, exit=40.0):
    return np.clip((strike - index) / (strike - exit), 0.0, 1.0)


def tables(index_by_district, loss_by_district, phase="p1"):
    """Simulation table and loss reference of one phase for ``{district: values}``."""
    sim, losses = [], []
    for d, idx in index_by_district.items():
        n = len(idx)
        sim.append(pd.DataFrame({"district_id": d, "product_id": "rain", "season": SEASONS[:n], "phase": phase,
                                 "index_value": idx, "payout_rate": 0.0}))
        losses.append(pd.DataFrame({"district_id": d, "season": SEASONS[:n], "loss": loss_by_district[d]}))
    return pd.concat(sim, ignore_index=True), pd.concat(losses, ignore_index=True)


# --------------------------------------------------------------------- plain brute force
def plain_payout(index, strike, exit, weight=1.0, cap=1.0):
    out = []
    for x in index:
        r = (strike - x) / (strike - exit)
        out.append(min(max(r, 0.0), 1.0) * weight)
    return np.minimum(np.array(out), cap)


def plain_he(loss, payout, premium):
    """1 − SV(Y)/SV(Y0), Y0 = 1 − loss, Y = Y0 − premium + payout, about the mean of Y0."""
    y0 = [1.0 - x for x in loss]
    mu = sum(y0) / len(y0)
    sv0 = sum(min(v - mu, 0.0) ** 2 for v in y0)
    sv = sum(min(v - premium + p - mu, 0.0) ** 2 for v, p in zip(y0, payout))
    return 1.0 - sv / sv0


def plain_missed(loss, payout):
    a = sum(1 for x, p in zip(loss, payout) if x > 0 and p > 0)
    b = sum(1 for x, p in zip(loss, payout) if x > 0 and not p > 0)
    return b / (a + b)


def brute_force(index, loss, strikes, exits, loading=0.0):
    rows = []
    for s in strikes:
        for e in exits:
            if not e < s:
                continue
            p = plain_payout(index, s, e)
            premium = p.mean() * (1.0 + loading)
            rows.append({"strike": s, "exit": e, "premium": premium, "he": plain_he(loss, p, premium),
                         "missed": plain_missed(loss, p)})
    return pd.DataFrame(rows)


STRIKES = [80.0, 85, 90, 95, 100, 105, 110, 115, 120]
EXITS = [20.0, 25, 30, 35, 40, 45, 50, 55, 60]
SPACE = DesignSpace(phases={"p1": PhaseSpace(strikes=STRIKES, exits=Range(start=20, stop=60, step=5))})


@pytest.fixture
def one_district():
    return tables({"d1": INDEX}, {"d1": true_loss(INDEX)})


# --------------------------------------------------------------------- tests
def test_he_objective_finds_the_design_that_replicates_the_loss(one_district):
    sim, losses = one_district
    res = search(sim, losses, SPACE, loadings=(0.0, 0.0))
    bf = brute_force(INDEX, true_loss(INDEX), STRIKES, EXITS)
    assert len(res.designs) == len(bf) == 81
    chosen = res.chosen.iloc[0]
    assert (chosen["p1.strike"], chosen["p1.exit"]) == (100.0, 40.0)
    assert chosen["hedging_effectiveness"] == pytest.approx(bf["he"].max()) == pytest.approx(1.0)
    assert bf.loc[bf["he"].idxmax(), ["strike", "exit"]].tolist() == [100.0, 40.0]
    # every candidate's HE and premium agree with the plain loop
    got = res.designs.set_index(["p1.strike", "p1.exit"]).sort_index()
    want = bf.set_index(["strike", "exit"]).sort_index()
    np.testing.assert_allclose(got["hedging_effectiveness"], want["he"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["gross_premium_rate"], want["premium"], rtol=1e-12)
    assert res.unresolved.empty and chosen["feasible"] and chosen["reason"] == ""


def test_loaded_premium_enters_he_and_the_choice_is_the_brute_force_maximum(one_district):
    sim, losses = one_district
    res = search(sim, losses, SPACE)  # default loadings 25 % + 10 %
    bf = brute_force(INDEX, true_loss(INDEX), STRIKES, EXITS, loading=0.35)
    best = bf.loc[bf["he"].idxmax()]
    chosen = res.chosen.iloc[0]
    assert (chosen["p1.strike"], chosen["p1.exit"]) == (best["strike"], best["exit"])
    assert chosen["hedging_effectiveness"] == pytest.approx(best["he"])
    assert chosen["gross_premium_rate"] == pytest.approx(1.35 * chosen["burn_cost"])
    # with a loaded premium the exact replica (100, 40) is no longer the HE optimum on this grid
    assert (best["strike"], best["exit"]) != (100.0, 40.0)


def test_premium_cap_picks_the_best_feasible_and_the_frontier_is_pareto_efficient(one_district):
    sim, losses = one_district
    cap = 0.8 * true_loss(INDEX).mean()  # the exact replica's fair premium is mean(loss): excluded
    res = search(sim, losses, SPACE, Constraints(max_premium_rate=cap), loadings=(0.0, 0.0))
    bf = brute_force(INDEX, true_loss(INDEX), STRIKES, EXITS)
    ok = bf[bf["premium"] <= cap]
    best = ok.loc[ok["he"].idxmax()]
    chosen = res.chosen.iloc[0]
    assert (chosen["p1.strike"], chosen["p1.exit"]) == (best["strike"], best["exit"]) != (100.0, 40.0)
    assert chosen["gross_premium_rate"] <= cap
    infeasible = res.designs[~res.designs["feasible"]]
    assert len(infeasible) == int((bf["premium"] > cap).sum()) > 0
    assert infeasible["reason"].str.contains("premium").all()

    front, d = res.frontier, res.designs
    assert len(front) >= 2
    for _, f in front.iterrows():
        dominated = ((d["gross_premium_rate"] <= f["gross_premium_rate"])
                     & (d["hedging_effectiveness"] >= f["hedging_effectiveness"])
                     & ((d["gross_premium_rate"] < f["gross_premium_rate"])
                        | (d["hedging_effectiveness"] > f["hedging_effectiveness"])))
        assert not dominated.any()
    assert np.all(np.diff(front["gross_premium_rate"]) > 0) and np.all(np.diff(front["objective"]) > 0)
    # the frontier reaches beyond the cap (what a higher cap would buy) and holds the chosen design
    assert (~front["feasible"]).any()
    assert int(chosen["candidate"]) in front["candidate"].tolist()


def test_infeasible_everywhere_is_reported_not_relaxed(one_district):
    sim, losses = one_district
    res = search(sim, losses, SPACE, Constraints(max_premium_rate=1e-6))
    assert res.chosen.empty
    assert not res.designs["feasible"].any()
    assert len(res.unresolved) == 1
    reason = res.unresolved.iloc[0]["reason"]
    assert "no feasible design among 81" in reason and "premium cap" in reason
    assert any("no design chosen" in n for n in res.notes)


def test_worst_year_payout_constraint():
    # worst 10 % of 20 seasons = the 2 largest losses: index 35 and 45 (loss 1.0 and 0.917)
    sim, losses = tables({"d1": INDEX}, {"d1": true_loss(INDEX)})
    low = DesignSpace(phases={"p1": PhaseSpace(strikes=[20.0, 30.0], exits=[0.0, 10.0])})
    cons = Constraints(min_payout_frequency_in_worst=0.5)
    res = search(sim, losses, low, cons)
    assert res.chosen.empty and (res.designs["payout_in_worst_share"] == 0).all()
    assert res.designs["reason"].str.contains("worst-10% loss seasons").all()
    # strike 40 pays only at index 35: 1 of the 2 worst seasons, with (40 − 35)/(40 − 0) = 0.125 > 0.05
    mid = DesignSpace(phases={"p1": PhaseSpace(strikes=[40.0], exits=[0.0])})
    res = search(sim, losses, mid, cons)
    row = res.chosen.iloc[0]
    assert row["worst_seasons"] == 2 and row["payout_in_worst_share"] == pytest.approx(0.5)
    res = search(sim, losses, mid, Constraints(min_payout_frequency_in_worst=0.5, meaningful_rate=0.2))
    assert res.chosen.empty


def test_missed_loss_years_objective_minimises_b_over_a_plus_b(one_district):
    sim, losses = one_district
    strikes, exits = [60.0, 70, 80, 90, 100, 110], [20.0, 30, 40, 50]
    space = DesignSpace(phases={"p1": PhaseSpace(strikes=strikes, exits=exits)})
    res = search(sim, losses, space, objective="missed_loss_years")
    bf = brute_force(INDEX, true_loss(INDEX), strikes, exits, loading=0.35)
    np.testing.assert_allclose(res.designs.sort_values(["p1.strike", "p1.exit"])["missed_loss_year_share"],
                               bf.sort_values(["strike", "exit"])["missed"])
    tied = bf[bf["missed"] == bf["missed"].min()]
    best = tied.loc[tied["premium"].idxmin()]  # documented tie-break: the cheaper design
    chosen = res.chosen.iloc[0]
    assert chosen["missed_loss_year_share"] == bf["missed"].min() == 0.0
    assert (chosen["p1.strike"], chosen["p1.exit"]) == (best["strike"], best["exit"]) == (100.0, 20.0)


def test_zones_with_different_loss_functions_get_different_designs():
    rng = np.random.default_rng(3)
    idx = {d: rng.uniform(20, 160, 20).round(1) for d in ("d1", "d2", "d3", "d4")}
    loss = {d: true_loss(idx[d]) if d in ("d1", "d2") else true_loss(idx[d], 80.0, 40.0) for d in idx}
    sim, losses = tables(idx, loss)
    space = DesignSpace(phases={"p1": PhaseSpace(strikes=[70.0, 80, 90, 100, 110], exits=[30.0, 40, 50])},
                        by="zone", zones={"d1": "north", "d2": "north", "d3": "south", "d4": "south"})
    res = search(sim, losses, space, loadings=(0.0, 0.0))
    got = res.chosen.set_index("zone")[["p1.strike", "p1.exit"]]
    assert got.loc["north"].tolist() == [100.0, 40.0]
    assert got.loc["south"].tolist() == [80.0, 40.0]
    assert (res.chosen["seasons"] == 40).all()
    per_district = search(sim, losses, space.model_copy(update={"by": "district", "zones": None}),
                          loadings=(0.0, 0.0))
    assert per_district.chosen.set_index("zone")["p1.strike"].to_dict() == {"d1": 100, "d2": 100, "d3": 80, "d4": 80}
    with pytest.raises(InputError, match="no zone"):
        search(sim, losses, DesignSpace(phases=space.phases, by="zone", zones={"d1": "north"}))


def test_two_phases_with_a_weight_split_recover_the_true_contract():
    rng = np.random.default_rng(7)
    i1, i2 = rng.uniform(20, 160, 30), rng.uniform(0, 90, 30)
    loss = 0.6 * true_loss(i1) + 0.4 * true_loss(i2, 50.0, 20.0)
    seasons = np.arange(1991, 2021)
    sim = pd.concat([pd.DataFrame({"district_id": "d1", "product_id": "rain", "season": seasons, "phase": ph,
                                   "index_value": v}) for ph, v in (("early", i1), ("late", i2))])
    losses = pd.DataFrame({"district_id": "d1", "season": seasons, "loss": loss})
    w = Range(start=0.2, stop=0.8, step=0.2)
    space = DesignSpace(phases={"early": PhaseSpace(strikes=[90.0, 100, 110], exits=[30.0, 40, 50], weights=w),
                                "late": PhaseSpace(strikes=[40.0, 50, 60], exits=[10.0, 20, 30], weights=w)},
                        weights_sum=1.0)
    res = search(sim, losses, space, loadings=(0.0, 0.0))
    assert len(res.designs) == 4 * 9 * 9  # (0.2, 0.8), (0.4, 0.6), (0.6, 0.4), (0.8, 0.2) × pairs × pairs
    c = res.chosen.iloc[0]
    assert [c["early.strike"], c["early.exit"], c["early.weight"], c["late.strike"], c["late.exit"]] == \
        pytest.approx([100, 40, 0.6, 50, 20])
    assert c["hedging_effectiveness"] == pytest.approx(1.0)


def test_missing_index_seasons_are_left_out_and_a_missing_phase_is_an_error(one_district):
    sim, losses = one_district
    sim = sim.copy()
    sim.loc[3, "index_value"] = np.nan
    res = search(sim, losses, SPACE, loadings=(0.0, 0.0))
    assert (res.designs["seasons"] == 19).all()
    assert any("1 of 20" in n for n in res.notes)
    with pytest.raises(ConfigError, match="not in the design space"):
        search(sim, losses, DesignSpace(phases={"other": PhaseSpace()}))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        search(sim, losses.assign(loss=losses["loss"] * 2))


def test_default_space_uses_index_quantiles_and_excess_phases_mirror_them(one_district):
    sim, losses = one_district
    res = search(sim, losses)  # every phase a deficit cover, strikes at the 5..50 % quantiles
    s, e = res.designs["p1.strike"], res.designs["p1.exit"]
    assert (e < s).all()
    assert s.min() == pytest.approx(np.quantile(INDEX, 0.05)) and s.max() == pytest.approx(np.median(INDEX))
    assert e.min() == pytest.approx(INDEX.min())
    up = search(sim, losses, DesignSpace(phases={"p1": PhaseSpace(direction="above", decimals=0)}))
    assert (up.designs["p1.exit"] > up.designs["p1.strike"]).all()
    assert up.designs["p1.strike"].min() == np.round(np.median(INDEX))


def test_thousands_of_candidates_over_many_districts_are_fast():
    rng = np.random.default_rng(0)
    idx = {f"d{i:02d}": rng.gamma(8, 15, 40) for i in range(30)}
    loss = {d: np.clip(true_loss(v) + rng.normal(0, 0.05, v.size), 0, 1) for d, v in idx.items()}
    sim, losses = _long(idx, loss)
    space = DesignSpace(phases={"p1": PhaseSpace(strikes=Range(start=60, stop=160, step=1),
                                                 exits=Range(start=0, stop=100, step=2))})
    t0 = time.perf_counter()
    res = search(sim, losses, space, Constraints(max_premium_rate=0.1, min_payout_frequency_in_worst=0.8))
    elapsed = time.perf_counter() - t0
    assert len(res.designs) > 4000 and elapsed < 5.0
    assert len(res.chosen) == 1 and res.chosen.iloc[0]["gross_premium_rate"] <= 0.1


def _long(idx, loss):
    seasons = np.arange(1981, 2021)
    sim = pd.concat([pd.DataFrame({"district_id": d, "product_id": "rain", "season": seasons, "phase": "p1",
                                   "index_value": v}) for d, v in idx.items()], ignore_index=True)
    losses = pd.concat([pd.DataFrame({"district_id": d, "season": seasons, "loss": v}) for d, v in loss.items()],
                       ignore_index=True)
    return sim, losses


def test_tradeoff_plot_is_a_png(one_district, tmp_path):
    sim, losses = one_district
    res = search(sim, losses, SPACE, Constraints(max_premium_rate=0.1))
    path = plot_tradeoff(res, tmp_path / "sub" / "tradeoff.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    none = search(sim, losses, SPACE, Constraints(max_premium_rate=1e-6))
    assert plot_tradeoff(none, tmp_path / "none.png").read_bytes()[:4] == b"\x89PNG"


def test_chosen_design_becomes_a_valid_term_sheet(one_district):
    from panen.triggers.weather import WeatherIndexParams

    params = WeatherIndexParams(id="rain", trigger="weather_index", sum_insured_per_ha=6_000_000, phases=[
        {"name": "p1", "start_day": 0, "end_day": 30, "index": "total", "direction": "below", "strike": 70,
         "exit": 10, "weight": 1.0}])
    sim, losses = one_district
    res = search(sim, losses, DesignSpace.from_term_sheet(params), loadings=(0.0, 0.0))
    sheet = to_term_sheet(params, res.chosen.iloc[0], max_rate=0.9)
    assert sheet.phases[0].strike == res.chosen.iloc[0]["p1.strike"] and sheet.season_cap == 0.9
    assert params.phases[0].strike == 70


def plain_pooled_he(loss_by_district, payout_by_district, loading):
    """HE pooled over districts, each season's shortfall measured below its own district's mean
    uninsured revenue, each district paying its own loaded burn cost (loops, no numpy)."""
    below0 = below = 0.0
    for d, loss in loss_by_district.items():
        pay = list(payout_by_district[d])
        y0 = [1.0 - x for x in loss]
        mu = sum(y0) / len(y0)
        premium = sum(pay) / len(pay) * (1.0 + loading)
        below0 += sum(min(v - mu, 0.0) ** 2 for v in y0)
        below += sum(min(v - premium + p - mu, 0.0) ** 2 for v, p in zip(y0, pay))
    return 1.0 - below / below0


def test_design_he_equals_the_basis_risk_he_of_the_same_term_sheet_over_several_districts():
    from panen.engine.research.basis import basis_risk_table

    idx = {"d1": INDEX, "d2": INDEX[::-1] + 15.0}
    loss = {"d1": true_loss(INDEX), "d2": np.clip(0.5 * true_loss(INDEX[::-1] + 15.0) + 0.1, 0, 1)}
    sim, losses = tables(idx, loss)
    space = DesignSpace(phases={"p1": PhaseSpace(strikes=[95.0], exits=[35.0])})
    res = search(sim, losses, space)  # loadings 25 % + 10 %
    design_he = res.designs["hedging_effectiveness"].iloc[0]
    payout = {d: plain_payout(v, 95.0, 35.0) for d, v in idx.items()}
    assert design_he == pytest.approx(plain_pooled_he(loss, payout, 0.35), rel=1e-12)
    rates = sim.assign(payout_rate=np.concatenate([payout["d1"], payout["d2"]]))
    basis = basis_risk_table(rates, losses, by=("product_id",), loadings=(0.25, 0.10), n_boot=20)
    assert basis["hedging_effectiveness"].iloc[0] == pytest.approx(design_he, rel=1e-12)
    # the premium both use is each district's loaded burn cost; the design's gross rate is their mean
    assert basis["premium_rate"].iloc[0] == pytest.approx(res.designs["gross_premium_rate"].iloc[0], rel=1e-12)


# --------------------------------------------------------------------- through the trigger plugin
def _weather_sheet(**kw):
    from panen.triggers.weather import WeatherIndexParams

    phases = [
        # binary: pays its whole weight when the longest dry spell (< 1 mm) of days 0–29 exceeds the strike
        {"name": "spell", "start_day": 0, "end_day": 30, "index": "dry_spell", "dry_threshold": 1.0,
         "direction": "above", "strike": 6, "curve": "binary", "weight": 0.4},
        # step: a deficit schedule on the total of days 0–29; trigger point 60 mm (top of its paying bands)
        {"name": "total", "start_day": 0, "end_day": 30, "index": "total", "direction": "below", "strike": 60,
         "curve": "step", "weight": 0.6, "bands": [{"max": 30, "rate": 1.0}, {"min": 30, "max": 45, "rate": 0.5},
                                                   {"min": 45, "max": 60, "rate": 0.2}]},
    ]
    return WeatherIndexParams(id="rain", trigger="weather_index", sum_insured_per_ha=6_000_000, phases=phases, **kw)


def _weather_history(params, years=range(2001, 2013), districts=("a", "b", "c")):
    """Daily rain for every district and a season starting each 1 January; the trigger's own
    evaluate gives the index values (the simulation table) — and the reference rates."""
    from panen.engine.api import Season, TriggerInputs
    from panen.triggers.weather import WeatherIndexTrigger

    rng = np.random.default_rng(11)
    t = pd.date_range(f"{min(years)}-01-01", f"{max(years)}-12-31", freq="D")
    rain = np.where(rng.random((t.size, len(districts))) < 0.55, 0.0, rng.gamma(0.8, 6.0, (t.size, len(districts))))
    ds = xr.Dataset({"mean": (("time", "district"), rain, {"units": "mm/day"}),
                     "valid_fraction": (("time", "district"), np.ones_like(rain))},
                    coords={"time": t, "district": list(districts)})
    cohorts = np.array([f"{y}-01-01" for y in years], dtype="datetime64[D]")
    inputs = TriggerInputs(Season("s", cohorts[0], cohorts[-1] + 300, max(years)), cohorts, np.array(districts),
                           {"rainfall": ds})

    def evaluate(sheet):
        return WeatherIndexTrigger().evaluate(sheet, inputs).data

    out = evaluate(params)
    sim = out["index_value"].to_dataframe().reset_index()
    sim = sim.assign(season=pd.DatetimeIndex(sim["cohort"]).year, district_id=sim["district"], product_id="rain")
    total = out["index_value"].sel(phase="total").values  # (district, season)
    loss = np.clip((70.0 - total) / 60.0 + rng.normal(0, 0.05, total.shape), 0, 1)
    losses = pd.DataFrame({"district_id": np.repeat(list(districts), len(years)),
                           "season": np.tile(list(years), len(districts)), "loss": loss.ravel()})
    return sim[["district_id", "product_id", "season", "phase", "index_value"]], losses, evaluate


def test_binary_and_step_phases_are_searched_through_the_plugin_and_priced_as_evaluate_pays():
    params = _weather_sheet()
    sim, losses, evaluate = _weather_history(params)
    space = DesignSpace(term_sheet=params, phases={
        "spell": PhaseSpace(direction="above", with_exit=False, strikes=[4.0, 6.0, 9.0]),
        "total": PhaseSpace(direction="below", with_exit=False, strikes=[50.0, 60.0, 75.0], weights=[0.5, 0.6])})
    res = search(sim, losses, space)
    assert len(res.designs) == 2 * 3 * 3 and res.designs["spell.exit"].isna().all()
    for _, row in res.designs.iterrows():
        sheet = to_term_sheet(params, row)
        assert [p.curve for p in sheet.phases] == ["binary", "step"]  # never turned into linear phases
        paid = evaluate(sheet)["payout_rate"].values  # the trigger's own evaluate on the daily rain
        assert row["burn_cost"] == pytest.approx(paid.mean(), rel=1e-12, abs=1e-15)
        assert row["max_payout_rate"] == pytest.approx(paid.max(), rel=1e-12)
        assert row["payout_frequency"] == pytest.approx((paid > 0).mean(), rel=1e-12)
    # a step schedule moved to strike 75: every band edge + 15 mm (rates kept)
    moved = to_term_sheet(params, res.designs[res.designs["total.strike"] == 75.0].iloc[0]).phases[1]
    assert [(b.min, b.max, b.rate) for b in moved.bands] == [(-np.inf, 45.0, 1.0), (45.0, 60.0, 0.5),
                                                            (60.0, 75.0, 0.2)]
    chosen = res.term_sheets["all"]
    assert chosen == to_term_sheet(params, res.chosen.iloc[0], max_rate=res.season_cap)


def test_a_binary_phase_is_refused_without_its_term_sheet_and_never_given_an_exit():
    params = _weather_sheet()
    sim, losses, _ = _weather_history(params, years=range(2001, 2005))
    with pytest.raises(ConfigError, match="linear tick phases only"):
        search(sim, losses, DesignSpace(phases={"spell": PhaseSpace(direction="above", with_exit=False),
                                                "total": PhaseSpace()}))
    with pytest.raises(ConfigError, match="without an exit"):  # a linear grid for a binary phase
        DesignSpace(term_sheet=params, phases={"spell": PhaseSpace(direction="above"),
                                               "total": PhaseSpace(with_exit=False)})
    linear_row = {"spell.strike": 5.0, "spell.exit": 9.0, "spell.weight": 0.4,
                  "total.strike": 60.0, "total.exit": np.nan, "total.weight": 0.6}
    with pytest.raises(ConfigError, match="searched as a linear phase"):
        to_term_sheet(params, linear_row)


def test_thousands_of_term_sheet_candidates_priced_by_the_plugin_in_about_a_second():
    from panen.triggers.weather import WeatherIndexParams

    rng = np.random.default_rng(0)
    idx = {f"d{i:02d}": rng.gamma(8, 15, 40) for i in range(30)}
    loss = {d: np.clip(true_loss(v) + rng.normal(0, 0.05, v.size), 0, 1) for d, v in idx.items()}
    sim, losses = _long(idx, loss)
    params = WeatherIndexParams(id="rain", trigger="weather_index", sum_insured_per_ha=6_000_000, phases=[
        {"name": "p1", "start_day": 0, "end_day": 30, "index": "total", "direction": "below", "strike": 100,
         "exit": 40, "weight": 1.0}])
    grid = {"strikes": Range(start=60, stop=160, step=1), "exits": Range(start=0, stop=100, step=2)}
    cons = Constraints(max_premium_rate=0.1, min_payout_frequency_in_worst=0.8)
    t0 = time.perf_counter()
    res = search(sim, losses, DesignSpace(term_sheet=params, phases={"p1": PhaseSpace(**grid)}), cons)
    elapsed = time.perf_counter() - t0
    assert len(res.designs) > 4000 and elapsed < 5.0  # ≈ 0.5 s measured: 4,710 plugin-built term sheets
    # the plugin's linear curve is the tick curve: the bare search agrees candidate by candidate
    bare = search(sim, losses, DesignSpace(phases={"p1": PhaseSpace(**grid)}), cons)
    pd.testing.assert_frame_equal(res.designs, bare.designs)
