"""A lab for whole syncs without a browser: the fake DS over real HTTP, Grist's own engine as the
document, the real sync core between them. Used by the engine scenario and model-based tests.

    with Lab(dossiers=30) as lab:
        lab.sync()                       # a SyncResult (raises the OTPError a sync raises)
        lab.store.update_champ(...)      # DS events
        lab.agent_edit(...)              # an agent's cell
        lab.assert_copy_exact()

Columns are found through OTP's registry (`col_id(table key, column key)`, `registry`, `columns`),
as a sync finds them, whatever their ids became; `by_dossier` + `fresh_copy` compare a table with
what a first sync of DS as it is now writes.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure
from py_core.ds.client import DSClient
from py_core.clock import Clock
from py_core.jobs.copy import synchronise
from py_core.jobs import send as send_job
from py_core.jobs.params import SendParams, SyncParams, parse_params, parse_send_params
from py_core.progress import Progress
from py_core.ds.transport import UrllibTransport
from tests.grist_engine import EngineSink

TOKEN = "jeton-du-labo"
NUMBER = 4242
SENDER = "instructeur2@exemple.gouv.fr"  # in both groupes of the sample procedure


def run(coroutine):
    """Run in a thread of its own: the browser tests' Playwright keeps an event loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


class Lab:
    def __init__(self, dossiers: int = 30, seed: int = 3, number: int = NUMBER, timeout: float = 5.0):
        self.number = number
        self.store = FakeDSStore([sample_procedure(number=number, dossier_count=dossiers, seed=seed)])
        self.server = FakeDSServer(self.store, tokens={TOKEN: "all"})
        self.sink = EngineSink("Europe/Paris")
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self.holder = "labo/onglet"
        self.elapsed = 0.0  # the lab's syncs happen a minute apart, as an agent's would (see `clock`)

    def __enter__(self) -> Lab:
        self.server.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.stop()

    def params(self, **extra: Any) -> SyncParams:
        return parse_params({"demarche": str(self.number), "token": TOKEN, "endpoint": self.server.url,
                             "holder": self.holder, **extra})

    def client(self, url: str | None = None, *, clock=None, **options: Any) -> DSClient:
        """A DS client as the widget makes one: its progress goes to `events`; the lab's clock
        (waits are not slept)."""
        options = {"retry_base": 0.01, **options}
        return DSClient(url or self.server.url, TOKEN, UrllibTransport(timeout=self.timeout),
                        progress=Progress(self.events.append), clock=Clock(now=clock or self.clock, sleep=no_sleep), **options)

    def clock(self) -> float:
        """The widget's clock: each `sync` starts a minute after the previous one (their dates in
        the document; `copy_kind.reread_since` settles the last seconds' dossiers after SETTLE_S)."""
        return time.time() + self.elapsed

    def sync(self, *, sink=None, should_cancel=None, clock=None, client=None, **extra: Any):
        self.elapsed += 60
        return run(synchronise(self.params(**extra), client or self.client(clock=clock), sink or self.sink,
                               should_cancel=should_cancel))

    # -- the send (« Envoyer vers DS ») ------------------------------------------------------
    def send_params(self, raw: dict[str, Any] | None = None, **extra: Any) -> SendParams:
        return parse_send_params({"demarche": str(self.number), "token": TOKEN, "endpoint": self.server.url,
                                  "holder": self.holder, "instructeur": SENDER, **(raw or {}), **extra})

    def preview(self, *, client=None, **extra: Any) -> dict[str, Any]:
        self.elapsed += 60
        return run(send_job.preview(self.send_params(**extra), client or self.client(), self.sink))

    def send(self, shown: dict[str, Any] | None = None, *, choices: dict[str, str] | None = None, client=None,
             should_cancel=None, **extra: Any):
        """Confirm what `shown` (a preview; by default one made now) listed."""
        shown = shown if shown is not None else self.preview(**extra)
        self.elapsed += 60
        params = self.send_params(approved=shown["approved"], choices=choices or {}, **extra)
        return run(send_job.send(params, client or self.client(), self.sink, should_cancel=should_cancel))

    def set_cell(self, key: str, number: int, col_key: str, cell: Any) -> None:
        """An agent types `cell` in OTP's column `col_key` of dossier `number`'s row of table `key`."""
        row = self.row_in(key, number)
        self.sink.apply_now([["UpdateRecord", self.table(key), row["id"], {self.col_id(key, col_key): cell}]])

    def row_in(self, key: str, number: int) -> dict[str, Any]:
        rows = self.numbers_by_row()
        ref = self.col_id(key, "dossier") if key != "dossiers" else None
        return next(r for r in self.rows(key) if (rows.get(r[ref]) if ref else r[self.col_id(key, "numero")]) == number)

    def journal(self) -> list[dict[str, Any]]:
        return self.sink.records("OTP_Envois") if "OTP_Envois" in self.sink.table("_grist_Tables")["tableId"] else []

    def sync_from(self, server: FakeDSServer, **extra: Any):
        """A sync of the same document from another API address (another DS, or a relay)."""
        return self.sync(client=self.client(server.url), endpoint=server.url, **extra)

    # -- the document -------------------------------------------------------------------------
    def table(self, key: str) -> str:
        """Grist table id of a part of the procedure (registry lookup by key)."""
        tables = {r["Cle"]: r["Table_ref"] for r in self.sink.records("OTP_Tables") if r["Demarche"] == self.number}
        refs = dict(zip(self.sink.table("_grist_Tables")["id"], self.sink.table("_grist_Tables")["tableId"]))
        return refs[tables[key]]

    def rows(self, key: str) -> list[dict[str, Any]]:
        return self.sink.records(self.table(key))

    def dossier_numbers(self) -> list[int]:
        return sorted(r["Numero"] for r in self.rows("dossiers"))

    def history(self) -> list[dict[str, Any]]:
        return self.sink.records("OTP_Historique")

    def agent_column(self, key: str = "dossiers", col_id: str = "Note_agent", type_: str = "Text", **info: Any) -> str:
        """An agent's own data column on a table of the procedure (added if missing)."""
        table = self.table(key)
        columns = self.sink.table("_grist_Tables_column")
        table_ref = self.sink.table("_grist_Tables")["id"][self.sink.table("_grist_Tables")["tableId"].index(table)]
        if not any(p == table_ref and c == col_id for p, c in zip(columns["parentId"], columns["colId"])):
            self.sink.apply_now([["AddColumn", table, col_id, {"type": type_, "isFormula": False, **info}]])
        return col_id

    def agent_edit(self, number: int, text: str, col_id: str = "Note_agent") -> None:
        col = self.agent_column("dossiers", col_id)
        row = next(r for r in self.rows("dossiers") if r["Numero"] == number)
        self.sink.apply_now([["UpdateRecord", self.table("dossiers"), row["id"], {col: text}]])

    def agent_cells(self, col_id: str = "Note_agent") -> dict[int, Any]:
        return {r["Numero"]: r.get(col_id) for r in self.rows("dossiers") if r.get(col_id)}

    # -- DS, as the copy should be ----------------------------------------------------------
    def ds_numbers(self) -> list[int]:
        procedure = self.store.procedure(self.number)
        return sorted([*procedure.dossiers, *procedure.binned])

    def assert_copy_exact(self) -> None:
        """Every dossier DS has (listed or in its bin) exactly once, with its modification date
        and state; the bin flagged exactly; no duplicate row in any table, no orphan. Columns and
        row keys as the core derives them (`build_schema`), found through the registry."""
        from py_core.grist.values import datetime_cell
        from py_core.plan.schema import BIN_DATE, DATE_MODIFIED, DOSSIER_KEY, DOSSIER_REF

        procedure = self.store.procedure(self.number)
        ids = self.col_ids("dossiers")
        rows = self.rows("dossiers")
        numbers = [r[ids[DOSSIER_KEY]] for r in rows]
        assert sorted(numbers) == self.ds_numbers(), "dossiers differ from DS"
        assert len(set(numbers)) == len(numbers), "duplicate dossier rows"
        for row, number in zip(rows, numbers):
            assert bool(row[ids[BIN_DATE]]) == (number in procedure.binned), number
            if number in procedure.dossiers:  # DS hides a binned dossier: it stays as last copied
                dossier = procedure.dossiers[number]
                assert row[ids[DATE_MODIFIED]] == datetime_cell(dossier["dateDerniereModification"]), number
        live = {r["id"] for r in rows}
        specs = {t.key: t for t in self.schema().tables}
        for key in self.child_keys():
            child = self.col_ids(key)
            table_rows = self.rows(key)
            keys = [tuple(r[child[k]] for k in specs[key].row_key) for r in table_rows]
            assert len(set(keys)) == len(keys), f"duplicate rows in {key}"
            assert all(r[child[DOSSIER_REF]] in live for r in table_rows), f"orphan rows in {key}"

    def child_keys(self) -> list[str]:
        return [r["Cle"] for r in self.sink.records("OTP_Tables") if r["Demarche"] == self.number and r["Cle"] != "dossiers"]

    def schema(self):
        """The tables the core derives from DS's structure now (`build_schema`)."""
        from py_core.plan.schema import build_schema

        structure = run(self.client().structure(self.number))
        return build_schema(structure, timezone="Europe/Paris", ds_base=self.server.base_url)

    def snapshot(self, exclude: tuple[str, ...] = ()) -> str:
        """Everything the document holds, as text (for "unchanged" checks); `exclude`: tables left out."""
        return json.dumps({t: self.sink.table(t) for t in self.sink.table_ids() if t not in exclude},
                          sort_keys=True, default=str)

    # -- columns, through OTP's registry (by stable refs, whatever their ids became) -------------
    def table_ref(self, key: str, sink: EngineSink | None = None) -> int:
        sink = sink or self.sink
        return next(r["Table_ref"] for r in sink.records("OTP_Tables") if r["Demarche"] == self.number and r["Cle"] == key)

    def columns(self, key: str, sink: EngineSink | None = None) -> list[dict[str, Any]]:
        """The `_grist_Tables_column` records of a table of the procedure."""
        sink = sink or self.sink
        ref = self.table_ref(key, sink)
        return [c for c in sink.records("_grist_Tables_column") if c["parentId"] == ref]

    def column(self, key: str, col_id: str) -> dict[str, Any] | None:
        return next((c for c in self.columns(key) if c["colId"] == col_id), None)

    def registry(self, key: str, sink: EngineSink | None = None) -> dict[str, dict[str, Any]]:
        """OTP_Colonnes rows of a table: column key (descriptor id, `dossier`, `motivation`…) → row."""
        sink = sink or self.sink
        ref = self.table_ref(key, sink)
        return {r["Cle"]: r for r in sink.records("OTP_Colonnes") if r["Demarche"] == self.number and r["Table_ref"] == ref}

    def col_id(self, key: str, col_key: str, sink: EngineSink | None = None) -> str | None:
        """Grist col id of OTP's column `col_key` in table `key` (None: registered nowhere alive)."""
        sink = sink or self.sink
        entry = self.registry(key, sink).get(col_key)
        if entry is None:
            return None
        return next((c["colId"] for c in sink.records("_grist_Tables_column") if c["id"] == entry["Col_ref"]), None)

    def col_ids(self, key: str, sink: EngineSink | None = None) -> dict[str, str]:
        """Every OTP column of table `key` alive in the document: column key → Grist col id."""
        sink = sink or self.sink
        ids = {c["id"]: c["colId"] for c in sink.records("_grist_Tables_column")}
        return {k: ids[r["Col_ref"]] for k, r in self.registry(key, sink).items() if r["Col_ref"] in ids}

    def layout_ids(self, sink: EngineSink | None = None) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """Every table of the procedure alive in the document (table key → Grist table id) and
        every OTP column of each (table key → column key → col id), in one read of each
        metadata table (`table` and `col_ids` read them per call)."""
        sink = sink or self.sink
        tables = sink.table("_grist_Tables")
        table_ids = dict(zip(tables["id"], tables["tableId"]))
        refs = {r["Cle"]: r["Table_ref"] for r in sink.records("OTP_Tables") if r["Demarche"] == self.number}
        columns = sink.table("_grist_Tables_column")
        col_ids = dict(zip(columns["id"], columns["colId"]))
        keys = {ref: key for key, ref in refs.items()}
        out: dict[str, dict[str, str]] = {key: {} for key, ref in refs.items() if ref in table_ids}
        for r in sink.records("OTP_Colonnes"):
            key = keys.get(r["Table_ref"])
            if r["Demarche"] == self.number and key in out and r["Col_ref"] in col_ids:
                out[key][r["Cle"]] = col_ids[r["Col_ref"]]
        return {key: table_ids[ref] for key, ref in refs.items() if ref in table_ids}, out

    def row_of(self, number: int) -> dict[str, Any]:
        return next(r for r in self.rows("dossiers") if r["Numero"] == number)

    def numbers_by_row(self, sink: EngineSink | None = None) -> dict[int, int]:
        """Dossier row id → dossier number."""
        sink = sink or self.sink
        table = self._table_id(self.table_ref("dossiers", sink), sink)
        numero = self.col_id("dossiers", "numero", sink)
        return {r["id"]: r[numero] for r in sink.records(table)}

    def _table_id(self, ref: int, sink: EngineSink) -> str:
        tables = sink.table("_grist_Tables")
        return tables["tableId"][tables["id"].index(ref)]

    def agent_fill(self, key: str, col_id: str, cells: dict[int, Any], type_: str = "Text", **info: Any) -> None:
        """An agent's column on any table of the procedure, filled (row id → cell)."""
        self.agent_column(key, col_id, type_, **info)
        ids = list(cells)
        self.sink.apply_now([["BulkUpdateRecord", self.table(key), ids, {col_id: [cells[i] for i in ids]}]])

    def by_dossier(self, key: str, sink: EngineSink | None = None, skip: tuple[str, ...] = ()) -> dict[int, list[str]]:
        """OTP's cells of a child table, by dossier number: each row as {column key: cell}
        (the Ref as the dossier's number), sorted; columns found through the registry."""
        sink = sink or self.sink
        numbers = self.numbers_by_row(sink)
        table = self._table_id(self.table_ref(key, sink), sink)
        cols = {k: c for k, c in self.col_ids(key, sink).items() if k not in skip}
        out: dict[int, list[str]] = {}
        for row in sink.records(table):
            cells = {k: (numbers.get(row[c]) if k == "dossier" else row.get(c)) for k, c in cols.items()}
            out.setdefault(cells.get("dossier"), []).append(json.dumps(cells, sort_keys=True, default=str))
        return {n: sorted(rows) for n, rows in out.items()}

    def fresh_copy(self) -> EngineSink:
        """DS as it is now, synced into a new document: what the copy should hold."""
        sink = EngineSink("Europe/Paris")
        holder, self.holder = self.holder, "labo/temoin"
        try:
            self.sync(sink=sink)
        finally:
            self.holder = holder
        return sink

    # -- DS ------------------------------------------------------------------------------------
    def descriptor(self, typename: str, label: str | None = None, *, annotation: bool = False) -> dict[str, Any]:
        """A descriptor of the active revision, by type (and label)."""
        revision = self.store.procedure(self.number).active_revision
        items = revision["annotationDescriptors" if annotation else "champDescriptors"]
        return next(d for d in items if d["__typename"] == typename and (label is None or d["label"] == label))
