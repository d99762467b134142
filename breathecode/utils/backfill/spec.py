"""The declarative half of a backfill: which column to fill, and where its value comes from."""

from dataclasses import dataclass
from functools import cached_property

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models


@dataclass(frozen=True)
class Backfill:
    """Fill ``model.field`` where it is NULL with the value found by following ``source``.

    ``source`` is a Django relation path of forward foreign keys whose last step
    points at the same model as ``field``::

        Backfill(Answer, "syllabus", "cohort__syllabus_version__syllabus",
                 show=("cohort__slug", "syllabus__slug"))

    fills ``answer.syllabus_id`` with ``answer.cohort.syllabus_version.syllabus_id``.
    ``show`` names the values printed beside each record in previews; a path
    starting with ``field`` is read through ``source`` (the value it will get).
    Every name is resolved through ``Model._meta``, so table and column names
    are never typed by hand.
    """

    model: type[models.Model]
    field: str
    source: str
    show: tuple[str, ...] = ()

    def __post_init__(self):
        # Resolve eagerly so a typo fails at import time, not halfway through a run.
        self.target_field
        self.source_fields
        for path in self.show:
            self.resolve_shown(path)

    @property
    def name(self) -> str:
        """The model's class name, as records are printed: ``Answer``."""
        return self.model._meta.object_name

    @property
    def plural(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    @cached_property
    def target_field(self) -> models.ForeignKey:
        field = _get_field(self.model, self.field)
        if not (field.many_to_one and field.concrete) or not field.null:
            raise ImproperlyConfigured(
                f"{self.name}.{self.field} must be a nullable ForeignKey: only NULLs are ever filled."
            )
        return field

    @cached_property
    def source_fields(self) -> tuple[models.ForeignKey, ...]:
        fields = resolve_path(self.model, self.source)
        if len(fields) < 2 or not all(f.many_to_one or f.one_to_one for f in fields):
            raise ImproperlyConfigured(
                f"{self.name}: source {self.source!r} must be a chain of at least two forward "
                "foreign keys (for a value on the same row use QuerySet.update(F(...)))."
            )
        if fields[-1].related_model is not self.target_field.related_model:
            raise ImproperlyConfigured(
                f"{self.name}: source {self.source!r} leads to {fields[-1].related_model.__name__}, "
                f"but {self.field} holds {self.target_field.related_model.__name__}."
            )
        return tuple(fields)

    @property
    def path_fields(self) -> tuple[models.Field, ...]:
        """Every column the fill reads or writes, each on its own model."""
        return (self.model._meta.pk, self.target_field, *self.source_fields)

    def resolve_shown(self, path: str) -> list[models.Field]:
        """Fields along a ``show`` path, with a leading ``field`` replaced by ``source``."""
        head, _, rest = path.partition("__")
        if head == self.field:
            path = f"{self.source}__{rest}" if rest else self.source
        return resolve_path(self.model, path)


def resolve_path(model: type[models.Model], path: str) -> list[models.Field]:
    """The fields named by a ``a__b__c`` path, each but the last a forward relation."""
    fields = []
    for name in path.split("__"):
        if fields and not fields[-1].is_relation:
            raise ImproperlyConfigured(f"{path!r}: {fields[-1].name} is not a relation.")
        field = _get_field(model, name)
        if field.is_relation and not (field.many_to_one or field.one_to_one) or not field.concrete:
            raise ImproperlyConfigured(f"{path!r}: {name} must be a concrete forward relation or column.")
        fields.append(field)
        model = field.related_model
    return fields


def _get_field(model: type[models.Model], name: str) -> models.Field:
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        raise ImproperlyConfigured(f"{model._meta.label} has no field {name!r}.") from None
