"""The mutations OTP sends, as DS answers them (`../shared/ds/README.md`, « Writing back to DS »).

- Business refusals come in the payload (`errors: [{message}]`, HTTP 200); a dossier that does
  not exist, or that the token may not see, is a top-level error with a code, as for queries.
- A read-only token is told so in the payload of every mutation; nothing changes.
- The instructeur must belong to the dossier's groupe (and the dossier not be a brouillon).
- `dossierModifierAnnotations` is not atomic: valid annotations are saved, the others listed in
  `errors`; `value` is a `@oneOf` input (exactly one key, named after the annotation's type);
  a saved value that changed moves `dateDerniereModification` (not the annotations' date);
  `repetition` adds rows and moves nothing.
- Labels move nothing; the state mutations move the dossier's date, and e-mail the usager
  (recorded in `FakeDSStore.notifications`) unless `disableNotification`.
"""

from __future__ import annotations

import copy
from typing import Any

from graphql import GraphQLError

from .store import build_champ, decode_id, encode_id, fake_ulid, stable_hash

READ_ONLY = "Le jeton utilisé est configuré seulement en lecture"
NO_ACCESS = "L’instructeur n’a pas les droits d’accès à ce dossier"
STATE_WORDS = {"en_construction": "en construction", "en_instruction": "en instruction", "accepte": "accepté",
               "refuse": "refusé", "sans_suite": "classé sans suite", "brouillon": "en brouillon"}
# descriptor type (TypeDeChamp) → the key of AnnotationValueInput that writes it
VALUE_KEYS = {
    "text": "text", "textarea": "textarea", "email": "email", "phone": "phone", "iban": "iban", "formatted": "formatted",
    "checkbox": "checkbox", "yes_no": "yesNo", "date": "date", "datetime": "datetime", "integer_number": "integerNumber",
    "decimal_number": "decimalNumber", "drop_down_list": "dropDownList", "multiple_drop_down_list": "multipleDropDownList",
    "civilite": "civilite", "pays": "pays", "regions": "regions", "departements": "departements",
    "dossier_link": "dossierLink", "repetition": "repetition",
}
# state mutation → (the states it starts from, the state it leads to, whether it is a decision)
TRANSITIONS = {
    "dossierPasserEnInstruction": ({"en_construction"}, "en_instruction", False),
    "dossierAccepter": ({"en_instruction"}, "accepte", True),
    "dossierRefuser": ({"en_instruction"}, "refuse", True),
    "dossierClasserSansSuite": ({"en_instruction"}, "sans_suite", True),
    "dossierRepasserEnConstruction": ({"en_instruction"}, "en_construction", False),
    "dossierRepasserEnInstruction": ({"accepte", "refuse", "sans_suite"}, "en_instruction", False),
}


def _refused(*messages: str, **payload: Any) -> dict:
    return {**payload, "errors": [{"message": m} for m in messages]}


def _dossier(info, dossier_id: str) -> tuple[Any, dict]:
    """The dossier a mutation names, or the top-level error DS gives."""
    store, allowed = info.context["store"], info.context["allowed"]
    try:
        kind, value = decode_id(dossier_id)
        procedure, dossier = store.find_dossier(int(value)) if kind == "Dossier" else (None, None)
    except (KeyError, ValueError, UnicodeDecodeError):
        procedure, dossier = None, None
    if dossier is None:
        raise GraphQLError("Dossier not found", extensions={"code": "not_found"})
    if allowed != "all" and procedure.number not in allowed:
        raise GraphQLError("An object of type Dossier was hidden due to permissions", extensions={"code": "unauthorized"})
    return procedure, dossier


def _instructeur_may(dossier: dict, instructeur_id: str) -> bool:
    groupe = dossier.get("groupeInstructeur") or {}
    return dossier.get("state") != "brouillon" and any(i.get("id") == instructeur_id for i in groupe.get("instructeurs") or [])


def _guard(info, input_: dict, *, instructeur: bool = True) -> tuple[Any, dict, dict | None]:
    """(procedure, dossier, a refusal payload or None)."""
    procedure, dossier = _dossier(info, input_["dossierId"])
    if not info.context.get("writable", True):
        return procedure, dossier, _refused(READ_ONLY)
    if instructeur and not _instructeur_may(dossier, input_.get("instructeurId") or ""):
        return procedure, dossier, _refused(NO_ACCESS)
    return procedure, dossier, None


def resolve_transition(name: str):
    starts, target, decision = TRANSITIONS[name]

    def resolve(_root, info, input):  # noqa: A002 - GraphQL argument name
        store = info.context["store"]
        _procedure, dossier, refusal = _guard(info, input)
        if refusal is not None:
            return {**refusal, "dossier": None}
        if dossier["state"] not in starts:
            return _refused(f"Le dossier est déjà {STATE_WORDS.get(dossier['state'], dossier['state'])}", dossier=None)
        if decision and name != "dossierAccepter" and not (input.get("motivation") or "").strip():
            return _refused("La motivation est obligatoire", dossier=None)
        store.change_state(dossier["number"], target, motivation=input.get("motivation") if decision else None,
                                   notify=not input.get("disableNotification"), by=input.get("instructeurId"))
        return {"dossier": dossier, "errors": None}

    return resolve


