"""Where a deployment's code may live: its entrypoint file and working directory stay inside the
project directory (or the pulled checkout), with symlinks and `..` resolved first, on every
surface (deploy, API, admin) and again by the engine at run time, so no path smuggles in code
from elsewhere on the machine."""

from __future__ import annotations

import posixpath
from pathlib import Path

from orchestrator.core.errors import ValidationError


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    """(path, function) of `path/to/file.py:function` (ValidationError if it is not one)."""
    path, sep, function = entrypoint.strip().rpartition(":")
    if not sep or not path or not function:
        raise ValidationError(
            f"Entrypoint {entrypoint!r} is not of the form path/to/file.py:function.",
            {"entrypoint": ["Use the form path/to/file.py:function."]},
        )
    return path, function


def relative_path_problem(path: str) -> str | None:
    """Why `path`, as written, may point outside the directory it is relative to (absolute, or
    climbing out with `..`), else None. Symlinks need the files themselves: see confined()."""
    if path.startswith(("/", "\\", "~")) or (len(path) > 1 and path[1] == ":"):
        return "must be relative to the project directory"
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return "must not leave the project directory (`..`)"
    return None


def check_entrypoint(entrypoint: str) -> None:
    """A stored entrypoint (API, admin): relative, and no `..` out of its directory."""
    path, _ = split_entrypoint(entrypoint)
    if problem := relative_path_problem(path):
        raise ValidationError(f"Entrypoint {entrypoint!r} {problem}.", {"entrypoint": [f"The file's path {problem}."]})


def confined(path: str | Path, base: Path, *, what: str, field: str = "entrypoint", inside: Path | None = None) -> Path:
    """`base / path` with symlinks and `..` resolved, if it stays inside `inside` (default:
    `base`; resolved too); else ValidationError naming `field`."""
    root = (inside or base).resolve()
    target = (base.resolve() / path).resolve()
    if target != root and root not in target.parents:
        message = f"{what} {str(path)!r} resolves to {target}, outside {root}."
        raise ValidationError(message, {field: [f"{what} is outside the project directory {root}."]})
    return target
