"""Pull steps: what a deployment's run does before its flow is imported, to get the code and
pick the working directory. Steps are stored as a list of one-key dicts, like Prefect's
`pull:` section:

    [{"git_clone": {"repository": "https://github.com/org/flows.git", "branch": "main",
                    "access_token_env": "GIT_TOKEN"}},
     {"set_working_directory": {"directory": "sub"}}]

A step name may be dotted (prefect.orchestrator.engine.steps.set_working_directory): the last part
counts. Each step gets the working directory so far and returns the next one.

pull_from_remote_storage copies a folder from any fsspec URL (s3://, gs://, az://, file://, ...),
cached by the hash of its contents: {"pull_from_remote_storage": {"url": "s3://bucket/flows"}}.

git_clone keeps one cache per repository under ORCHESTRATOR_HOME/git-cache/<hash of the URL>:
a bare repository that the first run fills and later runs only fetch into, and one read-only
checkout per commit (`checkouts/<sha>`), made once and never changed, so two runs of different
commits on one machine never disturb each other. The access token is read from the environment
at run time, put into the URL of the fetch only, and scrubbed from any error; the cache stores
no remote URL at all.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from orchestrator.core.errors import OrchestratorError, ValidationError
from orchestrator.core.paths import confined


class PullStepError(OrchestratorError):
    """A pull step is malformed, unknown, or failed."""


# Where steps say what they did (the run's log, from run_pull_steps); not a step option, so a
# spec file cannot set it.
_step_log: ContextVar[Callable[[str], Any] | None] = ContextVar("pull_step_log", default=None)


def _report(message: str) -> None:
    log = _step_log.get()
    if log is not None:
        log(message)


def _display_url(repository: str) -> str:
    """The repository as the run's log shows it: any user:password@ in an URL left out."""
    if "://" not in repository:
        return repository
    parts = urlsplit(repository)
    if parts.username is None and parts.password is None:
        return repository
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def set_working_directory(cwd: Path, *, directory: str) -> Path:
    """Run the flow from `directory` (relative to the working directory so far, and inside it
    once symlinks and `..` are resolved: a step never leaves the project or the checkout)."""
    try:
        target = confined(directory, cwd, what="set_working_directory: the directory", field="pull_steps")
    except ValidationError as outside:
        raise PullStepError(str(outside)) from None
    if not target.is_dir():
        raise PullStepError(f"set_working_directory: {target} is not a directory.")
    return target


# git@github.com:org/repo.git (scp-like ssh); the path may not start with "-".
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!-)[^:]+$")


def check_repository_url(url: Any) -> None:
    """Refuse a repository URL git could be tricked with. Accepted: https://, ssh://,
    git@host:path, file:// and absolute paths of existing local directories. Refused:
    `ext::` and other transports (they run commands), anything starting with "-" (read as an
    option), http:// and relative paths. Raises ValidationError."""
    problem = _repository_url_problem(url)
    if problem:
        raise ValidationError(f"Unsafe or unsupported repository {url!r}: {problem}", {"repository": [problem]})


def _repository_url_problem(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        return "give the repository's URL."
    if url != url.strip() or any(ch in url for ch in "\n\r\0"):
        return "it has whitespace or control characters around or in it."
    if url.startswith("-"):
        return "it starts with '-' and would be read as an option."
    if "::" in url.split("/", 1)[0] or url.lower().startswith("ext:"):
        return "transports like ext:: run commands; use https://, ssh://, git@host:path or a local path."
    if _SCP_LIKE.match(url):
        return ""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("https", "ssh"):
        parts = urlsplit(url)
        return "" if parts.hostname else "it names no host."
    if scheme == "file":
        local = urlsplit(url).path
        return "" if local and Path(local).is_dir() else f"there is no directory {local!r}."
    if scheme:
        return f"the {scheme}:// transport is not accepted; use https://, ssh://, git@host:path or a local path."
    if not os.path.isabs(url):
        return "a local repository must be an absolute path."
    return "" if Path(url).is_dir() else "there is no such directory."


def _authenticated(url: str, token: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"x-access-token:{quote(token, safe='')}@{host}", parts.path, parts.query, ""))


