"""Benchmark: a full sync then an incremental one, in headless Chromium with grist-static.

    python3 -m tests.bench_sync [--dossiers 1000] [--seed 1]

Prints figures (not a test): widget start-up, full sync time and rate, DS requests, incremental
sync time. Needs the built widget (`python3 build.py`) and Debian chromium.
"""

from __future__ import annotations

import argparse
import time

from playwright.sync_api import sync_playwright

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from tests.e2e.harness import Host, StaticServer, ensure_built, launch_chromium

TOKEN = "jeton-benchmark"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    ensure_built()
    started = time.perf_counter()
    store = FakeDSStore([sample_procedure(number=4242, dossier_count=args.dossiers, seed=args.seed)])
    print(f"sample data: {args.dossiers} dossiers generated in {time.perf_counter() - started:.1f} s")
    with FakeDSServer(store, tokens={TOKEN: "all"}) as ds, StaticServer() as pages, sync_playwright() as pw:
        browser = launch_chromium(pw)
        host = Host(browser.new_page(), pages.url)
        t0 = time.perf_counter()
        host.open(demarche=4242, endpoint=ds.url, token=TOKEN, timeout=120)
        t1 = time.perf_counter()
        host.wait_widget_ready(timeout=120)
        t2 = time.perf_counter()
        print(f"grist-static document open: {t1 - t0:.1f} s; widget ready (Python loaded): {t2 - t1:.1f} s")

        for label in ("full", "incremental (nothing changed)"):
            before = len(ds.requests)
            t = time.perf_counter()
            result = host.sync(timeout=1800)
            elapsed = time.perf_counter() - t
            assert result["state"] == "done", result
            summary = result["result"]
            requests = len(ds.requests) - before
            print(f"{label} sync: {elapsed:.1f} s, {summary['fetched']} dossiers received "
                  f"({summary['fetched'] / elapsed:.0f}/s), {requests} DS requests "
                  f"({requests * 1000 / max(args.dossiers, 1):.1f} per 1,000 dossiers) — {result['text']}")
        counts = {t: len(host.fetch_table(t)["id"]) for t in host.table_ids() if t.startswith("D4242_")}
        print("rows:", ", ".join(f"{t}={n}" for t, n in counts.items()))
        browser.close()


if __name__ == "__main__":
    main()
