"""Where the time of a multi-step job went, in seconds per named step (for metadata, logs and benchmarks)."""

from __future__ import annotations

import time


class Stopwatch:
    """``lap(step)`` adds the seconds since the previous lap to ``laps[step]``; ``total`` since the start."""

    def __init__(self, laps: dict[str, float] | None = None) -> None:
        self.laps: dict[str, float] = {} if laps is None else laps
        self._started = self._last = time.perf_counter()

    @property
    def total(self) -> float:
        return time.perf_counter() - self._started

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = round(self.laps.get(step, 0.0) + now - self._last, 3)
        self._last = now

    __call__ = lap
