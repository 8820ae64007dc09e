"""Invalid term sheets derived from what a ``Params`` model declares.

Every value produced here breaks one declared rule of one field, so a model that accepts
it does not enforce what it declares (a ``mode="before"`` validator that clamps, a nested
model with ``extra="allow"``, a validator that crashes with ``TypeError`` instead of
raising ``ValueError``).

Rules and the values that break them (``a``, ``b`` are the declared bounds):

=================================  ====================================================
declared                           invalid values
=================================  ====================================================
``gt=a``                           ``a``, ``a - max(1, |a|)`` (``a - 1`` for ``int``)
``ge=a``                           the next float below ``a``, ``a - max(1, |a|)`` (``a - 1`` for ``int``)
``lt=b``                           ``b``, ``b + max(1, |b|)`` (``b + 1`` for ``int``)
``le=b``                           the next float above ``b``, ``b + max(1, |b|)`` (``b + 1`` for ``int``)
``multiple_of=m``                  ``m / 2`` (``m + 1`` for ``int``)
``min_length=n`` / ``max_length``  a string, list or tuple one item shorter / longer
``float`` field                    ``nan`` (no term sheet means NaN), a non-numeric string
``int`` field                      a non-numeric string, ``0.5`` off an integer
``bool`` field                     ``"maybe"``
``Literal[...]`` / ``Enum``        a value that is none of the choices
fixed-length ``tuple[X, Y]``       one item fewer
required field                     the key left out
every model (nested too)           an unknown key
nested model                       a string where the mapping belongs
=================================  ====================================================

Nested models, lists, tuples and dicts of models are followed where the example term sheet
has a value (the model actually validated is read from the validated example, so
discriminated unions recurse into the chosen member). A nested model the example leaves
unset is not built from nothing: its rules are not exercised.
"""

from __future__ import annotations

import copy
import enum
import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel

__all__ = ["InvalidParams", "derive_invalid_params", "plain"]

_DROP = object()
#: Key used to check that unknown keys are rejected (suffixed if a model has such a field).
UNKNOWN_KEY = "not_a_parameter"


@dataclass(frozen=True)
class InvalidParams:
    """A term sheet that must be rejected, and why.

    Attributes
    ----------
    where
        Where the change is, e.g. ``"phases[0].end_day"``; ``""`` for the top level.
    why
        The broken rule and the value, e.g. ``"367 breaks le=366"``.
    params
        The whole term sheet with that one change.
    """

    where: str
    why: str
    params: dict[str, Any]


