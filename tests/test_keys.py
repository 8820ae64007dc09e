"""String-key helpers: the same answers as plain Python, missing keys kept missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panen.engine.infra.keys import as_text, is_in, positions


@pytest.mark.parametrize("dtype", ["category", "str", "object"])
def test_as_text_keeps_the_index_and_missing_and_optionally_blanks(dtype):
    s = pd.Series(["3201", None, "  ", "3202"], index=[10, 7, 3, 99]).astype(dtype)
    out = as_text(s)
    assert list(out.index) == [10, 7, 3, 99] and str(out.dtype) == "str"
    assert out.tolist()[0] == "3201" and pd.isna(out[7]) and out[3] == "  " and out[99] == "3202"
    assert as_text(s, blank_is_missing=True).isna().tolist() == [False, True, True, False]


def test_as_text_of_numbers():
    assert as_text(pd.Series([3201, 3202])).tolist() == ["3201", "3202"]


def test_is_in_and_positions_match_python():
    values = pd.Series(["F1", "F9", None, "F3", "F1"], dtype="str")
    cands = [pd.Series(["F3", None], dtype="str"), pd.Index(["F1", "F2"])]
    expected = [v is not None and not pd.isna(v) and v in {"F3", "F1", "F2"} for v in values]
    assert is_in(values, cands).tolist() == expected
    keys = pd.Index(["F3", "F1", "F7"])
    assert positions(values, keys).tolist() == [1, -1, -1, 0, 1]
    assert positions(values, keys).dtype == np.int64
    assert is_in(values, []).tolist() == [False] * 5
