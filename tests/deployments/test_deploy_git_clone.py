"""The git_clone pull step against real repositories: a per-repository cache that later runs
fetch into, a checkout per commit, tokens that are used but never kept or shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.steps import PullStepError, git_cache_dir, git_clone, run_pull_steps
from tests.deployments.deploy_helpers import commit_and_push, git, make_project

HERE = Path(".")


@pytest.fixture(autouse=True)
def git_home(settings: Any, tmp_path: Path) -> Path:
    settings.ORCHESTRATOR_HOME = tmp_path / "home"
    return settings.ORCHESTRATOR_HOME


def test_the_first_run_clones_and_the_next_one_fetches_into_the_same_cache(tmp_path: Path) -> None:
    project, remote = make_project(tmp_path)
    first = git_clone(HERE, repository=str(remote), branch="main")
    assert (first / "flows" / "hello.py").is_file()
    cache = git_cache_dir(str(remote))
    marker = cache / "repo.git" / "kept"
    marker.write_text("the cache is not cloned again")

    (project / "flows" / "hello.py").write_text("changed = True\n")
    commit_and_push(project, "Change")
    second = git_clone(HERE, repository=str(remote), branch="main")
    assert marker.exists()
    assert second != first and second.parent == first.parent == cache / "checkouts"
    assert (second / "flows" / "hello.py").read_text() == "changed = True\n"
    assert "changed" not in (first / "flows" / "hello.py").read_text()  # a run on the old commit is undisturbed
    assert git_clone(HERE, repository=str(remote), branch="main") == second


def test_a_commit_or_the_default_branch_can_be_checked_out(tmp_path: Path) -> None:
    project, remote = make_project(tmp_path)
    old = git(project, "rev-parse", "HEAD")
    (project / "new.txt").write_text("new")
    commit_and_push(project, "New")
    assert not (git_clone(HERE, repository=str(remote), commit=old) / "new.txt").exists()
    assert (git_clone(HERE, repository=f"file://{remote}") / "new.txt").exists()


def test_steps_chain_into_a_subdirectory_of_the_clone(tmp_path: Path) -> None:
    project, remote = make_project(tmp_path)
    lines: list[str] = []
    workdir = run_pull_steps(
        [
            {"git_clone": {"repository": str(remote), "branch": "main"}},
            {"set_working_directory": {"directory": "flows"}},
        ],
        cwd=tmp_path,
        log=lines.append,
    )
    assert (workdir / "hello.py").is_file()
    sha = git(project, "rev-parse", "HEAD")
    assert lines == [f"Pulled {remote} (branch main) at commit {sha}"]


def test_the_logged_repository_hides_credentials_in_its_url(tmp_path: Path) -> None:
    from orchestrator.engine.steps import _display_url

    assert _display_url("https://leo:hunter2@example.com/org/flows.git") == "https://example.com/org/flows.git"
    assert _display_url("git@github.com:org/flows.git") == "git@github.com:org/flows.git"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"branch": "nope"}, "has no branch nope."),
        ({"branch": "--upload-pack=x"}, "branch '--upload-pack=x' is not a valid name."),
        ({"branch": "main", "commit": "abc"}, "give a branch or a commit, not both."),
    ],
)
def test_bad_revisions_are_refused(tmp_path: Path, options: dict[str, str], message: str) -> None:
    _, remote = make_project(tmp_path)
    with pytest.raises(PullStepError, match=message.replace("(", r"\(").replace(".", r"\.")):
        git_clone(HERE, repository=str(remote), **options)


def test_an_unsafe_repository_stored_anyway_is_refused_at_run_time() -> None:
    with pytest.raises(PullStepError, match="Unsafe or unsupported repository 'ext::sh -c id'"):
        run_pull_steps([{"git_clone": {"repository": "ext::sh -c id"}}], cwd=HERE)


def test_the_token_is_read_from_the_environment_used_and_never_shown_or_kept(monkeypatch: Any) -> None:
    monkeypatch.setenv("GIT_TOKEN", "s3cr3t-t0ken")
    repository = "https://127.0.0.1:9/org/flows.git"  # nothing listens: git fails at once
    with pytest.raises(PullStepError) as error:
        git_clone(HERE, repository=repository, branch="main", access_token_env="GIT_TOKEN")
    message = str(error.value)
    assert message.startswith(f"git_clone: git could not fetch {repository}: ")
    assert "s3cr3t-t0ken" not in message
    assert "s3cr3t-t0ken" not in (git_cache_dir(repository) / "repo.git" / "config").read_text()


def test_a_missing_token_variable_is_a_clear_error(monkeypatch: Any) -> None:
    monkeypatch.delenv("GIT_TOKEN", raising=False)
    with pytest.raises(PullStepError, match="the environment variable GIT_TOKEN \\(the access token\\) is not set"):
        git_clone(HERE, repository="https://example.com/org/flows.git", access_token_env="GIT_TOKEN")
