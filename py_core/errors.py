"""Errors the agent can act on, each with a French message (what happened, what to do).

The message never contains the DS token. `code` is stable, for tests and the sync history.
"""

from __future__ import annotations

RELAY_DOC = "la section « Relais vers l'API DS » du README"


class OTPError(Exception):
    """An error with a message for the agent, in French."""

    code = "error"

    def __init__(self, message_fr: str, *, code: str | None = None, detail: str = ""):
        super().__init__(message_fr)
        self.message_fr = message_fr
        if code:
            self.code = code
        self.detail = detail


class InputError(OTPError):
    code = "input"


class DSError(OTPError):
    """DS answered with an error, or could not be reached."""

    code = "ds"


class DSQueryError(DSError):
    """DS answered, with errors about the query or some of its data (not the network, not the token)."""


class GristWriteError(OTPError):
    code = "grist"


def invalid_number(raw: str) -> InputError:
    if not raw.strip():
        return InputError(
            "Le numéro de démarche est vide. Saisissez le numéro de la démarche, "
            "par exemple 12345 (il figure dans l'adresse de la démarche sur DS).",
            code="demarche_empty",
        )
    return InputError(
        f"« {raw.strip()[:40]} » n'est pas un numéro de démarche. Saisissez un nombre entier, "
        "par exemple 12345 (il figure dans l'adresse de la démarche sur DS).",
        code="demarche_invalid",
    )


def empty_token() -> InputError:
    return InputError(
        "Le jeton d'API est vide. Créez un jeton dans votre profil DS "
        "(menu « Votre profil » → « Jetons d'API ») puis collez-le ici.",
        code="token_empty",
    )


def invalid_endpoint() -> InputError:
    return InputError(
        "L'adresse de l'API n'est pas valide. Elle doit commencer par https:// (ou http:// pour un "
        "relais local), par exemple https://demarche.numerique.gouv.fr/api/v2/graphql.",
        code="endpoint_invalid",
    )


def invalid_filters(detail: str) -> InputError:
    return InputError(
        f"Le filtre des dossiers n'est pas valide ({detail}). Corrigez-le sous « Filtrer les "
        "dossiers », ou videz-le pour copier tous les dossiers.",
        code="filters_invalid",
    )


def token_expired() -> DSError:
    return DSError(
        "Le jeton d'API a expiré ou n'est plus valide. Créez un nouveau jeton dans votre profil DS "
        "(« Jetons d'API ») et saisissez-le à nouveau.",
        code="token_expired",
    )


def token_rejected() -> DSError:
    return DSError(
        "DS ne reconnaît pas ce jeton d'API (jeton erroné, révoqué ou incomplet). Vérifiez que vous "
        "avez copié le jeton en entier, ou créez-en un nouveau dans votre profil DS.",
        code="token_rejected",
    )


def forbidden_network(message: str) -> DSError:
    return DSError(
        "DS refuse ce jeton depuis cette adresse réseau : il est restreint à certains réseaux. "
        "Ajoutez l'adresse du relais aux réseaux autorisés du jeton dans votre profil DS, "
        f"ou passez par le relais de votre organisation (voir {RELAY_DOC}).",
        code="forbidden_network",
        detail=message,
    )


def demarche_not_found(number: int) -> DSError:
    return DSError(
        f"La démarche n° {number} n'existe pas sur ce serveur DS. Vérifiez le numéro "
        "(il figure dans l'adresse de la démarche) et l'adresse de l'API.",
        code="not_found",
    )


def demarche_not_accessible(number: int) -> DSError:
    return DSError(
        f"Ce jeton n'a pas accès à la démarche n° {number}. Utilisez le jeton d'un administrateur "
        "de cette démarche, ou ajoutez la démarche aux démarches couvertes par le jeton.",
        code="unauthorized",
    )


