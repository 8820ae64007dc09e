"""Text labels as people type them: one normalisation for matching.

Field reports spell the same peril or planting method many ways (``Wereng_Batang  Coklat``,
``wereng batang coklat``); labels are compared after :func:`normalise_label`.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalise_label"]

_SEPARATORS = re.compile(r"[\s_\-\u2010-\u2015]+")


def normalise_label(text: object) -> str:
    """Normalise a peril or planting-method label for matching.

    Case-folded, accents (diacritics) removed (``é`` reads ``e``: Unicode NFKD without
    combining marks, which also unifies full-width and compatibility forms), surrounding
    space removed, and every run of spaces (any Unicode space, e.g. a no-break space),
    ``_``, ``-`` and Unicode dashes made one space, so ``"Wereng_Batang  Coklat"`` matches
    ``"wereng batang coklat"``.

    >>> normalise_label("  Brown_Planthopper ")
    'brown planthopper'
    >>> normalise_label("Blas\u00a0Léher")
    'blas leher'
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", text).strip().casefold()
