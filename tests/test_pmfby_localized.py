"""PMFBY localized calamities and post-harvest losses through the named-peril adjuster.

PMFBY Revamped Operational Guidelines (Kharif 2020), para 21: localized calamities
(hailstorm, landslide, inundation, cloudburst, natural fire) and post-harvest losses
(cyclone, cyclonic/unseasonal rain, hailstorm on a crop cut and spread in the field, up to
14 days from harvesting) are assessed on the individual farm, reported within 72 hours,
and paid in proportion to the assessed loss: loss % x sum insured of the affected area.
Every expected amount below is computed by hand from that rule with the wording's
Rp 6,000,000 per ha.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panen.engine.errors import ConfigError
from panen.engine.perils.adjuster import adjust, load_wording, parse_wording, policy_amounts, premium

WORDING_FILE = Path(__file__).resolve().parents[1] / "configs" / "pmfby_localized.yaml"
SEASON = {"season_start": "2024-06-15", "season_end": "2024-11-30"}  # kharif 2024


@pytest.fixture(scope="module")
def wording():
    return load_wording(WORDING_FILE)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(WORDING_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def policies() -> pd.DataFrame:
    # F1: sown 1 July, harvested 20 October; F2: no harvest date recorded
    return pd.DataFrame({"policy_id": ["P1", "P2"], "farmer_id": ["F1", "F2"], "area_ha": [2.0, 1.0],
                         "cover_start": ["2024-07-01", None], "cover_end": ["2024-11-15", None],
                         "harvest_date": ["2024-10-20", None]})


def farm(policy: str = "P1", plot_id: str = "A", **changes) -> dict:
    row = {"policy_id": policy, "plot_id": plot_id, "peril": "hailstorm", "plot_area_ha": 1.0,
           "damage_intensity_pct": 50.0, "damaged_area_pct": 40.0, "crop_age_days": 60,
           "planting_method": "transplanted", "event_date": "2024-09-10 16:00", "notice_date": "2024-09-11 09:00"}
    row.update(changes)
    return row


def decide(rows: list[dict], wording, policies=None) -> pd.DataFrame:
    return adjust(pd.DataFrame(rows), wording, **SEASON, policies=policies)


def test_the_wording_is_proportional_with_a_post_harvest_window_and_72_hours(wording):
    assert wording.payout_basis == "proportional"
    assert (wording.post_harvest.days, wording.notice_hours, wording.notice_days) == (14, 72, None)
    assert [wording.coverage(p) for p in ("hailstorm", "landslide", "inundation", "cloudburst", "natural_fire")] \
        == ["covered"] * 5
    assert [wording.coverage(p) for p in ("cyclone", "cyclonic_rain", "unseasonal_rain")] == ["post_harvest"] * 3
    assert wording.peril_code("lightning") == "natural_fire"
    assert wording.peril_code("बेमौसम बारिश") == "unseasonal_rain"


def test_hailstorm_on_the_standing_crop_pays_the_loss_of_the_affected_area(wording, policies):
    # 1.0 ha x Rp 6,000,000 x 40 % affected x 50 % loss = Rp 1,200,000 (not the whole Rp 6,000,000)
    c = decide([farm()], wording, policies).iloc[0]
    assert (c.reason, c.sum_insured, c.indemnity) == ("paid", 6_000_000, 1_200_000)


@pytest.mark.parametrize(("peril", "area", "intensity", "damaged", "expected"), [
    ("landslide", 0.5, 100.0, 30.0, 900_000),       # 0.5 x 6,000,000 x 0.30 x 1.00
    ("inundation", 1.2, 60.0, 100.0, 4_320_000),    # 1.2 x 6,000,000 x 1.00 x 0.60
    ("cloudburst", 0.25, 33.3, 10.0, 49_950),       # 0.25 x 6,000,000 x 0.10 x 0.333
    ("lightning", 0.8, 100.0, 100.0, 4_800_000),    # natural fire: total loss of the plot
])
def test_each_localized_calamity_pays_in_proportion(wording, policies, peril, area, intensity, damaged, expected):
    row = farm(peril=peril, plot_area_ha=area, damage_intensity_pct=intensity, damaged_area_pct=damaged)
    assert decide([row], wording, policies).indemnity.tolist() == [expected]


@pytest.mark.parametrize(("peril", "event", "reason", "indemnity"), [
    # harvest 20 Oct; the cut-and-spread crop is covered 20 Oct .. 3 Nov (14 days) inclusive.
    # 0.8 ha, all of it affected, 35 % loss: 0.8 x 6,000,000 x 0.35 = Rp 1,680,000
    ("unseasonal rain", "2024-10-30 18:00", "paid", 1_680_000),
    ("cyclone", "2024-11-03 23:00", "paid", 1_680_000),          # day 14
    ("cyclonic rain", "2024-11-04 01:00", "outside_cover_period", 0),  # day 15
    ("hailstorm", "2024-11-03 10:00", "paid", 1_680_000),        # hailstorm: both covers
    ("cyclone", "2024-10-01 10:00", "outside_cover_period", 0),  # before harvest: not a localized peril
    ("landslide", "2024-10-25 10:00", "outside_cover_period", 0),  # after harvest: no standing crop
    ("landslide", "2024-10-20 10:00", "paid", 1_680_000),        # on the harvest day: still standing
])
def test_post_harvest_window_of_14_days(wording, policies, peril, event, reason, indemnity):
    notice = (pd.Timestamp(event) + pd.Timedelta(hours=20)).strftime("%Y-%m-%d %H:%M")
    row = farm(peril=peril, plot_area_ha=0.8, damage_intensity_pct=35.0, damaged_area_pct=100.0,
               event_date=event, notice_date=notice)
    c = decide([row], wording, policies).iloc[0]
    assert (c.reason, c.indemnity) == (reason, indemnity)


def test_post_harvest_peril_without_a_harvest_date_is_outside_cover(wording, policies):
    c = decide([farm("P2", peril="cyclone", event_date="2024-10-30", notice_date="2024-10-31")], wording, policies)
    assert c.reason.tolist() == ["outside_cover_period"]


@pytest.mark.parametrize(("notice", "reason"), [
    ("2024-09-13 16:00", "paid"),         # exactly 72 hours after 10 Sep 16:00
    ("2024-09-13 16:01", "late_notice"),
    ("2024-09-13", "paid"),               # a date only: 3 days
    ("2024-09-14", "late_notice"),
])
def test_loss_reported_within_72_hours(wording, policies, notice, reason):
    assert decide([farm(notice_date=notice)], wording, policies).reason.tolist() == [reason]


def test_widespread_perils_and_exclusions_are_not_paid_on_the_farm(wording, policies):
    c = decide([farm(peril=p, plot_id=p) for p in ("flood", "drought", "wild animals", "theft", "earthquake")],
               wording, policies)
    assert c.reason.tolist() == ["peril_not_covered", "peril_not_covered", "peril_excluded", "peril_excluded",
                                 "unknown_peril"]
    assert c.indemnity.sum() == 0


def test_no_assessed_loss_is_below_threshold(wording, policies):
    c = decide([farm(damage_intensity_pct=0.0), farm(plot_id="B", damaged_area_pct=0.0)], wording, policies)
    assert c.reason.tolist() == ["below_threshold"] * 2


def test_policy_gross_sums_its_farms_and_no_farmer_cap_applies(wording, policies):
    # P1 (2.0 ha, no 2-ha-per-farmer cap in PMFBY): plots A 1.0 ha (1,200,000) and
    # B 1.0 ha inundated, 100 % affected, 25 % loss (1,500,000)
    rows = [farm(), farm(plot_id="B", peril="inundation", damaged_area_pct=100.0, damage_intensity_pct=25.0)]
    claims = adjust(pd.DataFrame(rows), wording, **SEASON, policies=policies)
    amounts = policy_amounts(claims, policies, wording, season_start=SEASON["season_start"])
    assert amounts.gross.tolist() == [2_700_000, 0]
    assert amounts.sum_insured.tolist() == [12_000_000, 6_000_000]
    assert premium(policies["area_ha"], wording, farmer_id=policies["farmer_id"])["premium"].tolist() == \
        [240_000, 120_000]  # 2 % of the sum insured


def test_post_harvest_peril_must_be_known_and_not_excluded(raw):
    data = copy.deepcopy(raw)
    data["post_harvest"]["perils"] = ["cyclone", "theft", "meteor"]
    with pytest.raises(ConfigError) as err:
        parse_wording(data)
    keys = {p.key for p in err.value.problems}
    assert keys == {"post_harvest.perils[1]", "post_harvest.perils[2]"}


# --------------------------------------------------------------------------- through a run


def test_a_run_reads_the_registers_dates_in_its_own_format(tmp_path):
    """An insurer's `;`/dd/mm/yyyy export: the cover dates, harvest dates and clock times are
    read through the register's and the assessments' reading options, bad dates are rejects."""
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    (tmp_path / "polis.csv").write_text(
        "no_polis;petani;kab;produk;luas;mulai;akhir;panen\n"
        "P1;F1;3212;pmfby_localized;2,0;01/07/2024;15/11/2024;20/10/2024\n"
        "P2;F2;3212;pmfby_localized;1,0;;;\n"
        "P3;F3;3212;pmfby_localized;1,0;15/11/2024;01/07/2024;\n"      # ends before it starts
        "P4;F4;3212;pmfby_localized;1,0;31/06/2024;;\n",                 # no such date
        encoding="utf-8")
    header = "policy_id;plot_id;peril;plot_area_ha;damage_intensity_pct;damaged_area_pct;crop_age_days;" \
             "planting_method;event_date;notice_date\n"
    (tmp_path / "kerusakan.csv").write_text(header + "\n".join([
        "P1;A;hailstorm;1,0;50;40;60;transplanted;10/09/2024 16:00;13/09/2024 16:00",   # 1,200,000
        "P1;B;unseasonal rain;0,8;35;100;110;transplanted;30/10/2024;31/10/2024",        # 1,680,000
        "P2;A;cyclone;1,0;50;50;100;transplanted;30/10/2024;31/10/2024",                 # no harvest date
        "P2;B;landslide;1,0;50;50;10;transplanted;20/06/2024 10:00;20/06/2024 11:00",    # 1,500,000 (the season)
    ]) + "\n", encoding="utf-8")
    config = {
        "season": {"id": "2024-kharif", "start": "2024-06-15", "end": "2024-11-30"},
        "inputs": {
            "policies": {"path": "polis.csv", "separator": ";", "decimal": ",", "date_format": "%d/%m/%Y",
                         "columns": {"no_polis": "policy_id", "petani": "farmer_id", "kab": "district_id",
                                     "produk": "product_id", "luas": "area_ha", "mulai": "cover_start",
                                     "akhir": "cover_end", "panen": "harvest_date"}},
            "assessments": {"path": "kerusakan.csv", "separator": ";", "decimal": ",",
                            "date_format": "%d/%m/%Y"},
        },
        "products": [],
        "adjuster": {"wording": str(WORDING_FILE)},
        "output": {"dir": "out", "formats": ["csv"]},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    res = run_batch(load_config(tmp_path / "run.yaml"), tmp_path / "out")
    claims = res.claims["pmfby_localized"].set_index(["policy_id", "plot_id"])
    assert claims["indemnity"].to_dict() == {("P1", "A"): 1_200_000, ("P1", "B"): 1_680_000, ("P2", "A"): 0,
                                             ("P2", "B"): 1_500_000}
    assert claims.loc[("P2", "A"), "reason"] == "outside_cover_period"
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", dtype=str)
    assert rejects[["policy_id", "column", "reason"]].values.tolist() == [
        ["P3", "akhir", "cover_end_before_start"], ["P4", "mulai", "bad_date"]]
    written = (tmp_path / "out" / "autp_claims.csv").read_text(encoding="utf-8")
    assert '"2024-09-10T16:00:00"' in written and '"2024-10-30T00:00:00"' in written  # event times kept
    led = res.ledger.to_pandas().set_index("policy_id")
    assert led["net_payout"].to_dict() == {"P1": 2_880_000, "P2": 1_500_000}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(area=st.floats(0.01, 3.0), intensity=st.floats(0, 100), damaged=st.floats(0, 100))
def test_proportional_payout_is_between_nothing_and_the_sum_insured(wording, policies, area, intensity, damaged):
    row = farm(plot_area_ha=area, damage_intensity_pct=intensity, damaged_area_pct=damaged)
    c = decide([row], wording, policies).iloc[0]
    assert 0 <= c.indemnity <= c.sum_insured
    expected = np.floor(c.insured_area_ha * 6_000_000 * intensity / 100 * damaged / 100 + 0.5)
    assert abs(c.indemnity - expected) <= 1  # the rounding of one float product, to the rupiah
