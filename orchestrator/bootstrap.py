"""First-run set-up shared by `manage.py up` and tests: the admin account and default pool."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction


def ensure_admin(username: str, password: str = "") -> str | None:
    """Create the superuser `username` if missing. Returns the password to show when one was
    just generated (shown once, never stored in clear), else None. When `password` is given
    it is (re)applied, so the env var always works."""
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            chosen = password or secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=chosen)
            return None if password else chosen
        if password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
    return None
