"""End-to-end harness for a real Grist server: grist-core, built from ``../shared/grist-core``.

The kit (``build.sh``, ``run.sh``, the source tarball) lives next to the repository, in
``../shared/grist-core`` (or ``$GRIST_CORE_KIT``). A user's fresh clone has no kit: the tests
that need it skip with the reason (``kit_missing()``); CI has it and must use it.

    kit = find_kit()                       # None when absent
    build(kit)                             # ./build.sh, once per machine (minutes, then 0.01 s)
    with GristCoreServer(kit, data_dir) as grist:
        doc = grist.new_doc("T", widget_url)   # a document with a full-access custom widget page
        host = CoreHost(page, grist, doc).open(demarche=..., endpoint=..., token=...)
        host.sync()                        # the widget's « Synchroniser », as in harness.Host
        grist.records(doc.doc_id, "OTP_Demarches")   # read back through the REST API

The server runs ``run.sh`` in its own process group, with a temporary data directory,
``GRIST_FORCE_LOGIN=true`` (a browser must be signed in) and ``GRIST_TEST_LOGIN=1``: grist-core's
test login (``/test/login?username=EMAIL&next=URL``) signs a browser in as any e-mail address,
which gives a second user (a viewer) besides the default one (``GRIST_DEFAULT_EMAIL``, the owner
of everything created with the boot key's API key).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import DEFAULT_TIMEOUT_S, ROOT, WIDGET_PATH, Host, find_widget_frame, wait_widget_state

BOOT_KEY = "otp-e2e-boot-key"
OWNER_EMAIL = "proprietaire@example.com"


def find_kit() -> Path | None:
    kit = Path(os.environ.get("GRIST_CORE_KIT") or ROOT.parent / "shared" / "grist-core")
    return kit if (kit / "build.sh").exists() and (kit / "run.sh").exists() else None


def kit_missing() -> str:
    kit = os.environ.get("GRIST_CORE_KIT") or str(ROOT.parent / "shared" / "grist-core")
    return f"grist-core kit not found at {kit} (set GRIST_CORE_KIT to a copy of shared/grist-core)"


def build(kit: Path) -> tuple[Path, float]:
    """Run the kit's build.sh (idempotent). Returns (build directory, seconds taken)."""
    started = time.monotonic()
    proc = subprocess.run([str(kit / "build.sh")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"grist-core build failed (build.sh exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]), time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class CoreDoc:
    doc_id: str
    view_ref: int
    section_ref: int
    widget_url: str


class GristError(RuntimeError):
    def __init__(self, status: int, body: str, what: str):
        super().__init__(f"{what}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class GristCoreServer:
    """grist-core on 127.0.0.1:<free port>, plus the REST calls the tests need."""

    def __init__(self, kit: Path, data_dir: Path, port: int | None = None):
        self.kit = kit
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "grist-core.log"
        self.api_key = ""
        self.org_id: int | None = None
        self.org_domain = ""
        self.workspace_id: int | None = None
        self.started_in = 0.0

    # ---- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> "GristCoreServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GRIST_BOOT_KEY": BOOT_KEY, "GRIST_DEFAULT_EMAIL": OWNER_EMAIL,
               "GRIST_FORCE_LOGIN": "true", "GRIST_TEST_LOGIN": "1"}
        started = time.monotonic()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.kit / "run.sh"), str(self.port), str(self.data_dir)],
                                     stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)  # its own process group
        log.close()
        deadline = started + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"grist-core exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/status?ready=1", timeout=2) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"grist-core not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.started_in = time.monotonic() - started
        self._setup_owner()
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> "GristCoreServer":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- REST ------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None,
                raw: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json"}
        if self.api_key:
            all_headers["Authorization"] = f"Bearer {self.api_key}"
        all_headers.update(headers or {})
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as err:
            raise GristError(err.code, err.read().decode(errors="replace"), f"{method} {path}") from None
        return text if raw else (json.loads(text) if text.strip() else None)

    def _setup_owner(self) -> None:
        boot = {"x-boot-key": BOOT_KEY}
        key = self.request("GET", "/api/profile/apikey", headers=boot, raw=True).strip()
        if not key:
            key = self.request("POST", "/api/profile/apikey", {}, headers=boot, raw=True).strip()
        self.api_key = key.strip('"')
        org = self.request("GET", "/api/orgs")[0]
        self.org_id, self.org_domain = org["id"], org["domain"]
        self.workspace_id = self.request("GET", f"/api/orgs/{self.org_id}/workspaces")[0]["id"]
        self.quiet_tour()

    def quiet_tour(self, api_key: str | None = None) -> None:
        """Turn off the welcome tour and tips (their backdrop takes every click) for the
        user of ``api_key`` (default: the owner)."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.request("PATCH", f"/api/orgs/{self.org_id}", {
            "userOrgPrefs": {"showGristTour": False},
            "userPrefs": {"showNewUserQuestions": False,
                          "behavioralPrompts": {"dontShowTips": True, "dismissedTips": []}}},
            headers=headers)

    def new_doc(self, widget_url: str, name: str = "OTP e2e") -> CoreDoc:
        """A document whose second page holds the widget, as a custom section with full access."""
        doc_id = self.request("POST", f"/api/workspaces/{self.workspace_id}/docs", {"name": name})
        created = self.apply(doc_id, [["CreateViewSection", 1, 0, "custom", None, None]])
        refs = created["retValues"][0]
        custom_view = {"mode": "url", "url": widget_url, "access": "full", "widgetDef": None,
                       "pluginId": "", "sectionId": "", "renderAfterReady": False}
        self.apply(doc_id, [["UpdateRecord", "_grist_Views_section", refs["sectionRef"],
                             {"title": "One Trick Pony",
                              "options": json.dumps({"customView": json.dumps(custom_view)})}]])
        return CoreDoc(doc_id, refs["viewRef"], refs["sectionRef"], widget_url)

    def apply(self, doc_id: str, actions: list) -> Any:
        return self.request("POST", f"/api/docs/{doc_id}/apply", actions)

    def share(self, doc_id: str, email: str, role: str = "viewers") -> None:
        self.request("PATCH", f"/api/docs/{doc_id}/access", {"delta": {"users": {email: role}}})

    def fetch_table(self, doc_id: str, table_id: str) -> dict[str, list]:
        """{'id': [...], 'Col': [...]} like grist.docApi.fetchTable (no manualSort/gristHelper_)."""
        data = self.request("GET", f"/api/docs/{doc_id}/tables/{urllib.parse.quote(table_id)}/data")
        return {k: v for k, v in data.items() if k != "manualSort" and not k.startswith("gristHelper_")}

    def records(self, doc_id: str, table_id: str) -> list[dict]:
        """GET /api/docs/{doc}/tables/{table}/records, flattened to {'id': ..., **fields}."""
        data = self.request("GET", f"/api/docs/{doc_id}/tables/{urllib.parse.quote(table_id)}/records")
        return [{"id": r["id"], **r["fields"]} for r in data["records"]]

    def list_tables(self, doc_id: str) -> list[dict]:
        """Same shape as otpHost.listTables() in grist-static (read from the metadata tables)."""
        tables = self.fetch_table(doc_id, "_grist_Tables")
        columns = self.fetch_table(doc_id, "_grist_Tables_column")
        cols = [dict(zip(columns, values)) for values in zip(*columns.values())]
        out = []
        for ref, table_id in sorted(zip(tables["id"], tables["tableId"])):
            if table_id.startswith("_grist"):
                continue
            mine = sorted((c for c in cols if c["parentId"] == ref and c["colId"] != "manualSort"
                           and not c["colId"].startswith("gristHelper_")), key=lambda c: c["parentPos"])
            out.append({"tableId": table_id, "tableRef": ref, "columns": [
                {k: c[k] for k in ("colId", "label", "type", "isFormula", "formula")} for c in mine]})
        return out

    def section_options(self, doc_id: str, section_ref: int) -> dict:
        """The widget section's stored options, customView parsed."""
        sections = self.fetch_table(doc_id, "_grist_Views_section")
        options = json.loads(sections["options"][sections["id"].index(section_ref)] or "{}")
        if isinstance(options.get("customView"), str):
            options["customView"] = json.loads(options["customView"])
        return options

    def doc_url(self, doc: CoreDoc) -> str:
        return f"{self.url}/o/{self.org_domain}/doc/{doc.doc_id}/p/{doc.view_ref}"

    def login_url(self, email: str, next_url: str) -> str:
        return f"{self.url}/test/login?" + urllib.parse.urlencode({"username": email, "next": next_url})


