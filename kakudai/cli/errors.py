"""The one-line error every ``kakudai`` command prints, and the exit code that goes with it.

A failure the user can act on is one line on stderr, ``kakudai: error: <where>: <reason>``
(``where`` is the file, folder, option or model it concerns), never a traceback; the
command then exits 1. :func:`fail` is the one mapping from an exception to that line:
errors that carry their own path and reason (image read/write, video) name their file
themselves, and a weights error's message already names its file or model. Interrupts
map to their exit codes in :mod:`kakudai.cli.signals`.

Light imports only: ``--help`` must not load torch, numpy or Pillow.
"""

from __future__ import annotations

import sys

__all__ = ["say", "error", "fail", "first_line", "reason_of", "weights_message", "is_instance"]


def say(line: str) -> None:
    """Print ``line`` to stderr without breaking a progress bar."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def error(where: object, reason: str) -> int:
    """Print ``kakudai: error: <where>: <reason>``; returns the exit code, 1."""
    say(f"kakudai: error: {where}: {reason}")
    return 1


def first_line(e: BaseException) -> str:
    """An exception's message, first line only (its type's name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def is_instance(e: BaseException, module: str, name: str) -> bool:
    """``isinstance(e, module.name)`` without importing ``module``: an exception of a
    class from a module that was never imported cannot be one (so mapping an error
    never loads torch or Pillow)."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(e, getattr(mod, name))


def weights_message(model: str, e: BaseException) -> str:
    """A weights error's message, prefixed with the model name unless it already names
    that model or its ``.safetensors`` file."""
    msg = str(e)
    named = msg.split(": ", 1)[0].endswith(".safetensors")
    return msg if msg.startswith(f"{model}: ") or named else f"{model}: {msg}"


def reason_of(e: BaseException, where: object = None) -> str:
    """The ``<reason>`` part of the line for ``e`` (``where``: what the line names first)."""
    reason = getattr(e, "reason", None)
    if isinstance(reason, str):  # ImageReadError, ImageWriteError, VideoError
        own = getattr(e, "path", None)
        return f"{own}: {reason}" if own is not None and where is not None and str(own) != str(where) else reason
    if isinstance(e, KeyError) and e.args:  # str(KeyError) quotes its message
        return str(e.args[0]).strip().splitlines()[0] if str(e.args[0]).strip() else type(e).__name__
    if isinstance(e, OSError) and e.strerror:
        named = e.filename is not None and str(e.filename) != str(where)
        return f"{e.filename}: {e.strerror}" if named else e.strerror
    return first_line(e)


def fail(e: BaseException, where: object = None) -> int:
    """Print the one line for ``e`` and return the exit code, 1.

    ``where`` names what failed; it may be left out for errors that name their own
    file (image read/write and video errors) and for weights errors, whose message is
    printed as it is (with ``where``, a model name, prefixed when it does not say it).
    """
    if is_instance(e, "kakudai.checkpoint", "WeightsError"):
        say(f"kakudai: error: {e if where is None else weights_message(str(where), e)}")
        return 1
    if where is None:
        where = getattr(e, "path", None)
    if where is None:
        say(f"kakudai: error: {reason_of(e)}")
        return 1
    return error(where, reason_of(e, where))
