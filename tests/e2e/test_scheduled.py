"""`otp sync` against a real grist-core server and the fake DS (issue 21).

The command runs as it runs on the relay's host: a separate process (`python -m py_core.cli`,
the `otp` entry point's module), a TOML configuration, secrets in 0600 files.

« The widget » here is the same core driven as the widget's worker drives it
(`synchronise` with the widget's parameters and holder "<browser>/<tab>", DS through the
transport the lab uses) over `PluginApiSink`: the two document calls the widget's plugin API
makes, `fetchTable` and `applyUserActions`, reach the same ActiveDoc methods on grist-core
through their REST routes (`GET /tables/<t>/data`, `POST /apply`); it is written here with
urllib, independently of the command's `RestSink`. A browser adds nothing to what is compared
(the tables, columns and rows the core writes) and would double these tests' time; the
widget's own browser path on grist-core is `test_grist_core.py`'s. One test only drives the real
widget in Chromium: what the agent reads when the scheduled run holds the document.
"""
from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import grist_core as core
from harness import TOKEN
from py_core import errors
from py_core.clock import Clock
from py_core.ds.client import DSClient
from py_core.ds.transport import UrllibTransport
from py_core.grist.sink import written_tables
from py_core.jobs.copy import synchronise
from py_core.jobs.lease import LEASE_S
from py_core.jobs.params import parse_params

ROOT = Path(__file__).resolve().parents[2]
EXPIRED = "jeton-expire-5678"
A, B = 4242, 4343  # two procedures, in two documents
WIDGET_HOLDER = "navigateur-e2e/onglet-1"
VOLATILE = {"OTP_Demarches": {"Derniere_synchro", "Relire_depuis"}}  # when, not what
SKIPPED_TABLES = {"OTP_Historique", "OTP_Etat"}  # compared apart: times, holders


# ---- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grist(tmp_path_factory):
    kit = core.find_kit()
    if kit is None:
        pytest.skip(core.kit_missing())
    core.build(kit)
    server = core.GristCoreServer(kit, tmp_path_factory.mktemp("grist-core-scheduled")).start()
    yield server
    server.stop()


@pytest.fixture
def ds(fake_ds):
    return fake_ds(number=A, dossiers=40, seed=3, expired_tokens=[EXPIRED],
                   others=[dict(number=B, dossiers=12, seed=5, first_dossier_number=900000)])


def new_doc(grist, name: str = "OTP planifié") -> str:
    return grist.request("POST", f"/api/workspaces/{grist.workspace_id}/docs", {"name": name})


def secret_file(directory: Path, name: str, value: str, mode: int = 0o600) -> Path:
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def write_config(directory: Path, grist, ds_url: str, procedures: list[tuple[int, str]], *,
                 api_key: str | None = None, token: str = TOKEN) -> Path:
    secret_file(directory, "grist-key", api_key or grist.api_key)
    secret_file(directory, "ds-token", token)
    body = (f'[grist]\nserver = "{grist.url}"\napi_key_file = "grist-key"\n\n'
            f'[ds]\nendpoint = "{ds_url}"\ntoken_file = "ds-token"\n')
    for number, doc_id in procedures:
        body += f'\n[[procedure]]\ndemarche = {number}\ndocument = "{doc_id}"\n'
    path = directory / "otp.toml"
    path.write_text(body)
    return path


def otp_command(*args: str, directory: Path) -> list[str]:
    return [sys.executable, "-m", "py_core.cli", *args]


