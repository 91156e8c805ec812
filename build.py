#!/usr/bin/env python3
"""Assemble the OTP Grist widget into ``widget/dist/`` (stdlib only).

    python3 build.py            # build (idempotent, fast when cached)
    python3 build.py --check    # verify pinned inputs only, write nothing
    python3 build.py --print-hashes   # show the sha256 of the current inputs
                                      # (to update the pins on purpose)

Inputs, all pinned by sha256 in the tables below:

* the Pyodide core, copied from ``node_modules/pyodide/`` (``npm install``);
* ``grist-plugin-api.js`` from ``node_modules/grist-static/dist/``;
* the few DSFR files the widget uses (CSS, Marianne, icons), from ``node_modules/@gouvfr/dsfr/``;
* third-party wheels, downloaded from PyPI with ``pip download`` and cached in
  ``.cache/wheels/``;
* the ``py_core`` wheel, built here from the repository sources with fixed
  timestamps and a sorted file order, so the same sources give the same bytes;
* the static sources of the widget, ``widget/src/*``.

Output layout::

    widget/dist/index.html style.css *.js (widget/src's modules) grist-plugin-api.js
    widget/dist/constants.js           # generated from py_core/constants.py
    widget/dist/manifest.json          # wheels + sha256 + py_core version
    widget/dist/widget-list.json       # Grist widget gallery entry (OTP_WIDGET_URL sets its url)
    widget/dist/pyodide/               # pyodide.mjs, pyodide.asm.*, stdlib, lock
    widget/dist/wheels/*.whl
    widget/dist/dsfr/                  # core + form components CSS, fonts/, icons/ (DSFR)

The Pyodide lock file is written by us and lists no package: the worker loads
every wheel by absolute URL (``pyodide.loadPackage([...urls])``), so nothing
ever falls back to the CDN named in the stock lock file.

Python bytecode is compiled at build time (``precompile``): the stock
``python_stdlib.zip`` holds only ``.py`` sources, and Python inside the browser
would compile every module it imports at each start (about 2 s of the 3 s
start-up, in WebAssembly). The build runs the pinned Pyodide once in Node
(``node_modules/pyodide``, the same interpreter as the browser's, hence the same
bytecode magic) and writes unchecked hash-based ``.pyc`` files: the shipped
``python_stdlib.zip`` holds ``.pyc`` instead of ``.py``; every wheel gets
``__pycache__/*.cpython-314.pyc`` next to its sources (sources kept, for
tracebacks). Results are cached in ``.cache/pyc/`` by input sha256; without
Node, or if it fails, the build warns and ships the plain files (slower start,
same behaviour). ``OTP_NO_PYC=1`` turns it off.

Any checksum mismatch aborts the build with a message explaining what to do.
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NODE_MODULES = ROOT / "node_modules"
CACHE = ROOT / ".cache"
WIDGET_SRC = ROOT / "widget" / "src"
DIST = ROOT / "widget" / "dist"

# --------------------------------------------------------------------------
# Pins
# --------------------------------------------------------------------------

PYODIDE_VERSION = "314.0.7"
PYODIDE_ABI = "2026_0"
PYODIDE_PYTHON = "3.14.2"
PYODIDE_PLATFORM = "pyemscripten_2026_0_wasm32"

# node_modules/pyodide/<file> -> sha256
PYODIDE_FILES = {
    "pyodide.mjs": "6f1d60f7bf529beb300f0f47983c921d3982363640ba20af0e38efdddbc66109",
    "pyodide.asm.mjs": "f7cdc8ece80678ceb712f8e65ebe6d3a83203a180c399865f49612a051693635",
    "pyodide.asm.wasm": "cc36e3cab04fdfc9a63ff13eb52eae2b911bf46c025cc7b281f394bd3de1d5e6",
    "python_stdlib.zip": "fa1957e5777068fc4f7437f96d860ae2fbe9c19732ba06c84e004ec16dd7dd7a",
}
# The stock lock file is only read (for its "info" block), never shipped.
PYODIDE_STOCK_LOCK_SHA256 = "5dc2fc119108bc148c7457dc86e7675b5c87e1cafd420b9c34c1eaef7b36c010"

GRIST_STATIC_VERSION = "0.1.6"
GRIST_PLUGIN_API_SHA256 = "875d594e5281fe8adc3798faad8c0d6f4a2555d63587a71f0cdeb70230022e03"

# The State's design system (DSFR), node_modules/@gouvfr/dsfr/: only what the widget uses
# (core, the dark scheme's colours, the form components, three weights of Marianne, the four status icons), copied to
# widget/dist/dsfr/ with the same relative paths so the url(...) inside the CSS resolve.
DSFR_VERSION = "1.14.4"
DSFR_FILES = {
    "dist/core/core.main.min.css": "c9734c4f39e093b024d2bea0c78f996dcd3582189d5a3632a878391d65335abf",
    "dist/scheme/scheme.min.css": "57845eeab043ab8c953f34831bee386c224f669dd0af3702836549c41cdd6b8e",
    "dist/component/button/button.main.min.css": "4f2f6bb7f37ac464fc6ced91a8fb3b7640b169c1c081d808f819f442aa8f08e1",
    "dist/component/form/form.main.min.css": "508d28a683b251d066140d4f6d65ec34fac524cf2fbab875c272b62484b6632f",
    "dist/component/input/input.main.min.css": "1c78a9cd0d6cb52bc4a0af771379deb1b6179d685b142d422ec880d708a89630",
    "dist/component/checkbox/checkbox.main.min.css": "9b7087ea8e97c87b7cf33285070a955d1757b7c438e572ca1900deee227a3b9d",
    "dist/component/select/select.main.min.css": "a69d46a2d01722ce460ccda0dbf6f86ed3ba28694adf0ab2e4b16e56ff10ed18",
    "dist/fonts/Marianne-Regular.woff2": "7ce61538d829ac928d226e371c99066f6f697338a4a587d71236e86e39dbb821",
    "dist/fonts/Marianne-Medium.woff2": "bc750a156d8c73e0564197f87d01f6093dfe646a7402bcaed1f6e1e0f5d6c5ab",
    "dist/fonts/Marianne-Bold.woff2": "3f585632ed9bc498bc9fc995f1e7f8851b64ac667b8f8692662fe472bc0f6d65",
    "dist/icons/system/fr--error-fill.svg": "86b989f89f360bca2c58f4dbeab64531af8bea9147a10f590fc3f7171b9579bf",
    "dist/icons/system/fr--success-fill.svg": "5f95ff9be7ee7e6baf914c9ce63896904a0c9cd7a0e9ee79ad6e1407d9cf305e",
    "dist/icons/system/fr--info-fill.svg": "5cbeb3f6f593c75522d66f52a09b55c531fc48028d18aa13563c9bb574570004",
    "dist/icons/system/fr--warning-fill.svg": "ad92b318a907668848ffb334b356248e00ae3c81d246e8a43901ba3d71aabc5d",
    "LICENSE.md": "7871fed250b86ba4f68cf73b8b859fb5e723bfb4378bafb36b6237c0ccbc2c7f",
}

# Third-party wheels: (requirement, file name, sha256, pip platform args)
_EMSCRIPTEN = ["--platform", PYODIDE_PLATFORM, "--python-version", "3.14",
               "--implementation", "cp", "--abi", "cp314"]
_PURE = ["--python-version", "3.14"]
WHEELS = [
    ("pydantic_core==2.50.4",
     "pydantic_core-2.50.4-cp314-cp314-pyemscripten_2026_0_wasm32.whl",
     "e6da138a1ecc1341c8b788a5ee822670b03788e1f5decf7af9d461de6e508b8e", _EMSCRIPTEN),
    ("pydantic==2.14.3",
     "pydantic-2.14.3-py3-none-any.whl",
     "3f7b347782ab7e4cf4c798496ae3a82787d9f21ec12676a9c564355eeef8daa8", _PURE),
    ("typing_extensions==4.16.0",
     "typing_extensions-4.16.0-py3-none-any.whl",
     "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8", _PURE),
    ("annotated_types==0.8.0",
     "annotated_types-0.8.0-py3-none-any.whl",
     "f072f4d804ea359e4eaf198b1af7a8b0943881a87f31bb764f8bf219bb9419e0", _PURE),
    ("typing_inspection==0.4.5",
     "typing_inspection-0.4.5-py3-none-any.whl",
     "bc210535442b39e1bf2805e0c7a17dfd6a4ace760c84c7f7d16245d23a6b1c39", _PURE),
]

# The widget's static sources, copied as they are (ES modules: every script is a file, the CSP allows
# no inline script). constants.js is generated (widget_constants_js), never a source.
WIDGET_SOURCES = [
    "index.html", "style.css",
    "app.js", "state.js", "form.js", "document.js", "memory.js", "storage.js", "progress.js", "messages.js",
    "trust.js", "guard.js", "worker.js", "prefill.js",
]
WIDGET_CONSTANTS_FILE = "constants.js"

# Fixed timestamp for every entry of the py_core wheel (the zip format cannot
# go below 1980-01-01). SOURCE_DATE_EPOCH overrides it, as usual.
_DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z


class BuildError(Exception):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha(path: Path, expected: str, what: str, hint: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise BuildError(
            f"CHECKSUM MISMATCH for {what}\n"
            f"  file:     {path}\n"
            f"  expected: {expected}\n"
            f"  actual:   {actual}\n"
            f"  {hint}"
        )


# --------------------------------------------------------------------------
# Output writer: writes only what changed, remembers what it wrote
# --------------------------------------------------------------------------

class Dist:
    def __init__(self, root: Path, dry_run: bool = False):
        self.root = root
        self.dry_run = dry_run
        self.written: set[Path] = set()
        self.changed = 0

    def _target(self, rel: str) -> Path:
        target = self.root / rel
        self.written.add(target)
        return target

    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self._target(rel)
        if self.dry_run:
            return
        if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        self.changed += 1

    def copy(self, rel: str, src: Path, sha: str) -> None:
        """Copy src (whose sha256 is already verified) unless identical."""
        target = self._target(rel)
        if self.dry_run:
            return
        if target.is_file() and target.stat().st_size == src.stat().st_size \
                and sha256_file(target) == sha:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
        self.changed += 1

    def prune(self) -> list[Path]:
        """Remove files of a previous build that this build did not produce."""
        removed = []
        if self.dry_run or not self.root.exists():
            return removed
        for path in sorted(self.root.rglob("*"), reverse=True):
            if path.is_file() and path not in self.written:
                path.unlink()
                removed.append(path)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return removed


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------

# ---- bytecode, compiled by the pinned Pyodide in Node --------------------------

PYC_FORMAT = 1   # bump when the output format changes (a change of _PYC_PY is in the key already)

# Runs inside Pyodide. stdlib: each .py becomes .pyc (zipimport reads name.pyc first; the
# code's file name is the one zipimport would give, /lib/python314.zip/...). wheel: every
# .py keeps its bytes and gains __pycache__/<name>.<cache_tag>.pyc. Unchecked hash-based
# pycs: Python uses them without looking at the source's mtime (the wheel installer does not
# keep it). Entry order, names, times and attributes come from the input: same input, same
# bytes.
_PYC_PY = r"""
import importlib.util, importlib._bootstrap_external as _be, sys, zipfile

