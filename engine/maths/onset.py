"""Onset of the rains: a named, parameterised definition with false starts and a deadline.

The agronomic definition (Sivakumar 1988, *Agric. For. Meteorol.* 42, 295–305, for the
Sudano-Sahelian zone; used since by AGRHYMET, FEWS NET and ACRE's planting-window
covers): the onset is the first rainy day (at least ``wet_day`` mm: the day sown is a day it
rained), on or after a search start, that begins ``wet_days`` consecutive days with at
least ``wet_total`` mm, provided no *dry spell* of
``dry_days`` days or more begins in the ``check_days`` days that follow the wet days.
A wet start that is followed by such a dry spell is a **false start** — the crop sown on
it would fail — and the search goes on from the next day. No onset by the ``deadline`` is
a **failed onset**, which a term sheet may itself treat as a payout event.

Defaults (``OnsetDefinition()``): 20 mm over 3 days starting on a day of at least 1 mm, no
dry spell of 7 days within the next 30 days, a day being dry below 1 mm — Sivakumar's
definition.

Dry spells come in two named variants, because users of these tools ask for both:

``per_day`` (default)
    ``dry_days`` consecutive days, *each* with rain below ``dry_threshold`` [mm/day].
``total``
    ``dry_days`` consecutive days whose *total* is below ``dry_threshold`` [mm] (a window
    sum: a day of 2 mm among six dry days does not break it if the sum stays low).

Where panen differs from xclim's ``rain_season`` (xclim ≥ 0.40, ``xclim.indices``):

* the onset is dated on the **first** day of the wet days, itself a rainy day (Sivakumar:
  the sowing date); xclim dates the season start on the **last** day of its
  ``window_wet_start`` window, whatever rain fell on its first days;
* a dry day is rain strictly **below** the threshold, as in panen's ``dry_spell`` index;
  xclim counts rain **at or below** ``thresh_dry_start``;
* panen searches one season's window given by dates (which may cross the new year, as
  Indonesia's and Southern Africa's wet seasons do), where xclim resamples by a yearly
  frequency and bounds the start by ``date_min_start``/``date_max_start`` inside each year;
* a missing day is never read as dry or wet: a candidate whose wet days or check window
  hold a missing day, before any earlier onset is confirmed, makes the outcome
  **undetermined** (neither an onset nor a failure), where xclim's rolling sums turn NaN
  into "condition not met" and may report a later onset or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OnsetDefinition", "OnsetResult", "STATUS", "detect_onset"]

#: Outcomes per zone: an onset was found; none by the deadline; missing data decide it; the
#: series ends before the deadline without an onset (the season is still open).
STATUS: tuple[str, ...] = ("onset", "failed", "undetermined", "open")


class OnsetDefinition(BaseModel):
    """A named onset definition (the keys a term sheet's ``onset:`` block takes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    wet_total: float = Field(20.0, gt=0, description="rain needed over the wet days [mm]")
    wet_days: int = Field(3, ge=1, le=30, description="consecutive days summed for the wet start [days]")
    dry_days: int = Field(7, ge=1, le=60, description="length of a dry spell that makes a false start [days]")
    check_days: int = Field(30, ge=0, le=120, description="days after the wet days checked for a dry spell [days]")
    dry_threshold: float = Field(1.0, gt=0, description="a dry day has rain below this [mm/day] (per_day), or a dry "
                                                         "spell's total is below this [mm] (total)")
    dry_method: Literal["per_day", "total"] = Field("per_day", description="what makes a dry spell: every day below "
                                                                           "dry_threshold, or the spell's total")
    wet_day: float = Field(1.0, ge=0, description="the onset day itself has at least this much rain [mm] (it rained "
                                                  "on the day sown); 0: any day may begin the wet days")


@dataclass(frozen=True)
class OnsetResult:
    """Per zone: the onset day (index into the series, −1 if none), the status, and false starts."""

    day: np.ndarray
    status: np.ndarray
    false_starts: np.ndarray


def _dry_spell_starts(rain: np.ndarray, d: OnsetDefinition) -> tuple[np.ndarray, np.ndarray]:
    """Per day: a dry spell of ``dry_days`` certainly starts here, and one possibly does.

    *Certain*: every day of the spell is known and it is dry. *Possible*: it would be dry
    for some values of its missing days (``per_day``: every known day is dry; ``total``: the
    known days' total is below the threshold, rain being never negative).
    """
    n = rain.shape[-1]
    L = d.dry_days
    if n < L:
        shape = (*rain.shape[:-1], n)
        return np.zeros(shape, bool), np.zeros(shape, bool)
    win = np.lib.stride_tricks.sliding_window_view(rain, L, axis=-1)  # (..., n-L+1, L)
    known = np.isfinite(win).all(axis=-1)
    if d.dry_method == "per_day":
        possible = (np.where(np.isfinite(win), win, -np.inf) < d.dry_threshold).all(axis=-1)
    else:
        possible = np.nansum(win, axis=-1) < d.dry_threshold
    pad = [(0, 0)] * (rain.ndim - 1) + [(0, L - 1)]
    return np.pad(possible & known, pad), np.pad(possible, pad)


def detect_onset(rain: np.ndarray, search_start: int, deadline: int, definition: OnsetDefinition | None = None
                 ) -> OnsetResult:
    """Onset of the rains per zone, searched from ``search_start`` to ``deadline`` (inclusive).

    Parameters
    ----------
    rain
        Daily rain [mm/day], shape ``(zones, days)``; NaN where missing.
    search_start, deadline
        Day indices into the series: the first and last day an onset may fall on.
    definition
        :class:`OnsetDefinition` (default: Sivakumar's).

    Returns
    -------
    OnsetResult
        ``day`` (int, −1 without an onset), ``status`` (index into :data:`STATUS`),
        ``false_starts`` (wet starts rejected for a following dry spell, before the onset).

    Notes
    -----
    A candidate day ``t`` is a wet start when the ``wet_days`` from ``t`` hold at least
    ``wet_total``; it is the onset unless a dry spell *starts* within the ``check_days``
    after the wet days (days ``t + wet_days`` .. ``t + wet_days + check_days − 1``). The
    spell itself may run past the check window. When the series ends before a candidate's
    check window does, the outcome is ``open`` (the season is still being watched).
    """
    d = definition or OnsetDefinition()
    rain = np.atleast_2d(np.asarray(rain, float))
    zones, n = rain.shape
    if not 0 <= search_start <= deadline:
        raise ValueError(f"need 0 <= search_start <= deadline; got {search_start}, {deadline}")
    day = np.full(zones, -1, np.int64)
    status = np.full(zones, -1, np.int64)
    false_starts = np.zeros(zones, np.int64)
    certain, possible = _dry_spell_starts(rain, d)
    for z in range(zones):
        r = rain[z]
        for t in range(search_start, deadline + 1):
            wet_end = t + d.wet_days
            if wet_end > n:
                status[z] = STATUS.index("open")
                break
            w = r[t:wet_end]
            if d.wet_day > 0 and not r[t] >= d.wet_day:
                if np.isnan(r[t]):  # was it a rainy day? nobody knows
                    status[z] = STATUS.index("undetermined")
                    break
                continue  # the onset is a day it rained
            if np.nansum(w) < d.wet_total:
                if not np.isfinite(w).all():
                    # the missing days might bring the total up: this day might be the onset, or not
                    status[z] = STATUS.index("undetermined")
                    break
                continue
            # a wet start (the known days alone reach the total: rain is never negative)
            first, last = wet_end, wet_end + d.check_days  # spell starts checked in [first, last)
            if last + d.dry_days - 1 > n:
                # a spell starting late in the check window would end after the series
                status[z] = STATUS.index("open")
                break
            if certain[z, first:last].any():
                false_starts[z] += 1  # a dry spell on known days: a false start, whatever else is missing
                continue
            if possible[z, first:last].any():  # missing days might make a spell
                status[z] = STATUS.index("undetermined")
                break
            day[z], status[z] = t, STATUS.index("onset")
            break
        else:
            status[z] = STATUS.index("failed")
    return OnsetResult(day=day, status=status, false_starts=false_starts)
