"""The widget's pure modules, run by Node: constants.js (generated from py_core/constants.py),
progress.js (rate, remaining time, formatting), storage.js (the in-memory fallback), document.js
(the filter as the core records it), trust.js's procedure number; and index.html's filter."""
from __future__ import annotations

import html.parser
import json
from pathlib import Path

import pytest

import build
from py_core import constants
from py_core.errors import forbidden_network, token_expired, token_rejected
from py_core.jobs.params import parse_params
from py_core.plan.filters import Filters, parse_filters
from tests.widget_modules import module_url, run_node

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
const [constants, progress, storage, doc, trust] = await Promise.all(
  process.argv.slice(1).map((url) => import(url)));
const cases = JSON.parse(await new Promise((resolve) => {
  let text = ''; process.stdin.on('data', (d) => { text += d; }); process.stdin.on('end', () => resolve(text));
}));
// A storage that refuses everything (private mode), one that works, one that is missing.
const refusing = { getItem() { throw new Error('no'); }, setItem() { throw new Error('no'); },
                   removeItem() { throw new Error('no'); } };
const working = new Map();
const map = { getItem: (k) => (working.has(k) ? working.get(k) : null), setItem: (k, v) => working.set(k, String(v)),
              removeItem: (k) => working.delete(k) };
const stores = { refusing: storage.createStore(() => refusing), working: storage.createStore(() => map),
                 missing: storage.createStore(() => { throw new Error('SecurityError'); }) };
