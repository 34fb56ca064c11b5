"""Ctrl-C and SIGTERM: both stop a command through its cleanup path (temporary files
removed, no partial output) and give the shell's exit codes, 130 and 143."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Terminated", "sigterm_raises", "exit_code"]


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup code runs (like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside: SIGTERM raises :class:`Terminated` (outside the main thread: no change)."""
    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def exit_code(interrupt: BaseException) -> int:
    """128 + the signal's number: 130 for Ctrl-C (KeyboardInterrupt), 143 for SIGTERM."""
    return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)
