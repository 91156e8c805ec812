"""End-to-end harness: a real Grist (grist-static) in headless Chromium with the OTP widget.

Reusable outside pytest (demo scripts, measurements)::

    from tests.e2e.harness import ensure_built, StaticServer, launch_chromium, Host
    ensure_built()
    with StaticServer() as server, sync_playwright() as pw:
        browser = launch_chromium(pw)
        host = Host(browser.new_page(), server.url).open(demarche="123", endpoint=..., token=...)
        widget = host.wait_widget_ready()
        ...
        host.fetch_table("Dossiers")

The host page (demo/host/) passes ``demarche``, ``endpoint`` and ``token`` from its
own query string to the widget's URL; the widget fills its form from them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure  # noqa: E402
from demo.serve import StaticServer, default_root_map  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDGET_PATH = "/widget/"
DEFAULT_TIMEOUT_S = 60.0
TOKEN = "jeton-e2e-5b7d93c1"  # the DS token of every e2e test (distinct from any word of a message)
NUMBER = 12345                # the default procedure number of the fake DS

__all__ = [
    "CHROMIUM", "CHROMIUM_FLAGS", "FakeDS", "NUMBER", "StaticServer", "TOKEN", "default_root_map", "dossier_pages",
    "ensure_built", "make_fake_ds", "launch_chromium", "launch_chromium_partitioned", "launch_chromium_persistent", "Host", "find_widget_frame", "wait_widget_state",
]


def ensure_built() -> dict:
    """Run ``python3 build.py`` (idempotent, ~0.1 s when cached) unless OTP_SKIP_BUILD=1.

    Returns the widget manifest."""
    import json
    if os.environ.get("OTP_SKIP_BUILD") != "1":
        proc = subprocess.run([sys.executable, str(ROOT / "build.py")], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"build.py failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads((ROOT / "widget" / "dist" / "manifest.json").read_text())


class FakeDS(FakeDSServer):
    """The fake DS (demo/fake_ds) of a test: its HTTP server on 127.0.0.1 (``store``,
    ``requests``, ``fail_next``...), with the ``token`` it accepts and the ``number`` of its
    procedure; ``endpoint`` is the GraphQL address the widget is given."""

    def __init__(self, store: FakeDSStore, *, token: str, number: int, **options: Any):
        options.setdefault("tokens", {token: "all"})
        super().__init__(store, **options)
        self.token = token
        self.number = number

    @property
    def endpoint(self) -> str:
        return self.url


def _procedure(number: int, dossiers: int, seed: int, **sample: Any):
    return sample_procedure(number=number, dossier_count=dossiers, seed=seed, **sample)


def make_fake_ds(number: int = NUMBER, dossiers: int = 30, seed: int = 7, *, others: Iterable[dict] = (),
                 store: FakeDSStore | None = None, token: str = TOKEN, **server_options: Any) -> FakeDS:
    """The one way the e2e tests make a fake DS (not started: ``start()`` it, or ``with``).

    Its store holds ``sample_procedure(number, dossiers, seed)`` and one more procedure per dict
    of ``others`` (the same keys, plus sample_procedure's options: title, first_dossier_number...),
    unless ``store`` is given (another server on the same data). ``token`` may read every procedure
    (unless ``tokens`` says otherwise); ``server_options`` go to FakeDSServer (cors, latency,
    expired_tokens, host...)."""
    if store is None:
        store = FakeDSStore([_procedure(number, dossiers, seed), *(_procedure(**other) for other in others)])
    return FakeDS(store, token=token, number=number, **server_options)


def dossier_pages(request) -> bool:
    """A fake DS request (FakeDSServer.requests) that reads a page of dossiers: a ``match`` of
    its faults."""
    return request.operation_name == "otpDossiers"


def launch_chromium(playwright, **kwargs):
    """The project's Chromium: Debian's binary, headless, with the agreed flags."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                      headless=True, **kwargs)


def launch_chromium_partitioned(playwright, **kwargs):
    """The project's Chromium with third-party storage partitioning on, as in a real Chrome.
    Playwright turns that feature off (its own --disable-features list): this reads the list
    Playwright passes (chrome://version of a first launch) and launches again with the same list
    minus ThirdPartyStoragePartitioning. Returns the Browser; ``partitioned_storage_flags`` tells
    which flag was removed."""
    probe = launch_chromium(playwright)
    try:
        page = probe.new_page()
        page.goto("chrome://version")
        command_line = page.inner_text("#command_line")
    finally:
        probe.close()
    (disabled,) = [arg for arg in command_line.split() if arg.startswith("--disable-features=")]
    features = [f for f in disabled.removeprefix("--disable-features=").split(",")
                if f and f != "ThirdPartyStoragePartitioning"]
    args = [*CHROMIUM_FLAGS, "--disable-features=" + ",".join(features),
            "--enable-features=ThirdPartyStoragePartitioning"]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True,
                                         ignore_default_args=[disabled], **kwargs)
    browser.partitioned_storage_flags = {"removed": disabled, "args": args}
    return browser


