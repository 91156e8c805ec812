"""The widget's gallery entry (widget/manifest/widget-list.json): the format of the French
administration's catalogue (betagouv/grist-custom-widgets-fr-admin, public/widget-list.json),
which is also what Grist reads from GRIST_WIDGET_LIST_URL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "widget" / "manifest" / "widget-list.json"


def test_entry_has_the_catalogue_fields():
    entries = json.loads(SOURCE.read_text())
    assert isinstance(entries, list) and len(entries) == 1
    entry = entries[0]
    for key in ("name", "url", "widgetId", "published", "accessLevel", "renderAfterReady",
                "description", "authors", "lastUpdatedAt"):
        assert key in entry, key
    assert entry["accessLevel"] == "full"
    assert entry["published"] is True and entry["renderAfterReady"] is True
    assert entry["url"].startswith("https://") and entry["url"].endswith("/")
    assert entry["widgetId"].startswith("@") and "/" in entry["widgetId"]
    assert "Démarches Simplifiées" in entry["description"] and "dossiers" in entry["description"]
    assert all({"name", "url"} <= set(a) for a in entry["authors"])
    assert datetime.fromisoformat(entry["lastUpdatedAt"]).tzinfo is not None


def test_build_writes_it_with_the_deployed_url(tmp_path):
    env = {**os.environ, "OTP_WIDGET_URL": "https://relais.exemple.gouv.fr/otp/"}
    try:
        proc = subprocess.run([sys.executable, "build.py"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        built = json.loads((ROOT / "widget" / "dist" / "widget-list.json").read_text())
        assert built[0]["url"] == "https://relais.exemple.gouv.fr/otp/"
        assert {k: v for k, v in built[0].items() if k != "url"} == \
            {k: v for k, v in json.loads(SOURCE.read_text())[0].items() if k != "url"}
        bad = subprocess.run([sys.executable, "build.py"], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "OTP_WIDGET_URL": "http://otp.exemple.fr/"})
        assert bad.returncode == 1 and "https://" in bad.stderr
    finally:
        subprocess.run([sys.executable, "build.py"], cwd=ROOT, capture_output=True)
