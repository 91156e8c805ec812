"""The benchmark's procedures (fake DS data): the sample procedure (~30 champs, blocks,
annotations, two revisions) and a wide form (300 champs of everyday types)."""

from __future__ import annotations

import random
from datetime import timedelta

from demo.fake_ds import sample_procedure
from demo.fake_ds.samples import generate_dossier
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