def launch_chromium_persistent(playwright, user_data_dir, **kwargs):
    """Same Chromium with an on-disk profile (a BrowserContext): its HTTP cache keeps
    big files such as pyodide.asm.wasm between pages, as a user's browser does."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True, **kwargs)


def _frame_href(frame) -> str:
    try:
        return frame.evaluate("location.href")
    except Exception:  # frame detached or navigating
        return ""


def find_widget_frame(page, timeout: float = DEFAULT_TIMEOUT_S, path: str = WIDGET_PATH):
    """The widget's iframe. Playwright may list it with an empty URL for a moment,
    so ask each frame for its own location.href."""
    deadline = time.monotonic() + timeout
    while True:
        for frame in page.frames:
            if frame is page.main_frame:
                continue
            if path in (frame.url or "") or path in _frame_href(frame):
                return frame
        if time.monotonic() > deadline:
            raise TimeoutError(f"no widget frame ({path}) after {timeout:.0f} s; "
                               f"frames: {[f.url for f in page.frames]}")
        page.wait_for_timeout(100)


def wait_widget_state(frame, states: str | Iterable[str], timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Wait until <body data-state> is one of ``states``; return it."""
    wanted = [states] if isinstance(states, str) else list(states)
    frame.wait_for_function(
        "(wanted) => document.body && wanted.includes(document.body.dataset.state)",
        arg=wanted, timeout=timeout * 1000, polling=50)
    return frame.evaluate("document.body.dataset.state")


