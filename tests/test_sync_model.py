"""Model-based: random histories of DS events, DS's changes to the form, agents' cells and
agents' actions on the structure of the copy, syncs and injected faults (issue 16).

Each step: a few events drawn by hypothesis — DS events (a dossier edited, added, labelled, put
in the bin, restored, deleted; a revision), DS's changes to the form (a champ's type changed
between revisions, champs removed and added again, moved into or out of a block, two champs of
one label, a champ whose id an agent's column has), agents' cells and actions on the structure
(dossier rows deleted; columns of their own, some whose id a later champ derives; OTP's columns
— keys and dates among them — retyped, renamed, deleted or made formulas; an OTP table deleted;
the document's time zone changed; a sync from another DS instance) — then a sync with a fault,
then ONE recovery sync without fault, then the invariants. One recovery sync, because that is
the contract: a sync that ends leaves the copy whole, whatever the sync before it left (a
failure between two bundles, a table made again but not filled yet: the refill is a full sync,
resumed from its checkpoint). A second one would hide a sync that ends half repaired (F5).

After the recovery sync:
 1 every sync ends: the recovery sync returns normally, its history line says « Terminée »;
 2 OTP's columns equal, dossier by dossier, row by row, a fresh copy of DS as it is now
   (`Lab.fresh_copy`): those the agent left alone, renamed, or deleted (made again), and those
   the agent retyped to a type that keeps DS's values (a Text as Choice, an Int as Numeric, a
   date in another zone, « Numéro » as Text). Left out: the columns the agent made formulas
   (theirs; one OTP cannot do without is made again beside it, and that one is compared) and
   those retyped to Text from a date or a list;
 3 the copy holds every dossier DS lists, and those in DS's bin it held before (not one whose
   row the agent deleted: DS hides a binned dossier's content), each once;
 4 every agent cell is intact on its dossier's row; agents' columns keep their ids and types
   and are never registered by OTP, nor is any data column OTP made left unregistered; the
   columns the agent retyped keep the agent's type, formulas stay as the agent wrote them;
 5 no orphan and no duplicate: every child row hangs on a dossier row the copy holds, except a
   row without a dossier that carries an agent's cell — allowed only when its key was lost by
   the agent's action in this step (dossier rows deleted, a key column or a table deleted or
   made a formula) AND its content could not be matched (DS changed that dossier in this step,
   DS deleted it or put it in the bin, or its content was blank or not unique); such a row must
   be named in a history line of the step (« conservées parce qu'elles portent des saisies
   d'agents ») and it stays, its agent cells intact, in every later step;
 6 a sync right after the recovery changes nothing, cells or columns (`settled`).
A sync from a second DS instance with the same procedure number is refused (`other_instance`)
with the document unchanged.

Findings (bugs of py_core it found, fixed; regression tests in tests/test_sync_model_findings.py).
What the model still avoids: a key of the dossiers table made again when rows could not match
(`_f1_safe`); agents' types that do not keep DS's values in a child table (`retype`); and, the
contract's limit (F7), anything of OTP's made again while a dossier is in DS's bin — DS hides
its content, so a row whose key the agent took cannot be told until DS restores it (then the
restored dossier is fetched again).

Real Grist engine, fake DS over HTTP. The budget is fixed (10 examples of up to 5 steps,
derandomized) so that CI stays within its time; `OTP_MODEL_NO_SHRINK=1` reports a failure as
found (shrinking one takes minutes) and `--hypothesis-show-statistics` shows what was drawn.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, event, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule  # noqa: E402

from demo.fake_ds import FakeDSServer, FakeDSStore, make_descriptor, sample_procedure  # noqa: E402
from py_core import errors  # noqa: E402
from tests.grist_engine import engine_missing  # noqa: E402
from tests.lab import TOKEN, Lab  # noqa: E402

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))

DS_EVENTS = ["edit_dossier", "new_dossier", "labels", "bin", "restore", "restore", "delete", "new_revision"]
FORM_CHANGES = ["form_retype", "form_remove", "form_readd", "form_into_block", "form_out_of_block",
                "form_twin_label", "form_collide"]
# (weights: the actions OTP makes something again for are drawn twice — the guards of findings
# F1 and F7 turn them into no-ops while a dossier is in DS's bin; a restore, twice, ends that)
AGENT_ACTIONS = ["agent_cell", "agent_cell", "agent_collide", "delete_rows", "retype", "rename",
                 "delete_column", "delete_column", "formula", "formula", "delete_table", "delete_table",
                 "time_zone", "other_instance"]
EVENTS = DS_EVENTS + FORM_CHANGES + AGENT_ACTIONS
FAULTS = ["none", "http500", "http502_many", "rate_limit", "partial", "silence", "grist_call"]

# The agents' own columns: one per table where an agent writes, and the ones whose ids a later
# champ or annotation takes (`form_collide`: « Décision », « Observations »).
AGENT_COLUMNS = {"dossiers": "Note_agent", "champs": "Suivi_agent", "annotations": "Avis_agent"}
COLLIDING = {"annotations": ("Decision", "Décision"), "champs": ("Observations", "Observations")}
ROW_KEYS = {"dossiers": ("numero",), "champs": ("dossier",), "annotations": ("dossier",),
            "avis": ("dossier", "avis_id"), "fichiers": ("dossier", "champ_cle", "numero_fichier")}
ESSENTIAL = {"dossier", "date_modification", "date_corbeille", "date_suppression_ds", "hors_filtre"}
DOSSIER_ROW_KEYS = ("champs", "annotations")  # one row per dossier: where agents' cells are modelled
FORMULA = '"calc"'
AGENT_ZONE = "DateTime:America/Guadeloupe"  # the zone an agent gives OTP's date columns (`retype`)
# F3 (fixed): the document may take the zone an agent gave a column, then another: theirs stays.
ZONES = ["UTC", "America/Guadeloupe", "Europe/Paris", "Pacific/Noumea"]


def number_of(value: Any) -> int | None:
    """A dossier number or row id as the copy holds it, whatever its column's type became."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value) or None
    if isinstance(value, int):
        return value or None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()) or None
    return None