def ds_unreachable(endpoint: str, *, cors: bool) -> DSError:
    if cors:
        return DSError(
            f"Le navigateur a bloqué l'appel à {endpoint} : DS n'autorise pas les appels directs "
            "depuis une page web (en-têtes CORS absents). Passez par le relais de votre organisation "
            f"et saisissez son adresse dans « Adresse de l'API » (voir {RELAY_DOC}).",
            code="cors",
        )
    return DSError(
        f"Impossible de joindre l'API à l'adresse {endpoint}. Vérifiez l'adresse de l'API et votre "
        f"connexion ; si vous passez par un relais, vérifiez qu'il est en service (voir {RELAY_DOC}).",
        code="unreachable",
    )


def ds_too_slow(endpoint: str) -> DSError:
    return DSError(
        f"L'API à l'adresse {endpoint} ne répond plus (aucune réponse en 40 secondes, plusieurs essais). "
        "DS est peut-être surchargé : relancez la synchronisation plus tard, elle reprendra là où elle "
        "s'est arrêtée.",
        code="timeout",
    )


def sync_busy(number: int, since: str, *, scheduled: bool = False) -> OTPError:
    who = ("la synchronisation planifiée (otp sync, sur le serveur du relais)" if scheduled
           else "peut-être dans un autre onglet ou par un collègue")
    return OTPError(
        f"Une synchronisation de la démarche n° {number} est déjà en cours (commencée {since}, "
        f"{who}). Attendez qu'elle se termine, puis relancez si besoin : rien n'a été modifié.",
        code="busy",
    )


def lease_lost(number: int) -> OTPError:
    return OTPError(
        f"Une autre synchronisation de la démarche n° {number} a pris le relais de celle-ci "
        "(elle semblait interrompue). Cette synchronisation s'arrête sans rien écrire de plus ; "
        "l'autre termine le travail.",
        code="lease_lost",
    )


def cancelled() -> OTPError:
    return OTPError(
        "Synchronisation annulée. Le document est cohérent ; la prochaine synchronisation "
        "reprendra là où celle-ci s'est arrêtée.",
        code="cancelled",
    )


def rate_limited(wait_s: int | None) -> DSError:
    when = f"dans {wait_s} secondes" if wait_s else "dans une minute"
    return DSError(
        f"DS limite le nombre de requêtes et demande d'attendre. Relancez la synchronisation {when} : "
        "elle reprendra sans rien perdre.",
        code="rate_limited",
    )


def ds_server_error(status: int, message: str = "") -> DSError:
    return DSError(
        f"DS a répondu par une erreur (code {status}). Réessayez dans quelques minutes ; si l'erreur "
        "persiste, contactez le support de DS en indiquant l'heure de la tentative.",
        code="server_error",
        detail=message,
    )


def ds_query_error(message: str, code: str) -> DSQueryError:
    return DSQueryError(
        f"DS a refusé la requête ({code or 'erreur'} : {message[:200]}). Réessayez ; si l'erreur "
        "persiste, signalez-la à l'équipe OTP avec ce message.",
        code=code or "graphql",
        detail=message,
    )


def ds_bad_response(detail: str) -> DSError:
    return DSError(
        "La réponse reçue n'est pas celle de l'API DS (ce n'est pas du JSON GraphQL). Vérifiez "
        "l'adresse de l'API : elle se termine normalement par /api/v2/graphql.",
        code="bad_response",
        detail=detail,
    )


def grist_write_failed(detail: str, tables: list[str] | None = None) -> GristWriteError:
    where = f" ({', '.join(tables[:5])})" if tables else ""
    if "formula column" in detail.lower():
        cause = ("une colonne d'OTP est devenue une formule pendant la synchronisation : la prochaine "
                 "synchronisation la laissera à vos formules et n'y écrira plus")
    elif any(word in detail.lower() for word in ("access", "permission", "blocked", "no write")):
        cause = ("vos droits, ou les règles d'accès du document, ne permettent pas de modifier ses tables"
                 f"{where} : vérifiez aussi que le widget a l'accès complet au document")
    else:
        cause = f"la modification de ses tables{where} n'a pas été acceptée"
    return GristWriteError(
        f"Grist a refusé l'écriture des données : {cause}. La synchronisation s'est arrêtée là, sans "
        f"rien perdre : relancez-la, elle reprendra où elle en était. Détail : {detail[:300]}",
        code="grist_write",
        detail=detail,
    )


