"""Ctrl-C and SIGTERM: both mean "stop following, leave Nomad's work alone".

SIGTERM is turned into the same KeyboardInterrupt as Ctrl-C, so a CI runner or a
supervisor stopping `nomadml deploy` gets the same defined outcome (exit 130, a
resume hint). Inside `deferred()`, both signals wait until the block ends: a write
and the records that describe it (register, its history record and version tag;
a promotion; failing a deployment) happen together or not at all.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def sigterm_interrupts() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread, like Ctrl-C."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: held.append(signum)) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if held:
        raise KeyboardInterrupt(signal.Signals(held[0]).name)
