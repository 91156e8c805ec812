"""Make the template document, `demo/template/OTP-modele.grist`, from scratch (reproducible).

    python3 -m demo.make_template [--out demo/template/OTP-modele.grist]

A real Grist (grist-static) in headless Chromium builds a document with one page,
« One Trick Pony »: the OTP custom widget (full document access, no token, its URL a
placeholder to replace with your relay's: see README « Un document modèle ») and the
« Mode d'emploi » in French (a Markdown cell). Then Grist itself writes the `.grist` file
(its « Download » without history). French locale, Europe/Paris time zone.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

from demo.serve import StaticServer, default_root_map

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo" / "template" / "OTP-modele.grist"
PLACEHOLDER_URL = "https://relais-otp.invalid/"  # replaced by the agent (README), or by the demo host

GUIDE = """\
## One Trick Pony : les dossiers d'une démarche dans Grist

1. Dans le widget **One Trick Pony**, saisissez le **Numéro de démarche** et votre **Jeton d'API** \
(sur Démarches Simplifiées : *Mon profil → Jetons d'API*).
2. Cliquez sur **Synchroniser**. OTP crée les tables de la démarche et les pages \
**Dossiers** (la liste, le dossier sélectionné, ses champs, annotations, fichiers et avis) \
et **Tableau de bord** (graphiques).
3. Plus tard, cliquez à nouveau : seuls les dossiers modifiés sont relus.

Le jeton reste dans votre navigateur, jamais dans le document. Vos colonnes, formules et pages \
ne sont jamais modifiées par OTP ; l'historique des synchronisations a sa page.

*Le widget ne s'affiche pas ?* Son adresse doit être celle de votre relais OTP : \
cliquez sur le widget, *Widget → Personnaliser → URL personnalisée*.
"""

BUILD_JS = """
async ({guide, url}) => {
  await otpHost.ready;
  const doc = otpHost.gristDoc();
  const data = doc.docData;
  const rec = (t) => data.getMetaTable(t).getRecords();
  const send = (a) => data.sendActions(a);
  const table = rec('_grist_Tables').find((t) => t.tableId === 'Accueil');
  const view = rec('_grist_Views').find((v) => v.id === table.primaryViewId);
  await send([
    ['RenameColumn', 'Accueil', 'Message', 'Mode_d_emploi'],
    ['UpdateRecord', '_grist_DocInfo', 1, {timezone: 'Europe/Paris',
      documentSettings: JSON.stringify({locale: 'fr-FR', currency: 'EUR'})}],
  ]);
  const col = rec('_grist_Tables_column').find((c) => c.parentId === table.id && c.colId === 'Mode_d_emploi');
  await send([
    ['ModifyColumn', 'Accueil', 'Mode_d_emploi', {label: "Mode d'emploi",
      widgetOptions: JSON.stringify({widget: 'Markdown', wrap: true, alignment: 'left'})}],
    ['UpdateRecord', 'Accueil', 1, {Mode_d_emploi: guide}],
    ['UpdateRecord', '_grist_Views', view.id, {name: 'One Trick Pony'}],
  ]);
  const [w, card] = await send([
    ['CreateViewSection', table.id, view.id, 'custom', null, null],
    ['CreateViewSection', table.id, view.id, 'single', null, null],
  ]);
  const old = rec('_grist_Views_section').filter((s) => s.parentId === view.id
    && s.id !== w.sectionRef && s.id !== card.sectionRef);
  await send([
    ...old.map((s) => ['RemoveViewSection', s.id]),
    ['UpdateRecord', '_grist_Views_section', w.sectionRef, {title: 'One Trick Pony', options: JSON.stringify({
      customView: JSON.stringify({mode: 'url', url, access: 'full', widgetDef: null})})}],
    ['UpdateRecord', '_grist_Views_section', card.sectionRef, {title: "Mode d'emploi"}],
    ['UpdateRecord', '_grist_Views_section', table.rawViewSectionRef, {title: 'Accueil'}],
    ['UpdateRecord', '_grist_Views', view.id, {layoutSpec: JSON.stringify({children: [{children: [
      {leaf: w.sectionRef}, {leaf: card.sectionRef}]}]})}],
  ]);
  const api = doc.docPageModel.appModel.api.getDocAPI(doc.docPageModel.currentDocId.get());
  const content = await window.fetchDownloadContent(api.getDownloadUrl({template: false, removeHistory: true}));
  const bytes = new Uint8Array(content.data instanceof ArrayBuffer ? content.data : content.data.buffer || content.data);
  let text = '';
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return {name: content.name, base64: btoa(text)};
}
"""


def make(out: Path = OUT) -> Path:
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import launch_chromium

    with StaticServer(default_root_map()) as server, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page()
        page.goto(f"{server.url}/?nowidget=1")
        result = page.evaluate(BUILD_JS, {"guide": GUIDE, "url": PLACEHOLDER_URL})
        browser.close()
    data = base64.b64decode(result["base64"])
    if not data.startswith(b"SQLite format 3"):
        raise RuntimeError(f"Grist did not give a .grist file: {result['name']!r}, {data[:40]!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    path = make(parser.parse_args().out)
    print(json.dumps({"template": str(path), "bytes": path.stat().st_size}))


if __name__ == "__main__":
    main()
