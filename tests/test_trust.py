"""widget/src/trust.js, the widget's trust rules, run by Node (the module has no DOM): which page
may frame the widget and use the token, which messages it reads, where the token goes unasked.

Every table below is sent to Node in one run; node missing: skipped, unless CI=true.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TRUST = Path(__file__).resolve().parents[1] / "widget" / "src" / "trust.js"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
GRIST = "https://grist.numerique.gouv.fr"
OTHER_GRIST = "https://grist.example.fr"
EVIL = "https://evil.example"
RELAY = "https://otp.example.gouv.fr/api/v2/graphql"

# id, frameVerdict input, expected (trusted, reason, foreign)
FRAMERS = [
    ("declared parent (Chromium)", dict(framed=True, ancestorOrigins=[GRIST], referrer="", allowed=GRIST),
     (True, "ok", [])),
    ("declared parent among several", dict(framed=True, ancestorOrigins=[OTHER_GRIST], referrer="",
                                          allowed=f"{GRIST} {OTHER_GRIST}"), (True, "ok", [])),
    ("list as an array", dict(framed=True, ancestorOrigins=[GRIST], referrer="", allowed=[GRIST]), (True, "ok", [])),
    ("hostile page framed inside Grist", dict(framed=True, ancestorOrigins=[EVIL, GRIST], referrer="", allowed=GRIST),
     (False, "foreign", [EVIL])),
    ("Grist framed inside a hostile page", dict(framed=True, ancestorOrigins=[GRIST, EVIL], referrer="",
                                              allowed=GRIST), (False, "foreign", [EVIL])),
    ("hostile page directly", dict(framed=True, ancestorOrigins=[EVIL], referrer=f"{GRIST}/o/docs/abc",
                                   allowed=GRIST), (False, "foreign", [EVIL])),
    ("same host, other port", dict(framed=True, ancestorOrigins=["https://grist.numerique.gouv.fr:8443"],
                                   referrer="", allowed=GRIST), (False, "foreign", ["https://grist.numerique.gouv.fr:8443"])),
    ("http instead of https", dict(framed=True, ancestorOrigins=["http://grist.numerique.gouv.fr"], referrer="",
                                   allowed=GRIST), (False, "foreign", ["http://grist.numerique.gouv.fr"])),
    ("opaque origin (sandboxed frame)", dict(framed=True, ancestorOrigins=["null"], referrer="", allowed=GRIST),
     (False, "foreign", ["null"])),
    ("no ancestorOrigins: the referrer's origin (Firefox)",
     dict(framed=True, ancestorOrigins=None, referrer=f"{GRIST}/o/docs/abc/Doc?x=1", allowed=GRIST), (True, "ok", [])),
    ("no ancestorOrigins, hostile referrer", dict(framed=True, ancestorOrigins=None, referrer=f"{EVIL}/x",
                                                 allowed=GRIST), (False, "foreign", [EVIL])),
    ("no ancestorOrigins, no referrer", dict(framed=True, ancestorOrigins=None, referrer="", allowed=GRIST),
     (False, "unknown", [])),
    ("no declared origin", dict(framed=True, ancestorOrigins=[GRIST], referrer="", allowed=""), (False, "no-origins", [])),
    ("declared values that are not origins", dict(framed=True, ancestorOrigins=[GRIST], referrer="",
                                                 allowed="* 'self' https://grist.numerique.gouv.fr/o/docs"),
     (False, "no-origins", [])),
    ("not framed", dict(framed=False, ancestorOrigins=[], referrer="", allowed=GRIST), (False, "not-framed", [])),
]

# id, acceptMessage input (source/parent: names of windows), expected
MESSAGES = [
    ("from the parent, with its origin", dict(source="parent", parent="parent", origin=GRIST, expectedOrigin=GRIST), True),
    ("from the parent, other origin (navigated)", dict(source="parent", parent="parent", origin=EVIL,
                                                      expectedOrigin=GRIST), False),
    ("from another window, parent's origin", dict(source="sibling", parent="parent", origin=GRIST,
                                                 expectedOrigin=GRIST), False),
    ("from a child frame", dict(source="child", parent="parent", origin=EVIL, expectedOrigin=GRIST), False),
    ("parent origin unknown", dict(source="parent", parent="parent", origin=GRIST, expectedOrigin=""), False),
    ("no source", dict(source=None, parent="parent", origin=GRIST, expectedOrigin=GRIST), False),
]

CONFIG = dict(relayEndpoint=RELAY, dsHosts=["demarche.numerique.gouv.fr", "www.demarches-simplifiees.fr"],
              dsSite="https://demarche.numerique.gouv.fr")
# id, endpoint, expected trustedDestination
DESTINATIONS = [
    ("the relay's endpoint", RELAY, "relay"),
    ("another path of the relay", "https://otp.example.gouv.fr/api/v2/other", None),
    ("the relay's endpoint with a query", RELAY + "?x=1", None),
    ("the relay's root", "https://otp.example.gouv.fr/", None),
    ("the relay over http", "http://otp.example.gouv.fr/api/v2/graphql", None),
    ("DS", "https://demarche.numerique.gouv.fr/api/v2/graphql", "ds"),
    ("DS's former name", "https://www.demarches-simplifiees.fr/api/v2/graphql", "ds"),
    ("DS over http", "http://www.demarches-simplifiees.fr/api/v2/graphql", None),
    ("a look-alike of DS", "https://demarche.numerique.gouv.fr.evil.example/api/v2/graphql", None),
    ("credentials in the URL", "https://user:pw@demarche.numerique.gouv.fr/api/v2/graphql", None),
    ("another host", "https://evil.example/api/v2/graphql", None),
    ("not a URL", "demarche.numerique.gouv.fr", None),
]

SCRIPT = r"""
const trust = await import(process.argv[1]);
const cases = JSON.parse(await new Promise((resolve) => {
  let text = ''; process.stdin.on('data', (d) => { text += d; }); process.stdin.on('end', () => resolve(text));
}));
const windows = { parent: {}, sibling: {}, child: {} };
const out = {
  framers: cases.framers.map((input) => {
    const v = trust.frameVerdict(input);
    return [v.trusted, v.reason, v.foreign];
  }),
  messages: cases.messages.map((m) => trust.acceptMessage({ ...m, source: windows[m.source] || null,
                                                            parent: windows[m.parent] })),
  destinations: cases.destinations.map((e) => trust.trustedDestination(e, cases.config)),
  parents: cases.parents.map((input) => trust.parentOrigin(input)),
  keys: cases.keys.map(([o, d, n]) => trust.memoryKey(o, d, n)),
  confirmations: cases.confirmations.map((e) => trust.confirmationKey(e)),
  origins: trust.parseOrigins(cases.origins),
};
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def results():
    node = shutil.which("node")
    if node is None:
        pytest.fail("CI=true and node is missing") if IN_CI else pytest.skip("node is not installed")
    cases = {
        "framers": [c[1] for c in FRAMERS], "messages": [c[1] for c in MESSAGES],
        "destinations": [c[1] for c in DESTINATIONS], "config": CONFIG,
        "parents": [{"ancestorOrigins": [GRIST, EVIL], "referrer": ""},
                    {"ancestorOrigins": None, "referrer": f"{OTHER_GRIST}/doc?x"},
                    {"ancestorOrigins": None, "referrer": ""}],
        "keys": [[GRIST, "doc:abc", "123"], [OTHER_GRIST, "doc:abc", "123"], ["", "doc:abc", "123"],
                 [GRIST, "doc:abc", "12a"]],
        "confirmations": ["https://api.example.fr/graphql?x=1#y", "https://api.example.fr/other", "nope"],
        "origins": f" {GRIST}  {OTHER_GRIST}/ {GRIST} 'self' * https://x.fr/path ftp://x.fr http://127.0.0.1:8484 ",
    }
    proc = subprocess.run([node, "--input-type=module", "-e", SCRIPT, TRUST.as_uri()], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("index", range(len(FRAMERS)), ids=[c[0] for c in FRAMERS])
def test_only_declared_grist_servers_may_frame_the_widget(results, index):
    assert tuple(results["framers"][index]) == FRAMERS[index][2]


@pytest.mark.parametrize("index", range(len(MESSAGES)), ids=[c[0] for c in MESSAGES])
def test_plugin_messages_are_read_only_from_the_parent_with_its_origin(results, index):
    assert results["messages"][index] is MESSAGES[index][2]


@pytest.mark.parametrize("index", range(len(DESTINATIONS)), ids=[c[0] for c in DESTINATIONS])
def test_the_token_goes_unasked_only_to_the_relay_endpoint_and_ds(results, index):
    assert results["destinations"][index] == DESTINATIONS[index][2]


def test_the_parent_is_the_first_ancestor_else_the_referrer(results):
    assert results["parents"] == [GRIST, OTHER_GRIST, ""]


def test_the_token_memory_is_keyed_by_grist_origin_document_and_procedure(results):
    assert results["keys"] == [f"otp.demarche:{GRIST} doc:abc:123", f"otp.demarche:{OTHER_GRIST} doc:abc:123",
                               None, None]


def test_a_confirmation_is_for_an_exact_address(results):
    assert results["confirmations"] == ["https://api.example.fr/graphql", "https://api.example.fr/other", ""]


def test_declared_origins_keep_only_plain_origins(results):
    assert results["origins"] == [GRIST, OTHER_GRIST, "http://127.0.0.1:8484"]
