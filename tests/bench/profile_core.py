"""Profile the core under CPython: a whole sync against the fake DS (real HTTP) with Grist's
own engine as the document (tests/lab.py), under cProfile. Prints where the time goes.

    python3 -m tests.bench.profile_core [--dossiers 2000] [--wide] [--resync] [--top 40]

Not a test. The fake DS runs in threads of this process (its time is not in the profile but
it takes the GIL: compare wall times with care, and note the load).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import time

from tests.lab import Lab, no_sleep  # noqa: F401
from py_core.jobs.copy import synchronise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dossiers", type=int, default=2000)
    parser.add_argument("--wide", action="store_true", help="the 300-champ form (1,000 dossiers by default)")
    parser.add_argument("--resync", action="store_true", help="profile the second sync (nothing changed)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="cumulative")
    args = parser.parse_args()

    lab = Lab(dossiers=1)
    if args.wide:
        from tests.bench.workloads import wide_procedure
        from demo.fake_ds import FakeDSStore
        lab.store = FakeDSStore([wide_procedure(number=lab.number, dossier_count=args.dossiers)])
        lab.server.store = lab.store
    else:
        from demo.fake_ds import FakeDSStore, sample_procedure
        lab.store = FakeDSStore([sample_procedure(number=lab.number, dossier_count=args.dossiers, seed=3)])
        lab.server.store = lab.store
    with lab:
        def once():
            return asyncio.run(synchronise(lab.params(), lab.client(), lab.sink))
        if args.resync:
            once()
        profiler = cProfile.Profile()
        t = time.perf_counter()
        profiler.enable()
        result = once()
        profiler.disable()
        wall = time.perf_counter() - t
        print(f"load {os.getloadavg()[0]:.2f}; sync: {wall:.2f} s wall, {result.fetched} dossiers, "
              f"{result.ds_requests} DS requests, sink calls {lab.sink.calls}; {result.message}")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
