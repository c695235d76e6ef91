"""Middleware: the API's body size limit, and the dashboard's sign-in for polled fragments.

- BodySizeLimitMiddleware refuses request bodies over the API's size limit before anything
  reads them. DRF parsers read the request stream directly, so Django's
  DATA_UPLOAD_MAX_MEMORY_SIZE never sees a JSON body: the limit is enforced here, on the
  declared Content-Length, with a JSON 413.
- HtmxLoginRedirectMiddleware sends a whole page to sign in when a fragment it polls finds the
  session ended.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

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
