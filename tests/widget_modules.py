"""The widget's ES modules (widget/src/*.js) as Node imports them: copied into a temporary folder
with constants.js, which build.py generates from py_core/constants.py (it is not in widget/src)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import build

ROOT = Path(__file__).resolve().parents[1]
WIDGET_SRC = ROOT / "widget" / "src"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_DIR: Path | None = None


def modules_dir() -> Path:
    """A folder with widget/src/*.js and the generated constants.js (once per test session)."""
    global _DIR
    if _DIR is None:
        _DIR = Path(tempfile.mkdtemp(prefix="otp-widget-"))
        for path in WIDGET_SRC.glob("*.js"):
            shutil.copy(path, _DIR / path.name)
        (_DIR / build.WIDGET_CONSTANTS_FILE).write_text(build.widget_constants_js())
        (_DIR / "package.json").write_text('{"type": "module"}\n')   # ES modules, no warning
    return _DIR


def module_url(name: str) -> str:
    return (modules_dir() / name).as_uri()


def run_node(script: str, args: list[str], payload) -> dict:
    """Run `script` (an ES module reading JSON on stdin, writing JSON on stdout) with Node."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("CI=true and node is missing") if IN_CI else pytest.skip("node is not installed")
    proc = subprocess.run([node, "--input-type=module", "-e", script, *args], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
