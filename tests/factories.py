"""Hand-made rows for the tests (every value a test expects is written out beside them),
and small helpers to run the engine and to open a second database session."""

from types import SimpleNamespace

import psycopg
from django.contrib.auth import get_user_model
from django.db import connections

from breathecode.admissions.models import Academy, Cohort, Syllabus, SyllabusVersion
from breathecode.feedback.backfills import SYLLABUS_BACKFILLS
from breathecode.feedback.models import Answer, Review, ReviewPlatform
from breathecode.utils.backfill import Compiler, Runner, dialect_for

ANSWERS = SYLLABUS_BACKFILLS["answer"]


def make_world(alias):
    db = SimpleNamespace(alias=alias)
    academy = Academy.objects.using(alias).create(slug="downtown-miami", name="Miami")
    db.full_stack = Syllabus.objects.using(alias).create(slug="full-stack")
    db.data_science = Syllabus.objects.using(alias).create(slug="data-science")
    db.nameless = Syllabus.objects.using(alias).create(slug=None, name="Legacy")

    def cohort(slug, syllabus):
        version = SyllabusVersion.objects.using(alias).create(syllabus=syllabus, version=1) if syllabus else None
        return Cohort.objects.using(alias).create(
            slug=slug, name=slug, kickoff_date="2024-01-01T00:00:00Z", academy=academy, syllabus_version=version
        )

    db.fs = cohort("miami-web-dev-pt-1", db.full_stack)
    db.ds = cohort("madrid-data-science-ft-2", db.data_science)
    db.nameless_cohort = cohort("santiago-legacy-1", db.nameless)
    db.bare = cohort("miami-prework-7", None)
    db.author = get_user_model().objects.db_manager(alias).create_user("author")
    db.platform = ReviewPlatform.objects.using(alias).create(slug="google", name="Google")
    return db


def answers(db, rows):
    """Create answers from ``{id: (cohort, syllabus)}``."""
    Answer.objects.using(db.alias).bulk_create(
        Answer(id=pk, cohort=cohort, syllabus=syllabus) for pk, (cohort, syllabus) in rows.items()
    )


def reviews(db, rows):
    Review.objects.using(db.alias).bulk_create(
        Review(id=pk, cohort=cohort, syllabus=syllabus, author=db.author, platform=db.platform)
        for pk, (cohort, syllabus) in rows.items()
    )


def syllabus_ids(model, alias):
    """``{id: syllabus_id}`` of every row, read back from the database."""
    return dict(model.objects.using(alias).order_by("pk").values_list("pk", "syllabus_id"))


def runner(alias, dialect=None, **options):
    connection = connections[alias]
    return Runner(Compiler(ANSWERS, dialect or dialect_for(connection)), connection, **options)


def run_all(runner):
    return [event for event in runner.run(runner.plan())]


def second_session(alias):
    s = connections[alias].settings_dict
    return psycopg.connect(
        host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], password=s["PASSWORD"] or None,
        dbname=connections[alias].settings_dict["NAME"], autocommit=True,
    )
