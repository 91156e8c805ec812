"""Reading DS's pages ahead: one stream read while the job writes (`Prefetch`), several
streams at once merged into one sequence of pages (`Streams`), or windows of deposit date
paged by as many streams as help (`WindowStreams`)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from ..ds.dates import iso_second
from ..grist.values import datetime_cell
from ..plan.windows import MAX_STREAMS, WAITED_S, Window, clip, split, wanted_streams


async def cancel_all(tasks: list[asyncio.Future]) -> None:
    """The streams' tasks stopped, and waited for: the pages they read are not wanted any more."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except BaseException:  # noqa: BLE001 - cancelled, not wanted any more
            pass


class Streams:
    """Several DS page streams at once, merged into one sequence of pages for the caller, who
    writes them one at a time. At most one page per stream waits in memory (or `depth` pages:
    one stream read ahead while the sync does something else: the incremental copy's listing)."""

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
        await cancel_all(self.tasks)
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
        self.asked: deque[asyncio.Future] = deque()  # the next pages asked for, in order

    def start(self) -> None:
        """Ask for the next page now: the caller has something else to do first."""
        if not self.asked:
            self.asked.append(asyncio.ensure_future(self._next()))

    def ahead(self) -> None:
        """Ask for one page more than those asked for, the last of which came: the caller will
        want them all."""
        self.asked.append(asyncio.ensure_future(self._next()))

    async def _next(self) -> Any:
        return await self.pages.__anext__()  # StopAsyncIteration ends the caller's loop

    async def __aenter__(self) -> Prefetch:
        return self

    def __aiter__(self) -> Prefetch:
        return self

    async def __anext__(self) -> Any:
        if not self.asked:
            self.start()
        page = await self.asked.popleft()
        if not self.asked:  # the next one, while the caller works on this one
            self.start()
        return page

    async def __aexit__(self, *_exc) -> None:
        while self.asked:
            pending = self.asked.popleft()
            if not pending.done():
                pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - not wanted any more
                pass
        closing = getattr(self.pages, "aclose", None)
        if closing is not None:
            try:
                await closing()
            except Exception:  # noqa: BLE001
                pass


