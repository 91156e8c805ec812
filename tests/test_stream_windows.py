"""The stream planning of a full copy from a far DS (`py_core/plan/windows.py`, pure): windows
of deposit date, clipped at their end, cut where the most is left, and one more stream only on
evidence that it helps, under DS's rate limit. Table-driven; plus a simulation that pages a
skewed procedure through the planner and checks that every dossier comes exactly once and
that the streams stay balanced; and `WindowStreams` (jobs/streams.py) acting on DS's answers as
they come, not when the writer next takes a page."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import pytest

from py_core.ds.dates import iso_second
from py_core.grist.values import datetime_cell
from py_core.jobs.streams import WindowStreams
from py_core.plan import windows as plan_windows
from py_core.plan.windows import (MAX_STREAMS, MIN_SPLIT, Window, clip, density_of, first_windows, probe_streams,
                                  remaining, split, wanted_streams)
from tests.lab import run
from tests.virtual_clock import VirtualTime

DAY = 86_400.0


@pytest.mark.parametrize("low, high, streams, expected", [
    (0.0, 100.0, 2, ((None, 50.0), (50.0, None))),
    (0.0, 90.0, 3, ((None, 30.0), (30.0, 60.0), (60.0, None))),
    (10.0, 10.0, 2, ((None, 11.0), (11.0, None))),  # one date known: still two windows, in order
    (0.0, 1.0, 4, ((None, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, None))),
])
def test_first_windows_cover_every_date_once(low, high, streams, expected):
    assert tuple((w.start, w.end) for w in first_windows(low, high, streams)) == expected


@pytest.mark.parametrize("window, deposits, has_next, kept, done, position", [
    (Window(None, 50.0), [10.0, 20.0, 30.0], True, 3, False, 30.0),  # all inside, more to come
    (Window(None, 50.0), [40.0, 50.0, 60.0], True, 1, True, 40.0),  # past the end (50: the next window's)
    (Window(50.0, None), [60.0, 70.0], True, 2, False, 70.0),  # no end: everything
    (Window(50.0, None), [60.0, 70.0], False, 2, True, 70.0),  # DS's last page
    (Window(None, 50.0, position=45.0, count=3), [55.0], True, 0, True, 45.0),  # cut before its page came
    (Window(None, 50.0), [], False, 0, True, None),  # an empty window
])
def test_a_page_is_clipped_at_its_window_end(window, deposits, has_next, kept, done, position):
    moved, count = clip(window, deposits, has_next)
    assert (count, moved.done, moved.position) == (kept, done, position)
    assert moved.count == window.count + kept


@pytest.mark.parametrize("window, now, density, expected", [
    (Window(0.0, 100.0), 1000.0, 2.0, 200.0),  # not paged yet: the procedure's density
    (Window(0.0, 100.0, position=50.0, first=0.0, count=11), 1000.0, 2.0, 10.0),  # its own: 10 in 50 s
    (Window(0.0, None, position=50.0, first=0.0, count=11), 150.0, 2.0, 20.0),  # no end: up to now
    (Window(None, 100.0), 1000.0, 2.0, 0.0),  # the first window before its first page: unknown, never cut
    (Window(0.0, 100.0, done=True), 1000.0, 2.0, 0.0),
])
def test_what_a_window_has_left(window, now, density, expected):
    assert remaining(window, now, density) == pytest.approx(expected)


@pytest.mark.parametrize("windows, now, density, index, cut", [
    # the one with the most left is cut at the middle of what it has left
    ((Window(None, 100.0, position=90.0, first=0.0, count=90), Window(100.0, None, position=110.0, first=100.0, count=11)),
     1000.0, 1.0, 1, 556.0),
    # a window done is never cut; nor one with too little left
    ((Window(None, 100.0, done=True), Window(100.0, 101.0)), 1000.0, 1.0, None, None),
    ((Window(0.0, 100.0),), 1000.0, (MIN_SPLIT - 1) / 100, None, None),
    # the first window before its first page: its start is unknown, the other one is cut
    ((Window(None, 500.0), Window(500.0, None)), 1000.0, 10.0, 1, 751.0),
])
def test_the_window_with_most_left_is_cut(windows, now, density, index, cut):
    after, new = split(windows, now, density)
    if index is None:
        assert new is None and after == windows
        return
    assert new == len(windows)
    assert after[index].end == cut and after[new].start == cut and after[new].end == windows[index].end


# Deposits faster and faster: the open window saw 300 dossiers in 3,000 s (0.1 a second), so its
# 1,000 s left look like 100, too few to cut; DS's count says 700 are left, all in it.
RISING = (Window(None, 500.0, position=499.0, first=0.0, count=260, done=True),
          Window(500.0, None, position=3500.0, first=500.0, count=301))


@pytest.mark.parametrize("left, index, cut", [
    (None, None, None),  # the window's own estimate: 100 left, one page (MIN_SPLIT): not cut
    (700, 1, 4001.0),  # DS's count: 700 left, cut in the middle of what it has left
    (MIN_SPLIT - 1, None, None),  # DS's count: too few left to be worth a cut
])
def test_dss_count_of_what_is_left_scales_the_windows_estimates(left, index, cut):
    after, new = split(RISING, 4500.0, 0.05, left)
    if index is None:
        assert new is None and after == RISING
        return
    assert new == len(RISING)
    assert after[index].end == cut and after[new].start == cut and after[new].end == RISING[index].end


@pytest.mark.parametrize("active, before, before_s, now_s, waited, expected", [
    (2, 1, 1.0, 1.1, 0.8, 4),  # far DS, answers side by side (none slowed), the copy waits: twice as many
    (2, 1, 1.0, 1.2, 0.8, 3),  # the second stream paid but slowed the first a little: one more
    (4, 3, 1.0, 1.0, 0.8, 6),  # twice as many would go over 400 requests a minute: up to the limit
    (2, 1, 1.0, 2.0, 0.8, 2),  # a DS that takes twice as long with two out (CPU time): no more
    (2, 1, 1.0, 1.1, 0.0, 2),  # the copy did not wait for its page: pages come fast enough
    (2, 1, 1.0, None, 0.8, 2),  # no answer with two out yet: no evidence
    (2, 1, None, 1.0, 0.8, 2),
    (MAX_STREAMS, MAX_STREAMS - 1, 1.0, 1.0, 0.8, MAX_STREAMS),  # never above the cap
    (2, 1, 0.1, 0.1, 0.8, 2),  # 0.1 s round trips: a third stream would go over 400 requests a minute
    (4, 3, 0.5, 0.6, 0.8, 4),  # 5 streams × 2 a second > 400 × 0.9 a minute
    (3, 2, 0.8, 0.9, 0.8, 5),  # none slowed: twice as many, but 6 × 60 / 0.9 > 400 × 0.9
    (3, 2, 0.8, 0.95, 0.8, 4),
    # the third stream paid, though each answer waits longer (a DS some of whose time is CPU):
    # 3 pages in 2.0 s against 2 in 1.6 s, 20 % more a second: one more
    (3, 2, 1.6, 2.0, 0.8, 4),
    (3, 2, 1.6, 2.2, 0.8, 3),  # 3 in 2.2 s against 2 in 1.6 s: 9 % more, not worth a stream
    (4, 3, 1.6, 1.85, 0.8, 6),  # the fourth paid (15 % more a second) though slowed: half as many again
    (6, 4, 1.9, 2.2, 0.8, 8),  # and again (13 % more a second for each stream), to the cap
    (6, 4, 1.9, 2.6, 0.8, 6),  # 6 in 2.6 s against 4 in 1.9 s: 10 % more, no more
    (3, 2, 2.0, 3.0, 0.8, 3),  # one worker: 3 pages take 3 times one page's time
    (1, 1, 1.0, 1.0, 0.8, 1),  # one stream: the probe (two windows) decides, not this
    (4, 2, 1.0, 1.05, 0.8, 6),  # the step from two to four paid: on, up to the rate limit
    (4, 2, 1.0, 2.3, 0.8, 4),  # four pages in 2.3 s against two in 1 s: not worth more
])
def test_more_streams_only_when_the_last_step_paid_and_under_the_rate_limit(active, before, before_s, now_s, waited, expected):
    assert wanted_streams(active, before, before_s, now_s, waited) == expected


@pytest.mark.parametrize("structure_s, page_s, expected", [
    (1.0, 1.0, 4),  # DS's time is distance: four windows at once, while the tables are made
    (1.2, 1.45, 4),  # a page costs it a little (0.25 s beside 1.2 s of distance)
    (1.0, 1.6, 2),  # a page costs it 0.6 s of work beside 1 s: two, more only on evidence
    (0.6, 2.5, 2),  # a wide form's pages (its CPU), far or not
    (0.6, 0.6, 3),  # 4 round trips of 0.6 s a second would pass 90 % of 400 a minute
    (0.5, 0.55, 3),
    (3.0, 3.2, 4),  # never more than four before the copy waited
])
def test_a_far_ds_s_first_windows_are_as_many_as_its_distance_and_its_rate_allow(structure_s, page_s, expected):
    assert probe_streams(structure_s, page_s) == expected


def test_the_rate_limit_holds_for_any_round_trip():
    for round_trip in (0.05, 0.2, 0.5, 1.0, 2.0, 5.0):
        assert probe_streams(round_trip, round_trip) * 60 / round_trip <= 400 or round_trip < 0.5, round_trip
        streams = 2
        before = 1
        while (more := wanted_streams(streams, before, round_trip, round_trip, 1.0)) > streams:
            before, streams = streams, more
        assert streams * 60 / round_trip <= 400 or streams == 2, (round_trip, streams)


def simulate(deposits: list[float], now: float, streams: int = 6, page: int = 100, ramp: tuple[int, ...] = ()):
    """Page sorted `deposits` through the planner: `streams` at once (`ramp`: as many in the
    first rounds, as a copy grows its streams on evidence), round-robin, every page clipped, a
    window cut whenever fewer than wanted run. Returns (every deposit brought, requests,
    rounds: the requests' round trips one after the other, the copy's time)."""
    windows = first_windows(deposits[0], now, 2)
    density = density_of(len(deposits), deposits[0], now)
    cursors: dict[int, int] = {}  # window → index of the next deposit its stream gets
    brought, requests, rounds = [], 0, 0
    while True:
        rounds += 1
        while sum(1 for w in windows if not w.done) < (ramp[rounds - 1] if rounds <= len(ramp) else streams):
            left = len(deposits) - len(brought)
            windows, new = split(windows, now, density, left)
            if new is None:
                break
        open_ = [i for i, w in enumerate(windows) if not w.done]
        if not open_:
            return brought, requests, rounds - 1
        for i in open_:
            start = windows[i].start
            at = cursors.get(i, next((k for k, d in enumerate(deposits) if start is None or d >= start), len(deposits)))
            chunk = deposits[at:at + page]
            requests += 1
            windows_i, kept = clip(windows[i], chunk, at + page < len(deposits))
            windows = (*windows[:i], windows_i, *windows[i + 1:])
            brought += chunk[:kept]
            cursors[i] = at + kept


@pytest.mark.parametrize("shape", ["even", "campaign", "one day"])
def test_any_distribution_is_paged_once_by_balanced_streams(shape):
    rng = random.Random(7)
    now = 200 * DAY
    draw = {"even": lambda: rng.uniform(0, now - DAY),
            "campaign": lambda: rng.uniform(180 * DAY, 190 * DAY) if rng.random() < 0.8 else rng.uniform(0, now - DAY),
            "one day": lambda: rng.uniform(100 * DAY, 101 * DAY)}[shape]
    deposits = sorted(float(int(draw())) for _ in range(5000))
    brought, requests, rounds = simulate(deposits, now)
    assert sorted(brought) == deposits, "every dossier once: none lost, none twice"
    assert requests <= 50 * 1.35, "a page more per cut at most, not twice the requests"
    # streams that grow from two to seven, as a copy's on evidence: the first cuts know little
    brought, requests, rounds = simulate(deposits, now, 7, ramp=(2, 4))
    assert sorted(brought) == deposits
    assert requests <= 50 * 1.3 and rounds <= 0.3 * 50, "halves of what is left: few cuts, each a page at most"
    # balanced: six streams page the 50 pages in little more than 50 / 6 round trips (one
    # stream per state, 80 % in one state, took 40)
    assert rounds <= 0.3 * 50, rounds


@dataclass
class _Info:
    has_next_page: bool = True


@dataclass
class _Page:
    """A page of dossiers as `WindowStreams` takes it (nodes: their deposit dates as DS sends them)."""
    nodes: list
    page_info: _Info


def test_the_streams_grow_as_soon_as_a_step_s_answers_came_not_when_the_writer_next_takes_a_page(monkeypatch):
    """The evidence for a step is complete when its last answer came: the streams grow then,
    while the writer is still busy with the page before (it waited for it). Here the probe's
    two windows answer in 0.05 s and 0.15 s; the writer takes the first page, then is busy for
    a second: two more streams start within it, when the second answer came."""

    monkeypatch.setattr(plan_windows, "WAITED_S", 0.01)

    started: list[str | None] = []
    out = [0]
    answers: list[int] = []  # how many requests were out at most while each one was

    async def pages_from(since):
        started.append(since)
        first = datetime_cell(since) if since else 0.0
        for page in range(100):
            out[0] += 1
            most = out[0]
            await asyncio.sleep(0.05 if since is None else 0.15)
            most, out[0] = max(most, out[0]), out[0] - 1
            answers.append(most)
            yield _Page([{"dateDepot": iso_second(first + 100.0 * (10 * page + i))} for i in range(10)], _Info())

    def round_trip(streams):  # as `DSClient.round_trip`: measured once `streams` answers came with that many out
        return 1.0 if sum(1 for n in answers if n == streams) >= streams or streams == 1 else None

    async def scenario():
        windows = WindowStreams(pages_from, first_windows(0.0, 1_000_000.0), deposit_of=lambda n: n["dateDepot"],
                                round_trip=round_trip, now=lambda: 1_000_000.0, monotonic=time.monotonic,
                                total=10_000, density=0.01)
        async with windows:
            await windows.__anext__()  # waited for: the step's evidence may count
            for _ in range(100):  # the writer is busy with that page
                if len(started) >= 4:
                    break
                await asyncio.sleep(0.01)
            return len(started)

    assert run(scenario()) == 4


def test_a_window_paged_to_its_end_is_replaced_at_once_not_once_the_writer_took_its_last_page():
    """Pages wait in the queue while the writer is busy: a stream that reached its window's
    end hands over to a new one (cut from the window with the most left) as soon as its last
    page came, so the streams keep DS busy whatever the writer's backlog."""

    started: list[str | None] = []

    async def pages_from(since):
        started.append(since)
        first = datetime_cell(since) if since else 0.0
        for page in range(100):
            await asyncio.sleep(0.02)
            # the first window's first page already goes past its end (500,000)
            step = 60_000.0 if since is None else 100.0
            yield _Page([{"dateDepot": iso_second(first + step * (10 * page + i))} for i in range(10)], _Info())

    async def scenario():
        windows = WindowStreams(pages_from, first_windows(0.0, 1_000_000.0), deposit_of=lambda n: n["dateDepot"],
                                round_trip=lambda streams: None, now=lambda: 1_000_000.0, monotonic=time.monotonic,
                                total=10_000, density=0.01)
        async with windows:  # the writer takes nothing yet: busy elsewhere
            for _ in range(50):
                if len(started) >= 3:
                    break
                await asyncio.sleep(0.01)
            return len(started)

    assert run(scenario()) == 3


