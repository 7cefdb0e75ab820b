"""The study app's models: what a researcher sets up (studies.py) and what readers do
(reading.py). Imported from here, as Django and the migrations expect."""

from readerstudy.models.dashboard import DashboardSnapshot
from readerstudy.models.lab import MetricLab
from readerstudy.models.reading import Assignment, Reader, ReadingOrder, Score, ScoreRevision
from readerstudy.models.setup import Invitation, InvitationError, StudyImport, token_digest
from readerstudy.models.studies import (
    DEFAULT_QUESTIONS,
    Case,
    Comparison,
    Question,
    Reconstruction,
    Study,
    array_file,
    image_upload_path,
    new_public_id,
    send_metrics_task,
)

__all__ = [
    "DEFAULT_QUESTIONS",
    "Assignment",
    "Case",
    "Comparison",
    "DashboardSnapshot",
    "Invitation",
    "InvitationError",
    "MetricLab",
    "Question",
    "Reader",
    "ReadingOrder",
    "Reconstruction",
    "Score",
    "ScoreRevision",
    "Study",
    "StudyImport",
    "array_file",
    "image_upload_path",
    "new_public_id",
    "send_metrics_task",
    "token_digest",
]
