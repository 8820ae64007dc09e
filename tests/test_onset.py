"""Onset of the rains (Sivakumar 1988): hand-made series whose onset is read off by eye."""

from __future__ import annotations

import numpy as np
import pytest
from panen.engine.maths.onset import STATUS, OnsetDefinition, detect_onset

D = OnsetDefinition()  # 20 mm over 3 days; no 7-day spell (< 1 mm/day) in the next 30 days


def series(n: int = 80, wet: float = 5.0, **days: float) -> np.ndarray:
    """``n`` days of ``wet`` mm; ``dN=value`` overrides day N."""
    r = np.full(n, wet)
    for k, v in days.items():
        r[int(k[1:])] = v
    return r


def one(r: np.ndarray, start: int = 0, deadline: int = 40, d: OnsetDefinition = D):
    out = detect_onset(r[None, :], start, deadline, d)
    return int(out.day[0]), STATUS[int(out.status[0])], int(out.false_starts[0])


def test_the_onset_day_is_a_day_it_rained():
    r = np.full(80, 2.0)
    r[10:13] = [0.0, 0.0, 26.7]  # days 10-12 hold 26.7 mm, but nothing fell on day 10 or 11
    r[13:16] = [0.0, 0.0, 0.0]
    # day 8: 2 + 2 + 0 = 4; day 9: 2 + 0 + 0; day 12 (26.7 mm): 26.7 + 0 + 0 >= 20 -> the onset is day 12
    assert one(r) == (12, "onset", 0)
    assert one(r, d=OnsetDefinition(wet_day=0)) == (10, "onset", 0)  # wet_day 0: any day begins the wet days


def test_the_first_day_of_the_first_wet_three_days_is_the_onset():
    r = np.zeros(80)
    r[10:13] = [8.0, 7.0, 5.0]  # 20 mm over days 10-12
    r[13:] = 2.0  # no dry day afterwards
    assert one(r) == (10, "onset", 0)
    r[12] = 4.9  # 19.9 mm: not wet enough; days 11-13 give 7 + 4.9 + 2 = 13.9
    assert one(r)[1] == "failed"


def test_a_dry_spell_after_the_wet_days_is_a_false_start_and_the_search_goes_on():
    r = np.full(90, 2.0)
    r[5:8] = 10.0  # wet start on day 5 (30 mm)
    r[20:27] = 0.0  # 7 dry days starting on day 20, inside days 8..37: false start
    r[40:43] = 10.0  # the next wet start; days 43.. hold 2 mm a day
    # wet starts on days 4 (2 + 10 + 10), 5 (30) and 6 (10 + 10 + 2) all see the spell: three false starts;
    # the next is day 39 (2 + 10 + 10 = 22; day 38 holds 2 + 2 + 10 = 14), with no spell after it
    assert one(r, deadline=60) == (39, "onset", 3)


def test_six_dry_days_are_not_a_spell_and_a_spell_may_run_past_the_check_window():
    r = np.full(90, 2.0)
    r[0:3] = 10.0
    r[10:16] = 0.0  # six dry days: no false start
    assert one(r) == (0, "onset", 0)
    r = np.full(90, 2.0)
    r[0:3] = 10.0
    r[32:39] = 0.0  # starts on day 32 = last day of the check window (3 + 30 - 1): a false start
    assert one(r, deadline=0) == (-1, "failed", 1)
    r = np.full(90, 2.0)
    r[0:3] = 10.0
    r[33:40] = 0.0  # starts one day after the check window: no false start
    assert one(r) == (0, "onset", 0)


def test_per_day_and_total_dry_spells_differ():
    r = np.full(90, 3.0)
    r[0:3] = 10.0
    r[10:17] = [0, 0, 0, 0.9, 0, 0, 0]  # every day below 1 mm: a per-day spell; total 0.9 < 1: a total spell
    assert one(r, deadline=0) == (-1, "failed", 1)
    assert one(r, deadline=0, d=OnsetDefinition(dry_method="total")) == (-1, "failed", 1)
    r[13] = 0.95
    r[14] = 0.2  # each day < 1 mm (per_day spell); total 1.15 mm >= 1 (no total spell)
    assert one(r, deadline=0) == (-1, "failed", 1)
    assert one(r, d=OnsetDefinition(dry_method="total")) == (0, "onset", 0)


def test_no_onset_by_the_deadline_is_a_failed_onset():
    r = np.full(120, 0.5)
    assert one(r, deadline=60) == (-1, "failed", 0)


def test_missing_days_are_never_read_as_dry_or_wet():
    r = np.full(90, 2.0)
    r[5] = np.nan  # days 3..5 hold 2 + 2 + ? : they might have been 20 mm
    assert one(r) == (-1, "undetermined", 0)
    r = np.full(90, 2.0)
    r[0:3] = [np.nan, 12.0, 12.0]  # the known days alone reach 20 mm: a wet start whatever day 0 held ...
    assert one(r, d=OnsetDefinition(wet_day=0)) == (0, "onset", 0)
    assert one(r) == (-1, "undetermined", 0)  # ... but did it rain on day 0, the day sown? nobody knows
    r[0:3] = [5.0, np.nan, 16.0]  # day 0 rained, and 5 + 16 >= 20 whatever day 1 held
    assert one(r) == (0, "onset", 0)
    r = np.full(90, 2.0)
    r[0:3] = 10.0
    r[15] = np.nan  # a missing day among wet days cannot make a 7-day spell: no doubt
    assert one(r) == (0, "onset", 0)
    r[15:22] = [0, 0, 0, np.nan, 0, 0, 0]  # six dry days around a missing one: a spell cannot be ruled out
    assert one(r) == (-1, "undetermined", 0)
    r[25:32] = 0.0  # but a known dry spell in the check window makes a false start anyway
    assert one(r, deadline=0) == (-1, "failed", 1)
    r = np.full(90, 2.0)
    r[0:3] = 10.0
    r[15:22] = [0, 0, 0, np.nan, 0, 0, 0]
    assert one(r, deadline=0, d=OnsetDefinition(dry_method="total")) == (-1, "undetermined", 0)
    r[18] = 1.5  # known now: total 1.5 mm >= 1 is no total spell, and 1.5 mm is not a dry day
    assert one(r, d=OnsetDefinition(dry_method="total")) == (0, "onset", 0)
    assert one(r) == (0, "onset", 0)


def test_a_series_that_ends_before_the_check_window_is_still_open():
    r = np.full(20, 2.0)
    r[0:3] = 10.0
    assert one(r, deadline=10) == (-1, "open", 0)


def test_zones_are_independent():
    a = np.full(80, 2.0)
    a[4:7] = 10.0
    b = np.full(80, 0.1)
    out = detect_onset(np.stack([a, b]), 0, 40)
    assert out.day.tolist() == [3, -1]  # zone a: day 2 holds 2 + 2 + 10 = 14 < 20, day 3: 2 + 10 + 10 = 22
    assert [STATUS[s] for s in out.status] == ["onset", "failed"]


@pytest.mark.parametrize("bad", [{"wet_total": 0}, {"dry_days": 0}, {"dry_method": "longest"}, {"wet_days": 99}])
def test_a_bad_definition_is_refused(bad):
    with pytest.raises(ValueError):
        OnsetDefinition(**bad)
