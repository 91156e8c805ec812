"""The local demo: a real Grist (grist-static) with the widget on a page, and a fake DS.

    python3 -m demo [--port 8480] [--ds-port 8484]

Prints the address to open: the template document (demo/template/OTP-modele.grist) with its
widget pointed at this server's. The widget is prefilled with the demo procedure, the fake DS's
address and a demo token (accepted only by the fake DS), so a newcomer sees a sync at once.
"""

from __future__ import annotations

import argparse
import time
import urllib.parse

from demo.fake_ds.samples import demo_store
from demo.fake_ds.server import FakeDSServer
from demo.serve import StaticServer, default_root_map

DEMO_TOKEN = "jeton-de-demonstration"
TEMPLATE = "/template/OTP-modele.grist"  # the template document (python3 -m demo.make_template)


def main() -> None:
    parser = argparse.ArgumentParser(description="OTP local demo")
    parser.add_argument("--port", type=int, default=8480, help="port of the Grist + widget pages")
    parser.add_argument("--ds-port", type=int, default=8484, help="port of the fake DS")
    args = parser.parse_args()

    store = demo_store()
    ds = FakeDSServer(store, tokens={DEMO_TOKEN: "all"}, cors=True, port=args.ds_port).start()
    pages = StaticServer(default_root_map(), port=args.port).start()
    number = next(iter(store.procedures))
    query = urllib.parse.urlencode({"doc": TEMPLATE, "demarche": number, "endpoint": ds.url, "token": DEMO_TOKEN})
    print("One Trick Pony — démo locale", flush=True)
    print(f"  Ouvrez : {pages.url}/?{query}", flush=True)
    print(f"  DS factice : {ds.url} (démarches {', '.join(map(str, store.procedures))})", flush=True)
    print("  Cliquez sur « Synchroniser » dans le widget. Ctrl+C pour arrêter.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        pages.stop()
        ds.stop()


if __name__ == "__main__":
    main()
