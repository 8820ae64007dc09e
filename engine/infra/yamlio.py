"""Located YAML: files loaded safely and within bounds, with the line of every key.

Run configs and policy wordings are YAML that people write by hand, and money moves on
what they say, so the one loader every panen YAML goes through refuses — with the file,
line and key path (``run.yaml, line 12, products[0].strike``), every problem at once —
what would otherwise be read silently or blow up:

* **a key written twice in one mapping** (YAML keeps the later one without a word): both
  lines are named. Keys are compared as YAML reads them, so ``1`` and ``1.0``, or
  ``true`` and ``yes``, are the same key. A key written beside a merge key
  (``<<: *base``) overrides the merged value, as YAML merge keys mean; a second ``<<`` in
  one mapping is a duplicate;
* **a number that is not finite** — ``.inf``, ``-.inf``, ``.nan`` or a literal that
  overflows to infinity (``1e999``) — anywhere, and an integer that no 64-bit field can
  hold (|n| ≥ 2**63). No panen setting means "unbounded" by infinity: an open end (a step
  band's edge, a cap) is written by leaving the key out;
* **an impossible date** (``2023-02-30``, ``2024-13-01``), which the YAML library turns
  into a bare ``ValueError``;
* **a document too big to be a config**: more than :data:`MAX_DOCUMENT_BYTES` bytes
  (checked before parsing, reading at most that much), more than :data:`MAX_NODES` values
  once aliases are expanded (each ``*alias`` counts as a copy of what its anchor names:
  a 1.7 KB "billion laughs" document of nested aliases stands for ~10⁹ values), nesting
  deeper than :data:`MAX_DEPTH`, or an alias inside the anchor it names (a recursive
  structure). These are checked on the event stream, before any node tree is built.

Documents are parsed with PyYAML's safe loader (libyaml's when installed): no tags beyond
YAML's own, no ``eval``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from panen.engine.errors import ConfigError, Problem

__all__ = ["LocatedYaml", "MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_NODES", "dotted", "line_map",
           "load_located_yaml", "nearest_line", "pydantic_message"]

#: Largest YAML document panen reads [bytes] (1 MiB). The demo config is 2.7 KB and the
#: AUTP wording 11 KB; a config names its data by path, it never holds it.
MAX_DOCUMENT_BYTES: int = 1 << 20
#: Most values (scalars, mappings, sequences; keys included) a document may hold with every
#: alias expanded. The demo config holds ~200 and the AUTP wording ~700; a by-district
#: trigger design pasted under ``products:`` (one three-phase weather term sheet per
#: regency, 514 for Indonesia) ~50,000. A document at the bound loads in about 2 s and
#: 80 MB; the bound refuses a "billion laughs" at the alias that crosses it.
MAX_NODES: int = 100_000
#: Deepest nesting of mappings and sequences (the deepest documented key,
#: ``products[0].phases[0].bands[0].min``, is at depth 5).
MAX_DEPTH: int = 50

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INT_LIMIT = 2**63


@dataclass(frozen=True)
class LocatedYaml:
    """A YAML document and where its keys are.

    Attributes
    ----------
    data
        The parsed document (plain dicts, lists and scalars).
    lines
        Key path (tuple of keys and list indices) → 1-based line number.
    sha256
        Hash of the file's bytes [hex].
    path
        The file.
    """

    data: Any
    lines: dict[tuple, int]
    sha256: str
    path: Path


def load_located_yaml(path: str | Path, *, what: str = "config") -> LocatedYaml:
    """Read a UTF-8 YAML file safely and within bounds, with its key lines.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for messages ("config", "policy wording").

    Raises
    ------
    ConfigError
        The file is missing or unreadable, not UTF-8, malformed YAML (with the line), over
        a bound (:data:`MAX_DOCUMENT_BYTES`, :data:`MAX_NODES`, :data:`MAX_DEPTH`) or
        recursive; or, every one listed with its line and key path: a duplicate key, a
        non-finite number, an integer beyond 64 bits, an impossible date.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(Problem(f"{what} file not found", file=path)) from None
    except IsADirectoryError:
        raise ConfigError(Problem(f"{what} path is a folder, not a file", file=path)) from None
    except OSError as exc:
        raise ConfigError(Problem(f"cannot read {what} file: {exc.strerror}", file=path)) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ConfigError(Problem(f"{what} file is larger than {MAX_DOCUMENT_BYTES >> 20} MiB; a YAML document "
                                  f"this large is refused (a config names its data files, it does not hold them)",
                                  file=path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(Problem(f"{what} is not UTF-8 text ({exc.reason})", file=path)) from None
    loader = None
    try:
        _check_bounds(text, path, what)
        loader = _Loader(text)
        node = loader.get_single_node()
        lines, problems = _walk(node, path)
        if problems:
            raise ConfigError(problems)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(Problem(f"malformed YAML: {problem}", file=path, row=line)) from None
    finally:
        if loader is not None:
            loader.dispose()
    return LocatedYaml(data=data, lines=lines, sha256=hashlib.sha256(raw).hexdigest(), path=path)


def _check_bounds(text: str, path: Path, what: str) -> None:
    """Refuse a document that nests too deep, expands past :data:`MAX_NODES` or is recursive.

    Reads the event stream once, without building nodes: each open collection knows the
    expanded count at its start, so an anchor's expanded size is known when it closes and
    an alias adds that size. Stops at the first bound crossed.
    """
    total = 0
    sizes: dict[str, int] = {}
    stack: list[dict] = []  # open collections: kind, path, start count, anchor, key, expect_key, index

    def here() -> tuple:
        if not stack:
            return ()
        top = stack[-1]
        if top["kind"] == "seq":
            return top["path"] + (top["index"],)
        return top["path"] + ((top["key"],) if top["key"] is not None else ())

    def done(key: Any = None) -> None:  # a node finished inside the top collection
        if not stack:
            return
        top = stack[-1]
        if top["kind"] == "seq":
            top["index"] += 1
        elif top["expect_key"]:
            top["key"], top["expect_key"] = (key if key is not None else "?"), False
        else:
            top["expect_key"] = True

    def refuse(message: str, event: yaml.Event, loc: tuple) -> None:
        raise ConfigError(Problem(message, file=path, row=event.start_mark.line + 1, key=dotted(loc) or None))

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
            loc = here()
            if stack and stack[-1]["kind"] == "map" and stack[-1]["expect_key"] and isinstance(event, yaml.ScalarEvent):
                loc = stack[-1]["path"] + (event.value,)
        if isinstance(event, yaml.AliasEvent):
            if any(c["anchor"] == event.anchor for c in stack):
                refuse(f"alias *{event.anchor} is inside the anchor &{event.anchor} it names: a recursive "
                       f"structure, refused", event, loc)
            total += sizes.get(event.anchor, 1)  # an undefined alias is the composer's error
            done()
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
            done(event.value)
        elif isinstance(event, yaml.CollectionStartEvent):
            total += 1
            if len(stack) >= MAX_DEPTH:
                refuse(f"{what} nests mappings and sequences deeper than {MAX_DEPTH} levels; refused", event, loc)
            stack.append({"kind": "map" if isinstance(event, yaml.MappingStartEvent) else "seq", "path": loc,
                          "start": total - 1, "anchor": event.anchor, "key": None, "expect_key": True, "index": 0})
        elif isinstance(event, yaml.CollectionEndEvent):
            closed = stack.pop()
            if closed["anchor"] is not None:
                sizes[closed["anchor"]] = total - closed["start"]
            done()
        else:
            continue
        if total > MAX_NODES:
            refuse(f"{what} holds more than {MAX_NODES:,} values, each *alias counting as a copy of what its "
                   f"anchor names; refused (nested aliases can make a few lines stand for billions of values)",
                   event, loc)


def _walk(node: yaml.Node | None, path: Path) -> tuple[dict[tuple, int], list[Problem]]:
    """Key lines of a composed document, and its duplicate keys and unusable scalars.

    Aliased nodes are walked under every path that reaches them (for the lines), but
    each node is checked once.
    """
    lines: dict[tuple, int] = {}
    problems: list[Problem] = []
    checked: set[int] = set()

    def problem(n: yaml.Node, loc: tuple, message: str) -> None:
        problems.append(Problem(message, file=path, row=n.start_mark.line + 1, key=dotted(loc) or None))

    def value_of(n: yaml.ScalarNode, loc: tuple) -> tuple[bool, Any]:
        """(usable, value) of a scalar as YAML reads it, reporting it once if it is unusable."""
        message = None
        try:
            value = _construct_scalar(n)
        except (ValueError, OverflowError) as exc:  # the YAML library's own errors are reported on construction
            message = (f"not a valid date: {_shown(n.value)} ({exc})" if n.tag == _TIMESTAMP
                       else f"integer {_shown(n.value)} is out of range (|n| must be below 2**63)")
        else:
            if isinstance(value, float) and not math.isfinite(value):
                message = (f"not a finite number ({_shown(n.value)}): infinite and NaN values are refused "
                           f"everywhere; an open end (e.g. a step band's edge) is written by leaving the key out")
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_LIMIT:
                message = f"integer {_shown(n.value)} is out of range (|n| must be below 2**63)"
        if message is not None:
            if id(n) not in checked:
                checked.add(id(n))
                problem(n, loc, message)
            return False, None
        checked.add(id(n))
        return True, value

    def walk(n: yaml.Node, loc: tuple) -> None:
        lines[loc] = n.start_mark.line + 1
        if isinstance(n, yaml.ScalarNode):
            value_of(n, loc)
        elif isinstance(n, yaml.MappingNode):
            first_check = id(n) not in checked
            checked.add(id(n))
            seen: dict[Any, int] = {}
            merges: list[yaml.Node] = []
            merge_line = None
            for k, v in n.value:
                line = k.start_mark.line + 1
                if k.tag == _MERGE:
                    if merge_line is not None and first_check:
                        problem(k, loc + ("<<",), f"duplicate key '<<' (first at line {merge_line})")
                    merge_line = merge_line or line
                    merges.append(v)
                    continue
                key: Any = "?"
                if isinstance(k, yaml.ScalarNode):
                    ok, key = value_of(k, loc + (k.value,))
                    if not ok:
                        key = k.value
                    elif _hashable(key) and key in seen:
                        if first_check:
                            problem(k, loc + (key,), f"duplicate key {key!r} (first at line {seen[key]})")
                    elif _hashable(key):
                        seen[key] = line
                kloc = loc + (key,)
                walk(v, kloc)
                lines[kloc] = line
            for m in merges:  # merged keys: the lines of their anchor, unless overridden here
                for k, v in _merged_pairs(m):
                    if not isinstance(k, yaml.ScalarNode):
                        continue
                    ok, key = value_of(k, loc + (k.value,))
                    if ok and _hashable(key) and key not in seen:
                        seen[key] = k.start_mark.line + 1
                        walk(v, loc + (key,))
                        lines[loc + (key,)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, loc + (i,))

    if node is not None:
        walk(node, ())
    return lines, problems


_SCALARS = yaml.constructor.SafeConstructor()  # builds single scalars; holds no document


def _construct_scalar(n: yaml.ScalarNode) -> Any:
    """The value YAML gives a scalar (``ValueError`` for an impossible date or an integer too long
    to read); its text when the safe loader cannot build it (an unknown tag, bad base64), which
    construction then reports."""
    construct = _SCALARS.yaml_constructors.get(n.tag)
    if construct is None:
        return n.value
    try:
        return construct(_SCALARS, n)
    except yaml.YAMLError:
        return n.value


def _merged_pairs(m: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    """The key/value pairs a merge key's value brings in (a mapping, or a sequence of them)."""
    if isinstance(m, yaml.MappingNode):
        return [(k, v) for k, v in m.value if k.tag != _MERGE]
    if isinstance(m, yaml.SequenceNode):
        return [pair for sub in m.value if isinstance(sub, yaml.MappingNode) for pair in _merged_pairs(sub)]
    return []


def _shown(text: str, width: int = 40) -> str:
    """A scalar's text for a message, cut to ``width`` characters."""
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def pydantic_message(err: dict) -> str:
    """A readable message for one pydantic error (``unknown key 'x'``, ``... (got 3)``)."""
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {err['loc'][-1]!r}"
    elif err["type"] == "missing":
        msg = f"missing required key {err['loc'][-1]!r}"
    elif "input" in err and err["type"] not in ("value_error", "assertion_error") and not isinstance(
            err["input"], (dict, list)):
        got = err["input"]
        msg = f"{msg} (got {got.isoformat() if isinstance(got, (dt.date, dt.time)) else repr(got)})"
    return msg


def dotted(loc: tuple) -> str:
    """``("products", 0, "strike")`` → ``"products[0].strike"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_map(node: yaml.Node | None) -> dict[tuple, int]:
    """Key path → 1-based line number, from the composed YAML node tree.

    Aliased nodes appear under every path that reaches them: call it on a tree that
    :func:`load_located_yaml` has bounded, or on one without nested aliases.
    """
    return _walk(node, None)[0]


def nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of ``loc``, or of its nearest enclosing key that has one."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None
