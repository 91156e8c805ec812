"""Fixtures for end-to-end tests: grist-static + the built widget in headless Chromium.

Fixtures
    otp_manifest      session  runs build.py (skip with OTP_SKIP_BUILD=1), returns manifest.json
    otp_server        session  StaticServer on 127.0.0.1 (random port): /grist/, /widget/, /
    browser_context   session  one Chromium (persistent profile in a temp dir: disk HTTP cache)
    chromium_browser  session  its Browser object
    other_browser     session  a second Chromium (another agent), launched on demand
    page              function a fresh page
    open_host         function factory: open_host(demarche=None, endpoint=None, token=None,
                               wait_ready=True) -> Host  (query params are passed to the widget)
    host              function open_host() with no parameters, widget ready
    widget            function the widget's Frame of `host`, ready

The fake DS (harness.make_fake_ds: the one factory; harness.TOKEN, harness.NUMBER by default)
    fake_ds           function factory: fake_ds(number=NUMBER, dossiers=30, seed=7, others=(),
                               store=None, token=TOKEN, **server options) -> harness.FakeDS,
                               started on 127.0.0.1, stopped after the test (.endpoint, .token,
                               .number, .store, and every FakeDSServer attribute)
    module_fake_ds    module   the same factory, its servers stopped after the module
    ds                function fake_ds() with the defaults; a module overrides it with its data
                               (at module scope through module_fake_ds)
    store             function ds.store

grist-core (a real Grist server, grist_core.py)
    grist_core        session  the kit's build.sh (once per machine), then run.sh on a free port
                               with a temp data dir; stopped at session end. Kit absent: skip
                               with the reason (fail when CI=true).
    core_doc          function a new grist-core document with the widget on a page (full access)
    open_core_host    function factory like open_host, on core_doc -> grist_core.CoreHost
    open_grist        function parametrized over both: open_host (grist-static) and
                               open_core_host (grist-core); tests written once run on both

Chromium missing: the tests are skipped, unless CI=true (then they fail).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (CHROMIUM, FakeDS, Host, StaticServer, ensure_built, launch_chromium,  # noqa: E402
                     launch_chromium_persistent, make_fake_ds)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing_prerequisite() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright)"
    return None


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    missing = _missing_prerequisite()
    for item in items:
        if here not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.browser)
        if missing and not IN_CI:
            item.add_marker(pytest.mark.skip(reason=f"end-to-end tests skipped: {missing}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def otp_manifest():
    missing = _missing_prerequisite()
    if missing:
        pytest.fail(f"CI=true and {missing}") if IN_CI else pytest.skip(missing)
    return ensure_built()


@pytest.fixture(scope="session")
def otp_server(otp_manifest):
    server = StaticServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def playwright_driver(otp_manifest):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser_context(playwright_driver, tmp_path_factory):
    """One Chromium for the session, with an on-disk profile: like a real browser, its
    HTTP cache keeps pyodide.asm.wasm (9.6 MB, too big for Playwright's in-memory
    cache), so every page after the first loads faster. Each test gets its own page."""
    context = launch_chromium_persistent(playwright_driver, tmp_path_factory.mktemp("chromium-profile"),
                                         locale="fr-FR", viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture(scope="session")
def other_browser(playwright_driver):
    """A second Chromium (another agent's browser: its own cookies and storage), launched
    when a test asks for it; use other_browser.new_context()."""
    browser = launch_chromium(playwright_driver)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def chromium_browser(browser_context):
    """The session's Browser (persistent context's browser; may be None for some
    Playwright versions: prefer browser_context.new_page())."""
    return browser_context.browser


@pytest.fixture
def page(browser_context, request):
    page = browser_context.new_page()
    page.set_default_timeout(60_000)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        host = getattr(request.node, "_otp_host", None)
        if host is not None and host.console:
            print("\n--- browser console (errors/warnings) ---")
            print("\n".join(line[:500] for line in host.console[-40:]))
    page.close()


@pytest.fixture
def open_host(page, otp_server, request):
    def _open(demarche=None, endpoint=None, token=None, wait_ready=True, **extra) -> Host:
        host = Host(page, otp_server.url)
        request.node._otp_host = host
        host.open(demarche=demarche, endpoint=endpoint, token=token, **extra)
        if wait_ready:
            host.wait_widget_ready()
        return host
    return _open


def _say(config, text: str) -> None:
    """A line on the terminal even while pytest captures output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(text, flush=True)


@pytest.fixture(scope="session")
def grist_core(otp_manifest, otp_server, tmp_path_factory, request):
    import grist_core as core
    kit = core.find_kit()
    if kit is None:
        pytest.fail(f"CI=true and {core.kit_missing()}") if IN_CI else pytest.skip(core.kit_missing())
    _say(request.config, f"\ngrist-core: build.sh (kit {kit}; minutes the first time on a machine)…")
    _, seconds = core.build(kit)  # in a session fixture: outside any test's own time
    server = core.GristCoreServer(kit, tmp_path_factory.mktemp("grist-core-data")).start()
    _say(request.config, f"grist-core: built in {seconds:.1f} s, server ready in {server.started_in:.1f} s at {server.url}")
    # The widget of otp_server may be framed by this Grist too (its CSP frame-ancestors and
    # otp-config.json's gristOrigins), as a relay declares it in OTP_GRIST_ORIGINS.
    otp_server.add_grist_origin(server.url)
    yield server
    server.stop()


@pytest.fixture
def core_doc(grist_core, otp_server):
    return grist_core.new_doc(f"{otp_server.url}/widget/index.html")


@pytest.fixture
def open_core_host(page, grist_core, core_doc, request):
    import grist_core as core

    def _open(demarche=None, endpoint=None, token=None, wait_ready=True, email=core.OWNER_EMAIL,
              on_page=None, **extra) -> "core.CoreHost":
        host = core.CoreHost(on_page or page, grist_core, core_doc, email=email)
        request.node._otp_host = host
        host.open(demarche=demarche, endpoint=endpoint, token=token, **extra)
        if wait_ready:
            host.wait_widget_ready()
        return host
    return _open


@pytest.fixture(params=["grist-static", "grist-core"])
def open_grist(request):
    """open_host or open_core_host: the same scenario on grist-static and on grist-core."""
    return request.getfixturevalue("open_host" if request.param == "grist-static" else "open_core_host")


@pytest.fixture
def host(open_host) -> Host:
    return open_host()


@pytest.fixture
def widget(host):
    return host.wait_widget_ready()


def _fake_ds_factory(request):
    def make(**options) -> FakeDS:
        server = make_fake_ds(**options).start()
        request.addfinalizer(server.stop)
        return server
    return make


@pytest.fixture
def fake_ds(request):
    """Factory of started fake DS servers (harness.make_fake_ds's options), stopped after the test."""
    return _fake_ds_factory(request)


@pytest.fixture(scope="module")
def module_fake_ds(request):
    """The same factory for module-scoped fixtures: its servers are stopped after the module."""
    return _fake_ds_factory(request)


@pytest.fixture
def ds(fake_ds) -> FakeDS:
    """The fake DS with the defaults (procedure NUMBER, 30 dossiers, seed 7, TOKEN, CORS)."""
    return fake_ds()


@pytest.fixture
def store(ds):
    """The data of `ds` (the dossiers as DS holds them)."""
    return ds.store
