"""`otp sync` and `otp check`: every procedure of the configuration, one after the other, each
with its own outcome (one failing never stops the others), through the widget's very core."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..ds.client import DSClient
from ..grist.document import load_state
from ..grist.sink import records
from ..jobs.copy import synchronise
from ..jobs.copy_result import SyncResult
from ..jobs.lease import SCHEDULED_HOLDER
from ..progress import Progress
from .config import Procedure, read_secret
from .rest_sink import GristAccessError, RestSink

# exit statuses (README « Synchronisation planifiée », `otp --help`)
OK, INTERNAL, CONFIG, GRIST, DS_TOKEN, PARTIAL, BUSY = 0, 1, 2, 3, 4, 5, 6
PRIORITY = (CONFIG, GRIST, DS_TOKEN, INTERNAL, PARTIAL, BUSY)  # the run's status: the first found
TOKEN_CODES = {"token_expired", "token_rejected", "forbidden_network", "unauthorized"}
STATUS_FR = {OK: "terminée", INTERNAL: "erreur interne", CONFIG: "configuration", GRIST: "grist",
             DS_TOKEN: "jeton DS refusé", PARTIAL: "partielle", BUSY: "déjà en cours"}


@dataclass
class Outcome:
    """One procedure's line in the journal."""

    procedure: Procedure
    exit: int
    message: str
    code: str = ""
    result: SyncResult | None = None
    duration: float = 0.0
    ds_requests: int = 0
    grist_requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        r = self.result
        counts = {k: getattr(r, k) for k in ("total", "fetched", "added", "updated", "deleted")} if r else {}
        return {"procedure": self.procedure.number, "document": self.procedure.document,
                "status": "ok" if self.exit == OK else STATUS_FR[self.exit], "exit": self.exit, "code": self.code,
                **counts, **({"kind": _kind(r), "skipped": r.skipped} if r else {}),
                "duration_s": round(self.duration, 2), "ds_requests": self.ds_requests,
                "grist_requests": self.grist_requests, "message": self.message, **self.extra}


def _kind(result: SyncResult) -> str:
    return "reprise" if result.resumed else ("incrémentale" if result.incremental else "complète")


def holder() -> str:
    """The lease's holder for a scheduled run: the widget tells it apart (`errors.sync_busy`)."""
    return f"{SCHEDULED_HOLDER}{socket.gethostname()}/{os.getpid()}"[:80]


def exit_kind(error: BaseException) -> int:
    if isinstance(error, errors.InputError):
        return CONFIG
    if isinstance(error, (GristAccessError, errors.GristWriteError)):
        return GRIST
    code = getattr(error, "code", "")
    if isinstance(error, errors.DSError) and code in TOKEN_CODES:
        return DS_TOKEN
    if code == "busy":
        return BUSY
    return PARTIAL if isinstance(error, errors.OTPError) else INTERNAL


def run_status(outcomes: list[Outcome]) -> int:
    found = {o.exit for o in outcomes}
    return next((status for status in PRIORITY if status in found), OK)