def other_instance(number: int, first: str, now: str) -> InputError:
    return InputError(
        f"La démarche n° {number} de ce document a été copiée depuis une autre instance de DS "
        f"({first}) que celle de l'adresse de l'API saisie ({now}) : ce ne sont pas les mêmes "
        "dossiers, ils ne seront pas mélangés. Reprenez l'adresse de l'API utilisée jusqu'ici, ou "
        "copiez cette démarche dans un autre document.",
        code="other_instance",
    )


# -- prefilling (« Dites-le-nous une fois ») -------------------------------------------------
def prefill_not_prepared(number: int) -> InputError:
    return InputError(
        f"La table de préremplissage de la démarche n° {number} n'existe pas encore : cliquez d'abord sur "
        "« Préparer le préremplissage », remplissez la table, puis créez les dossiers.",
        code="prefill_not_prepared",
    )


def prefill_cancelled(created: int) -> OTPError:
    return OTPError(
        f"Préremplissage annulé après {created} dossier(s) créé(s). Chaque ligne envoyée a son lien ; "
        "relancez « Créer les dossiers préremplis » pour continuer avec les autres lignes.",
        code="cancelled",
    )


def prefill_refused(number: int, status: int, detail: str) -> DSError:
    if status == 0:
        what = ("Le navigateur a bloqué l'appel à l'API de préremplissage de DS (DS n'envoie pas d'en-têtes CORS) : "
                "passez par le relais d'OTP (voir « Relais vers l'API DS » dans le README), dont l'adresse de l'API "
                "est celle du widget. Aucun dossier n'a été créé")
    elif status == 404:
        what = (f"DS ne trouve pas la démarche n° {number} (elle doit être publiée ou en test). Vérifiez "
                "le numéro et l'état de la démarche dans DS, puis relancez")
    else:
        what = (f"DS a refusé la création d'un dossier prérempli (code {status}). Aucun dossier n'a été créé "
                "pour cette ligne ; relancez, et si l'erreur persiste, signalez-la avec ce message")
    return DSError(f"{what}. Détail : {detail[:200]}", code="prefill_refused", detail=detail)


def prefill_uncertain(row_id: int, created: int, why: str) -> DSError:
    return DSError(
        f"La création du dossier de la ligne {row_id} n'a pas reçu de réponse de DS ({why}) : le dossier a "
        "peut-être été créé. Cette ligne est marquée « Envoi commencé le » et ne sera pas renvoyée sans "
        "votre accord (un dossier prérempli que personne ne réclame est supprimé par DS après 5 jours). "
        f"{created} dossier(s) créé(s) avant l'arrêt. Relancez « Créer les dossiers préremplis » pour les "
        "autres lignes ; pour renvoyer celle-ci, cochez « Renvoyer malgré l'interruption » sur sa ligne.",
        code="prefill_uncertain",
    )


def prefill_columns_remade(labels: list[str]) -> InputError:
    return InputError(
        f"Des colonnes d'OTP de la table de préremplissage avaient été supprimées ({', '.join(labels)}) : elles "
        "viennent d'être recréées, vides. OTP ne sait donc plus quelles lignes ont déjà leur dossier, et n'a rien "
        "envoyé. Vérifiez dans DS, retirez (ou marquez) les lignes déjà envoyées, puis cliquez de nouveau sur "
        "« Créer les dossiers préremplis ».",
        code="prefill_columns_remade",
    )
