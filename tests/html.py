"""Finding one element of a rendered page in tests, without an HTML parser."""

from __future__ import annotations

import re


def element(html: str, tag: str, opening: str) -> str:
    """The first <tag ...> whose opening tag contains `opening`, up to its closing tag (the
    element must not hold another of the same tag). Fails the test when there is none."""
    match = re.search(rf"<{tag}\b[^>]*{re.escape(opening)}.*?</{tag}>", html, re.S)
    assert match, f"no <{tag}> with {opening!r}"
    return match.group(0)