def _pyc(source, filename):
    try:
        code = compile(source, filename, "exec", dont_inherit=True, optimize=0)
    except SyntaxError:   # not a module for this Python (a template, an example): keep the .py
        return None
    return bytes(_be._code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False))

def _copy_info(info, name):
    zi = zipfile.ZipInfo(name, date_time=info.date_time)
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.create_system = info.create_system
    zi.external_attr = info.external_attr
    return zi

def otp_precompile(src, dst, kind):
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            name = info.filename
            is_py = name.endswith(".py") and not info.is_dir()
            if kind == "stdlib" and is_py:
                pyc = _pyc(data, "/lib/python314.zip/" + name)
                if pyc is not None:
                    zout.writestr(_copy_info(info, name + "c"), pyc, compresslevel=9)
                    continue
            zout.writestr(info, data, compresslevel=9)
            if kind == "wheel" and is_py and ".dist-info/" not in name and ".data/" not in name:
                pyc = _pyc(data, name)
                if pyc is not None:
                    folder, _, base = name.rpartition("/")
                    pyc_name = (folder + "/" if folder else "") + f"__pycache__/{base[:-3]}.{tag}.pyc"
                    zout.writestr(_copy_info(info, pyc_name), pyc, compresslevel=9)
"""

_PYC_MJS = r"""
import fs from 'node:fs';
const [pyodideDir, jobsPath, pyCode] = process.argv.slice(2);
const { loadPyodide } = await import(pyodideDir + '/pyodide.mjs');
const py = await loadPyodide({ indexURL: pyodideDir + '/', stdout: () => {}, stderr: (m) => console.error(m) });
py.runPython(fs.readFileSync(pyCode, 'utf8'));
const run = py.globals.get('otp_precompile');
for (const job of JSON.parse(fs.readFileSync(jobsPath, 'utf8'))) {
  py.FS.writeFile('/tmp/in.zip', fs.readFileSync(job.src));
  run('/tmp/in.zip', '/tmp/out.zip', job.kind);
  fs.writeFileSync(job.dst, py.FS.readFile('/tmp/out.zip'));
}
"""


def _pyc_cache_key(kind: str, data: bytes) -> str:
    salt = f"{PYODIDE_VERSION}:{PYODIDE_FILES['pyodide.asm.wasm']}:{PYC_FORMAT}:{sha256_bytes(_PYC_PY.encode())}:{kind}:"
    return sha256_bytes(salt.encode() + sha256_bytes(data).encode())


def precompile(items: list[tuple[str, bytes]]) -> list[bytes]:
    """[(kind 'stdlib'|'wheel', zip bytes)] -> the same archives with compiled bytecode added
    (see _PYC_PY). Cached in .cache/pyc/; one Node run for all the cache misses. On any failure
    (no Node, Pyodide error): a warning and the input bytes, unchanged."""
    if os.environ.get("OTP_NO_PYC") == "1":
        return [data for _, data in items]
    cache = CACHE / "pyc"
    keys = [_pyc_cache_key(kind, data) for kind, data in items]
    missing = [i for i, key in enumerate(keys) if not (cache / f"{key}.zip").is_file()]
    if missing:
        node = shutil.which("node")
        if node is None:
            log("  WARNING: no `node`: Python bytecode not precompiled (the widget starts about 2 s slower)")
            return [data for _, data in items]
        cache.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            tmpdir = Path(tmp)
            jobs = []
            for i in missing:
                kind, data = items[i]
                (tmpdir / f"in{i}.zip").write_bytes(data)
                jobs.append({"kind": kind, "src": str(tmpdir / f"in{i}.zip"), "dst": str(tmpdir / f"out{i}.zip")})
            (tmpdir / "jobs.json").write_text(json.dumps(jobs))
            (tmpdir / "pyc.py").write_text(_PYC_PY)
            (tmpdir / "pyc.mjs").write_text(_PYC_MJS)
            proc = subprocess.run([node, str(tmpdir / "pyc.mjs"), str(NODE_MODULES / "pyodide"),
                                   str(tmpdir / "jobs.json"), str(tmpdir / "pyc.py")],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                log("  WARNING: precompiling Python bytecode failed, shipping sources only "
                    f"(the widget starts about 2 s slower):\n{proc.stderr[-2000:]}")
                return [data for _, data in items]
            for i in missing:
                out = tmpdir / f"out{i}.zip"
                # every precompiled archive must still open and list the input's entries
                with zipfile.ZipFile(out) as zf:
                    if zf.testzip() is not None:
                        raise BuildError(f"precompiled archive {out} is corrupt")
                os.replace(out, cache / f"{keys[i]}.zip")   # atomic: concurrent builds are fine
        log(f"  precompiled Python bytecode for {len(missing)} archive(s) in {time.monotonic() - t0:.1f} s")
    return [(cache / f"{key}.zip").read_bytes() for key in keys]


def step_pyodide(dist: Dist) -> None:
    src_dir = NODE_MODULES / "pyodide"
    pkg = src_dir / "package.json"
    if not pkg.is_file():
        raise BuildError(f"{src_dir} is missing: run `npm ci` (or `npm install`) at the repository root first.")
    version = json.loads(pkg.read_text())["version"]
    if version != PYODIDE_VERSION:
        raise BuildError(f"node_modules/pyodide is version {version}, build.py pins {PYODIDE_VERSION}: "
                         "run `npm ci`, or update the pins in build.py on purpose.")
    hint = "node_modules/pyodide does not match the pinned release: run `npm ci` again."
    for name, sha in PYODIDE_FILES.items():
        src = src_dir / name
        if not src.is_file():
            raise BuildError(f"missing {src}: {hint}")
        check_sha(src, sha, f"pyodide/{name}", hint)
        if name != "python_stdlib.zip":
            dist.copy(f"pyodide/{name}", src, sha)
    stdlib = src_dir / "python_stdlib.zip"
    compiled = precompile([("stdlib", stdlib.read_bytes())])[0]
    dist.write_bytes("pyodide/python_stdlib.zip", compiled)

    stock = src_dir / "pyodide-lock.json"
    check_sha(stock, PYODIDE_STOCK_LOCK_SHA256, "pyodide/pyodide-lock.json (stock)", hint)
    info = json.loads(stock.read_text())["info"]
    if info.get("abi_version") != PYODIDE_ABI or info.get("python") != PYODIDE_PYTHON:
        raise BuildError(f"unexpected Pyodide lock info {info}")
    # Our own lock file: same "info", no packages. Wheels are loaded by URL.
    lock = {"info": info, "packages": {}}
    dist.write_bytes("pyodide/pyodide-lock.json", (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode())


def step_grist_plugin_api(dist: Dist) -> None:
    base = NODE_MODULES / "grist-static"
    pkg = base / "package.json"
    if not pkg.is_file():
        raise BuildError(f"{base} is missing: run `npm ci` at the repository root first.")
    version = json.loads(pkg.read_text())["version"]
    if version != GRIST_STATIC_VERSION:
        raise BuildError(f"node_modules/grist-static is version {version}, build.py pins {GRIST_STATIC_VERSION}.")
    src = base / "dist" / "grist-plugin-api.js"
    check_sha(src, GRIST_PLUGIN_API_SHA256, "grist-plugin-api.js",
              "node_modules/grist-static does not match the pinned release: run `npm ci` again.")
    dist.copy("grist-plugin-api.js", src, GRIST_PLUGIN_API_SHA256)


def step_dsfr(dist: Dist) -> None:
    base = NODE_MODULES / "@gouvfr" / "dsfr"
    pkg = base / "package.json"
    if not pkg.is_file():
        raise BuildError(f"{base} is missing: run `npm ci` at the repository root first.")
    version = json.loads(pkg.read_text())["version"]
    if version != DSFR_VERSION:
        raise BuildError(f"node_modules/@gouvfr/dsfr is version {version}, build.py pins {DSFR_VERSION}.")
    hint = "node_modules/@gouvfr/dsfr does not match the pinned release: run `npm ci` again."
    for rel, sha in DSFR_FILES.items():
        src = base / rel
        if not src.is_file():
            raise BuildError(f"missing {src}: {hint}")
        check_sha(src, sha, f"@gouvfr/dsfr/{rel}", hint)
        dist.copy("dsfr/" + rel.removeprefix("dist/"), src, sha)


def _pip_download(requirement: str, platform_args: list[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", *platform_args, "-d", str(dest), requirement]
    log(f"  pip download {requirement}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"pip download {requirement} failed:\n{proc.stdout}\n{proc.stderr}")


def step_third_party_wheels(dist: Dist) -> list[dict]:
    cache = CACHE / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    entries = []
    pinned: list[tuple[str, str, bytes]] = []
    for requirement, filename, sha, platform_args in WHEELS:
        cached = cache / filename
        if not (cached.is_file() and sha256_file(cached) == sha):
            with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
                _pip_download(requirement, platform_args, Path(tmp))
                got = Path(tmp) / filename
                if not got.is_file():
                    raise BuildError(f"pip download {requirement} did not produce {filename} "
                                     f"(got: {sorted(p.name for p in Path(tmp).iterdir())})")
                check_sha(got, sha, filename,
                          "PyPI served different bytes than the pinned ones: do not update the pin "
                          "without understanding why.")
                os.replace(got, cached)
        check_sha(cached, sha, filename, f"delete {cached} and build again.")
        pinned.append((filename, sha, cached.read_bytes()))
    compiled = precompile([("wheel", data) for _, _, data in pinned])
    for (filename, sha, data), shipped in zip(pinned, compiled):
        dist.write_bytes(f"wheels/{filename}", shipped)
        entry = {"file": filename, "sha256": sha256_bytes(shipped), "size": len(shipped)}
        if shipped != data:
            entry["pypi_sha256"] = sha   # the pinned download; the shipped file adds .pyc files
        entries.append(entry)
    return entries


# ---- py_core wheel ----------------------------------------------------------

def _zipinfo(name: str, epoch: int, executable: bool = False) -> zipfile.ZipInfo:
    date_time = time.gmtime(max(epoch, _DEFAULT_EPOCH))[:6]
    zi = zipfile.ZipInfo(name, date_time=date_time)
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.create_system = 3  # unix
    zi.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
    return zi


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _metadata(project: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    for dep in project.get("dependencies", []):
        lines.append(f"Requires-Dist: {dep}")
    return "\n".join(lines) + "\n"


CLI_ONLY = "py_core/cli/"  # the command line's package: installed by pip, left out of the widget's wheel


def _package_files(pyproject: dict) -> list[tuple[str, Path]]:
    """(archive name, source path) for the declared packages and package data."""
    setuptools_cfg = pyproject.get("tool", {}).get("setuptools", {})
    packages = setuptools_cfg.get("packages", [])
    package_data = setuptools_cfg.get("package-data", {})
    files: dict[str, Path] = {}
    for pkg in packages:
        pkg_dir = ROOT / pkg.replace(".", "/")
        if not pkg_dir.is_dir():
            raise BuildError(f"pyproject.toml declares package {pkg!r} but {pkg_dir} does not exist")
        # Every *.py below the package (sub-packages such as py_core/queries
        # included, even if pyproject only lists the top package), plus the
        # declared package data. Caches and tests stay out.
        for path in pkg_dir.rglob("*.py"):
            rel = path.relative_to(pkg_dir).parts
            if "__pycache__" in rel or rel[0] in ("tests", "test"):
                continue
            if path.relative_to(ROOT).as_posix().startswith(CLI_ONLY):
                continue  # `otp sync` (CPython, httpx): never loaded by the widget
            files[path.relative_to(ROOT).as_posix()] = path
        for pattern in package_data.get(pkg, []):
            for path in pkg_dir.glob(pattern):
                if path.is_file():
                    files[path.relative_to(ROOT).as_posix()] = path
    return sorted(files.items())


def build_py_core_wheel(overlay: Path | None = None) -> tuple[str, bytes, str]:
    """Return (filename, wheel bytes, version). Same sources -> same bytes.

    ``overlay`` (development only): a directory whose *.py files are added to
    (or replace files of) the ``py_core`` package inside the wheel, e.g. a
    stand-in ``widget_entry.py`` while the real one is being written.
    """
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    name, version = project["name"], project["version"]
    dist_name = name.replace("-", "_").replace(".", "_")
    filename = f"{dist_name}-{version}-py3-none-any.whl"
    dist_info = f"{dist_name}-{version}.dist-info"
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", _DEFAULT_EPOCH))

    members: list[tuple[str, bytes]] = []
    sources = dict(_package_files(pyproject))
    if overlay is not None:
        for path in sorted(Path(overlay).rglob("*.py")):
            if "__pycache__" not in path.parts:
                sources["py_core/" + path.relative_to(overlay).as_posix()] = path
    for arcname, path in sorted(sources.items()):
        members.append((arcname, path.read_bytes()))
    top_level = sorted({a.split("/")[0] for a, _ in members if "/" in a})
    members.append((f"{dist_info}/METADATA", _metadata(project).encode()))
    members.append((f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: otp-build.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n").encode()))
    members.append((f"{dist_info}/top_level.txt", ("\n".join(top_level) + "\n").encode()))

    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for arcname, data in members:
        writer.writerow([arcname, _record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    members.append((f"{dist_info}/RECORD", record.getvalue().encode()))

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, data in members:
            zf.writestr(_zipinfo(arcname, epoch), data, compresslevel=9)
    return filename, buf.getvalue(), version


def step_py_core(dist: Dist, overlay: Path | None = None) -> tuple[dict, str]:
    if overlay is not None:
        log(f"  WARNING: py_core overlay from {overlay} (development build, do not ship)")
    filename, data, version = build_py_core_wheel(overlay)
    data = precompile([("wheel", data)])[0]
    dist.write_bytes(f"wheels/{filename}", data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
    if not any(n.endswith("widget_entry.py") for n in names):
        log("  WARNING: the py_core wheel has no py_core/widget_entry.py yet: the widget will report an error.")
    return {"file": filename, "sha256": sha256_bytes(data), "size": len(data)}, version


def step_widget_sources(dist: Dist) -> None:
    for name in WIDGET_SOURCES:
        src = WIDGET_SRC / name
        if not src.is_file():
            raise BuildError(f"missing widget source {src}")
        dist.write_bytes(name, src.read_bytes())
    dist.write_bytes(WIDGET_CONSTANTS_FILE, widget_constants_js().encode())


def widget_constants_js() -> str:
    """constants.js: the values the core and the widget share, from py_core/constants.py (their one
    source, read by path: the package itself is not imported), as ES module exports."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("otp_constants", ROOT / "py_core" / "constants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = ["// Generated by build.py from py_core/constants.py: do not edit (edit that file and rebuild).", ""]
    for name, value in module.WIDGET_CONSTANTS.items():
        text = json.dumps(value, ensure_ascii=False)
        lines.append(f"export const {name} = Object.freeze({text});" if isinstance(value, (dict, list, tuple))
                     else f"export const {name} = {text};")
    return "\n".join(lines) + "\n"


