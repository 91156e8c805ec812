"""Fake Démarches Simplifiées GraphQL server for tests and the local demo.

    from demo.fake_ds import FakeDSServer, FakeDSStore, sample_procedure

    store = FakeDSStore([sample_procedure(number=1234, dossier_count=250)])
    with FakeDSServer(store, tokens={"secret": "all"}) as server:
        ...  # POST GraphQL to server.url with "Authorization: Bearer secret"
"""

from .samples import demo_procedures, demo_store, sample_procedure
from .server import FakeDSServer
from .store import FakeDSStore, Procedure, build_champ, champ_descriptor_id, encode_id, make_descriptor

__all__ = [
    "FakeDSServer",
    "FakeDSStore",
    "Procedure",
    "build_champ",
    "champ_descriptor_id",
    "demo_procedures",
    "demo_store",
    "encode_id",
    "make_descriptor",
    "sample_procedure",
]
