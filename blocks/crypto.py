"""The key secrets are encrypted with (Fernet: AES-128-CBC with an HMAC, from `cryptography`).

ORCHESTRATOR_SECRETS_KEY in the environment (a Fernet key: 32 url-safe base64 bytes, e.g. from
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`),
else a key generated once into the data directory (`$ORCHESTRATOR_HOME/secrets_key`) when the
orchestrator is set up (`manage.py up`) or a secret is first written, never at settings import.
Lose the key and the stored secrets cannot be read: back it up with the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from orchestrator.core.errors import OrchestratorError

KEY_VARIABLE = "ORCHESTRATOR_SECRETS_KEY"


class SecretsKeyError(OrchestratorError):
    """No usable key: a malformed ORCHESTRATOR_SECRETS_KEY, or secrets written with another key."""


def key_path() -> Path:
    return Path(settings.ORCHESTRATOR_HOME) / "secrets_key"


def ensure_secrets_key() -> None:
    """Generate the data directory's key unless the environment or the file has one already.
    Two processes at once: exactly one writes (O_EXCL) and both use its key."""
    if os.environ.get(KEY_VARIABLE) or key_path().exists():
        return
    path = key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        file.write(Fernet.generate_key().decode())


def _fernet(*, create: bool) -> Fernet:
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:
        if create:
            ensure_secrets_key()
        try:
            key = key_path().read_text().strip()
        except FileNotFoundError:
            raise SecretsKeyError(
                f"No secrets key: set {KEY_VARIABLE}, or write a secret first (which generates {key_path()})."
            ) from None
    try:
        return Fernet(key.encode())
    except ValueError:
        raise SecretsKeyError(f"{KEY_VARIABLE} is not a Fernet key (32 url-safe base64-encoded bytes).") from None


def encrypt(value: str) -> str:
    return _fernet(create=True).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(create=False).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretsKeyError(
            "This secret was encrypted with another key: set the key it was written with, or write it again."
        ) from None
