"""Pydantic models of what OTP reads from DS (the parts the core reasons about).

Champ values stay plain dicts: their shape depends on the concrete type and is read by the
table-driven encoders in `champ_types`, so one unknown future type never fails validation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    in_form: bool = True  # OTP's: False for a champ only older revisions have
    older_kinds: list[str] = Field(default_factory=list)  # OTP's: other kinds older revisions gave this champ

    @property
    def mixed(self) -> bool:
        return bool(self.older_kinds)


    @property
    def kind(self) -> str:
        """`TextChampDescriptor` → `Text`."""
        return self.typename.removesuffix("ChampDescriptor")


class Revision(_Model):
    id: str
    date_publication: str | None = Field(default=None, alias="datePublication")
    champ_descriptors: list[Descriptor] = Field(alias="champDescriptors")
    annotation_descriptors: list[Descriptor] = Field(alias="annotationDescriptors")


def merge_descriptors(active: list[Descriptor], older: list[list[Descriptor]]) -> list[Descriptor]:
    """The active revision's descriptors, then those only older revisions have (newest first),
    marked `in_form=False`: dossiers filed on those revisions still carry their values. A champ
    whose type differs between revisions is marked `mixed` (dossiers on an older revision carry
    the older type's value). Blocks merge their sub-champs the same way."""
    merged: dict[str, Descriptor] = {}
    for rank, descriptors in enumerate([active, *older]):
        for descriptor in descriptors:
            known = merged.get(descriptor.id)
            if known is None:
                children = merge_descriptors(descriptor.children, []) if rank == 0 else [
                    c.model_copy(update={"in_form": False}) for c in descriptor.children]
                merged[descriptor.id] = descriptor.model_copy(update={"in_form": rank == 0, "children": children})
                continue
            update: dict[str, Any] = {}
            if descriptor.typename != known.typename and descriptor.kind not in known.older_kinds:
                update["older_kinds"] = [*known.older_kinds, descriptor.kind]
            if descriptor.children:
                update["children"] = _merge_children(known.children, descriptor.children)
            if update:
                merged[descriptor.id] = known.model_copy(update=update)
    return list(merged.values())


def _merge_children(known: list[Descriptor], older: list[Descriptor]) -> list[Descriptor]:
    by_id = {c.id: c for c in known}
    for child in older:
        if child.id not in by_id:
            by_id[child.id] = child.model_copy(update={"in_form": False})
        elif child.typename != by_id[child.id].typename and child.kind not in by_id[child.id].older_kinds:
            by_id[child.id] = by_id[child.id].model_copy(update={"older_kinds": [*by_id[child.id].older_kinds, child.kind]})
    return list(by_id.values())


class LabelRef(_Model):
    name: str
    id: str = ""


class Instructeur(_Model):
    id: str
    email: str


class Groupe(_Model):
    id: str
    label: str
    closed: bool = False
    instructeurs: list[Instructeur] = Field(default_factory=list)


class Staff(_Model):
    """Who may send to a procedure (its groupes' instructeurs) and its labels' ids."""

    number: int
    labels: list[LabelRef] = Field(default_factory=list)
    groupes: list[Groupe] = Field(default_factory=list, alias="groupeInstructeurs")

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Staff:
        return cls.model_validate(data["demarche"])

    def emails(self) -> list[str]:
        return sorted({i.email for g in self.groupes for i in g.instructeurs})

    def instructeur(self, email: str) -> Instructeur | None:
        return next((i for g in self.groupes for i in g.instructeurs if i.email == email), None)

    def groupes_of(self, email: str) -> set[str]:
        """The labels of the groupes `email` instructs in."""
        return {g.label for g in self.groupes if any(i.email == email for i in g.instructeurs)}


class Structure(_Model):
    """The procedure as read by the structure query."""

    number: int
    title: str
    id: str = ""  # DS's global id of the procedure
    date_creation: str | None = None
    dossiers_count: int | None = None
    state: str | None = None  # publiee, close, depubliee, brouillon
    for_individual: bool = False  # dossiers of individuals (prefilling: identity columns)
    labels: list[LabelRef] = Field(default_factory=list)
    revision: Revision  # the active one
    revisions: list[Revision] = Field(default_factory=list)  # every published one

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Structure:
        demarche = data["demarche"]
        descriptor = data.get("demarcheDescriptor") or {}
        return cls(
            number=demarche["number"],
            title=demarche["title"],
            id=demarche.get("id") or "",
            date_creation=demarche.get("dateCreation"),
            dossiers_count=descriptor.get("dossiersCount"),
            state=descriptor.get("state"),
            for_individual=bool(descriptor.get("forIndividual")),
            labels=demarche.get("labels") or [],
            revision=demarche["activeRevision"],
            revisions=demarche.get("revisions") or [],
        )

    @property
    def instance(self) -> str:
        """What tells this procedure from one of the same number on another DS instance (see
        `jobs.copy.check_instance`): its id and creation date, as DS reports them — the same through
        a relay as directly."""
        return f"{self.id}|{self.date_creation or ''}"

    def _older(self) -> list[Revision]:
        older = [r for r in self.revisions if r.id != self.revision.id]
        return sorted(older, key=lambda r: r.date_publication or "", reverse=True)

    @property
    def champ_descriptors(self) -> list[Descriptor]:
        """Union over every published revision (see `merge_descriptors`)."""
        return merge_descriptors(self.revision.champ_descriptors, [r.champ_descriptors for r in self._older()])

    @property
    def annotation_descriptors(self) -> list[Descriptor]:
        return merge_descriptors(self.revision.annotation_descriptors, [r.annotation_descriptors for r in self._older()])


class PageInfo(_Model):
    has_next_page: bool = Field(alias="hasNextPage")
    end_cursor: str | None = Field(default=None, alias="endCursor")


class Dossier(_Model):
    """A dossier: the fields the sync logic needs typed; the rest is kept raw for the encoders."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    number: int
    state: str
    date_derniere_modification: str = Field(alias="dateDerniereModification")
    champs: list[Any] = Field(default_factory=list)  # dicts, as DS sent them (see `_objects`)
    annotations: list[Any] = Field(default_factory=list)

    @field_validator("champs", "annotations")
    @classmethod
    def _objects(cls, value: list[Any]) -> list[Any]:
        """Each champ an object, kept as it came: validated as `dict[str, Any]`, a page's
        thousands of champs were copied key by key (a tenth of reading a page)."""
        if not all(isinstance(c, dict) for c in value):
            raise ValueError("champ that is not an object")
        return value

    def raw(self, name: str, default: Any = None) -> Any:
        """A field as DS named it (typed fields too: `dateDerniereModification`)."""
        extra = self.model_extra or {}
        if name in extra:
            return extra[name]
        field_name = _FIELD_BY_ALIAS.get(name)
        return getattr(self, field_name) if field_name else default


_FIELD_BY_ALIAS = {(f.alias or n): n for n, f in Dossier.model_fields.items()}


class DeletedDossier(_Model):
    number: int
    date_supression: str = Field(alias="dateSupression")
    reason: str
