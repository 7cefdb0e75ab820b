"""`manage.py build_demo`: the demo study from real MR slices, a researcher and three readers.

Idempotent: a second run finds everything in place and changes nothing (it only re-queues the
metrics of cases that have none yet, e.g. when no worker has run since the first build).
"""

import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from fixtures.demo import DEMO_PROTOCOLS, write_demo_manifest
from fixtures.images import slice_sources
from readerstudy.importer import import_manifest
from readerstudy.metric_status import cases_missing_metrics
from readerstudy.models import Question, Study

SLUG = "demo"
TITLE = "Demo: undersampled MR reconstructions (zero-filled and compressed sensing)"
INSTRUCTIONS = (
    "Each item shows a fully sampled reference (left) and a reconstruction from undersampled "
    "k-space (right). Score the reconstruction on every question. Keyboard: digits score the "
    "focused question, Tab moves between questions, Enter saves and goes on. Some items show "
    "every reconstruction of a case beside its reference: rank them, 1 best (a digit ranks the "
    "focused image, Tab moves between images)."
)
# The demo's ranking question (issue 20): each case's five reconstructions on one screen.
RANKING = {
    "key": "overall-rank",
    "label": "Rank the reconstructions by overall image quality (1 best)",
    "kind": Question.Kind.RANK,
    "set_size": len(DEMO_PROTOCOLS),
}
# Local demo only: printed by `make demo`. Never use these on a reachable server.
RESEARCHER = ("researcher", "demo-researcher")
READERS = [("reader1", "demo-reader"), ("reader2", "demo-reader"), ("reader3", "demo-reader")]


# A tenth of each reader's items comes back later: the dashboard's intra-reader agreement.
DEMO_REPEAT_SHARE = 0.1


class Command(BaseCommand):
    help = "Build the demo study from the real MR slices in fixtures/ (idempotent)."

    def handle(self, *args, **options):
        study = Study.objects.filter(slug=SLUG).first()
        if study is None:
            study = self.build()  # the importer queues the metrics
        else:
            self.stdout.write(f"demo study already built ({study.cases.count()} cases)")
            for case in cases_missing_metrics(study):
                case.queue_metrics()
        with transaction.atomic():
            self.ensure_people(study)

    def build(self) -> Study:
        sources = slice_sources()
        self.stdout.write(
            f"simulating {len(sources)} real MR slices x {len(DEMO_PROTOCOLS)} reconstructions..."
        )
        with tempfile.TemporaryDirectory(prefix="readerstudy-demo-") as directory:
            manifest = write_demo_manifest(Path(directory))
            with transaction.atomic():
                study = import_manifest(manifest, slug=SLUG, title=TITLE)
                for case in study.cases.all():
                    source = sources[case.name]
                    case.anatomy = source["anatomy"]
                    case.source = f"{source['package']}: {source['file']}"
                    case.save(update_fields=["anatomy", "source"])
                Question.objects.create(study=study, position=study.questions.count(), **RANKING)
                study.build_comparisons()
                study.instructions = INSTRUCTIONS
                study.status = Study.Status.OPEN
                study.repeat_share = DEMO_REPEAT_SHARE
                study.save(update_fields=["instructions", "status", "repeat_share"])
        self.stdout.write(self.style.SUCCESS(f"built the demo study: {study.cases.count()} cases"))
        return study

    def ensure_people(self, study: Study) -> None:
        users = get_user_model()
        researcher, created = users.objects.get_or_create(username=RESEARCHER[0])
        if created:
            researcher.set_password(RESEARCHER[1])
            researcher.save()
        study.researchers.add(researcher)
        # The demo's researcher may also create studies of their own (/studies/new/).
        researcher.user_permissions.add(
            Permission.objects.get(content_type__app_label="readerstudy", codename="add_study")
        )
        for username, password in READERS:
            user, created = users.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.save()
            study.assign_reader(user)
