"""Pydantic models of what OTP reads from DS (the parts the core reasons about).

Champ values stay plain dicts: their shape depends on the concrete type and is read by the
table-driven encoders in `champ_types`, so one unknown future type never fails validation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Descriptor(_Model):
    typename: str = Field(alias="__typename")
    id: str
    label: str
    description: str | None = None
    required: bool = False
    options: list[str] | None = None
    other_option: bool | None = Field(default=None, alias="otherOption")
    children: list[Descriptor] = Field(default_factory=list, alias="champDescriptors")

    @property
    def kind(self) -> str:
        """`TextChampDescriptor` → `Text`."""
        return self.typename.removesuffix("ChampDescriptor")


class Revision(_Model):
    id: str
    champ_descriptors: list[Descriptor] = Field(alias="champDescriptors")
    annotation_descriptors: list[Descriptor] = Field(alias="annotationDescriptors")


class LabelRef(_Model):
    name: str


class Structure(_Model):
    """The procedure as read by the structure query."""

    number: int
    title: str
    dossiers_count: int | None = None
    labels: list[LabelRef] = Field(default_factory=list)
    revision: Revision

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Structure:
        demarche = data["demarche"]
        descriptor = data.get("demarcheDescriptor") or {}
        return cls(
            number=demarche["number"],
            title=demarche["title"],
            dossiers_count=descriptor.get("dossiersCount"),
            labels=demarche.get("labels") or [],
            revision=demarche["activeRevision"],
        )


class PageInfo(_Model):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: str | None = Field(default=None, alias="endCursor")


class Dossier(_Model):
    """A dossier: the fields the sync logic needs typed; the rest is kept raw for the encoders."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    number: int
    state: str
    date_derniere_modification: str = Field(alias="dateDerniereModification")
    champs: list[dict[str, Any]] = Field(default_factory=list)
    annotations: list[dict[str, Any]] = Field(default_factory=list)

    def raw(self, name: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(name, default)


class DossierPage(_Model):
    page_info: PageInfo = Field(alias="pageInfo")
    nodes: list[Dossier]


class DeletedDossier(_Model):
    number: int
    date_supression: str = Field(alias="dateSupression")
    reason: str
