"""JSON value kinds: what a field of a file someone hands in must be (a sweep file's values, a run's
``config.json``, a leaderboard entry), and how a one-line refusal names it.

The one home of the rules every such check shares: an integer is never a bool (``true`` is not a rank), a number
is finite (``nan`` is not a learning rate), a name is a non-empty string. A :data:`Kind` is ``(predicate, name)``;
:func:`accepts` and :func:`hint_name` apply the same rules to a type hint (``TrainConfig``'s fields).
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Callable

Kind = tuple[Callable[[Any], bool], str]


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def is_texts(value) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


INTEGER: Kind = (is_integer, "an integer")
NUMBER: Kind = (is_number, "a finite number")
TEXT: Kind = (is_text, "a non-empty string")
TEXTS: Kind = (is_texts, "a list of strings")
OBJECT: Kind = (lambda value: isinstance(value, dict), "an object")


def accepts(hint, value) -> bool:
    """Whether ``value`` (as TOML or JSON gives it) is of the type ``hint``: ``int``, ``float``, ``bool``,
    ``str``, ``list[...]``, ``dict``, unions and ``None``, with the rules above (a float field takes any finite
    number); any other hint accepts everything."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(a, value) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_integer(value)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint) or (typing.Any,)
        return isinstance(value, list) and all(accepts(item, v) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # typing.Any


def hint_name(hint) -> str:
    """``hint`` in words, as TOML users write values: "an integer", "a list of strings", "a table"."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(hint_name(a) for a in args)
    if typing.get_origin(hint) is list:
        plural = {str: "strings", int: "integers", float: "numbers"}
        return f"a list of {plural.get(args[0], 'values')}" if args else "a list"
    if typing.get_origin(hint) is dict or hint is dict:
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
