"""The incremental sync's listing from a far DS, request by request (CPython, Grist's engine as
the document, the fake DS over HTTP with `--latency` s added to every answer):

    python3 -m tests.bench.listing [--dossiers 5000] [--procedure sample|skewed] [--latency 1.0] [--full]

Copies the procedure, re-syncs it once (settled), then re-syncs it with the latency and prints
the time, the requests, and when each light page was asked for and answered, with the deposit
date its window starts at (none: the sequential stream). `--full`: the first copy instead, with
the latency (its pages, then its windows). Not a test: figures to read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from demo.fake_ds import FakeDSStore, sample_procedure
from py_core.jobs.copy import synchronise
from tests.bench.workloads import skewed
from tests.lab import Lab


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dossiers", type=int, default=5000)
    parser.add_argument("--procedure", choices=("sample", "skewed"), default="sample")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--full", action="store_true", help="the first copy, not the re-sync")
    args = parser.parse_args()
    lab = Lab(dossiers=1)
    procedure = sample_procedure(number=lab.number, dossier_count=args.dossiers, seed=3) if args.procedure == "sample" \
        else skewed(lab.number, args.dossiers)
    lab.store = FakeDSStore([procedure])
    lab.server.store = lab.store
    with lab:
        for _ in range(0 if args.full else 2):  # copied, then settled (the dossiers of its last second read again)
            asyncio.run(synchronise(lab.params(), lab.client(), lab.sink))
        lab.server.latency = args.latency
        before, started = len(lab.server.requests), time.monotonic()
        result = asyncio.run(synchronise(lab.params(), lab.client(), lab.sink))
        print(f"{'full copy' if args.full else 're-sync, nothing changed'}, {args.dossiers:,} dossiers ({args.procedure}), {args.latency:g} s DS latency: "
              f"{time.monotonic() - started:.1f} s, {result.ds_requests} requests, load {os.getloadavg()[0]:.1f}")
        print("asked  answered  query  window start")
        for request in lab.server.requests[before:]:
            answered = getattr(request, "answered", None)
            print(f"{request.received - started:6.2f}  {(answered or started) - started:6.2f}  {request.operation_name}  "
                  f"{(request.variables or {}).get('createdSince') or ''}")


if __name__ == "__main__":
    main()
