"""Small static HTTP server for the OTP demo and the end-to-end tests (stdlib only).

    python3 -m demo.serve [--port 8000]     # then open http://127.0.0.1:8000/

URL prefixes are mapped to directories (longest prefix wins):

    /grist/   -> node_modules/grist-static/dist   (a real Grist, in the browser)
    /widget/  -> widget/dist                      (the built widget: python3 build.py)
    /         -> demo/host                        (host page: Grist + the widget)

plus one generated file, ``/widget/otp-config.json`` = ``{"demo": true}``: it tells the widget
that it runs in the local demo, where its URL may carry ``?token=`` (and ``?endpoint=`` counts as
typed by the agent). A deployed widget has no such file (or the relay's, without ``demo``), so it
never reads a token from its URL.

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
DEMO_FILES: dict[str, tuple[bytes, str]] = {
    "/widget/otp-config.json": (b'{"demo": true}\n', "application/json"),
}


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
        if raw_path in self.files:
            body, ctype = self.files[raw_path]
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
                 files: dict[str, tuple[bytes, str]] | None = None):
        """``files``: generated files (exact path -> (body, content type)); default DEMO_FILES."""
        root_map = root_map or default_root_map()
        files = DEMO_FILES if files is None else files
        items = [(p if p.endswith("/") else p + "/", Path(d)) for p, d in root_map.items()]
        items.sort(key=lambda item: len(item[0]), reverse=True)
        handler = type("OTPHandler", (_Handler,), {"root_map": items, "quiet": quiet, "files": dict(files)})
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

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