def step_widget_list(dist: Dist) -> None:
    """widget-list.json (the format of betagouv/grist-custom-widgets-fr-admin, which is also
    Grist's GRIST_WIDGET_LIST_URL format), from widget/manifest/widget-list.json. OTP_WIDGET_URL
    (e.g. https://otp.example.gouv.fr/, where widget/dist/ is served) replaces the entry's url."""
    src = ROOT / "widget" / "manifest" / "widget-list.json"
    entries = json.loads(src.read_text())
    url = os.environ.get("OTP_WIDGET_URL", "").strip()
    if url:
        if not url.startswith("https://") and not url.startswith("http://127.0.0.1") \
                and not url.startswith("http://localhost"):
            raise BuildError(f"OTP_WIDGET_URL must be an https:// address, not {url!r}")
        for entry in entries:
            entry["url"] = url
    dist.write_bytes("widget-list.json", (json.dumps(entries, indent=2, ensure_ascii=False) + "\n").encode())


# --------------------------------------------------------------------------

def build(check_only: bool = False, overlay: Path | None = None) -> dict:
    t0 = time.monotonic()
    dist = Dist(DIST, dry_run=check_only)
    log(f"OTP build -> {DIST.relative_to(ROOT)}{' (check only)' if check_only else ''}")
    step_pyodide(dist)
    step_grist_plugin_api(dist)
    step_dsfr(dist)
    wheels = step_third_party_wheels(dist)
    core_entry, core_version = step_py_core(dist, overlay)
    step_widget_sources(dist)
    step_widget_list(dist)
    manifest = {
        "py_core_version": core_version,
        "py_core_wheel": core_entry["file"],
        "pyodide_version": PYODIDE_VERSION,
        "grist_static_version": GRIST_STATIC_VERSION,
        "dsfr_version": DSFR_VERSION,
        # load order does not matter for loadPackage; py_core last for readability
        "wheels": wheels + [core_entry],
    }
    if overlay is not None:
        manifest["py_core_overlay"] = True
    dist.write_bytes("manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    removed = dist.prune()
    for path in removed:
        log(f"  removed stale {path.relative_to(ROOT)}")
    if not check_only:
        total = sum(p.stat().st_size for p in DIST.rglob("*") if p.is_file())
        log(f"OK: {len(dist.written)} files, {total / 1e6:.1f} MB, {dist.changed} written, "
            f"{time.monotonic() - t0:.2f} s")
    else:
        log(f"OK: all pinned inputs verified ({time.monotonic() - t0:.2f} s)")
    return manifest


def print_hashes() -> None:
    for name in PYODIDE_FILES:
        print(f"pyodide/{name} {sha256_file(NODE_MODULES / 'pyodide' / name)}")
    print(f"grist-plugin-api.js {sha256_file(NODE_MODULES / 'grist-static' / 'dist' / 'grist-plugin-api.js')}")
    for rel in DSFR_FILES:
        print(f"@gouvfr/dsfr/{rel} {sha256_file(NODE_MODULES / '@gouvfr' / 'dsfr' / rel)}")
    for _, filename, _, _ in WHEELS:
        cached = CACHE / "wheels" / filename
        print(f"{filename} {sha256_file(cached) if cached.is_file() else '(not cached)'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the pinned inputs, write nothing")
    parser.add_argument("--print-hashes", action="store_true", help="print the sha256 of the inputs")
    parser.add_argument("--py-core-overlay", metavar="DIR", type=Path,
                        default=os.environ.get("OTP_PY_CORE_OVERLAY") or None,
                        help="development only: add DIR/*.py into the py_core package of the wheel "
                             "(env OTP_PY_CORE_OVERLAY)")
    args = parser.parse_args(argv)
    if args.print_hashes:
        print_hashes()
        return 0
    try:
        build(check_only=args.check, overlay=args.py_core_overlay)
    except BuildError as exc:
        print(f"\nBUILD FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
