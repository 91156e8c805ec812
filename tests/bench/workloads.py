"""The benchmark's procedures (fake DS data): the sample procedure (~30 champs, blocks,
annotations, two revisions), a wide form (300 champs of everyday types), and a skewed one
(the sample's form, 80 % of the dossiers in one state, most deposits in the last weeks)."""

from __future__ import annotations

import random
from datetime import timedelta

from demo.fake_ds import sample_procedure
from demo.fake_ds.samples import DOSSIER_STATES, generate_dossier
from demo.fake_ds.store import iso, make_descriptor, make_revision, parse_iso

WIDE_TYPES = [
    ("TextChampDescriptor", {}),
    ("IntegerNumberChampDescriptor", {}),
    ("DecimalNumberChampDescriptor", {}),
    ("DateChampDescriptor", {"birthdate": False}),
    ("DropDownListChampDescriptor", {"options": ["Oui", "Non", "Peut-être", "Sans objet"], "otherOption": False}),
    ("CheckboxChampDescriptor", {}),
    ("TextareaChampDescriptor", {}),
    ("YesNoChampDescriptor", {}),
    ("EmailChampDescriptor", {}),
    ("PhoneChampDescriptor", {}),
]


def wide_procedure(number: int = 5300, dossier_count: int = 1000, champs: int = 300, seed: int = 7):
    """A procedure whose active (only) revision has `champs` champs and 10 annotations."""
    procedure = sample_procedure(number=number, dossier_count=0, seed=seed,
                                 title=f"Formulaire large ({champs} champs) — banc d'essai")
    base = number % 1000 * 1000 + 100_000
    descriptors = [make_descriptor(t, base + i, f"Question {i + 1}", **extra)
                   for i, (t, extra) in enumerate(WIDE_TYPES[i % len(WIDE_TYPES)] for i in range(champs))]
    annotations = [make_descriptor(t, base + 5000 + i, f"Annotation {i + 1}", **extra)
                   for i, (t, extra) in enumerate(WIDE_TYPES[i % len(WIDE_TYPES)] for i in range(10))]
    revision = make_revision(number * 10 + 3, "2025-06-01T10:00:00+02:00", descriptors, annotations)
    procedure.revisions = [revision]
    rng = random.Random(seed)
    t0, t1 = parse_iso("2025-09-01T08:30:00+02:00"), parse_iso("2026-03-02T07:00:00+01:00")
    span = (t1 - t0).total_seconds()
    moments = sorted(t0 + timedelta(seconds=rng.uniform(0, span)) for _ in range(dossier_count))
    first = number * 10
    for index, moment in enumerate(moments):
        procedure.dossiers[first + index] = generate_dossier(
            procedure, first + index, seed=seed * 1_000_003 + index,
            deposited=iso(moment.replace(microsecond=0)), revision=revision, now=iso(t1))
    return procedure


def sample(number: int = 4242, dossier_count: int = 5000, seed: int = 1):
    return sample_procedure(number=number, dossier_count=dossier_count, seed=seed)


def skewed(number: int = 4343, dossier_count: int = 5000, seed: int = 5, *, share: float = 0.8,
           state: str = "accepte", late: float = 0.6):
    """The sample's form, as real procedures are: `share` of the dossiers in one `state` (the
    others spread over the rest), and `late` of them deposited in the last tenth of the
    period (a campaign's last weeks), so neither states nor deposit dates split them evenly."""
    procedure = sample_procedure(number=number, dossier_count=0, seed=seed,
                                 title="Démarche déséquilibrée (80 % acceptés) — banc d'essai")
    rng = random.Random(seed)
    t0, t1 = parse_iso("2025-09-01T08:30:00+02:00"), parse_iso("2026-03-02T07:00:00+01:00")
    span = (t1 - t0).total_seconds()
    moments = sorted(t0 + timedelta(seconds=span * (rng.uniform(0.9, 1) if rng.random() < late else rng.uniform(0, 0.9)))
                     for _ in range(dossier_count))
    others = [s for s in DOSSIER_STATES if s != state]
    old, active = procedure.revisions
    first = number * 10
    for index, moment in enumerate(moments):
        revision = old if parse_iso(active["dateCreation"]) > moment else active
        chosen = state if rng.random() < share else rng.choice(others)
        procedure.dossiers[first + index] = generate_dossier(
            procedure, first + index, seed=seed * 1_000_003 + index, deposited=iso(moment.replace(microsecond=0)),
            state=chosen, revision=revision, now=iso(t1))
    return procedure
