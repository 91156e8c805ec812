"""Every query OTP sends validates against the real DS schema, and covers every champ type."""

import re

import pytest
from graphql import GraphQLObjectType, build_schema, parse, validate

from py_core.plan.champ_types import KINDS
from py_core.ds.queries import MUTATION_FILES, QUERY_FILES, document
from tests.conftest import DS_SCHEMA

if not DS_SCHEMA.exists():
    pytest.skip(f"DS schema not found at {DS_SCHEMA} (it lives in ../shared beside the repository)", allow_module_level=True)

SCHEMA = build_schema(DS_SCHEMA.read_text(encoding="utf-8"))


def _implementations(interface: str) -> set[str]:
    target = SCHEMA.get_type(interface)
    return {
        name
        for name, t in SCHEMA.type_map.items()
        if isinstance(t, GraphQLObjectType) and target in t.interfaces
    }


@pytest.mark.parametrize("name", [*QUERY_FILES, *MUTATION_FILES.values()])
def test_query_validates_against_ds_schema(name):
    assert validate(SCHEMA, parse(document(name))) == []


def test_dossier_query_has_a_fragment_for_every_concrete_champ_type():
    # DS answers the precise type only when the query has a fragment on it.
    conditions = set(re.findall(r"\.\.\. on (\w+Champ)\b", document("dossiers")))
    assert _implementations("Champ") - conditions == set()


def test_every_descriptor_type_has_a_mapping():
    kinds = {name.removesuffix("ChampDescriptor") for name in _implementations("ChampDescriptor")}
    assert kinds - set(KINDS) == set()


def test_query_depth_is_within_ds_limit():
    # DS rejects queries deeper than 15 levels.
    doc = parse(document("dossiers"))
    fragments = {d.name.value: d for d in doc.definitions if d.kind == "fragment_definition"}

    def expand(selection_set, level=0):
        deepest = level
        for s in selection_set.selections:
            if s.kind == "fragment_spread":
                deepest = max(deepest, expand(fragments[s.name.value].selection_set, level))
            elif s.selection_set is not None:
                deepest = max(deepest, expand(s.selection_set, level + (1 if s.kind == "field" else 0)))
            else:
                deepest = max(deepest, level + (1 if s.kind == "field" else 0))
        return deepest

    operation = next(d for d in doc.definitions if d.kind == "operation_definition")
    assert expand(operation.selection_set) <= 15
