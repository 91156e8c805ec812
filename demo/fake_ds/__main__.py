"""Run the fake DS server standalone with the demo procedures.

    python -m demo.fake_ds --port 8484 --token demo-token
"""

from __future__ import annotations

import argparse
import time

from .samples import demo_store
from .server import FakeDSServer


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake Démarches Simplifiées GraphQL server")
    parser.add_argument("--port", type=int, default=8484)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default="demo-token", help="bearer token accepted for every procedure")
    parser.add_argument("--no-cors", action="store_true", help="send no CORS headers, like real DS")
    args = parser.parse_args()

    store = demo_store()
    server = FakeDSServer(store, tokens={args.token: "all"}, cors=not args.no_cors,
                          port=args.port, host=args.host).start()
    numbers = ", ".join(str(n) for n in store.procedures)
    print(f"Fake DS GraphQL endpoint: {server.url}", flush=True)
    print(f"Token: {args.token}   Procedures: {numbers}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
