"""Build the Docker images the tests run flows in, without pulling from any registry.

Nothing can be pulled on the machines the tests run on, so the images are made here:

1. a base image: `debootstrap --variant=minbase --include=python3,python3-venv bookworm` from
   the Debian mirror the host's apt uses, imported with `docker import` as
   `orchestrator-test-base:bookworm` (kept: about a minute the first time, nothing afterwards);
2. a wheelhouse built on the host with `pip wheel` (the project's dependencies, kept per
   pyproject.toml; the project's own wheel, made fresh), because a build container does not
   reach the package index the way the host does;
3. the test image: the base plus a virtualenv at /opt/venv with the project installed from the
   wheelhouse (`pip install --no-index`), the dependencies in a layer of their own that Docker
   reuses while only the project's code changes. It is tagged and labelled with a hash of the
   project's sources, so it is rebuilt only when they change.

Only the `docker` package and the standard library are used (no Django, nothing of ours), so
any script can call `build_test_image()`; `python tests/support/images.py` prints the tag.
A file lock serialises builders on one machine (two test runs, or another engineer's script).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BASE_TAG = "orchestrator-test-base:bookworm"
TEST_REPOSITORY = "orchestrator-test"
HASH_LABEL = "org.orchestrator.test-image.content-hash"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Debian bookworm's python3 is 3.11.2: dependencies the host's newer 3.11 skipped by their
# markers (redis needs async-timeout below 3.11.3) go into the wheelhouse too.
BOOKWORM_EXTRAS = ("async-timeout>=4.0.3",)
SOURCE_DIRS = ("orchestrator", "runs", "deployments", "workpools", "accounts", "automations")
DOCKERFILE = """\
FROM {base}
# The dependencies first: this layer is reused while only the project's own code changes.
COPY deps /deps
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /deps /deps/*.whl \\
 && rm -rf /deps
COPY project /project
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /project/*.whl && rm -rf /project
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
"""


class ImageBuildError(RuntimeError):
    """A step of building a test image failed; the message says which and why."""


def cache_dir() -> Path:
    path = Path(os.environ.get("ORCHESTRATOR_IMAGE_CACHE", Path.home() / ".cache" / "orchestrator-images"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def build_lock() -> Iterator[None]:
    with open(cache_dir() / "build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=600)


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def debian_mirror() -> str:
    """The Debian mirror apt uses on this host (deb822 `URIs:` or one-line `deb URL suite`)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            match = re.match(r"URIs:\s*(\S+)", line) or re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\b", line)
            if match and "security" not in match.group(1):
                return match.group(1)
    return "http://deb.debian.org/debian"


def build_base_image(client: Any | None = None, *, tag: str = BASE_TAG) -> str:
    """The bookworm base image with python3 and venv (built once, then reused)."""
    client = client or docker_client()
    if image_exists(client, tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="orchestrator-rootfs-") as root:
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", root, debian_mirror()],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ImageBuildError(f"debootstrap failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageBuildError(f"docker import failed: {imported.stderr.strip()}")
    return tag


def _tracked_sources(root: Path) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", "pyproject.toml", *SOURCE_DIRS],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(root / name for name in listed if (root / name).is_file())


def copy_sources(root: Path, target: Path) -> None:
    """What building the project's wheel needs: its packages, pyproject.toml, the README."""
    for path in [*_tracked_sources(root), root / "README.md"]:
        dest = target / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def source_hash(root: Path = PROJECT_ROOT, *, base_id: str = "") -> str:
    digest = hashlib.sha256(base_id.encode())
    for path in _tracked_sources(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def dependency_wheels(root: Path = PROJECT_ROOT) -> Path:
    """Wheels of the project's dependencies, built on the host once per pyproject.toml."""
    key = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"wheels-{key}"
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="orchestrator-src-") as copy:
        copy_sources(root, Path(copy))  # no build/ or egg-info left in the checkout
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--disable-pip-version-check",
                "--wheel-dir",
                str(target),
                copy,
                *BOOKWORM_EXTRAS,
            ],
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        )
    if result.returncode != 0:
        raise ImageBuildError(f"pip wheel failed: {result.stderr[-3000:]}")
    for stale in target.glob("django_orchestrator-*.whl"):
        stale.unlink()  # the project's own wheel is made fresh for every image
    (target / ".complete").touch()
    return target


def build_test_image(root: Path = PROJECT_ROOT, *, client: Any | None = None) -> str:
    """An image with python3 and this checkout installed in /opt/venv (on PATH). Returns its tag,
    `orchestrator-test:<hash>`; an image with the same sources' hash is reused."""
    client = client or docker_client()
    with build_lock():
        base = build_base_image(client)
        digest = source_hash(root, base_id=client.images.get(base).id + DOCKERFILE)
        tag = f"{TEST_REPOSITORY}:{digest[:16]}"
        if image_exists(client, tag):
            return tag
        deps = dependency_wheels(root)
        with tempfile.TemporaryDirectory(prefix="orchestrator-image-") as context:
            shutil.copytree(deps, Path(context) / "deps", ignore=shutil.ignore_patterns(".complete"))
            wheels = Path(context) / "project"
            wheels.mkdir()
            with tempfile.TemporaryDirectory(prefix="orchestrator-src-") as copy:
                copy_sources(root, Path(copy))
                result = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "wheel",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-deps",
                        "--wheel-dir",
                        str(wheels),
                        copy,
                    ],
                    capture_output=True,
                    text=True,
                )
            if result.returncode != 0:
                raise ImageBuildError(f"pip wheel of the project failed: {result.stderr[-3000:]}")
            (Path(context) / "Dockerfile").write_text(DOCKERFILE.format(base=base))
            import docker.errors

            try:
                client.images.build(
                    path=context, tag=tag, labels={HASH_LABEL: digest}, network_mode="none", rm=True, forcerm=True
                )
            except docker.errors.BuildError as error:
                lines = [str(step.get("stream") or step.get("error") or "") for step in error.build_log]
                raise ImageBuildError(f"docker build failed: {error}\n{''.join(lines)[-3000:]}") from error
        _remove_older_test_images(client, keep=tag)
        return tag


def _remove_older_test_images(client: Any, *, keep: str) -> None:
    """Test images of earlier sources are not needed again: free their space (best effort; one
    still used by a container stays)."""
    import docker.errors

    for image in client.images.list(name=TEST_REPOSITORY):
        if keep in image.tags:
            continue
        for tag in image.tags:
            try:
                client.images.remove(tag)
            except docker.errors.APIError:
                pass


if __name__ == "__main__":
    print(build_test_image())
