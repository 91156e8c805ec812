"""Entry points the widget's worker calls (Pyodide). JSON text in, JSON text out.

`grist_call(method, args_json)` returns a JS Promise of the JSON result of `grist.docApi[method]`;
`emit(event_json)` posts a progress event to the page.
"""

from __future__ import annotations

import json
from typing import Any

from .ds.client import DSClient
from .grist.sink import BridgeSink
from .jobs.copy import synchronise
from .jobs.params import parse_params
from .progress import Progress
from .ds.transport import PyfetchTransport


async def sync_from_widget(params_json: str, grist_call: Any, emit: Any, should_cancel: Any = None) -> str:
    params = parse_params(json.loads(params_json))
    ds = DSClient(params.endpoint, params.token, PyfetchTransport(), progress=Progress(lambda event: emit(json.dumps(event))))
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


async def check_from_widget(params_json: str, grist_call: Any, emit: Any, should_cancel: Any = None) -> str:
    """Connection test: validates the input and reads the procedure's structure, writes nothing."""
    params = parse_params(json.loads(params_json))
    ds = DSClient(params.endpoint, params.token, PyfetchTransport())
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
