"""Small static HTTP server for the OTP demo and the end-to-end tests (stdlib only).

    python3 -m demo.serve [--port 8000]     # then open http://127.0.0.1:8000/

URL prefixes are mapped to directories (longest prefix wins):

    /grist/   -> node_modules/grist-static/dist   (a real Grist, in the browser)
    /widget/  -> widget/dist                      (the built widget: python3 build.py)
    /         -> demo/host                        (host page: Grist + the widget)

plus one generated file, ``/widget/otp-config.json`` =
``{"demo": true, "gristOrigins": "<this server's origin> ..."}``: it tells the widget that it runs in
the local demo, where its URL may carry ``?token=`` (and ``?endpoint=`` counts as typed by the
agent), and which Grist pages may frame it. A deployed widget has no such file (or the relay's,
without ``demo``), so it never reads a token from its URL.

The demo declares its Grist origins the way the relay does (OTP_GRIST_ORIGINS): the widget's files
under ``/widget/`` carry a ``Content-Security-Policy`` whose ``frame-ancestors`` are
``grist_origins`` (this server's own origin, where grist-static runs, plus any added, e.g. a
grist-core server's), connections allowed to this computer (the fake DS) and DS's sites;
``Referrer-Policy: no-referrer`` and ``X-Content-Type-Options: nosniff`` on every answer.

From Python::

    server = StaticServer(default_root_map(), port=0).start()   # background thread
    server.url  # 'http://127.0.0.1:PORT'
    server.stop()

Responses carry ``Cache-Control: no-cache`` plus ``Last-Modified``/``ETag``:
the browser keeps every file in its cache and revalidates it (a cheap 304),
so a rebuilt wheel with an unchanged name is never served stale.
"""
from __future__ import annotations

import argparse
import email.utils
import http.server
import json
import mimetypes
import os
import posixpath
import threading
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".map": "application/json",
    ".grist": "application/octet-stream",
    ".csv": "text/csv; charset=utf-8",
    ".graphql": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
    ".data": "application/octet-stream",
}


# Generated files served before the directories (exact paths).
DEMO_FILES: dict[str, tuple[bytes, str]] = {}
CONFIG_PATH = "/widget/otp-config.json"
WIDGET_PREFIX = "/widget/"

# The widget's content security policy, as the relay sends it (relay/nginx/default.conf.template),
# but for connections: this computer (the fake DS, any port) instead of one DS origin.
POLICY = ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
          "connect-src 'self' http://127.0.0.1:* http://localhost:* https://demarche.numerique.gouv.fr "
          "https://www.demarches-simplifiees.fr; style-src 'self'; font-src 'self'; img-src 'self' data:; "
          "manifest-src 'self'; base-uri 'none'; object-src 'none'; form-action 'none'; frame-ancestors {origins}")


