"""Start-up path of the widget (issue 12): the build ships precompiled Python bytecode.

The stock ``python_stdlib.zip`` holds only ``.py`` sources: Python in the browser would compile
every module it imports at each start. ``build.py`` (``precompile``) compiles them once with the
pinned Pyodide in Node. These tests fail if the shipped files lose their bytecode, or if Pyodide
stops using it (it would then recompile silently: slower, same behaviour). No timed assertion:
the speed is reported by the benchmark (``python3 -m tests.bench_sync``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "widget" / "dist"
PYC_FLAGS_UNCHECKED_HASH = 1   # PEP 552: hash-based, source not checked


def _flags(pyc: bytes) -> int:
    return int.from_bytes(pyc[4:8], "little")


def test_stdlib_zip_holds_bytecode_not_sources(otp_manifest):
    if os.environ.get("OTP_NO_PYC") == "1":
        pytest.skip("OTP_NO_PYC=1")
    with zipfile.ZipFile(DIST / "pyodide" / "python_stdlib.zip") as zf:
        names = zf.namelist()
        pycs = [n for n in names if n.endswith(".pyc")]
        assert len(pycs) > 400, "python_stdlib.zip has lost its bytecode"
        assert not [n for n in names if n.endswith(".py")][:5]
        assert "pyodide/__init__.pyc" in names and "asyncio/__init__.pyc" in names
        magics = {zf.read(n)[:4] for n in pycs}
        assert len(magics) == 1
        assert {_flags(zf.read(n)) for n in pycs} == {PYC_FLAGS_UNCHECKED_HASH}


def test_every_wheel_carries_bytecode_and_the_manifest_hashes_match(otp_manifest):
    if os.environ.get("OTP_NO_PYC") == "1":
        pytest.skip("OTP_NO_PYC=1")
    for wheel in otp_manifest["wheels"]:
        data = (DIST / "wheels" / wheel["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == wheel["sha256"] and len(data) == wheel["size"]
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            sources = [n for n in names if n.endswith(".py") and ".dist-info/" not in n]
            assert sources, wheel["file"]
            for src in sources:
                folder, _, base = src.rpartition("/")
                pyc = (folder + "/" if folder else "") + f"__pycache__/{base[:-3]}.cpython-314.pyc"
                assert pyc in names, f"{wheel['file']}: no bytecode for {src}"
                assert _flags(zf.read(pyc)) == PYC_FLAGS_UNCHECKED_HASH


# Loads the *shipped* stdlib and wheels in Node's Pyodide (the browser's interpreter), imports
# the widget's entry point and reports where the modules came from.
_NODE_CHECK = r"""
const [pyodideDir, distDir] = process.argv.slice(2);
const { loadPyodide } = await import(pyodideDir + '/pyodide.mjs');
const manifest = JSON.parse((await import('node:fs')).readFileSync(distDir + '/manifest.json', 'utf8'));
const py = await loadPyodide({ indexURL: pyodideDir + '/', stdLibURL: distDir + '/pyodide/python_stdlib.zip',
                               stdout: () => {}, stderr: () => {} });
await py.loadPackage(manifest.wheels.map((w) => distDir + '/wheels/' + w.file), { messageCallback: () => {} });
const out = py.runPython(`
import json, sys, importlib.util
import py_core.widget_entry
def flags(path):
    with open(path, "rb") as f:
        return int.from_bytes(f.read(8)[4:8], "little")
entry = sys.modules["py_core.widget_entry"]
json.dumps({
    "asyncio": sys.modules["asyncio"].__file__,
    "pyodide": sys.modules["pyodide"].__file__,
    "entry_cached": entry.__cached__,
    "entry_flags": flags(entry.__cached__),
    "pydantic_flags": flags(sys.modules["pydantic"].__cached__),
    "entry_source_kept": entry.__file__.endswith(".py"),
})
`);
console.log(out);
"""


def test_pyodide_uses_the_shipped_bytecode(otp_manifest, tmp_path):
    """Stdlib modules come from .pyc in the zip; the wheels' .pyc are read as they are (Python
    would rewrite them as timestamp-based .pyc, flags 0, had it recompiled the sources)."""
    if os.environ.get("OTP_NO_PYC") == "1":
        pytest.skip("OTP_NO_PYC=1")
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node")
    script = tmp_path / "check.mjs"
    script.write_text(_NODE_CHECK)
    proc = subprocess.run([node, str(script), str(ROOT / "node_modules" / "pyodide"), str(DIST)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["asyncio"].endswith("asyncio/__init__.pyc"), found
    assert found["pyodide"].endswith("pyodide/__init__.pyc"), found
    assert found["entry_cached"].endswith("__pycache__/widget_entry.cpython-314.pyc"), found
    assert found["entry_flags"] == PYC_FLAGS_UNCHECKED_HASH, found
    assert found["pydantic_flags"] == PYC_FLAGS_UNCHECKED_HASH, found
    assert found["entry_source_kept"], found