def otp_env(directory: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CREDENTIALS_DIRECTORY": str(directory)}


def otp(*args: str, directory: Path, timeout: float = 300) -> tuple[int, list[dict]]:
    """Run the command (JSON log); its exit status and its log lines."""
    proc = subprocess.run(otp_command(*args, "--log-format", "json", directory=directory), cwd=ROOT,
                          env=otp_env(directory), capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert TOKEN not in proc.stdout + proc.stderr
    return proc.returncode, lines


# ---- the widget's way to the document, for comparison ------------------------------------------
class PluginApiSink:
    """fetchTable / applyUserActions of the plugin API, through the routes that reach the same
    ActiveDoc methods (urllib; independent of the command's RestSink)."""

    def __init__(self, grist, doc_id: str):
        self.grist, self.doc_id = grist, doc_id

    def _call(self, method: str, path: str, body=None):
        return self.grist.request(method, f"/api/docs/{self.doc_id}{path}", body)

    async def fetch_table(self, table_id: str):
        return await asyncio.to_thread(self.grist.fetch_table, self.doc_id, table_id)

    async def apply(self, actions):
        if not actions:
            return []
        try:
            result = await asyncio.to_thread(self._call, "POST", "/apply", actions)
        except core.GristError as error:
            raise errors.grist_write_failed(str(error), written_tables(actions)) from None
        return (result or {}).get("retValues") or []


def widget_sync(grist, doc_id: str, ds_url: str, number: int = A, *, later: float = 0.0):
    """The widget's sync (its parameters, its holder); `later`: seconds after now (an agent who
    clicks after a killed run's lease expired)."""
    params = parse_params({"demarche": str(number), "token": TOKEN, "endpoint": ds_url, "holder": WIDGET_HOLDER})
    client = DSClient(ds_url, TOKEN, UrllibTransport(), clock=Clock(now=lambda: time.time() + later))
    return _in_thread(synchronise(params, client, PluginApiSink(grist, doc_id)))


def _in_thread(coroutine):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def document(grist, doc_id: str) -> dict:
    """What a sync wrote: user tables' columns (type, formula, options) and rows; pages; the
    history without its times."""
    tables = grist.fetch_table(doc_id, "_grist_Tables")
    columns = grist.fetch_table(doc_id, "_grist_Tables_column")
    cols = [dict(zip(columns, values)) for values in zip(*columns.values())]
    out = {"pages": sorted(grist.fetch_table(doc_id, "_grist_Views")["name"])}
    for ref, table_id in zip(tables["id"], tables["tableId"]):
        if table_id.startswith("_grist") or table_id in SKIPPED_TABLES:
            continue
        out[f"{table_id} columns"] = sorted(
            (c["colId"], c["label"], c["type"], c["isFormula"], c["formula"], c["widgetOptions"])
            for c in cols if c["parentId"] == ref and not c["colId"].startswith("gristHelper_"))
        data = grist.fetch_table(doc_id, table_id)
        out[table_id] = {k: [_unsigned(v) for v in values] for k, values in data.items()
                         if k not in VOLATILE.get(table_id, ())}
    history = grist.records(doc_id, "OTP_Historique")
    out["history"] = [{k: h[k] for k in ("Demarche", "Type", "Statut", "Dossiers_recus", "Ajoutes", "Mis_a_jour",
                                          "Supprimes", "Message")} for h in history]
    return out


def _unsigned(cell):
    """A file's link without its signature: DS (and the fake) sign URLs anew at every request."""
    return re.sub(r"signature=[^&\s]*", "signature=…", cell) if isinstance(cell, str) else cell


def history(grist, doc_id: str) -> list[dict]:
    return grist.records(doc_id, "OTP_Historique")


def rows(grist, doc_id: str, table_id: str) -> int:
    try:
        return len(grist.fetch_table(doc_id, table_id)["id"])
    except core.GristError:
        return 0


def viewer_key(grist, email: str = "lecteur@example.com") -> str:
    """An API key of another user (grist-core's test login, then the profile's key)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(grist.login_url(email, grist.url + "/")).read()
    request = urllib.request.Request(grist.url + "/api/profile/apikey", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json", "X-Requested-With": "XMLHttpRequest"})
    return opener.open(request).read().decode().strip().strip('"')


# ---- equal to the widget's copy -----------------------------------------------------------------
def test_a_scheduled_first_and_incremental_sync_write_what_the_widget_writes(grist, ds, tmp_path):
    scheduled, widget = new_doc(grist, "planifiée"), new_doc(grist, "widget")
    config = write_config(tmp_path, grist, ds.url, [(A, scheduled)])
    status, lines = otp("sync", "--config", str(config), directory=tmp_path)
    assert status == 0, lines
    [line] = lines
    assert line["procedure"] == A and line["document"] == scheduled and line["status"] == "ok"
    assert line["added"] == 40 and line["kind"] == "complète" and line["ds_requests"] > 0 and line["grist_requests"] > 0
    widget_sync(grist, widget, ds.url)
    first_scheduled, first_widget = document(grist, scheduled), document(grist, widget)
    assert first_scheduled == first_widget

    # DS moves on: a champ changed, a dossier added, one deleted; both sync again
    store = ds.store
    numbers = sorted(store.procedure(A).dossiers)
    store.update_dossier(numbers[0], state="accepte")
    store.add_dossier(procedure_number=A)
    store.delete_dossier(numbers[1])
    store.advance(60)
    status, lines = otp("sync", "--config", str(config), directory=tmp_path)
    assert status == 0 and lines[0]["kind"] == "incrémentale" and lines[0]["added"] == 1, lines
    widget_sync(grist, widget, ds.url)
    again_scheduled, again_widget = document(grist, scheduled), document(grist, widget)
    assert again_scheduled == again_widget
    assert again_scheduled != first_scheduled
    notes = [h["Notes"] for h in history(grist, scheduled)]
    assert all("Synchronisation planifiée" in n for n in notes)
    assert not any("planifiée" in h["Notes"] for h in history(grist, widget))


# ---- together with the widget: one lease ----------------------------------------------------------
@pytest.fixture
def slow_ds(fake_ds):
    """A DS far away (1 s per answer) with a procedure of 350 dossiers (4 pages)."""
    return fake_ds(number=A, dossiers=350, seed=7, latency=1.0)


def start_otp(config: Path, directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(otp_command("sync", "--config", str(config), "--log-format", "json", directory=directory),
                            cwd=ROOT, env=otp_env(directory), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    command_line = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    assert TOKEN not in command_line and "grist-key" not in command_line  # the process list shows no secret
    return proc


def wait_for(condition, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def lease_holder(grist, doc_id: str) -> str:
    try:
        live = [r for r in grist.records(doc_id, "OTP_Etat") if (r.get("Expire") or 0) > time.time()]
    except core.GristError:
        return ""
    return live[0]["Detenteur"] if live else ""


def test_an_agent_who_clicks_during_the_nightly_run_is_told_so_and_the_run_ends(grist, slow_ds, tmp_path):
    doc = new_doc(grist)
    config = write_config(tmp_path, grist, slow_ds.url, [(A, doc)])
    proc = start_otp(config, tmp_path)
    holder = wait_for(lambda: lease_holder(grist, doc), what="the scheduled run's lease")
    assert holder.startswith("otp-sync@")
    with pytest.raises(errors.OTPError) as busy:
        widget_sync(grist, doc, slow_ds.url)
    assert busy.value.code == "busy" and "synchronisation planifiée" in busy.value.message_fr
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert rows(grist, doc, "D4242_Dossiers") == 350


def test_a_nightly_run_that_finds_an_agent_syncing_says_so_and_exits_6(grist, slow_ds, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    doc = new_doc(grist)
    config = write_config(tmp_path, grist, slow_ds.url, [(A, doc)])
    with ThreadPoolExecutor(1) as pool:
        agent = pool.submit(widget_sync, grist, doc, slow_ds.url)
        assert wait_for(lambda: lease_holder(grist, doc), what="the widget's lease") == WIDGET_HOLDER
        status, [line] = otp("sync", "--config", str(config), directory=tmp_path)
        assert status == 6 and line["status"] == "déjà en cours" and line["code"] == "busy"
        assert "déjà en cours" in line["message"] and f"n° {A}" in line["message"] and doc in line["message"]
        assert agent.result().added == 350
    assert len(history(grist, doc)) == 1  # the run that found it busy wrote nothing


def checkpoint(grist, doc_id: str) -> str:
    try:
        return next((r["Reprise"] for r in grist.records(doc_id, "OTP_Etat") if r["Reprise"]), "")
    except core.GristError:
        return ""


def test_a_run_killed_in_the_middle_is_resumed_by_the_widget(grist, slow_ds, tmp_path):
    doc, witness = new_doc(grist, "tué puis repris"), new_doc(grist, "témoin")
    config = write_config(tmp_path, grist, slow_ds.url, [(A, doc)])
    proc = start_otp(config, tmp_path)
    wait_for(lambda: checkpoint(grist, doc), timeout=120, what="a first page written with its checkpoint")
    proc.send_signal(signal.SIGKILL)  # 3 a.m.: the host reboots
    proc.wait(timeout=10)
    assert 100 <= rows(grist, doc, "D4242_Dossiers") < 350
    # the agent opens the widget the next morning (the killed run's lease expired)
    result = widget_sync(grist, doc, slow_ds.url, later=LEASE_S + 30)
    assert result.resumed and result.total == 350 and rows(grist, doc, "D4242_Dossiers") == 350
    widget_sync(grist, witness, slow_ds.url)
    resumed, fresh = document(grist, doc), document(grist, witness)
    resumed.pop("history"), fresh.pop("history")
    assert resumed == fresh


def test_a_run_stopped_by_systemd_writes_its_line_and_the_widget_resumes_at_once(grist, slow_ds, tmp_path):
    doc = new_doc(grist)
    config = write_config(tmp_path, grist, slow_ds.url, [(A, doc)])
    proc = start_otp(config, tmp_path)
    wait_for(lambda: rows(grist, doc, "D4242_Dossiers") >= 100, timeout=120, what="a first page written")
    proc.send_signal(signal.SIGTERM)  # systemctl stop, or the unit's timeout
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 5, out
    [line] = [json.loads(text) for text in out.splitlines()]
    assert line["code"] == "cancelled"
    [stopped] = history(grist, doc)
    assert stopped["Statut"] == "Annulée" and "Synchronisation planifiée" in stopped["Notes"]
    result = widget_sync(grist, doc, slow_ds.url)  # no wait: the lease was given back
    assert result.resumed and rows(grist, doc, "D4242_Dossiers") == 350


# ---- bad input: a clear message naming the procedure and the document, the others synced --------
def user_tables(grist, doc_id: str) -> list[str]:
    return sorted(t for t in grist.fetch_table(doc_id, "_grist_Tables")["tableId"] if not t.startswith("_grist"))


def test_a_document_that_does_not_exist_fails_alone(grist, ds, tmp_path):
    good = new_doc(grist)
    config = write_config(tmp_path, grist, ds.url, [(A, "DocumentInexistant42"), (B, good)])
    status, (missing, synced) = otp("sync", "--config", str(config), directory=tmp_path)
    assert status == 3
    assert missing["status"] == "grist" and missing["code"] == "grist_doc_not_found"
    assert f"n° {A}" in missing["message"] and "DocumentInexistant42" in missing["message"]
    assert synced["status"] == "ok" and synced["added"] == 12 and rows(grist, good, "D4343_Dossiers") == 12


def test_an_api_key_without_write_access_writes_nothing_and_check_says_so(grist, ds, tmp_path):
    read_only, good = new_doc(grist, "en lecture"), new_doc(grist)
    grist.share(read_only, "lecteur@example.com", "viewers")
    before = user_tables(grist, read_only)
    config = write_config(tmp_path, grist, ds.url, [(B, good)])
    secret_file(tmp_path, "viewer-key", viewer_key(grist))
    config.write_text(config.read_text() + f'\n[[procedure]]\ndemarche = {A}\ndocument = "{read_only}"\n'
                                           'api_key_file = "viewer-key"\n')
    status, (synced, refused) = otp("sync", "--config", str(config), directory=tmp_path)
    assert status == 3 and synced["status"] == "ok"
    assert refused["status"] == "grist" and refused["code"] == "grist_write_forbidden"
    assert f"n° {A}" in refused["message"] and read_only in refused["message"]
    assert user_tables(grist, read_only) == before  # nothing half-written
    status, (_, checked) = otp("check", "--config", str(config), directory=tmp_path)
    assert status == 3 and checked["code"] == "grist_read_only" and read_only in checked["message"]


def test_an_expired_ds_token_writes_nothing_and_exits_4(grist, ds, tmp_path):
    doc = new_doc(grist)
    before = user_tables(grist, doc)
    config = write_config(tmp_path, grist, ds.url, [(A, doc)], token=EXPIRED)
    status, [line] = otp("sync", "--config", str(config), directory=tmp_path)
    assert status == 4 and line["code"] == "token_expired" and line["status"] == "jeton DS refusé"
    assert f"n° {A}" in line["message"] and doc in line["message"] and EXPIRED not in json.dumps(line)
    assert user_tables(grist, doc) == before


def test_check_and_dry_run_write_nothing(grist, ds, tmp_path):
    doc = new_doc(grist)
    before = user_tables(grist, doc)
    config = write_config(tmp_path, grist, ds.url, [(A, doc)])
    status, [line] = otp("check", "--config", str(config), directory=tmp_path)
    assert status == 0 and "40 dossiers" in line["message"] and "accès owners" in line["message"], line
    status, [line] = otp("sync", "--dry-run", "--config", str(config), directory=tmp_path)
    assert status == 0 and "synchronisation complète" in line["message"], line
    assert user_tables(grist, doc) == before
    assert otp("sync", "--config", str(config), directory=tmp_path)[0] == 0
    status, [line] = otp("sync", "--dry-run", "--config", str(config), directory=tmp_path)
    assert status == 0 and "synchronisation incrémentale" in line["message"], line
    assert len(history(grist, doc)) == 1


def test_a_missing_or_malformed_configuration_exits_2(grist, tmp_path):
    status, [line] = otp("sync", "--config", str(tmp_path / "absente.toml"), directory=tmp_path)
    assert status == 2 and line["code"] == "config_missing"
    (tmp_path / "bad.toml").write_text("[grist\nserver = ")
    status, [line] = otp("sync", "--config", str(tmp_path / "bad.toml"), directory=tmp_path)
    assert status == 2 and line["code"] == "config_malformed" and "bad.toml" in line["message"]


# ---- the one browser test: what the agent reads in the widget ------------------------------------
def test_the_agents_widget_says_the_scheduled_run_is_syncing(open_core_host, grist_core, core_doc, slow_ds, tmp_path):
    """The real widget in Chromium on grist-core, clicked while `otp sync` holds the lease."""
    config = write_config(tmp_path, grist_core, slow_ds.url, [(A, core_doc.doc_id)])
    host = open_core_host(demarche=A, endpoint=slow_ds.url, token=TOKEN)
    proc = start_otp(config, tmp_path)
    try:
        wait_for(lambda: lease_holder(grist_core, core_doc.doc_id).startswith("otp-sync@"), what="the run's lease")
        result = host.sync()
        assert result["state"] == "error", result
        assert "déjà en cours" in result["text"] and "synchronisation planifiée" in result["text"], result["text"]
    finally:
        out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    again = host.sync()  # once the run is over, the agent's click syncs (incrementally)
    assert again["state"] == "done", again["text"]