def test_a_writer_waiting_is_evidence_once_it_waited_long_enough_not_at_the_next_answer():
    """Two windows answer every second (side by side: DS is far). The writer, busy until
    1.5 s, takes the two pages waiting for it, then waits for the next: once it waited
    `WAITED_S`, two more streams start (1.75 s), not when the next answers come (2 s)."""
    time_ = VirtualTime()
    started: list[float] = []

    async def pages_from(since):
        started.append(time_.t)
        first = datetime_cell(since) if since else 0.0
        for page in range(100):
            await asyncio.sleep(1.0)
            yield _Page([{"dateDepot": iso_second(first + 100.0 * (10 * page + i))} for i in range(10)], _Info())

    async def scenario():
        windows = WindowStreams(pages_from, first_windows(0.0, 1_000_000.0), deposit_of=lambda n: n["dateDepot"],
                                round_trip=lambda out: 1.0 if out <= 2 else None,  # the step to four: no answer yet
                                now=lambda: 1_000_000.0, monotonic=lambda: time_.t,
                                total=10_000, density=0.01)
        async with windows:
            await asyncio.sleep(1.5)  # the writer makes its tables
            await windows.__anext__()
            await windows.__anext__()
            await windows.__anext__()  # waited for
            return started

    assert time_.run(scenario()) == [0.0, 0.0, 1.5 + plan_windows.WAITED_S, 1.5 + plan_windows.WAITED_S]
