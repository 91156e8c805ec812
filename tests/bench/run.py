"""Benchmark of issues 12 and 22: OTP against two bare floor widgets, same run, one table.

    python3 -m tests.bench_sync [--dossiers 5000] [--wide 1000] [--latency 1.0] [--skip-latency]
                                [--only sample,wide,latency,skewed] [--floors honest,waiting] [--runs 3]
                                [--threads] [--timeline]

Headless Chromium (Debian's), grist-static, the fake DS on 127.0.0.1 (same process, its own
threads), the built widget driven as an agent would (form filled, « Synchroniser » clicked).
The floors (`tests/bench/floor/index.html`) page the same query 100 per request and write the
rows untyped, one bundle per page with one BulkAddRecord per table, no diff: the **honest**
floor asks for page k+1 as soon as page k came and writes page k meanwhile (it never waits
longer than DS makes it: the ratio that counts is against it); the **waiting** floor (issue
12's) asks for page k+1 only once page k is written.

Scenarios: `sample` (the sample procedure, full sync and re-syncs), `wide` (a 300-champ form),
`latency` (the sample with `--latency` s added to every DS answer), `skewed` (the sample's form,
80 % of the dossiers in one state and most deposited in the last weeks, with the same latency,
full sync and re-sync with nothing changed: the case per-state streams did not balance). `--runs N` repeats every scenario N times; the
table gives each run's figures and the ratios of the same run.

Every scenario runs in a fresh browser (one on-disk profile for the whole run) on a fresh
document. Before the first, OTP copies the sample procedure once, untimed: Chromium's
caches (the compiled WebAssembly of Pyodide and of grist-static's engine) are then as warm
for the first scenario as for the others, OTP's as its floors', as for an agent who used the
widget before (on a 2-core machine at 21:40–21:50 on 2026-12-07, the copy with latency took
25–27 s first in a cold profile, 19–20 s after the sample's scenario, which opens the widget
twice: Chromium keeps a script's compiled code from its second load on).
The fake DS builds its pages on the same 2 cores as the browser (a far DS's CPU is not on
the agent's machine): tried at nice 10 with latency (2026-12-07 night) and dropped, since it
changed nothing this machine's noise lets one see: the honest floor took 62–64 s niced or
not, OTP 18.8–28.1 s niced, 24.0–24.8 s not.

Grist calls are counted in the host page, on the document's `docComm` (what `grist.docApi`
calls end in): `applyUserActions` bundles, how many touch data tables (« writes »),
`fetchTable`s, and the time Grist took to answer them. Peak memory is the peak RSS (VmHWM) of the page's renderer process (the page,
the widget, its Pyodide worker and grist-static's own engine worker live there).

`--calls` prints, for OTP's full syncs, every Grist call but the pages' bundles (the tables, the
layout, the charts) with its time, the reads grouped as they went out.
`--timeline` prints when each of OTP's pages of dossiers was asked and answered (seconds from
the click, the deposit date its window starts at); every OTP line gives how long the copy
waited for its pages (`SyncResult.waited_s`).

Prints figures; asserts nothing but that syncs end well. Note the load (printed): the machine
is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import sync_playwright

from demo.fake_ds import FakeDSServer, FakeDSStore
from demo.serve import StaticServer, default_root_map
from py_core.ds.queries import document
from tests.bench.threads import ThreadTrace
from tests.bench.workloads import sample, skewed, wide_procedure
from tests.e2e.harness import CHROMIUM, CHROMIUM_FLAGS, Host, ensure_built, find_widget_frame

TOKEN = "jeton-benchmark"
SAMPLE, WIDE, SKEWED = 4242, 5300, 4343
FLOOR_PATH = "/bench/floor/"
HERE = Path(__file__).resolve().parent

COUNT_CALLS = """() => {
  const comm = otpHost.gristDoc().docComm;
  if (comm.__otpBench) return;
  const stats = {applies: 0, writes: 0, actions: 0, fetches: 0, gristMs: 0, fetchMs: 0};
  const dataAction = (a) => Array.isArray(a) && typeof a[1] === 'string' && !a[1].startsWith('_grist')
                            && !a[1].startsWith('OTP_') && /Record|Table|Column/.test(a[0]);
  const apply = comm.applyUserActions.bind(comm), fetch = comm.fetchTable.bind(comm);
  stats.log = [];  // every call: [kind, start ms, duration ms, actions, first action]
  comm.applyUserActions = async (actions, ...rest) => {
    const t = performance.now();
    const entry = ['apply', t, 0, actions.length, String(actions[0] && actions[0][0]) + ' ' + String(actions[0] && actions[0][1])];
    stats.log.push(entry);
    stats.applies++; stats.actions += actions.length;
    if (actions.some(dataAction)) stats.writes++;
    try { return await apply(actions, ...rest); } finally { entry[2] = performance.now() - t; stats.gristMs += entry[2]; }
  };
  comm.fetchTable = async (...args) => {
    const t = performance.now();
    stats.fetches++;
    const entry = ['fetch', t, 0, 0, String(args[0])];
    stats.log.push(entry);
    try { return await fetch(...args); } finally { entry[2] = performance.now() - t; stats.fetchMs += entry[2]; }
  };
  comm.__otpBench = stats;
}"""
READ_CALLS = "() => { const s = otpHost.gristDoc().docComm.__otpBench; const out = {...s}; " \
             "for (const k in s) s[k] = 0; s.log = []; return out; }"


@dataclass
class Figure:
    work: str
    who: str
    seconds: float
    ds_requests: int
    calls: dict = field(default_factory=dict)
    note: str = ""
    heap_mb: float | None = None  # the widget's Pyodide memory after the sync (it only grows: a peak)
    run: int = 0
    load: str = ""


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def renderer_peak_mb(profile: Path) -> float:
    """Peak RSS of the renderer processes of the Chromium that uses `profile`."""
    browser = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(profile).encode() in part for part in cmd) and not any(p.startswith(b"--type=") for p in cmd):
            browser = int(entry.name)
            break
    if browser is None:
        return float("nan")
    peak = 0
    for pid in _descendants(browser):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"--type=renderer" not in cmd:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def requests_out(pages) -> str:
    """How many page requests DS had at once over the pages' span: the time spent with each
    count (seconds), and the mean."""
    events = sorted([(r.received, 1) for r in pages if r.answered] + [(r.answered, -1) for r in pages if r.answered])
    if not events:
        return "no page"
    spent: Counter = Counter()
    out, last = 0, events[0][0]
    for moment, step in events:
        spent[out] += moment - last
        out, last = out + step, moment
    span = events[-1][0] - events[0][0]
    mean = sum(k * s for k, s in spent.items()) / span if span else 0
    return (f"pages out at once over {span:.1f} s: mean {mean:.1f}, "
            + ", ".join(f"{k}: {s:.1f} s" for k, s in sorted(spent.items())))


class Bench:
    def __init__(self, args):
        self.args = args
        self.figures: list[Figure] = []
        self.extra: list[str] = []
        self.profile = Path(tempfile.mkdtemp(prefix="otp-bench-"))
        self.run_index = 0

    # -- one fresh browser + document -----------------------------------------------------------
    def context(self, pw):
        return pw.chromium.launch_persistent_context(
            str(self.profile), executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_FLAGS, "--enable-precise-memory-info"])

    def open(self, ctx, widget: str | None, number: int):
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        host = Host(page, self.pages.url, widget_path=FLOOR_PATH if widget else "/widget/")
        t0 = time.perf_counter()
        extra = {"widget": widget} if widget else {}
        host.open(demarche=number, endpoint=self.ds.url, token=TOKEN, timeout=180, **extra)
        frame = host.wait_widget_ready(timeout=180) if not widget else find_widget_frame(page, 180, FLOOR_PATH)
        if widget:
            frame.wait_for_function("() => window.floorSync && document.body.dataset.state === 'ready'", timeout=60_000)
        opened = time.perf_counter() - t0
        page.evaluate(COUNT_CALLS)
        return host, frame, opened

    def calls(self, host) -> dict:
        """Grist's calls since the last reading (their `log`: `--calls`)."""
        return host.page.evaluate(READ_CALLS)

    def call_lines(self, work: str, log: list) -> None:
        """`--calls`: Grist's calls of a full sync other than the pages' (ms from the first):
        a bundle's time and first action, the reads grouped as they went out."""
        if not log:
            return
        t0, out, reads = log[0][1], [], []
        for kind, start, ms, count, first in log + [["end", 0, 0, 0, ""]]:
            if kind != "fetch" and reads:
                out.append(f"{len(reads)} read{'s' * (len(reads) > 1)} {max(reads):.0f} ms")
                reads = []
            if kind == "fetch":
                reads.append(ms)
            elif kind == "apply" and not first.startswith("BulkAddRecord"):
                out.append(f"@{start - t0:.0f} {first} ({count} actions) {ms:.0f} ms")
        pages = [ms for kind, _, ms, _, first in log if kind == "apply" and first.startswith("BulkAddRecord")]
        self.extra.append(f"{work}: Grist's calls but the pages' ({len(pages)} bundles, {sum(pages) / 1000:.1f} s): "
                          + "; ".join(out))

    def record(self, work, who, seconds, requests, calls, note="", heap_mb=None):
        figure = Figure(work, who, seconds, requests, calls, note, heap_mb, self.run_index, load())
        self.figures.append(figure)
        print(f"  [run {self.run_index + 1}, load {load()}] {work} — {who}: {seconds:.1f} s, {requests} DS requests, "
              f"{calls.get('applies')} bundles ({calls.get('writes')} writing data), {calls.get('fetches')} fetchTable, "
              f"Grist {calls.get('gristMs', 0) / 1000:.1f} s {note}", flush=True)

    # -- OTP ---------------------------------------------------------------------------------
    def otp_sync(self, host, work, expect_writes=None):
        before = len(self.ds.requests)
        trace = ThreadTrace(host.page) if self.args.threads and work.startswith("full sync") else None
        if trace:
            trace.start()
        t, clicked = time.perf_counter(), time.monotonic()
        result = host.sync(timeout=1800)
        elapsed = time.perf_counter() - t
        if trace:
            trace.stop()
            self.extra.append(f"{work}: {trace.summary()} (traced: {elapsed:.1f} s)")
        assert result["state"] == "done", result
        summary = result["result"]
        kinds = Counter((r.operation_name or r.method).removeprefix("otp") for r in self.ds.requests[before:])
        ds_busy = sum(r.seconds for r in self.ds.requests[before:])
        pages = [r for r in self.ds.requests[before:] if r.operation_name == "otpDossiers" and r.variables]
        windows = {r.variables.get("createdSince") for r in pages if not r.variables.get("updatedSince")}
        out = requests_out(pages)
        light = [r for r in self.ds.requests[before:] if r.operation_name == "otpRefresh"]
        if len(light) > 1 and not any(r.variables and r.variables.get("createdSince") for r in light):
            gaps = [b.received - a.answered for a, b in zip(light, light[1:])]  # one cursor: the widget's own time
            out += (f"; light pages: the first asked {light[0].received - clicked:.2f} s after the click, "
                    f"the widget's gaps between an answer and the next request {sum(gaps):.2f} s in all "
                    f"(longest {max(gaps):.2f} s)")
        if self.args.timeline and pages:
            self.extra.append(f"{work}: pages asked / answered (s from the click), window start: " + ", ".join(
                f"{r.received - clicked:.1f}/{r.answered - clicked:.1f} {(r.variables.get('createdSince') or '-')[5:16]}"
                for r in pages if r.answered))
        phases = host.widget.evaluate("otpWidget.timings.phases") or []
        marks = [(t, m) for t, m in phases] + [(round(elapsed * 1000), "fin")]
        steps = "; ".join(f"{m.rstrip('…')[:40]} {(marks[i + 1][0] - t) / 1000:.1f} s" for i, (t, m) in enumerate(marks[:-1]))
        self.extra.append(f"{work}: where the time goes (from the click): {marks[0][0] / 1000:.1f} s to the first phase; {steps}")
        calls = self.calls(host)
        log = calls.pop("log", [])
        if self.args.calls and work.startswith("full sync"):
            self.call_lines(work, log)
        self.record(work, "OTP", elapsed, len(self.ds.requests) - before, calls,
                    f"— {summary['added']} ajoutés, {summary['updated']} mis à jour, {summary['fetched']} reçus; "
                    f"DS: {dict(kinds)}, the fake DS busy {ds_busy:.1f} s; the copy waited for its pages "
                    f"{summary.get('waited_s', 0):.1f} s; windows of deposit date: {len(windows)}; {out}",
                    summary.get("heap_mb"))
        return summary

    def otp_scenario(self, pw, number, label, resyncs: bool, latency_label=""):
        ctx = self.context(pw)
        try:
            host, frame, opened = self.open(ctx, None, number)
            timings = frame.evaluate("otpWidget.timings")
            worker = timings.get("worker") or {}
            self.extra.append(
                f"OTP page {label}{latency_label}: document + widget opened in {opened:.1f} s; Python ready "
                f"{timings['ready'] / 1000:.2f} s after the widget frame's script start (Pyodide "
                f"{worker.get('pyodide', 0) / 1000:.2f} s, wheels {worker.get('packages', 0) / 1000:.2f} s, "
                f"import {worker.get('import', 0) / 1000:.2f} s), form usable at {timings.get('formReady', 0):.0f} ms [{load()}]")
            self.calls(host)
            self.otp_sync(host, f"full sync, {label}{latency_label}")
            if resyncs:
                self.otp_sync(host, f"re-sync, nothing changed, {label}{latency_label}")
                if not latency_label:
                    self.change_one_percent(number)
                    self.otp_sync(host, f"re-sync, 1% changed, {label}{latency_label}")
            if not latency_label:
                t = time.perf_counter()
                frame = host.reload_widget(timeout=180)
                warm = frame.evaluate("otpWidget.timings")
                self.extra.append(f"OTP widget reloaded (warm cache): Python ready {warm['ready'] / 1000:.2f} s "
                                  f"(reload to ready {time.perf_counter() - t:.2f} s) [{load()}]")
            peak = renderer_peak_mb(self.profile)
            heap = host.page.evaluate("performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null")
            self.extra.append(f"OTP {label}{latency_label}: renderer peak RSS {peak:.0f} MB "
                              f"(host page JS heap now {heap or 0:.0f} MB)")
        finally:
            ctx.close()

    def change_one_percent(self, number: int) -> None:
        procedure = self.store.procedure(number)
        text = next(d for d in procedure.active_revision["champDescriptors"] if d["__typename"] == "TextChampDescriptor")
        numbers = sorted(procedure.dossiers)
        step = max(1, len(numbers) // max(1, len(numbers) // 100))
        for i, n in enumerate(numbers[::step][: max(1, len(numbers) // 100)]):
            self.store.advance(1)
            self.store.update_champ(n, text["id"], f"Modifié pour le banc d'essai {i}")

    # -- floor -------------------------------------------------------------------------------
    def floor_scenario(self, pw, number, label, latency_label="", floors=None):
        for who in self.floors if floors is None else floors:
            ctx = self.context(pw)
            try:
                host, frame, _ = self.open(ctx, FLOOR_PATH + "index.html", number)
                before = len(self.ds.requests)
                t = time.perf_counter()
                out = frame.evaluate("(a) => floorSync(a)", {
                    "endpoint": self.ds.url, "token": TOKEN, "number": number, "prefetch": who == "honest",
                    "query": document("dossiers"), "operationName": "otpDossiers"})
                elapsed = time.perf_counter() - t
                calls = {k: v for k, v in self.calls(host).items() if k != "log"}
                self.record(f"full sync, {label}{latency_label}", who, elapsed, len(self.ds.requests) - before,
                            calls, f"— {out['rows']} rows; waiting for DS {out['dsMs'] / 1000:.1f} s, "
                            f"building rows {out['buildMs'] / 1000:.1f} s, for Grist {out['writeMs'] / 1000:.1f} s")
                self.extra.append(f"{who} floor {label}{latency_label} (run {self.run_index + 1}): "
                                  f"renderer peak RSS {renderer_peak_mb(self.profile):.0f} MB")
            finally:
                ctx.close()

    # -- all -------------------------------------------------------------------------------
    def run(self) -> None:
        args = self.args
        ensure_built()
        t = time.perf_counter()
        self.floors = [f for f in args.floors.split(",") if f]
        only = set(args.only.split(",")) if args.only else {"sample", "wide", "latency", "skewed"}
        if args.skip_latency:
            only -= {"latency", "skewed"}
        self.store = FakeDSStore([sample(SAMPLE, args.dossiers)] + ([wide_procedure(WIDE, args.wide)] if "wide" in only else [])
                                 + ([skewed(SKEWED, args.dossiers)] if "skewed" in only else []))
        print(f"fake DS data: {len(self.store.procedures)} procedures in {time.perf_counter() - t:.1f} s [{load()}]")
        roots = {**default_root_map(), "/bench/floor/": HERE / "floor"}
        with FakeDSServer(self.store, tokens={TOKEN: "all"}) as ds, StaticServer(roots) as pages, sync_playwright() as pw:
            self.ds, self.pages = ds, pages
            self.warm_up(pw)
            for self.run_index in range(args.runs):
                self.one_run(pw, only)
        shutil.rmtree(self.profile, ignore_errors=True)
        self.table()

    def warm_up(self, pw) -> None:
        """A full copy of the sample, untimed, in the run's profile, and the page opened again
        (Chromium keeps a script's compiled code from its second load on) (see the module)."""
        t = time.perf_counter()
        for sync in (True, False):
            ctx = self.context(pw)
            try:
                host, _, _ = self.open(ctx, None, SAMPLE)
                assert not sync or host.sync(timeout=600)["state"] == "done"
            finally:
                ctx.close()
        print(f"warm-up: the sample copied once in the run's profile, untimed ({time.perf_counter() - t:.1f} s) [{load()}]",
              flush=True)

    def one_run(self, pw, only: set[str]) -> None:
        args, ds = self.args, self.ds
        label, wide_label = f"{args.dossiers:,} dossiers", f"300-champ form, {args.wide:,} dossiers"
        ll = f", {args.latency:g} s DS latency"
        for name, number, work, resyncs, latency in (
                ("sample", SAMPLE, label, True, 0.0), ("wide", WIDE, wide_label, False, 0.0),
                ("latency", SAMPLE, label, True, args.latency),
                ("skewed", SKEWED, f"{label}, 80 % in one state", True, args.latency)):
            if name not in only:
                continue
            ds.latency = latency
            suffix = ll if latency else ""
            self.otp_scenario(pw, number, work, resyncs=resyncs, latency_label=suffix)
            self.floor_scenario(pw, number, work, latency_label=suffix,
                                floors=[f for f in self.floors if not latency or f != "waiting" or args.waiting_latency])
            ds.latency = 0

    def table(self) -> None:
        print()
        print(f"Benchmark of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {self.args.runs} run(s), "
              f"load at the end {load()}")
        print()
        print("Each cell: run 1 / run 2 / …; ratios are OTP's time over the floor's of the same run. "
              "The ratio that counts is against the honest floor (pages k+1 while it writes k).")
        print()
        print("| work | load (1 min) | OTP | DS req. | Grist bundles (data) / fetches | Grist time | widget heap "
              "| honest floor | DS req. | **ratio** | waiting floor | ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        works = list(dict.fromkeys(f.work for f in self.figures if f.who == "OTP"))
        for work in works:
            print(self.row(work))
        print()
        for line in self.extra:
            print("- " + line)
        if self.args.json:
            Path(self.args.json).write_text(json.dumps([f.__dict__ for f in self.figures], indent=1))

    def row(self, work: str) -> str:
        def runs(who: str) -> list[Figure]:
            return sorted((f for f in self.figures if f.work == work and f.who == who), key=lambda f: f.run)

        def join(values) -> str:
            return " / ".join(values) or "—"

        otp = runs("OTP")
        by_run = {who: {f.run: f for f in runs(who)} for who in ("honest", "waiting")}

        def ratios(who: str) -> str:
            pairs = [(f, by_run[who].get(f.run)) for f in otp]
            return join(f"{o.seconds / fl.seconds:.2f}×" for o, fl in pairs if fl)

        first = otp[0].calls
        cells = [work, join(f.load.split("/")[0] for f in otp), join(f"{f.seconds:.1f} s" for f in otp),
                 join(str(f.ds_requests) for f in otp),
                 f"{first.get('applies')} ({first.get('writes')}) / {first.get('fetches')}",
                 join(f"{f.calls.get('gristMs', 0) / 1000:.1f} s" for f in otp),
                 join(f"{f.heap_mb:.0f} MB" for f in otp if f.heap_mb),
                 join(f"{f.seconds:.1f} s" for f in runs("honest")), join(str(f.ds_requests) for f in runs("honest")),
                 ratios("honest"), join(f"{f.seconds:.1f} s" for f in runs("waiting")), ratios("waiting")]
        return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=5000)
    parser.add_argument("--wide", type=int, default=1000, help="dossiers of the 300-champ form")
    parser.add_argument("--latency", type=float, default=1.0, help="DS latency per request (s) of the latency runs")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", help="also write the figures there")
    parser.add_argument("--only", help="comma-separated scenarios among sample, wide, latency, skewed (default: all)")
    parser.add_argument("--floors", default="honest,waiting", help="which floors to run: honest, waiting (default: both)")
    parser.add_argument("--waiting-latency", action="store_true",
                        help="run the waiting floor with latency too (it adds a DS round trip to every page: ~100 s)")
    parser.add_argument("--runs", type=int, default=1, help="run every scenario this many times")
    parser.add_argument("--timeline", action="store_true", help="print when OTP's pages were asked and answered")
    parser.add_argument("--calls", action="store_true",
                        help="print Grist's calls of OTP's full syncs other than the pages' (the tables, the layout, the charts)")
    parser.add_argument("--threads", action="store_true",
                        help="trace OTP's full syncs: CPU busy by thread (`tests/bench/threads.py`; the trace costs ~10 %%)")
    Bench(parser.parse_args()).run()


if __name__ == "__main__":
    main()