def default_root_map() -> dict[str, Path]:
    return {
        "/grist/": ROOT / "node_modules" / "grist-static" / "dist",
        "/widget/": ROOT / "widget" / "dist",
        "/template/": ROOT / "demo" / "template",
        "/": ROOT / "demo" / "host",
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "OTPStatic/1.0"
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm holds the body
    # until the client's delayed ACK (40 ms on Linux) on every keep-alive answer
    disable_nagle_algorithm = True
    root_map: list[tuple[str, Path]] = []   # set per server, longest prefix first
    files: dict[str, tuple[bytes, str]] = {}  # exact path -> (body, content type)
    quiet = True
    config: dict | None = None            # /widget/otp-config.json (plus "gristOrigins"), or none
    grist_origins: list[str] = []         # the Grist pages that may frame the widget (shared list)
    policy_header = True                  # the widget's Content-Security-Policy as a header

    def end_headers(self):
        path = urllib.parse.urlsplit(self.path).path
        self.send_header("X-Content-Type-Options", "nosniff")
        if path.startswith(WIDGET_PREFIX):
            self.send_header("Referrer-Policy", "no-referrer")
            if self.policy_header:
                self.send_header("Content-Security-Policy", POLICY.format(origins=" ".join(self.grist_origins)))
        super().end_headers()

    def _generated(self, path: str) -> tuple[bytes, str] | None:
        if path == CONFIG_PATH and self.config is not None:
            config = {**self.config, "gristOrigins": " ".join(self.grist_origins)}
            return (json.dumps(config) + "\n").encode(), "application/json"
        return self.files.get(path)

    def log_message(self, fmt, *args):  # noqa: D401
        if not self.quiet:
            super().log_message(fmt, *args)

    def _resolve(self) -> Path | None:
        path = urllib.parse.urlsplit(self.path).path
        path = urllib.parse.unquote(path)
        for prefix, base in self.root_map:
            if path.startswith(prefix) or path + "/" == prefix:
                rest = path[len(prefix):] if path.startswith(prefix) else ""
                rest = posixpath.normpath("/" + rest).lstrip("/")
                if rest in ("", "."):
                    rest = "index.html"
                target = (base / rest).resolve()
                base_resolved = base.resolve()
                if target != base_resolved and base_resolved not in target.parents:
                    return None
                if target.is_dir():
                    target = target / "index.html"
                return target
        return None

    def handle(self):
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the browser gave up on a request (page closed, reload): not an error

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        raw_path = urllib.parse.urlsplit(self.path).path
        # "/widget" -> "/widget/" so relative URLs in index.html resolve.
        for prefix, _ in self.root_map:
            if prefix != "/" and raw_path == prefix.rstrip("/"):
                self.send_response(301)
                query = urllib.parse.urlsplit(self.path).query
                self.send_header("Location", prefix + (f"?{query}" if query else ""))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        generated = self._generated(raw_path)
        if generated is not None:
            body, ctype = generated
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        target = self._resolve()
        if target is None or not target.is_file():
            body = b"404 Not Found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        st = target.stat()
        etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            return
        ctype = MIME_TYPES.get(target.suffix.lower()) or mimetypes.guess_type(target.name)[0] \
            or "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(st.st_size))
        self.send_header("Last-Modified", last_modified)
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if head:
            return
        with open(target, "rb") as f:
            try:
                while chunk := f.read(1 << 16):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass


class StaticServer:
    """ThreadingHTTPServer on 127.0.0.1 serving a {url prefix: directory} map."""

    def __init__(self, root_map: dict[str, Path | str] | None = None, port: int = 0,
                 host: str = "127.0.0.1", quiet: bool = True,
                 files: dict[str, tuple[bytes, str]] | None = None,
                 config: dict | None = {"demo": True}, grist_origins: list[str] | None = None,
                 policy_header: bool = True):
        """``files``: generated files (exact path -> (body, content type)); default DEMO_FILES.
        ``config``: /widget/otp-config.json (``gristOrigins`` added), None for none (a plain
        static host). ``grist_origins``: the Grist pages that may frame the widget; default this
        server's own origin; ``add_grist_origin()`` adds one later. ``policy_header=False``: the
        widget's policy only from index.html's <meta> (a plain static host), never turned off."""
        root_map = root_map or default_root_map()
        files = DEMO_FILES if files is None else files
        items = [(p if p.endswith("/") else p + "/", Path(d)) for p, d in root_map.items()]
        items.sort(key=lambda item: len(item[0]), reverse=True)
        self.grist_origins: list[str] = []
        handler = type("OTPHandler", (_Handler,), {"root_map": items, "quiet": quiet, "files": dict(files),
                                                    "config": dict(config) if config is not None else None,
                                                    "grist_origins": self.grist_origins,
                                                    "policy_header": policy_header})
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        own = [self.url] + ([f"http://localhost:{self.port}"] if self.host == "127.0.0.1" else [])
        self.grist_origins.extend(grist_origins if grist_origins is not None else own)
        self._thread: threading.Thread | None = None

    def add_grist_origin(self, origin: str) -> None:
        """Declare one more Grist server that may frame the widget (e.g. grist-core's)."""
        if origin not in self.grist_origins:
            self.grist_origins.append(origin)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "StaticServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="otp-static", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(root_map: dict[str, Path | str] | None = None, port: int = 0, quiet: bool = True) -> StaticServer:
    """Start serving in a background thread; return the server (call .stop())."""
    return StaticServer(root_map, port=port, quiet=quiet).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the OTP demo (grist-static + widget).")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if not (ROOT / "widget" / "dist" / "manifest.json").is_file():
        print("widget/dist is missing: run `python3 build.py` first.")
    server = StaticServer(port=args.port, quiet=False)
    print(f"OTP demo: {server.url}/  (widget alone: {server.url}/widget/)  Ctrl-C to stop")
    print(f"  with parameters: {server.url}/?demarche=12345&endpoint=http://127.0.0.1:PORT/graphql&token=…")
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
