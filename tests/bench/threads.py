"""Where a browser sync spends its CPU, thread by thread (`python3 -m tests.bench_sync --threads`).

Chromium's own trace (`Tracing.start` on the page's DevTools session, category `toplevel`):
every task a thread ran, so the busy seconds of the host page's main thread (grist-static's
data side and Grist's client live there), of each worker (OTP's Pyodide, Grist's engine: named
after the script they run), and of V8's helper threads (garbage collection, compilation).
The fake DS's CPU is this process's (`time.process_time`: it runs in the benchmark's threads;
Playwright's client is a small part of it). Figures to read, not a test.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter, defaultdict

CATEGORIES = "toplevel,disabled-by-default-devtools.timeline,devtools.timeline"


class ThreadTrace:
    """Trace one sync: `start()` before it, `stop()` after; `summary()` a line of figures."""

    def __init__(self, page):
        self.page = page
        self.cdp = page.context.new_cdp_session(page)
        self.done: dict = {}
        self.cdp.on("Tracing.tracingComplete", lambda event: self.done.update(event))
        self.cpu = 0.0
        self.events: list[dict] = []

    def start(self) -> None:
        self.cdp.send("Tracing.start", {"categories": CATEGORIES, "transferMode": "ReturnAsStream"})
        self.cpu = time.process_time()

    def stop(self) -> None:
        self.cpu = time.process_time() - self.cpu
        self.cdp.send("Tracing.end")
        while "stream" not in self.done:
            self.page.wait_for_timeout(100)
        chunks = []
        while True:
            read = self.cdp.send("IO.read", {"handle": self.done["stream"], "size": 1 << 20})
            chunks.append(base64.b64decode(read["data"]) if read.get("base64Encoded") else read["data"].encode())
            if read.get("eof"):
                break
        self.cdp.send("IO.close", {"handle": self.done["stream"]})
        data = json.loads(b"".join(chunks))
        self.events = data["traceEvents"] if isinstance(data, dict) else data

    def busy(self) -> list[tuple[str, float]]:
        """(thread, busy seconds), busiest first; V8's helper threads summed."""
        names: dict[tuple, str] = {}
        scripts: dict[tuple, Counter] = defaultdict(Counter)
        busy: Counter = Counter()
        for event in self.events:
            key = (event.get("pid"), event.get("tid"))
            if event.get("ph") == "M" and event.get("name") == "thread_name":
                names[key] = event["args"]["name"]
            elif event.get("ph") == "X" and event.get("cat") == "toplevel":
                busy[key] += event.get("dur", 0) / 1e6
            url = ((event.get("args") or {}).get("data") or {}).get("url") if isinstance(event.get("args"), dict) else None
            if isinstance(url, str) and url:
                scripts[key][url.rsplit("/", 1)[-1] or url] += 1
        out: Counter = Counter()
        for key, seconds in busy.items():
            name = names.get(key, "?")
            if name.startswith("ThreadPool"):
                name = "V8 and Chromium helper threads"
            elif name.startswith("DedicatedWorker") and scripts[key]:
                name = f"worker ({scripts[key].most_common(1)[0][0][:40]})"
            elif name == "CrRendererMain":
                name = "page main thread" if len([k for k in busy if names.get(k) == "CrRendererMain"]) == 1 \
                    else f"main thread of renderer {key[0]}"
            out[name] += seconds
        return out.most_common()

    def summary(self) -> str:
        threads = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.busy() if seconds >= 0.1)
        return f"CPU busy by thread: {threads}; the fake DS and Playwright (this process) {self.cpu:.1f} s"
