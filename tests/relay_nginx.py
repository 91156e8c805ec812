"""The relay (relay/nginx/default.conf.template) run by a real nginx on 127.0.0.1, for the tests.

    with NginxRelay(widget_dir, ds_origin="http://127.0.0.1:PORT",
                    grist_origins="http://127.0.0.1:GRIST_PORT") as relay:
        relay.url        # http://127.0.0.1:RELAY_PORT
        relay.logs()     # access.log + error.log text

The template is rendered exactly as the official nginx image does (``envsubst`` restricted to
OTP_PORT, OTP_WIDGET_DIR, DS_ORIGIN and OTP_GRIST_ORIGINS), into a temporary prefix directory with its own
``nginx.conf`` (the http {} block that the image or Debian provide in production). The only
changes to the rendered server block are paths: the log directory ``/var/log/nginx/`` becomes the
temporary directory's ``logs/``, and the optional networks file ``/etc/nginx/otp-reseaux*.conf``
is looked for in the temporary directory. nginx runs in the foreground as a child process
(``nginx -p DIR -c DIR/nginx.conf -e ... -g 'daemon off;'``) and is stopped by its pid.

Missing nginx: ``missing_nginx()`` says why; tests skip with that reason, or fail when CI=true.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "relay" / "nginx" / "default.conf.template"
TEMPLATE_VARIABLES = "${OTP_PORT} ${OTP_WIDGET_DIR} ${DS_ORIGIN} ${OTP_GRIST_ORIGINS}"
# What the tests declare when no Grist frames the widget (raw HTTP tests): a Grist that never runs.
NO_GRIST = "https://grist.example.gouv.fr"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def missing_nginx() -> str | None:
    if nginx_binary() is None:
        return "nginx is not installed (apt-get install nginx, or make setup)"
    if shutil.which("envsubst") is None:
        return "envsubst is not installed (apt-get install gettext-base)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_template(otp_port: str, widget_dir: str | Path, ds_origin: str, grist_origins: str = NO_GRIST) -> str:
    """The template rendered by envsubst with only the four variables (as the image does)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OTP_PORT": str(otp_port),
           "OTP_WIDGET_DIR": str(widget_dir), "DS_ORIGIN": ds_origin, "OTP_GRIST_ORIGINS": grist_origins}
    proc = subprocess.run(["envsubst", TEMPLATE_VARIABLES], input=TEMPLATE.read_text(), env=env,
                          capture_output=True, text=True, check=True)
    return proc.stdout


MAIN_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log info;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    sendfile on;
    keepalive_timeout 65;
    include {dir}/conf.d/*.conf;
}}
"""


class NginxRelay:
    def __init__(self, widget_dir: str | Path, ds_origin: str, port: int | None = None,
                 grist_origins: str | list[str] = NO_GRIST, networks: str | None = None):
        """``grist_origins``: OTP_GRIST_ORIGINS, the Grist servers that may frame the widget
        (space-separated, or a list). ``networks``: the text of the optional allow/deny file
        (``/etc/nginx/otp-reseaux.conf`` in production), or None for none."""
        self.networks = networks
        self.widget_dir = Path(widget_dir).resolve()
        self.ds_origin = ds_origin
        self.grist_origins = grist_origins if isinstance(grist_origins, str) else " ".join(grist_origins)
        self.port = port or free_port()
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.started_in = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.url + "/api/v2/graphql"

    def _write_conf(self) -> Path:
        self.dir = Path(tempfile.mkdtemp(prefix="otp-nginx-"))
        for sub in ("conf.d", "logs", "tmp"):
            (self.dir / sub).mkdir()
        # Listen on the loopback only: OTP_PORT accepts nginx's "address:port" form.
        rendered = render_template(f"127.0.0.1:{self.port}", self.widget_dir, self.ds_origin, self.grist_origins)
        assert "/var/log/nginx/" in rendered
        rendered = rendered.replace("/var/log/nginx/", f"{self.dir}/logs/")
        # The optional allow/deny file (relay/README.md): the test's own directory, empty unless
        # networks= is given.
        assert "include /etc/nginx/otp-reseaux*.conf;" in rendered
        rendered = rendered.replace("/etc/nginx/otp-reseaux*.conf", f"{self.dir}/otp-reseaux*.conf")
        if self.networks is not None:
            (self.dir / "otp-reseaux.conf").write_text(self.networks)
        (self.dir / "conf.d" / "default.conf").write_text(rendered)
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(MAIN_CONF.format(dir=self.dir, user=user))
        return conf

    def _command(self, conf: Path, *extra: str) -> list[str]:
        return [nginx_binary(), "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "logs" / "error.log"),
                *extra]

    def start(self, timeout: float = 10.0) -> "NginxRelay":
        t0 = time.monotonic()
        conf = self._write_conf()
        check = subprocess.run(self._command(conf, "-t", "-q"), capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.proc = subprocess.Popen(self._command(conf, "-g", "daemon off;"),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx not listening on {self.port} after {timeout} s")
                time.sleep(0.02)
        self.started_in = time.monotonic() - t0
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()   # SIGTERM to the master (our child), which stops its worker
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def cleanup(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "NginxRelay":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
        self.cleanup()

    def access_log(self) -> str:
        return (self.dir / "logs" / "access.log").read_text(errors="replace") if self.dir else ""

    def error_log(self) -> str:
        return (self.dir / "logs" / "error.log").read_text(errors="replace") if self.dir else ""

    def logs(self) -> str:
        return self.access_log() + "\n" + self.error_log()


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes to 127.0.0.1:port; return (HTTP status, whole answer). Status 0 when
    the server closed the connection without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    try:
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    except (IndexError, ValueError):
        status = 0
    return status, answer
