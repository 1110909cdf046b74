"""The ``elsst-bench`` command: a thin typer app. Each layer's commands live in a module of this package."""

from __future__ import annotations

import errno
import os
import sys

from .root import app  # noqa: F401  (the console script and the tests take it from here)

# Command modules register themselves on ``app`` when imported (one module per layer).
from . import prepare  # noqa: F401
from . import adapters  # noqa: F401
from . import evaluate  # noqa: F401
from . import train  # noqa: F401
from . import leaderboard  # noqa: F401
from . import sweep  # noqa: F401
from . import serve  # noqa: F401
from . import track1  # noqa: F401
from . import report  # noqa: F401


#: Why a write failed when the fault is the machine's, not the program's: a full disk or quota, a read-only or
#: unwritable place, a file too large for the file system. One line naming the file, exit status 2.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
#: The same faults as the texts a library puts in its own exception when it wraps the OSError (torch's and
#: safetensors' writers do: "File too large", "No space left on device"); the C library's texts, so they match.
_WRITE_REASONS = tuple(sorted(os.strerror(code) for code in _WRITE_ERRNOS))


def main() -> None:
    """Console-script entry point: bad input (a :class:`BenchError` or a usage error such as ``--lr abc``) -> one
    line on stderr, exit status 2; a write the machine refused (disk full, read-only) -> one line, exit status 2;
    an interrupt -> one line, exit status 130. Every message is printed as one line (:func:`_printable`)."""
    from typer import Abort

    from ..errors import BenchError

    try:
        code = app(standalone_mode=False)
    except BenchError as err:
        print(f"elsst-bench: error: {_printable(str(err))}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in _WRITE_ERRNOS:
            raise
        where = f" {err.filename}" if err.filename else ""
        print(f"elsst-bench: error: cannot write{_printable(where)}: {err.strerror}",
              file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        if _is_usage_error(err):
            if type(err).__name__ == "NoArgsIsHelpError":  # no arguments: its message is the help, as click shows it
                print(err.format_message(), file=sys.stderr)
            else:
                print(f"elsst-bench: error: {_one_line(err.format_message())}", file=sys.stderr)
            sys.exit(err.exit_code)
        if not any(reason in str(err) for reason in _WRITE_REASONS):
            raise
        print(f"elsst-bench: error: cannot write: {_one_line(str(err))[:300]}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Abort):
        code = 130
    if code == 130:  # typer turns Ctrl-C into exit status 130
        print("elsst-bench: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(err: Exception) -> bool:
    """A click usage error (``--lr abc``, a missing argument, no arguments at all). typer 0.29 vendors click under a
    private module, so it is recognised by what it offers, not by its class; typer's own ``rich_utils`` recognises
    ``NoArgsIsHelpError`` by name the same way."""
    return callable(getattr(err, "format_message", None)) and isinstance(getattr(err, "exit_code", None), int)


def _one_line(message: str) -> str:
    return _printable(" ".join(message.split()))


def _printable(message: str) -> str:
    """``message`` with every control, format or separator character escaped (``\\n``, ``\\x1b``, ``\\u202e``):
    a path or value holding a newline or an escape sequence cannot split the line or drive the terminal."""
    import unicodedata

    return "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else ch.encode("unicode_escape")
                   .decode("ascii") for ch in message)
