"""End to end: the template document, a first sync, and the pages OTP lays out, seen in Grist.

The template (demo/template/OTP-modele.grist) opens with its widget (pointed at this server's
by the host page); the widget syncs the fake DS; the pages « Dossiers », « Tableau de bord »,
« Historique des synchronisations » are in Grist's page list and show their widgets.
Screenshots of each page go to $OTP_SCREENSHOTS_LAYOUT (default /tmp/otp-screenshots-layout).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import TOKEN
from py_core.grist.layout import DASHBOARD_PAGE, DOSSIERS_PAGE, HISTORY_PAGE

NUMBER = 24680
TEMPLATE = "/template/OTP-modele.grist"
SHOTS = Path(os.environ.get("OTP_SCREENSHOTS_LAYOUT", "/tmp/otp-screenshots-layout"))


def page_names(page) -> list[str]:
    return [t.strip().splitlines()[-1] for t in page.locator(".test-treeview-itemHeader").all_inner_texts()]


def open_page(page, name: str) -> None:
    page.locator(".test-treeview-itemHeader", has_text=name).first.click()
    page.wait_for_timeout(1500)


@pytest.fixture
def ds(fake_ds):
    return fake_ds(number=NUMBER, dossiers=40, seed=11)


def test_template_first_sync_pages(open_host, ds):
    SHOTS.mkdir(parents=True, exist_ok=True)
    host = open_host(doc=TEMPLATE, demarche=NUMBER, endpoint=ds.url, token=TOKEN)
    page = host.page
    assert page_names(page)[0] == "One Trick Pony"
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / "0-modele.png"))

    done = host.sync()
    assert done["state"] == "done", done
    page.wait_for_timeout(1000)
    names = page_names(page)
    assert names == ["One Trick Pony", DOSSIERS_PAGE, DASHBOARD_PAGE, HISTORY_PAGE], names

    open_page(page, DOSSIERS_PAGE)
    titles = [t.strip().upper() for t in page.locator(".test-viewsection-title").all_inner_texts()]
    for title in ("DOSSIERS", "DOSSIER SÉLECTIONNÉ", "CHAMPS", "FICHIERS"):
        assert title in titles, titles
    page.screenshot(path=str(SHOTS / "1-dossiers.png"))
    # another dossier selected: the linked widgets follow it
    page.locator(".gridview_row .record").nth(3).click()
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / "2-dossiers-autre-dossier.png"))

    open_page(page, DASHBOARD_PAGE)
    page.wait_for_selector(".test-chart-container, .js-plotly-plot", timeout=20000)
    assert page.locator(".js-plotly-plot").count() == 4
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "3-tableau-de-bord.png"))

    open_page(page, HISTORY_PAGE)
    page.screenshot(path=str(SHOTS / "4-historique.png"))
