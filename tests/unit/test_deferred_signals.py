"""deferred(): a signal inside the block waits for the block to finish; SIGTERM
becomes the same KeyboardInterrupt as Ctrl-C."""

from __future__ import annotations

import os
import signal

import pytest

from nomadml.engine.interrupts import deferred, sigterm_interrupts


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_the_block_is_raised_after_it(signum: int) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    sigterm_interrupts()
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name), deferred():
            steps.append("write")
            os.kill(os.getpid(), signum)
            steps.append("record")  # still runs: the write and its record go together
        steps.append("after")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert steps == ["write", "record", "after"]  # raised once, at the end of the block


def test_handlers_are_restored_and_nothing_is_raised_without_a_signal() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with deferred():
        pass
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_error_inside_the_block_wins_over_a_held_signal() -> None:
    with pytest.raises(ValueError), deferred():
        os.kill(os.getpid(), signal.SIGINT)
        raise ValueError("the write failed")
