"""A named-peril cover's period as written: per policy, turning at noon, local time, date-only events.

The AUTP wording (Jasindo, Polis Standar AUTP) covers one planting season from 12:00 noon
local time on the start date to 12:00 noon on the end date; the Ministry's Pedoman Teknis
AUTP ties the season to each policy's planting. Hand-computed cases at every boundary.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pandas as pd
import pytest

from panen.datasets.policies import read_policies
from panen.datasets.tables import TableOptions
from panen.engine.errors import ConfigError
from panen.engine.infra.arrowcols import TextFormat
from panen.engine.perils.adjuster import adjust, parse_wording, write_claims
from panen.engine.settlement.policies import ProductRules, validate_policies

WORDING_FILE = Path(__file__).resolve().parents[1] / "configs" / "autp.yaml"
SEASON = {"season_start": "2023-11-01", "season_end": "2024-03-31"}
NOON = 12 * 3600



def plot(policy: str = "P001", plot_id: str = "A", **changes) -> dict:
    row = {"policy_id": policy, "plot_id": plot_id, "peril": "banjir", "plot_area_ha": 1.0,
           "damage_intensity_pct": 90.0, "damaged_area_pct": 90.0, "crop_age_days": 40,
           "planting_method": "tanam pindah", "event_date": "2024-01-10", "notice_date": "2024-01-11"}
    row.update(changes)
    return row


def reasons(rows: list[dict], wording, **kwargs) -> list[str]:
    return adjust(pd.DataFrame(rows), wording, **SEASON, **kwargs)["reason"].astype(str).tolist()


# --------------------------------------------------------------------------- the wording's times


def test_autp_wording_turns_at_noon_and_reads_each_policys_dates(wording):
    assert wording.cover_period.basis == "policy"
    assert wording.cover_period.times == (NOON, NOON)


@pytest.mark.parametrize(("event", "reason"), [
    # season 2023-11-01 12:00 .. 2024-03-31 12:00 (no register: every policy has the season)
    ("2023-11-01 11:59", "outside_cover_period"),
    ("2023-11-01 12:00", "paid"),                      # the bound itself is covered
    ("2023-11-01T18:30", "paid"),
    ("2024-03-31 12:00", "paid"),
    ("2024-03-31 12:01", "outside_cover_period"),
    # a date only: covered when its day overlaps the period (the start and end days do)
    ("2023-10-31", "outside_cover_period"),
    ("2023-11-01", "paid"),
    ("2024-03-31", "paid"),
    ("2024-04-01", "outside_cover_period"),
])
def test_cover_turns_at_noon_and_a_date_only_event_on_the_boundary_day_is_covered(wording, event, reason):
    notice = event[:10]
    assert reasons([plot(event_date=event, notice_date=notice)], wording) == [reason]


def test_a_whole_day_wording_keeps_inclusive_dates(raw_wording):
    data = copy.deepcopy(raw_wording)
    data["cover_period"] = {"basis": "season"}  # 00:00 on the start date .. 24:00 on the end date
    w = parse_wording(data)
    rows = [plot(plot_id=str(i), event_date=e, notice_date=e[:10]) for i, e in
            enumerate(("2023-11-01 00:01", "2024-03-31 23:59", "2024-04-01 00:01", "2023-10-31 23:59"))]
    assert reasons(rows, w) == ["paid", "paid", "outside_cover_period", "outside_cover_period"]


@pytest.mark.parametrize(("change", "key"), [
    ({"start_time": "24:00"}, "cover_period"),
    ({"start_time": "12:60"}, "cover_period.start_time"),
    ({"end_time": "noon"}, "cover_period.end_time"),
    ({"start_column": "mulai"}, "cover_period.start_column"),  # the register's columns: option maps headers
])
def test_bad_cover_times_are_located_errors(raw_wording, change, key):
    data = copy.deepcopy(raw_wording)
    data["cover_period"] = {**data["cover_period"], **change}
    with pytest.raises(ConfigError) as err:
        parse_wording(data)
    assert any(p.key == key for p in err.value.problems)


# --------------------------------------------------------------------------- per-policy dates in adjust


def test_each_policy_has_its_own_period_and_the_season_is_the_fallback(wording):
    policies = pd.DataFrame({
        "policy_id": ["P1", "P2", "P3", "P4"], "farmer_id": ["F1", "F2", "F3", "F4"],
        "area_ha": [2.0, 2.0, 1.0, 2.0],
        # text as a caller writes it: a date alone turns at noon; a clock time is exact
        "cover_start": ["2024-01-15", "2024-01-15 08:00", None, "2024-01-15"],
        "cover_end": ["2024-05-10", "2024-05-10 18:00", None, None],
    })
    rows = [
        plot("P1", event_date="2024-01-15 11:00", notice_date="2024-01-15"),  # before noon: outside
        plot("P2", event_date="2024-01-15 11:00", notice_date="2024-01-15"),  # after 08:00: inside
        plot("P1", "B", event_date="2024-05-10 12:00", notice_date="2024-05-11"),  # at noon on the end day
        plot("P2", "B", event_date="2024-05-10 17:00", notice_date="2024-05-11"),
        plot("P1", "C", event_date="2024-04-20", notice_date="2024-04-21"),  # after the season, in P1's period
        plot("P3", event_date="2023-11-01 11:00", notice_date="2023-11-01"),  # season fallback, before noon
        plot("P4", event_date="2024-03-31 12:00", notice_date="2024-03-31"),  # P4: own start, season end
        plot("P4", "B", event_date="2024-04-01", notice_date="2024-04-01"),
    ]
    assert reasons(rows, wording, policies=policies) == [
        "outside_cover_period", "paid", "paid", "paid", "paid", "outside_cover_period", "paid",
        "outside_cover_period"]


def test_an_event_time_is_written_back_only_when_one_was_given(wording, tmp_path):
    c = adjust(pd.DataFrame([plot(event_date="2024-01-10 14:30", notice_date="2024-01-11"),
                             plot(plot_id="B")]), wording, **SEASON)
    text = write_claims(c, tmp_path / "claims.csv").read_text()
    # the event column holds a clock time: every row is a date-time; the notice column stays dates
    assert '"2024-01-10T14:30:00",2024-01-11' in text and '"2024-01-10T00:00:00",2024-01-11' in text
    plain = write_claims(adjust(pd.DataFrame([plot()]), wording, **SEASON), tmp_path / "c2.csv").read_text()
    assert ",2024-01-10,2024-01-11," in plain


# --------------------------------------------------------------------------- the register


REGISTER = ["policy_id", "farmer_id", "district_id", "product_id", "area_ha", "cover_start", "cover_end",
            "harvest_date"]
RULES = {"autp": ProductRules(6_000_000, cover_times=(NOON, NOON), harvest_date=True),
         "rain": ProductRules(6_000_000)}


def register(tmp_path: Path, rows: list[dict], options: TableOptions | None = None):
    path = tmp_path / "policies.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=REGISTER, delimiter=options.separator if options else ",")
        w.writeheader()
        for i, r in enumerate(rows, 1):
            w.writerow({"policy_id": f"P{i}", "farmer_id": f"F{i}", "district_id": "3212", "product_id": "autp",
                        "area_ha": "1", "cover_start": "", "cover_end": "", "harvest_date": "", **r})
    return validate_policies(read_policies(path, options), district_ids=["3212"], products=RULES)


def test_register_dates_become_local_instants_with_the_wordings_noon(tmp_path):
    valid, rejects = register(tmp_path, [
        {"cover_start": "2024-01-15", "cover_end": "2024-05-10"},
        {"cover_start": "2024-01-15 08:00", "cover_end": "2024-05-10T18:30:00"},
        {"harvest_date": "2024-04-02"},
    ])
    assert rejects.empty
    assert valid["cover_start"].tolist()[:2] == [pd.Timestamp("2024-01-15 12:00"), pd.Timestamp("2024-01-15 08:00")]
    assert valid["cover_end"].tolist()[:2] == [pd.Timestamp("2024-05-10 12:00"), pd.Timestamp("2024-05-10 18:30")]
    assert pd.isna(valid["cover_start"].iloc[2]) and valid["harvest_date"].iloc[2] == pd.Timestamp("2024-04-02")


def test_register_dates_follow_the_registers_date_format(tmp_path):
    options = TableOptions(separator=";", text=TextFormat(date_format="%d/%m/%Y"))
    valid, rejects = register(tmp_path, [{"cover_start": "15/01/2024", "cover_end": "10/5/2024 18:00"},
                                         {"cover_start": "2024-01-15"}], options)
    assert valid["cover_start"].tolist() == [pd.Timestamp("2024-01-15 12:00")]
    assert valid["cover_end"].tolist() == [pd.Timestamp("2024-05-10 18:00")]
    assert rejects[["row", "column", "reason"]].values.tolist() == [[2, "cover_start", "bad_date"]]


@pytest.mark.parametrize(("changes", "reason", "column"), [
    ({"cover_start": "2024-02-30"}, "bad_date", "cover_start"),
    ({"cover_end": "2024-05-10 25:00"}, "bad_date", "cover_end"),
    ({"cover_start": "2024-01-15T12:00+07:00"}, "bad_date", "cover_start"),  # no time zones: local time only
    ({"cover_start": "2024-01-15T05:00Z"}, "bad_date", "cover_start"),
    ({"harvest_date": "kemarin"}, "bad_date", "harvest_date"),
    ({"cover_start": "2024-05-10", "cover_end": "2024-01-15"}, "cover_end_before_start", "cover_end"),
    # same day: a date-only end (noon) before a start at 14:00 that day
    ({"cover_start": "2024-01-15 14:00", "cover_end": "2024-01-15"}, "cover_end_before_start", "cover_end"),
])
def test_bad_cover_dates_are_rejects_with_reasons(tmp_path, changes, reason, column):
    valid, rejects = register(tmp_path, [changes])
    assert valid.empty
    assert rejects[["column", "reason"]].values.tolist() == [[column, reason]]
    assert rejects["message"].iloc[0]


def test_equal_start_and_end_is_allowed_and_other_products_do_not_read_the_columns(tmp_path):
    valid, rejects = register(tmp_path, [{"cover_start": "2024-01-15", "cover_end": "2024-01-15"},
                                         {"product_id": "rain", "cover_start": "nonsense"}])
    assert rejects.empty and len(valid) == 2
    assert pd.isna(valid["cover_start"].iloc[1])
