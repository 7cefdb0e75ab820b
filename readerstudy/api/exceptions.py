"""The API's one mapping of errors to answers.

* The database cannot be reached (a restart, a failover, a full disk): without this a reader
  would get Django's bare 500 page in the middle of a score. With it the reading room gets 503,
  a sentence it can show, and Retry-After, keeps the answers in the tab and sends them again;
  nothing was written, so the retry cannot duplicate anything.
* A model's ValidationError (a rule the model layer enforces): 400 in the shape of a
  serializer's errors, {field: [messages]} or {"non_field_errors": [messages]}.
"""

import logging

from django.core.exceptions import ValidationError as ModelValidationError
from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = (
    "The study database cannot be reached right now, so nothing was saved. "
    "Try again in a few seconds."
)
RETRY_AFTER_SECONDS = 2


class StudyNotOpenError(APIException):
    """A closed study's items are not shown any more (its scores stay; its researcher may open
    it again): 409, with a sentence the reading room shows."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "study_not_open"

    def __init__(self, study):
        super().__init__(f"the study is {study.get_status_display().lower()}: reading has stopped")


def exception_handler(exc, context):
    if isinstance(exc, OperationalError | InterfaceError):
        view = context.get("view")
        logger.warning("database unavailable in %s: %s", type(view).__name__, exc)
        return Response(
            {"detail": DATABASE_UNAVAILABLE, "code": "database_unavailable"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, ModelValidationError):
        exc = ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    return drf_exception_handler(exc, context)
