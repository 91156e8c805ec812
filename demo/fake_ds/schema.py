"""Executable GraphQL schema of the fake DS server (graphql-core).

The SDL (``schema.graphql``) is a verbatim subset of the real DS schema; this
module attaches resolvers reading the store's dicts, implements DS's cursor
pagination and its backward-compatible champ typenames.
"""

from __future__ import annotations

import base64
import itertools
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    Visitor,
    build_schema,
    visit,
)

from .mutations import MUTATION_RESOLVERS
from .store import FakeDSStore, Procedure, encode_id, instant, iso, paris_midnight, parse_iso, to_paris

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
MAX_PAGE_SIZE = 100

# Concrete champ types DS only answers when the query holds a fragment on them,
# and the type the same champ comes back as otherwise (app/graphql/types/champ_type.rb).
COMPAT_TYPENAMES = {
    "YesNoChamp": "CheckboxChamp",
    "DatetimeChamp": "DateChamp",
    "AddressChamp": "TextChamp",
    "CommuneChamp": "TextChamp",
    "DepartementChamp": "TextChamp",
    "RegionChamp": "TextChamp",
    "PaysChamp": "TextChamp",
    "DropDownListChamp": "TextChamp",
    "HeaderSectionChamp": "TextChamp",
    "ExplicationChamp": "TextChamp",
    "TitreIdentiteChamp": "PieceJustificativeChamp",
}


def error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def fragment_type_names(document: DocumentNode) -> set[str]:
    """Type conditions of every fragment (inline or named) in the document."""
    names: set[str] = set()

    class Collect(Visitor):
        def enter_inline_fragment(self, node: InlineFragmentNode, *_):
            if node.type_condition:
                names.add(node.type_condition.name.value)

        def enter_fragment_definition(self, node: FragmentDefinitionNode, *_):
            names.add(node.type_condition.name.value)

    visit(document, Collect())
    return names


# ---------------------------------------------------------------------------
# Cursor pagination, as DS's Connections::CursorConnection: keyset on
# (timestamp column, id), cursors are url-safe base64 of "<utc time>;<id>".


def encode_cursor(moment: str, ident: int) -> str:
    utc = parse_iso(moment).astimezone(timezone.utc)
    text = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond * 1000:09d}Z;{ident}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, ident = base64.urlsafe_b64decode(padded).decode().split(";")
        return datetime.fromisoformat(moment[:26] + "+00:00"), int(ident)
    except Exception as exc:  # noqa: BLE001 - any malformed cursor
        raise error(f"Invalid cursor: {cursor!r}", "bad_request") from exc


