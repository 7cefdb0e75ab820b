"""Request bodies the API accepts: JSON, of a bounded size.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards form posts only; DRF reads a JSON body straight
from the request stream, so without this a client could make the server parse and answer
megabytes of nonsense. The largest honest body (a save with every question answered) is a few
hundred bytes.
"""

from typing import IO, Any, cast

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(
                f"the request body is {int(declared):,} bytes; at most {limit:,}"
            )
        # _Limited has the one method the parser calls on a stream, read().
        return super().parse(cast(IO[Any], _Limited(stream, limit)), media_type, parser_context)


class _Limited:
    """A stream that refuses to yield more than `limit` bytes (a body without a length)."""

    def __init__(self, stream, limit: int):
        self.stream, self.left = stream, limit

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(self.left + 1 if size < 0 else min(size, self.left + 1))
        self.left -= len(chunk)
        if self.left < 0:
            raise RequestTooLarge("the request body is too large")
        return chunk
