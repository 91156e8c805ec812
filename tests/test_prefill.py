"""Prefilling under CPython: Grist's own engine as the document, the fake DS over real HTTP (its
public prefill API), the real job between them (issue « Dites-le-nous une fois »)."""

from __future__ import annotations

import pytest

from demo.fake_ds.prefill import DROP, kept_values
from py_core.clock import Clock
from py_core.ds.client import DSClient
from py_core.ds.transport import NetworkError, UrllibTransport
from py_core.jobs import prefill as job
from py_core.plan import prefill as plan
from py_core.progress import Progress
from tests.grist_engine import engine_missing
from tests.lab import TOKEN, Lab, no_sleep, run
from tests.virtual_clock import VirtualClock

pytestmark = pytest.mark.skipif(engine_missing() is not None, reason=str(engine_missing()))


@pytest.fixture
def lab():
    with Lab(dossiers=4) as lab:
        lab.store.procedure(lab.number).for_individual = True
        yield lab


def descriptor(lab, label):
    return next(d for d in lab.store.procedure(lab.number).active_revision["champDescriptors"] if d["label"] == label)


def prepare(lab, **extra):
    return run(job.prepare(lab.params(**extra), lab.client(), lab.sink))


def create(lab, transport=None, client=None, **options):
    return run(job.create_prefilled(lab.params(), client or lab.client(), lab.sink, transport or UrllibTransport(timeout=5), **options))


def ids(lab, key=plan.TABLE_KEY):
    return lab.col_ids(key)


def add_row(lab, values, key=plan.TABLE_KEY):
    """An agent's row: `values` by column key (OTP's registry) or by col id."""
    cols = ids(lab, key)
    return lab.sink.apply_now([["AddRecord", lab.table(key), None, {cols.get(k, k): v for k, v in values.items()}]])[0]


def prefill_rows(lab):
    return {r["id"]: r for r in lab.rows(plan.TABLE_KEY)}


def brouillons_named(lab, name):
    return [d for d in lab.server.prefill.dossiers.values() if d.values.get("identite_nom") == name]


# -- the table -------------------------------------------------------------------------------
def test_prepare_makes_one_typed_column_per_prefillable_champ_identity_blocks_and_otp_columns(lab):
    answer = prepare(lab)
    table = lab.table(plan.TABLE_KEY)
    assert table == f"D{lab.number}_Preremplissage" and answer["table"] == table
    columns = {c["colId"]: c for c in lab.columns(plan.TABLE_KEY)}
    by_key = ids(lab)
    types = {k: columns[c]["type"] for k, c in by_key.items()}
    labels = {columns[c]["label"] for c in by_key.values()}
    assert {"Civilité", "Prénom", "Nom", "Lien du dossier prérempli", "État DS", "Dossier", "Déposé le", "Problèmes"} <= labels
    assert types[descriptor(lab, "Montant demandé (€)")["id"]] == "Numeric"
    assert types[descriptor(lab, "Nombre de bénéficiaires")["id"]] == "Int"
    assert types[descriptor(lab, "Date de naissance du porteur")["id"]] == "Date"
    assert types[descriptor(lab, "Date et heure du rendez-vous")["id"]].startswith("DateTime:")
    assert types[descriptor(lab, "J'atteste sur l'honneur l'exactitude des informations")["id"]] == "Bool"
    assert types[descriptor(lab, "Thématiques")["id"]] == "ChoiceList"
    assert types[plan.DOSSIER_REF if hasattr(plan, "DOSSIER_REF") else "dossier"] == f"Ref:{lab.table('dossiers')}"
    drop = descriptor(lab, "Département du projet")
    assert types[drop["id"]] == "Choice" and '"75 – Paris"' in columns[by_key[drop["id"]]]["widgetOptions"]
    for absent in ("Localisation du projet", "Devis", "Numéro RNA de l'association", "Catégorie et sous-catégorie"):
        assert descriptor(lab, absent)["id"] not in by_key, f"{absent} is not prefillable"
    block = next(d for d in lab.store.procedure(lab.number).active_revision["champDescriptors"] if d["type"] == "repetition")
    child = {c["colId"]: c["type"] for c in lab.columns(plan.block_key(block["id"]))}
    assert child[ids(lab, plan.block_key(block["id"]))[plan.PARENT]] == f"Ref:{table}"
    assert lab.history()[-1]["Type"] == "Préremplissage"
    # the technical columns are off the page (still in the table, raw data shows them)
    sections = {s["id"]: s for s in lab.sink.records("_grist_Views_section") if s["tableRef"] == lab.table_ref(plan.TABLE_KEY)}
    shown = {(f["parentId"], f["colRef"]) for f in lab.sink.records("_grist_Views_section_field") if f["parentId"] in sections}
    refs = {c["colId"]: c["id"] for c in lab.columns(plan.TABLE_KEY)}
    page = next(i for i, s in sections.items() if s["parentId"])
    raw = next(i for i, s in sections.items() if not s["parentId"])
    assert (page, refs[by_key[plan.TOKEN]]) not in shown and (raw, refs[by_key[plan.TOKEN]]) in shown
    assert (page, refs[by_key[plan.LINK]]) in shown


