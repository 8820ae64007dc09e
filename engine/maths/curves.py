"""Payout curves: map an index value to a payout rate in [0, 1].

These are the shared curves of index products (World Bank 2011, *Weather Index Insurance
for Agriculture*; Saskatchewan Crop Insurance rainfall schedule): a linear
tick contract between strike and exit, a stepped schedule of index bands, and a binary
(all-or-nothing) trigger, each for a deficit (``below``) or excess (``above``) cover.
They are pure ufunc-style functions: they work elementwise on numpy or dask arrays (and
on xarray objects through ``xr.apply_ufunc`` or directly), keep shapes, never mutate
their input, and map NaN to NaN (no payout on missing data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Direction = Literal["below", "above"]


def linear_rate(index, strike: float, exit: float, direction: Direction = "below"):
    """Linear (tick) payout rate between strike and exit.

    ``below`` (deficit cover, ``exit < strike``): rate = clip((strike − I) / (strike − exit), 0, 1).
    ``above`` (excess cover, ``exit > strike``): rate = clip((I − strike) / (exit − strike), 0, 1).
    The tick is ``liability / |strike − exit|`` per index unit.

    Parameters
    ----------
    index
        Index values [index units, e.g. mm]; NaN means not assessable.
    strike, exit
        Strike and exit [index units].
    direction
        ``"below"`` pays as the index falls under the strike, ``"above"`` as it rises over it.

    Returns
    -------
    Payout rate [fraction of the phase liability, 0..1], NaN where the index is NaN.

    References
    ----------
    World Bank (2011), *Weather Index Insurance for Agriculture*, tick-and-exit contracts.

    Examples
    --------
    Strike 100 mm, exit 50 mm, liability 50,000: 90 mm pays 0.2 × 50,000 = 10,000.

    >>> float(linear_rate(90.0, 100.0, 50.0))
    0.2
    >>> [float(linear_rate(x, 100.0, 50.0)) for x in (50.0, 20.0, 100.0, 130.0)]
    [1.0, 1.0, 0.0, 0.0]
    """
    if direction == "below":
        raw = (strike - index) / (strike - exit)
    elif direction == "above":
        raw = (index - strike) / (exit - strike)
    else:
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")
    return np.clip(raw, 0.0, 1.0)


def binary_rate(index, strike: float, direction: Direction = "below"):
    """All-or-nothing payout: 1 when the index is strictly beyond the strike, else 0.

    ``below`` pays when I < strike; ``above`` pays when I > strike (an index exactly at the
    strike does not pay, as with the linear curve). NaN stays NaN.

    >>> [float(binary_rate(x, 100.0)) for x in (99.9, 100.0, 120.0)]
    [1.0, 0.0, 0.0]
    """
    hit = (index < strike) if direction == "below" else (index > strike)
    return np.where(np.isnan(index), np.nan, np.where(hit, 1.0, 0.0))


def step_rate(index, lower: Sequence[float], upper: Sequence[float], rates: Sequence[float]):
    """Stepped schedule: the rate of the band ``lower <= I < upper`` that holds the index.

    Bands must not overlap (checked when the term sheet is loaded); an index in no band pays
    0. Use ``-inf``/``inf`` for open-ended bands.

    Parameters
    ----------
    index
        Index values [index units]; NaN stays NaN.
    lower, upper, rates
        Band edges [index units] and the band's payout rate [fraction, 0..1].

    References
    ----------
    Saskatchewan forage rainfall insurance schedule: ≥ 80 % of normal pays 0; 70–72 % pays
    17.5 %; 50–52 % pays 55 %; < 32 % pays 100 % (Saskatchewan Crop Insurance Corporation,
    rainfall insurance schedule).

    >>> float(step_rate(71.0, [-np.inf, 70, 80], [32, 72, np.inf], [1.0, 0.175, 0.0]))
    0.175
    """
    index = np.asarray(index) if not hasattr(index, "dtype") else index
    out = np.zeros(np.shape(index), dtype=float) if isinstance(index, (np.ndarray, np.generic)) else index * 0.0
    for lo, hi, r in zip(lower, upper, rates):
        out = np.where((index >= lo) & (index < hi), r, out)
    return np.where(np.isnan(index), np.nan, out)
