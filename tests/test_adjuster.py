"""The AUTP named-peril adjuster: the wording file, the gates, the caps, the money."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panen.engine.perils.adjuster import (
    CLAIM_COLUMNS,
    REASONS,
    adjust,
    load_wording,
    parse_wording,
    premium,
    write_claims,
)
from panen.engine.errors import ConfigError, InputError

WORDING_FILE = Path(__file__).resolve().parents[1] / "configs" / "autp.yaml"
SEASON = {"season_start": date(2023, 11, 1), "season_end": date(2024, 3, 31)}



def plot(i: int = 1, **changes) -> dict:
    """One puso assessment that pays: 0.4 ha transplanted, 15 HST, 80 % / 80 %, notified in 2 days."""
    row = {"policy_id": f"P{i:03d}", "plot_id": "A", "peril": "brown_planthopper", "plot_area_ha": 0.4,
           "damage_intensity_pct": 80.0, "damaged_area_pct": 80.0, "crop_age_days": 15,
           "planting_method": "transplanting", "event_date": "2024-01-10", "notice_date": "2024-01-12"}
    row.update(changes)
    return row


def frame(*rows: dict) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in ("event_date", "notice_date"):
        df[c] = pd.to_datetime(df[c])
    return df


def settle(*rows: dict, wording, **kwargs) -> pd.DataFrame:
    return adjust(frame(*rows), wording, **{**SEASON, **kwargs})


def one(row: dict, wording, **kwargs) -> pd.Series:
    return settle(row, wording=wording, **kwargs).iloc[0]


# --------------------------------------------------------------------------- the worked examples


def test_puso_plot_pays_whole_area_times_six_million(wording):
    c = one(plot(), wording)
    assert (c.decision, c.reason, c.reasons) == ("paid", "paid", "")
    assert c.peril_code == "brown_planthopper"
    assert c.insured_area_ha == 0.4
    assert c.sum_insured == 2_400_000
    assert c.indemnity == 2_400_000


@pytest.mark.parametrize(("changes", "reason"), [
    ({"damage_intensity_pct": 70.0}, "below_threshold"),
    ({"damaged_area_pct": 74.9}, "below_threshold"),
    ({"crop_age_days": 8}, "crop_too_young"),
    ({"planting_method": "direct_seeding", "crop_age_days": 25}, "crop_too_young"),
    ({"planting_method": "tabela", "crop_age_days": 29}, "crop_too_young"),
    ({"planting_method": "salibu", "crop_age_days": 29}, "crop_too_young"),
])
def test_failed_gate_pays_nothing(wording, changes, reason):
    c = one(plot(**changes), wording)
    assert (c.decision, c.reason, c.indemnity) == ("declined", reason, 0)
    assert c.sum_insured == 2_400_000  # the plot's insured value is still shown


@pytest.mark.parametrize(("method", "age"), [("transplanting", 10), ("tanam pindah", 10),
                                             ("direct_seeding", 30), ("Gogo Rancah", 30), ("salibu", 30)])
def test_crop_at_exactly_the_minimum_age_pays(wording, method, age):
    assert one(plot(planting_method=method, crop_age_days=age), wording).indemnity == 2_400_000


def test_premium_per_hectare_and_half_hectare(wording):
    p = premium([1.0, 0.5], wording)
    assert p[["premium", "subsidy", "farmer_share"]].to_numpy().tolist() == [[180_000, 144_000, 36_000],
                                                                              [90_000, 72_000, 18_000]]
    assert p["premium"].dtype == np.int64
    assert (wording.premium_per_ha, wording.subsidy_per_ha, wording.farmer_share_per_ha) == (180_000, 144_000, 36_000)


def test_premium_caps_insured_area_at_two_hectares(wording):
    p = premium(pd.Series([3.0, 2.0], index=["P1", "P2"]), wording)
    assert p.loc["P1", "insured_area_ha"] == 2.0 and p.loc["P1", "premium"] == 360_000
    shared = premium([1.5, 1.0, 0.4], wording, farmer_id=["F1", "F1", "F2"])
    assert shared["insured_area_ha"].tolist() == [1.5, 0.5, 0.4]
    assert shared["premium"].tolist() == [270_000, 90_000, 72_000]
    assert (shared["subsidy"] + shared["farmer_share"] == shared["premium"]).all()


def test_premium_rejects_negative_area(wording):
    with pytest.raises(ValueError, match="area_ha"):
        premium([-1.0], wording)


def test_eligible_145_97_hectares_pay_875_820_000(wording):
    # 100 farmers, one puso plot each: 99 x 1.47 ha + 0.44 ha = 145.97 ha
    rows = [plot(i, plot_area_ha=1.47) for i in range(99)] + [plot(99, plot_area_ha=0.44)]
    c = settle(*rows, wording=wording)
    assert (c.decision == "paid").all()
    assert round(c.insured_area_ha.sum(), 6) == 145.97
    assert c.indemnity.sum() == 875_820_000


# --------------------------------------------------------------------------- thresholds


def test_exactly_75_75_pays_under_ge_and_not_under_gt(wording, raw_wording):
    row = plot(damage_intensity_pct=75.0, damaged_area_pct=75.0)
    assert one(row, wording).indemnity == 2_400_000
    strict = copy.deepcopy(raw_wording)
    strict["thresholds"]["comparison"] = ">"
    gt = parse_wording(strict)
    assert one(row, gt).reason == "below_threshold"
    assert one(plot(damage_intensity_pct=75.01, damaged_area_pct=75.01), gt).indemnity == 2_400_000


# --------------------------------------------------------------------------- perils


def test_general_exclusion_is_declined(wording):
    c = one(plot(peril="earthquake"), wording)
    assert (c.reason, c.peril_code, c.indemnity) == ("peril_excluded", "earthquake", 0)
    assert one(plot(peril="Gempa Bumi"), wording).reason == "peril_excluded"


def test_special_exclusion_unless_endorsed(wording):
    c = one(plot(peril="golden_apple_snail"), wording)
    assert (c.reason, c.indemnity) == ("peril_excluded_special", 0)
    assert one(plot(peril="keong mas"), wording).reason == "peril_excluded_special"
    endorsed = wording.with_endorsements(["golden_apple_snail"])
    assert one(plot(peril="keong mas"), endorsed).indemnity == 2_400_000
    assert one(plot(peril="grassy_stunt"), endorsed).reason == "peril_excluded_special"


@pytest.mark.parametrize(("label", "code", "pays"), [
    ("wereng batang coklat", "brown_planthopper", True),
    ("Wereng_Batang-Cokelat", "brown_planthopper", True),
    ("penggerek batang", "stem_borer", True),
    ("walang sangit", "rice_bug", True),
    ("  TIKUS ", "rats", True),
    ("ulat  grayak", "armyworm", True),
    ("blas", "blast", True),
    ("bercak coklat", "brown_spot", True),
    ("tungro", "tungro", True),
    ("busuk batang", "stem_rot", True),
    ("kerdil hampa", "ragged_stunt", True),
    ("banjir", "flood", True),
    ("Kekeringan", "drought", True),
    ("Brown Planthopper", "brown_planthopper", True),
    ("kerdil rumput", "grassy_stunt", False),
    ("wereng hijau", "green_leafhopper", False),
    ("kebakaran", "fire", False),
])
def test_indonesian_and_english_labels_map_to_codes(wording, label, code, pays):
    c = one(plot(peril=label), wording)
    assert c.peril_code == code
    assert c.peril == label  # kept as written, for the audit trail
    assert bool(c.indemnity > 0) is pays


def test_stem_rot_is_covered_and_the_choice_is_recorded(wording):
    assert "stem_rot" in wording.covered and "stem_rot" in wording.special_exclusions
    assert wording.overlaps["stem_rot"].treat_as == "covered"
    assert "busuk batang" in wording.overlaps["stem_rot"].note
    assert wording.coverage("stem_rot") == "covered"
    assert one(plot(peril="stem_rot"), wording).indemnity == 2_400_000


def test_unknown_peril_is_referred_and_uncovered_peril_declined(wording, raw_wording):
    """An unknown name is referred (not declined); a known peril in no list is peril_not_covered.

    Source: Jasindo AUTP wording, special exclusion 4f (tanah longsor); the shipped wording
    lists every peril it names, so ``peril_not_covered`` is shown on a wording with one
    unlisted peril.
    """
    c = one(plot(peril="alien invasion"), wording)
    assert (c.decision, c.reason, c.indemnity) == ("referred", "unknown_peril", 0)
    assert pd.isna(c.peril_code)
    c = one(plot(peril="tanah longsor"), wording)
    assert (c.decision, c.reason, c.peril_code) == ("declined", "peril_excluded_special", "landslide")
    data = copy.deepcopy(raw_wording)
    data["perils"]["hail"] = {"name": "hujan es", "name_en": "hail", "kind": "natural"}
    c = one(plot(peril="hujan es"), parse_wording(data))
    assert (c.decision, c.reason, c.peril_code) == ("declined", "peril_not_covered", "hail")


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(("notice", "reason"), [("2024-01-17", "paid"), ("2024-01-18", "late_notice")])
def test_notice_within_seven_days(wording, notice, reason):
    assert one(plot(event_date="2024-01-10", notice_date=notice), wording).reason == reason


@pytest.mark.parametrize(("event", "reason"), [
    ("2023-10-31", "outside_cover_period"), ("2023-11-01", "paid"),
    ("2024-03-31", "paid"), ("2024-04-01", "outside_cover_period"),
])
def test_cover_period_is_the_season_inclusive(wording, event, reason):
    assert one(plot(event_date=event, notice_date=event), wording).reason == reason


def test_cover_period_per_policy(raw_wording):
    data = copy.deepcopy(raw_wording)
    data["cover_period"] = {"basis": "policy"}
    w = parse_wording(data)
    policies = pd.DataFrame({"policy_id": ["P001", "P002"], "farmer_id": ["F1", "F2"],
                             "cover_start": pd.to_datetime(["2024-01-15", None]),
                             "cover_end": pd.to_datetime(["2024-05-10", None])})
    c = settle(plot(1), plot(2), plot(1, plot_id="B", event_date="2024-04-20", notice_date="2024-04-21"),
               wording=w, policies=policies)
    # P001 covers 15 Jan - 10 May: 10 Jan is outside, 20 Apr inside; P002 falls back to the season
    assert c.reason.tolist() == ["outside_cover_period", "paid", "paid"]
    # without a register (or without the columns) every policy is covered for the season
    assert one(plot(1), w).reason == "paid"


# --------------------------------------------------------------------------- caps and repeats


def test_three_one_hectare_plots_of_one_farmer_pay_exactly_two_hectares(wording):
    rows = [plot(1, plot_id=p, plot_area_ha=1.0) for p in ("C", "A", "B")]
    c = settle(*rows, wording=wording)
    assert c.indemnity.sum() == 12_000_000
    # same event day: filled in plot_id order, so C (third) finds the cap used up
    assert c.set_index("plot_id").reason.to_dict() == {"C": "area_cap", "A": "paid", "B": "paid"}
    assert c.set_index("plot_id").insured_area_ha.to_dict() == {"C": 0.0, "A": 1.0, "B": 1.0}

    policies = pd.DataFrame({"policy_id": ["P001", "P002", "P003"], "farmer_id": ["F1"] * 3,
                             "area_ha": [1.0] * 3})
    c = settle(*[plot(i, plot_area_ha=1.0) for i in (1, 2, 3)], wording=wording, policies=policies)
    assert c.indemnity.tolist() == [6_000_000, 6_000_000, 0]
    assert c.farmer_id.tolist() == ["F1"] * 3
    assert c.reason.tolist() == ["paid", "paid", "area_cap"]


def test_cap_is_filled_in_event_order_and_may_cut_a_plot(wording):
    rows = [plot(1, plot_id="A", plot_area_ha=1.5, event_date="2024-02-01", notice_date="2024-02-02"),
            plot(1, plot_id="B", plot_area_ha=1.0, event_date="2024-01-10")]
    c = settle(*rows, wording=wording)
    # B's event is earlier: B takes 1.0 ha, A the remaining 1.0 of its 1.5 ha
    assert c.insured_area_ha.tolist() == [1.0, 1.0]
    assert c.indemnity.tolist() == [6_000_000, 6_000_000]
    assert c.reason.tolist() == ["paid", "paid"] and c.reasons.tolist() == ["area_cap", ""]


def test_declined_plots_do_not_use_the_cap(wording):
    rows = [plot(1, plot_id="A", plot_area_ha=1.5, damage_intensity_pct=10.0),
            plot(1, plot_id="B", plot_area_ha=1.5)]
    assert settle(*rows, wording=wording).indemnity.tolist() == [0, 9_000_000]


def test_policy_area_caps_its_plots(wording):
    policies = pd.DataFrame({"policy_id": ["P001"], "farmer_id": ["F1"], "area_ha": [0.5]})
    c = settle(plot(1, plot_area_ha=0.8), wording=wording, policies=policies).iloc[0]
    assert (c.insured_area_ha, c.indemnity, c.reasons) == (0.5, 3_000_000, "area_cap")


def test_second_event_on_a_paid_plot_is_already_paid(wording):
    rows = [plot(peril="rats", event_date="2024-02-10", notice_date="2024-02-11"),
            plot(peril="flood", event_date="2024-01-10")]
    c = settle(*rows, wording=wording)
    assert c.reason.tolist() == ["already_paid", "paid"]
    assert c.indemnity.tolist() == [0, 2_400_000]


def test_later_event_pays_when_the_first_was_declined(wording):
    rows = [plot(damage_intensity_pct=60.0), plot(peril="rats", event_date="2024-02-10", notice_date="2024-02-11")]
    assert settle(*rows, wording=wording).reason.tolist() == ["below_threshold", "paid"]


def test_same_plot_id_under_two_policies_is_two_plots(wording):
    assert settle(plot(1), plot(2), wording=wording).indemnity.tolist() == [2_400_000, 2_400_000]


# --------------------------------------------------------------------------- reasons


def test_reason_precedence_and_full_audit_list(wording):
    c = one(plot(peril="earthquake", notice_date="2024-01-30", crop_age_days=5, damage_intensity_pct=10.0), wording)
    assert c.reason == "peril_excluded"
    assert c.reasons == "peril_excluded;late_notice;crop_too_young;below_threshold"
    c = one(plot(notice_date="2024-01-30", damage_intensity_pct=10.0), wording)
    assert (c.reason, c.reasons) == ("late_notice", "late_notice;below_threshold")
    assert list(REASONS)[:3] == ["invalid_assessment", "unknown_policy", "unknown_peril"]


def test_unknown_policy_when_a_register_is_given(wording):
    policies = pd.DataFrame({"policy_id": ["P001"], "farmer_id": ["F1"]})
    c = settle(plot(1), plot(2), wording=wording, policies=policies)
    assert c.reason.tolist() == ["paid", "unknown_policy"]
    assert c.farmer_id.tolist()[0] == "F1" and pd.isna(c.farmer_id.tolist()[1])


def test_unknown_planting_method(wording):
    assert one(plot(planting_method="hydroponic"), wording).reason == "unknown_planting_method"


def test_impossible_values_are_never_paid(wording):
    c = settle(plot(plot_area_ha=np.nan), plot(damage_intensity_pct=120.0), plot(notice_date="2024-01-01"),
               wording=wording)
    assert c.reason.tolist() == ["invalid_assessment"] * 3
    assert c.indemnity.tolist() == [0, 0, 0]


def test_duplicate_policy_ids_in_the_register_are_an_input_error(wording):
    policies = pd.DataFrame({"policy_id": ["P001", "P001"], "farmer_id": ["F1", "F2"]})
    with pytest.raises(InputError, match="more than once"):
        settle(plot(), wording=wording, policies=policies)


# --------------------------------------------------------------------------- the table


def test_output_columns_order_and_index(wording):
    df = frame(plot(1), plot(2, peril="gempa"))
    df.index = [10, 20]
    before = df.copy()
    c = adjust(df, wording, **SEASON)
    assert list(c.columns) == [col for col in CLAIM_COLUMNS if col != "farmer_id"]
    assert list(c.index) == [10, 20]
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is untouched
    assert c.sum_insured.dtype == np.int64 and c.indemnity.dtype == np.int64


def test_missing_column_is_an_input_error(wording):
    with pytest.raises(InputError) as exc:
        adjust(frame(plot()).drop(columns=["crop_age_days"]), wording, **SEASON)
    assert exc.value.column == "crop_age_days"


def test_decisions_do_not_depend_on_row_order(wording):
    rows = [plot(1, plot_id=p, plot_area_ha=a, event_date=e, notice_date=e)
            for p, a, e in [("A", 1.0, "2024-01-05"), ("B", 0.7, "2024-01-05"), ("C", 0.9, "2024-01-02"),
                            ("A", 1.0, "2024-01-01")]]
    a = settle(*rows, wording=wording)
    b = settle(*rows[::-1], wording=wording)
    assert a.indemnity.tolist() == b.indemnity.tolist()[::-1]
    assert a.reason.tolist() == ["already_paid", "paid", "paid", "paid"]
    assert a.insured_area_ha.tolist()[1] == pytest.approx(0.1)  # 2 - 1.0 (A) - 0.9 (C)


def test_write_claims_iso_dates_and_text(wording, tmp_path):
    c = settle(plot(1), plot(2, peril="gempa"), wording=wording)
    path = write_claims(c, tmp_path / "autp_claims.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back.columns) == list(c.columns)
    assert back.event_date.tolist() == ["2024-01-10", "2024-01-10"]
    assert back.indemnity.tolist() == ["2400000", "0"]
    assert back.reason.tolist() == ["paid", "peril_excluded"]


# --------------------------------------------------------------------------- the wording file


def test_wording_file_values(wording):
    assert wording.sum_insured_per_ha == 6_000_000 and wording.currency == "Rp"
    assert wording.max_insured_area_ha == 2.0 and wording.notice_days == 7
    assert wording.min_crop_age_days == {"transplanting": 10, "direct_seeding": 30, "salibu": 30}
    assert (wording.thresholds.damage_intensity_pct, wording.thresholds.damaged_area_pct) == (75, 75)
    assert wording.endorsements == []


def _problems(data: dict):
    with pytest.raises(ConfigError) as exc:
        parse_wording(data, source="autp.yaml")
    return exc.value.problems


def test_peril_both_covered_and_excluded_is_an_error(raw_wording):
    data = copy.deepcopy(raw_wording)
    data["general_exclusions"].append("flood")
    (p,) = _problems(data)
    assert p.key == f"general_exclusions[{len(data['general_exclusions']) - 1}]"
    assert "covered and general_exclusions" in p.message
    data = copy.deepcopy(raw_wording)
    del data["overlaps"]  # the stem-rot reading must be recorded
    (p,) = _problems(data)
    assert "stem_rot" in p.message and "overlaps.stem_rot" in p.message


@pytest.mark.parametrize(("change", "key", "text"), [
    (lambda d: d.update(colour="red"), "colour", "unknown key"),
    (lambda d: d["thresholds"].update(comparison="=>"), "thresholds.comparison", "'>='"),
    (lambda d: d["thresholds"].update(damage_intensity_pct=175), "thresholds.damage_intensity_pct", "100"),
    (lambda d: d.update(endorsements=["earthquake"]), "endorsements[0]", "general exclusion"),
    (lambda d: d.update(endorsements=["Keong Mas"]), "endorsements[0]", "should match pattern"),
    (lambda d: d.update(endorsements=["tikus"]), "endorsements[0]", "unknown peril code 'tikus'"),
    (lambda d: d["covered"].append("meteor"), "covered[12]", "unknown peril code 'meteor'"),
    (lambda d: d["perils"]["flood"]["aliases"].append("Tikus"), "perils.rats.name", "also means 'flood'"),
    (lambda d: d["min_crop_age_days"].pop("salibu"), "min_crop_age_days", "salibu"),
    (lambda d: d["overlaps"]["stem_rot"].update(treat_as="general_exclusions"), "overlaps.stem_rot.treat_as",
     "not one of the lists"),
    (lambda d: d.pop("sum_insured_per_ha"), "sum_insured_per_ha", "missing required key"),
])
def test_wording_errors_are_located(raw_wording, change, key, text):
    data = copy.deepcopy(raw_wording)
    change(data)
    problems = _problems(data)
    assert any(p.key == key and text in p.message for p in problems), [str(p) for p in problems]


def test_wording_errors_carry_the_yaml_line(tmp_path):
    text = WORDING_FILE.read_text(encoding="utf-8").replace('comparison: ">="', 'comparison: ">>"')
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_wording(path)
    (p,) = exc.value.problems
    line = next(i for i, s in enumerate(text.splitlines(), 1) if 'comparison: ">>"' in s)
    assert (p.file, p.row, p.key) == (path, line, "thresholds.comparison")
    with pytest.raises(ConfigError, match="not found"):
        load_wording(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------- properties


@st.composite
def assessments(draw):
    n = draw(st.integers(1, 25))
    rows = []
    for _ in range(n):
        event = date(2023, 10, 25) + pd.Timedelta(days=draw(st.integers(0, 170)))
        rows.append({
            "policy_id": f"P{draw(st.integers(0, 3))}", "plot_id": f"L{draw(st.integers(0, 3))}",
            "peril": draw(st.sampled_from(["banjir", "tikus", "gempa", "keong mas", "busuk batang", "??"])),
            "plot_area_ha": draw(st.floats(0.01, 2.5)).__round__(4),
            "damage_intensity_pct": draw(st.sampled_from([0.0, 50.0, 74.99, 75.0, 80.0, 100.0])),
            "damaged_area_pct": draw(st.sampled_from([0.0, 74.99, 75.0, 90.0, 100.0])),
            "crop_age_days": draw(st.integers(0, 60)),
            "planting_method": draw(st.sampled_from(["transplanting", "tabela", "salibu"])),
            "event_date": str(event), "notice_date": str(event + pd.Timedelta(days=draw(st.integers(0, 9)))),
        })
    return rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=assessments())
def test_indemnity_is_nothing_or_the_whole_insured_plot(wording, rows):
    c = settle(*rows, wording=wording)
    ceiling = np.floor(c.insured_area_ha * 6_000_000 + 0.5)
    assert (c.indemnity <= ceiling).all()
    assert ((c.indemnity == 0) | (c.indemnity == c.sum_insured)).all()
    assert ((c.decision == "paid") == (c.indemnity > 0)).all()
    paid = c[c.decision == "paid"]
    assert not paid.duplicated(["policy_id", "plot_id"]).any()  # a plot is paid once a season
    assert (paid.groupby("policy_id").insured_area_ha.sum() <= 2.0 + 1e-9).all()  # 2 ha per farmer
    assert (c.insured_area_ha <= c.plot_area_ha).all()


# --------------------------------------------------------------------------- premium and claims share one cap


def test_the_area_charged_premium_is_the_area_paid_for_a_farmer_with_three_policies(wording):
    """Pedoman Teknis AUTP: at most 2 ha per farmer; premium 3 % of Rp 6,000,000/ha.

    Farmer F1 registers A 1.2 ha, B 0.5 ha, C 1.0 ha (register order). Premium fills the
    2 ha in that order: A 1.2, B 0.5, C 0.3 ha -> Rp 216,000 + 90,000 + 54,000 = 360,000.
    Claims use the same insured areas, whatever the event order: C's puso plot (1.0 ha,
    earliest event) pays 0.3 ha = Rp 1,800,000, B 0.5 ha = 3,000,000, A 1.2 ha =
    7,200,000; total Rp 12,000,000 = 2 ha x 6,000,000. (Filling in event order, C would
    have taken 1.0 ha, and A only 0.5 ha of the 1.2 ha it paid premium for.)
    """
    policies = pd.DataFrame({"policy_id": ["A", "B", "C"], "farmer_id": ["F1"] * 3, "area_ha": [1.2, 0.5, 1.0]})
    charged = premium(policies["area_ha"], wording, farmer_id=policies["farmer_id"])
    assert charged["insured_area_ha"].tolist() == pytest.approx([1.2, 0.5, 0.3])
    assert charged["premium"].tolist() == [216_000, 90_000, 54_000]
    rows = [plot(1, policy_id="C", plot_area_ha=1.0, event_date="2024-01-05", notice_date="2024-01-06"),
            plot(1, policy_id="B", plot_area_ha=0.5, event_date="2024-01-20", notice_date="2024-01-21"),
            plot(1, policy_id="A", plot_area_ha=1.2, event_date="2024-02-01", notice_date="2024-02-02")]
    c = settle(*rows, wording=wording, policies=policies)
    assert c.insured_area_ha.tolist() == pytest.approx([0.3, 0.5, 1.2])
    assert c.indemnity.tolist() == [1_800_000, 3_000_000, 7_200_000]
    assert c.reason.tolist() == ["paid"] * 3 and c.reasons.tolist() == ["area_cap", "", ""]
    assert c.indemnity.sum() == 12_000_000


def test_a_policy_charged_no_premium_is_paid_nothing(wording):
    # register order A 1.2, B 0.8, C 1.0: C is charged Rp 0 and its early puso pays Rp 0
    policies = pd.DataFrame({"policy_id": ["A", "B", "C"], "farmer_id": ["F1"] * 3, "area_ha": [1.2, 0.8, 1.0]})
    assert premium(policies["area_ha"], wording, farmer_id=policies["farmer_id"])["premium"].tolist() == \
        [216_000, 144_000, 0]
    rows = [plot(1, policy_id="C", plot_area_ha=1.0, event_date="2024-01-05", notice_date="2024-01-06"),
            plot(1, policy_id="A", plot_area_ha=1.2, event_date="2024-02-01", notice_date="2024-02-02")]
    c = settle(*rows, wording=wording, policies=policies)
    assert c.reason.tolist() == ["area_cap", "paid"]
    assert c.indemnity.tolist() == [0, 7_200_000]


# --------------------------------------------------------------------------- boundaries, as written


@pytest.mark.parametrize(("method", "age", "reason"), [
    # AUTP minimum crop age: 10 days after transplanting, 30 for direct seeding and salibu;
    # exactly the minimum is old enough (the gate is age >= minimum)
    ("transplanting", 9, "crop_too_young"), ("transplanting", 10, "paid"),
    ("direct_seeding", 29, "crop_too_young"), ("direct_seeding", 30, "paid"),
    ("salibu", 29, "crop_too_young"), ("salibu", 30, "paid"),
])
def test_minimum_crop_age_boundary(wording, method, age, reason):
    assert one(plot(planting_method=method, crop_age_days=age), wording).reason == reason


@pytest.mark.parametrize(("intensity", "area", "ge", "gt"), [
    (75.0, 75.0, "paid", "below_threshold"),          # both exactly at the threshold
    (75.0, 90.0, "paid", "below_threshold"),          # one exactly at it is enough to fail '>'
    (90.0, 75.0, "paid", "below_threshold"),
    (74.99, 90.0, "below_threshold", "below_threshold"),
    (75.01, 75.01, "paid", "paid"),
])
def test_threshold_boundary_under_ge_and_gt(wording, raw_wording, intensity, area, ge, gt):
    strict = copy.deepcopy(raw_wording)
    strict["thresholds"]["comparison"] = ">"
    row = plot(damage_intensity_pct=intensity, damaged_area_pct=area)
    assert (one(row, wording).reason, one(row, parse_wording(strict)).reason) == (ge, gt)


@pytest.mark.parametrize(("event", "notice", "reason"), [
    # notice_days counts calendar days; the clock time of either does not matter
    ("2024-01-10 23:00", "2024-01-17 23:59", "paid"),       # day 7
    ("2024-01-10 01:00", "2024-01-17 23:59", "paid"),       # 7 days 22 h 59 min, still day 7
    ("2024-01-10 23:59", "2024-01-18 00:01", "late_notice"),  # 7 days 2 min, but day 8
    ("2024-01-10", "2024-01-17 08:00", "paid"),
])
def test_notice_days_are_calendar_days(wording, event, notice, reason):
    assert one(plot(event_date=event, notice_date=notice), wording).reason == reason


@pytest.mark.parametrize(("event", "notice", "reason"), [
    ("2024-01-10 14:00", "2024-01-13 14:00", "paid"),         # exactly 72 h
    ("2024-01-10 14:00", "2024-01-13 14:01", "late_notice"),  # 72 h 1 min
    ("2024-01-10", "2024-01-13", "paid"),                     # a date only: 72 h = 3 days
    ("2024-01-10", "2024-01-14", "late_notice"),
    ("2024-01-10 14:00", "2024-01-13", "paid"),               # one date only: whole days
    ("2024-01-10 14:00", "2024-01-10 13:00", "invalid_assessment"),  # notified before the event
])
def test_notice_hours_between_clock_times_else_whole_days(raw_wording, event, notice, reason):
    data = copy.deepcopy(raw_wording)
    del data["notice_days"]
    data["notice_hours"] = 72
    assert one(plot(event_date=event, notice_date=notice), parse_wording(data)).reason == reason


@pytest.mark.parametrize("change", [{"notice_hours": 72}, {"notice_days": None}])
def test_exactly_one_notice_limit(raw_wording, change):
    data = copy.deepcopy(raw_wording)
    data.update(change)
    if data["notice_days"] is None:
        del data["notice_days"]
    with pytest.raises(ConfigError, match="exactly one of notice_days"):
        parse_wording(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=assessments(), areas=st.lists(st.floats(0.05, 2.5).map(lambda a: round(a, 3)), min_size=4, max_size=4),
       farmers=st.lists(st.sampled_from(["F0", "F1"]), min_size=4, max_size=4))
def test_claims_never_use_more_area_than_premium_was_charged_on(wording, rows, areas, farmers):
    policies = pd.DataFrame({"policy_id": [f"P{i}" for i in range(4)], "farmer_id": farmers, "area_ha": areas})
    charged = premium(policies["area_ha"], wording, farmer_id=policies["farmer_id"])
    insured = dict(zip(policies["policy_id"], charged["insured_area_ha"]))
    c = settle(*rows, wording=wording, policies=policies)
    used = c[c.decision == "paid"].groupby("policy_id").insured_area_ha.sum()
    assert all(used[p] <= insured[p] + 1e-9 for p in used.index)
    assert (c.indemnity.groupby(c.policy_id).sum() <= c.policy_id.map(
        lambda p: round(insured[p] * 6_000_000)).groupby(c.policy_id).first()).all()
