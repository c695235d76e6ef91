"""Refuse request bodies over the API's size limit before anything reads them.

DRF parsers read the request stream directly, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never
sees a JSON body: the limit is enforced here, on the declared Content-Length, with a JSON 413.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

LIMITED_PREFIXES = ("/api/", "/hooks/")


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(LIMITED_PREFIXES):
            limit = settings.API_MAX_BODY_BYTES
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse({"detail": "The Content-Length header is not a number."}, status=400)
            if length > limit:
                return JsonResponse(
                    {"detail": f"The request body is {length} bytes; the limit is {limit} bytes."}, status=413
                )
        return self.get_response(request)
