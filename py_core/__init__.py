"""One Trick Pony core: Démarches Simplifiées → Grist, pure Python (CPython and Pyodide)."""

__version__ = "0.1.0"
