"""Screenshots of what the agent sees in the widget, in its main states.

    python3 -m tests.e2e.screenshots [OUTDIR]      # default /tmp/otp-screenshots

Writes, outside the repository: 01-formulaire-vide.png, 02-connexion-testee.png,
03-synchronisation-en-cours.png, 04-synchronisation-terminee.png, 05-erreur-jeton.png,
06-annulee.png, 07-theme-sombre.png — the widget's frame only, in a Grist-like narrow width
(grist-static in headless Chromium, the fake DS). Prints each file and the form's readiness.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (NUMBER, TOKEN, Host, StaticServer, dossier_pages, ensure_built, launch_chromium,  # noqa: E402
                     make_fake_ds, wait_widget_state)

from demo.fake_ds import sample_procedure  # noqa: E402

BIG = 4242


def _shot(frame, path: Path) -> None:
    frame.frame_element().screenshot(path=str(path))
    print(f"  {path}")


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "/tmp/otp-screenshots").resolve()
    if ROOT in out.parents or out == ROOT:
        print(f"{out} is inside the repository: choose a folder outside it", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    ensure_built()
    from playwright.sync_api import sync_playwright

    with StaticServer() as server, \
            make_fake_ds(dossiers=40, seed=3, expired_tokens=("jeton-expire",), others=[
                dict(number=BIG, dossiers=800, seed=5, title="Aide exceptionnelle aux communes sinistrées")]) as ds, \
            sync_playwright() as pw:
        browser = launch_chromium(pw)
        context = browser.new_context(locale="fr-FR", viewport={"width": 900, "height": 1500})
        page = context.new_page()
        print(f"screenshots -> {out}")

        host = Host(page, server.url).open()
        # A narrow widget, as in a Grist page split in columns.
        page.add_style_tag(content="iframe { max-width: 420px !important; min-height: 1300px !important; }")
        widget = host.wait_widget_ready()
        print(f"  form ready {widget.evaluate('otpWidget.timings.formReady'):.0f} ms after the frame's start")
        _shot(widget, out / "01-formulaire-vide.png")

        widget.evaluate("document.getElementById('advanced').open = true")
        widget.fill("#endpoint", ds.url)
        widget.evaluate("document.getElementById('advanced').open = false")
        widget.fill("#demarche", str(NUMBER))
        widget.fill("#token", TOKEN)
        widget.click("#check")
        wait_widget_state(widget, ("checked", "error"))
        _shot(widget, out / "02-connexion-testee.png")

        widget.fill("#demarche", str(BIG))
        widget.fill("#token", TOKEN)
        ds.delay_next(0.6, count=50, match=dossier_pages)
        widget.click("#sync")
        widget.wait_for_function(
            "() => /dossiers\\/s/.test(document.getElementById('progress-detail').textContent)", timeout=120_000)
        time.sleep(1.0)
        _shot(widget, out / "03-synchronisation-en-cours.png")
        wait_widget_state(widget, ("done", "error"), timeout=300)
        _shot(widget, out / "04-synchronisation-terminee.png")

        widget.fill("#token", "jeton-expire")
        widget.click("#sync")
        wait_widget_state(widget, ("done", "error"), timeout=120)
        _shot(widget, out / "05-erreur-jeton.png")

        # A cancelled sync: a fresh procedure read slowly, « Annuler » after the first page.
        ds.store.add_procedure(sample_procedure(number=NUMBER + 1, dossier_count=350, seed=9))
        widget.fill("#demarche", str(NUMBER + 1))
        widget.fill("#token", TOKEN)
        ds.delay_next(0.8, count=20, match=dossier_pages)
        widget.click("#sync")
        widget.wait_for_function("() => / \\/ /.test(document.getElementById('status').textContent)",
                                 timeout=120_000)
        widget.click("#cancel")
        wait_widget_state(widget, ("cancelled", "done", "error"), timeout=120)
        _shot(widget, out / "06-annulee.png")

        widget.evaluate("document.documentElement.dataset.frTheme = 'dark'")
        widget.fill("#demarche", str(NUMBER))
        widget.click("#check")
        wait_widget_state(widget, ("checked", "error"))
        _shot(widget, out / "07-theme-sombre.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