def plain(value: Any) -> Any:
    """A deep copy with models dumped to dicts and tuples turned into lists (editable by path)."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump(exclude_unset=True, by_alias=True))
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return copy.deepcopy(value)


def derive_invalid_params(model: type[BaseModel], example: Mapping[str, Any]) -> list[InvalidParams]:
    """Invalid term sheets derived from ``model``'s declared constraints around a valid example.

    Parameters
    ----------
    model
        The ``Params`` model (a pydantic model).
    example
        A term sheet ``model`` accepts; each result changes one value of it.

    Returns
    -------
    list of InvalidParams
        In field order, nested models after the field that holds them.

    Raises
    ------
    pydantic.ValidationError
        If ``example`` itself is invalid.
    """
    root = plain(example)
    instance = model.model_validate(root)
    out: list[InvalidParams] = []
    _walk(type(instance), instance, root, (), root, out)
    return out


# --------------------------------------------------------------------------- walking the model
def _walk(model: type[BaseModel], instance: BaseModel, raw: dict, path: tuple, root: dict,
          out: list[InvalidParams]) -> None:
    def add(at_path: tuple, value: Any, why: str) -> None:
        out.append(InvalidParams(_render(at_path), why, _replaced(root, at_path, value)))

    fields = model.model_fields
    unknown = UNKNOWN_KEY
    while unknown in fields or unknown in raw:
        unknown += "_"
    add(path + (unknown,), 1, "unknown key")
    for name, info in fields.items():
        key = info.alias or name
        here = path + (key,)
        if info.is_required():
            add(here, _DROP, "required key left out")
        current = raw.get(key, _DROP)
        for value, why in _value_cases(info.annotation, info.metadata, current):
            add(here, value, why)
        if current is _DROP:
            continue
        held = getattr(instance, name, None)
        if isinstance(held, BaseModel) and isinstance(current, dict):
            if not _accepts_text(info.annotation):
                add(here, "not-a-mapping", f"{_type_text(type(held))} given a string")
            _walk(type(held), held, current, here, root, out)
        elif isinstance(held, list | tuple) and isinstance(current, list) and len(held) == len(current):
            for i, (item, raw_item) in enumerate(zip(held, current)):
                if isinstance(item, BaseModel) and isinstance(raw_item, dict):
                    _walk(type(item), item, raw_item, here + (i,), root, out)
        elif isinstance(held, Mapping) and isinstance(current, dict):
            for k, item in held.items():
                if isinstance(item, BaseModel) and isinstance(current.get(k), dict):
                    _walk(type(item), item, current[k], here + (k,), root, out)


def _value_cases(annotation: Any, metadata: list, current: Any) -> Iterator[tuple[Any, str]]:
    """Values breaking the rules declared on one field (or one item of a list field)."""
    tp, inner_meta = _unwrap(annotation)
    metadata = list(metadata) + inner_meta
    options = [a for a in _union_args(tp) if a is not type(None)]
    if len(options) != 1:
        yield from _literal_cases(options)
        return
    (tp,) = options
    tp, more = _unwrap(tp)
    metadata += more
    origin = typing.get_origin(tp)
    if origin is Literal:
        yield from _literal_cases([tp])
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        yield from _literal_cases([tp])
    elif tp is bool:
        yield "maybe", "bool given 'maybe'"
    elif tp is int:
        yield "not-a-number", "int given a string"
        yield 0.5 + (current if isinstance(current, int) and not isinstance(current, bool) else 0), \
            "int given a fraction"
        yield from _bound_cases(int, metadata)
    elif tp is float:
        yield "not-a-number", "float given a string"
        yield math.nan, "float given nan"
        yield from _bound_cases(float, metadata)
    elif tp is str:
        yield from _length_cases("x", current if isinstance(current, str) else None, metadata)
    elif origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        items = current if isinstance(current, list) else None
        yield from _length_cases([], items, metadata)
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis and items is not None and len(items) == len(args):
            yield items[:-1], f"{_type_text(tp)} given {len(items) - 1} items"
        if items:  # rules declared on the items, e.g. list[Annotated[float, Field(gt=0)]]
            item_type = args[0] if args else None
            if item_type is not None:
                for value, why in _value_cases(item_type, [], items[0]):
                    yield [value, *items[1:]], f"item 0: {why}"
    elif origin is dict or tp is dict:
        yield from _length_cases({}, current if isinstance(current, dict) else None, metadata)


def _bound_cases(kind: type, metadata: list) -> Iterator[tuple[Any, str]]:
    def far(x: float, sign: int) -> float:  # clearly past x, even where x ± 1 rounds back to x
        return x + sign * max(1.0, abs(x))

    for m in metadata:
        if isinstance(m, at.Gt) and _is_number(m.gt):
            a = m.gt
            values = [math.floor(a), math.floor(a) - 1] if kind is int else [a, far(a, -1)]
            yield from ((kind(v), f"{v!r} breaks gt={a!r}") for v in values)
        elif isinstance(m, at.Ge) and _is_number(m.ge):
            a = m.ge
            values = [math.ceil(a) - 1] if kind is int else [math.nextafter(a, -math.inf), far(a, -1)]
            yield from ((kind(v), f"{v!r} breaks ge={a!r}") for v in values)
        elif isinstance(m, at.Lt) and _is_number(m.lt):
            b = m.lt
            values = [math.ceil(b), math.ceil(b) + 1] if kind is int else [b, far(b, 1)]
            yield from ((kind(v), f"{v!r} breaks lt={b!r}") for v in values)
        elif isinstance(m, at.Le) and _is_number(m.le):
            b = m.le
            values = [math.floor(b) + 1] if kind is int else [math.nextafter(b, math.inf), far(b, 1)]
            yield from ((kind(v), f"{v!r} breaks le={b!r}") for v in values)
        elif isinstance(m, at.MultipleOf) and _is_number(m.multiple_of) and m.multiple_of not in (0, 1):
            v = m.multiple_of + 1 if kind is int else m.multiple_of / 2
            yield kind(v), f"{v!r} breaks multiple_of={m.multiple_of!r}"


def _length_cases(empty: Any, current: Any, metadata: list) -> Iterator[tuple[Any, str]]:
    for m in metadata:
        if isinstance(m, at.MinLen) and m.min_length > 0:
            n = m.min_length - 1
            yield _resize(empty, current, n), f"length {n} breaks min_length={m.min_length}"
        elif isinstance(m, at.MaxLen):
            n = m.max_length + 1
            yield _resize(empty, current, n), f"length {n} breaks max_length={m.max_length}"


def _resize(empty: Any, current: Any, n: int) -> Any:
    """``current`` cut or padded (repeating its last item) to ``n`` items."""
    if isinstance(empty, str):
        base = current or "x"
        return (base * (n // len(base) + 1))[:n]
    if isinstance(empty, dict):
        base = dict(current or {})
        items = list(base.items())[:n]
        while len(items) < n:
            items.append((f"{UNKNOWN_KEY}_{len(items)}", items[-1][1] if items else 0))
        return dict(items)
    base = list(current or [])
    if n <= len(base):
        return copy.deepcopy(base[:n])
    fill = base[-1] if base else 0
    return copy.deepcopy(base + [fill] * (n - len(base)))


def _literal_cases(options: list) -> Iterator[tuple[Any, str]]:
    """A value none of the choices when every option is a Literal or an Enum."""
    choices: list[Any] = []
    for opt in options:
        opt, _ = _unwrap(opt)
        if typing.get_origin(opt) is Literal:
            choices += list(typing.get_args(opt))
        elif isinstance(opt, type) and issubclass(opt, enum.Enum):
            choices += [m.value for m in opt]
        else:
            return
    if not choices:
        return
    if all(isinstance(c, str) for c in choices):
        value = f"{choices[0]}_not_a_choice"
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
        value = max(choices) + 1
    else:
        return
    yield value, f"{value!r} is none of {choices!r}"


# --------------------------------------------------------------------------- typing helpers
def _unwrap(tp: Any) -> tuple[Any, list]:
    """``Annotated[T, *meta]`` → ``(T, meta)``; anything else → ``(tp, [])``."""
    meta: list = []
    while typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        tp, extra = args[0], list(args[1:])
        for m in extra:  # a Field(...) inside Annotated carries its own metadata list
            meta += list(getattr(m, "metadata", [])) if type(m).__name__ == "FieldInfo" else [m]
    return tp, meta


def _union_args(tp: Any) -> tuple:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _accepts_text(annotation: Any) -> bool:
    """Whether a plain string may be a valid value (``str`` or ``Any`` among the options)."""
    tp, _ = _unwrap(annotation)
    return any(_unwrap(a)[0] in (str, Any) for a in _union_args(tp))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _type_text(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp)


# --------------------------------------------------------------------------- editing by path
def _replaced(root: dict, path: tuple, value: Any) -> dict:
    new = copy.deepcopy(root)
    cur: Any = new
    for k in path[:-1]:
        cur = cur[k]
    if value is _DROP:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return new


def _render(path: tuple) -> str:
    text = ""
    for k in path:
        text += f"[{k}]" if isinstance(k, int) else (f".{k}" if text else str(k))
    return text
