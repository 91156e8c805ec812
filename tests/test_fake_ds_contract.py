"""The fake DS server's SDL must be a true subset of the real DS schema."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
    build_schema,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.fake_ds.schema import SCHEMA_PATH  # noqa: E402

REAL_SCHEMA = Path(__file__).resolve().parents[2] / "shared/ds/schema.graphql"

pytestmark = pytest.mark.skipif(
    not REAL_SCHEMA.is_file(),
    reason=f"real DS schema not found at {REAL_SCHEMA} (../shared is absent on a fresh clone)",
)


@pytest.fixture(scope="module")
def schemas():
    fake = build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))
    real = build_schema(REAL_SCHEMA.read_text(encoding="utf-8"))
    return fake, real


def _user_types(schema):
    return {n: t for n, t in schema.type_map.items() if not n.startswith("__")}


def test_every_type_exists_with_same_kind(schemas):
    fake, real = schemas
    for name, ftype in _user_types(fake).items():
        assert name in real.type_map, f"type {name} is not in the real schema"
        assert type(ftype) is type(real.type_map[name]), f"type {name} has another kind"


def test_every_field_matches(schemas):
    fake, real = schemas
    problems = []
    for name, ftype in _user_types(fake).items():
        rtype = real.type_map[name]
        if isinstance(ftype, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for fname, field in ftype.fields.items():
                rfield = rtype.fields.get(fname)
                if rfield is None:
                    problems.append(f"{name}.{fname} missing in real schema")
                    continue
                if str(field.type) != str(rfield.type):
                    problems.append(f"{name}.{fname}: {field.type} != {rfield.type}")
                fargs = {a: str(v.type) for a, v in getattr(field, "args", {}).items()}
                rargs = {a: str(v.type) for a, v in getattr(rfield, "args", {}).items()}
                if fargs != rargs:
                    problems.append(f"{name}.{fname} args {fargs} != {rargs}")
        if isinstance(ftype, (GraphQLObjectType, GraphQLInterfaceType)):
            finterfaces = {i.name for i in ftype.interfaces}
            rinterfaces = {i.name for i in rtype.interfaces}
            if not finterfaces <= rinterfaces:
                problems.append(f"{name} implements {finterfaces - rinterfaces} only in the fake")
        if isinstance(ftype, GraphQLEnumType):
            extra = set(ftype.values) - set(rtype.values)
            if extra:
                problems.append(f"enum {name} has extra values {extra}")
        if isinstance(ftype, GraphQLUnionType):
            extra = {t.name for t in ftype.types} - {t.name for t in rtype.types}
            if extra:
                problems.append(f"union {name} has extra members {extra}")
    assert not problems, "\n".join(problems)


def test_covers_every_champ_and_descriptor_type(schemas):
    fake, real = schemas
    for interface in ("Champ", "ChampDescriptor", "GeoArea", "Demandeur"):
        real_impls = {t.name for t in real.get_possible_types(real.type_map[interface])}
        fake_impls = {t.name for t in fake.get_possible_types(fake.type_map[interface])}
        assert real_impls == fake_impls, f"{interface}: missing {real_impls - fake_impls}"


def test_enums_are_complete(schemas):
    fake, real = schemas
    for name, ftype in _user_types(fake).items():
        if isinstance(ftype, GraphQLEnumType):
            assert set(ftype.values) == set(real.type_map[name].values), name
