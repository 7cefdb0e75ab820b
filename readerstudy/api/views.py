"""The API. The reader's endpoints are scoped to the requesting reader, the analysis to the
study's researchers: anything else is 404."""

import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from readerstudy.api.exceptions import StudyNotOpenError
from readerstudy.api.serializers import (
    ItemSerializer,
    ReaderStudySerializer,
    SavedScoresSerializer,
    ScoresInputSerializer,
    StudyImportSerializer,
    UploadSerializer,
)
from readerstudy.dashboard_store import latest_analysis, payload_text
from readerstudy.models import Assignment, Reader, Study, StudyImport
from readerstudy.models.reading import (
    COMPARISON_RELATIONS,
    ITEM_RELATIONS,
    RECONSTRUCTION_RELATIONS,
)
from readerstudy.uploads import UploadRefusedError, safe_relative_path


def my_items(request):
    return Assignment.objects.of_reader(request.user).select_related(
        "reader__study", *ITEM_RELATIONS
    )


class ReaderStudyList(generics.ListAPIView):
    """The open studies I read, with my progress."""

    serializer_class = ReaderStudySerializer
    pagination_class = None

    def get_queryset(self):
        return Study.objects.read_by(self.request.user)

    def get_serializer_context(self):
        memberships = Reader.objects.of_user(self.request.user)
        orders = memberships.reading_orders()
        return {
            **super().get_serializer_context(),
            "progress": {m.study_id: (orders[m.pk].done, orders[m.pk].total) for m in memberships},
        }


class NextItem(APIView):
    """The first item of my order that still has an unanswered question (null when done)."""

    @extend_schema(responses=ItemSerializer)
    def get(self, request, slug):
        reader = get_object_or_404(
            Reader.objects.of_user(request.user).select_related("study"), study__slug=slug
        )
        if reader.study.status != Study.Status.OPEN:
            raise StudyNotOpenError(reader.study)
        questions = list(reader.study.questions.likert())
        order = reader.reading_order(len(questions))
        index = order.next_index()
        item_data = None
        if index is not None:
            pk, _, answered, compares = order.items[index]
            shown = COMPARISON_RELATIONS if compares else RECONSTRUCTION_RELATIONS
            item = Assignment.objects.select_related(*shown).get(pk=pk)
            item.reader = reader  # already loaded, with its study
            context = {
                "questions": questions,
                "total": order.total,
                "previous": order.items[index - 1][1] if index > 0 else None,
                **({} if answered else {"scores": {}}),
            }
            item_data = ItemSerializer(item, context=context).data
        return Response(
            {
                "item": item_data,
                "done": order.done,
                "total": order.total,
                "end_message": reader.study.end_message if index is None else "",
            }
        )


class ItemDetail(generics.RetrieveAPIView):
    """One of my items, with my answers so far."""

    serializer_class = ItemSerializer
    lookup_field = "public_id"

    def get_queryset(self):
        return my_items(self.request)

    def get_object(self):
        item = super().get_object()
        if item.reader.study.status != Study.Status.OPEN:
            raise StudyNotOpenError(item.reader.study)
        return item


class ItemScores(APIView):
    """Save my answers for one item: idempotent (a retried or doubled request changes nothing
    more), and a changed answer keeps its history."""

    @extend_schema(request=ScoresInputSerializer, responses=SavedScoresSerializer)
    def put(self, request, public_id):
        payload = ScoresInputSerializer(data=request.data)
        with transaction.atomic():
            # Read and locked in one query: this item is the requesting reader's, or 404.
            item = get_object_or_404(
                Assignment.objects.of_reader(request.user).for_scoring(), public_id=public_id
            )
            payload.is_valid(raise_exception=True)
            # A rule the model enforces answers 400 through the API's error mapping
            # (exceptions.py); nothing is stored then.
            saved = item.save_scores(
                payload.validated_data["scores"],
                seconds_spent=payload.validated_data["seconds_spent"],
                by=request.user,
                locked=True,
                view_actions=payload.validated_data["view_actions"],
            )
        stored = {
            score.question.key: score.value if score.ranks is None else score.ranks
            for score in saved
        }
        return Response(
            SavedScoresSerializer(
                {
                    "public_id": item.public_id,
                    "scores": stored,
                    "reference": item.training_reference(),
                }
            ).data,
            status=status.HTTP_200_OK,
        )


