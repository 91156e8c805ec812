"""Issue 19, model-based: random interleavings of agents' edits (by hand and by formula), DS-side
edits, syncs, sends and faults (DS 5xx, a Grist call failing in the middle of a send), on
Grist's engine and the fake DS over HTTP.

The model keeps, per dossier, what the copy's base of the « Note » annotation should be and the
agent's pending value. Invariants, after every step:
- nothing is sent twice: every value the agents type is unique, and DS saves each at most once;
- no DS-side change is overwritten without the agent's choice: DS's value only ever becomes one
  the model allowed (the agent's, when DS still had the base, or when the agent chose it);
- no pending edit is lost by a sync (the cell keeps the agent's value);
- after a send that ran to its end, DS has every value it was allowed to take, and every
  conflict left is in the journal.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from py_core import errors
from tests.grist_engine import EngineSink, engine_missing
from tests.lab import Lab

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))

DOSSIERS = 2


class FailingSink(EngineSink):
    """Grist's engine, refusing the `refuse_after`-th bundle from now (a Grist call failing)."""

    refuse_after: int | None = None

    async def apply(self, actions):
        if self.refuse_after is not None:
            self.refuse_after -= 1
            if self.refuse_after < 0:
                self.refuse_after = None
                raise errors.grist_write_failed("panne simulée", [])
        return await super().apply(actions)


