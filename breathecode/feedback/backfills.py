"""The syllabus backfill of feedback answers and reviews, declared for the engine."""

from breathecode.utils.backfill import Backfill

from .models import Answer, Review

SYLLABUS_BACKFILLS = {
    model.__name__.lower(): Backfill(
        model,
        "syllabus",
        source="cohort__syllabus_version__syllabus",
        show=("cohort__slug", "syllabus__slug"),
    )
    for model in (Answer, Review)
}
