"""`manage.py queue_metrics [--study SLUG]... [--all]`: queue what is missing or out of date."""

from django.core.management.base import BaseCommand, CommandError

from readerstudy.metric_status import cases_missing_metrics
from readerstudy.models import Study, send_metrics_task


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
        queued, failed = 0, []
        for each in studies:
            cases = list(each.cases.all()) if all else cases_missing_metrics(each)
            reasons = [send_metrics_task(case.pk) for case in cases]
            failed += [reason for reason in reasons if reason]
            sent = sum(reason is None for reason in reasons)
            queued += sent
            self.stdout.write(f"{each.slug}: {sent} case(s) queued")
        if failed:
            raise CommandError(f"{len(failed)} case(s) not queued: {failed[0]}")
        self.stdout.write(f"{queued} metric task(s) queued; workers will pick them up")
