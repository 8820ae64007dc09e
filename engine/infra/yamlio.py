"""Located YAML: files loaded safely, with the line of every key for error messages.

Run configs and policy wordings are YAML that people write by hand. They are loaded with
``yaml.SafeLoader`` (no tags, no ``eval``), and the composed node tree gives every key
path its line, so a problem is reported as ``run.yaml, line 12, products[0].strike``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from panen.engine.errors import ConfigError, Problem

__all__ = ["LocatedYaml", "dotted", "line_map", "load_located_yaml", "nearest_line", "pydantic_message"]


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
    """Read a UTF-8 YAML file safely, with its key lines.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for messages ("config", "policy wording").

    Raises
    ------
    ConfigError
        The file is missing or unreadable, not UTF-8, or malformed YAML (with the line).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(Problem(f"{what} file not found", file=path)) from None
    except IsADirectoryError:
        raise ConfigError(Problem(f"{what} path is a folder, not a file", file=path)) from None
    except OSError as exc:
        raise ConfigError(Problem(f"cannot read {what} file: {exc.strerror}", file=path)) from None
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(Problem(f"{what} is not UTF-8 text ({exc.reason})", file=path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(Problem(f"malformed YAML: {problem}", file=path, row=line)) from None
    return LocatedYaml(data=data, lines=line_map(node), sha256=hashlib.sha256(raw).hexdigest(), path=path)


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
        msg = f"{msg} (got {err['input']!r})"
    return msg


def dotted(loc: tuple) -> str:
    """``("products", 0, "strike")`` → ``"products[0].strike"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_map(node: yaml.Node | None) -> dict[tuple, int]:
    """Key path → 1-based line number, from the composed YAML node tree."""
    lines: dict[tuple, int] = {}

    def walk(n: yaml.Node, path: tuple) -> None:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
                lines[path + (key,)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, path + (i,))

    if node is not None:
        walk(node, ())
    return lines


def nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of ``loc``, or of its nearest enclosing key that has one."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None
