"""Text labels as people type them: one normalisation for matching.

Field reports spell the same peril or planting method many ways (``Wereng_Batang  Coklat``,
``wereng batang coklat``); labels are compared after :func:`normalise_label`.
"""

from __future__ import annotations

import re

__all__ = ["normalise_label"]

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_label(text: object) -> str:
    """Normalise a peril or planting-method label for matching.

    Case-folded, surrounding space removed, and every run of spaces, ``_`` and ``-``
    made one space, so ``"Wereng_Batang  Coklat"`` matches ``"wereng batang coklat"``.

    >>> normalise_label("  Brown_Planthopper ")
    'brown planthopper'
    """
    return _SEPARATORS.sub(" ", str(text)).strip().casefold()