class CoreHost(Host):
    """harness.Host for a grist-core document: the same sync()/status()/records()/snapshot()
    interface, with the document read back through the server's REST API.

    The token is typed into the form (as an agent does), never put in the widget's URL."""

    def __init__(self, page, server: GristCoreServer, doc: CoreDoc, email: str = OWNER_EMAIL,
                 widget_path: str = WIDGET_PATH):
        super().__init__(page, server.url, widget_path=widget_path)
        self.server = server
        self.doc = doc
        self.email = email
        self.token: str | None = None

    @property
    def doc_id(self) -> str:
        return self.doc.doc_id

    def open(self, demarche=None, endpoint=None, token=None, timeout: float = DEFAULT_TIMEOUT_S,
             **extra) -> "CoreHost":
        """Point the widget section at the widget with these query parameters (as the
        grist-static host does), sign the browser in and load the document's widget page."""
        url = widget_url(self.doc.widget_url, demarche=demarche, endpoint=endpoint, **extra)
        if url != self.current_widget_url():
            set_widget_url(self.server, self.doc, url)
        self.token = token
        self.page.goto(self.server.login_url(self.email, self.server.doc_url(self.doc)))
        if "/test/login" in self.page.url:  # no redirect: the login was refused
            raise AssertionError(f"grist-core did not sign {self.email} in: {self.page.url}")
        find_widget_frame(self.page, timeout, path=self.widget_path)
        return self

    def current_widget_url(self) -> str:
        return self.server.section_options(self.doc_id, self.doc.section_ref)["customView"]["url"]

    def reload(self, timeout: float = DEFAULT_TIMEOUT_S):
        """Reload the whole Grist page (the document comes back from the server); wait for
        the widget, ready. Returns the widget frame."""
        old = find_widget_frame(self.page, timeout, path=self.widget_path)
        old.evaluate("window.__otpOld = true")
        self.page.reload()
        deadline = time.monotonic() + timeout
        while True:
            frame = find_widget_frame(self.page, timeout, path=self.widget_path)
            try:
                if not frame.evaluate("!!window.__otpOld"):
                    break
            except Exception:  # noqa: BLE001 - frame navigating
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the widget did not reload")
            self.page.wait_for_timeout(100)
        return self.wait_widget_ready(timeout)

    def reload_widget(self, timeout: float = DEFAULT_TIMEOUT_S):
        return self.reload(timeout)

    def _frame(self):
        """The widget frame, once Python is loaded (any state after that)."""
        return self.wait_widget_ready() if self.status()["state"] == "loading" else find_widget_frame(self.page, path=self.widget_path)

    def _token_to_type(self, token):
        if token is None and self.token is not None:
            if not self._frame().input_value("#token"):
                return self.token
        return token

    def sync(self, demarche=None, token=None, endpoint=None, timeout: float = 120.0) -> dict:
        return super().sync(demarche=demarche, token=self._token_to_type(token), endpoint=endpoint,
                            timeout=timeout)

    def start_sync(self, demarche=None, token=None, endpoint=None):
        """Fill the fields and click « Synchroniser » without waiting; returns the frame."""
        frame = self._frame()
        token = self._token_to_type(token)
        if endpoint is not None:
            frame.evaluate("document.getElementById('advanced').open = true")
        for selector, value in (("#demarche", demarche), ("#token", token), ("#endpoint", endpoint)):
            if value is not None:
                frame.fill(selector, str(value))
        frame.evaluate("document.body.dataset.state = 'submitting'")
        frame.click("#sync")
        return frame

    def wait_sync_end(self, timeout: float = 180.0) -> dict:
        """After start_sync: wait for done/error; status() plus 'result'."""
        frame = find_widget_frame(self.page, path=self.widget_path)
        wait_widget_state(frame, ("done", "error", "confirm"), timeout)
        out = self.status()
        out["result"] = frame.evaluate("otpWidget.lastResult") if out["state"] == "done" else None
        return out

    # ---- document, through the REST API ---------------------------------------------------
    def fetch_table(self, table_id: str) -> dict[str, list]:
        return self.server.fetch_table(self.doc_id, table_id)

    def list_tables(self) -> list[dict]:
        return self.server.list_tables(self.doc_id)

    def columns(self, table_id: str) -> list[dict]:
        table = next((t for t in self.list_tables() if t["tableId"] == table_id), None)
        if table is None:
            raise KeyError(f"no table {table_id}")
        return table["columns"]

    def apply_user_actions(self, actions: list) -> Any:
        return self.server.apply(self.doc_id, actions)

    def widget_options(self, saved: bool = True) -> dict | None:
        """The widget options stored in the document (a server only has the saved ones)."""
        custom = self.server.section_options(self.doc_id, self.doc.section_ref).get("customView") or {}
        return custom.get("widgetOptions") or None


def widget_url(base: str, **params: Any) -> str:
    query = {k: str(v) for k, v in params.items() if v is not None}
    return base + (("&" if "?" in base else "?") + urllib.parse.urlencode(query) if query else "")


def set_widget_url(server: GristCoreServer, doc: CoreDoc, url: str) -> None:
    options = server.section_options(doc.doc_id, doc.section_ref)
    custom = options.get("customView") or {}
    custom["url"] = url
    options["customView"] = json.dumps(custom)
    server.apply(doc.doc_id, [["UpdateRecord", "_grist_Views_section", doc.section_ref,
                               {"options": json.dumps(options)}]])
