"""`otp sync` against grist-core, beside the widget's core doing the same work (issue 21).

    python3 -m tests.bench.scheduled [--dossiers 5000,20000] [--json FILE]

For each size, in fresh grist-core documents and the same fake DS data (sample procedure):
a full sync, a re-sync with nothing changed, a re-sync with 1% of the dossiers changed, by

- `otp`: the command as deployed (`python -m py_core.cli sync`, httpx, Grist's REST API);
- `core`: the widget's core as its worker drives it (widget parameters and holder; the plugin
  API's two document calls through the routes that reach the same ActiveDoc methods, urllib;
  DS through urllib as in `tests/lab.py`), in a process of its own.

Each run is a child process: wall time, DS requests and Grist requests (counted by the client
and the sink; the fake DS's own count agrees), peak RSS of the process (ru_maxrss, measured by
a small parent of its own). grist-core and the fake
DS run in other processes (their time is in the wall time, their memory is not). The browser
widget's figures on grist-static are README « Benchmark »'s. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

TOKEN = "jeton-banc"
NUMBER = 4242


# ---- the widget's core, in a child process ---------------------------------------------------------
class PluginApiSink:
    def __init__(self, server: str, doc_id: str, key: str):
        self.base, self.key, self.calls = f"{server}/api/docs/{doc_id}", key, 0

    def _call(self, method: str, path: str, body=None):
        self.calls += 1
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as answer:
            return json.loads(answer.read() or b"null")

    async def fetch_table(self, table_id: str):
        data = await asyncio.to_thread(self._call, "GET", f"/tables/{table_id}/data")
        return {k: v for k, v in data.items() if k != "manualSort" and not k.startswith("gristHelper_")}

    async def apply(self, actions):
        from py_core import errors
        from py_core.grist.sink import written_tables

        if not actions:
            return []
        try:
            return (await asyncio.to_thread(self._call, "POST", "/apply", actions) or {}).get("retValues") or []
        except urllib.error.HTTPError as error:
            raise errors.grist_write_failed(str(error), written_tables(actions)) from None


def core_run(server: str, doc_id: str, ds_url: str) -> None:
    from py_core.ds.client import DSClient
    from py_core.ds.transport import UrllibTransport
    from py_core.jobs.copy import synchronise
    from py_core.jobs.params import parse_params

    key = os.environ["OTP_BENCH_KEY"]
    params = parse_params({"demarche": str(NUMBER), "token": TOKEN, "endpoint": ds_url, "holder": "banc/onglet"})
    sink = PluginApiSink(server, doc_id, key)
    ds = DSClient(ds_url, TOKEN, UrllibTransport())
    result = asyncio.run(synchronise(params, ds, sink))
    print(json.dumps({"added": result.added, "updated": result.updated, "total": result.total,
                      "ds_requests": ds.request_count, "grist_requests": sink.calls}))


# ---- the bench -------------------------------------------------------------------------------------
# the child's peak RSS: measured by a small parent of its own (a child forked from this process
# would count this process's memory, the fake DS's data, in its own peak before its exec)
MEASURE = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
           "print(f'PEAK_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', file=sys.stderr); sys.exit(code)")


def child(command: list[str], env: dict[str, str]) -> dict:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    peak = int(proc.stderr.rsplit("PEAK_KB=", 1)[1].split()[0])
    line = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {"error": proc.stderr[-500:]}
    return {**line, "wall_s": round(wall, 1), "peak_rss_mb": round(peak / 1024), "status": proc.returncode}


def one_size(grist, dossiers: int, directory: Path) -> list[dict]:
    from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure

    store = FakeDSStore([sample_procedure(number=NUMBER, dossier_count=dossiers, seed=1)])
    rows = []
    with FakeDSServer(store, tokens={TOKEN: "all"}) as ds:
        docs = {who: grist.request("POST", f"/api/workspaces/{grist.workspace_id}/docs", {"name": f"banc {who} {dossiers}"})
                for who in ("otp", "core")}
        config = directory / f"otp-{dossiers}.toml"
        config.write_text(f'[grist]\nserver = "{grist.url}"\napi_key_env = "OTP_BENCH_KEY"\n[ds]\nendpoint = "{ds.url}"\n'
                          f'token_env = "OTP_BENCH_TOKEN"\n[[procedure]]\ndemarche = {NUMBER}\ndocument = "{docs["otp"]}"\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OTP_BENCH_KEY": grist.api_key, "OTP_BENCH_TOKEN": TOKEN}
        commands = {"core": [sys.executable, "-m", "tests.bench.scheduled", "--core", grist.url, docs["core"], ds.url],
                    "otp": [sys.executable, "-m", "py_core.cli", "sync", "--config", str(config), "--log-format", "json"]}
        for work in ("full sync", "re-sync, nothing changed", "re-sync, 1% changed"):
            if work == "re-sync, 1% changed":
                for number in sorted(store.procedure(NUMBER).dossiers)[:: 100]:
                    store.update_dossier(number, motivation=f"Revu {time.time()}")
            store.advance(60)
            for who, command in commands.items():
                before = len(ds.requests)
                figures = child(command, env)
                figures.update(work=work, who=who, dossiers=dossiers, ds_served=len(ds.requests) - before,
                               load=round(os.getloadavg()[0], 1))
                print(format_row(figures), flush=True)
                rows.append(figures)
    return rows


def format_row(f: dict) -> str:
    return (f"{f['dossiers']:>6} | {f['work']:<26} | {f['who']:<4} | {f['wall_s']:>6} s | DS {f.get('ds_requests', '?'):>4} "
            f"| Grist {f.get('grist_requests', '?'):>4} | peak RSS {f['peak_rss_mb']:>5} MB | added {f.get('added', '?')} "
            f"updated {f.get('updated', '?')} | exit {f['status']} | load {f['load']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dossiers", default="5000")
    parser.add_argument("--json")
    parser.add_argument("--core", nargs=3, metavar=("GRIST", "DOC", "DS"))
    args = parser.parse_args()
    if args.core:
        return core_run(*args.core)
    import grist_core as core

    kit = core.find_kit()
    if kit is None:
        sys.exit(core.kit_missing())
    core.build(kit)
    with tempfile.TemporaryDirectory() as directory, core.GristCoreServer(kit, Path(directory) / "grist") as grist:
        rows = []
        for size in (int(n) for n in args.dossiers.split(",")):
            rows += one_size(grist, size, Path(directory))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
