"""`otp` (py_core/cli): configuration, secrets, exit statuses, log lines — fast, CPython.

Grist is its own data engine (`tests/grist_engine.py`) behind a small REST façade (the routes
`RestSink` calls, with the API key checked), DS is the fake DS answering in process; both reach
the command through httpx's `MockTransport`, so the whole command runs, httpx included, without
a socket. The same command against a real grist-core: `tests/e2e/test_scheduled.py`.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from py_core import errors
from py_core.cli import main, parser, run
from py_core.cli.config import ConfigError, Secret, load_config, read_secret
from py_core.cli.httpx_transport import HttpxTransport
from py_core.cli.rest_sink import GristAccessError, RestSink
from py_core.cli.run import exit_kind
from tests.grist_engine import EngineSink, engine_missing
from tests.lab import run as in_thread  # a loop of its own: the browser tests' Playwright keeps one running

ROOT = Path(__file__).resolve().parents[1]
GRIST, DS_URL = "https://grist.test", "https://ds.test/api/v2/graphql"
KEY, TOKEN, EXPIRED = "cle-api-grist-0123456789", "jeton-ds-secret-abcdef", "jeton-ds-expire"
A, B = 4242, 4343

needs_engine = pytest.mark.skipif(bool(engine_missing()), reason=engine_missing() or "")


class FakeGrist:
    """Grist's REST routes over in-memory documents (doc id → EngineSink); DS's in process."""

    def __init__(self, ds: FakeDSServer, docs: dict[str, EngineSink], access: dict[str, str] | None = None):
        self.ds, self.docs, self.access = ds, docs, access or {}
        self.seen: list[str] = []  # every request's text, headers excluded (checked for secrets)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in ("ds.test", "grist.test"):
            raise httpx.ConnectError(f"Name or service not known: {request.url.host}")
        if request.url.host == "ds.test":
            _delay, respond = self.ds.answer(request.url.path, request.headers.get("authorization"), request.content)
            answer = respond()  # no latency here
            return httpx.Response(answer.status, content=answer.body, headers={"content-type": answer.content_type, **answer.headers})
        self.seen.append(str(request.url) + request.content.decode())
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"error": "Unauthorized"})
        parts = [unquote(p) for p in urlsplit(str(request.url)).path.split("/")[3:]]  # /api/docs/<doc>/...
        sink = self.docs.get(parts[0])
        if sink is None:
            return httpx.Response(404, json={"error": "document not found"})
        access = self.access.get(parts[0], "owners")
        if len(parts) == 1:
            return httpx.Response(200, json={"name": f"Document {parts[0]}", "access": access})
        if parts[1] == "tables":
            if parts[2] not in sink.table_ids() and not parts[2].startswith("_grist"):
                return httpx.Response(404, json={"error": f'Table not found "{parts[2]}"'})
            return httpx.Response(200, json=sink.table(parts[2]))
        if access == "viewers":
            return httpx.Response(403, json={"error": "No write access"})
        try:
            return httpx.Response(200, json={"retValues": sink.apply_now(json.loads(request.content))})
        except Exception as error:  # noqa: BLE001 - as Grist answers a refused bundle
            return httpx.Response(400, json={"error": str(error)})


@pytest.fixture
def ds():
    store = FakeDSStore([sample_procedure(number=A, dossier_count=8, seed=3),
                         sample_procedure(number=B, dossier_count=5, seed=5, first_dossier_number=900000)])
    server = FakeDSServer(store, tokens={TOKEN: "all"}, expired_tokens=[EXPIRED]).start()  # answered in process
    yield server
    server.stop()


def secret(path: Path, value: str, mode: int = 0o600) -> Path:
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def config(tmp_path: Path, procedures: str = "", *, grist_key: str = 'api_key_file = "grist-key"',
           token: str = 'token_file = "ds-token"') -> Path:
    secret(tmp_path / "grist-key", KEY)
    secret(tmp_path / "ds-token", TOKEN)
    path = tmp_path / "otp.toml"
    path.write_text(f'[grist]\nserver = "{GRIST}"\n{grist_key}\n\n[ds]\nendpoint = "{DS_URL}"\n{token}\n\n'
                    + (procedures or f'[[procedure]]\ndemarche = {A}\ndocument = "docA"\n'))
    return path


def otp(path: Path, fake: FakeGrist | None, *args: str, environ: dict[str, str] | None = None) -> tuple[int, list[dict]]:
    """The command, in process (its HTTP through `fake`); its status and its JSON lines."""
    command, *rest = args or ("sync",)
    parsed = parser().parse_args([command, "--config", str(path), "--log-format", "json", *rest])
    out = io.StringIO()
    env = {"CREDENTIALS_DIRECTORY": str(path.parent), **(environ or {})}

    async def go() -> int:
        if fake is None:
            return await run(parsed, out, http=object(), environ=env)
        async with HttpxTransport(transport=httpx.MockTransport(fake)) as http:
            return await run(parsed, out, http=http, environ=env)

    status = in_thread(go())
    text = out.getvalue()
    for value in (KEY, TOKEN, EXPIRED):
        assert value not in text, "a secret in the log"
    return status, [json.loads(line) for line in text.splitlines()]


# ---- configuration and secrets ---------------------------------------------------------------------
def test_the_example_configuration_is_valid():
    loaded = load_config(str(ROOT / "deploy" / "otp.toml.exemple"))
    assert [p.number for p in loaded.procedures] == [12345, 67890]
    first = loaded.procedures[0]
    assert first.api_key == Secret(file="grist-api-key") and first.token == Secret(file="ds-token")
    assert loaded.procedures[1].token == Secret(env="OTP_DS_TOKEN_67890")
    assert first.params("x", "h").filters.states == ("en_instruction", "accepte")


@pytest.mark.parametrize("text, code", [
    ('[ds]\nendpoint = "https://d/api"\n[[procedure]]\ndemarche = 1\ndocument = "d"\n', "config_malformed"),  # no server
    ('[grist]\nserver = "https://g"\napi_key = "en clair"\n', "config_secret_inline"),
    ('[grist]\nserver = "https://g"\napi_key_file = "k"\n[ds]\nendpoint = "https://d/api"\ntoken_file = "t"\n', "config_empty"),
    ('[grist]\nserver = "https://g"\napi_key_file = "k"\n[ds]\nendpoint = "https://d/api"\ntoken_file = "t"\n'
     '[[procedure]]\ndemarche = 1\ndocument = "d"\ntoken = "en clair"\n', "config_secret_inline"),
    ('[grist]\nserver = "https://g"\napi_key_file = "k"\napi_key_env = "K"\n[ds]\nendpoint = "https://d/api"\ntoken_file = "t"\n'
     '[[procedure]]\ndemarche = 1\ndocument = "d"\n', "config_malformed"),
    ('[grist]\nserver = "https://g"\napi_key_file = "k"\n[ds]\nendpoint = "https://d/api"\ntoken_file = "t"\n'
     '[[procedure]]\ndemarche = 1\ndocument = "d"\nfiltres = 3\n', "config_malformed"),
    ('[grist]\nserver = "https://g"\napi_key_file = "k"\n[ds]\nendpoint = "ftp://d"\ntoken_file = "t"\n'
     '[[procedure]]\ndemarche = 1\ndocument = "d"\n', "endpoint_invalid"),
    ("[grist\n", "config_malformed"),
])
def test_a_bad_configuration_is_refused_with_a_french_message(tmp_path, text, code):
    path = tmp_path / "otp.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    assert refused.value.code == code
    status, [line] = otp(path, None)
    assert status == 2 and line["exit"] == 2 and line["message"] == refused.value.message_fr


def test_a_missing_configuration_exits_2(tmp_path):
    status, [line] = otp(tmp_path / "absente.toml", None)
    assert status == 2 and line["code"] == "config_missing" and "absente.toml" in line["message"]


def test_secrets_come_from_0600_files_or_named_variables_and_never_from_a_file_others_read(tmp_path):
    key = secret(tmp_path / "k", "valeur")
    assert read_secret(Secret(file=str(key)), {}) == "valeur"
    assert read_secret(Secret(file="k"), {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "valeur"  # systemd
    assert read_secret(Secret(env="OTP_K"), {"OTP_K": " valeur\n"}) == "valeur"
    for mode in (0o644, 0o640, 0o604):
        key.chmod(mode)
        with pytest.raises(ConfigError) as exposed:
            read_secret(Secret(file=str(key)), {})
        assert exposed.value.code == "secret_exposed" and "chmod 600" in exposed.value.message_fr
        assert "valeur" not in exposed.value.message_fr
    for source, environ in ((Secret(env="OTP_ABSENT"), {}), (Secret(file=str(tmp_path / "none")), {})):
        with pytest.raises(ConfigError) as missing:
            read_secret(source, environ)
        assert missing.value.code == "secret_missing"


# ---- whole runs ---------------------------------------------------------------------------------------
@needs_engine
def test_one_line_per_procedure_with_its_counts_and_status_0(tmp_path, ds):
    docs = {"docA": EngineSink("Europe/Paris"), "docB": EngineSink("Europe/Paris")}
    path = config(tmp_path, f'[[procedure]]\ndemarche = {A}\ndocument = "docA"\n\n'
                            f'[[procedure]]\ndemarche = {B}\ndocument = "docB"\nkeep_deleted = true\n')
    fake = FakeGrist(ds, docs)
    status, lines = otp(path, fake)
    assert status == 0
    assert [(l["procedure"], l["document"], l["status"], l["added"]) for l in lines] == [(A, "docA", "ok", 8), (B, "docB", "ok", 5)]
    for line in lines:
        assert {"duration_s", "ds_requests", "grist_requests", "message", "kind", "total", "updated", "deleted"} <= set(line)
        assert line["ds_requests"] > 0 and line["grist_requests"] > 0 and line["kind"] == "complète"
        assert line["message"].startswith("Synchronisation terminée")
    [history] = docs["docA"].records("OTP_Historique")
    assert history["Statut"] == "Terminée" and "Synchronisation planifiée" in history["Notes"]
    assert history["Type"] == "Complète"  # the existing choices: the note says it was scheduled
    [lease] = docs["docA"].records("OTP_Etat")
    assert lease["Detenteur"].startswith("otp-sync@")
    assert not any(s in text for text in fake.seen for s in (KEY, TOKEN))  # not in a URL nor a body
    status, lines = otp(path, fake)
    assert status == 0 and [l["kind"] for l in lines] == ["incrémentale", "incrémentale"]


@needs_engine
def test_each_kind_of_failure_has_its_status_and_the_others_are_synced(tmp_path, ds):
    docs = {"docA": EngineSink("Europe/Paris"), "docB": EngineSink("Europe/Paris")}
    both = f'[[procedure]]\ndemarche = {A}\ndocument = "docA"\n\n[[procedure]]\ndemarche = {B}\ndocument = "docB"\n'
    # a secret missing for one procedure: configuration (2), the other one synced
    path = config(tmp_path, f'[[procedure]]\ndemarche = {A}\ndocument = "docA"\ntoken_env = "OTP_ABSENT"\n\n'
                            f'[[procedure]]\ndemarche = {B}\ndocument = "docB"\n')
    status, (first, second) = otp(path, FakeGrist(ds, docs))
    assert status == 2 and first["code"] == "secret_missing" and second["status"] == "ok"
    assert f"n° {A}" in first["message"] and "docA" in first["message"]
    # the document does not exist (3)
    status, (first, second) = otp(config(tmp_path, both), FakeGrist(ds, {"docB": docs["docB"]}))
    assert status == 3 and first["code"] == "grist_doc_not_found" and second["status"] == "ok"
    # a key refused (3): one line each
    path = config(tmp_path, both)
    secret(tmp_path / "grist-key", "une-autre-cle")
    status, lines = otp(path, FakeGrist(ds, docs))
    assert status == 3 and {l["code"] for l in lines} == {"grist_key_refused"}
    # an expired DS token (4), before anything is written
    fresh = EngineSink("Europe/Paris")
    before = fresh.table_ids()
    path = config(tmp_path, f'[[procedure]]\ndemarche = {A}\ndocument = "new"\ntoken_env = "OTP_T"\n\n'
                            f'[[procedure]]\ndemarche = {B}\ndocument = "docB"\n')
    status, (expired, ok) = otp(path, FakeGrist(ds, {"new": fresh, "docB": docs["docB"]}), environ={"OTP_T": EXPIRED})
    assert status == 4 and expired["code"] == "token_expired" and ok["status"] == "ok" and fresh.table_ids() == before
    # Grist unreachable (3)
    path = config(tmp_path, f'[[procedure]]\ndemarche = {A}\ndocument = "docA"\ngrist_server = "https://grist.invalid"\n')
    status, [line] = otp(path, FakeGrist(ds, docs))
    assert status == 3 and line["code"] == "grist_unreachable" and "grist.invalid" in line["message"]
    # a viewer's key: Grist refuses the first bundle (3), nothing written
    fresh = EngineSink("Europe/Paris")
    status, [line] = otp(config(tmp_path), FakeGrist(ds, {"docA": fresh}, access={"docA": "viewers"}))
    assert status == 3 and line["code"] == "grist_write_forbidden" and fresh.table_ids() == before


def test_exit_statuses_by_kind_of_error():
    assert exit_kind(ConfigError("x")) == 2 and exit_kind(errors.invalid_filters("x")) == 2
    assert exit_kind(GristAccessError("x")) == 3 and exit_kind(errors.grist_write_failed("x")) == 3
    for error in (errors.token_expired(), errors.token_rejected(), errors.forbidden_network(""), errors.demarche_not_accessible(1)):
        assert exit_kind(error) == 4
    for error in (errors.ds_unreachable("u", cors=False), errors.ds_too_slow("u"), errors.cancelled(), errors.lease_lost(1)):
        assert exit_kind(error) == 5
    assert exit_kind(errors.sync_busy(1, "à l'instant")) == 6
    assert exit_kind(KeyError("x")) == 1


def test_help_documents_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for status in range(7):
        assert re.search(rf"^  {status}  ", text, re.M), status


def test_the_widget_never_imports_httpx_nor_the_command():
    code = ("import sys, py_core.widget_entry, py_core.jobs.copy; "
            "print(sorted(m for m in sys.modules if m.startswith(('httpx', 'py_core.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_otp_command_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'otp = "py_core.cli:main"' in text and 'cli = ["httpx==' in text
    assert '"py_core.cli"' in text  # packaged


def test_rest_sink_errors(tmp_path):
    def answer(status, body):
        return lambda request: httpx.Response(status, json=body)

    async def go(handler, call):
        async with HttpxTransport(transport=httpx.MockTransport(handler)) as http:
            sink = RestSink(http, GRIST, "doc", KEY)
            assert KEY not in repr(sink)
            return await call(sink)

    with pytest.raises(errors.GristWriteError) as refused:
        in_thread(go(answer(403, {"error": "No write access"}), lambda s: s.apply([["AddRecord", "T", None, {}]])))
    assert refused.value.code == "grist_write_forbidden"
    with pytest.raises(GristAccessError) as missing:
        in_thread(go(answer(404, {"error": "document not found"}), lambda s: s.fetch_table("T")))
    assert missing.value.code == "grist_doc_not_found"

    def down(request):
        raise httpx.ConnectError("Connection refused")

    with pytest.raises(GristAccessError) as unreachable:
        in_thread(go(down, lambda s: s.fetch_table("T")))
    assert unreachable.value.code == "grist_unreachable" and "doc" in unreachable.value.message_fr
    assert in_thread(go(answer(200, {"id": [1], "manualSort": [1], "A": [2], "gristHelper_X": [0]}),
                          lambda s: s.fetch_table("T"))) == {"id": [1], "A": [2]}


def test_the_widgets_wheel_leaves_the_command_out():
    import tomllib

    sys.path.insert(0, str(ROOT))
    import build

    files = [name for name, _ in build._package_files(tomllib.loads((ROOT / "pyproject.toml").read_text()))]
    assert "py_core/widget_entry.py" in files and "py_core/jobs/copy.py" in files
    assert not [name for name in files if name.startswith("py_core/cli/")]


@needs_engine
def test_once_stopped_the_procedures_not_begun_wait_for_the_next_run(tmp_path, ds):
    docs = {"docA": EngineSink("Europe/Paris"), "docB": EngineSink("Europe/Paris")}
    path = config(tmp_path, f'[[procedure]]\ndemarche = {A}\ndocument = "docA"\n\n[[procedure]]\ndemarche = {B}\ndocument = "docB"\n')
    parsed = parser().parse_args(["sync", "--config", str(path), "--log-format", "json"])
    out, calls = io.StringIO(), []

    def stop_after_first() -> bool:  # SIGTERM arrives while the first procedure syncs
        calls.append(1)
        return len(calls) > 1

    async def go() -> int:
        async with HttpxTransport(transport=httpx.MockTransport(FakeGrist(ds, docs))) as http:
            return await run(parsed, out, http=http, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}, cancel=stop_after_first)

    assert in_thread(go()) == 5
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert first["code"] == "cancelled" and second["code"] == "cancelled" and "arrêt demandé" in second["message"]
    assert "D4343_Dossiers" not in docs["docB"].table_ids()
    # the next run resumes the stopped one and syncs the other
    status, lines = otp(path, FakeGrist(ds, docs))
    assert status == 0 and [l["kind"] for l in lines] == ["reprise", "complète"], lines
    assert "Reprise" in [h["Type"] for h in docs["docA"].records("OTP_Historique")]


@needs_engine
def test_check_tests_grist_and_ds_each_whatever_the_other_answered(tmp_path, ds):
    docs = {"docA": EngineSink("Europe/Paris")}
    path = config(tmp_path, token='token_env = "OTP_T"')
    status, [line] = otp(path, FakeGrist(ds, docs, access={"docA": "viewers"}), "check", environ={"OTP_T": EXPIRED})
    assert status == 3 and line["code"] == "grist_read_only"  # the first of 3 and 4
    assert "n'a pas le droit d'écrire" in line["message"] and "jeton d'API a expiré" in line["message"]
    status, [line] = otp(path, FakeGrist(ds, docs), "check", environ={"OTP_T": TOKEN})
    assert status == 0 and "accès owners" in line["message"] and "8 dossiers" in line["message"]
    assert docs["docA"].table_ids() == []  # nothing written


def test_a_text_log_line_names_the_procedure_and_the_document():
    from py_core.cli import log_line
    from py_core.cli.config import Procedure
    from py_core.cli.run import Outcome

    procedure = Procedure(A, "docA", GRIST, Secret(file="k"), Secret(env="T"), {"endpoint": DS_URL})
    out = io.StringIO()
    log_line(Outcome(procedure, 4, f"{procedure.label} : Le jeton d'API a expiré.", code="token_expired"), "text", out)
    assert out.getvalue() == (f"[jeton DS refusé] démarche {A} document docA: durée=0.0s requêtes_DS=0 requêtes_Grist=0 "
                              f"— démarche n° {A} → document docA : Le jeton d'API a expiré.\n")