def _scrub(text: str, secret: str) -> str:
    if not secret:
        return text
    for form in {secret, quote(secret, safe="")}:
        text = text.replace(form, "***")
    return text


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time per repository cache (fetch and first checkout of a commit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_cache_dir(repository: str) -> Path:
    from django.conf import settings

    digest = hashlib.sha256(repository.encode()).hexdigest()[:16]
    return Path(settings.ORCHESTRATOR_HOME) / "git-cache" / digest


def git_clone(
    cwd: Path,
    *,
    repository: str,
    branch: str | None = None,
    commit: str | None = None,
    access_token_env: str | None = None,
    directory: str | None = None,
) -> Path:
    """Get `repository` at `branch` (default: the remote's HEAD) or `commit`, and return the
    checkout's directory (or `directory` inside it). The first run clones into the cache,
    later runs fetch. `access_token_env` names the environment variable holding a token for
    an https repository. Raises PullStepError with git's message (token scrubbed)."""
    import git

    check_repository_url(repository)
    if branch and commit:
        raise PullStepError("git_clone: give a branch or a commit, not both.")
    for name, value in (("branch", branch), ("commit", commit)):
        if value is not None and (not isinstance(value, str) or not value or value.startswith("-") or ".." in value):
            raise PullStepError(f"git_clone: {name} {value!r} is not a valid name.")
    token = ""
    if access_token_env:
        token = os.environ.get(access_token_env, "")
        if not token:
            raise PullStepError(
                f"git_clone: the environment variable {access_token_env} (the access token) is not set."
            )
    fetch_url = repository
    if token and repository.startswith("https://"):
        fetch_url = _authenticated(repository, token)

    cache = git_cache_dir(repository)
    bare = cache / "repo.git"
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        with _locked(cache / "lock"):
            if not (bare / "HEAD").is_file():
                shutil.rmtree(bare, ignore_errors=True)
                repo = git.Repo.init(bare, bare=True)
            else:
                repo = git.Repo(bare)
            # No remote is configured: the URL (and any token in it) is given to each fetch only.
            refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
            if not branch and not commit:
                refspecs.append("+HEAD:refs/orchestrator/remote-head")
            repo.git.fetch("--prune", "--force", "--quiet", "--", fetch_url, *refspecs, env=env)
            revision = commit or (f"refs/heads/{branch}" if branch else "refs/orchestrator/remote-head")
            try:
                sha = repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
            except git.GitCommandError:
                what = f"commit {commit}" if commit else f"branch {branch}" if branch else "a default branch"
                raise PullStepError(f"git_clone: {repository} has no {what}.") from None
            checkout = cache / "checkouts" / sha
            if not checkout.is_dir():
                _export(repo, sha, checkout)
    except git.GitCommandError as error:
        detail = (error.stderr or "").strip().removeprefix("stderr:").strip().strip("'").strip() or str(error)
        raise PullStepError(f"git_clone: git could not fetch {repository}: {_scrub(detail, token)}") from None
    except git.GitError as error:
        raise PullStepError(f"git_clone: {_scrub(str(error), token)}") from None
    what = f"branch {branch}" if branch else f"commit {commit}" if commit else "default branch"
    _report(f"Pulled {_display_url(repository)} ({what}) at commit {sha}")
    return set_working_directory(checkout, directory=directory) if directory else checkout


def _export(repo: Any, sha: str, target: Path) -> None:
    """Write the files of commit `sha` to `target`, atomically: a half-written checkout is
    never seen under its final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=target.parent))
    try:
        archive = staging / ".archive.tar"
        with open(archive, "wb") as handle:
            repo.archive(handle, treeish=sha, format="tar")
        tree = staging / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        tree.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_storage_url(url: Any) -> None:
    """A storage URL fsspec can read: `scheme://...` with a protocol fsspec knows (file://,
    s3://, gs://, az://, memory://, ...). Raises ValidationError."""
    import fsspec

    problem = ""
    if not isinstance(url, str) or "://" not in url or url != url.strip():
        problem = "give an fsspec URL such as s3://bucket/flows or file:///srv/flows."
    else:
        protocol = url.split("://", 1)[0].lower()
        if protocol not in fsspec.available_protocols():
            problem = f"fsspec knows no {protocol}:// storage."
    if problem:
        raise ValidationError(f"Unsupported storage URL {url!r}: {problem}", {"url": [problem]})


def storage_cache_dir(url: str) -> Path:
    from django.conf import settings

    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return Path(settings.ORCHESTRATOR_HOME) / "storage-cache" / digest


def pull_from_remote_storage(cwd: Path, *, url: str, directory: str | None = None, **storage_options: Any) -> Path:
    """Copy the folder at the fsspec `url` (with fsspec's `storage_options`, e.g. key/secret
    from the environment) and return the copy (or `directory` inside it). Copies are kept
    under ORCHESTRATOR_HOME/storage-cache/<hash of the URL>/<hash of the contents>: unchanged
    code is one read-only copy that later runs share, a change makes a new one. Raises
    PullStepError naming the URL."""
    import fsspec

    check_storage_url(url)
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        root = root.rstrip("/")
        files = sorted(path for path in fs.find(root) if not fs.isdir(path))
    except Exception as error:
        raise PullStepError(f"pull_from_remote_storage: cannot list {url}: {type(error).__name__}: {error}") from None
    if not files:
        raise PullStepError(f"pull_from_remote_storage: there are no files at {url}.")
    cache = storage_cache_dir(url)
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pull-", dir=cache))
    try:
        digest = hashlib.sha256()
        for path in files:
            relative = path[len(root) :].lstrip("/")
            if not relative or ".." in Path(relative).parts or relative.startswith("/"):
                raise PullStepError(f"pull_from_remote_storage: refusing the path {path!r} at {url}.")
            data = fs.cat_file(path)
            digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        copy = cache / digest.hexdigest()[:32]
        with _locked(cache / "lock"):
            if not copy.is_dir():
                staging.rename(copy)
    except PullStepError:
        raise
    except Exception as error:
        raise PullStepError(f"pull_from_remote_storage: cannot copy {url}: {type(error).__name__}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return set_working_directory(copy, directory=directory) if directory else copy


STEPS: dict[str, Callable[..., Path]] = {
    "set_working_directory": set_working_directory,
    "git_clone": git_clone,
    "pull_from_remote_storage": pull_from_remote_storage,
}


def run_pull_steps(steps: list[Any], *, cwd: Path, log: Callable[[str], Any] | None = None) -> Path:
    """Run `steps` in order from `cwd`; returns the working directory they leave. Raises
    PullStepError naming the step (by its position and name) that is malformed or failed.
    `log` receives what the steps did (git_clone: repository, branch and commit checked out)."""
    token = _step_log.set(log)
    try:
        return _run_steps(steps, cwd)
    finally:
        _step_log.reset(token)


def _run_steps(steps: list[Any], cwd: Path) -> Path:
    for position, step in enumerate(steps or [], start=1):
        if not isinstance(step, dict) or len(step) != 1:
            raise PullStepError(
                f"Pull step {position} must be a mapping of one step name to its options, not {step!r}."
            )
        ((name, options),) = step.items()
        function = STEPS.get(str(name).rsplit(".", 1)[-1])
        if function is None:
            raise PullStepError(f"Pull step {position} {name!r} is unknown (known: {', '.join(sorted(STEPS))}).")
        if not isinstance(options, dict):
            raise PullStepError(f"Pull step {position} {name!r} takes a mapping of options, not {options!r}.")
        try:
            cwd = function(cwd, **options)
        except PullStepError:
            raise
        except Exception as error:
            raise PullStepError(f"Pull step {position} {name!r} failed: {type(error).__name__}: {error}") from error
    return cwd