class SendModel(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.lab = Lab(dossiers=24).__enter__()
        self.lab.sink = FailingSink("Europe/Paris")
        self.lab.sync()
        procedure = self.lab.store.procedure(self.lab.number)
        active = procedure.active_revision["id"]
        self.numbers = sorted(n for n, d in procedure.dossiers.items()
                              if d["state"] == "en_instruction" and d["_revisionId"] == active)[:DOSSIERS]
        self.note = self.lab.descriptor("IntegerNumberChampDescriptor", annotation=True)["id"]
        self.other = self.lab.descriptor("TextChampDescriptor", "Nom", annotation=True)["id"]
        self.values = itertools.count(1000)
        self.base = {n: self.ds(n) for n in self.numbers}  # the copy's base, as the model sees it
        self.pending: dict[int, int] = {}  # the agent's value not yet in DS
        self.formula: bool = False

    def teardown(self):
        self.lab.__exit__(None, None, None)

    # -- reading ----------------------------------------------------------------------------
    def ds(self, n):
        champ = next((c for c in self.lab.store.dossier(n)["annotations"] if c["champDescriptorId"] == self.note), None)
        value = None if champ is None else champ.get("stringValue")
        return int(value) if value not in (None, "") else None

    def cell(self, n):
        value = self.lab.row_in("annotations", n)[self.col()]
        return int(value) if isinstance(value, (int, float)) and value else None

    def col(self):
        return self.lab.col_id("annotations", self.note) or next(
            r["Col_id"] for r in self.lab.sink.records("OTP_Colonnes") if r["Cle"] == self.note)

    # -- the model's copy ---------------------------------------------------------------------
    def copied(self):
        """What a sync does to the model: DS's value in the base where nothing is pending, or
        where DS now has the agent's value."""
        for n in self.numbers:
            if n not in self.pending or self.ds(n) == self.pending[n]:
                self.base[n] = self.ds(n)
                self.pending.pop(n, None)

    def allowed(self, chosen: set[int]) -> dict[int, set]:
        """DS's value may stay, or become the agent's where DS still has the base, or chosen."""
        return {n: {self.ds(n)} | ({self.pending[n]} if n in self.pending and (self.ds(n) == self.base[n] or n in chosen) else set())
                for n in self.numbers}

    # -- steps ------------------------------------------------------------------------------------
    @rule(i=st.integers(0, DOSSIERS - 1))
    def agent_types(self, i):
        if self.formula:
            return
        n, value = self.numbers[i], next(self.values)
        self.lab.set_cell("annotations", n, self.note, value)
        if value != self.base[n]:
            self.pending[n] = value

    @rule(now=st.integers(0, 4))
    def agent_computes(self, now):
        """The column becomes a formula (its results are sent), for good (one time in five)."""
        if self.formula or now:
            return
        numero = f"${self.lab.col_id('annotations', 'dossier')}.{self.lab.col_id('dossiers', 'numero')}"
        offset = next(self.values) * 10
        table = self.lab.table("annotations")
        self.lab.sink.apply_now([["ModifyColumn", table, self.col(), {"isFormula": True, "formula": f"{offset} + {numero} % 7"}]])
        self.formula = True
        for n in self.numbers:
            value = offset + n % 7
            if value != self.base[n]:
                self.pending[n] = value
            else:
                self.pending.pop(n, None)

    @rule(i=st.integers(0, DOSSIERS - 1), same=st.booleans())
    def instructeur_in_ds(self, i, same):
        """An instructeur edits the dossier in DS: the same annotation (a conflict if the agent
        edited it too), or another one (the next sync fetches the dossier again)."""
        n = self.numbers[i]
        if same:
            self.lab.store.update_champ(n, self.note, next(self.values) + 500_000)
        else:
            self.lab.store.update_champ(n, self.other, f"Référent {next(self.values)}")

    @rule(fault=st.sampled_from(["none", "ds500"]))
    def sync(self, fault):
        if fault == "ds500":
            self.lab.server.fail_next(500)
        before = self.allowed(set())
        self.lab.sync()
        self.copied()
        self.check_ds(before)
        for n, value in self.pending.items():
            assert self.cell(n) == value, f"the pending edit of {n} was lost by a sync"

    @precondition(lambda self: self.pending)  # a send with nothing to send is the preview's test
    @rule(choice=st.sampled_from(["", "send", "keep"]), fault=st.sampled_from(["none", "ds500", "grist"]),
          at=st.integers(0, 6))
    def send(self, choice, fault, at):
        shown = self.lab.preview()
        self.copied()
        conflicts = {int(i["ref"].split("/")[0]): i["ref"] for d in shown["dossiers"] for i in d["items"] if i["outcome"] == "conflict"}
        expected = {n for n in self.pending if self.ds(n) != self.base[n] and self.ds(n) != self.pending[n]}
        assert set(conflicts) == expected, (conflicts, expected)
        event(f"send: {len(conflicts)} conflicts, {len(self.pending)} pending, choice {choice or 'none'}, fault {fault}")
        choices = {ref: choice for ref in conflicts.values()} if choice else {}
        chosen = set(conflicts) if choice == "send" else set()
        before, journal_before = self.allowed(chosen), len(self.lab.journal())
        if fault == "ds500":
            self.lab.server.fail_next(500, match=lambda r: (r.operation_name or "").startswith("otpModifier"))
        if fault == "grist":
            self.lab.sink.refuse_after = at
        try:
            result = self.lab.send(shown, choices=choices)
        except errors.OTPError:
            self.lab.sink.refuse_after = None
            self.check_ds(before)
            return  # the next refresh tells the copy what DS took (the model's `copied`, as it is)
        self.lab.sink.refuse_after = None
        self.check_ds(before)
        for n in list(self.pending):
            if n in conflicts and choice == "keep":
                self.base[n] = self.ds(n)
                if not self.formula:
                    assert self.cell(n) == self.ds(n), "« Garder la valeur de DS » puts DS's value in the cell"
                    self.pending.pop(n)
            elif n in conflicts and not choice:
                assert self.ds(n) != self.pending[n]
            else:
                assert self.ds(n) == self.pending[n], f"{n}: DS should have the agent's value after the send"
                self.base[n] = self.pending.pop(n)
        waiting = {r["Dossier"] for r in self.lab.journal()[journal_before:] if r["Resultat"] == "Conflit"}
        assert (set(conflicts) if not choice else set()) <= waiting, "every conflict left is in the journal"
        assert result.refused == 0

    def check_ds(self, allowed):
        for n in self.numbers:
            assert self.ds(n) in allowed[n], f"{n}: DS's value {self.ds(n)} was not the agent's to send ({allowed[n]})"

    @invariant()
    def nothing_sent_twice(self):
        if not hasattr(self, "lab"):
            return
        saved = [(r.variables["input"]["dossierId"], a["id"], str(a["value"])) for r in self.lab.server.requests
                 if r.operation_name == "otpModifierAnnotations" and r.status == 200
                 for a in (r.variables or {}).get("input", {}).get("annotations", [])]
        assert len(saved) == len(set(saved)), "a value was sent twice"


TestSendModel = SendModel.TestCase
TestSendModel.settings = settings(max_examples=40, stateful_step_count=10, deadline=None,
                                  suppress_health_check=list(HealthCheck),
                                  # each step is whole syncs: a failure is reported as found (shrinking one takes minutes)
                                  phases=[Phase.explicit, Phase.reuse, Phase.generate])
