"""Values the core and the widget share: their one source (pure, stdlib only, no import).

The core imports them; ``build.py`` writes them into ``widget/dist/constants.js`` (generated, never
edited by hand), which the widget's modules import; ``tests/test_widget_modules.py`` checks that
file against these values.
"""

from __future__ import annotations

# DS's dossier states (DossierState), in DS's order, with the labels the document and the widget
# show (OTP_Dossiers.Etat, the filter's check boxes).
DOSSIER_STATES = ("en_construction", "en_instruction", "accepte", "refuse", "sans_suite")
STATE_LABELS = {
    "en_construction": "En construction",
    "en_instruction": "En instruction",
    "accepte": "Accepté",
    "refuse": "Refusé",
    "sans_suite": "Classé sans suite",
}

# A procedure number: digits only, at most this many (DS's ids fit in 32 bits).
DEMARCHE_MAX_DIGITS = 9

# The filter of archived dossiers: every one, none, only them (the first is the default).
ARCHIVED_CHOICES = ("all", "exclude", "only")

# The filter as the core records it in OTP_Demarches.Filtres (Filters.key): its params' names
# (the widget's) -> the recorded keys.
FILTER_DOCUMENT_KEYS = {
    "states": "etats",
    "deposited_since": "depot_depuis",
    "groupes": "groupes",
    "archived": "archives",
}

# Error codes (errors.py) for a token DS rejects: the widget forgets it in this browser.
REJECTED_TOKEN_CODES = ("token_expired", "token_rejected", "forbidden_network")

# What build.py writes into constants.js, under these names.
WIDGET_CONSTANTS = {
    "DOSSIER_STATES": DOSSIER_STATES,
    "STATE_LABELS": STATE_LABELS,
    "DEMARCHE_MAX_DIGITS": DEMARCHE_MAX_DIGITS,
    "ARCHIVED_CHOICES": ARCHIVED_CHOICES,
    "FILTER_DOCUMENT_KEYS": FILTER_DOCUMENT_KEYS,
    "REJECTED_TOKEN_CODES": REJECTED_TOKEN_CODES,
}