def paginate(items: list, key: Callable[[Any], tuple[str, int]], args: dict,
             node: Callable[[Any], Any] = lambda item: item) -> dict:
    """A DS connection (``nodes``, ``edges``, ``pageInfo``) over ``items``."""
    first, last = args.get("first"), args.get("last")
    after, before = args.get("after"), args.get("before")
    if first is not None and last is not None:
        raise error('Arguments "first" and "last" are exclusive', "bad_request")
    if before is not None and after is not None:
        raise error('Arguments "before" and "after" are exclusive', "bad_request")
    if first is not None and first < 0:
        raise error('Argument "first" must be a non-negative integer', "bad_request")
    if last is not None and last < 0:
        raise error('Argument "last" must be a non-negative integer', "bad_request")
    descending = args.get("order") == "DESC"
    if last is not None and descending:
        raise error('Argument "last" is not supported with order "desc"', "bad_request")

    limit = min(v for v in (first, last, MAX_PAGE_SIZE) if v is not None) + 1
    inverted = last is not None or before is not None

    def sort_key(item):
        moment, ident = key(item)
        return instant(moment), ident

    def bound_of(cursor):
        moment, ident = decode_cursor(cursor)
        return moment.timestamp(), ident

    def window(after_cursor, before_cursor, walk_backwards):
        ordered = sorted(((sort_key(item), n) for n, item in enumerate(items)), reverse=walk_backwards)
        if before_cursor is not None:
            bound = bound_of(before_cursor)
            ordered = [o for o in ordered if o[0] < bound]
        elif after_cursor is not None:
            bound = bound_of(after_cursor)
            ordered = [o for o in ordered if o[0] > bound]
        return [items[n] for _, n in ordered[:limit]]

    if descending:  # deprecated `order: DESC`, as DS's load_nodes_deprecated_order
        if before is None:
            inverted = not inverted
        nodes = window(before, after, inverted)
        full = len(nodes) == limit
        has_next = before is not None or (full and inverted)
        has_previous = after is not None or (full and not inverted)
        page = nodes[: limit - 1]
    else:
        nodes = window(after, before, inverted)
        full = len(nodes) == limit
        has_previous = after is not None or (full and inverted)
        has_next = before is not None or (full and not inverted)
        page = nodes[: limit - 1]
        if inverted:
            page.reverse()
    cursors = [encode_cursor(*key(item)) for item in page]
    return {
        "nodes": [node(item) for item in page],
        "edges": [{"cursor": c, "node": node(item)} for c, item in zip(cursors, page)],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


# ---------------------------------------------------------------------------
# Resolvers.


def _ctx(info) -> dict:
    return info.context


def _check_access(info, procedure: Procedure, type_name: str) -> None:
    allowed = _ctx(info)["allowed"]
    if allowed != "all" and procedure.number not in allowed:
        raise error(f"An object of type {type_name} was hidden due to permissions", "unauthorized")


def resolve_demarche(_root, info, number: int):
    store: FakeDSStore = _ctx(info)["store"]
    procedure = store.procedures.get(number)
    if procedure is None:
        raise error("Demarche not found", "not_found")
    _check_access(info, procedure, "Demarche")
    return demarche_dict(procedure)


def resolve_demarche_descriptor(_root, info, demarche: dict):
    if len([v for v in demarche.values() if v is not None]) != 1:
        raise error("FindDemarcheInput requires exactly one of id or number", "bad_request")
    store: FakeDSStore = _ctx(info)["store"]
    number = demarche.get("number")
    procedure = store.procedures.get(number) if number is not None else next(
        (p for p in store.procedures.values() if p.id == demarche.get("id")), None)
    if procedure is None:
        raise error("Demarche not found", "not_found")
    _check_access(info, procedure, "DemarcheDescriptor")
    return demarche_descriptor_dict(procedure, procedure.active_revision)


def resolve_dossier(_root, info, number: int):
    store: FakeDSStore = _ctx(info)["store"]
    try:
        procedure, dossier = store.find_dossier(number)
    except KeyError:
        raise error("Dossier not found", "not_found") from None
    _check_access(info, procedure, "Dossier")
    return dossier


def _procedure_metadata(procedure: Procedure) -> dict:
    """Fields Demarche and DemarcheDescriptor share."""
    return {
        "id": procedure.id,
        "number": procedure.number,
        "title": procedure.title,
        "description": procedure.description,
        "state": procedure.state,
        "declarative": None,
        "dateCreation": procedure.date_creation,
        "datePublication": procedure.date_publication,
        "dateDerniereModification": procedure.date_derniere_modification,
    }


def demarche_dict(procedure: Procedure) -> dict:
    revision = procedure.active_revision
    return {
        "_procedure": procedure,
        **_procedure_metadata(procedure),
        "dateDepublication": None,
        "dateFermeture": None,
        "activeRevision": revision,
        "draftRevision": revision,
        "publishedRevision": revision,
        "revisions": procedure.revisions,
        "champDescriptors": revision["champDescriptors"],
        "annotationDescriptors": revision["annotationDescriptors"],
        "labels": procedure.labels,
        "administrateurs": procedure.administrateurs,
        "service": procedure.service,
        "chorusConfiguration": None,
    }


def demarche_descriptor_dict(procedure: Procedure, revision: dict) -> dict:
    return {
        **_procedure_metadata(procedure),
        "dossiersCount": len(procedure.dossiers),
        "dureeConservationDossiers": 12,
        "forIndividual": procedure.for_individual,
        "opendata": True,
        "revision": revision,
        "service": procedure.service,
        "tags": [],
        "zones": [],
    }


def resolve_groupe_instructeurs(demarche, _info, closed: bool | None = None):
    groups = demarche["_procedure"].groupe_instructeurs
    return [g for g in groups if closed is None or g["closed"] == closed]


def _revision_created(procedure: Procedure, revision_id: str) -> str:
    revision = procedure.revision(revision_id)
    if revision is None:
        raise error("ProcedureRevision not found", "not_found")
    return revision["dateCreation"]


def resolve_dossiers(demarche, _info, **args):
    procedure: Procedure = demarche["_procedure"]
    dossiers = list(procedure.dossiers.values())
    if args.get("state") is not None:
        dossiers = [d for d in dossiers if d["state"] == args["state"]]
    if args.get("archived") is not None:
        dossiers = [d for d in dossiers if d["archived"] == args["archived"]]
    if args.get("revision") is not None:
        _revision_created(procedure, args["revision"])
        dossiers = [d for d in dossiers if d["_revisionId"] == args["revision"]]
    else:
        created = lambda d: parse_iso(_revision_created(procedure, d["_revisionId"]))  # noqa: E731
        if args.get("minRevision") is not None:
            bound = parse_iso(_revision_created(procedure, args["minRevision"]))
            dossiers = [d for d in dossiers if created(d) >= bound]
        if args.get("maxRevision") is not None:
            bound = parse_iso(_revision_created(procedure, args["maxRevision"]))
            dossiers = [d for d in dossiers if created(d) <= bound]
    # DS: `updated_since` is `where(updated_at: since..)`, i.e. inclusive (>=),
    # ordered by last update; `createdSince` (inclusive on the deposit date) is
    # then ignored. Without it the order is the deposit date.
    if args.get("updatedSince") is not None:
        since = parse_iso(args["updatedSince"])
        dossiers = [d for d in dossiers if parse_iso(d["dateDerniereModification"]) >= since]
        column = "dateDerniereModification"
    else:
        if args.get("createdSince") is not None:
            since = parse_iso(args["createdSince"])
            dossiers = [d for d in dossiers if parse_iso(d["dateDepot"]) >= since]
        column = "dateDepot"
    return paginate(dossiers, lambda d: (d[column], d["number"]), args)


def _resolve_deleted(attribute: str):
    def resolve(demarche, _info, **args):
        items = getattr(demarche["_procedure"], attribute)
        if args.get("deletedSince") is not None:
            since = parse_iso(args["deletedSince"])
            items = [d for d in items if parse_iso(d["dateSupression"]) >= since]
        return paginate(items, lambda d: (d["dateSupression"], d["number"]), args)

    return resolve


def _by_id(key: str):
    def resolve(dossier, _info, id: str | None = None):  # noqa: A002 - GraphQL argument name
        items = dossier.get(key) or []
        return [i for i in items if id is None or i["id"] == id]

    return resolve


def resolve_dossier_demarche(dossier, info):
    procedure, _ = _ctx(info)["store"].find_dossier(dossier["number"])
    revision = procedure.revision(dossier["_revisionId"]) or procedure.active_revision
    return demarche_descriptor_dict(procedure, revision)


def resolve_dossier_revision(dossier, info):
    procedure, _ = _ctx(info)["store"].find_dossier(dossier["number"])
    return procedure.revision(dossier["_revisionId"]) or procedure.active_revision


def resolve_linked_dossier(champ, info):
    number = champ.get("_dossierNumber")
    if not number:
        return None
    try:
        procedure, dossier = _ctx(info)["store"].find_dossier(number)
    except KeyError:
        return None
    _check_access(info, procedure, "Dossier")
    return dossier


def resolve_champ_type(champ, info, _abstract_type):
    typename = champ["__typename"]
    fallback = COMPAT_TYPENAMES.get(typename)
    if fallback and typename not in _ctx(info)["fragment_types"]:
        return fallback
    return typename


def resolve_checkbox_value(champ, _info):
    return bool(champ.get("value"))


def resolve_date_date(champ, _info):
    if champ.get("date"):
        return champ["date"]
    if champ.get("datetime"):
        return to_paris(parse_iso(champ["datetime"])).date().isoformat()
    return None


def resolve_date_value(champ, _info):
    if champ.get("datetime"):
        return champ["datetime"]
    if champ.get("date"):
        return paris_midnight(champ["date"])
    return None


def resolve_text_value(champ, _info):
    if champ["__typename"] == "TextChamp":
        return champ.get("value")
    return champ.get("stringValue") or None  # a compat champ answered as TextChamp


def resolve_pj_files(champ, _info):
    return champ.get("files") or []  # a TitreIdentiteChamp answered as PJ exposes no file


def resolve_pj_file(champ, _info):
    files = champ.get("files") or []
    return files[0] if files else None


def resolve_repetition_champs(champ, _info):
    return [c for row in champ.get("rows", []) for c in row["champs"]]


def resolve_file_url(file, info):
    """Like DS (ActiveStorage): a URL signed anew at every request, valid about an hour."""
    url = file["url"]
    url = _ctx(info)["base_url"] + url if url.startswith("/") else url
    return f"{url}?expires_in=3600&signature={_ctx(info)['request_id']}"


def resolve_by_typename(obj, _info, _abstract_type):
    return obj["__typename"]


def _scalar_datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("ISO8601DateTime must be a string")
    return iso(parse_iso(value))


def make_schema() -> GraphQLSchema:
    schema = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    types = schema.type_map

    def set_resolver(type_name: str, field_name: str, resolver) -> None:
        types[type_name].fields[field_name].resolve = resolver

    set_resolver("Query", "demarche", resolve_demarche)
    set_resolver("Query", "dossier", resolve_dossier)
    set_resolver("Query", "demarcheDescriptor", resolve_demarche_descriptor)
    set_resolver("Demarche", "dossiers", resolve_dossiers)
    set_resolver("Demarche", "deletedDossiers", _resolve_deleted("deleted_dossiers"))
    set_resolver("Demarche", "pendingDeletedDossiers", _resolve_deleted("pending_deleted_dossiers"))
    set_resolver("Demarche", "groupeInstructeurs", resolve_groupe_instructeurs)
    for key in ("champs", "annotations", "avis", "messages"):
        set_resolver("Dossier", key, _by_id(key))
    for key in ("traitements", "instructeurs", "labels"):
        set_resolver("Dossier", key, lambda d, _i, _k=key: d.get(_k) or [])
    set_resolver("Dossier", "assignments", lambda d, _i, mode=None: d.get("assignments") or [])
    set_resolver("Dossier", "demarche", resolve_dossier_demarche)
    set_resolver("Dossier", "revision", resolve_dossier_revision)
    set_resolver("DossierLinkChamp", "dossier", resolve_linked_dossier)
    set_resolver("CheckboxChamp", "value", resolve_checkbox_value)
    set_resolver("DateChamp", "date", resolve_date_date)
    set_resolver("DateChamp", "value", resolve_date_value)
    set_resolver("TextChamp", "value", resolve_text_value)
    set_resolver("PieceJustificativeChamp", "files", resolve_pj_files)
    set_resolver("PieceJustificativeChamp", "file", resolve_pj_file)
    set_resolver("PieceJustificativeChamp", "nature",
                 lambda c, _i: c.get("nature") or "TITRE_IDENTITE")
    set_resolver("RepetitionChamp", "champs", resolve_repetition_champs)
    set_resolver("File", "url", resolve_file_url)
    set_resolver("Avis", "attachment", lambda a, _i: (a.get("attachments") or [None])[0])

    for name, resolver in MUTATION_RESOLVERS.items():
        set_resolver("Mutation", name, resolver)
    types["Champ"].resolve_type = resolve_champ_type
    for name in ("ChampDescriptor", "Demandeur", "GeoArea", "Column"):
        types[name].resolve_type = resolve_by_typename
    types["ISO8601DateTime"].parse_value = _scalar_datetime
    return schema


_REQUEST_IDS = itertools.count(1)


def make_context(store: FakeDSStore, allowed, document: DocumentNode, base_url: str, writable: bool = True) -> dict:
    return {
        "writable": writable,
        "request_id": next(_REQUEST_IDS),
        "store": store,
        "allowed": allowed,
        "fragment_types": fragment_type_names(document),
        "base_url": base_url,
    }


__all__ = ["make_schema", "make_context", "paginate", "encode_cursor", "decode_cursor",
           "COMPAT_TYPENAMES", "SCHEMA_PATH", "encode_id"]
