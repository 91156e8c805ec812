"""What a job tells the agent while it runs (French): its phase, how far it is, a wait.

One `Progress` is given to the job and to its DS client at construction; events go to `emit`
(the widget's status line, a log). A job hooks `on_wait` (e.g. renew its lease) so that a long
wait of the client (retries, DS's rate limit) keeps the job alive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Emit = Callable[[dict[str, Any]], None]


class Progress:
    def __init__(self, emit: Emit | None = None):
        self.emit: Emit = emit or (lambda event: None)
        self.on_wait: Callable[[], Awaitable[None]] | None = None

    def phase(self, message: str) -> None:
        self.emit({"kind": "phase", "message": message})

    def count(self, done: int, total: int | None, *, unit: str = "dossiers", moving: str = "dossiers modifiés reçus") -> None:
        message = f"{done} / {total} {unit}" if total is not None else f"{done} {moving}"
        self.emit({"kind": "progress", "done": done, "total": total, "message": message})

    def waiting(self, seconds: int, why: str) -> None:
        self.emit({"kind": "wait", "seconds": seconds, "message": f"{why} dans {seconds} s…"})

    async def before_wait(self) -> None:
        if self.on_wait is not None:
            await self.on_wait()
