"""A clock whose sleeps take no time: they move it forward (for the DS client's waits)."""

from __future__ import annotations

from py_core.clock import Clock


class VirtualClock:
    def __init__(self, start: float = 1_000_000.0):
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def clock(self) -> Clock:
        return Clock(now=self.now, monotonic=self.now, sleep=self.sleep)