def resolve_label(add: bool):
    def resolve(_root, info, input):  # noqa: A002 - GraphQL argument name
        procedure, dossier, refusal = _guard(info, input, instructeur=False)
        if refusal is not None:
            return {**refusal, "dossier": None, "label": None}
        label = next((l for l in procedure.labels if l["id"] == input["labelId"]), None)
        if label is None:
            return _refused("Ce label n’appartient pas à la démarche du dossier", dossier=None, label=None)
        held = any(l["id"] == label["id"] for l in dossier.get("labels") or [])
        if add and held:
            return _refused("Ce label est déjà associé au dossier", dossier=None, label=None)
        if not add and not held:
            return _refused("Ce label n’est pas associé au dossier", dossier=None, label=None)
        with info.context["store"].lock:
            others = [l for l in dossier.get("labels") or [] if l["id"] != label["id"]]
            dossier["labels"] = [*others, copy.deepcopy(label)] if add else others
        return {"dossier": dossier, "label": label, "errors": None}

    return resolve


def resolve_modifier_annotations(_root, info, input):  # noqa: A002 - GraphQL argument name
    store = info.context["store"]
    procedure, dossier, refusal = _guard(info, input)
    if refusal is not None:
        return {**refusal, "annotations": None}
    saved, problems = [], []
    for item in input["annotations"]:
        keys = [k for k, v in (item.get("value") or {}).items() if v is not None]
        if len(keys) != 1:
            raise GraphQLError("`AnnotationValueInput` must include exactly one key", extensions={"code": "bad_request"})
        champ, problem = _write_annotation(store, procedure, dossier, item["id"], keys[0], item["value"][keys[0]])
        if problem:
            problems.append({"message": problem})
        elif champ is not None:
            saved.append(champ)
    return {"annotations": saved, "errors": problems or None}


def _write_annotation(store, procedure, dossier: dict, champ_id: str, key: str, value: Any) -> tuple[dict | None, str | None]:
    found = _find_annotation(procedure, dossier, champ_id)
    if found is None:
        return None, f"L‘annotation \"{champ_id}\" n’existe pas"
    descriptor, holder, index = found
    expected = VALUE_KEYS.get(descriptor.get("type"))
    if expected is None:
        return None, f"L‘annotation \"{champ_id}\" n’existe pas"
    if key != expected:
        return None, f"L‘annotation \"{descriptor['label']}\" n’est pas de type attendu"
    problem = _invalid(descriptor, key, value)
    if problem:
        return None, problem
    with store.lock:
        if key == "repetition":
            return _add_rows(store, descriptor, holder, index, int(value)), None
        old = holder[index] if index is not None else None
        champ = {**build_champ(descriptor, value, store.now()), "id": champ_id}
        if old is not None and _same_value(old, champ):
            return old, None
        if index is None:
            holder.append(champ)
        else:
            holder[index] = champ
        store.touch_modified(dossier)
        return champ, None


def _find_annotation(procedure, dossier: dict, champ_id: str):
    """(descriptor, the list holding the champ, its index or None when the dossier lacks it)."""
    revision = procedure.revision(dossier.get("_revisionId")) or procedure.active_revision
    descriptors = {d["id"]: d for d in revision["annotationDescriptors"]}
    if champ_id in descriptors:
        annotations = dossier.setdefault("annotations", [])
        index = next((i for i, c in enumerate(annotations) if c.get("champDescriptorId") == champ_id), None)
        return descriptors[champ_id], annotations, index
    for block in dossier.get("annotations") or []:
        for row in block.get("rows") or []:
            for i, champ in enumerate(row.get("champs") or []):
                if champ.get("id") == champ_id:
                    children = {c["id"]: c for c in descriptors.get(block.get("champDescriptorId"), {}).get("champDescriptors") or []}
                    descriptor = children.get(champ.get("champDescriptorId"))
                    return (descriptor, row["champs"], i) if descriptor else None
    return None


def _invalid(descriptor: dict, key: str, value: Any) -> str | None:
    options = [o for o in descriptor.get("options") or [] if o]
    label = descriptor["label"]
    if key == "dropDownList" and options and value not in options and not descriptor.get("otherOption"):
        return f"{label} : « {value} » n’est pas dans la liste"
    if key == "multipleDropDownList" and options and any(v not in options for v in value):
        return f"{label} : une valeur n’est pas dans la liste"
    if key == "repetition" and int(value) < 0:
        return f"{label} : le nombre de lignes doit être positif"
    return None


def _same_value(old: dict, new: dict) -> bool:
    ignored = {"updatedAt", "id"}
    return {k: v for k, v in old.items() if k not in ignored} == {k: v for k, v in new.items() if k not in ignored}


def _add_rows(store, descriptor: dict, holder: list, index: int | None, count: int) -> dict:
    """`repetition`: `count` empty rows added to the block (DS does not move the date)."""
    if index is None:
        holder.append(build_champ(descriptor, [], store.now()))
        index = len(holder) - 1
    block = holder[index]
    for _ in range(count):
        row_id = fake_ulid(stable_hash(block.get("champDescriptorId"), len(block.get("rows") or []), store.now()))
        block.setdefault("rows", []).append({"id": encode_id("Row", row_id), "champs": [], "_rowId": row_id})
    return block


MUTATION_RESOLVERS = {
    "dossierModifierAnnotations": resolve_modifier_annotations,
    "dossierAjouterLabel": resolve_label(True),
    "dossierSupprimerLabel": resolve_label(False),
    **{name: resolve_transition(name) for name in TRANSITIONS},
}
