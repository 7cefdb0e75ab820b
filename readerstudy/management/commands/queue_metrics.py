"""`manage.py queue_metrics [--study SLUG]... [--all]`: queue what is missing or out of date."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from readerstudy.models import Study, cases_missing_metrics


class Command(BaseCommand):
    help = (
        "Queue metric tasks for every case that lacks a configured metric at its current "
        "version (after adding weights, or when no worker was running). --all re-queues every "
        "case; tasks overwrite, so nothing is duplicated."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", action="append", default=[], help="study slug (repeatable)")
        parser.add_argument(
            "--all", action="store_true", help="every case, not only incomplete ones"
        )

    def handle(self, *args, study: list[str], all: bool, **options):
        studies = Study.objects.filter(slug__in=study) if study else Study.objects.all()
        unknown = set(study) - set(studies.values_list("slug", flat=True))
        if unknown:
            raise CommandError(f"no study {', '.join(sorted(unknown))}")
        queued = 0
        with transaction.atomic():
            for each in studies:
                cases = list(each.cases.all()) if all else cases_missing_metrics(each)
                for case in cases:
                    case.queue_metrics()
                queued += len(cases)
                self.stdout.write(f"{each.slug}: {len(cases)} case(s) queued")
        self.stdout.write(f"{queued} metric task(s) queued; workers will pick them up")
