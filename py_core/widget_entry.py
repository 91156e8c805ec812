"""What the widget's worker calls (Pyodide): `run(name, params_json, grist_call, emit,
should_cancel)` runs one entry point and returns a JSON envelope, never raises, never shows the
token. Tested under CPython (`tests/test_widget_entry.py`) with a urllib transport.

`grist_call(method, args_json)` returns (a JS Promise of) the JSON result of
`grist.docApi[method]`; `emit(event_json)` posts a progress event to the page;
`should_cancel()` says whether the agent clicked « Annuler ».
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from .ds.client import DSClient
from .ds.transport import PyfetchTransport, Transport
from .grist.sink import BridgeSink
from .jobs.copy import synchronise
from .jobs import prefill
from .jobs.params import parse_params
from .progress import Progress


async def run(name: str, params_json: str, grist_call: Any, emit: Any, should_cancel: Any = None, *,
              transport: Transport | None = None) -> str:
    """`{"ok": true, "result": <the entry's JSON>}`, or `{"ok": false, "message": <French>,
    "code": <errors' code or null>, "traceback": <for the console>}`; the token is masked in
    every text that leaves."""
    secret = _token_of(params_json)
    try:
        entry = ENTRIES[name]
        result = await entry(params_json, grist_call, emit, should_cancel, transport or PyfetchTransport())
        return json.dumps({"ok": True, "result": result})
    except BaseException as error:  # noqa: BLE001 - everything goes back to the page
        message = getattr(error, "message_fr", None) or f"Erreur inattendue : {type(error).__name__}: {error}"
        code = getattr(error, "code", None)
        return json.dumps({"ok": False, "message": redact(message, secret), "code": code if isinstance(code, str) else None,
                           "traceback": redact("".join(traceback.format_exception(error)), secret)})


def redact(text: str, secret: str) -> str:
    """The token never leaves in a message (a short value could hide real words: from 4 characters)."""
    text = str(text)
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def _token_of(params_json: str) -> str:
    try:
        params = json.loads(params_json)
    except (TypeError, ValueError):
        return ""
    return str(params.get("token") or "") if isinstance(params, dict) else ""


async def sync_from_widget(params_json: str, grist_call: Any, emit: Any, should_cancel: Any, transport: Transport) -> str:
    params = parse_params(json.loads(params_json))
    ds = DSClient(params.endpoint, params.token, transport, progress=Progress(lambda event: emit(json.dumps(event))))
    result = await synchronise(params, ds, BridgeSink(grist_call),
                               should_cancel=(lambda: bool(should_cancel())) if should_cancel else None)
    return json.dumps({**result.to_dict(), "heap_mb": _heap_mb()}, ensure_ascii=False)


def _heap_mb() -> float | None:
    """The size of this Pyodide's memory (WebAssembly memory only grows: the peak so far)."""
    try:
        import pyodide_js  # type: ignore[import-not-found]

        return round(pyodide_js._module.HEAPU8.length / 2**20, 1)
    except Exception:  # noqa: BLE001 - not in Pyodide, or its private API moved
        return None


async def check_from_widget(params_json: str, grist_call: Any, emit: Any, should_cancel: Any, transport: Transport) -> str:
    """Connection test: validates the input and reads the procedure's structure, writes nothing."""
    params = parse_params(json.loads(params_json))
    ds = DSClient(params.endpoint, params.token, transport)
    structure = await ds.structure(params.number)
    return json.dumps(
        {
            "number": structure.number,
            "title": structure.title,
            "dossiers_count": structure.dossiers_count,
            "state": structure.state,
            "message": f"Connexion réussie : démarche n° {structure.number} « {structure.title} »"
            + (f", {structure.dossiers_count} dossiers" if structure.dossiers_count is not None else "")
            + ".",
        },
        ensure_ascii=False,
    )


async def prefill_prepare(params_json: str, grist_call: Any, emit: Any, should_cancel: Any, transport: Transport) -> str:
    """« Préparer le préremplissage »: `D<n>_Preremplissage` made or adjusted to the active form."""
    params = parse_params(json.loads(params_json))
    ds = DSClient(params.endpoint, params.token, transport, progress=Progress(lambda event: emit(json.dumps(event))))
    return json.dumps(await prefill.prepare(params, ds, BridgeSink(grist_call)), ensure_ascii=False)


async def prefill_create(params_json: str, grist_call: Any, emit: Any, should_cancel: Any, transport: Transport) -> str:
    """« Créer les dossiers préremplis »: DS's public API through the relay (no token sent there)."""
    params = parse_params(json.loads(params_json))
    ds = DSClient(params.endpoint, params.token, transport, progress=Progress(lambda event: emit(json.dumps(event))))
    result = await prefill.create_prefilled(params, ds, BridgeSink(grist_call), transport,
                                            should_cancel=(lambda: bool(should_cancel())) if should_cancel else None)
    return json.dumps(result.to_dict(), ensure_ascii=False)


async def prefill_follow(params_json: str, grist_call: Any, emit: Any, should_cancel: Any, transport: Transport) -> str:
    """« Mettre à jour le suivi »: the prefilled dossiers' states asked of DS by their tokens."""
    params = parse_params(json.loads(params_json))
    ds = DSClient(params.endpoint, params.token, transport, progress=Progress(lambda event: emit(json.dumps(event))))
    result = await prefill.follow(params, ds, BridgeSink(grist_call), transport)
    return json.dumps(result.to_dict(), ensure_ascii=False)


ENTRIES = {"sync_from_widget": sync_from_widget, "check_from_widget": check_from_widget,
           "prefill_prepare": prefill_prepare, "prefill_create": prefill_create, "prefill_follow": prefill_follow}
