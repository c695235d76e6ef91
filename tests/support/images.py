"""Build the Docker images the tests run flows in, without pulling from any registry.

Nothing can be pulled on the machines the tests run on, so the images are made here:

1. the base image the production image is built on too (orchestrator.images.ensure_base_image:
   debootstrap of bookworm with python3 from the host's mirror, `docker import`ed, kept);
2. a wheelhouse built on the host with `pip wheel` (the project's dependencies, kept per
   pyproject.toml; the project's own wheel, made fresh), because a build container does not
   reach the package index the way the host does;
3. the test image: the base plus a virtualenv at /opt/venv with the project installed from the
   wheelhouse (`pip install --no-index`), the dependencies in a layer of their own that Docker
   reuses while only the project's code changes. It is tagged and labelled with a hash of the
   project's sources, so it is rebuilt only when they change.

Only the `docker` package, the standard library and orchestrator.images (no Django) are used,
so any script can call `build_test_image()`; `python tests/support/images.py` prints the tag.
A file lock serialises builders on one machine (two test runs, or another engineer's script).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.images import ImageBuildError, cache_dir, ensure_base_image

TEST_REPOSITORY = "orchestrator-test"
HASH_LABEL = "org.orchestrator.test-image.content-hash"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Debian bookworm's python3 is 3.11.2: dependencies the host's newer 3.11 skipped by their
# markers (redis needs async-timeout below 3.11.3) go into the wheelhouse too.
BOOKWORM_EXTRAS = ("async-timeout>=4.0.3",)
SOURCE_DIRS = ("orchestrator", "runs", "deployments", "workpools", "blocks", "accounts", "automations")
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
        base = ensure_base_image(log=lambda message: None)
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
