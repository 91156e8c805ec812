"""Reading DS's pages ahead: one stream read while the job writes (`Prefetch`), or several
streams at once merged into one sequence of pages (`Streams`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class Streams:
    """Several DS page streams at once (one per dossier state), merged into one sequence of
    pages for the caller, who writes them one at a time. DS's cursor makes one stream strictly
    sequential; five streams cut a full sync's round trips by five (`DSClient` keeps them under
    DS's rate limit). At most one page per stream waits in memory (or `depth` pages: one stream
    read ahead while the sync does something else). Only worth it when DS is far
    (`PARALLEL_LATENCY_S`, seen on the first page, paged alone): a DS that answers at once is
    CPU-bound, and so is the widget.

    A dossier that changes state while the streams run may leave a stream before it got there
    and enter one that is already past it: the sync closes with `updatedSince` passes (one per
    state, at once) from the newest modification DS had when the streams started (minus the
    lag), which bring every dossier modified since. The streams record no checkpoint (five cursors): an interrupted
    full sync resumes as one sequential stream after the first page (paged alone, before the
    streams), whose diff writes only what is missing."""

    def __init__(self, streams: list[AsyncIterator[Any]], *, depth: int = 0):
        self.streams = streams
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=depth or len(streams))  # pages read ahead
        self.tasks: list[asyncio.Future] = []
        self.active = len(streams)

    async def _pump(self, stream: AsyncIterator[Any]) -> None:
        try:
            async for page in stream:
                await self.queue.put(("page", page))
            await self.queue.put(("end", None))
        except Exception as error:  # noqa: BLE001 - raised to the caller, in order
            await self.queue.put(("error", error))

    async def __aenter__(self) -> Streams:  # entered again by whoever reads it: started once
        if not self.tasks:
            self.tasks = [asyncio.ensure_future(self._pump(s)) for s in self.streams]
        return self

    def __aiter__(self) -> Streams:
        return self

    async def __anext__(self) -> Any:
        while self.active:
            kind, value = await self.queue.get()
            if kind == "page":
                return value
            self.active -= 1
            if kind == "error":
                self.active = 0
                raise value
        raise StopAsyncIteration

    async def __aexit__(self, *_exc) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled, not wanted any more
                pass
        for stream in self.streams:
            try:
                await stream.aclose()
            except Exception:  # noqa: BLE001
                pass


class Prefetch:
    """Iterate DS's pages one ahead: while the caller works on page k (rows, diff, Grist), the
    request for page k+1 is already out (an asyncio task). Pages still come in order and one
    at a time, so what the caller records (the checkpoint's `after`) only ever moves with the
    pages it has written. Leaving the block (end, cancel, error) cancels the request in flight
    and closes the generator; an error of page k+1 surfaces when page k+1 is asked for, after
    page k was written, as without prefetching."""

    def __init__(self, pages: AsyncIterator[Any]):
        self.pages = pages
        self.pending: asyncio.Future | None = None

    def start(self) -> None:
        """Ask for the first page now (it is taken when the caller gets there)."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(self.pages.__anext__())

    async def __aenter__(self) -> Prefetch:
        return self

    def __aiter__(self) -> Prefetch:
        return self

    async def __anext__(self) -> Any:
        pending = self.pending or asyncio.ensure_future(self.pages.__anext__())
        self.pending = None
        page = await pending  # StopAsyncIteration ends the loop
        self.pending = asyncio.ensure_future(self.pages.__anext__())
        return page

    async def __aexit__(self, *_exc) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            if not pending.done():
                pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration, Exception):  # noqa: BLE001 - not wanted any more
                pass
        closing = getattr(self.pages, "aclose", None)
        if closing is not None:
            try:
                await closing()
            except Exception:  # noqa: BLE001
                pass
