"""Middleware: the API's body size limit, NUL characters in URLs, and the dashboard's sign-in
for polled fragments.

- BodySizeLimitMiddleware refuses request bodies over the API's size limit before anything
  reads them. DRF parsers read the request stream directly, so Django's
  DATA_UPLOAD_MAX_MEMORY_SIZE never sees a JSON body: the limit is enforced here, on the
  declared Content-Length, with a JSON 413.
- NulInUrlMiddleware refuses a path or query string holding a NUL character (%00) with a 400
  naming it: no database can look such a name up (PostgreSQL refuses NUL in text).
- DatabaseUnavailableMiddleware answers 503 with Retry-After while the database is down.
- HtmxLoginRedirectMiddleware sends a whole page to sign in when a fragment it polls finds the
  session ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django_htmx.http import HttpResponseClientRedirect

from orchestrator.health import RETRY_AFTER_SECONDS

log = logging.getLogger(__name__)

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


class NulInUrlMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = None
        if "\x00" in request.path:
            where = "path"
        else:
            where = next(
                (key for key, values in request.GET.lists() if "\x00" in key or any("\x00" in v for v in values)), None
            )
        if where is not None:
            message = f"{where}: a URL cannot contain a NUL character (%00)."
            if request.path.startswith(LIMITED_PREFIXES):
                return JsonResponse({"detail": message, "errors": {where: ["Contains a NUL character."]}}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain")
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """While the database cannot be reached (restarting, failing over), every page answers 503
    with Retry-After instead of a 500: JSON on the API and webhooks, a short page saying so on
    the dashboard. Other database errors are bugs and stay 500s."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        message = "The database is unavailable right now; try again in a few seconds."
        response: HttpResponse
        if request.path.startswith(LIMITED_PREFIXES):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(
                render_to_string("503.html", {"message": message, "retry_after": RETRY_AFTER_SECONDS}), status=503
            )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


class HtmxLoginRedirectMiddleware:
    """A polled fragment whose session has ended would get the sign-in page swapped into it.
    Send the whole page to sign in instead, and back to that page afterwards."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        login_url = resolve_url(settings.LOGIN_URL)
        if htmx and response.status_code == 302 and response["Location"].startswith(login_url):
            back_to = htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(redirect_to_login(back_to)["Location"])
        return response