def test_the_table_follows_the_form_and_every_agent_column_formula_and_row_survives(lab):
    prepare(lab)
    table = lab.table(plan.TABLE_KEY)
    lab.sink.apply_now([["AddColumn", table, "Note_agent", {"type": "Text", "isFormula": False}],
                        ["AddColumn", table, "Calcul", {"type": "Any", "isFormula": True, "formula": "$id * 2"}]])
    nom = ids(lab)["identite_nom"]
    row = add_row(lab, {nom: "Martin", "Note_agent": "à appeler"})
    procedure = lab.store.procedure(lab.number)
    removed = descriptor(lab, "Téléphone")
    champs = [d for d in procedure.active_revision["champDescriptors"] if d["id"] != removed["id"]]
    from demo.fake_ds import make_descriptor
    champs.append(make_descriptor("TextChampDescriptor", 999_001, "Numéro d'allocataire"))
    lab.store.publish_revision(champs, procedure.active_revision["annotationDescriptors"], lab.number)
    prepare(lab)
    registry = lab.registry(plan.TABLE_KEY)
    new = next(k for k, r in registry.items() if r["Libelle_DS"] == "Numéro d'allocataire")
    assert registry[new]["Dans_le_formulaire"] and not registry[removed["id"]]["Dans_le_formulaire"]
    assert removed["id"] in ids(lab), "a removed champ keeps its column"
    kept = prefill_rows(lab)[row]
    assert kept["Note_agent"] == "à appeler" and kept["Calcul"] == row * 2 and kept[nom] == "Martin"
    # the copy's registry is untouched by the prefill table, and the other way round
    lab.sync()
    assert lab.registry(plan.TABLE_KEY)[new]["Dans_le_formulaire"]
    assert all(r["Dans_le_formulaire"] for k, r in lab.registry("dossiers").items())


# -- DS's rules, per type: what OTP accepts is what DS keeps ----------------------------------
CASES = [  # label, cell as Grist holds it, OTP accepts it, what an agent would have sent raw
    ("Nombre de bénéficiaires", 12, True, None), ("Nombre de bénéficiaires", 12.5, False, "12.5"),
    ("Nombre de bénéficiaires", "douze", False, "douze"),
    ("Montant demandé (€)", 1234.5, True, None), ("Montant demandé (€)", "beaucoup", False, "beaucoup"),
    ("Date de naissance du porteur", 636163200, True, None),  # 1990-02-28 00:00 UTC
    ("Date de naissance du porteur", "28/02/1990", False, "28/02/1990"),
    ("Date et heure du rendez-vous", 1772443800, True, None), ("Date et heure du rendez-vous", "demain", False, "demain"),
    ("Le projet a-t-il déjà commencé ?", "Oui", True, None), ("Le projet a-t-il déjà commencé ?", "Non", True, None),
    ("Le projet a-t-il déjà commencé ?", "peut-être", False, "peut-être"),
    ("J'atteste sur l'honneur l'exactitude des informations", True, True, None),
    ("J'atteste sur l'honneur l'exactitude des informations", "oui", False, "oui"),
    ("Civilité", "Mme", True, None), ("Civilité", "Madame", False, "Madame"),
    ("Thématiques", ["L", "Culture"], True, None), ("Thématiques", ["L", "Culture", "Inconnue"], False, ["Culture", "Inconnue"]),
    ("Pays de naissance", "BE", True, None), ("Pays de naissance", "Belgique", False, "Belgique"),
    ("Région", "28", True, None), ("Région", "Normandie", False, "Normandie"),
    ("Département de résidence", "14", True, None), ("Département de résidence", "14 – Calvados", False, "14 – Calvados"),
    ("Département du projet", "14 – Calvados", True, None),
    ("Dossier lié", 42420, True, None), ("Dossier lié", "le dernier", False, "le dernier"),
    # stored unchecked by DS (refused when the person submits): OTP checks them all the same
    ("Adresse électronique", "lea@exemple.fr", True, None), ("Adresse électronique", "pas-un-courriel", False, None),
    ("Téléphone", "01 23 45 67 89", True, None), ("Téléphone", "12", False, None),
    ("IBAN", "FR76 3000 6000 0112 3456 7890 189", True, None), ("IBAN", "FR76 1234", False, None),
    ("SIRET de la structure", "73282932000074", True, None), ("SIRET de la structure", "12345678901234", False, None),
    ("Département du projet", "pas une option", False, None),
]


