"""Model-based: random histories of DS events, agents' edits, syncs and injected faults.

After every recovery sync the document equals DS (every dossier once, in the bin or not, with
its modification date, motivation and labels) and every agent's cell is intact. Real Grist
engine, fake DS over HTTP; a fixed budget keeps CI fast.
"""

from __future__ import annotations

import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule  # noqa: E402

from py_core import errors  # noqa: E402
from py_core.grist.values import choice_list_cell  # noqa: E402
from tests.grist_engine import engine_missing  # noqa: E402
from tests.lab import Lab  # noqa: E402

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))

EVENTS = ["edit_dossier", "new_dossier", "labels", "bin", "bin", "restore", "delete", "new_revision",
          "agent_note", "agent_note"]
FAULTS = ["none", "http500", "http502_many", "rate_limit", "partial", "silence", "grist_call"]


class SyncHistory(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.lab = Lab(dossiers=12, seed=11, timeout=0.5).__enter__()
        self.notes: dict[int, str] = {}
        self.lab.sync()

    def teardown(self):
        self.lab.__exit__(None, None, None)

    # -- DS events ----------------------------------------------------------------------------
    def _live(self):
        return sorted(self.lab.store.procedure(self.lab.number).dossiers)

    def edit_dossier(self, i, text):
        live = self._live()
        if live:
            self.lab.store.update_dossier(live[i % len(live)], motivation=text or None)

    def new_dossier(self, i, text):
        self.lab.store.add_dossier(procedure_number=self.lab.number)

    def labels(self, i, text):
        names = {["Urgent", "Dossier complet", "À relancer"][n] for n in range(3) if (i >> n) & 1}
        live = self._live()
        known = {label["name"] for label in self.lab.store.procedure(self.lab.number).labels}
        if live:
            self.lab.store.set_labels(live[i % len(live)], sorted(names & known))

    def bin(self, i, text):
        live = self._live()
        if live:
            self.lab.store.delete_dossier(live[i % len(live)], pending=True)

    def restore(self, i, text):
        binned = sorted(self.lab.store.procedure(self.lab.number).binned)
        if binned:
            self.lab.store.restore_dossier(binned[i % len(binned)])

    def delete(self, i, text):
        from_bin = bool(i % 2)
        procedure = self.lab.store.procedure(self.lab.number)
        pool = sorted(procedure.binned) if from_bin else self._live()
        if pool:
            number = pool[i % len(pool)]
            self.lab.store.delete_dossier(number)
            self.notes.pop(number, None)

    def new_revision(self, i, text):
        rename = bool(i % 2)
        active = self.lab.store.procedure(self.lab.number).active_revision
        champs = [dict(d) for d in active["champDescriptors"]]
        texts = [d for d in champs if d["__typename"] == "TextChampDescriptor"]
        if not texts:
            return
        target = texts[i % len(texts)]
        if rename:
            target["label"] = target["label"] + " (nouveau libellé)"
        else:
            champs.remove(target)
        self.lab.store.publish_revision(champs, active["annotationDescriptors"])

    # -- agents --------------------------------------------------------------------------------
    def agent_note(self, i, text):
        text = text.strip() or "note"
        numbers = self.lab.dossier_numbers()
        if numbers:
            number = numbers[i % len(numbers)]
            self.lab.agent_edit(number, text)
            self.notes[number] = text

    # -- one step: events, then a sync with a fault, then a recovery sync --------------------
    @rule(events=st.lists(st.tuples(st.sampled_from(EVENTS), st.integers(0, 50), st.text(max_size=20)), max_size=6),
          fault=st.sampled_from(FAULTS), at=st.integers(1, 30))
    def step(self, events, fault, at):
        for name, i, text in events:
            getattr(self, name)(i, text)
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
        self.lab.sync()  # the recovery sync, no fault
        server.requests.clear()
        self.copy_exact_and_agents_cells_intact()

    def copy_exact_and_agents_cells_intact(self):
        """Checked after each recovery sync (between syncs, DS events make the copy stale)."""
        self.lab.assert_copy_exact()
        procedure = self.lab.store.procedure(self.lab.number)
        for row in self.lab.rows("dossiers"):
            dossier = procedure.dossiers.get(row["Numero"])
            if dossier is None:
                continue  # in the bin: DS hides it, the copy stays as it was
            assert row["Motivation"] == (dossier.get("motivation") or None), row["Numero"]
            labels = choice_list_cell(sorted(l["name"] for l in dossier.get("labels") or []))
            assert row["Labels"] == labels, row["Numero"]
        assert self.lab.agent_cells() == self.notes


TestSyncHistory = SyncHistory.TestCase
TestSyncHistory.settings = settings(max_examples=10, stateful_step_count=5, deadline=None,
                                    suppress_health_check=list(HealthCheck), derandomize=True)