def same_value(cell: Any) -> Any:
    """A cell as compared with a fresh copy's: "" and None are one blank (a Text column added to
    rows that exist holds "", the same column made with its rows holds None), and 250.0 is 250
    (an Int column OTP widened to Numeric for a big value stays Numeric, never narrowed back,
    while a fresh copy without that dossier — now in DS's bin — keeps it Int). Any other
    difference counts."""
    if cell == "":
        return None
    if isinstance(cell, float) and not isinstance(cell, bool) and cell.is_integer():
        return int(cell)
    return cell


def blank(value: Any) -> bool:
    return value in (None, "", False, 0, []) or value == ["L"]


class SyncHistory(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.lab = Lab(dossiers=12, seed=11, timeout=0.5).__enter__()
        self.lab.sync()
        self.ids = itertools.count(1)
        self.next_stable = itertools.count(4242900)
        # the agents' columns: col ref → (table key, type); their cells: col ref → {number: cell}
        self.agent_cols: dict[int, tuple[str, str]] = {}
        self.cells: dict[int, dict[int, str]] = {}
        self.orphans: dict[tuple[str, int], dict[int, str]] = {}  # (table key, row id) → {col ref: cell}
        self.theirs: dict[str, set[str]] = {}  # table key → OTP column keys the agent retyped or made formulas
        self.skip: dict[str, set[str]] = {}  # among them, those left out of the comparison with DS
        self.retyped: dict[int, str] = {}  # col ref → the agent's type
        self.formulas: dict[int, str] = {}  # col ref → the agent's formula
        self.removed: list[dict] = []  # descriptors a revision removed (`form_readd` adds them again)
        self.held = set(self.lab.dossier_numbers())
        self.fresh_sink, self.fresh_of = None, None
        self.ds_generation = 0
        self.other = None
        self.prenom = self.lab.descriptor("TextChampDescriptor", "Prénom")["id"]
        self.note = self.lab.descriptor("IntegerNumberChampDescriptor", "Note", annotation=True)["id"]
        self.block = "bloc:" + self.lab.descriptor("RepetitionChampDescriptor", "Membres de l'équipe")["id"]

    def teardown(self):
        if getattr(self, "other", None) is not None:
            self.other[1].stop()
        self.lab.__exit__(None, None, None)

    # -- helpers -------------------------------------------------------------------------------
    @property
    def procedure(self):
        return self.lab.store.procedure(self.lab.number)

    def _live(self):
        return sorted(self.procedure.dossiers)

    def _ds(self, *numbers: int, tables: tuple[str, ...] = ("dossiers", *DOSSIER_ROW_KEYS)) -> None:
        """A DS change: the fresh copy is stale; these dossiers' rows of these tables changed in
        this step (their content as DS gives it)."""
        self.ds_generation += 1
        self.touched |= {(key, n) for n in numbers for key in tables}

    def _tables(self) -> set[str]:
        return {r["Cle"] for r in self.lab.sink.records("OTP_Tables") if r["Demarche"] == self.lab.number}

    def _table_alive(self, key: str) -> bool:
        return key in self.lab.layout_ids()[0]

    def _col_id_of_ref(self, ref: int) -> str | None:
        columns = self.lab.sink.table("_grist_Tables_column")
        return dict(zip(columns["id"], columns["colId"])).get(ref)

    def _view(self, sink=None) -> tuple:
        """What the lookups below read once: (sink, table ids, OTP col ids, dossier row id → number)."""
        sink = sink or self.lab.sink
        tables, cols = self.lab.layout_ids(sink)
        numero = cols.get("dossiers", {}).get("numero")
        numbers = {r["id"]: number_of(r.get(numero)) for r in sink.records(tables["dossiers"])} if "dossiers" in tables else {}
        return sink, tables, cols, numbers

    def _with_numbers(self, key: str, view=None) -> list[tuple[dict, int | None]]:
        """The rows of table `key`, each with its dossier's number (None: no dossier row, or a
        row without a number), whatever the types of « Numéro » and of the Ref became."""
        sink, tables, cols, numbers = view or self._view()
        if key not in tables:
            return []
        if key == "dossiers":
            return [(r, numbers[r["id"]]) for r in sink.records(tables["dossiers"])]
        ref = cols[key].get("dossier")
        return [(r, numbers.get(number_of(r.get(ref)))) for r in sink.records(tables[key])]

    def _revision(self):
        active = self.procedure.active_revision
        return copy.deepcopy(active["champDescriptors"]), copy.deepcopy(active["annotationDescriptors"])

    def _publish(self, champs, annotations, *, fill: str | None = None, value: Any = None) -> None:
        """Publish a revision; a new dossier is filed on it (it carries the new form's shape), and
        with `fill`, two existing dossiers move to it and get that champ's `value`."""
        self.lab.store.publish_revision(champs, annotations)
        newcomer = self.lab.store.add_dossier(procedure_number=self.lab.number)
        self._ds(newcomer["number"])
        self.form_changed = True
        if fill is not None:
            for n in self._live()[:2]:
                self.lab.store.rebase_dossier(n, drop_removed=True)
                self.lab.store.update_champ(n, fill, value if value is not None else f"valeur {n}")
                self._ds(n)

    # -- DS events -----------------------------------------------------------------------------
    def edit_dossier(self, i, text):
        live = self._live()
        if live:
            n = live[i % len(live)]
            self.lab.store.update_dossier(n, motivation=text or None)
            self._ds(n, tables=("dossiers",))

    def new_dossier(self, i, text):
        self._ds(self.lab.store.add_dossier(procedure_number=self.lab.number)["number"])

    def labels(self, i, text):
        names = {["Urgent", "Dossier complet", "À relancer"][n] for n in range(3) if (i >> n) & 1}
        live = self._live()
        known = {label["name"] for label in self.procedure.labels}
        if live:
            n = live[i % len(live)]
            self.lab.store.set_labels(n, sorted(names & known))
            self._ds(n, tables=("dossiers",))

    def bin(self, i, text):
        live = self._live()
        if live:
            n = live[i % len(live)]
            self.lab.store.delete_dossier(n, pending=True)
            self._ds(n)

    def restore(self, i, text):
        binned = sorted(self.procedure.binned)
        if binned:
            n = binned[i % len(binned)]
            self.lab.store.restore_dossier(n)
            self._ds(n)

    def delete(self, i, text):
        pool = sorted(self.procedure.binned) if i % 2 else self._live()
        if pool:
            n = pool[i % len(pool)]
            self.lab.store.delete_dossier(n)
            self._ds(n)

    def new_revision(self, i, text):
        champs, annotations = self._revision()
        texts = [d for d in champs if d["__typename"] == "TextChampDescriptor"]
        if not texts:
            return
        target = texts[i % len(texts)]
        if i % 2:
            target["label"] = target["label"] + " (nouveau libellé)"
        else:
            champs.remove(target)
            self.removed.append(target)
        self._publish(champs, annotations)

    # -- DS's changes to the form --------------------------------------------------------------
    def form_retype(self, i, text):
        """A champ's type changed between revisions (Text ↔ IntegerNumber): a Text column."""
        champs, annotations = self._revision()
        pool = [d for d in champs if d["__typename"] in ("TextChampDescriptor", "IntegerNumberChampDescriptor")]
        target = pool[i % len(pool)]
        as_text = target["__typename"] == "IntegerNumberChampDescriptor"
        target["__typename"], target["type"] = ("TextChampDescriptor", "text") if as_text else (
            "IntegerNumberChampDescriptor", "integer_number")
        value = f"texte {i}" if as_text else ("12345678901234567891" if i % 3 == 0 else i * 7)
        self._publish(champs, annotations, fill=target["id"], value=value)

    def form_remove(self, i, text):
        champs, annotations = self._revision()
        pool = [d for d in champs if d["__typename"] not in ("HeaderSectionChampDescriptor", "RepetitionChampDescriptor")]
        target = pool[i % len(pool)]
        champs.remove(target)
        self.removed.append(target)
        self._publish(champs, annotations)

    def form_readd(self, i, text):
        champs, annotations = self._revision()
        ids = {d["id"] for d in champs} | {c["id"] for d in champs for c in d.get("champDescriptors") or []}
        back = [d for d in self.removed if d["id"] not in ids]
        if not back:
            return
        target = back[i % len(back)]
        champs.insert(min(i, len(champs)), copy.deepcopy(target))
        self._publish(champs, annotations, fill=target["id"] if target["__typename"] == "TextChampDescriptor" else None)

    def _block(self, descriptors):
        return next((d for d in descriptors if d["__typename"] == "RepetitionChampDescriptor"), None)

    def form_into_block(self, i, text):
        """A champ moved into a repeatable block (same descriptor id)."""
        champs, annotations = self._revision()
        block = self._block(champs)
        pool = [d for d in champs if d["__typename"] == "TextChampDescriptor"]
        if block is None or not pool:
            return
        target = pool[i % len(pool)]
        champs.remove(target)
        block["champDescriptors"] = [*(block["champDescriptors"] or []), target]
        self._publish(champs, annotations)

    def form_out_of_block(self, i, text):
        """A champ moved out of a repeatable block, champs or annotations (same descriptor id)."""
        champs, annotations = self._revision()
        side = [champs, annotations][i % 2]
        block = self._block(side)
        children = [c for c in (block or {}).get("champDescriptors") or [] if c["__typename"] == "TextChampDescriptor"]
        if not children:
            return
        target = children[i % len(children)]
        block["champDescriptors"] = [c for c in block["champDescriptors"] if c["id"] != target["id"]]
        side.insert(min(i, len(side)), target)
        self._publish(champs, annotations)

    def form_twin_label(self, i, text):
        """A new champ with the label of another one (two « Prénom »)."""
        champs, annotations = self._revision()
        labels = [d["label"] for d in champs if d["__typename"] == "TextChampDescriptor"]
        twin = make_descriptor("TextChampDescriptor", next(self.next_stable), labels[i % len(labels)])
        champs.insert(min(i, len(champs)), twin)
        self._publish(champs, annotations, fill=twin["id"])

    def form_collide(self, i, text):
        """A champ or annotation whose derived id is an agent's column (« Décision » → Decision)."""
        key = ["annotations", "champs"][i % 2]
        _, label = COLLIDING[key]
        champs, annotations = self._revision()
        side = annotations if key == "annotations" else champs
        if any(d["label"] == label for d in side):
            return
        new = make_descriptor("TextChampDescriptor", next(self.next_stable), label)
        side.append(new)
        self._publish(champs, annotations, fill=new["id"], value=f"{label} DS {i}")

    # -- agents' cells -------------------------------------------------------------------------
    def _agent_column(self, key: str, col_id: str) -> int | None:
        """The agent's column `col_id` on table `key` (added if missing): its col ref."""
        if not self._table_alive(key):
            return None
        for ref, (k, _) in self.agent_cols.items():
            if k == key and self._col_id_of_ref(ref) is not None and self._col_id_of_ref(ref).startswith(col_id):
                return ref
        table = self.lab.table(key)
        added = self.lab.sink.apply_now([["AddColumn", table, col_id, {"type": "Text", "isFormula": False}]])
        ref = added[0]["colRef"]  # Grist may have suffixed the id (an OTP column has it): by ref
        self.agent_cols[ref] = (key, "Text")
        self.cells[ref] = {}
        return ref

    def _write_cells(self, key: str, ref: int, numbers: list[int], text: str) -> None:
        rows = {n: r["id"] for r, n in self._with_numbers(key)}
        col = self._col_id_of_ref(ref)
        for n in numbers:
            if n in rows and n is not None:
                cell = f"{text.strip() or 'note'} #{next(self.ids)}"  # unique: findable anywhere
                self.lab.sink.apply_now([["UpdateRecord", self.lab.table(key), rows[n], {col: cell}]])
                self.cells[ref][n] = cell

    def agent_cell(self, i, text):
        key = ["dossiers", "champs", "annotations"][i % 3]
        ref = self._agent_column(key, AGENT_COLUMNS[key])
        numbers = sorted(self.held)
        if ref is not None and numbers:
            self._write_cells(key, ref, [numbers[i % len(numbers)], numbers[(i * 7) % len(numbers)]], text)

    def agent_collide(self, i, text):
        """The agent's own « Decision » / « Observations » column, before or after DS's champ."""
        key = ["annotations", "champs"][i % 2]
        ref = self._agent_column(key, COLLIDING[key][0])
        numbers = sorted(self.held)
        if ref is not None and numbers:
            self._write_cells(key, ref, numbers[i % 3::3], f"avis {text}")

    # -- agents' actions on the structure ------------------------------------------------------
    def _candidates(self) -> list[tuple[str, str]]:
        """OTP columns an agent may act on: keys and dates among them; not one already theirs."""
        prenom, note = self.prenom, self.note
        pool = [("dossiers", "numero"), ("dossiers", "date_modification"), ("dossiers", "date_depot"),
                ("dossiers", "motivation"), ("dossiers", "etat"), ("dossiers", "labels"), ("dossiers", "date_corbeille"),
                ("champs", "dossier"), ("annotations", "dossier"), ("annotations", note), ("avis", "avis_id"),
                ("fichiers", "numero_fichier")]
        pool.append(("champs", prenom))
        pool.append((self.block, "ligne"))
        cols = self.lab.layout_ids()[1]
        return [(k, c) for k, c in pool if c in cols.get(k, {}) and c not in self.theirs.get(k, set())]

    def _pick(self, i):
        pool = self._candidates()
        return pool[i % len(pool)] if pool else (None, None)

    def _key_lost(self, key: str, numbers=None) -> None:
        """The rows of `key` (of these dossiers, or all) lose their key by the agent's action."""
        numbers = set(self.held if numbers is None else numbers)
        self.unkeyed |= {(key, n) for n in numbers}
        if key == "dossiers":  # the children hang on those rows
            self.unkeyed |= {(k, n) for k in DOSSIER_ROW_KEYS for n in numbers}
            self.rows_lost |= numbers

    def retype(self, i, text):
        key, col_key = self._pick(i)
        if key is None:
            return
        column = self.lab.column(key, self.lab.col_id(key, col_key))
        # Finding F2 (tests/test_sync_model_findings.py): a loose row is matched by its content as
        # DS gives it, not as Grist stores it in a column the agent retyped. Avoided: the agent's
        # types here store DS's values as they were (a Text as Choice, an Int as Numeric, a date
        # in another zone, a Ref as Int, a Choice as Text) — but in the dossiers table, whose rows
        # are matched by content only when « Numéro » is made again (`_f1_safe`: never after a
        # retype) or in a table made again (no type of the agent's left).
        types = {"numero": "Text", "date_modification": "Text", "date_depot": AGENT_ZONE,
                 "date_corbeille": "Text", "motivation": "Choice", "etat": "Text",
                 "labels": "Text",  # F4 (fixed): « Labels » as Text settles
                 "dossier": "Int", "avis_id": "Choice", "numero_fichier": "Numeric"}
        type_ = types[col_key] if col_key in types else {"Text": "Choice", "Int": "Numeric"}.get(column["type"])
        if type_ is None or column["type"] == type_:
            return
        self.lab.sink.apply_now([["ModifyColumn", self.lab.table(key), column["colId"], {"type": type_}]])
        self.theirs.setdefault(key, set()).add(col_key)
        if type_ == "Text" and col_key != "numero":  # a date or a list as text: compared no more
            self.skip.setdefault(key, set()).add(col_key)
        # else DS's values as they were (the number of « Numéro » as text is compared as a key)
        self.retyped[column["id"]] = self.lab.column(key, column["colId"])["type"]

    def rename(self, i, text):
        key, col_key = self._pick(i)
        if key is None:
            return
        col = self.lab.col_id(key, col_key)
        self.lab.sink.apply_now([["RenameColumn", self.lab.table(key), col, f"{col}_agent{i}"],
                                 ["ModifyColumn", self.lab.table(key), f"{col}_agent{i}", {"label": f"Renommée {i}"}]])

    def _f1_safe(self) -> bool:
        """Finding F1 (tests/test_sync_model_findings.py): an OTP column of the dossiers table made
        again (deleted, or an essential one made a formula) takes every child row as loose: the
        rows DS does not give back (a binned dossier's) are removed, a row whose content cannot
        be matched gets a twin. Avoided: such an action is drawn only where every child row
        matches again — no DS event, form change or retype in the step, no type of the agent's
        anywhere, no dossier held in DS's bin, every agent's child cell on a row of unique,
        non-blank content."""
        if self.step_events & {*DS_EVENTS, *FORM_CHANGES, "retype"} or self.retyped:
            return False
        if set(self.procedure.binned) & self.held:
            return False
        for ref, (key, _) in self.agent_cols.items():
            if key != "dossiers" and any(self._unmatchable(key, n) for n in self.cells[ref]):
                return False
        return True

    def _f7_safe(self) -> bool:
        """Finding F7 (tests/test_sync_model_findings.py): a column or table made again is never
        filled for a dossier in DS's bin at the refill, even once DS restores it (and a key made
        again removes its rows). Avoided: nothing of OTP's deleted (or made a formula OTP makes
        again) while the copy holds a dossier in the bin or one goes there in the step."""
        return "bin" not in self.step_events and not set(self.procedure.binned) & self.held

    def delete_column(self, i, text):
        key, col_key = self._pick(i)
        if key is None or (key == "dossiers" and col_key in ROW_KEYS["dossiers"] and not self._f1_safe()) or not self._f7_safe():
            return
        self.lab.sink.apply_now([["RemoveColumn", self.lab.table(key), self.lab.col_id(key, col_key)]])
        if col_key in ROW_KEYS.get(key, ("dossier", "ligne")):
            self._key_lost(key)

    def formula(self, i, text):
        key, col_key = self._pick(i)
        if key is None:
            return
        key_cols = ROW_KEYS.get(key, ("dossier", "ligne"))
        if (col_key in ESSENTIAL or col_key in key_cols) and (
                (key == "dossiers" and not self._f1_safe()) or not self._f7_safe()):
            return
        column = self.lab.column(key, self.lab.col_id(key, col_key))
        self.lab.sink.apply_now([["ModifyColumn", self.lab.table(key), column["colId"], {"isFormula": True, "formula": FORMULA}]])
        self.formulas[column["id"]] = FORMULA
        if col_key in ESSENTIAL or col_key in key_cols:
            if col_key in key_cols:  # OTP's new key column beside it: every row loose, matched again
                self._key_lost(key)
        else:
            self.skip.setdefault(key, set()).add(col_key)
            self.theirs.setdefault(key, set()).add(col_key)

    def delete_table(self, i, text):
        keys = sorted(self._tables() & {k for k in self._tables() if self._table_alive(k)})
        if not keys:
            return
        key = keys[i % len(keys)]
        if key != "dossiers" and not self._f7_safe():  # (the dossiers table: a binned dossier's row goes with it)
            return
        self.lab.sink.apply_now([["RemoveTable", self.lab.table(key)]])
        for ref in [r for r, (k, _) in self.agent_cols.items() if k == key]:  # their columns went with it
            del self.agent_cols[ref], self.cells[ref]
        self.orphans = {o: c for o, c in self.orphans.items() if o[0] != key}
        self.skip.pop(key, None)
        self.theirs.pop(key, None)
        live_refs = {c["id"] for c in self.lab.sink.records("_grist_Tables_column")}
        self.retyped = {r: t for r, t in self.retyped.items() if r in live_refs}
        self.formulas = {r: f for r, f in self.formulas.items() if r in live_refs}
        if key == "dossiers":
            self._key_lost("dossiers")

    def delete_rows(self, i, text):
        """An agent deletes dossier rows (of dossiers DS lists: one in DS's bin could not come back)."""
        # F6 (fixed): a Ref the agent retyped to Int that names no dossier row is loose too
        live = set(self._live())
        rows = sorted((n, r["id"]) for r, n in self._with_numbers("dossiers") if n in live)
        if not rows:
            return
        chosen = [rows[i % len(rows)], rows[(i * 5 + 1) % len(rows)]][: 1 + i % 2]
        self.lab.sink.apply_now([["BulkRemoveRecord", self.lab.table("dossiers"), sorted({rid for _, rid in chosen})]])
        numbers = {n for n, _ in chosen}
        for ref, (key, _) in self.agent_cols.items():
            if key == "dossiers":  # the agent's own cells on those rows: gone by their action
                for n in numbers:
                    self.cells[ref].pop(n, None)
        self._key_lost("dossiers", numbers)

    def time_zone(self, i, text):
        self.lab.sink.apply_now([["UpdateRecord", "_grist_DocInfo", 1, {"timezone": ZONES[i % len(ZONES)]}]])

    def other_instance(self, i, text):
        """The same procedure number on another DS instance: refused, nothing changed."""
        if self.other is None:
            store = FakeDSStore([sample_procedure(number=self.lab.number, dossier_count=3, seed=77,
                                                  first_dossier_number=self.lab.number * 100,
                                                  created="2024-04-02T11:00:00+02:00")])
            self.other = (store, FakeDSServer(store, tokens={TOKEN: "all"}))
            self.other[1].start()
        kept = ("OTP_Historique", "OTP_Etat")
        before = self.lab.snapshot(exclude=kept)
        with pytest.raises(errors.OTPError) as caught:
            self.lab.sync_from(self.other[1])
        assert caught.value.code == "other_instance"
        assert self.lab.snapshot(exclude=kept) == before, "another DS instance changed the document"

    # -- one step: events, then a sync with a fault, then a recovery sync --------------------
    @rule(events=st.lists(st.tuples(st.sampled_from(EVENTS), st.integers(0, 50), st.text(max_size=12)), min_size=2, max_size=6),
          fault=st.sampled_from(FAULTS), at=st.integers(1, 30))
    def step(self, events, fault, at):
        self.touched: set[tuple[str, int]] = set()  # (table key, number): rows DS changed in this step
        self.form_changed = False
        self.unkeyed: set[tuple[str, int]] = set()  # (table key, number): rows whose key the agent took
        self.rows_lost: set[int] = set()  # dossiers whose row the agent deleted (or its key)
        self.step_events = {name for name, _, _ in events}
        self.history_from = len(self.lab.history())
        self.contents_before = {key: self._contents(key) for key in ("dossiers", *DOSSIER_ROW_KEYS) if self._table_alive(key)}
        for name, i, text in events:
            before = (self.lab.sink.applies, self.ds_generation)
            getattr(self, name)(i, text)
            if name == "other_instance" or (self.lab.sink.applies, self.ds_generation) != before:
                event(name)  # what the budget covers: `pytest --hypothesis-show-statistics`
        # F5 (fixed): a fault may interrupt the sync that makes the dossiers table again
        self.sync(fault, at)

    def sync(self, fault, at):
        server, sink = self.lab.server, self.lab.sink
        if fault == "http500":
            server.fail_next(500)
        elif fault == "http502_many":
            server.fail_next(502, "<html>Bad gateway</html>", "text/html", count=20,
                             match=lambda r, k=at: len(server.requests) % 7 == k % 7)
        elif fault == "rate_limit":
            server.rate_limit_next(int(time.time()) + 1)
        elif fault == "partial":
            server.partial_next(node=at % 3, count=2, match=lambda r: r.operation_name == "otpDossiers")
        elif fault == "silence":
            server.delay_next(0.8, count=1, match=lambda r: r.operation_name == "otpDossiers")
        elif fault == "grist_call":
            sink.fail_at[sink.calls + at] = errors.grist_write_failed("connexion perdue")
        try:
            self.lab.sync()
        except errors.OTPError:
            pass
        server._faults.clear()
        sink.fail_at.clear()
        self.lab.sync()  # the recovery sync, no fault: it must end (an exception fails the test)
        server.requests.clear()
        self.check()
        self.settled()

    def settled(self):
        """6: a sync right after the recovery changes nothing — OTP does not fight an agent's
        type, formula, name or zone, nor rows it repaired (it may read again the dossiers of the
        last seconds: `sync.reread_since`)."""
        kept = ("OTP_Historique", "OTP_Etat", "OTP_Demarches")
        columns = ("id", "parentId", "colId", "type", "isFormula", "formula", "label", "widgetOptions")

        def schema():
            table = self.lab.sink.table("_grist_Tables_column")
            return list(zip(*(table[c] for c in columns)))

        before, before_schema = self.lab.snapshot(exclude=kept), schema()
        result = self.lab.sync()
        assert (result.added, result.updated, result.deleted) == (0, 0, 0), result.message
        assert schema() == before_schema, "a sync after the recovery changed columns"
        assert self.lab.snapshot(exclude=kept) == before, "a sync after the recovery changed the document"

    # -- the invariants ------------------------------------------------------------------------
    def _contents(self, key: str) -> dict[int, str]:
        """OTP's cells of each dossier's row of `key` (one row per dossier) but its Ref: number → text."""
        view = self._view()
        cols = {k: c for k, c in view[2][key].items() if k != "dossier"}
        return {n: json.dumps({k: r.get(c) for k, c in cols.items()}, sort_keys=True, default=str)
                for r, n in self._with_numbers(key, view) if n is not None}

    def _unmatchable(self, key: str, n: int) -> bool:
        """Why a row that lost its key may not find its dossier again (see the module's 5)."""
        if (key, n) in self.touched or n not in self.procedure.dossiers:
            return True  # DS changed or deleted that dossier (or put it in the bin) in this step
        contents = self.contents_before.get(key, {})
        mine = contents.get(n)
        if mine is None:
            return True
        cells = json.loads(mine)
        if all(blank(v) for k, v in cells.items()):
            return True  # nothing to match (an empty annotations row)
        return sum(1 for c in contents.values() if c == mine) > 1

    def _fresh(self):
        if self.fresh_of != self.ds_generation:
            self.fresh_sink, self.fresh_of = self.lab.fresh_copy(), self.ds_generation
        return self.fresh_sink

    def _rows_by_number(self, key: str, view, skip: set[str]) -> tuple[dict[int, list[str]], list[dict]]:
        """OTP's cells of table `key` by dossier number (each row as text, sorted), and the rows
        that hang on no dossier (raw)."""
        cols = {k: c for k, c in view[2][key].items() if k not in skip}
        out: dict[int, list[str]] = {}
        stray = []
        for row, n in self._with_numbers(key, view):
            if n is None:
                stray.append(row)
                continue
            cells = {k: (n if k in ("dossier", "numero") else same_value(row.get(c))) for k, c in cols.items()}
            out.setdefault(n, []).append(json.dumps(cells, sort_keys=True, default=str))
        return {n: sorted(rows) for n, rows in out.items()}, stray

    def check(self):
        lab = self.lab
        last = lab.history()[-1]
        assert last["Statut"] == "Terminée", last
        notes = "\n".join(r["Notes"] or "" for r in lab.history()[self.history_from:])
        fresh = self._fresh()
        live, binned = set(self.procedure.dossiers), set(self.procedure.binned)
        mine_view, fresh_view = self._view(), self._view(fresh)

        # 3: the dossiers held
        held_rows, stray_dossiers = self._rows_by_number("dossiers", mine_view, set())
        expected = live | {b for b in binned if b in self.held and b not in self.rows_lost}
        assert sorted(held_rows) == sorted(expected), "dossiers held differ from DS"
        assert all(len(rows) == 1 for rows in held_rows.values()), "duplicate dossier rows"
        self.held = set(held_rows)

        # 2 and 5: OTP's columns the agent left alone equal a fresh copy; no duplicate, no orphan
        stray: dict[str, list[dict]] = {"dossiers": stray_dossiers}
        for key in sorted(self._tables()):
            # the bases of sendable cells (`plan.pending`) are the copy's memory, not DS's data: a row
            # DS did not change keeps its own, without the keys of annotations added since (no
            # base: nothing pending); test_send.py holds them to their own contract
            skip = set(self.skip.get(key, set())) | ({"lien"} if key == "fichiers" else set()) | {"base_ds"}
            mine, stray_rows = self._rows_by_number(key, mine_view, skip)
            theirs, fresh_stray = self._rows_by_number(key, fresh_view, skip) if key in fresh_view[1] else ({}, [])
            assert fresh_stray == [], f"the fresh copy has rows without a dossier in {key}"
            if key != "dossiers":
                stray[key] = stray_rows
            missing = set(mine_view[2][key]) - skip - set(fresh_view[2][key]) if theirs else set()
            assert not missing, f"{key}: OTP columns a fresh copy does not have: {missing}"
            for n in sorted(live):
                assert mine.get(n, []) == theirs.get(n, []), f"{key}: dossier {n} differs from a fresh copy"
            assert set(mine) <= self.held, f"{key}: rows of dossiers the copy does not hold"

        # 4: agents' columns and cells
        registered = {r["Col_ref"] for r in lab.sink.records("OTP_Colonnes")}
        columns = {c["id"]: c for c in lab.sink.records("_grist_Tables_column")}
        accounted: set[tuple[int, int]] = set()  # (col ref, row id)
        numbered = {key: self._with_numbers(key, mine_view) for key in {k for k, _ in self.agent_cols.values()}}
        for (key, row_id), cells in list(self.orphans.items()):
            rows = {r["id"]: r for r in stray.get(key, [])}
            assert row_id in rows, f"a kept row with agents' cells is gone or moved: {key} {row_id}"
            for ref, cell in cells.items():
                assert rows[row_id][columns[ref]["colId"]] == cell, f"agent cell changed on kept row {key} {row_id}"
                accounted.add((ref, row_id))
        for ref, (key, type_) in self.agent_cols.items():
            column = columns.get(ref)
            assert column is not None and column["type"] == type_ and not column["isFormula"], f"agent column {ref} changed"
            assert ref not in registered, f"OTP registered the agent's column {column['colId']}"
            col = column["colId"]
            rows = [r for r, _ in numbered[key]]
            at = {}
            for row, n in numbered[key]:
                if n is not None:
                    assert n not in at, f"two rows of dossier {n} in {key}"
                    at[n] = row
            for n, cell in sorted(self.cells[ref].items()):
                if n in at and at[n][col] == cell:
                    accounted.add((ref, at[n]["id"]))
                    continue
                kept = next((r for r in stray.get(key, []) if r.get(col) == cell), None)
                if kept is not None and (key, n) in self.unkeyed and self._unmatchable(key, n):
                    assert f"{lab.table(key)} : ligne {kept['id']}" in notes, f"kept row {kept['id']} not reported"
                    self.orphans.setdefault((key, kept["id"]), {})[ref] = cell
                    event("an agent's cell kept on a row without a dossier, reported")
                    accounted.add((ref, kept["id"]))
                    del self.cells[ref][n]
                    continue
                if n not in self.held and kept is None and (key, n) not in self.unkeyed:
                    del self.cells[ref][n]  # DS deleted the dossier (or it went with its row): its rows went
                    continue
                raise AssertionError(f"agent cell {cell!r} of dossier {n} in {key}.{col}: "
                                     f"on its row {at.get(n, {}).get(col)!r}, kept row {kept and kept['id']}, "
                                     f"key lost {(key, n) in self.unkeyed}, unmatchable {self._unmatchable(key, n)}")
            for row in rows:
                assert blank(row.get(col)) or (ref, row["id"]) in accounted, f"unexpected agent cell {row.get(col)!r} in {key}"
        for key, rows in stray.items():  # 5: a row without a dossier only with an agent's cell
            for row in rows:
                assert (key, row["id"]) in self.orphans, f"orphan row {row['id']} in {key}: {row}"

        # OTP made no data column it did not register (an agent's id taken: the next free one)
        tables = mine_view[1]
        table_refs = {t: r for r, t in zip(lab.sink.table("_grist_Tables")["id"], lab.sink.table("_grist_Tables")["tableId"])}
        ours = {table_refs[t] for t in tables.values()}
        stray_cols = [c["colId"] for c in columns.values() if c["parentId"] in ours and c["id"] not in registered
                      and c["id"] not in self.agent_cols and not c["isFormula"]  # the layout's formulas too
                      and c["colId"] != "manualSort" and not c["colId"].startswith("gristHelper_")]
        assert stray_cols == [], f"columns nobody registered in OTP's tables: {stray_cols}"
        for ref, type_ in self.retyped.items():
            assert ref in columns and columns[ref]["type"] == type_, f"the agent's type of {ref} not kept"
        for ref, formula in self.formulas.items():
            assert ref in columns and columns[ref]["isFormula"] and columns[ref]["formula"] == formula, f"formula {ref}"


TestSyncHistory = SyncHistory.TestCase
TestSyncHistory.settings = settings(max_examples=10, stateful_step_count=5, deadline=None,
                                    suppress_health_check=list(HealthCheck), derandomize=True,
                                    # OTP_MODEL_NO_SHRINK=1: the first failure as found (shrinking one takes minutes)
                                    phases=[p for p in Phase if p != Phase.shrink or not os.environ.get("OTP_MODEL_NO_SHRINK")])
