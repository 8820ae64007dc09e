"""The named-peril rice adjuster: AUTP (Asuransi Usaha Tani Padi) claims, plot by plot.

The policy wording is data (``configs/autp.yaml``, validated by :class:`Wording`); this
module only applies it. Another named-peril cover is another wording file, not new code.

A loss assessment (one row per plot, peril and event, as a POPT pest observer records it)
pays the plot's whole *insured area* x ``sum_insured_per_ha`` when every gate passes, and
nothing otherwise — AUTP has no partial payment (a wording with ``payout_basis:
proportional`` pays the assessed loss instead, see *Payout basis*). The gates, in the order that
decides the one primary ``reason`` of a plot that is not paid (:data:`REASONS`):

============================  ==============================================================
reason                        the plot is not paid because ...
============================  ==============================================================
``invalid_assessment``        a value is missing or impossible (the reader rejects these rows;
                              the gate guards callers that build frames themselves)
``unknown_policy``            ``policies`` was given and the policy id is not in it
``unknown_peril``             the peril text matches no code, name or alias of the wording:
                              the claim is **referred** (see below), not declined
``peril_excluded``            the peril is a general exclusion (earthquake, fire, ...)
``peril_excluded_special``    a special exclusion not lifted by an endorsement (hama putih,
                              riot, landslide, storm, ...)
``peril_not_covered``         a known peril the wording neither covers nor excludes (none in
                              the shipped AUTP wording; kept for wordings that have such)
``outside_cover_period``      the event is outside the cover period (see *Cover period*)
``late_notice``               notified later than ``notice_days`` / ``notice_hours`` allow
``unknown_planting_method``   the planting method matches no method of the wording
``crop_too_young``            crop age below the minimum for the planting method
``below_threshold``           damage intensity or damaged area short of the threshold
``already_paid``              an earlier event of the season already settled this plot
``area_cap``                  the policy's or the farmer's insured area is used up
============================  ==============================================================

**Referred, not declined.** A peril name the wording cannot resolve is not evidence that
the loss is uninsured — field reports use local names, misspellings and species names the
wording may not list yet (each wrongful decline costs the farmer Rp 6,000,000/ha). Such a
claim gets ``decision = referred``, reason ``unknown_peril`` (the name stays in ``peril`` as
written): not paid, not declined, listed for a person to resolve (add the name to the
wording, or correct the assessment) and rerun. Only a claim whose one failed gate is the
unknown peril is referred: a claim that fails a gate that does not depend on the peril
(cover period, notice, crop age, threshold, an unknown policy, an invalid value) is declined
for that reason whatever its peril, with ``unknown_peril`` still listed in ``reasons``.
Referred claims take no area from the caps and do not settle their plot.

Coverage comes first (if the peril is not insured nothing else matters), then the dates
of the claim (cover period, notice), then the crop (age), then the damage; ``already_paid``
and ``area_cap`` are decided last, only among claims that pass every gate, because they
allocate the season's limits among payable claims. ``reasons`` lists every gate that failed
(``;``-separated, same order), so an audit sees that a late claim was also below the
threshold. A paid plot whose area was partly cut by the cap is ``paid`` with ``reasons``
``area_cap``.

**One payment per plot per season.** A plot (``policy_id`` + ``plot_id``) is paid at most
its sum insured per season: claims passing every gate are taken in *claim order* —
``event_date``, then ``notice_date`` (instants; a date alone counts as 00:00 of its day),
``policy_id``, ``plot_id``, ``peril_code``, file order — and the first one settles the
plot; later passing claims on it are
``already_paid``. Claim order is chronological so that adding a later assessment to a
rerun never changes a claim already decided.

**Area cap: the area charged premium is the area insured.** A policy's insured area is
filled exactly as :func:`premium` charges it: in *register order*, each policy takes
``min(area_ha, what is left of its farmer's max_insured_area_ha)`` (2 ha; the farmer is
``policies.farmer_id``). A settling claim then takes its plot's area from what is left of
its policy's insured area, in claim order; the plot is paid on ``insured_area_ha = min(plot
area, what is left)``, and a claim that finds nothing left (a policy charged Rp 0 premium)
is declined ``area_cap``. So a farmer's claims are never paid on more area, or other area,
than premium was charged on, whatever order the events come in (Pedoman Teknis AUTP: the
premium is 3 % of the sum insured of the insured area, at most 2 ha per farmer; no premium,
no cover). Without ``policies`` (or for policies without an ``area_ha``) the area premium
was charged on is unknown: each policy id counts as one farmer and the 2 ha are filled in
claim order. Only claims that pay use the cap. Area arithmetic is done in whole
micro-hectares so the cap is exact (three 1 ha policies insure exactly 2 ha).

**Cover period.** From ``cover_period.start_time`` on the start date to
``cover_period.end_time`` on the end date (AUTP: 12:00 noon on both), local time of the
plot as written (WIB, WITA or WIT: no time zone is converted, and a value with a UTC offset
is refused). The dates are the run's season, or with ``basis: policy`` each policy's
``cover_start``/``cover_end`` where the register gives them. An event with a clock time is
covered when ``start <= event <= end``; an event given as a date only is covered when its
day overlaps the period — a date-only event on the start or end day is covered (the
assessment form records the date, not the hour, and the day cannot be split; the reading
favours the insured). In an in-memory frame a datetime64 event at exactly 00:00:00 is a
date only. With ``post_harvest``, a policy's ``harvest_date`` ends the standing-crop cover
(events up to that day) and opens ``post_harvest.days`` calendar days (harvest day
included) in which ``post_harvest.perils`` are covered, whatever the season; a
post-harvest peril on a policy without a harvest date is ``outside_cover_period``.

**Notice.** ``notice_days``: calendar days from the event day to the notice day (7: an
event on 10 January notified on the 17th is in time, on the 18th late; clock times do not
count). ``notice_hours``: hours between the two when both have a clock time (72: exactly
72:00 is in time); when either is a date only, whole days, the hours rounded up to days
(72 h = 3 days).

**Payout basis.** ``threshold`` (AUTP): the whole insured area pays once intensity and
damaged area reach the thresholds. ``proportional`` (PMFBY localized calamities and
post-harvest losses, revised operational guidelines 2020, para 21): the assessed loss %
of the sum insured of the affected area, ``round_half_up(insured_area_ha x
sum_insured_per_ha x damage_intensity_pct/100 x damaged_area_pct/100)``.

Money: ``sum_insured = round_half_up(insured_area_ha x sum_insured_per_ha)`` [Rp];
``indemnity`` is that or 0 (``threshold``) or the proportional amount above
(``proportional``) — integer rupiah, rounded once (:func:`~.terms.round_rupiah`).

Everything is vectorised (factorised strings, numpy masks, one sort of the payable
claims); a million assessments settle in a couple of seconds.

References
----------
Jasindo AUTP policy wording (Polis Standar AUTP, approved by OJK); Kementerian Pertanian,
Pedoman Teknis Asuransi Usaha Tani Padi (premium 3 %, 80 % APBN subsidy, puso >= 75 %,
at most 2 ha per farmer). Government of India, Ministry of Agriculture & Farmers Welfare,
PMFBY Revised Operational Guidelines (2020), para 21 (localized calamities, post-harvest
losses: individual assessment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from panen.engine.infra.yamlio import dotted as _dotted
from panen.engine.infra.yamlio import load_located_yaml
from panen.engine.infra.yamlio import nearest_line as _nearest_line
from panen.engine.infra.yamlio import pydantic_message as _msg
from panen.engine.api import ASSESSMENT_COLUMNS
from panen.engine.errors import ConfigError, InputError, Problem
from panen.engine.infra.arrowcols import datetime_column
from panen.engine.infra.atomic import write_table_atomic
from panen.engine.infra.text import normalise_label
from panen.engine.maths.premium import policy_premiums, split_subsidy
from panen.engine.maths.terms import round_rupiah
from panen.engine.settlement.rates import POLICY_OUTCOMES, PolicyAmounts

__all__ = [
    "ASSESSMENT_COLUMNS",
    "CLAIM_COLUMNS",
    "DECISIONS",
    "REASONS",
    "REFERRAL_REASONS",
    "REASON_CODES",
    "Wording",
    "adjust",
    "load_wording",
    "normalise_label",
    "parse_wording",
    "policy_amounts",
    "premium",
    "write_claims",
]


#: Reasons a plot is not paid, in precedence order: a plot's ``reason`` is the first that
#: applies (``unknown_peril`` refers the claim to a person instead of declining it, unless
#: another gate fails too: then the first of the others is the reason).
REASONS: dict[str, str] = {
    "invalid_assessment": "a required value is missing or impossible",
    "unknown_policy": "the policy is not in the policy register",
    "unknown_peril": "the peril matches no code, name or alias of the wording: referred to a person",
    "peril_excluded": "the peril is a general exclusion",
    "peril_excluded_special": "the peril is a special exclusion not lifted by an endorsement",
    "peril_not_covered": "the peril is neither covered nor excluded by the wording",
    "outside_cover_period": "the event is outside the cover period",
    "late_notice": "the loss was notified too long after the event",
    "unknown_planting_method": "the planting method matches no method of the wording",
    "crop_too_young": "the crop was younger than the minimum age for its planting method",
    "below_threshold": "damage intensity or damaged area is below the threshold",
    "already_paid": "an earlier event of the season already settled this plot",
    "area_cap": "the policy's or farmer's insured area is used up",
}
_GATE = {name: i for i, name in enumerate(REASONS)}
#: Categories of the ``reason`` column: "paid", then the decline reasons in precedence order.
REASON_CODES: tuple[str, ...] = ("paid", *REASONS)
#: Categories of the ``decision`` column.
DECISIONS: tuple[str, ...] = ("paid", "declined", "referred")
#: Reasons that refer a claim to a person instead of declining it.
REFERRAL_REASONS: tuple[str, ...] = ("unknown_peril",)

#: Columns of the claims table (``autp_claims.csv``); ``farmer_id`` only with ``policies``.
CLAIM_COLUMNS: tuple[str, ...] = (
    "policy_id", "farmer_id", "plot_id", "peril", "peril_code", "plot_area_ha", "insured_area_ha",
    "damage_intensity_pct", "damaged_area_pct", "crop_age_days", "planting_method", "planting_method_code",
    "event_date", "notice_date", "decision", "reason", "reasons", "sum_insured", "indemnity",
)

_MICRO_HA = 1_000_000  # area arithmetic for the caps in whole micro-hectares (0.01 m²)
_NO_CAP = np.iinfo(np.int64).max // 4  # micro-hectares: no cap at this level
_NAT = np.iinfo(np.int64).min  # day number standing for a missing date
_LISTS = ("covered", "general_exclusions", "special_exclusions")
# peril classes, after overlaps and endorsements
_COVERED, _GENERAL, _SPECIAL, _NOT_COVERED, _UNKNOWN = 0, 1, 2, 3, 4
_POST_HARVEST = 5  # covered only in the post-harvest window (post_harvest.perils, not in covered)
_DAY = 86_400  # seconds


# --------------------------------------------------------------------------- the wording model

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
Label = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Premium(_Strict):
    """``premium:`` — rate on the sum insured and the government's share of it."""

    rate: float = Field(gt=0, lt=1, description="premium rate on the sum insured (AUTP 0.03)")
    subsidy_share: float = Field(ge=0, le=1, description="government share of the premium (AUTP 0.80)")


ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]


