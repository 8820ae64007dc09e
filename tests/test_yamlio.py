"""The one located-YAML loader: duplicate keys, non-finite numbers, impossible dates and unbounded documents refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from panen.engine.errors import ConfigError
from panen.engine.infra.yamlio import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_NODES, load_located_yaml

#: 9 levels of 9 aliases: 342 bytes standing for 9**9 (387 million) strings.
BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
) + "\n"


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_located_yaml(path)
    return [str(p) for p in exc.value.problems]


# --------------------------------------------------------------------------- duplicate keys
def test_every_duplicate_key_is_listed_with_both_lines(tmp_path):
    p = write(tmp_path, """\
        season: {id: s, start: 2023-11-01, end: 2024-03-31}
        products:
          - id: rain
            strike: 12
            sum_insured_per_ha: 6000000
            strike: 14
            sum_insured_per_ha: 1
        season: {id: t}
        """)
    assert problems(p) == [
        f"{p}, line 6, products[0].strike: duplicate key 'strike' (first at line 4)",
        f"{p}, line 7, products[0].sum_insured_per_ha: duplicate key 'sum_insured_per_ha' (first at line 5)",
        f"{p}, line 8, season: duplicate key 'season' (first at line 1)",
    ]


@pytest.mark.parametrize("first, second", [("1", "1.0"), ("true", "yes"), ("'a'", "a"), ("0x10", "16")])
def test_keys_that_yaml_reads_as_the_same_value_are_duplicates(tmp_path, first, second):
    p = write(tmp_path, f"m:\n  {first}: x\n  {second}: y\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}, line 3, m") and "duplicate key" in msg and "(first at line 2)" in msg


def test_a_duplicate_in_a_flow_mapping_is_found(tmp_path):
    p = write(tmp_path, "phases:\n  - {name: a, strike: 1, exit: 2, strike: 3}\n")
    assert problems(p) == [f"{p}, line 2, phases[0].strike: duplicate key 'strike' (first at line 2)"]


def test_a_key_beside_a_merge_key_overrides_the_merged_value(tmp_path):
    p = write(tmp_path, """\
        base: &base {strike: 150, exit: 50}
        phase:
          <<: *base
          exit: 80
        """)
    doc = load_located_yaml(p)
    assert doc.data["phase"] == {"strike": 150, "exit": 80}
    assert doc.lines[("phase", "exit")] == 4 and doc.lines[("phase", "strike")] == 1  # merged: the anchor's line


def test_a_second_merge_key_is_a_duplicate(tmp_path):
    p = write(tmp_path, "a: &a {x: 1}\nb: &b {x: 2}\nc:\n  <<: *a\n  <<: *b\n")
    assert problems(p) == [f"{p}, line 5, c.<<: duplicate key '<<' (first at line 4)"]


def test_a_duplicate_inside_an_anchor_is_reported_once(tmp_path):
    p = write(tmp_path, "a: &a {x: 1, x: 2}\nb: *a\nc: [*a, *a]\n")
    assert problems(p) == [f"{p}, line 1, a.x: duplicate key 'x' (first at line 1)"]


# --------------------------------------------------------------------------- numbers and dates
@pytest.mark.parametrize("text", [".inf", "-.inf", "+.INF", ".nan", ".NaN", "1.0e+999", "-2.5e+400", "!!float nan"])
def test_non_finite_numbers_are_refused_with_line_and_key(tmp_path, text):
    p = write(tmp_path, f"products:\n  - id: rain\n    exit: {text}\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}, line 3, products[0].exit: not a finite number (")
    assert "leaving the key out" in msg


def test_non_finite_numbers_are_all_listed_once_each(tmp_path):
    p = write(tmp_path, "a: &n .nan\nb: *n\nc: [.inf, 1.5, -.inf]\n")
    assert [m.split(": not")[0] for m in problems(p)] == [f"{p}, line 1, a", f"{p}, line 3, c[0]",
                                                          f"{p}, line 3, c[2]"]


@pytest.mark.parametrize("text", ["9223372036854775808", "-9223372036854775808", "1" + "0" * 5000])
def test_integers_beyond_64_bits_are_refused(tmp_path, text):
    p = write(tmp_path, f"sum_insured_per_ha: {text}\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}, line 1, sum_insured_per_ha: integer ") and "out of range" in msg
    assert len(msg) < 300  # a 5000-digit number is not echoed whole


def test_the_largest_64_bit_integer_and_finite_floats_load(tmp_path):
    p = write(tmp_path, "a: 9223372036854775807\nb: 1.7e+308\nc: -0.0\nd: '.inf'\n")
    assert load_located_yaml(p).data == {"a": 2**63 - 1, "b": 1.7e308, "c": 0.0, "d": ".inf"}


@pytest.mark.parametrize("text, why", [("2023-02-30", "day is out of range"), ("2024-13-01", "month must be in"),
                                       ("2023-02-29", "day is out of range"), ("2024-01-01 25:00:00", "hour")])
def test_impossible_dates_are_located_errors_not_tracebacks(tmp_path, text, why):
    p = write(tmp_path, f"season:\n  id: s\n  start: {text}\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}, line 3, season.start: not a valid date: '{text}' (") and why in msg


def test_duplicates_numbers_and_dates_are_listed_together(tmp_path):
    p = write(tmp_path, "a: .inf\nb: 2023-02-30\nc: 1\nc: 2\n")
    assert [m.split(": ")[0] for m in problems(p)] == [f"{p}, line 1, a", f"{p}, line 2, b", f"{p}, line 4, c"]


# --------------------------------------------------------------------------- bounds
def test_billion_laughs_is_refused_at_the_alias_that_crosses_the_bound(tmp_path):
    assert len(BILLION_LAUGHS) < 2000
    p = write(tmp_path, BILLION_LAUGHS)
    (msg,) = problems(p)
    assert f"holds more than {MAX_NODES:,} values" in msg and "alias" in msg
    assert msg.startswith(f"{p}, line ")


def test_billion_laughs_is_refused_fast_in_bounded_memory(tmp_path):
    """In a fresh process: peak memory and time stay small (the old loader took 5.6 GB)."""
    p = write(tmp_path, BILLION_LAUGHS)
    code = textwrap.dedent(f"""
        import json, resource, time
        from panen.engine.errors import ConfigError
        from panen.engine.infra.yamlio import load_located_yaml
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        try:
            load_located_yaml({str(p)!r})
            refused = False
        except ConfigError:
            refused = True
        print(json.dumps({{"refused": refused, "seconds": time.perf_counter() - t, "before_kb": before,
                          "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    res = json.loads(out.stdout)
    assert res["refused"]
    assert res["peak_kb"] - res["before_kb"] < 50_000  # < 50 MB above the interpreter's own (Linux: kB)
    assert res["seconds"] < 20


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    p = write(tmp_path, "a: &x\n  b: [1, *x]\n")
    assert problems(p) == [f"{p}, line 2, a.b[1]: alias *x is inside the anchor &x it names: a recursive "
                           "structure, refused"]


def test_nesting_deeper_than_the_bound_is_refused_without_recursion_error(tmp_path):
    p = write(tmp_path, "a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (msg,) = problems(p)
    assert f"deeper than {MAX_DEPTH} levels" in msg and msg.startswith(f"{p}, line 1, a[0][0]")
    ok = write(tmp_path, "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", "ok.yaml")
    assert load_located_yaml(ok).data["a"] is not None


def test_a_document_over_the_size_bound_is_refused_before_parsing(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_bytes(b"a: 1\n" + b"#" * MAX_DOCUMENT_BYTES)  # a comment: valid YAML, just too big
    (msg,) = problems(p)
    assert msg == f"{p}: config file is larger than 1 MiB; a YAML document this large is refused (a config " \
                  "names its data files, it does not hold them)"
    p.write_bytes(b"a: 1\n" + b"#" * (MAX_DOCUMENT_BYTES - 10))
    assert load_located_yaml(p).data == {"a": 1}


def test_too_many_values_without_aliases_are_refused(tmp_path):
    p = write(tmp_path, "a: [" + ",".join(["1"] * (MAX_NODES + 1)) + "]\n")
    (msg,) = problems(p)
    assert f"holds more than {MAX_NODES:,} values" in msg and msg.startswith(f"{p}, line 1, a[")


def test_aliases_within_the_bound_load_with_lines_under_every_path(tmp_path):
    p = write(tmp_path, """\
        std: &std
          - {name: veg, strike: 150}
        products:
          - {id: a, phases: *std}
          - {id: b, phases: *std}
        """)
    doc = load_located_yaml(p)
    assert doc.data["products"][1]["phases"] == [{"name": "veg", "strike": 150}]
    assert doc.lines[("products", 1, "phases", 0, "strike")] == 2


def test_an_undefined_alias_is_malformed_yaml_with_its_line(tmp_path):
    p = write(tmp_path, "a: 1\nb: *nope\n")
    (msg,) = problems(p)
    assert msg.startswith(f"{p}, row 2: malformed YAML: found undefined alias")
