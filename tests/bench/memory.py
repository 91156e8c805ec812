"""Memory of a whole sync as the number of dossiers grows, under CPython (tests/lab.py: the fake
DS over HTTP, Grist's own engine as the document), measured with tracemalloc.

    python3 -m tests.bench.memory [--dossiers 5000,20000]

The fake DS runs in a process of its own (its memory is not counted). For each page written
(each progress event) it records the memory held when the page starts and
the peak reached while it is fetched, built, diffed and written. « per page » is the largest
peak above the memory held at the page's start: it must not grow with the pages already fetched.
What is held grows with the rows (OTP's row index, and here the document itself, since Grist's
engine runs in this process). Prints figures; asserts nothing. Slow (tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import tracemalloc

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from py_core.ds.client import DSClient
from py_core.jobs.copy import synchronise
from py_core.jobs.params import parse_params
from py_core.progress import Progress
from py_core.ds.transport import UrllibTransport
from tests.grist_engine import EngineSink
from tests.lab import NUMBER, TOKEN

MB = 2**20


def _serve(dossiers: int, conn) -> None:
    store = FakeDSStore([sample_procedure(number=NUMBER, dossier_count=dossiers, seed=3)])
    with FakeDSServer(store, tokens={TOKEN: "all"}) as server:
        conn.send(server.url)
        conn.recv()  # until told to stop


def measure(dossiers: int) -> dict:
    ours, theirs = multiprocessing.Pipe()
    ds = multiprocessing.get_context("fork").Process(target=_serve, args=(dossiers, theirs), daemon=True)
    ds.start()
    url = ours.recv()
    sink = EngineSink("Europe/Paris")
    params = parse_params({"demarche": str(NUMBER), "token": TOKEN, "endpoint": url, "holder": "banc/memoire"})
    pages: list[tuple[int, int]] = []  # (held at the page's start, peak during it)
    held = [0]

    steps: list[tuple[float, str]] = []  # (peak, the step that reached it)
    last = ["start"]

    def on_event(event: dict) -> None:
        if event.get("kind") in ("progress", "phase"):
            current, peak = tracemalloc.get_traced_memory()
            steps.append((peak / MB, last[0]))
            last[0] = str(event.get("message", ""))[:40]
            if event["kind"] == "progress":
                pages.append((held[0], peak))
                held[0] = current
            tracemalloc.reset_peak()

    try:
        tracemalloc.start()
        held[0] = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        client = DSClient(url, TOKEN, UrllibTransport(timeout=300), progress=Progress(on_event))
        result = asyncio.run(synchronise(params, client, sink))
        seconds = time.perf_counter() - started
        end_held, end_peak = tracemalloc.get_traced_memory()
        steps.append((end_peak / MB, last[0]))
        tracemalloc.stop()
    finally:
        ours.send("stop")
        ds.join(10)
    per_page = max((peak - start for start, peak in pages[1:]), default=0)
    return {"dossiers": dossiers, "seconds": seconds, "pages": len(pages) - 1, "per_page_mb": per_page / MB,
            "held_mb": end_held / MB, "peak_mb": max(end_peak, *(p for _, p in pages)) / MB,
            "first_pages_mb": [round((p - s) / MB, 1) for s, p in pages[1:4]],
            "last_pages_mb": [round((p - s) / MB, 1) for s, p in pages[-3:]], "message": result.message,
            "highest": sorted(steps, reverse=True)[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", default="5000,20000")
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}")
    print("| dossiers | pages | peak above what the page started with (largest) | first pages | last pages | held at the end | peak | time |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(x) for x in args.dossiers.split(",")):
        m = measure(n)
        print(f"| {n:,} | {m['pages']} | {m['per_page_mb']:.1f} MB | {m['first_pages_mb']} MB | {m['last_pages_mb']} MB | "
              f"{m['held_mb']:.0f} MB | {m['peak_mb']:.0f} MB | {m['seconds']:.0f} s |", flush=True)
        print("  highest peaks, in the step after: " + "; ".join(f"{mb:.0f} MB « {what} »" for mb, what in m["highest"]))


if __name__ == "__main__":
    main()