class Host:
    """The host page: grist-static with a document and the OTP widget section."""

    def __init__(self, page, base_url: str, widget_path: str = WIDGET_PATH):
        """``widget_path``: a string in the widget frame's URL that identifies it (default
        ``/widget/``; e.g. the relay's origin when the widget is served by the relay)."""
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.widget_path = widget_path
        self.boot: dict[str, Any] = {}
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    # ---- navigation ----------------------------------------------------------------
    def url(self, demarche: str | int | None = None, endpoint: str | None = None,
            token: str | None = None, **extra: Any) -> str:
        params = {k: str(v) for k, v in
                  {"demarche": demarche, "endpoint": endpoint, "token": token, **extra}.items()
                  if v is not None}
        return f"{self.base_url}/" + (f"?{urllib.parse.urlencode(params)}" if params else "")

    def open(self, demarche: str | int | None = None, endpoint: str | None = None,
             token: str | None = None, timeout: float = DEFAULT_TIMEOUT_S, **extra: Any) -> "Host":
        """Load the host page and wait for the Grist document and the widget section
        (not for Python: see wait_widget_ready)."""
        self.page.goto(self.url(demarche, endpoint, token, **extra))
        self.boot = self.page.evaluate(
            "(ms) => Promise.race([otpHost.ready, new Promise((_, rej) => "
            "setTimeout(() => rej(new Error('otpHost.ready timeout')), ms))])", timeout * 1000)
        return self

    # ---- widget ------------------------------------------------------------------------
    @property
    def widget(self):
        return find_widget_frame(self.page, path=self.widget_path)

    def wait_widget_ready(self, timeout: float = DEFAULT_TIMEOUT_S):
        """Wait for data-state=ready (Python loaded); return the widget Frame."""
        frame = find_widget_frame(self.page, timeout, path=self.widget_path)
        state = wait_widget_state(frame, ("ready", "error"), timeout)
        if state != "ready":
            raise AssertionError("widget failed to load: " + frame.evaluate(
                "document.getElementById('status').textContent"))
        return frame

    def status(self) -> dict:
        """{'state': body data-state, 'text': status line, 'error': bool, 'button': text,
        'enabled': bool} of the widget."""
        return find_widget_frame(self.page, path=self.widget_path).evaluate("""() => {
            const s = document.getElementById('status'), b = document.getElementById('sync');
            return {state: document.body.dataset.state, text: s.textContent,
                    error: s.classList.contains('error'), button: b.textContent, enabled: !b.disabled};
        }""")

    def sync(self, demarche: str | int | None = None, token: str | None = None,
             endpoint: str | None = None, timeout: float = 120.0) -> dict:
        """Fill the given fields (others keep their value), click « Synchroniser », wait
        for done/error. Returns status() plus 'result' (the core's summary, when done)."""
        frame = self.wait_widget_ready() if self.status()["state"] == "loading" else find_widget_frame(self.page, path=self.widget_path)
        if endpoint is not None:
            frame.evaluate("document.getElementById('advanced').open = true")
        for selector, value in (("#demarche", demarche), ("#token", token), ("#endpoint", endpoint)):
            if value is not None:
                frame.fill(selector, str(value))
        frame.evaluate("document.body.dataset.state = 'submitting'")
        frame.click("#sync")
        # 'confirm': the widget asks before sending the token to an address from the document.
        wait_widget_state(frame, ("done", "error", "confirm"), timeout)
        out = self.status()
        out["result"] = frame.evaluate("otpWidget.lastResult") if out["state"] == "done" else None
        return out

    # ---- document ----------------------------------------------------------------------
    def fetch_table(self, table_id: str) -> dict[str, list]:
        """{'id': [...], 'Col': [...], ...} (no manualSort / gristHelper_ columns)."""
        return self.page.evaluate("(t) => otpHost.fetchTable(t)", table_id)

    def records(self, table_id: str) -> list[dict]:
        """Same data as a list of row dicts."""
        cols = self.fetch_table(table_id)
        return [{k: v[i] for k, v in cols.items()} for i in range(len(cols.get("id", [])))]

    def list_tables(self) -> list[dict]:
        """[{'tableId', 'tableRef', 'columns': [{'colId','label','type','isFormula','formula'}]}]"""
        return self.page.evaluate("otpHost.listTables()")

    def table_ids(self) -> list[str]:
        return [t["tableId"] for t in self.list_tables()]

    def columns(self, table_id: str) -> list[dict]:
        """[{'colId', 'label', 'type', 'isFormula', 'formula'}] in column order."""
        return self.page.evaluate("(t) => otpHost.columns(t)", table_id)

    def apply_user_actions(self, actions: list) -> Any:
        return self.page.evaluate("(a) => otpHost.applyUserActions(a)", actions)

    def widget_options(self, saved: bool = False) -> dict | None:
        """The options the widget set with grist.setOptions. Grist holds them as an
        unsaved draft until the user clicks Save on the section (``save_widget_options``);
        ``saved=True`` returns what is stored in the document. None if none."""
        return self.page.evaluate("(s) => otpHost.widgetOptions(s)", saved)

    def save_widget_options(self) -> dict | None:
        """Store the draft options, as the section's Save button does."""
        return self.page.evaluate("otpHost.saveWidgetOptions()")

    def reload_widget(self, timeout: float = DEFAULT_TIMEOUT_S):
        """Reload the widget iframe (a fresh widget, same document); wait until ready."""
        frame = find_widget_frame(self.page, timeout, path=self.widget_path)
        frame.evaluate("window.__otpOld = true; location.reload()")
        frame.wait_for_function("() => !window.__otpOld && document.body", timeout=timeout * 1000)
        return self.wait_widget_ready(timeout)

    def snapshot(self) -> dict:
        """Every user table's columns and data: compare two to prove nothing changed."""
        return {t["tableId"]: {"columns": t["columns"], "data": self.fetch_table(t["tableId"])}
                for t in self.list_tables()}