@pytest.mark.parametrize("label, cell, accepted, raw", CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_validation_matches_what_ds_keeps_and_drops(lab, label, cell, accepted, raw):
    spec = descriptor(lab, label)
    model = next(d for d in run(lab.client().structure(lab.number)).revision.champ_descriptors if d.id == spec["id"])  # as the job reads it
    if label == "Dossier lié" and accepted:
        cell = next(iter(lab.store.procedure(lab.number).dossiers))
    value, problem = plan.check_cell(model, "", cell)
    assert (problem is None) == accepted and (value is not None) == accepted
    if problem:
        assert problem.startswith("«") and "n'est pas" in problem or "ne fait pas partie" in problem
    kept = kept_values(lab.store.procedure(lab.number), {plan.ds_key(spec["id"]): value if accepted else raw}, lab.store)
    if accepted:
        assert spec["id"] in kept, "DS keeps every value OTP accepts"
    elif raw is not None:
        assert spec["id"] not in kept, "DS drops what OTP refuses (it would have been lost silently)"


def test_communes_and_epci_need_both_codes(lab):
    commune = next(d for d in run(lab.client().structure(lab.number)).revision.champ_descriptors if d.label == "Commune de résidence")
    col = {"x/code_postal": "P", "x/code_insee": "I"}
    ids_ = {commune.id + "/code_postal": "P", commune.id + "/code_insee": "I"}
    assert plan._parts(commune, ids_, {"P": "14000", "I": "14118"}) == (["14000", "14118"], [])
    value, problems = plan._parts(commune, ids_, {"P": "14000", "I": ""})
    assert value is None and "code postal et code INSEE" in problems[0]
    assert plan._parts(commune, ids_, {"P": "1400", "I": "14118"})[1]
    assert col  # the parts are keyed `<descriptor id>/<part>`


# -- creating ---------------------------------------------------------------------------------
def fill_three(lab):
    """A ready row, a row with a problem, a row with a repeatable block (and an empty row)."""
    prepare(lab)
    c = ids(lab)
    montant = c[descriptor(lab, "Montant demandé (€)")["id"]]
    ready = add_row(lab, {"identite_nom": "Durand", "identite_prenom": "Léa", "identite_genre": "Mme", montant: 1500})
    wrong = add_row(lab, {"identite_nom": "Petit", "identite_genre": "Madame", montant: "mille"})
    block = next(d for d in lab.store.procedure(lab.number).active_revision["champDescriptors"] if d["type"] == "repetition")
    bloc = plan.block_key(block["id"])
    with_block = add_row(lab, {"identite_nom": "Roux", "identite_genre": "M."})
    sub = {d["label"]: d["id"] for d in block["champDescriptors"]}
    add_row(lab, {plan.PARENT: with_block, sub["Nom"]: "Roux", sub["Rôle"]: "Bénévole"}, bloc)
    add_row(lab, {plan.PARENT: with_block, sub["Nom"]: "Roux junior", sub["Rôle"]: "Salarié"}, bloc)
    add_row(lab, {})
    return ready, wrong, with_block, block


def test_create_sends_ready_rows_once_and_writes_link_token_number_in_one_go(lab):
    ready, wrong, with_block, block = fill_three(lab)
    result = create(lab)
    assert result.created == 2 and result.problems == [wrong] and result.empty == 1
    assert result.message.startswith("Préremplissage terminé : 2 dossiers créés.") and "1 ligne(s) non envoyée(s)" in result.message
    c, rows = ids(lab), prefill_rows(lab)
    for row_id in (ready, with_block):
        row = rows[row_id]
        assert row[c[plan.STATE]] == "Prérempli" and row[c[plan.LINK]].startswith(lab.server.base_url + "/commencer/")
        assert row[c[plan.TOKEN]] in row[c[plan.LINK]] and row[c[plan.NUMBER]] and not row[c[plan.SENDING]]
    assert rows[wrong][c[plan.STATE]] == "À créer" and not rows[wrong][c[plan.LINK]]
    assert "Civilité : « Madame » n'est pas une civilité" in rows[wrong][c[plan.PROBLEMS]]
    assert "« mille » n'est pas un nombre" in rows[wrong][c[plan.PROBLEMS]]
    roux = brouillons_named(lab, "Roux")[0]
    assert [r.get(next(d["id"] for d in block["champDescriptors"] if d["label"] == "Nom")) for r in roux.values[block["id"]]] == ["Roux", "Roux junior"]
    line = lab.history()[-1]
    assert (line["Type"], line["Statut"], line["Ajoutes"]) == ("Préremplissage", "Terminée", 2)
    assert all("Durand" not in r.path for r in lab.server.requests), "values never in a URL"
    again = create(lab)
    assert again.created == 0 and lab.server.prefill.created == 2, "a row never gets two dossiers"
    lab.sink.apply_now([["UpdateRecord", lab.table(plan.TABLE_KEY), wrong, {c[plan.WITHOUT_INVALID]: True}]])
    third = create(lab)
    assert third.created == 1 and prefill_rows(lab)[wrong][c[plan.PROBLEMS]].startswith("Envoyé sans ces valeurs")
    assert brouillons_named(lab, "Petit")[0].values == {"identite_nom": "Petit"}


class LosesAnswers(UrllibTransport):
    """The real HTTP transport; the answer to POST number `lose` (1-based) is lost on the way back
    (DS did create the dossier): the network fault that makes a request's fate unknown."""

    def __init__(self, lose: int):
        super().__init__(timeout=5)
        self.lose, self.count = lose, 0

    async def post(self, url, headers, body):
        answer = await super().post(url, headers, body)
        self.count += 1
        if self.count == self.lose:
            raise NetworkError("connection reset", timeout=False)
        return answer


def _fill_five(lab):
    prepare(lab)
    for i in range(5):
        add_row(lab, {"identite_nom": f"Personne {i}", "identite_genre": "Mme"})


def _assert_never_twice(lab):
    c = ids(lab)
    for row in prefill_rows(lab).values():
        name = row[c["identite_nom"]]
        made = brouillons_named(lab, name)
        assert len(made) <= 1, f"{name}: {len(made)} dossiers"
        if row[c[plan.LINK]]:
            assert [d.token for d in made] == [row[c[plan.TOKEN]]]
        elif not row[c[plan.SENDING]]:
            assert not made, f"{name} has a dossier but no link nor mark"


def test_no_row_is_ever_sent_twice_whatever_grist_call_the_tab_dies_at(lab):
    _fill_five(lab)
    before = lab.sink.calls
    create(lab)
    calls = lab.sink.calls - before
    assert calls > 10
    for k in range(1, calls + 1):
        with Lab(dossiers=2) as fresh:
            fresh.store.procedure(fresh.number).for_individual = True
            _fill_five(fresh)
            start = fresh.sink.calls
            fresh.sink.fail_at = {start + n: RuntimeError("onglet fermé") for n in range(k, calls + 40)}  # dead from call k
            with pytest.raises(Exception):
                create(fresh)
            fresh.sink.fail_at = {}
            result = create(fresh)  # the next run, no confirmation
            _assert_never_twice(fresh)
            c = ids(fresh)
            marked = [r for r in prefill_rows(fresh).values() if r[c[plan.SENDING]]]
            assert len(marked) <= 1 and result.interrupted == [r["id"] for r in marked]
            linked = sum(bool(r[c[plan.LINK]]) for r in prefill_rows(fresh).values())
            assert linked + len(marked) == 5 and fresh.server.prefill.created in (linked, linked + 1)


@pytest.mark.parametrize("lose", [1, 2, 3, 4, 5])
def test_an_answer_lost_on_the_way_back_stops_the_job_and_the_row_waits_for_confirmation(lab, lose):
    _fill_five(lab)
    with pytest.raises(Exception) as stopped:
        create(lab, transport=LosesAnswers(lose))
    assert getattr(stopped.value, "code", "") == "prefill_uncertain" and "Renvoyer malgré l'interruption" in stopped.value.message_fr
    assert lab.history()[-1]["Statut"] == "Échec"
    result = create(lab)
    _assert_never_twice(lab)
    c = ids(lab)
    marked = [r for r in prefill_rows(lab).values() if r[c[plan.SENDING]]]
    assert [r["id"] for r in marked] == result.interrupted and len(marked) == 1
    assert len(brouillons_named(lab, marked[0][c["identite_nom"]])) == 1, "DS did create it: not sent again"
    assert "interrompue" in result.message
    lab.sink.apply_now([["UpdateRecord", lab.table(plan.TABLE_KEY), marked[0]["id"], {c[plan.RESEND]: True}]])
    confirmed = create(lab)
    assert confirmed.created == 1 and not confirmed.interrupted  # the agent chose to send it again


def test_cancel_stops_between_rows_and_a_new_run_resumes(lab):
    _fill_five(lab)
    asked = iter([False, False, True])
    with pytest.raises(Exception) as stopped:
        create(lab, should_cancel=lambda: next(asked, True))
    assert stopped.value.code == "cancelled" and "Préremplissage annulé après 2" in stopped.value.message_fr
    assert lab.history()[-1]["Statut"] == "Annulée"
    result = create(lab)
    assert result.created == 3 and not result.interrupted
    _assert_never_twice(lab)


def _virtual_client(lab, clock):
    return DSClient(lab.server.url, TOKEN, UrllibTransport(timeout=5), progress=Progress(lab.events.append), clock=clock.clock())


def test_pacing_15_per_15_s_with_a_countdown_and_a_429_from_another_agent_waited_out(lab):
    clock = VirtualClock()
    lab.server.prefill.monotonic = clock.now
    prepare(lab)
    for i in range(20):
        add_row(lab, {"identite_nom": f"P{i}"})
    for _ in range(5):  # another agent behind the same relay took 5 of the 15
        lab.server.answer_public("POST", f"/api/public/v1/demarches/{lab.number}/dossiers", "application/json", b"{}")
    result = create(lab, client=_virtual_client(lab, clock))
    assert result.created == 20 and lab.server.prefill.throttled >= 1, "DS answered 429 at least once"
    assert clock.t - 1_000_000 >= 15, "20 + 5 requests need two windows"
    assert any(e["kind"] == "wait" and "15" in e["message"] for e in lab.events), "a countdown was shown"
    _assert_never_twice(lab)


# -- following ---------------------------------------------------------------------------------
def test_following_fills_state_and_date_and_links_the_copied_dossier_once_submitted(lab):
    ready, wrong, with_block, _ = fill_three(lab)
    create(lab)
    c = ids(lab)
    token = prefill_rows(lab)[ready][c[plan.TOKEN]]
    number = prefill_rows(lab)[ready][c[plan.NUMBER]]
    lab.server.prefill.submit(token)
    lab.sync()  # the copy's end follows the prefilled dossiers
    rows = prefill_rows(lab)
    dossier_row = next(r["id"] for r in lab.rows("dossiers") if r["Numero"] == number)
    assert rows[ready][c[plan.STATE]] == "En construction" and rows[ready][c[plan.DEPOSITED]]
    assert rows[ready][c["dossier"]] == dossier_row
    assert rows[with_block][c[plan.STATE]] == "Prérempli" and not rows[with_block][c["dossier"]]
    lab.store.change_state(number, "accepte")
    result = run(job.follow(lab.params(), lab.client(), lab.sink, UrllibTransport(timeout=5)))
    assert result.followed == 1 and prefill_rows(lab)[ready][c[plan.STATE]] == "Accepté"
    del lab.server.prefill.dossiers[prefill_rows(lab)[with_block][c[plan.TOKEN]]]  # unclaimed: DS deleted it after 5 days
    run(job.follow(lab.params(), lab.client(), lab.sink, UrllibTransport(timeout=5)))
    assert prefill_rows(lab)[with_block][c[plan.STATE]] == plan.UNKNOWN


def test_tracking_asks_tokens_in_batches(lab):
    clock = VirtualClock()
    lab.server.prefill.monotonic = clock.now
    prepare(lab)
    for i in range(45):
        add_row(lab, {"identite_nom": f"P{i}"})
    create(lab, client=_virtual_client(lab, clock))
    lab.server.requests.clear()
    run(job.follow(lab.params(), lab.client(), lab.sink, UrllibTransport(timeout=5)))
    gets = [r for r in lab.server.requests if r.method == "GET"]
    assert len(gets) == 2 and all(r.path.count(",") < job.TRACK_BATCH for r in gets)


def test_a_refused_request_creates_nothing_clears_the_mark_and_says_why(lab):
    _fill_five(lab)
    lab.store.procedure(lab.number).state = "close"  # neither published nor in test: DS answers 404
    with pytest.raises(Exception) as stopped:
        create(lab)
    assert stopped.value.code == "prefill_refused" and f"ne trouve pas la démarche n° {lab.number}" in stopped.value.message_fr
    c = ids(lab)
    rows = list(prefill_rows(lab).values())
    assert not any(r[c[plan.SENDING]] for r in rows), "nothing was created: no row waits for a confirmation"
    assert sum("ne trouve pas la démarche" in (r[c[plan.PROBLEMS]] or "") for r in rows) == 1
    lab.store.procedure(lab.number).state = "publiee"
    assert create(lab).created == 5
    _assert_never_twice(lab)


class Blocked(UrllibTransport):
    """What the browser's fetch reports when DS's public API sends no CORS headers: the JSON POST's
    preflight was refused, the POST never left (`NetworkError(cors=True)`)."""

    async def post(self, url, headers, body):
        raise NetworkError("Failed to fetch", cors=True)


def test_a_browser_without_the_relay_is_told_so_and_no_row_waits_for_a_confirmation(lab):
    _fill_five(lab)
    with pytest.raises(Exception) as stopped:
        create(lab, transport=Blocked())
    assert stopped.value.code == "prefill_refused" and "relais" in stopped.value.message_fr
    c = ids(lab)
    assert not any(r[c[plan.SENDING]] for r in prefill_rows(lab).values())
    assert create(lab).created == 5


def test_a_second_agent_meanwhile_is_told_and_sends_nothing(lab):
    _fill_five(lab)
    from py_core.jobs.lease import acquire
    run(acquire(lab.sink, lab.number, "collegue/onglet", lab.clock()))
    with pytest.raises(Exception) as busy:
        create(lab)
    assert busy.value.code == "busy" and lab.server.prefill.posts == 0


class Unreadable(UrllibTransport):
    """DS created the dossier but its 201 answer came back unreadable (a proxy's page)."""

    async def post(self, url, headers, body):
        answer = await super().post(url, headers, body)
        return type(answer)(answer.status, b"<html>ok</html>", answer.headers)


def test_a_201_whose_answer_cannot_be_read_keeps_the_row_marked(lab):
    _fill_five(lab)
    with pytest.raises(Exception) as stopped:
        create(lab, transport=Unreadable(timeout=5))
    assert stopped.value.code == "prefill_uncertain"
    result = create(lab)
    assert len(result.interrupted) == 1 and result.created == 4
    _assert_never_twice(lab)


def test_preparing_before_the_first_sync_leaves_the_copy_whole(lab):
    prepare(lab)  # D<n>_Dossiers made empty (the Ref's target), registered like the copy's
    assert lab.rows("dossiers") == []
    result = lab.sync()
    assert not result.incremental and result.added == len(lab.ds_numbers())
    lab.assert_copy_exact()
    assert lab.registry(plan.TABLE_KEY) and all(r["Dans_le_formulaire"] for r in lab.registry(plan.TABLE_KEY).values())


def test_deleted_link_and_token_columns_stop_the_next_run_once_and_a_formula_is_made_again(lab):
    _fill_five(lab)
    create(lab)
    table, c = lab.table(plan.TABLE_KEY), ids(lab)
    lab.sink.apply_now([["RemoveColumn", table, c[plan.LINK]], ["RemoveColumn", table, c[plan.TOKEN]],
                        ["ModifyColumn", table, c[plan.NUMBER], {"isFormula": True, "formula": "0"}]])
    with pytest.raises(Exception) as stopped:
        create(lab)
    assert stopped.value.code == "prefill_columns_remade" and lab.server.prefill.created == 5
    assert "Lien du dossier prérempli" in stopped.value.message_fr
    assert ids(lab)[plan.NUMBER] != c[plan.NUMBER], "the agent's formula stays theirs; OTP's column is made again"
