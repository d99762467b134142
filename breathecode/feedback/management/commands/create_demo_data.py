"""Create deterministic demo data for the syllabus backfill, at any size, in seconds."""

from datetime import datetime, timezone

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from breathecode.admissions.models import Academy, Cohort, Syllabus, SyllabusVersion
from breathecode.feedback.models import Answer, Review, ReviewPlatform

from .backfill_feedback_syllabus import BIGINT, check_number

ACADEMIES = [("downtown-miami", "4Geeks Miami"), ("madrid", "4Geeks Madrid"), ("santiago", "4Geeks Chile")]
# slug, name, number of versions. One syllabus has no slug, as some do upstream.
SYLLABI = [
    ("full-stack", "Full-Stack Software Developer", 3),
    ("data-science", "Data Science and Machine Learning", 2),
    ("web-development", "Web Development", 1),
    ("cybersecurity", "Cybersecurity", 1),
    (None, "Legacy syllabus without slug", 1),
]
# slug, academy, syllabus name (None: no syllabus version yet).
COHORTS = [
    ("miami-web-dev-pt-1", "downtown-miami", "Full-Stack Software Developer"),
    ("miami-web-dev-pt-2", "downtown-miami", "Web Development"),
    ("madrid-data-science-ft-1", "madrid", "Data Science and Machine Learning"),
    ("madrid-full-stack-ft-3", "madrid", "Full-Stack Software Developer"),
    ("santiago-cyber-pt-1", "santiago", "Cybersecurity"),
    ("santiago-legacy-1", "santiago", "Legacy syllabus without slug"),
    ("santiago-prework-2", "santiago", None),
    ("miami-prework-7", "downtown-miami", None),
]
PLATFORMS = [("google", "Google"), ("switchup", "SwitchUp"), ("coursereport", "Course Report")]
CREATED = datetime(2024, 1, 15, 12, 0, tzinfo=timezone.utc)