def _seconds(clock: str) -> int:
    """``"HH:MM"`` as seconds after midnight (``"24:00"``: 86,400, the end of the day)."""
    hh, mm = clock.split(":")
    return int(hh) * 3600 + int(mm) * 60


class CoverPeriod(_Strict):
    """``cover_period:`` — the season of the run, or each policy's own dates; the time of day it turns.

    The AUTP wording's period is one planting season from 12:00 noon local time on the
    start date to 12:00 noon on the end date (``start_time: "12:00"``, ``end_time:
    "12:00"``). Times are the plot's local time as written (WIB, WITA or WIT): no time
    zone conversion is done anywhere.
    """

    basis: Literal["season", "policy"] = Field(
        "season", description="'season': the run's season; 'policy': each policy's register cover_start/cover_end "
                              "where given, else the season")
    start_time: ClockTime = Field("00:00", description="local time of day cover starts on the start date (HH:MM)")
    end_time: ClockTime = Field("24:00", description="local time of day cover ends on the end date (HH:MM, 24:00 = "
                                                     "the end of the day)")

    @model_validator(mode="after")
    def _start_is_a_time_of_day(self) -> CoverPeriod:
        if self.start_time == "24:00":
            raise ValueError("start_time must be 00:00-23:59 (24:00 is only an end)")
        return self

    @property
    def times(self) -> tuple[int, int]:
        """(start, end) time of day [s after midnight]."""
        return _seconds(self.start_time), _seconds(self.end_time)


class PostHarvest(_Strict):
    """``post_harvest:`` — cover of a crop left cut and spread in the field after harvest.

    PMFBY revised operational guidelines (2020), para 21: losses from cyclone,
    cyclonic/unseasonal rain and hailstorm to a crop cut and spread to dry in the field,
    within 14 days of harvesting, are assessed individually.
    """

    days: PositiveInt = Field(description="days after the harvest date the cover lasts (PMFBY 14)")
    perils: list[Code] = Field(min_length=1, description="perils covered in that window")


class Thresholds(_Strict):
    """``thresholds:`` — the puso test: intensity AND area must reach their thresholds."""

    damage_intensity_pct: float = Field(ge=0, le=100, description="damage intensity threshold [%]")
    damaged_area_pct: float = Field(ge=0, le=100, description="damaged share of the plot threshold [%]")
    comparison: Literal[">=", ">"] = Field(">=", description="'>=' pays at exactly the threshold, '>' does not")


class PlantingMethod(_Strict):
    """One planting method: its Indonesian name and aliases found in field data."""

    name: Label
    aliases: list[Label] = []


class Peril(_Strict):
    """One named peril: Indonesian name, English name, kind, aliases found in field data."""

    name: Label
    name_en: Label
    kind: Literal["natural", "pest", "disease", "other"]
    aliases: list[Label] = []


class EndorsementOption(_Strict):
    """A named endorsement (``endorsement_options.<name>``): the special exclusions it lifts, and its source."""

    lifts: list[Code] = Field(min_length=1, description="peril codes of the special exclusions it covers")
    source: Label = Field(description="the document that grants the cover (e.g. the programme guideline)")