class Runner:
    """What a run shares: its HTTP client, the environment (secrets), the holder, a cancel flag."""

    def __init__(self, http: Any, environ: dict[str, str] | None = None, *, emit: Callable[[dict], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None, holder_id: str | None = None):
        self.http, self.environ = http, os.environ if environ is None else environ
        self.emit, self.should_cancel = emit, should_cancel
        self.holder = holder_id or holder()
        self.secrets: list[str] = []  # every secret read: masked in whatever is logged

    def _open(self, procedure: Procedure) -> tuple[RestSink, DSClient, Any]:
        api_key = read_secret(procedure.api_key, self.environ)
        token = read_secret(procedure.token, self.environ)
        self.secrets += [api_key, token]
        params = procedure.params(token, self.holder)
        sink = RestSink(self.http, procedure.grist_server, procedure.document, api_key)
        return sink, DSClient(params.endpoint, token, self.http, progress=Progress(self.emit)), params

    async def sync(self, procedure: Procedure) -> Outcome:
        started, sink, ds = time.monotonic(), None, None
        try:
            sink, ds, params = self._open(procedure)
            result = await synchronise(params, ds, sink, should_cancel=self.should_cancel)
            outcome = Outcome(procedure, PARTIAL if result.skipped else OK, result.message, result=result)
        except Exception as error:  # noqa: BLE001 - one procedure's failure never stops the others
            outcome = self._failed(procedure, error)
        return self._measured(outcome, started, sink, ds)

    async def check(self, procedure: Procedure, *, plan: bool = False) -> Outcome:
        """Every connection tested, nothing written: Grist (document, access) and DS (the
        procedure), each whatever the other answered; with `plan`, what a sync would do (`--dry-run`)."""
        started, sink, ds = time.monotonic(), None, None
        try:
            sink, ds, _ = self._open(procedure)
        except Exception as error:  # noqa: BLE001
            return self._measured(self._failed(procedure, error), started, sink, ds)
        said, failed = [], []
        for probe in (_check_grist, _check_ds) + ((_plan,) if plan else ()):
            if probe is _plan and failed:
                break
            try:
                said.append(await probe(procedure, sink, ds))
            except Exception as error:  # noqa: BLE001 - said, and the next connection tested
                failed.append(error)
        if failed:
            worst = min(failed, key=lambda e: PRIORITY.index(exit_kind(e)))
            outcome = self._failed(procedure, worst)
            outcome.message = " ".join([outcome.message, *said, *(getattr(e, "message_fr", "") for e in failed if e is not worst)])
        else:
            outcome = Outcome(procedure, OK, " ".join(said))
        return self._measured(outcome, started, sink, ds)

    def _failed(self, procedure: Procedure, error: BaseException) -> Outcome:
        message = getattr(error, "message_fr", None) or f"Erreur inattendue : {type(error).__name__}: {error}"
        return Outcome(procedure, exit_kind(error), f"{procedure.label} : {message}", code=getattr(error, "code", "error"))

    def _measured(self, outcome: Outcome, started: float, sink: RestSink | None, ds: DSClient | None) -> Outcome:
        outcome.duration = time.monotonic() - started
        outcome.ds_requests = ds.request_count if ds else 0
        outcome.grist_requests = sink.calls if sink else 0
        outcome.message = self.mask(outcome.message)
        return outcome

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if len(secret) >= 8:  # a real key or token; a shorter one would mangle the words
                text = text.replace(secret, "***")
        return text


async def _check_grist(procedure: Procedure, sink: RestSink, _ds: DSClient) -> str:
    described = await sink.describe()
    access = described.get("access") or ""
    if access not in ("owners", "editors"):
        raise GristAccessError(f"La clé d'API n'a pas le droit d'écrire dans le document {procedure.document} "
                               f"(accès : {access or 'inconnu'}) : partagez-le en « éditeur » avec le compte de la clé.",
                               code="grist_read_only")
    return f"Grist : document « {described.get('name', '')} » ({procedure.document}), accès {access}."


async def _check_ds(procedure: Procedure, _sink: RestSink, ds: DSClient) -> str:
    structure = await ds.structure(procedure.number)
    return f"DS : démarche n° {structure.number} « {structure.title} », {structure.dossiers_count} dossiers."


async def _plan(procedure: Procedure, sink: RestSink, _ds: DSClient) -> str:
    """What a sync would do now, from the document's state (read only)."""
    number = procedure.number
    doc = await load_state(sink)
    row = doc.procedure(number) or {}
    leases = [r for r in records(await sink.fetch_table("OTP_Etat")) if r.get("Demarche") == number] \
        if doc.table_ref("OTP_Etat") else []
    live = [r for r in leases if (r.get("Expire") or 0) > time.time()]
    if live:
        return f"Une synchronisation est en cours ({live[0].get('Detenteur') or '?'}) : la commande ne ferait rien (statut 6)."
    if any(r.get("Reprise") for r in leases):
        return "À faire : reprise de la synchronisation interrompue, depuis son point de reprise."
    if row.get("Curseur"):
        return f"À faire : synchronisation incrémentale (dernière le {_date(row.get('Derniere_synchro'))}) ; rien ne serait écrit maintenant (--dry-run)."
    return "À faire : synchronisation complète (première copie dans ce document) ; rien ne serait écrit maintenant (--dry-run)."


def _date(epoch: Any) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(epoch), UTC).strftime("%d/%m/%Y %H:%M UTC") if epoch else "?"
