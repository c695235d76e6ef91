"""DRF authentication by `Authorization: Bearer <key>`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts import audit
from accounts.models import ApiKey
from accounts.services import authenticate_api_key


class KeyHolder:
    """request.user for a request made with an API key (keys belong to no Django user)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, key: ApiKey) -> None:
        self.key = key

    def get_username(self) -> str:
        return f"key:{self.key.name}"

    def __str__(self) -> str:
        return self.get_username()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[KeyHolder, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, token = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None  # another scheme (e.g. Basic): not ours to judge
        token = token.strip()
        if not token or " " in token:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.")
        key = authenticate_api_key(token)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        audit.set_actor(audit.Actor(f"key:{key.name}", "api"))
        return KeyHolder(key), key

    def authenticate_header(self, request: Any) -> str:
        # Present: DRF answers 401 (not 403) to a request without credentials.
        return f'{self.keyword} realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes ApiKeyAuthentication."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: manage.py apikey create NAME --scope read|trigger|write|worker",
        }