class Overlap(_Strict):
    """A peril the wording lists in more than one place, and the recorded reading."""

    treat_as: Literal["covered", "general_exclusions", "special_exclusions"]
    note: Label = Field(description="why: the choice must be recorded")


class _Located(ValueError):
    """Cross-field problems with their key paths (unwrapped by :func:`parse_wording`)."""

    def __init__(self, problems: list[tuple[tuple, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems))


class Wording(_Strict):
    """A named-peril policy wording (``configs/autp.yaml``), validated.

    Cross-checks beyond the field types: every listed code is in ``perils``; no peril is
    listed twice (in one list, or as both covered and excluded) unless ``overlaps`` records
    the reading taken; an overlap names a peril listed in more than one place and a list
    it is in; ``endorsements`` (endorsement option names or peril codes) lift special
    exclusions only; no label (code, name, English name, alias, read through
    ``spelling_variants``) means two perils or two planting methods; ``min_crop_age_days``
    and ``planting_methods`` name the same methods.

    Labels match after :func:`normalise_label` (case, accents, spaces, ``_``/``-``) and then
    word by word through ``spelling_variants`` (``cokelat`` reads ``coklat``).
    """

    id: Code
    name: Label
    reference: str = ""
    currency: Literal["Rp"] = "Rp"
    sum_insured_per_ha: PositiveInt = Field(lt=2**53, description="sum insured per hectare per season [Rp/ha]")
    premium: Premium
    max_insured_area_ha: PositiveFloat | None = Field(None, description="insured area cap per farmer [ha]")
    cover_period: CoverPeriod = CoverPeriod()
    post_harvest: PostHarvest | None = None
    notice_days: NonNegativeInt | None = Field(None, description="calendar days after the event the loss must be "
                                                                 "notified by (AUTP 7)")
    notice_hours: PositiveInt | None = Field(None, description="hours after the event the loss must be notified "
                                                               "by (PMFBY 72)")
    payout_basis: Literal["threshold", "proportional"] = Field(
        "threshold", description="'threshold': the whole insured area pays once the thresholds are reached (AUTP "
                                 "puso); 'proportional': loss % x sum insured of the affected area (PMFBY para 21)")
    thresholds: Thresholds
    min_crop_age_days: dict[Code, NonNegativeInt]
    planting_methods: dict[Code, PlantingMethod]
    perils: dict[Code, Peril]
    covered: list[Code]
    general_exclusions: list[Code] = []
    special_exclusions: list[Code] = []
    overlaps: dict[Code, Overlap] = {}
    spelling_variants: dict[Label, Label] = Field({}, description="word -> its standard spelling, for matching")
    endorsement_options: dict[Code, EndorsementOption] = {}
    endorsements: list[Code] = []

    _peril_labels: dict[str, int] = PrivateAttr(default_factory=dict)
    _peril_class: np.ndarray = PrivateAttr(default=None)
    _method_labels: dict[str, int] = PrivateAttr(default_factory=dict)
    _post_harvest: np.ndarray = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_check(self) -> Wording:
        problems: list[tuple[tuple, str]] = []
        where: dict[str, list[str]] = {}
        for lst in _LISTS:
            seen: set[str] = set()
            for i, code in enumerate(getattr(self, lst)):
                if code not in self.perils:
                    problems.append(((lst, i), f"unknown peril code {code!r}: add it to perils first"))
                elif code in seen:
                    problems.append(((lst, i), f"peril {code!r} is listed twice in {lst}"))
                else:
                    seen.add(code)
                    where.setdefault(code, []).append(lst)
                    if len(where[code]) > 1 and code not in self.overlaps:
                        first, second = where[code][0], lst
                        problems.append(((lst, i), f"peril {code!r} is in both {first} and {second}; list it "
                                                   f"once, or record the reading under overlaps.{code}"))
        for code, overlap in self.overlaps.items():
            lists = where.get(code, [])
            if code not in self.perils:
                problems.append((("overlaps", code), f"unknown peril code {code!r}"))
            elif len(lists) < 2:
                problems.append((("overlaps", code), f"peril {code!r} is not listed in more than one place "
                                                     f"(only in {', '.join(lists) or 'none'})"))
            elif overlap.treat_as not in lists:
                problems.append((("overlaps", code, "treat_as"), f"{overlap.treat_as!r} is not one of the lists "
                                                                 f"peril {code!r} is in ({', '.join(lists)})"))
        effective = {code: (self.overlaps[code].treat_as if code in self.overlaps and len(lists) > 1 else lists[0])
                     for code, lists in where.items()}
        def lift_problem(code: str) -> str | None:
            if code not in self.perils:
                return f"unknown peril code {code!r}"
            if effective.get(code) != "special_exclusions":
                what = {"covered": "already covered", "general_exclusions": "a general exclusion"}.get(
                    effective.get(code, ""), "not a special exclusion")
                return f"an endorsement can only lift a special exclusion; {code!r} is {what}"
            return None

        for name, option in self.endorsement_options.items():
            if name in self.perils:
                problems.append((("endorsement_options", name), f"{name!r} is also a peril code; an endorsement "
                                                                f"option needs a name of its own"))
            for j, code in enumerate(option.lifts):
                if (why := lift_problem(code)) is not None:
                    problems.append((("endorsement_options", name, "lifts", j), why))
        for i, code in enumerate(self.endorsements):
            if code in self.endorsement_options:
                continue
            if (why := lift_problem(code)) is not None:
                if code not in self.perils and self.endorsement_options:
                    why += f" (nor an endorsement option: {', '.join(self.endorsement_options)})"
                problems.append((("endorsements", i), why))
        for word, standard in self.spelling_variants.items():
            if len(normalise_label(word).split()) != 1 or len(normalise_label(standard).split()) != 1:
                problems.append((("spelling_variants", word), "a spelling variant maps one word to one word"))
        problems += _label_clashes(self.perils, ("name", "name_en"), "perils", self._key)
        problems += _label_clashes(self.planting_methods, ("name",), "planting_methods", self._key)
        if (self.notice_days is None) == (self.notice_hours is None):
            problems.append((("notice_days",), "give exactly one of notice_days (calendar days) and notice_hours"))
        if self.post_harvest is not None:
            lifted_now = self.lifted
            for i, code in enumerate(self.post_harvest.perils):
                if code not in self.perils:
                    problems.append((("post_harvest", "perils", i), f"unknown peril code {code!r}"))
                elif effective.get(code) in ("general_exclusions", "special_exclusions") \
                        and code not in lifted_now:
                    problems.append((("post_harvest", "perils", i), f"peril {code!r} is excluded "
                                                                    f"({effective[code]}); it cannot be covered "
                                                                    f"after harvest"))
        for method in self.planting_methods:
            if method not in self.min_crop_age_days:
                problems.append((("min_crop_age_days",), f"no minimum crop age for planting method {method!r}"))
        for method in self.min_crop_age_days:
            if method not in self.planting_methods:
                problems.append((("min_crop_age_days", method), f"unknown planting method {method!r} "
                                                                f"(not in planting_methods)"))
        if problems:
            raise _Located(problems)

        # lookup tables for the adjuster
        self._peril_labels.update(_labels(self.perils, ("name", "name_en"), self._key))
        self._method_labels.update(_labels(self.planting_methods, ("name",), self._key))
        lifted = self.lifted
        kind = {"covered": _COVERED, "general_exclusions": _GENERAL, "special_exclusions": _SPECIAL}
        after = set(self.post_harvest.perils) if self.post_harvest is not None else set()
        cls = [_COVERED if code in lifted else kind[effective[code]] if code in effective else _NOT_COVERED
               for code in self.perils]
        self._peril_class = np.array([_POST_HARVEST if c == _NOT_COVERED and code in after else c
                                      for c, code in zip(cls, self.perils)] + [_UNKNOWN], np.int8)
        self._post_harvest = np.array([code in after for code in self.perils] + [False], bool)
        return self

    # ---------------------------------------------------------------- lookups
    def _key(self, label: object) -> str:
        """The matching key of a label: :func:`normalise_label`, then ``spelling_variants`` word by word."""
        key = normalise_label(label)
        if not self.spelling_variants:
            return key
        variants = {normalise_label(k): normalise_label(v) for k, v in self.spelling_variants.items()}
        return " ".join(variants.get(w, w) for w in key.split(" "))

    @property
    def lifted(self) -> frozenset[str]:
        """Peril codes the attached endorsements cover (option names expanded)."""
        out: set[str] = set()
        for name in self.endorsements:
            option = self.endorsement_options.get(name)
            out.update(option.lifts if option is not None else [name])
        return frozenset(out)

    @property
    def peril_codes(self) -> list[str]:
        """Peril codes in file order."""
        return list(self.perils)

    @property
    def method_codes(self) -> list[str]:
        """Planting-method codes in file order."""
        return list(self.planting_methods)

    def peril_code(self, label: object) -> str | None:
        """The peril code a field label means (code, name, English name or alias), or ``None``."""
        i = self._peril_labels.get(self._key(label)) if label is not None else None
        return None if i is None else self.peril_codes[i]

    def planting_method_code(self, label: object) -> str | None:
        """The planting-method code a field label means, or ``None``."""
        i = self._method_labels.get(self._key(label)) if label is not None else None
        return None if i is None else self.method_codes[i]

    def coverage(self, code: str) -> Literal["covered", "general_exclusion", "special_exclusion", "not_covered",
                                             "post_harvest"]:
        """How the wording treats a peril code, after overlaps and endorsements (``post_harvest``: covered
        only in the post-harvest window)."""
        if code not in self.perils:
            raise KeyError(f"unknown peril code {code!r}")
        c = int(self._peril_class[self.peril_codes.index(code)])
        return ("covered", "general_exclusion", "special_exclusion", "not_covered", "", "post_harvest")[c]

    def with_endorsements(self, codes: Iterable[str]) -> Wording:
        """The same wording with ``endorsements`` replaced (validated again).

        ``codes`` are names of ``endorsement_options`` (``["programme"]``) or peril codes of
        special exclusions (``["golden_apple_snail"]``).
        """
        data = self.model_dump()
        data["endorsements"] = list(codes)
        return parse_wording(data)

    # ---------------------------------------------------------------- money per hectare
    @property
    def premium_per_ha(self) -> int:
        """Premium per hectare [Rp/ha] (AUTP: 180,000)."""
        return int(policy_premiums([self.sum_insured_per_ha], self.premium.rate)["premium"].iloc[0])

    @property
    def subsidy_per_ha(self) -> int:
        """Government subsidy per hectare [Rp/ha] (AUTP: 144,000)."""
        return int(split_subsidy(self.premium_per_ha, self.premium.subsidy_share)[0])

    @property
    def farmer_share_per_ha(self) -> int:
        """Farmer's share of the premium per hectare [Rp/ha] (AUTP: 36,000)."""
        return self.premium_per_ha - self.subsidy_per_ha


def _labels(entries: dict[str, BaseModel], fields: Sequence[str], key=normalise_label) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, (code, entry) in enumerate(entries.items()):
        for label in (code, *(getattr(entry, f) for f in fields), *entry.aliases):
            out.setdefault(key(label), i)
    return out


def _label_clashes(entries: dict[str, BaseModel], fields: Sequence[str], section: str,
                   key=normalise_label) -> list[tuple[tuple, str]]:
    owner: dict[str, str] = {}
    problems = []
    for code, entry in entries.items():
        labelled = [((section, code), code)] + [((section, code, f), getattr(entry, f)) for f in fields] \
            + [((section, code, "aliases", j), a) for j, a in enumerate(entry.aliases)]
        for loc, label in labelled:
            k = key(label)
            if not k:
                problems.append((loc, "empty label"))
            elif owner.setdefault(k, code) != code:
                problems.append((loc, f"label {label!r} also means {owner[k]!r}; a label must name one entry"))
    return problems


# --------------------------------------------------------------------------- loading


def load_wording(path: str | Path) -> Wording:
    """Load and validate a named-peril policy wording (YAML, loaded safely).

    Raises
    ------
    ConfigError
        Every problem at once, each with the file, YAML line and key path (e.g.
        ``thresholds.comparison``), for a missing or malformed file, unknown keys, bad
        values, or contradictions (a peril both covered and excluded without a recorded
        reading, an endorsement of a general exclusion, a label meaning two perils).

    Examples
    --------
    >>> w = load_wording("configs/autp.yaml")  # doctest: +SKIP
    >>> w.sum_insured_per_ha, w.premium_per_ha, w.peril_code("Wereng Batang Coklat")  # doctest: +SKIP
    (6000000, 180000, 'brown_planthopper')
    """
    doc = load_located_yaml(path, what="policy wording")
    return parse_wording(doc.data, source=doc.path, lines=doc.lines)


def parse_wording(data: Any, *, source: str | Path | None = None, lines: dict[tuple, int] | None = None) -> Wording:
    """Validate a wording mapping (already parsed from YAML); see :func:`load_wording`."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise ConfigError(Problem("policy wording must be a YAML mapping", file=source))
    try:
        return Wording.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            located = (err.get("ctx") or {}).get("error")
            pairs = located.problems if isinstance(located, _Located) else [(tuple(err["loc"]), _msg(err))]
            for loc, msg in pairs:
                problems.append(Problem(msg, file=source, row=_nearest_line(lines, loc), key=_dotted(loc) or None))
        raise ConfigError(problems) from None


# --------------------------------------------------------------------------- premium


def premium(area_ha: float | Sequence[float] | np.ndarray | pd.Series, wording: Wording, *,
            farmer_id: Sequence[str] | np.ndarray | pd.Series | None = None) -> pd.DataFrame:
    """Premium, government subsidy and farmer share per policy [Rp], with the area cap.

    Parameters
    ----------
    area_ha
        Area of each policy [ha] (a scalar is one policy).
    wording
        The policy wording (rate, subsidy share, sum insured per ha, area cap).
    farmer_id
        Optional farmer of each policy: the cap (``max_insured_area_ha``) then applies to
        the farmer's policies together, filled in the order given (register order).
        Without it each policy is capped alone. :func:`adjust` pays claims on exactly
        these insured areas: the area charged premium is the area insured.

    Returns
    -------
    pandas.DataFrame
        ``area_ha, insured_area_ha`` [ha] and ``premium, subsidy, farmer_share`` [Rp,
        int64], one row per policy (index of ``area_ha`` if it is a Series).
        ``premium = round_half_up(insured_area_ha x sum_insured_per_ha x rate)``,
        ``subsidy = round_half_up(premium x subsidy_share)``, ``farmer_share = premium -
        subsidy``, so the two shares always add up to the premium.

    Raises
    ------
    ValueError
        An area is missing, infinite or negative.

    Examples
    --------
    >>> premium([1.0, 0.5], load_wording("configs/autp.yaml"))  # doctest: +SKIP
       area_ha  insured_area_ha  premium  subsidy  farmer_share
    0      1.0              1.0   180000   144000         36000
    1      0.5              0.5    90000    72000         18000
    """
    index = area_ha.index if isinstance(area_ha, pd.Series) else None
    area = np.atleast_1d(np.asarray(area_ha, dtype=np.float64))
    if area.ndim != 1:
        raise ValueError("premium: area_ha must be a scalar or one-dimensional")
    if not np.isfinite(area).all() or (area < 0).any():
        raise ValueError("premium: every area_ha must be a finite number >= 0")
    cap = wording.max_insured_area_ha
    if cap is None:
        insured = area.copy()
    elif farmer_id is None:
        insured = np.minimum(area, cap)
    else:
        farmers = pd.factorize(farmer_id if isinstance(farmer_id, pd.Series) else
                               pd.Series(np.asarray(farmer_id, dtype=object)).astype("str"))[0]
        if len(farmers) != len(area):
            raise ValueError("premium: farmer_id must have one entry per area")
        insured = _fill_caps(area, _micro(area), [(farmers, np.full(len(area), _micro(np.float64(cap))))])
    # the one premium rule (panen.engine.maths.premium) on the capped sum insured, unrounded:
    # round_half_up(insured area × Rp/ha × rate) once
    money = policy_premiums(insured * wording.sum_insured_per_ha, wording.premium.rate,
                            subsidy_share=wording.premium.subsidy_share)
    return pd.DataFrame({"area_ha": area, "insured_area_ha": insured, "premium": money["premium"].to_numpy(),
                         "subsidy": money["subsidy"].to_numpy(), "farmer_share": money["farmer_share"].to_numpy()},
                        index=index)


def policy_amounts(claims: pd.DataFrame, policies: pd.DataFrame, wording: Wording, *,
                   season_start: dt.date | str | np.datetime64, claim_rows: np.ndarray | None = None) -> PolicyAmounts:
    """Roll the plot decisions of :func:`adjust` up to one outcome per policy, for the ledger.

    Parameters
    ----------
    claims
        :func:`adjust`'s decisions (``policy_id, decision, reason, indemnity``).
    policies
        The cover's valid policies (``policy_id, farmer_id, area_ha`` [ha]); every one gets
        an outcome, assessed or not.
    wording
        The policy wording (sum insured per ha, the per-farmer area cap).
    season_start
        The cover's window anchor (its one cohort).
    claim_rows
        Optional row of each claim in ``policies`` (as :func:`adjust` returns with
        ``return_rows=True``); checked against the ids, else the ids are matched.

    Returns
    -------
    PolicyAmounts
        Per policy: ``gross`` = Σ indemnity of its paid plots [Rp]; outcome ``paid`` (gross
        > 0), ``referred`` (nothing paid and at least one claim referred to a person: the
        policy's money is not decided yet), ``declined`` (claims assessed, none paid or
        referred) — ``reason`` = the distinct primary reasons of its unpaid plots,
        ``;``-separated in precedence order — or ``not_assessed`` (no claim: reason
        ``no_assessment``); ``sum_insured`` = round_half_up(insured area ×
        Rp/ha) with the wording's per-farmer area cap (:func:`premium`) — the most the
        policy can be paid in the season.

    References
    ----------
    Kementerian Pertanian, Pedoman Teknis AUTP (Rp 6,000,000 per ha per season, at most
    2 ha per farmer; a plot pays its whole insured area on puso).
    """
    ids = _arrow_text(policies["policy_id"])
    insured = premium(policies["area_ha"].to_numpy(np.float64), wording,
                      farmer_id=policies["farmer_id"])["insured_area_ha"]
    si = round_rupiah(insured.to_numpy(np.float64) * wording.sum_insured_per_ha).astype(np.int64)
    n = len(ids)
    gross = np.zeros(n, np.int64)
    assessed = np.zeros(n, bool)
    referred = np.zeros(n, bool)
    masks = np.zeros(n, np.int64)  # bit i: the policy has a plot declined for REASON_CODES[i]
    if len(claims):
        position = _claim_rows(claims, ids, claim_rows)
        known = position >= 0
        at = position[known]
        np.add.at(gross, at, claims["indemnity"].to_numpy(np.int64)[known])
        assessed[at] = True
        referred[at[(claims["decision"] == "referred").to_numpy(bool)[known]]] = True
        primary = pd.Categorical(claims["reason"], categories=list(REASON_CODES)).codes.astype(np.int64)[known]
        declined_plot = primary > 0  # code 0 is "paid"
        np.bitwise_or.at(masks, at[declined_plot], np.left_shift(1, primary[declined_plot]))
    paid = gross > 0
    outcome = np.where(paid, POLICY_OUTCOMES.index("paid"),
                       np.where(referred, POLICY_OUTCOMES.index("referred"),
                                np.where(assessed, POLICY_OUTCOMES.index("declined"),
                                         POLICY_OUTCOMES.index("not_assessed")))).astype(np.int8)
    # the distinct primary reasons of a policy's declined plots, ";"-joined in precedence
    # order: one text per distinct mask (a handful), gathered as a dictionary array
    masks = np.where(paid, 0, np.where(assessed, masks, -1))
    codes, uniques = pd.factorize(masks)  # hashing: a handful of distinct masks
    texts = ["no_assessment" if m < 0 else ";".join(c for i, c in enumerate(REASON_CODES) if m >> i & 1) or None
             for m in uniques.tolist()]
    reason = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(texts, pa.string()))
    rows = policies.index.to_numpy() if pd.api.types.is_integer_dtype(policies.index.dtype) else None
    return PolicyAmounts(product_id=wording.id, policy_ids=ids, gross=gross, outcome=outcome, reason=reason,
                         cohort=np.datetime64(season_start, "D"), sum_insured=si, rows=rows)


def _claim_rows(claims: pd.DataFrame, ids: pa.Array, rows: np.ndarray | None) -> np.ndarray:
    """Each claim's row in the policies (``ids``), -1 when unknown.

    The rows :func:`adjust` joined are used when they point at the same policy ids
    (checked), else the ids are matched by hashing.
    """
    claim_ids = _arrow_text(claims["policy_id"])
    if rows is not None and len(rows) == len(claims) and (len(rows) == 0 or rows.max() < len(ids)):
        known = rows >= 0
        same = pc.equal(ids.take(pa.array(rows[known])), claim_ids.filter(pa.array(known)))
        if pc.all(same).as_py() is not False:
            return rows
    return pc.fill_null(pc.index_in(claim_ids, value_set=ids), -1).to_numpy(zero_copy_only=False)


def _arrow_text(column: pd.Series) -> pa.Array:
    """A text column as one Arrow string array (no Python objects for arrow-backed columns)."""
    arr = pa.array(column) if not isinstance(column.dtype, pd.CategoricalDtype) else pa.array(column.astype("str"))
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr


def _micro(area: np.ndarray) -> np.ndarray:
    """Areas [ha] as whole micro-hectares (int64)."""
    return np.rint(np.asarray(area, np.float64) * _MICRO_HA).astype(np.int64)


def _fill_caps(area: np.ndarray, area_u: np.ndarray, levels: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Greedy fill of nested caps, in the given row order.

    ``levels`` are ``(group, cap_u)`` pairs from the innermost (policy) to the outermost
    (farmer); groups must nest. Each row takes ``min(area, what its group has left)`` at
    every level in turn. Returns insured areas [ha]: the row's own area where it is not
    cut (exact float), else the micro-hectare remainder.
    """
    take = area_u
    for group, cap_u in levels:
        if len(take) == 0:
            break
        s = pd.Series(take)
        before = s.groupby(group, sort=False).cumsum().to_numpy() - take
        take = np.clip(cap_u - before, 0, take)
    return np.where(take == area_u, area, take / _MICRO_HA)


# --------------------------------------------------------------------------- adjusting


def adjust(assessments: pd.DataFrame, wording: Wording, *, season_start: dt.date | str | np.datetime64,
           season_end: dt.date | str | np.datetime64, policies: pd.DataFrame | None = None,
           return_rows: bool = False) -> pd.DataFrame:
    """Decide every loss assessment under a named-peril wording: paid or declined, and why.

    Parameters
    ----------
    assessments
        Loss assessments (as :func:`panen.datasets.assessments.read_assessments` returns
        them): ``policy_id, plot_id, peril, plot_area_ha`` [ha], ``damage_intensity_pct,
        damaged_area_pct`` [%], ``crop_age_days`` [days after planting, HST],
        ``planting_method``, ``event_date, notice_date``. Peril and planting method may be
        codes, Indonesian or English names or aliases (case and ``_``/``-``/space
        insensitive). Extra columns are ignored; the frame is not modified.
    wording
        The policy wording (:func:`load_wording`).
    season_start, season_end
        The season's first and last dates; cover turns on them at the wording's
        ``cover_period`` times. The cover period when ``cover_period.basis`` is
        ``season``, and the fallback for policies without their own dates.
    policies
        Optional valid policy register of this cover, in register order (``policy_id,
        farmer_id`` and optionally ``area_ha`` [ha]; ``cover_start, cover_end`` for a
        ``policy`` cover period — datetime64 instants as
        :func:`~panen.engine.settlement.policies.validate_policies` gives them, or text
        and dates, a date alone taking the wording's time of day; ``harvest_date`` for a
        ``post_harvest`` cover). Given it, unknown policies are declined, each policy's
        insured area is its ``area_ha`` with the farmer cap filled in register order (as
        :func:`premium`), and ``farmer_id`` is output.
    return_rows
        Also return each claim's row in ``policies`` (-1: unknown policy; ``None`` without
        ``policies``), for :func:`policy_amounts`.

    Returns
    -------
    pandas.DataFrame
        One row per assessment, in input order and with its index: the columns of
        :data:`CLAIM_COLUMNS` (``farmer_id`` only with ``policies``). ``peril_code``
        and ``planting_method_code`` are the wording's codes (missing when unknown);
        ``insured_area_ha`` [ha] is the area the claim is insured for (after the caps, for
        claims that reach them; otherwise the plot area limited by the policy's area and
        the farmer cap); ``decision`` is ``paid``, ``declined`` or ``referred`` (the peril
        name is unknown and no other gate failed: a person must resolve it); ``reason`` the
        primary reason (``paid`` or one of :data:`REASONS`, an ordered categorical); ``reasons``
        every failed gate, ``;``-separated in precedence order (empty for a clean
        payment); ``sum_insured`` and ``indemnity`` are int64 rupiah, ``indemnity`` is
        ``sum_insured`` when paid, else 0.

    Raises
    ------
    InputError
        A required column is missing, or ``policies`` lacks a column it needs or repeats
        a policy id.
    ConfigError
        The wording's cover period is per policy but no ``policies`` were given.

    References
    ----------
    Jasindo AUTP policy wording (OJK); Kementerian Pertanian, Pedoman Teknis AUTP.
    """
    source = assessments.attrs.get("source", "<assessments>")
    missing = [c for c in ASSESSMENT_COLUMNS if c not in assessments.columns]
    if missing:
        raise InputError([Problem(f"required column {c!r} is missing", file=source, column=c) for c in missing])
    n = len(assessments)
    season = (_day(season_start), _day(season_end))
    if season[1] < season[0]:
        raise ValueError(f"adjust: season_end {season_end} is before season_start {season_start}")

    policy_id, policy_blank = _text(assessments["policy_id"])
    plot_id, plot_blank = _text(assessments["plot_id"])
    peril_text, _ = _text(assessments["peril"])
    method_text, _ = _text(assessments["planting_method"])
    area = _numbers(assessments["plot_area_ha"])
    intensity = _numbers(assessments["damage_intensity_pct"])
    damaged = _numbers(assessments["damaged_area_pct"])
    age = _numbers(assessments["crop_age_days"])
    event_s, event_timed, event_nat = _instants(assessments["event_date"])
    notice_s, notice_timed, notice_nat = _instants(assessments["notice_date"])
    event, notice = event_s // _DAY, notice_s // _DAY  # calendar days

    # ---- codes: peril and planting method, through their distinct labels only
    peril_idx = _lookup(peril_text, wording.peril_code, wording.peril_codes)
    method_idx = _lookup(method_text, wording.planting_method_code, wording.method_codes)
    peril_class = wording._peril_class[peril_idx]  # index -1 -> the _UNKNOWN sentinel
    min_age = np.append(np.array([wording.min_crop_age_days[m] for m in wording.method_codes], np.float64),
                        np.nan)[method_idx]

    # ---- the policy register
    policy_code, policy_uniques = pd.factorize(policy_id, sort=True)
    farmer_col = None
    policy_area = np.full(n, np.inf)  # the policy's insured area [ha] (premium's, in register order)
    t0, t1 = wording.cover_period.times
    cover_start = np.full(n, season[0] * _DAY + t0, np.int64)  # [s], local time
    cover_end = np.full(n, season[1] * _DAY + t1, np.int64)
    harvest = np.full(n, _NAT, np.int64)  # [day]
    unknown_policy = np.zeros(n, bool)
    at = None
    if policies is not None:
        at, farmer_col, farmer_code, policy_area, starts, ends, harvest = _join_policies(
            policies, policy_code, policy_uniques, wording)
        unknown_policy = (at < 0) & ~policy_blank
        cover_start = np.where(starts == _NAT, cover_start, starts)
        cover_end = np.where(ends == _NAT, cover_end, ends)
    else:
        farmer_code = policy_code

    # ---- the gates (True = failed)
    dates_ok = ~event_nat & ~notice_nat
    timed = event_timed & notice_timed
    invalid = (policy_blank | plot_blank | ~(area > 0) | ~_in_percent(intensity) | ~_in_percent(damaged)
               | ~(age >= 0) | ~dates_ok)
    delay_days = np.where(dates_ok, notice - np.where(dates_ok, event, 0), 0)
    delay_s = np.where(dates_ok, notice_s - np.where(dates_ok, event_s, 0), 0)
    invalid |= np.where(timed, delay_s, delay_days) < 0
    if wording.notice_days is not None:  # the wording counts calendar days; clock times do not matter
        late = delay_days > wording.notice_days
    else:  # hours between two clock times; with a date only, whole days: 72 h -> 3 days
        late = np.where(timed, delay_s > wording.notice_hours * 3600,
                        delay_days > -(-wording.notice_hours // 24))
    ge = wording.thresholds.comparison == ">="
    t_int, t_area = wording.thresholds.damage_intensity_pct, wording.thresholds.damaged_area_pct
    reach = ((intensity >= t_int) & (damaged >= t_area)) if ge else ((intensity > t_int) & (damaged > t_area))
    # The cover period: an event with a clock time is inside when start <= time <= end
    # (both bounds inclusive); an event given as a date only is inside when its day
    # overlaps the period at all, so a date-only event on the start or end day (where
    # cover turns at noon) is covered: the day cannot be split, and the assessment form
    # records the date, not the hour (read in favour of the insured).
    day0 = np.where(event_nat, 0, event) * _DAY
    in_period = np.where(event_timed, (event_s >= cover_start) & (event_s <= cover_end),
                         (day0 < cover_end) & (day0 + _DAY > cover_start))
    standing = in_period
    if wording.post_harvest is not None:
        # standing-crop cover ends with the harvest day; post-harvest perils are covered
        # from the harvest day to harvest + days (calendar days, inclusive)
        has_harvest = harvest != _NAT
        standing = in_period & (~has_harvest | (event <= harvest))
        after = wording._post_harvest[peril_idx] & has_harvest & (event >= harvest) \
            & (event <= harvest + wording.post_harvest.days)
        standing = np.where(peril_class == _POST_HARVEST, after, standing | after)
    gates = {
        "invalid_assessment": invalid,
        "unknown_policy": unknown_policy,
        "unknown_peril": peril_class == _UNKNOWN,
        "peril_excluded": peril_class == _GENERAL,
        "peril_excluded_special": peril_class == _SPECIAL,
        "peril_not_covered": peril_class == _NOT_COVERED,
        "outside_cover_period": ~event_nat & ~standing,
        "late_notice": dates_ok & late,
        "unknown_planting_method": method_idx < 0,
        "crop_too_young": (method_idx >= 0) & ~(age >= min_age),
        "below_threshold": ~reach,
    }
    bits = np.zeros(n, np.int32)
    for name, failed in gates.items():
        bits |= failed.astype(np.int32) << _GATE[name]

    # ---- settle payable claims in claim order: one payment per plot, then the area caps
    plot_area_cap = np.minimum(area, policy_area)
    if wording.max_insured_area_ha is not None:
        plot_area_cap = np.minimum(plot_area_cap, wording.max_insured_area_ha)
    event, notice = event_s, notice_s  # claim order by instant
    insured = np.where(area > 0, plot_area_cap, np.nan)
    payable = np.flatnonzero(bits == 0)
    paid = np.zeros(n, bool)
    if payable.size:
        plot_code = pd.factorize(plot_id, sort=True)[0]
        peril_rank = np.argsort(np.argsort(np.array(wording.peril_codes)))[peril_idx[payable]]
        order = payable[np.lexsort((payable, peril_rank, plot_code[payable], policy_code[payable],
                                    notice[payable], event[payable]))]
        plot_key = policy_code[order].astype(np.int64) * (int(plot_code.max()) + 1) + plot_code[order]
        first = np.zeros(order.size, bool)
        first[np.unique(plot_key, return_index=True)[1]] = True
        bits[order[~first]] |= 1 << _GATE["already_paid"]
        claims = order[first]
        a = area[claims]
        a_u = _micro(a)
        levels = []
        own = policy_area[claims]
        if np.isfinite(own).any():  # the policy's insured area: what premium was charged on
            limited = np.isfinite(own)
            levels.append((policy_code[claims], np.where(limited, _micro(np.where(limited, own, 0)), _NO_CAP)))
        if wording.max_insured_area_ha is not None and not np.isfinite(own).all():
            # policies without a register area: the farmer cap, filled in claim order
            levels.append((farmer_code[claims], np.where(np.isfinite(own), _NO_CAP,
                                                         _micro(np.float64(wording.max_insured_area_ha)))))
        got = _fill_caps(a, a_u, levels)
        insured[claims] = got
        cut = got < a
        bits[claims[cut]] |= 1 << _GATE["area_cap"]
        paid[claims[got > 0]] = True

    # ---- money
    finite = np.isfinite(insured)
    sum_insured = round_rupiah(np.where(finite, insured, 0.0) * wording.sum_insured_per_ha)
    if wording.payout_basis == "threshold":
        indemnity = np.where(paid, sum_insured, 0)
    else:  # loss % x sum insured of the affected area, rounded once
        loss = np.where(paid, intensity * damaged, 0.0) / 10_000
        indemnity = round_rupiah(np.where(finite, insured, 0.0) * wording.sum_insured_per_ha * loss)

    # ---- reasons: primary from the lowest set bit, the audit list from the distinct bit sets.
    # A claim whose only failed gates are referral reasons is referred; otherwise its primary
    # reason is the first failed gate that is not a referral reason (it fails whatever the peril).
    refer_bits = sum(1 << _GATE[r] for r in REFERRAL_REASONS)
    referred = ~paid & (bits != 0) & ((bits & ~refer_bits) == 0)
    decide = np.where(referred, bits, bits & ~refer_bits)
    low = decide & -decide
    primary = np.where(paid, 0, np.log2(np.maximum(low, 1)).astype(np.int64) + 1)
    patterns, inverse = np.unique(bits, return_inverse=True)
    names = list(REASONS)
    texts = [";".join(names[i] for i in range(len(names)) if p >> i & 1) for p in patterns]
    reasons = pd.Categorical.from_codes(inverse.reshape(-1), categories=pd.Index(texts, dtype="str"))

    index = assessments.index
    out: dict[str, Any] = {"policy_id": policy_id.array}
    if farmer_col is not None:
        out["farmer_id"] = farmer_col
    out.update({
        "plot_id": plot_id.array,
        "peril": peril_text.array,
        "peril_code": pd.Categorical.from_codes(peril_idx, categories=pd.Index(wording.peril_codes, dtype="str")),
        "plot_area_ha": area,
        "insured_area_ha": insured,
        "damage_intensity_pct": intensity,
        "damaged_area_pct": damaged,
        "crop_age_days": _keep_numbers(assessments["crop_age_days"], age),
        "planting_method": method_text.array,
        "planting_method_code": pd.Categorical.from_codes(method_idx,
                                                          categories=pd.Index(wording.method_codes, dtype="str")),
        "event_date": _as_datetime(event_s, event_nat),
        "notice_date": _as_datetime(notice_s, notice_nat),
        "decision": pd.Categorical.from_codes(np.where(paid, 0, np.where(referred, 2, 1)),
                                              categories=pd.Index(DECISIONS, dtype="str")),
        "reason": pd.Categorical.from_codes(primary, categories=pd.Index(REASON_CODES, dtype="str"), ordered=True),
        "reasons": reasons,
        "sum_insured": sum_insured.astype(np.int64),
        "indemnity": indemnity.astype(np.int64),
    })
    frame = pd.DataFrame(out, index=index)
    if return_rows:  # each claim's row in ``policies`` (-1: unknown), for policy_amounts
        return frame, (np.asarray(at, np.int64) if at is not None else None)
    return frame


def _day(value: dt.date | str | np.datetime64) -> int:
    return int(np.datetime64(pd.Timestamp(value).date(), "D").astype(np.int64))


def _text(col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Column as text (a pandas ``str`` Series, index dropped) and its blank mask."""
    s = col.reset_index(drop=True)
    if not pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        s = s.astype("str")
    blank = (s.isna() | (s.str.strip() == "")).to_numpy(dtype=bool, na_value=True)
    return s, blank


def _numbers(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _keep_numbers(col: pd.Series, values: np.ndarray) -> np.ndarray:
    """Whole-number column as int64 when it has no gaps, else float64."""
    if pd.api.types.is_integer_dtype(col.dtype) and np.isfinite(values).all():
        return values.astype(np.int64)
    return values


def _instants(col: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 seconds since 1970-01-01 (local time as written), time-given mask, missing mask.

    A datetime64 column (as :func:`~panen.datasets.assessments.read_assessments` gives)
    holds a date when the value is at exactly 00:00:00, else a date and clock time.
    Text is read as ISO dates, optionally with a clock time (``2024-01-10 14:30``); a
    ``datetime.date`` is a date.
    """
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        stamps = col.dt.tz_localize(None) if getattr(col.dt, "tz", None) is not None else col
        secs = stamps.to_numpy(dtype="datetime64[s]")
        nat = np.isnat(secs)
        v = np.where(nat, 0, secs.astype(np.int64))
        return v, ~nat & (v % _DAY != 0), nat
    try:  # text (the usual case): straight to Arrow
        text = pa.chunked_array([pa.array(col, type=pa.string(), from_pandas=True)])
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # dates, timestamps, mixed objects
        text = pa.chunked_array([pa.array(
            [None if x is None or (not isinstance(x, str) and pd.isna(x)) else
             x.isoformat() if isinstance(x, (dt.date, pd.Timestamp)) else str(x) for x in col.tolist()], pa.string())])
    v, has_time, missing, bad = datetime_column(text, str(col.name), "<frame>")
    nat = missing | bad
    return np.where(nat, 0, v), has_time & ~nat, nat


def _as_datetime(secs: np.ndarray, nat: np.ndarray) -> np.ndarray:
    d = np.where(nat, 0, secs).astype("datetime64[s]")
    d[nat] = np.datetime64("NaT")
    return d


def _in_percent(x: np.ndarray) -> np.ndarray:
    return (x >= 0) & (x <= 100)


def _lookup(text: pd.Series, resolve, codes: list[str]) -> np.ndarray:
    """Per row, the index of the code its label resolves to (-1 if none), resolving each distinct label once."""
    labels, uniques = pd.factorize(text)
    position = {c: i for i, c in enumerate(codes)}
    table = np.array([position.get(resolve(u), -1) for u in uniques] + [-1], np.int64)
    return table[labels]


def _join_policies(policies: pd.DataFrame, policy_code: np.ndarray, policy_uniques: pd.Index, wording: Wording):
    """Per assessment: row in ``policies`` (-1 unknown), farmer id and code, the policy's insured
    area [ha], its own cover start and end [s] and harvest day (``_NAT`` where not given)."""
    source = policies.attrs.get("source", "<policies>")
    need = ["policy_id", "farmer_id"]
    missing = [c for c in need if c not in policies.columns]
    if missing:
        raise InputError([Problem(f"policy register column {c!r} is missing (the adjuster needs it)",
                                  file=source, column=c) for c in missing])
    ids, _ = _text(policies["policy_id"])
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)[:20]
        raise InputError([Problem(f"policy_id {ids.iloc[r]!r} occurs more than once", file=source, row=int(r) + 1,
                                  column="policy_id") for r in rows])
    # each distinct policy id is looked up once; per-policy arrays carry a sentinel last
    # entry, so the index -1 (unknown policy) picks it
    at = np.append(pd.Index(ids).get_indexer(policy_uniques), -1)[policy_code]
    m = len(policies)
    farmers, _ = _text(policies["farmer_id"])
    f_code, f_uniques = pd.factorize(farmers)
    f_code = np.where(f_code < 0, len(f_uniques) + np.arange(m), f_code)  # no farmer id: its own farmer
    farmer_code = np.append(f_code, -1)[at]
    farmer = farmers.array.take(at, allow_fill=True)
    own = _numbers(policies["area_ha"]) if "area_ha" in policies.columns else np.full(m, np.nan)
    insured = _insured_areas(own, f_code, wording)
    area = np.append(insured, np.inf)[at]
    t0, t1 = wording.cover_period.times
    starts = ends = np.full(len(at), _NAT, np.int64)
    if wording.cover_period.basis == "policy":
        starts = np.append(_policy_instants(policies, "cover_start", t0), _NAT)[at]
        ends = np.append(_policy_instants(policies, "cover_end", t1), _NAT)[at]
    harvest = np.full(len(at), _NAT, np.int64)
    if wording.post_harvest is not None and "harvest_date" in policies.columns:
        h = _policy_instants(policies, "harvest_date", 0)
        harvest = np.append(np.where(h == _NAT, _NAT, h // _DAY), _NAT)[at]
    return at, farmer, farmer_code, area, starts, ends, harvest


def _policy_instants(policies: pd.DataFrame, column: str, time_of_day: int) -> np.ndarray:
    """A register date(-time) column as seconds (``_NAT`` where not given).

    Validated registers carry instants (datetime64: the time of day already applied);
    text or ``datetime.date`` values without a clock time take ``time_of_day`` [s].
    """
    if column not in policies.columns:
        return np.full(len(policies), _NAT, np.int64)
    col = policies[column]
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        secs = col.to_numpy(dtype="datetime64[s]")
        nat = np.isnat(secs)
        return np.where(nat, _NAT, secs.astype(np.int64))
    v, timed, nat = _instants(col)
    return np.where(nat, _NAT, np.where(timed, v, v + time_of_day))


def _insured_areas(area: np.ndarray, farmer_code: np.ndarray, wording: Wording) -> np.ndarray:
    """Each policy's insured area [ha]: its area, the farmer cap filled in register order.

    The same fill as :func:`premium`: the area premium was charged on is the area that is
    insured, and claims never use more of it. A policy without an area is ``inf`` (its
    plots are then capped per farmer in claim order).
    """
    known = np.isfinite(area) & (area >= 0)
    out = np.where(known, area, np.inf)
    cap = wording.max_insured_area_ha
    if cap is not None and known.any():
        k = np.flatnonzero(known)
        out[k] = _fill_caps(area[k], _micro(area[k]), [(farmer_code[k], np.full(k.size, _micro(np.float64(cap))))])
    return out


# --------------------------------------------------------------------------- writing


def write_claims(claims: pd.DataFrame, path: str | Path) -> Path:
    """Write the claims table atomically (``autp_claims.csv`` or ``.parquet``).

    Categorical columns are written as text, dates as ISO dates (``2024-01-10``), money
    as integers; see :func:`panen.engine.settlement.ledger.write_table_atomic`.
    """
    t = pa.Table.from_pandas(claims, preserve_index=False)
    columns = []
    for field, col in zip(t.schema, t.columns):
        if pa.types.is_dictionary(field.type):
            col = pc.cast(col, pa.string())
        elif pa.types.is_timestamp(field.type):
            # dates stay dates; a column holding a clock time is written as local ISO date-times
            secs = pc.fill_null(pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64()), 0)
            if (secs.to_numpy(zero_copy_only=False) % _DAY != 0).any():
                col = pc.strftime(pc.cast(col, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S")
            else:
                col = pc.cast(col, pa.date32())
        columns.append(col)
    return write_table_atomic(pa.table(columns, names=t.column_names), path)
