"""How a far DS's dossiers are split into streams (pure): windows of deposit date, for a full
copy's pages and for an incremental sync's listing.

DS orders a procedure's dossiers by deposit date when no `updatedSince` is sent, and
`createdSince` starts a stream at a deposit date (inclusive). A dossier's deposit date never
changes, so windows of deposit date `[start, end)` split the dossiers into parts that do not
overlap and that no dossier leaves while they are paged (unlike states: a dossier changing
state meanwhile left one stream for another). Each window is paged by one stream; a page's
dossiers deposited at or after its window's end belong to the next window and are dropped
(`clip`), and the stream stops there.

Balanced whatever the distribution: when a stream ends, or when one more is wanted, the window
with the most dossiers left (its remaining span of dates times the density of deposits it has
seen) is cut in two at the middle of what it has left (`split`): the stream paging it stops at
the cut, a new one starts there. The windows are never known to be even in advance, only
made so as they are paged.

A far DS's copy starts with `probe_streams` windows: four when DS's time is its distance
(the first page, out beside the structure, took it little more than the structure), else two.
More streams are wanted (`wanted_streams`) only on evidence that they help: the writer waited
for its pages, and the stream added last made DS deliver more pages a second (`GAIN`): `k`
answers at once in the time of `k` requests out, against `j` in the time of `j` out before the
last step; when it slowed none of them, twice as many (as TCP's slow start), else half as many
again (each more helps less: the first step that does not pay stops the growth).
A DS that serves its requests side by side (a far one: the time is distance or its workers)
answers `k` at once about as fast as one, and every stream adds pages; a DS whose pages cost
CPU time on one worker (a wide form) answers two at once in twice the time: no gain, no third
stream. Never more than DS's 400 requests a minute (`RATE_LIMIT`), nor `MAX_STREAMS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MAX_STREAMS = 8
GAIN = 1.15  # the stream added last brought at least this many times the pages a second: one more may too
SIDE_BY_SIDE = 1.15  # DS answered `k` at once within this of `k - 1`: it slowed none of them, twice as many may run
RATE_LIMIT = 400  # requests a minute (DS's limit per token)
RATE_MARGIN = 0.9  # of it, for the streams (the listing, the bin, a retry)
PROBE_STREAMS = 4  # windows a far DS's copy starts with, when a page costs DS little beside its distance
PAGE_WORK = 0.5  # a page took DS at most this share of the structure's round trip more: little beside its distance
MIN_SPLIT = 100  # dossiers: a window with no more left is not cut (one page: a cut would save no round trip)
WAITED_S = 0.25  # the writer waited this long for a page: pages come slower than it writes


@dataclass(frozen=True)
class Window:
    """Dossiers deposited in `[start, end)` (seconds; None: from the first one / no end),
    paged by one stream: `first` and `position` are the deposit dates of the first and last
    dossiers it brought, `count` how many it brought."""

    start: float | None
    end: float | None
    position: float | None = None
    count: int = 0
    done: bool = False
    first: float | None = None


def first_windows(low: float, high: float, streams: int = 2, *, start: float | None = None) -> tuple[Window, ...]:
    """`streams` windows covering every deposit date from `start` (None: from the very first
    dossier), the last without end (dossiers deposited during the copy), cut evenly between
    `low` and `high` (the deposit dates known so far, DS's clock)."""
    high = max(high, low + streams)
    cuts = [float(math.floor(low + (high - low) * i / streams)) for i in range(1, streams)]
    bounds = [start, *cuts, None]
    return tuple(Window(bounds[i], bounds[i + 1]) for i in range(streams))


def clip(window: Window, deposits: list[float], has_next: bool) -> tuple[Window, int]:
    """A page of the window's stream arrived, its dossiers' deposit dates in order: how many
    of them (from the first) belong to the window, and the window moved past them (done when
    the page went past its end or was DS's last)."""
    kept = len(deposits) if window.end is None else sum(1 for d in deposits if d < window.end)
    position = deposits[kept - 1] if kept else window.position
    first = window.first if window.first is not None or not kept else deposits[0]
    done = kept < len(deposits) or not has_next
    return replace(window, position=position, first=first, count=window.count + kept, done=done), kept


def _span_left(window: Window, now: float) -> tuple[float, float] | None:
    """The deposit dates a window has still to page, `[begin, end)`; None when unknown (the
    first window before its first page) or done."""
    begin = window.position if window.position is not None else window.start
    if window.done or begin is None:
        return None
    return begin, window.end if window.end is not None else max(now, begin)


def _density(window: Window, density: float) -> float:
    """Deposits per second the window has seen (from its second dossier on), else `density`."""
    seen = window.position - window.first if window.position is not None and window.first is not None else 0.0
    return (window.count - 1) / seen if window.count >= 2 and seen > 0 else density


def remaining(window: Window, now: float, density: float) -> float:
    """An estimate of the dossiers left in `window`: its span left times the density of its
    deposits (per second) seen so far, or `density` (the procedure's) before it has seen two."""
    span = _span_left(window, now)
    if span is None:
        return 0.0
    return max(0.0, span[1] - span[0]) * _density(window, density)


def split(windows: tuple[Window, ...], now: float, density: float,
          left: float | None = None) -> tuple[tuple[Window, ...], int | None]:
    """Cut the window with the most dossiers left in the middle of what it has left (its
    stream keeps the first half, a new one takes the second): the windows after the cut, and
    the index of the new one (None: none is worth cutting). As work stealing, halves: a cut
    costs a page (the stream that keeps the first half ends on a page it does not fill), and
    a half that proves nearly empty (deposits come in bursts: a campaign's last weeks) is soon
    paged, its stream then cutting what is left of the other. `left`, when known (DS's count
    less what the streams brought), scales the windows' estimates to it: they say where the
    dossiers left are, DS's count how many (deposits that come faster and faster would
    otherwise look like too few to be worth a cut)."""
    open_ = [(remaining(w, now, density), i) for i, w in enumerate(windows) if _span_left(w, now) is not None]
    known = sum(estimate for estimate, _ in open_)
    scale = left / known if left is not None and known > 0 else 1.0
    open_ = [(estimate * scale, i) for estimate, i in open_]
    paged = [(estimate, i) for estimate, i in open_ if windows[i].count]
    open_ = paged or open_  # what a window has left is known once it brought a page: those first
    if not open_:
        return windows, None
    most, index = max(open_)
    window = windows[index]
    begin, end = _span_left(window, now) or (0.0, 0.0)
    if most <= MIN_SPLIT or end - begin < 2:
        return windows, None
    cut = float(math.floor(begin + (end - begin) / 2)) + 1  # after `begin`: nothing already brought is paged again
    if window.end is not None and cut >= window.end:
        return windows, None
    shortened = replace(window, end=cut)
    return (*windows[:index], shortened, *windows[index + 1:], Window(cut, window.end)), len(windows)


def wanted_streams(active: int, before: int, before_s: float | None, now_s: float | None, waited_s: float) -> int:
    """How many streams should run, `active` running and `before` before the last step: more
    when the writer waited for its last page (`waited_s`) and that step paid (`GAIN`): DS
    answered `active` requests out in `now_s` against `before` in `before_s` (round trips;
    None: not measured yet), that is more pages a second. Half as many again (at least one);
    twice as many when the step slowed none of the answers (`SIDE_BY_SIDE`: DS serves them side
    by side). Each step waits for answers with its streams out: a far DS's first steps need not
    take a round trip per stream. Never above DS's rate limit for round trips that long, nor
    `MAX_STREAMS`."""
    if waited_s < WAITED_S or before_s is None or now_s is None or active < 2 or before >= active:
        return active
    if active / now_s < GAIN * before / before_s:
        return active
    more = 2 * active if now_s <= SIDE_BY_SIDE * before_s else active + max(1, active // 2)
    return max(active, min(more, MAX_STREAMS, rate_cap(now_s)))


def probe_streams(structure_s: float, page_s: float) -> int:
    """How many windows a far DS's copy starts with, from DS's round trips for the structure
    and for the first page (out at once): `PROBE_STREAMS` when the page took it little more
    than the structure (`PAGE_WORK`): its time is distance, and requests that travel do not
    slow each other; two when a page costs it work (a wide form: its workers' CPU), whose
    answers two at once may already slow. Never above DS's rate limit for round trips that long."""
    if page_s - structure_s > PAGE_WORK * structure_s:
        return 2
    return max(2, min(PROBE_STREAMS, rate_cap(min(structure_s, page_s))))


def rate_cap(round_trip_s: float) -> int:
    """The most streams DS's limit allows (`RATE_MARGIN` of its `RATE_LIMIT` requests a
    minute) when each answer takes `round_trip_s`."""
    return math.floor(RATE_LIMIT * RATE_MARGIN / 60 * round_trip_s)


def density_of(total: int, low: float, now: float) -> float:
    """Deposits per second over the procedure's life so far (a window's before it has its own)."""
    return total / max(now - low, 1.0)
