"""Time, given once to a job and to its DS client (tests give their own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    now: Callable[[], float] = time.time  # the wall clock: dates written in the document, lease expiries
    monotonic: Callable[[], float] = time.monotonic  # durations: round trips, DS's rate window
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
