"""Build the container images offline, with caches: used by the tests, CI and the benchmarks.

Nothing can be pulled from a registry on our CI machines, so everything starts from the host:

- the base image `orchestrator-base:bookworm-python3`: `debootstrap --variant=minbase
  --include=python3,python3-venv bookworm` from the host's own Debian mirror (read from its apt
  sources), then `docker import`. Built once per Docker daemon: skipped when the image exists.
- a wheelhouse: `pip wheel` of the project's dependencies on the host, in a folder under the
  cache directory keyed by a hash of pyproject.toml (and the Python version), so the image build
  installs with `pip install --no-index --find-links` and needs no index.
- the project's image from the repository's `Dockerfile` with `BASE_IMAGE` set to the base
  above: the build context (the checkout minus `.dockerignore`, plus the wheelhouse as
  `.wheelhouse/`) is hashed, the image is tagged `orchestrator:ctx-<hash>`, and it is built only
  when no image has that tag.

Command line: `python -m orchestrator.images [base|wheelhouse|image] [--print-tag]`.

This module imports nothing of ours and no Django: it is build tooling, not part of the runtime.
Concurrent callers (two test sessions, CI and a benchmark) are serialised by a file lock per
artefact, so each is built once.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BASE_IMAGE = "orchestrator-base:bookworm-python3"
PROJECT_REPOSITORY = "orchestrator"
SUITE = "bookworm"
PROJECT_DIR = Path(__file__).resolve().parent.parent
WHEELHOUSE_IN_CONTEXT = ".wheelhouse"
# The extras the image installs (a worker in it can serve kubernetes pools; docker is a core dependency).
IMAGE_EXTRAS = "kubernetes"
# Wheels the host's pip does not pick for itself: the build backend (for the image's offline
# `pip install -e`), and dependencies behind markers that hold for the image's Python but not the
# host's (redis needs async-timeout below Python 3.11.3, and Debian bookworm has 3.11.2).
IMAGE_ONLY_REQUIREMENTS = ["setuptools>=77", "wheel", "async-timeout>=4.0.3"]

Log = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """A step of an image build failed; the message says which and why."""


def cache_dir() -> Path:
    """Where the wheelhouses and locks live: $ORCHESTRATOR_IMAGE_CACHE, else
    $XDG_CACHE_HOME/orchestrator-images (default ~/.cache/orchestrator-images)."""
    explicit = os.environ.get("ORCHESTRATOR_IMAGE_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orchestrator-images"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    with open(cache_dir() / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _docker_client() -> Any:
    import docker  # type: ignore[import-untyped]  # the [docker] extra; only image builds need it

    return docker.from_env(timeout=600)


def _image_exists(client: Any, tag: str) -> bool:
    import docker.errors  # type: ignore[import-untyped]

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- the Debian mirror --------------------------------------------------------------------------


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The host's Debian mirror for `bookworm` main, read from /etc/apt/sources.list and
    /etc/apt/sources.list.d/*.list|*.sources (one-line and deb822 formats). Security and
    updates suites are not mirrors of the release, so they are passed over."""
    if sources is None:
        etc = Path("/etc/apt")
        sources = [
            etc / "sources.list",
            *sorted((etc / "sources.list.d").glob("*.list")),
            *sorted((etc / "sources.list.d").glob("*.sources")),
        ]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = _deb822(stanza)
                if (
                    "deb" in fields.get("types", "").split()
                    and SUITE in fields.get("suites", "").split()
                    and "main" in fields.get("components", "").split()
                    and fields.get("enabled", "yes") != "no"
                ):
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
                if len(parts) >= 4 and parts[0] == "deb" and parts[2] == SUITE and "main" in parts[3:]:
                    return parts[1]
    raise ImageBuildError(
        f"No Debian mirror for {SUITE} main in the host's apt sources (/etc/apt/sources.list*): "
        "add one or build the base image yourself."
    )


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


# --- the base image -----------------------------------------------------------------------------


def ensure_base_image(*, tag: str = BASE_IMAGE, log: Log = print) -> str:
    """The minimal Debian bookworm image with python3 and python3-venv, made by debootstrap
    from the host's mirror and `docker import`ed as `tag`. Does nothing when `tag` exists."""
    client = _docker_client()
    if _image_exists(client, tag):
        return tag
    with _locked("base-image"):
        if _image_exists(client, tag):  # built by another process while we waited for the lock
            return tag
        if shutil.which("debootstrap") is None:
            raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap).")
        mirror = debian_mirror()
        with tempfile.TemporaryDirectory(prefix="orchestrator-rootfs-", dir=cache_dir()) as workdir:
            rootfs = Path(workdir) / "rootfs"
            log(f"images: debootstrap {SUITE} from {mirror} (about a minute)")
            _run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv", SUITE, str(rootfs), mirror])
            # The apt lists and caches are of no use inside the image.
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / leftover).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            archive = Path(workdir) / "rootfs.tar"
            _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(archive), "."])
            repository, _, version = tag.rpartition(":")
            log(f"images: docker import as {tag}")
            client.api.import_image_from_file(
                str(archive),
                repository=repository,
                tag=version,
                changes=["ENV LANG=C.UTF-8", 'CMD ["python3"]'],
            )
    if not _image_exists(client, tag):
        raise ImageBuildError(f"docker import did not produce {tag}.")
    return tag


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise ImageBuildError(f"{command[0]} failed (exit {result.returncode}):\n" + "\n".join(tail))


# --- the wheelhouse -----------------------------------------------------------------------------


