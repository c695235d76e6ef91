"""Secret values loaded in this process are masked in every log line the SDK writes or ships."""

from __future__ import annotations

import threading

MASK = "********"
MIN_MASKED_LENGTH = 4  # masking "a" would garble every line

_values: set[str] = set()
_lock = threading.Lock()


def register(value: str) -> None:
    """Mask `value` from now on (a secret this process loaded)."""
    if len(value) >= MIN_MASKED_LENGTH:
        with _lock:
            _values.add(value)


def mask(text: str) -> str:
    """`text` with every registered secret value replaced by ********, longest first (so a
    secret that contains another is masked whole)."""
    if not _values:
        return text
    for value in sorted(_values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text
