"""A full copy of a far DS in virtual time: the real core (`synchronise`, the streams, the DS
client and its pacing), the fake DS in-process (`FakeDSTransport`: the real schema), Grist's
engine as the document; time is the event loop's own, moved on only while every task waits.
DS answers each request `--latency` s after it left (side by side: a far DS), and Grist takes
a modelled time to apply each bundle (`--row-s` a record written, `--action-s` a schema action;
the defaults are what the widget measured in grist-static: 11 s of Grist for the 5,000 dossiers
of `run.py`, 1.5 s to prepare the tables). Nothing else costs time: the figures are the
schedule's (when pages are asked, when the copy waits), free of a shared machine's noise, to
compare strategies in seconds rather than minutes; the browser benchmark (`run.py`) has the
final word.

    python3 -m tests.bench.virtual [--dossiers 5000] [--latency 1.2] [--procedure skewed,sample]

Prints, per procedure: the copy's time against one sequential stream's (the honest floor:
each page asked as the one before came, written meanwhile), its DS requests and the pages'
fill, the streams over time. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from typing import Any

from demo.fake_ds import FakeDSServer, FakeDSStore
from demo.fake_ds.transport import FakeDSTransport
from py_core.clock import Clock
from py_core.ds.client import PAGE_SIZE, DSClient
from py_core.jobs import streams
from py_core.jobs.copy import Copy, synchronise
from py_core.jobs.params import parse_params
from py_core.progress import Progress
from tests.bench.workloads import sample, skewed
from tests.grist_engine import EngineSink
from tests.virtual_clock import VirtualTime

TOKEN, URL = "jeton-virtuel", "http://ds.invalid/api/v2/graphql"
SCHEMA_ACTIONS = {"AddTable", "AddColumn", "ModifyColumn", "RenameColumn", "AddEmptyTable", "AddRawTable",
                  "CreateViewSection", "AddView"}


class TimedSink(EngineSink):
    """Grist's engine, each bundle taking the time the widget's Grist takes (modelled)."""

    def __init__(self, row_s: float, action_s: float):
        super().__init__("Europe/Paris")
        self.row_s, self.action_s, self.busy = row_s, action_s, 0.0
        self.counts: Counter = Counter()  # records written, schema actions
        self.spans: list[tuple[float, float]] = []  # each bundle: when it began, how long it took

    def cost(self, actions: list[list[Any]]) -> float:
        seconds = 0.0
        for action in actions:
            if action[0] in SCHEMA_ACTIONS:
                seconds += self.action_s
                self.counts["schema"] += 1
            else:
                records = len(action[2]) if action[0].startswith("Bulk") else 1
                seconds += self.row_s * records
                self.counts["records"] += records
        return seconds

    async def apply(self, actions: list[list[Any]]) -> list[Any]:
        seconds = self.cost(actions)
        self.busy += seconds
        self.spans.append((asyncio.get_running_loop().time(), seconds))
        await asyncio.sleep(seconds)
        return await super().apply(actions)


def copy(procedure, latency: float, row_s: float, action_s: float, prepare_s: float) -> dict[str, Any]:
    time = VirtualTime()
    prepare = Copy._prepare

    def timed_prepare(self, dossiers, schema, writer):  # OTP's own work blocks its loop meanwhile
        time.t += prepare_s * len(dossiers) / PAGE_SIZE
        return prepare(self, dossiers, schema, writer)

    Copy._prepare = timed_prepare
    store = FakeDSStore([procedure])
    base = store.wall()
    store.wall = lambda: base + time.t  # DS's clock (its `Date`), as virtual
    server = FakeDSServer(store, tokens={TOKEN: "all"}, latency=latency)
    sink = TimedSink(row_s, action_s)
    clock = Clock(now=lambda: base + time.t, monotonic=lambda: time.t, sleep=asyncio.sleep)
    params = parse_params({"demarche": str(procedure.number), "token": TOKEN, "endpoint": URL, "holder": "virtuel/onglet"})
    asked: list[float] = []
    answer = server.answer

    def noted(path, authorization, body):
        delay, respond = answer(path, authorization, body)
        left, variables = time.t, (json.loads(body).get("variables") or {})

        def counted():
            reply = respond()
            nodes = ((json.loads(reply.body).get("data") or {}).get("demarche") or {}).get("dossiers", {}).get("nodes")
            if nodes is not None:
                since = variables.get("createdSince") or ("modif." if variables.get("updatedSince") else "")
                asked.append((left, time.t, len(nodes), (since or "")[5:16]))
            return reply
        return delay, counted

    server.answer = noted
    kept: list[int] = []
    clip = streams.clip

    def counted_clip(window, deposits, has_next):
        window, count = clip(window, deposits, has_next)
        kept.append(count)
        return window, count

    streams.clip = counted_clip
    ds = DSClient(URL, TOKEN, FakeDSTransport(server, asyncio.sleep), progress=Progress(), clock=clock)
    try:
        server.start()  # its files' links need an address; the copy asks it through `FakeDSTransport`
        began = time.t
        result = time.run(synchronise(params, ds, sink))
        elapsed = time.t - began
    finally:
        server.stop()
        Copy._prepare = prepare
        streams.clip = clip
    pages = [r for r in server.requests if r.operation_name == "otpDossiers"]
    count = len(procedure.dossiers)
    return {"elapsed": elapsed, "result": result, "requests": Counter(r.operation_name for r in server.requests),
            "pages": len(pages), "floor": (1 + -(-count // PAGE_SIZE)) * latency, "grist": sink.busy, "counts": dict(sink.counts), "spans": sink.spans,
            "asked": asked, "fill": count / max(1, len(pages) * PAGE_SIZE), "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=1.2)
    parser.add_argument("--row-s", type=float, default=0.0003)
    parser.add_argument("--action-s", type=float, default=0.035)
    parser.add_argument("--timeline", action="store_true")
    parser.add_argument("--prepare-s", type=float, default=0.05)
    parser.add_argument("--procedure", default="skewed,sample")
    args = parser.parse_args()
    makers = {"skewed": lambda: skewed(4343, args.dossiers), "sample": lambda: sample(4242, args.dossiers)}
    for name in args.procedure.split(","):
        figures = copy(makers[name](), args.latency, args.row_s, args.action_s, args.prepare_s)
        result = figures["result"]
        print(f"{name}: {figures['elapsed']:.1f} s against one stream's {figures['floor']:.1f} s "
              f"({figures['elapsed'] / figures['floor']:.2f}×); Grist {figures['grist']:.1f} s; "
              f"waited for pages {result.waited_s:.1f} s; {dict(figures['requests'])}; "
              f"pages {figures['pages']}, filled {figures['fill']:.0%}; Grist's work {figures['counts']}")
        if args.timeline:
            print("  pages asked/answered (s), dossiers, window: " + ", ".join(
                f"{a:.1f}/{b:.1f} {n} {w}" for a, b, n, w in figures["asked"]))
            idle, end = [], 0.0
            for began, seconds in figures["spans"]:
                if began - end > 0.1:
                    idle.append(f"{end:.1f}–{began:.1f}")
                end = max(end, began + seconds)
            print("  Grist idle (s): " + ", ".join(idle))
            print("  windows' pages, dossiers kept: " + " ".join(map(str, figures["kept"])))


if __name__ == "__main__":
    main()
