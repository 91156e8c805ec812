"""`otp`: the widget's core, scheduled, with nobody at the screen (see README « Synchronisation planifiée »).

    otp sync --config /etc/otp/otp.toml [--dry-run] [--log-format json]
    otp check --config /etc/otp/otp.toml

Not imported by the widget (`widget_entry`): its HTTP client (httpx) is the `[cli]` extra's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any, TextIO

from .config import ConfigError, load_config
from .run import CONFIG, INTERNAL, PARTIAL, STATUS_FR, Outcome, Runner, run_status

EXIT_STATUSES = """\
statuts de sortie :
  0  toutes les démarches sont synchronisées (ou, pour check, toutes les connexions répondent)
  1  erreur inattendue (à signaler)
  2  configuration : fichier absent ou mal formé, secret absent, vide ou lisible par d'autres
  3  Grist : serveur injoignable, clé d'API refusée, document inexistant, pas de droit d'écriture
  4  DS : jeton expiré, refusé, restreint à d'autres réseaux, ou sans accès à la démarche
  5  partielle : une démarche n'a pas été synchronisée en entier pour une autre raison (DS
     injoignable ou en erreur, dossiers que DS n'a pas pu donner, arrêt) ; la suivante reprend
  6  une synchronisation de la démarche était déjà en cours (widget ou autre exécution) : rien fait
Plusieurs démarches en échec : le premier de 2, 3, 4, 1, 5, 6 trouvé. Les autres démarches sont
synchronisées quand l'une échoue. Une ligne de journal par démarche (--log-format json : JSON).
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="otp", description="One Trick Pony : copie planifiée des dossiers DS "
                                  "dans Grist (le cœur du widget, sans navigateur).",
                                  epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    for name, text in (("sync", "synchronise chaque démarche de la configuration"),
                       ("check", "teste chaque connexion (Grist et DS) sans rien écrire")):
        command = commands.add_parser(name, help=text, description=text, epilog=EXIT_STATUSES,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_argument("--config", required=True, help="fichier TOML (voir deploy/otp.toml.exemple)")
        command.add_argument("--log-format", choices=("text", "json"), default="text")
        command.add_argument("--verbose", action="store_true", help="les étapes de chaque synchronisation (stderr)")
        if name == "sync":
            command.add_argument("--dry-run", action="store_true", help="dit ce qui serait fait, sans rien écrire")
    return top


def log_line(outcome: Outcome, fmt: str, out: TextIO) -> None:
    fields = outcome.fields()
    if fmt == "json":
        out.write(json.dumps(fields, ensure_ascii=False) + "\n")
    else:
        counts = "".join(f" {k}={fields[k]}" for k in ("total", "added", "updated", "deleted") if k in fields)
        out.write(f"[{fields['status']}] démarche {fields['procedure']} document {fields['document']}:{counts} "
                  f"durée={fields['duration_s']}s requêtes_DS={fields['ds_requests']} "
                  f"requêtes_Grist={fields['grist_requests']} — {fields['message']}\n")
    out.flush()


def config_failure(path: str, error: ConfigError, fmt: str, out: TextIO) -> int:
    if fmt == "json":
        out.write(json.dumps({"status": STATUS_FR[CONFIG], "exit": CONFIG, "code": error.code, "config": path,
                              "message": error.message_fr}, ensure_ascii=False) + "\n")
    else:
        out.write(f"[configuration] {error.message_fr}\n")
    return CONFIG


async def run(args: argparse.Namespace, out: TextIO, *, http: Any = None, environ: dict[str, str] | None = None,
              cancel: Any = None) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        return config_failure(args.config, error, args.log_format, out)
    if http is None:
        from .httpx_transport import HttpxTransport

        async with HttpxTransport() as client:
            return await run(args, out, http=client, environ=environ, cancel=cancel)
    emit = (lambda event: print(event.get("message", ""), file=sys.stderr)) if args.verbose else None
    runner = Runner(http, environ, emit=emit, should_cancel=cancel)
    outcomes = []
    for procedure in config.procedures:
        if cancel is not None and cancel():  # stopped (SIGTERM): the procedures not begun wait for the next run
            outcome = Outcome(procedure, PARTIAL, f"{procedure.label} : arrêt demandé avant son tour ; "
                              "elle sera synchronisée à la prochaine exécution.", code="cancelled")
        elif args.command == "check" or getattr(args, "dry_run", False):
            outcome = await runner.check(procedure, plan=args.command == "sync")
        else:
            outcome = await runner.sync(procedure)
        log_line(outcome, args.log_format, out)
        outcomes.append(outcome)
    return run_status(outcomes)


class Stop:
    """SIGTERM / SIGINT (systemd stopping the unit, a timeout): the sync stops after its current
    page, writes its history line (« Annulée ») and frees the lease; the next run resumes there."""

    def __init__(self) -> None:
        self.asked_at: float | None = None

    def __call__(self, *_args: Any) -> None:
        self.asked_at = self.asked_at or time.monotonic()

    def __bool__(self) -> bool:
        return self.asked_at is not None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stop = Stop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    try:
        return asyncio.run(run(args, sys.stdout, cancel=lambda: bool(stop)))
    except Exception as error:  # noqa: BLE001 - never a traceback with secrets in the journal
        print(f"[erreur interne] {type(error).__name__}", file=sys.stderr)
        return INTERNAL