class StudyAnalysis(APIView):
    """The dashboard's data for one study: metric-reader correlations with CIs, agreement,
    comparisons, subgroups, progress and scatter points. Researchers of the study only.

    The analysis is a worker's (readerstudy.tasks.refresh_dashboard): this serves the latest
    finished one, with `updating` true while a newer one is computed for data that changed,
    and queues that one. The ETag names what is served: sent back as If-None-Match it gets a
    304 with no body, which is what the dashboard's 2-second poll does.
    """

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 304: OpenApiResponse(description="Not modified")}
    )
    def get(self, request, slug):
        study = get_object_or_404(Study.objects.run_by(request.user), slug=slug)
        served = latest_analysis(study)
        etag = f'"{served.version}{"-updating" if served.updating else ""}"'
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
        else:
            # Stored as JSON text: served as it is, not parsed and serialised again.
            response = HttpResponse(payload_text(study, served), content_type="application/json")
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        return response


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"


class StudyImports(APIView):
    """Upload images to a study (multipart: `files`, and `paths` with each file's relative
    path), imported by a background task; or list the study's imports, newest first.
    Researchers of the study only."""

    parser_classes = [MultiPartParser]

    def study(self, request, slug) -> Study:
        return get_object_or_404(Study.objects.run_by(request.user), slug=slug)

    @extend_schema(responses=StudyImportSerializer(many=True))
    def get(self, request, slug):
        imports = self.study(request, slug).imports.all()[:20]
        return Response(StudyImportSerializer(imports, many=True).data)

    @extend_schema(request=UploadSerializer, responses={202: StudyImportSerializer})
    def post(self, request, slug):
        study = self.study(request, slug)
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = settings.UPLOAD_MAX_BYTES
        if declared > limit:
            # Refused before a byte of the body is read.
            raise UploadTooLarge(
                f"the upload is {declared:,} bytes; at most {limit:,} (UPLOAD_MAX_BYTES): "
                "split it into several uploads"
            )
        form = UploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        files = form.validated_data["files"]
        paths = form.validated_data.get("paths") or [file.name for file in files]
        if len(paths) != len(files):
            raise ValidationError({"paths": f"{len(paths)} paths for {len(files)} files"})
        try:
            for path in paths:
                safe_relative_path(path)
        except UploadRefusedError as refused:
            raise ValidationError({"paths": str(refused)}) from None
        with transaction.atomic():
            job = StudyImport.objects.create(
                study=study,
                created_by=request.user,
                file_names=paths,
                upload_bytes=sum(file.size for file in files),
            )
            incoming = job.folder() / "incoming"
            incoming.mkdir(parents=True, exist_ok=True)
            for index, file in enumerate(files):
                keep_upload(file, incoming / str(index))
            job.queue()
        return Response(StudyImportSerializer(job).data, status=status.HTTP_202_ACCEPTED)


def keep_upload(file, destination: Path) -> None:
    """Move a streamed upload into place (same disk: FILE_UPLOAD_TEMP_DIR is UPLOADS_DIR), or
    write a small one held in memory."""
    temporary = getattr(file, "temporary_file_path", None)
    if temporary is not None:
        # Moved while open, as Django's storage does: closing it then finds nothing to delete.
        shutil.move(temporary(), destination)
        file.close()
    else:
        with open(destination, "wb") as out:
            for chunk in file.chunks():
                out.write(chunk)


class StudyImportDetail(generics.RetrieveAPIView):
    """One import's state and progress (the upload page polls it)."""

    serializer_class = StudyImportSerializer

    def get_queryset(self):
        return StudyImport.objects.filter(
            study__in=Study.objects.run_by(self.request.user), study__slug=self.kwargs["slug"]
        )