def wheelhouse_key(project_dir: Path = PROJECT_DIR) -> str:
    """What the wheelhouse depends on: pyproject.toml and the host's Python version (the image's
    must match it, since binary wheels are per version)."""
    digest = hashlib.sha256((project_dir / "pyproject.toml").read_bytes())
    digest.update(f"cp{sys.version_info.major}{sys.version_info.minor}".encode())
    digest.update(" ".join([IMAGE_EXTRAS, *IMAGE_ONLY_REQUIREMENTS]).encode())
    return digest.hexdigest()[:16]


def ensure_wheelhouse(project_dir: Path = PROJECT_DIR, *, log: Log = print) -> Path:
    """A folder of wheels of every dependency of the project (and of its build backend, for an
    offline `pip install -e`), built with the host's pip. Reused while pyproject.toml is
    unchanged; the project's own wheel is left out (the image installs the source)."""
    folder = cache_dir() / f"wheelhouse-{wheelhouse_key(project_dir)}"
    if (folder / ".complete").exists():
        return folder
    with _locked("wheelhouse"):
        if (folder / ".complete").exists():
            return folder
        log(f"images: pip wheel of the project's dependencies into {folder}")
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        # A copy of the checkout without its virtualenv and data, so pip does not walk them.
        with tempfile.TemporaryDirectory(prefix="orchestrator-src-") as source:
            _copy_context_files(project_dir, Path(source))
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--wheel-dir",
                    str(partial),
                    f"{source}[{IMAGE_EXTRAS}]",
                    *IMAGE_ONLY_REQUIREMENTS,
                ]
            )
        for own in partial.glob("django_orchestrator-*.whl"):
            own.unlink()
        (partial / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return folder


# --- the project's image ------------------------------------------------------------------------


def _dockerignore(project_dir: Path) -> list[str]:
    try:
        lines = (project_dir / ".dockerignore").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.removeprefix("**/")
        for candidate in (*prefixes, *parts):
            if fnmatch.fnmatchcase(candidate, pattern):
                return True
    return False


def context_files(project_dir: Path = PROJECT_DIR) -> list[str]:
    """The checkout's files that go into the build context: tracked and untracked-but-not-
    git-ignored files (as git sees them), minus .dockerignore's patterns, sorted."""
    listed = (
        subprocess.run(
            ["git", "-C", str(project_dir), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    patterns = _dockerignore(project_dir)
    return sorted(
        name for name in set(listed) if name and (project_dir / name).is_file() and not _ignored(name, patterns)
    )


def _copy_context_files(project_dir: Path, target: Path) -> None:
    for name in context_files(project_dir):
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project_dir / name, destination)


def _build_context(project_dir: Path, wheelhouse: Path | None) -> tuple[bytes, str]:
    """The context as a tar archive (bytes) and its content hash (names, modes, contents)."""
    members: list[tuple[str, Path]] = [(name, project_dir / name) for name in context_files(project_dir)]
    if wheelhouse is not None:
        members += [(f"{WHEELHOUSE_IN_CONTEXT}/{wheel.name}", wheel) for wheel in sorted(wheelhouse.glob("*.whl"))]
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, path in members:
            data = path.read_bytes()
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            digest.update(f"{name}\0{mode:o}\0{len(data)}\0".encode())
            digest.update(data)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), digest.hexdigest()


def ensure_project_image(
    project_dir: Path = PROJECT_DIR,
    *,
    base_image: str | None = None,
    offline: bool = True,
    log: Log = print,
) -> str:
    """The project's image built from its Dockerfile, tagged `orchestrator:ctx-<hash>` where the
    hash covers the build context and the base image's id; built only when that tag is missing.
    With `offline` (the default here) the base is the locally built one and dependencies come
    from the wheelhouse; the build runs with host networking (no bridge on our machines)."""
    client = _docker_client()
    base = base_image or ensure_base_image(log=log)
    wheelhouse = ensure_wheelhouse(project_dir, log=log) if offline else None
    context, context_hash = _build_context(project_dir, wheelhouse)
    base_id = client.images.get(base).id if _image_exists(client, base) else base
    tag = f"{PROJECT_REPOSITORY}:ctx-{hashlib.sha256(f'{context_hash}{base_id}'.encode()).hexdigest()[:16]}"
    if _image_exists(client, tag):
        return tag
    with _locked("project-image"):
        if _image_exists(client, tag):
            return tag
        log(f"images: docker build of {project_dir / 'Dockerfile'} on {base} as {tag}")
        lines: list[str] = []
        for chunk in client.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=tag,
            buildargs={"BASE_IMAGE": base},
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
            labels={"org.orchestrator.context": context_hash},
        ):
            if "stream" in chunk:
                lines.extend(chunk["stream"].rstrip("\n").splitlines())
            if "error" in chunk:
                raise ImageBuildError("docker build failed: " + chunk["error"].strip() + "\n" + "\n".join(lines[-25:]))
    if not _image_exists(client, tag):
        raise ImageBuildError(f"docker build did not produce {tag}:\n" + "\n".join(lines[-25:]))
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["base", "wheelhouse", "image"], help="what to build (and cache)")
    parser.add_argument(
        "--into",
        type=Path,
        help="wheelhouse: also copy the wheels into this folder (e.g. .wheelhouse, for `docker build .` offline)",
    )
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        if args.what == "base":
            print(ensure_base_image(log=log))
        elif args.what == "wheelhouse":
            folder = ensure_wheelhouse(log=log)
            if args.into:
                args.into.mkdir(parents=True, exist_ok=True)
                for wheel in folder.glob("*.whl"):
                    shutil.copy2(wheel, args.into / wheel.name)
                folder = args.into
            print(folder)
        else:
            print(ensure_project_image(log=log))
    except ImageBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
