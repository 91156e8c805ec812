"""`otp sync`'s configuration (TOML) and its secrets, read apart.

    [grist]
    server = "https://grist.exemple.gouv.fr"
    api_key_file = "grist-api-key"        # a file (relative: under $CREDENTIALS_DIRECTORY), or
    # api_key_env = "OTP_GRIST_API_KEY"   # an environment variable named here

    [ds]
    endpoint = "https://demarche.numerique.gouv.fr/api/v2/graphql"
    token_file = "ds-token"               # default for every procedure (or token_env)

    [[procedure]]
    demarche = 12345
    document = "fTd5zZ9yXq3abcDEF"        # the Grist document id
    token_file = "ds-token-12345"         # optional: this procedure's own token
    keep_deleted = false
    filters = { states = ["en_instruction", "accepte"], deposited_since = "2025-01-01" }

Secrets never sit in the configuration: a key `api_key`, `token` or `password` is refused. A
secret file readable by its group or by others is refused (systemd's `LoadCredential` files are
0400; otherwise `chmod 600`). Errors are `ConfigError`s with a French message.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import errors
from ..jobs.params import SyncParams, parse_params

FORBIDDEN_KEYS = ("api_key", "token", "password", "jeton")
PROCEDURE_KEYS = {"demarche", "document", "token_file", "token_env", "endpoint", "ds_site", "keep_deleted",
                  "filters", "grist_server", "api_key_file", "api_key_env"}


class ConfigError(errors.InputError):
    code = "config"


@dataclass(frozen=True)
class Secret:
    """Where a secret comes from (never its value)."""

    file: str = ""
    env: str = ""

    def describe(self) -> str:
        return f"fichier {self.file}" if self.file else f"variable d'environnement {self.env}"


@dataclass(frozen=True)
class Procedure:
    number: int
    document: str
    grist_server: str
    api_key: Secret
    token: Secret
    options: dict[str, Any] = field(default_factory=dict)  # endpoint, ds_site, keep_deleted, filters

    @property
    def label(self) -> str:
        return f"démarche n° {self.number} → document {self.document}"

    def params(self, token: str, holder: str) -> SyncParams:
        """The same parameters the widget gives the core (validated the same way)."""
        return parse_params({"demarche": str(self.number), "token": token, "holder": holder, "scheduled": True,
                             **self.options})


@dataclass(frozen=True)
class Config:
    path: str
    procedures: list[Procedure]


def load_config(path: str) -> Config:
    """Read and check the file; raise `ConfigError` (French) for anything wrong in it."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Fichier de configuration introuvable : {path}.", code="config_missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Fichier de configuration illisible : {path} ({error}).", code="config_unreadable") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"Configuration {path} mal formée (TOML) : {error}.", code="config_malformed") from None
    _refuse_inline_secrets(raw, path)
    grist, ds = _table(raw, "grist", path), _table(raw, "ds", path)
    items = raw.get("procedure")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"Configuration {path} : aucune démarche (ajoutez au moins une section [[procedure]]).",
                          code="config_empty")
    return Config(path, [_procedure(item, grist, ds, path, i) for i, item in enumerate(items, 1)])


def _table(raw: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"Configuration {path} : [{name}] doit être une section.", code="config_malformed")
    return value


def _refuse_inline_secrets(raw: Any, path: str, where: str = "") -> None:
    if isinstance(raw, dict):
        for key, value in raw.items():
            if key.lower() in FORBIDDEN_KEYS:
                raise ConfigError(
                    f"Configuration {path} : la clé « {where}{key} » contiendrait un secret. Les secrets ne "
                    "s'écrivent jamais dans la configuration : utilisez « api_key_file » / « token_file » "
                    "(fichier 0600 ou identifiant systemd) ou « api_key_env » / « token_env ».",
                    code="config_secret_inline")
            _refuse_inline_secrets(value, path, f"{where}{key}.")
    elif isinstance(raw, list):
        for item in raw:
            _refuse_inline_secrets(item, path, where)


def _procedure(item: Any, grist: dict[str, Any], ds: dict[str, Any], path: str, index: int) -> Procedure:
    where = f"Configuration {path}, démarche n° {index} de la liste"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} : [[procedure]] doit être une section.", code="config_malformed")
    unknown = sorted(set(item) - PROCEDURE_KEYS)
    if unknown:
        raise ConfigError(f"{where} : clé inconnue « {unknown[0]} ».", code="config_malformed")
    number, document = str(item.get("demarche") or "").strip(), str(item.get("document") or "").strip()
    if not number.isdigit() or not document:
        raise ConfigError(f"{where} : « demarche » (un numéro) et « document » (l'identifiant du document Grist) "
                          "sont obligatoires.", code="config_malformed")
    server = str(item.get("grist_server") or grist.get("server") or "").strip().rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise ConfigError(f"{where} : l'adresse du serveur Grist ([grist] server) doit commencer par https://.",
                          code="config_malformed")
    options = {"endpoint": item.get("endpoint") or ds.get("endpoint") or "", "ds_site": item.get("ds_site") or ds.get("site") or "",
               "keep_deleted": bool(item.get("keep_deleted", ds.get("keep_deleted", False))), "filters": item.get("filters")}
    api_key = _secret(item, grist, "api_key", f"{where} (clé d'API Grist)")
    token = _secret(item, ds, "token", f"{where} (jeton DS)")
    procedure = Procedure(int(number), document, server, api_key, token, options)
    try:
        procedure.params("x", "x")  # the same checks as the widget's (number, endpoint, filters)
    except errors.InputError as error:
        raise ConfigError(f"{where} (n° {number}) : {error.message_fr}", code=error.code) from None
    return procedure


def _secret(item: dict[str, Any], section: dict[str, Any], name: str, what: str) -> Secret:
    keys = (f"{name}_file", f"{name}_env")
    source = item if any(k in item for k in keys) else section  # the procedure's own, or the default
    file, env = (str(source.get(k) or "").strip() for k in keys)
    if bool(file) == bool(env):
        raise ConfigError(f"{what} : indiquez soit « {keys[0]} » soit « {keys[1]} » (un seul des deux).",
                          code="config_malformed")
    return Secret(file=file, env=env)


def read_secret(secret: Secret, environ: dict[str, str] | None = None) -> str:
    """The secret's value; `ConfigError` if absent, empty, or in a file others can read."""
    environ = os.environ if environ is None else environ
    if secret.env:
        value = environ.get(secret.env, "").strip()
        if not value:
            raise ConfigError(f"La variable d'environnement {secret.env} est absente ou vide.", code="secret_missing")
        return value
    path = Path(secret.file)
    if not path.is_absolute():
        path = Path(environ.get("CREDENTIALS_DIRECTORY", ".")) / path
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"Le fichier secret {path} est lisible par d'autres utilisateurs "
                              f"(droits {stat.filemode(mode)}) : refusé. Faites « chmod 600 {path} ».",
                              code="secret_exposed")
        value = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"Fichier secret illisible : {path} ({error.strerror}).", code="secret_missing") from None
    if not value:
        raise ConfigError(f"Le fichier secret {path} est vide.", code="secret_missing")
    return value
