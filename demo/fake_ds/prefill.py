"""DS's public prefill API, as DS does it (``../shared/ds/README.md``, « Prefilling »).

- ``POST /api/public/v1/demarches/<n>/dossiers``: no token; ``Content-Type`` exactly
  ``application/json`` (else 400 ``{"error":"Content-Type should be json"}``); a procedure
  neither published nor in test: 404 ``{"error":"procedure <n> is not found"}``; answer 201
  ``{dossier_url, state: "prefilled", dossier_id, dossier_number, dossier_prefill_token}``.
  Values invalid for their champ are **dropped silently** (DS checks numbers, dates, civilité,
  yes/no, checkbox, geographic codes, multiple choice, EPCI, dossier link; it stores e-mail,
  phone, IBAN, single drop-down, address and SIRET unchecked). Unknown keys are ignored.
- ``GET`` of the same path ``?prefill_token=a,b``: an array, unknown tokens left out.
- 15 POST per 15 s per client address, then 429 (Rack::Attack's plain « Retry later »).
- A prefilled dossier is a brouillon: invisible to GraphQL. ``PrefillDesk.claim`` and
  ``PrefillDesk.submit`` play the person who opens the link, edits and submits it; submitted, it
  becomes an ``en_construction`` dossier of the store (GraphQL sees it).

The geographic referentials are the sample ones (``samples.COMMUNES``…): a code DS does not
know is dropped, as DS drops it.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .store import FakeDSStore, Procedure, build_champ, encode_id, stable_id_of

PATH = re.compile(r"^/api/public/v1/demarches/(\d+)/dossiers$")
LIMIT = 15  # POST per window per address
WINDOW_S = 15.0
PREFILLABLE = {
    "text", "textarea", "decimal_number", "integer_number", "formatted", "email", "phone", "iban",
    "civilite", "pays", "regions", "departements", "communes", "epci", "address", "date", "datetime",
    "yes_no", "checkbox", "drop_down_list", "multiple_drop_down_list", "dossier_link", "siret", "repetition",
}
DROP = object()  # a value DS drops silently


@dataclass
class Reply:
    status: int
    payload: Any
    content_type: str = "application/json; charset=utf-8"

    def body(self) -> bytes:
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload, ensure_ascii=False).encode()


@dataclass
class Prefilled:
    """A prefilled dossier (a brouillon) as DS keeps it."""

    token: str
    procedure: int
    number: int
    values: dict[str, Any]  # the kept values, by descriptor id ("identite_*" for the identity)
    created: float
    state: str = "prefilled"  # prefilled → brouillon (claimed) → en_construction (submitted) …
    submitted_at: str | None = None


@dataclass
class PrefillDesk:
    store: FakeDSStore
    base_url: str = "http://127.0.0.1"
    monotonic: Callable[[], float] = time.monotonic  # the throttle's clock (tests give a virtual one)
    dossiers: dict[str, Prefilled] = field(default_factory=dict)  # token → brouillon
    posts: int = 0  # POST requests received (201, 400, 404, 429 alike)
    created: int = 0
    throttled: int = 0
    _sent: dict[str, deque] = field(default_factory=dict)  # address → times of its POSTs
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- HTTP ----------------------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        return PATH.match(urlsplit(path).path) is not None

    def answer(self, method: str, path: str, content_type: str | None, body: bytes, address: str = "127.0.0.1") -> Reply:
        parts = urlsplit(path)
        number = int(PATH.match(parts.path).group(1))
        if method == "POST":
            with self._lock:
                self.posts += 1
                if not self._admit(address):
                    self.throttled += 1
                    return Reply(429, b"Retry later\n", "text/plain")
            return self._create(number, content_type, body)
        if method == "GET":
            return self._track(number, parts.query)
        return Reply(404, {"error": "Not Found"})

    def _admit(self, address: str) -> bool:
        now = self.monotonic()
        sent = self._sent.setdefault(address, deque())
        while sent and sent[0] <= now - WINDOW_S:
            sent.popleft()
        if len(sent) >= LIMIT:
            return False
        sent.append(now)
        return True

    def _procedure(self, number: int) -> Procedure | None:
        procedure = self.store.procedures.get(number)
        return procedure if procedure is not None and procedure.state in ("publiee", "brouillon") else None

    def _create(self, number: int, content_type: str | None, body: bytes) -> Reply:
        if content_type != "application/json":
            return Reply(400, {"error": "Content-Type should be json"})
        procedure = self._procedure(number)
        if procedure is None:
            return Reply(404, {"error": f"procedure {number} is not found"})
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return Reply(400, {"error": "Invalid JSON"})
        values = kept_values(procedure, params if isinstance(params, dict) else {}, self.store)
        with self.store.lock:
            dossier_number = self.store.next_dossier_number()
            dossier_number = max([dossier_number, *(d.number + 1 for d in self.dossiers.values())])
            token = secrets.token_urlsafe(18)
            self.dossiers[token] = Prefilled(token, number, dossier_number, values, self.store.wall())
            self.created += 1
        return Reply(201, self._created(self.dossiers[token]))

    def _url(self, dossier: Prefilled) -> str:
        return f"{self.base_url}/commencer/demarche-{dossier.procedure}?prefill_token={dossier.token}"

    def _created(self, dossier: Prefilled) -> dict[str, Any]:
        return {"dossier_url": self._url(dossier), "state": "prefilled", "dossier_id": encode_id("Dossier", dossier.number),
                "dossier_number": dossier.number, "dossier_prefill_token": dossier.token}

    def _track(self, number: int, query: str) -> Reply:
        tokens = [t for v in parse_qs(query).get("prefill_token", []) for t in v.split(",") if t]
        out = []
        for token in tokens:
            dossier = self.dossiers.get(token)
            if dossier is None or dossier.procedure != number:
                continue  # unknown tokens are left out
            if dossier.state == "prefilled":
                out.append(self._created(dossier))
                continue
            live = self.store.procedures[number].dossiers.get(dossier.number)
            state = live["state"] if live else dossier.state
            out.append({"state": state, "submitted_at": dossier.submitted_at,
                        "processed_at": (live or {}).get("dateTraitement"), "dossier_id": encode_id("Dossier", dossier.number),
                        "dossier_number": dossier.number, "dossier_prefill_token": token})
        return Reply(200, out)

    # -- the person who received the link -------------------------------------------------------
    def token_of_url(self, url: str) -> str:
        return parse_qs(urlsplit(url).query)["prefill_token"][0]

    def claim(self, token: str) -> Prefilled:
        """The person opens the link, signed in: the brouillon is theirs (still invisible to GraphQL)."""
        dossier = self.dossiers[token]
        dossier.state = "brouillon" if dossier.state == "prefilled" else dossier.state
        return dossier

    def submit(self, token: str, edits: dict[str, Any] | None = None) -> dict:
        """The person completes (``edits``: descriptor id → value, as DS's prefill takes it) and
        submits: an ``en_construction`` dossier GraphQL sees, carrying the values."""
        from .samples import generate_dossier  # samples imports store

        dossier = self.claim(token)
        procedure = self.store.procedures[dossier.procedure]
        stamp = self.store.advance()
        dossier.values.update(edits or {})
        built = generate_dossier(procedure, dossier.number, seed=dossier.number, deposited=stamp, state="en_construction")
        built["champs"] = _champs(procedure, dossier.values, built["champs"], stamp)
        built["prefilled"] = True
        if procedure.for_individual:
            built["demandeur"] = {"__typename": "PersonnePhysique", "id": encode_id("Individual", dossier.number),
                                  "civilite": (dossier.values.get("identite_genre") or "M.").rstrip("."),
                                  "nom": dossier.values.get("identite_nom") or "", "prenom": dossier.values.get("identite_prenom") or "",
                                  "email": None, "dateDeNaissance": None}
        for key in ("dateDepot", "datePassageEnConstruction", "dateDerniereModification", "dateDerniereModificationChamps"):
            built[key] = stamp
        with self.store.lock:
            procedure.dossiers[dossier.number] = built
        dossier.state, dossier.submitted_at = "en_construction", stamp
        return built


# -- what DS keeps ------------------------------------------------------------------------------
def kept_values(procedure: Procedure, params: dict[str, Any], store: FakeDSStore) -> dict[str, Any]:
    """The values DS keeps of a prefill body (descriptor id → value); the others are dropped."""
    out: dict[str, Any] = {}
    descriptors = {_key(d["id"]): d for d in procedure.active_revision["champDescriptors"]}
    for key, value in params.items():
        if key in ("identite_prenom", "identite_nom") and procedure.for_individual and isinstance(value, str):
            out[key] = value
        elif key == "identite_genre" and procedure.for_individual and value in ("M.", "Mme"):
            out[key] = value
        elif key in descriptors and descriptors[key]["type"] in PREFILLABLE:
            kept = keep(descriptors[key], value, store)
            if kept is not DROP:
                out[descriptors[key]["id"]] = kept
    return out


def _key(descriptor_id: str) -> str:
    return "champ_" + descriptor_id.rstrip("=")


def keep(descriptor: dict, value: Any, store: FakeDSStore) -> Any:
    """The value as DS stores it, or ``DROP``."""
    kind = descriptor["type"]
    check = _CHECKS.get(kind)
    if kind == "repetition":
        return _rows(descriptor, value, store)
    if check is None:  # stored unchecked (text, e-mail, phone, IBAN, drop-down, address, SIRET…)
        return value if isinstance(value, (str, int, float)) else DROP
    return check(descriptor, value, store)


def _rows(descriptor: dict, value: Any, store: FakeDSStore) -> Any:
    if not isinstance(value, list):
        return DROP
    subs = {_key(d["id"]): d for d in descriptor["champDescriptors"] or []}
    rows = []
    for row in value:
        if not isinstance(row, dict):
            continue
        kept = {}
        for key, item in row.items():
            if key in subs and subs[key]["type"] in PREFILLABLE and subs[key]["type"] != "repetition":
                item = keep(subs[key], item, store)
                if item is not DROP:
                    kept[subs[key]["id"]] = item
        rows.append(kept)
    return rows


def _number(_d, value, _s):
    try:
        return float(str(value).replace(",", ".")) if not isinstance(value, bool) and str(value).strip() else DROP
    except ValueError:
        return DROP


def _integer(_d, value, _s):
    text = str(value).strip()
    return int(text) if not isinstance(value, bool) and re.fullmatch(r"-?\d+", text) else DROP


def _date(_d, value, _s):
    try:
        return date.fromisoformat(value).isoformat() if isinstance(value, str) and len(value) == 10 else DROP
    except ValueError:
        return DROP


def _datetime(_d, value, _s):
    try:
        return datetime.fromisoformat(value).isoformat() if isinstance(value, str) and "T" in value else DROP
    except ValueError:
        return DROP


def _bool(_d, value, _s):
    return value if value in ("true", "false") else DROP


def _civilite(_d, value, _s):
    return value if value in ("M.", "Mme") else DROP


def _multiple(descriptor, value, _s):
    options = descriptor.get("options") or []
    return value if isinstance(value, list) and value and all(v in options for v in value) else DROP


def _in(codes):
    def check(_d, value, _s):
        return value if isinstance(value, str) and value in codes() else DROP
    return check


def _communes(_d, value, _s):
    from .samples import COMMUNES

    ok = isinstance(value, list) and len(value) == 2 and any(c[2] == value[0] and c[1] == value[1] for c in COMMUNES)
    return value if ok else DROP


def _epci(_d, value, _s):
    from .samples import DEPARTEMENTS, EPCIS

    ok = (isinstance(value, list) and len(value) == 2 and value[0] in {c for c, _ in DEPARTEMENTS}
          and value[1] in {c for c, _ in EPCIS})
    return value if ok else DROP


def _dossier_link(_d, value, store: FakeDSStore):
    text = str(value).strip()
    if not text.isdigit():
        return DROP
    return int(text) if any(int(text) in p.dossiers for p in store.procedures.values()) else DROP


def _codes(name):
    def codes():
        from . import samples

        return {c for c, _ in getattr(samples, name)}
    return codes


_CHECKS = {
    "decimal_number": _number, "integer_number": _integer, "date": _date, "datetime": _datetime,
    "yes_no": _bool, "checkbox": _bool, "civilite": _civilite, "multiple_drop_down_list": _multiple,
    "pays": _in(_codes("PAYS")), "regions": _in(_codes("REGIONS")), "departements": _in(_codes("DEPARTEMENTS")),
    "communes": _communes, "epci": _epci, "dossier_link": _dossier_link,
}


# -- the submitted dossier's champs ------------------------------------------------------------
def _champs(procedure: Procedure, values: dict[str, Any], generated: list[dict], stamp: str) -> list[dict]:
    """The person's champs: the prefilled values where DS kept one, what they typed elsewhere."""
    out = []
    for champ in generated:
        descriptor = next(d for d in procedure.active_revision["champDescriptors"] if d["id"] == champ["champDescriptorId"])
        if descriptor["id"] not in values:
            out.append(champ)
            continue
        value = _as_champ_value(descriptor, values[descriptor["id"]])
        out.append(build_champ(descriptor, value, stamp) if value is not None else champ)
    return out


def _as_champ_value(descriptor: dict, value: Any) -> Any:
    kind = descriptor["type"]
    if kind in ("yes_no", "checkbox"):
        return value == "true"
    if kind == "civilite":
        return value.rstrip(".")
    if kind in ("pays", "regions", "departements"):
        from . import samples

        names = dict({"pays": samples.PAYS, "regions": samples.REGIONS, "departements": samples.DEPARTEMENTS}[kind])
        return {"code": value, "name": names[value]}
    if kind == "repetition":
        return [{stable_id_of(k): _as_champ_value(_sub(descriptor, k), v) for k, v in row.items()} for row in value]
    if kind in ("communes", "epci", "address", "siret"):
        return None  # the person picks them again from DS's referentials (the fake keeps the generated one)
    return copy.deepcopy(value)


def _sub(descriptor: dict, sub_id: str) -> dict:
    return next(d for d in descriptor["champDescriptors"] if d["id"] == sub_id)