const storageOut = {};
for (const [name, store] of Object.entries(stores)) {
  const seen = [store.get('a')];
  store.set('a', '{"jeton": "x"}');
  seen.push(store.get('a'), store.getObject('a'));
  const id = storage.keptId(store, 'id', 6);
  seen.push(/^[0-9a-f]{12}$/.test(id), storage.keptId(store, 'id', 6) === id);
  store.remove('a');
  seen.push(store.get('a'), store.getObject('a'));
  storageOut[name] = seen;
}
const out = {
  constants: Object.fromEntries(Object.entries(constants)),
  frozen: Object.isFrozen(constants.DOSSIER_STATES),
  durations: cases.durations.map((s) => progress.formatDuration(s)),
  rates: cases.rates.map((r) => progress.formatRate(r)),
  estimates: cases.estimates.map(([base, done, total, now]) => progress.estimate(base, done, total, now)),
  storage: storageOut,
  storedInWorking: [...working.keys()],
  documentFilters: cases.documentFilters.map((text) => doc.filtersFromDocument(text)),
  active: cases.active.map((f) => doc.filtersActive(f)),
  numbers: cases.numbers.map((n) => trust.validDemarche(n)),
};
process.stdout.write(JSON.stringify(out));
"""

DURATIONS = [(0, "1 s"), (0.4, "1 s"), (59.4, "59 s"), (60, "1 min"), (3569, "59 min"), (3600, "1 h 00"),
             (3930, "1 h 06"), (86400, "24 h 00")]
RATES = [(0.25, "0,3"), (9.96, "10"), (10, "10"), (1234.4, "1\u202f234")]
# (base, done, total, now) -> (base, perSecond, remaining)
ESTIMATES = [
    ((None, 10, 100, 1000), ({"done": 10, "t": 1000}, None, None)),              # the reference point
    (({"done": 10, "t": 1000}, 20, 100, 1400), ({"done": 10, "t": 1000}, None, None)),   # < 0.5 s
    (({"done": 10, "t": 1000}, 30, 100, 3000), ({"done": 10, "t": 1000}, 10, 7)),
    (({"done": 10, "t": 1000}, 30, None, 3000), ({"done": 10, "t": 1000}, 10, None)),    # total unknown
    (({"done": 10, "t": 1000}, 100, 100, 3000), ({"done": 10, "t": 1000}, 45, None)),    # total reached
    (({"done": 50, "t": 1000}, 5, 100, 3000), ({"done": 5, "t": 3000}, None, None)),     # the count went back
    (({"done": 10, "t": 1000}, 10, 100, 9000), ({"done": 10, "t": 1000}, None, None)),   # nothing read
]
NUMBERS = ["1", "12345", "999999999", "1234567890", "0", "000", "12a", "", "-1", "1.5"]
FILTERS = [
    Filters(),
    Filters(states=("accepte", "refuse")),
    Filters(deposited_since="2024-01-31"),
    Filters(groupes=("Nord", "2")),
    Filters(archived="exclude"),
    Filters(states=("en_construction",), deposited_since="2023-05-01", groupes=("Sud",), archived="only"),
]


@pytest.fixture(scope="module")
def results():
    cases = {
        "durations": [d for d, _ in DURATIONS], "rates": [r for r, _ in RATES],
        "estimates": [list(e) for e, _ in ESTIMATES],
        "documentFilters": [f.key() for f in FILTERS] + ["not json", ""],
        "active": [{"states": list(f.states), "deposited_since": f.deposited_since, "groupes": list(f.groupes),
                    "archived": f.archived} for f in FILTERS],
        "numbers": NUMBERS,
    }
    urls = [module_url(n) for n in ("constants.js", "progress.js", "storage.js", "document.js", "trust.js")]
    return run_node(SCRIPT, urls, cases)


def test_constants_js_holds_python_values(results):
    assert results["constants"] == json.loads(json.dumps(constants.WIDGET_CONSTANTS))
    assert results["frozen"]


def test_the_built_constants_js_is_the_generated_one():
    built = ROOT / "widget" / "dist" / build.WIDGET_CONSTANTS_FILE
    if not built.is_file():
        pytest.skip("widget/dist not built")
    assert built.read_text() == build.widget_constants_js()
    assert not (ROOT / "widget" / "src" / build.WIDGET_CONSTANTS_FILE).exists()   # never a source


def test_the_core_uses_the_shared_constants():
    from py_core.plan import filters, schema
    assert filters.STATES == constants.DOSSIER_STATES == tuple(constants.STATE_LABELS)
    assert schema.STATE_LABELS is constants.STATE_LABELS
    assert [f().code for f in (token_expired, token_rejected)] + [forbidden_network("x").code] \
        == list(constants.REJECTED_TOKEN_CODES)
    for archived in constants.ARCHIVED_CHOICES:
        assert parse_filters({"archived": archived}).archived == archived


class _Filter(html.parser.HTMLParser):
    """index.html's filter: the states' check boxes (value -> label) and the archived options."""
    def __init__(self):
        super().__init__()
        self.ids, self.labels, self.archived, self._label, self._in_archives = {}, {}, [], None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and (a.get("id") or "").startswith("f-") and a.get("value"):
            self.ids[a["id"]] = a["value"]
        elif tag == "label" and a.get("for") in self.ids:
            self._label = a["for"]
        elif tag == "select":
            self._in_archives = a.get("id") == "f-archives"
        elif tag == "option" and self._in_archives:
            self.archived.append(a.get("value"))

    def handle_data(self, data):
        if self._label:
            self.labels[self.ids[self._label]] = data.strip()
            self._label = None


def test_index_html_filter_matches_the_constants():
    parser = _Filter()
    parser.feed((ROOT / "widget" / "src" / "index.html").read_text())
    assert parser.labels == constants.STATE_LABELS   # same states, same order, same labels
    assert list(parser.labels) == list(constants.DOSSIER_STATES)
    assert parser.archived == list(constants.ARCHIVED_CHOICES)


@pytest.mark.parametrize("index", range(len(DURATIONS)), ids=[str(d) for d, _ in DURATIONS])
def test_durations(results, index):
    assert results["durations"][index] == DURATIONS[index][1]


def test_rates(results):
    assert results["rates"] == [r for _, r in RATES]


@pytest.mark.parametrize("index", range(len(ESTIMATES)))
def test_rate_and_remaining_time(results, index):
    base, per_second, remaining = ESTIMATES[index][1]
    got = results["estimates"][index]
    assert got["base"] == base
    assert got["perSecond"] == (pytest.approx(per_second) if per_second is not None else None)
    assert got["remaining"] == (pytest.approx(remaining) if remaining is not None else None)


@pytest.mark.parametrize("name", ["refusing", "working", "missing"])
def test_storage_falls_back_to_memory(results, name):
    # get before, get after set, as an object, an id made then kept, get after remove, object after remove
    assert results["storage"][name] == [None, '{"jeton": "x"}', {"jeton": "x"}, True, True, None, {}]


def test_storage_writes_through_when_it_can(results):
    assert results["storedInWorking"] == ["id"]


def test_filter_read_back_from_the_document(results):
    for f, got in zip(FILTERS, results["documentFilters"]):
        expected = {"states": list(f.states), "deposited_since": f.deposited_since, "groupes": list(f.groupes),
                    "archived": f.archived}
        # an inactive filter is recorded as "" (Filters.key): the defaults
        assert got == expected
    assert results["documentFilters"][-2:] == [{}, {"states": [], "deposited_since": "", "groupes": [],
                                                    "archived": "all"}]


def test_filter_active_as_the_core_says(results):
    assert results["active"] == [f.active for f in FILTERS]


def test_the_widget_accepts_the_numbers_the_core_accepts(results):
    for number, accepted in zip(NUMBERS, results["numbers"]):
        try:
            parse_params({"demarche": number, "token": "t", "endpoint": "https://x.fr/api"})
            core = True
        except Exception:
            core = False
        assert accepted is core, number
