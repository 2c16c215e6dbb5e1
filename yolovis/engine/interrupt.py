"""Ctrl-C as the end of a source without one: the first SIGINT stops the reading of frames, and the run then
finishes as if the source had ended there (every output complete and valid); a second one aborts at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Stop:
    """Set by the first SIGINT; `last_index` is the index of the last frame let through."""

    requested: bool = False
    last_index: int = -1

    def frames(self, frames: Iterable[tuple[int, object]]) -> Iterator[tuple[int, object]]:
        """`frames` until a stop is requested: a frame read after it is dropped (nothing downstream saw it)."""
        for index, frame in frames:
            if self.requested:
                return
            self.last_index = index
            yield index, frame
            if self.requested:
                return


@contextmanager
def stop_on_sigint() -> Iterator[Stop]:
    """A `Stop` that the first SIGINT sets. Signal handlers belong to the main thread: elsewhere (a caller's
    worker thread) nothing is installed and Ctrl-C keeps its usual KeyboardInterrupt."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        stop.requested = True
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C: the usual KeyboardInterrupt, outputs dropped

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
