"""Write sql/, the psql scripts of the syllabus backfill, from the engine's compiler."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from breathecode.feedback.backfills import SYLLABUS_BACKFILLS
from breathecode.utils.backfill.psql import Scripts
from breathecode.utils.backfill.render import offline_postgresql

GENERATOR = "python manage.py generate_backfill_sql"
COMMAND = "python manage.py backfill_feedback_syllabus"


def scripts() -> dict[str, str]:
    """``{file name: text}`` of every script, for PostgreSQL; needs no database."""
    return Scripts(SYLLABUS_BACKFILLS, offline_postgresql(), generator=GENERATOR, command=COMMAND).files()


class Command(BaseCommand):
    help = (
        "Write the psql scripts of the syllabus backfill (backfill, preview, verification and a "
        "least-privilege role) for PostgreSQL, from the same compiler the command uses. "
        "Needs no database connection."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            type=Path,
            default=Path(settings.BASE_DIR) / "sql",
            help="The folder to write the scripts to. Default: sql/ in the project.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing; exit with an error if the folder differs from what would be written.",
        )

    def handle(self, *args, **options):
        folder = options["output"]
        files = scripts()
        if options["check"]:
            stale = [name for name, text in files.items() if _read(folder / name) != text]
            if stale:
                raise CommandError(f"{', '.join(stale)} in {folder} are out of date; run: {GENERATOR}")
            return
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
            if options["verbosity"] >= 1:
                self.stdout.write(f"Wrote {folder / name}")


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
