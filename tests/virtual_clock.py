"""A clock whose sleeps take no time: they move it forward (for the DS client's waits); and
an event loop whose time is its own (`VirtualTime`), moved on only while every task waits."""

from __future__ import annotations

import asyncio
import selectors
from concurrent.futures import ThreadPoolExecutor

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


class VirtualTime:
    """An event loop's clock, from zero (a float of today's epoch leaves no room for the loop's
    resolution): a wait moves it on instead of sleeping. Nothing may wait for a socket or a
    thread: the loop would never see them."""

    def __init__(self):
        self.t = 0.0

    def loop(self) -> asyncio.AbstractEventLoop:
        clock = self

        class Selector(selectors.SelectSelector):
            def select(self, timeout=None):
                if timeout is None:
                    raise RuntimeError("every task waits for something that never comes")
                clock.t += max(0.0, timeout)
                return []

        class Loop(asyncio.SelectorEventLoop):
            def time(self) -> float:
                return clock.t

        return Loop(Selector())

    def run(self, coroutine):
        """Run `coroutine` on this loop, in a thread of its own (the browser tests' Playwright
        keeps an event loop running in the main one)."""
        def in_thread():
            loop = self.loop()
            try:
                return loop.run_until_complete(coroutine)
            finally:
                loop.close()

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(in_thread).result()
