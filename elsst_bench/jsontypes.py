"""JSON value kinds: what a field of a file someone hands in must be (a sweep file's values, a run's
``config.json``, a leaderboard entry), and how a one-line refusal names it.

The one home of the rules every such check shares: an integer is never a bool (``true`` is not a rank), a number
is finite (``nan`` is not a learning rate), a name is a non-empty string. A :data:`Kind` is ``(predicate, name)``;
:func:`accepts` and :func:`hint_name` apply the same rules to a type hint (``TrainConfig``'s fields).
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
import unicodedata
from pathlib import Path
from typing import Any, Callable

from .errors import DataError

Kind = tuple[Callable[[Any], bool], str]


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def is_texts(value) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


#: The longest display name of a leaderboard row (``submit --name``, a sweep block's ``name``).
NAME_MAX = 120
#: The longest string a board, a terminal table or a page shows as one value (a model name, a run id, a version).
LINE_MAX = 200


def is_line(value, limit: int = LINE_MAX) -> bool:
    """One displayable line: a string of 1 to ``limit`` characters with no control, format, surrogate, private or
    unassigned character (Unicode category C*: newline, ESC, NUL, the bidirectional overrides) and no line or
    paragraph separator, so it cannot break a table row, move a terminal's cursor or reorder what follows it."""
    return (isinstance(value, str) and 0 < len(value) <= limit
            and not any(unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029" for ch in value))


INTEGER: Kind = (is_integer, "an integer")
NUMBER: Kind = (is_number, "a finite number")
TEXT: Kind = (is_text, "a non-empty string")
TEXTS: Kind = (is_texts, "a list of strings")
OBJECT: Kind = (lambda value: isinstance(value, dict), "an object")
LINE: Kind = (is_line, f"one line of 1 to {LINE_MAX} printable characters")


def read_json(path: str | os.PathLike, *, error: type[Exception] = DataError, hint: str = "") -> Any:
    """The parsed content of the JSON file ``path``, or one line naming it: unreadable, not UTF-8, not JSON, or
    nested too deeply to parse (``'[' * 200000`` makes the parser raise ``RecursionError``). The one reader of every
    JSON file someone may hand in; ``hint`` (what to do instead) is appended to the refusal."""
    suffix = f"; {hint}" if hint else ""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as err:
        raise error(f"cannot read {path}: {err.strerror or err}{suffix}") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise error(f"{path} is not valid JSON ({type(err).__name__}: {err}){suffix}") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be a file elsst-bench wrote{suffix}") from None


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
