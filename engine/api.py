"""The small engine API that trigger plugins build on.

A trigger plugin is a class registered in the ``panen.triggers`` entry-point group. It
declares

* ``name`` — the value of ``trigger:`` in a term sheet;
* ``Params`` — a pydantic model of its term sheet (``extra="forbid"``; constraints are
  checked when the config is loaded, before any data is read);
* ``inputs`` — which run inputs it needs (``"rainfall"``, ``"ndvi"``, ``"yields"``, ...);
  gridded inputs reach it already reduced to district series by :mod:`panen.engine.maths.zonal`;

and implements :meth:`Trigger.evaluate`, a pure function from :class:`TriggerInputs` to a
:class:`TriggerResult`. The plugin does no I/O and stays lazy on dask input; the engine
decides when to compute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ProductParams",
    "Season",
    "Trigger",
    "TriggerInputs",
    "TriggerResult",
]


class ProductParams(BaseModel):
    """Keys every product term sheet has; plugins subclass this for their own keys.

    ``terms`` is validated by the engine (:mod:`panen.engine.maths.terms`), not by the plugin.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="product id, joined to the policy register's product_id")
    trigger: str = Field(description="registered trigger plugin name")
    sum_insured_per_ha: int = Field(gt=0, description="sum insured [Rp/ha] when the register gives none")
    anchor: Literal["season_start", "sowing_date"] = Field(
        "season_start", description="what day 0 of the season windows is"
    )
    terms: dict[str, Any] | None = Field(None, description="policy terms (deductible, limit, share)")


@dataclass(frozen=True)
class Season:
    """The season being settled.

    Parameters
    ----------
    id
        Season label, e.g. ``"2024-MT1"``.
    start, end
        First and last day of the season [date].
    year
        Harvest year (for yields); defaults to the year of ``end``.
    """

    id: str
    start: np.datetime64
    end: np.datetime64
    year: int


@dataclass(frozen=True)
class TriggerInputs:
    """What the engine hands a trigger.

    Parameters
    ----------
    season
        The season being settled.
    cohorts
        ``datetime64[D]`` window anchors to evaluate: the season start for
        ``anchor: season_start``, or every distinct sowing date in the register.
    district_ids
        District keys the result must be indexed by (order preserved).
    series
        District series per gridded input name: an ``xr.Dataset`` with ``mean`` and
        ``valid_fraction`` on dims ``(time, district)``; ``mean.attrs["units"]`` is set
        (``mm/day`` for daily rainfall). Possibly dask-backed.
    tables
        Tabular inputs by name (e.g. ``yields``) as DataFrames.
    """

    season: Season
    cohorts: np.ndarray
    district_ids: np.ndarray
    series: dict[str, xr.Dataset] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerResult:
    """A trigger's answer, possibly lazy.

    ``data`` is an ``xr.Dataset`` on dims ``(district, cohort)`` with

    * ``payout_rate`` [fraction of sum insured, 0..1] — NaN where not assessable;
    * ``flagged`` (bool) — True where too little valid data was available;

    and, per phase on dims ``(phase, district, cohort)``, ``index_value`` [index units],
    ``phase_rate`` [fraction] and ``valid_fraction`` [fraction, 0..1] for the
    ``district_index`` output and the audit trail.
    """

    data: xr.Dataset


def _type_name(annotation: Any) -> str:
    """A short readable type: ``float``, ``Literal['below', 'above']``, ``Phase | None``."""
    import re

    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    return re.sub(r"\b(?:[A-Za-z_][A-Za-z0-9_]*\.)+([A-Za-z_][A-Za-z0-9_]*)", r"\1", text)


class Trigger:
    """Base class of trigger plugins (see the module docstring for the contract)."""

    name: ClassVar[str]
    Params: ClassVar[type[ProductParams]]
    inputs: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def evaluate(self, params: ProductParams, inputs: TriggerInputs) -> TriggerResult:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def parameters(cls) -> list[tuple[str, str, str]]:
        """``(name, type, description)`` of every term-sheet key, for ``panen triggers``."""
        rows = []
        for name, f in cls.Params.model_fields.items():
            ann = _type_name(f.annotation)
            desc = f.description or ""
            if not f.is_required():
                desc = f"{desc} (default {f.default!r})".strip()
            rows.append((name, ann, desc))
        return rows