class WindowStreams:
    """A far DS's dossiers (a full copy's, or the listing's light ones): windows of deposit
    date (`plan.windows`), each paged by a stream of its own (`pages_from(createdSince)`;
    `deposit_of(node)`: a dossier's deposit date as DS sent it), merged into one sequence of
    pages for the caller, who takes them one at a time. A page's dossiers past its window's
    end are dropped (the next window brings them) and its stream stops there.

    Starts with `windows` (the probe: `plan.windows.probe_streams`). As soon as an answer
    came (it may complete a step's evidence), and after every page the caller took, more
    streams are started — each on the window with the most left cut in two — when
    `plan.windows.wanted_streams` says they help: the caller waited for a page since the last
    step, and that step made DS deliver more pages a second (`round_trip(k)`: DS's round trip
    with `k` requests out, `DSClient.round_trip`); and as soon as a stream's last page came,
    another takes its place the same way (not once the caller, busy with the pages before,
    took it), so the streams stay balanced whatever the dates' distribution. At most
    `MAX_STREAMS` pages wait in memory. No checkpoint (several cursors): an interrupted
    copy resumes as one sequential stream after the pages it wrote before. `fetched` is set
    when every window was paged to its end, while the caller may still take pages read ahead."""

    def __init__(self, pages_from: Callable[[str | None], AsyncIterator[Any]], windows: tuple[Window, ...], *,
                 deposit_of: Callable[[Any], Any], round_trip: Callable[[int], float | None],
                 now: Callable[[], float], monotonic: Callable[[], float], total: int, density: float):
        self.pages_from, self.windows, self.deposit_of = pages_from, list(windows), deposit_of
        self.round_trip, self.now, self.monotonic, self.density = round_trip, now, monotonic, density
        self.total = total  # dossiers DS said it has: what is left is shared between the streams
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=MAX_STREAMS)  # pages read ahead
        self.tasks: list[asyncio.Future] = []
        self.active = 0  # streams still asking DS for pages
        self.target = len(windows)  # streams wanted: grows on evidence only
        self.before = 1  # streams that ran before the last step (the probe's came from one)
        self.step_waited_s = 0.0  # the longest the caller waited for a page since the last step
        self.waiting_since: float | None = None  # the caller waits for a page since then
        self.most = 0  # the most streams that ran at once
        self.ends = 0  # streams whose end the caller took (each puts it after its pages)
        self.fetched = asyncio.Event()  # every window paged to its end (pages may still wait in the queue)
        self.closed = False  # left: its streams stopped

    def _start(self, index: int) -> None:
        self.active += 1
        self.most = max(self.most, self.active)
        self.tasks.append(asyncio.ensure_future(self._pump(index)))

    async def _pump(self, index: int) -> None:
        start = self.windows[index].start
        pages = self.pages_from(None if start is None else iso_second(start))
        try:
            async for page in pages:
                deposits = [datetime_cell(self.deposit_of(d)) or 0.0 for d in page.nodes]
                window, kept = clip(self.windows[index], deposits, bool(page.page_info.has_next_page))
                self.windows[index] = window
                if window.done:  # another stream takes its place now, not once the caller took its page
                    self._ended(index)
                self._consider()  # its round trip may complete the step's evidence
                await self.queue.put(("page", replace(page, nodes=page.nodes[:kept])))
                if window.done:
                    break
            if not self.windows[index].done:  # DS's pages ended without saying so
                self._ended(index)
            await self.queue.put(("end", index))
        except Exception as error:  # noqa: BLE001 - raised to the caller, in order
            await self.queue.put(("error", error))
        finally:
            try:
                await pages.aclose()
            except Exception:  # noqa: BLE001 - ended or cancelled already
                pass

    def _ended(self, index: int) -> None:
        """A window paged to its end: another takes its place (`_grow`); `fetched` once none
        can (every window is done)."""
        self.windows[index] = replace(self.windows[index], done=True)
        self.active -= 1
        self._grow()
        if not self.active:
            self.fetched.set()

    def _consider(self) -> None:
        """More streams when `wanted_streams` says they help (see the class); asked as soon as
        an answer came, and when the caller took a page."""
        waiting = self.monotonic() - self.waiting_since if self.waiting_since is not None else 0.0
        wanted = wanted_streams(self.active, self.before, self.round_trip(self.before),
                                self.round_trip(self.active), max(self.step_waited_s, waiting))
        if wanted > self.target:
            self.before, self.target, self.step_waited_s = self.active, wanted, 0.0
        self._grow()

    def _consider_waiting(self, since: float) -> None:
        if self.waiting_since == since and self.ends < len(self.tasks):
            self._consider()

    def _grow(self) -> None:
        """As many streams as wanted (see the class), each on a window cut from the one with
        the most left."""
        while self.active < self.target:
            left = max(0, self.total - sum(w.count for w in self.windows))
            windows, new = split(tuple(self.windows), self.now(), self.density, left)
            if new is None:
                return
            self.windows = list(windows)
            self._start(new)

    async def __aenter__(self) -> WindowStreams:
        if not self.tasks:
            for index in range(len(self.windows)):
                self._start(index)
        return self

    def __aiter__(self) -> WindowStreams:
        return self

    async def __anext__(self) -> Any:
        asked = self.waiting_since = self.monotonic()
        if self.queue.empty():  # waiting that long is evidence too: considered then, not at the next answer
            asyncio.get_running_loop().call_later(WAITED_S, self._consider_waiting, asked)
        while self.ends < len(self.tasks):  # a stream puts its end after its pages
            kind, value = await self.queue.get()
            if kind == "page":
                self.waiting_since = None
                self.step_waited_s = max(self.step_waited_s, self.monotonic() - asked)
                self._consider()
                return value
            if kind == "error":
                self.ends, self.waiting_since = len(self.tasks), None
                raise value
            self.ends += 1
        self.waiting_since = None
        raise StopAsyncIteration

    async def __aexit__(self, *_exc) -> None:  # once: whoever started them, or whoever took them
        if not self.closed:
            self.closed = True
            await cancel_all(self.tasks)