class Command(BaseCommand):
    help = (
        "Replace the admissions and feedback tables' contents with deterministic demo data: "
        "three quarters of the answers and reviews can be backfilled, the rest have no cohort, "
        "a cohort without syllabus version, or a syllabus already set (to the cohort's or another)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--answers", type=int, default=10_000, help="How many answers. Default: 10000.")
        parser.add_argument("--reviews", type=int, help="How many reviews. Default: a tenth of --answers.")
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='The database to fill. Default: "default".',
        )

    def handle(self, *args, **options):
        alias = options["database"]
        for name in ("answers", "reviews"):
            check_number(options, name, low=1, high=BIGINT)
        answers, reviews = options["answers"], options["reviews"] or max(1, options["answers"] // 10)
        try:
            with transaction.atomic(using=alias):
                cohorts = self._reference_data(alias)
                bulk_insert(alias, Answer, answers, cohorts, {"title": "How likely are you to recommend us?",
                                                              "lowest": "not likely", "highest": "very likely",
                                                              "lang": "en", "status": "ANSWERED"})
                author = get_user_model().objects.using(alias).order_by("pk").first()
                bulk_insert(alias, Review, reviews, cohorts, {"status": "PENDING", "is_public": False,
                                                              "author": author.pk, "platform": "google"})
            with connections[alias].cursor() as cursor:
                # Fresh statistics, as a production table has; without them the planner guesses badly.
                for model in (Answer, Review):
                    cursor.execute(f"ANALYZE {connections[alias].ops.quote_name(model._meta.db_table)}")
        except Exception as error:
            raise CommandError(f"Could not create demo data in database '{alias}': {error}") from error
        self.stdout.write(f"Created {answers} answers and {reviews} reviews in database '{alias}'.")

    def _reference_data(self, alias):
        """Academies, syllabi, versions, cohorts, users and platforms; returns cohorts by kind."""
        # Django's own flush SQL: TRUNCATE ... RESTART IDENTITY on PostgreSQL, DELETE and a sequence
        # reset on SQLite, so ids start at 1 every time and a million rows go at once.
        connection = connections[alias]
        tables = [m._meta.db_table for m in (Answer, Review, Cohort, SyllabusVersion, Syllabus, Academy, ReviewPlatform)]
        connection.ops.execute_sql_flush(
            connection.ops.sql_flush(no_style(), tables, reset_sequences=True, allow_cascade=True)
        )
        get_user_model().objects.using(alias).filter(username__startswith="demo-").delete()
        for n in range(3):
            get_user_model().objects.db_manager(alias).create_user(f"demo-student-{n}", f"student{n}@example.com")
        academies = {
            slug: Academy.objects.using(alias).create(slug=slug, name=name) for slug, name in ACADEMIES
        }
        latest = {}
        for slug, name, versions in SYLLABI:
            syllabus = Syllabus.objects.using(alias).create(slug=slug, name=name)
            for version in range(1, versions + 1):
                latest[name] = SyllabusVersion.objects.using(alias).create(syllabus=syllabus, version=version)
        for slug, name in PLATFORMS:
            ReviewPlatform.objects.using(alias).create(slug=slug, name=name)
        return [
            Cohort.objects.using(alias).create(
                slug=slug,
                name=slug.replace("-", " ").title(),
                kickoff_date=CREATED,
                academy=academies[academy],
                syllabus_version=latest[syllabus] if syllabus else None,
            )
            for slug, academy, syllabus in COHORTS
        ]


def bulk_insert(alias, model, count, cohorts, constants):
    """Insert ``count`` rows in one INSERT ... SELECT over a generated sequence.

    Row ``n`` falls in a category by ``n % 16``: 0 no cohort, 4 a cohort
    without syllabus version, 8 syllabus already the cohort's, 12 already
    another syllabus; the other twelve in sixteen can be backfilled.
    """
    connection = connections[alias]
    q, ops = connection.ops.quote_name, connection.ops
    opts = model._meta
    versioned = [c for c in cohorts if c.syllabus_version_id]
    unversioned = [c for c in cohorts if not c.syllabus_version_id]
    syllabus_ids = sorted({c.syllabus_version.syllabus_id for c in versioned})

    def pick(values, name):
        # CASE n % len WHEN 0 THEN %(name_0)s ... END, values bound as parameters.
        params.update({f"{name}_{i}": v for i, v in enumerate(values)})
        whens = " ".join(f"WHEN {i} THEN %({name}_{i})s" for i in range(len(values)))
        return f"CASE n %% {len(values)} {whens} END"

    params = {"count": count, "created": ops.adapt_datetimefield_value(CREATED)}
    cohort = pick([c.pk for c in versioned], "cohort")
    own_syllabus = pick([c.syllabus_version.syllabus_id for c in versioned], "own")
    # The syllabus after the cohort's own in id order: always a different one.
    other_syllabus = pick(
        [syllabus_ids[(syllabus_ids.index(c.syllabus_version.syllabus_id) + 1) % len(syllabus_ids)] for c in versioned],
        "other",
    )
    columns = {opts.get_field(name).column: f"%({name})s" for name in constants}
    params.update(constants)
    columns.update(
        {
            opts.get_field("cohort").column: (
                f"CASE n %% 16 WHEN 0 THEN NULL WHEN 4 THEN {pick([c.pk for c in unversioned], 'bare')} "
                f"ELSE {cohort} END"
            ),
            opts.get_field("syllabus").column: (
                f"CASE n %% 16 WHEN 8 THEN {own_syllabus} WHEN 12 THEN {other_syllabus} ELSE NULL END"
            ),
            opts.get_field("created_at").column: "%(created)s",
            opts.get_field("updated_at").column: "%(created)s",
        }
    )
    sql = (
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %(count)s)\n"
        f"INSERT INTO {q(opts.db_table)} ({', '.join(map(q, columns))})\n"
        f"SELECT {', '.join(columns.values())} FROM seq ORDER BY n"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
