"""The `manage.py deploy` wizard, for a person at a terminal.

It finds the flows in the working directory with a static scan (ast: no user code runs to find
them), then asks for the deployment's name, its parameters (every required one; new defaults for
the others if wanted), a schedule, the work pool (arrow keys or numbers) and
whether workers should pull the code from the repository's git remote, deploys through
deploy_definitions (the same service as flags and spec files) and offers to save the answers to
the spec file.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployments import schedule_times
from deployments.services.deploying import DeployResult, deploy_definitions, flow_parameter_schema
from deployments.services.editing import check_default_parameters
from deployments.specs import DeploymentDefinition, save_to_spec_file
from orchestrator.core.errors import ValidationError
from orchestrator.core.parameters import parameters_from_strings

_KEEP = object()  # an optional parameter left at the flow's default
SKIPPED_DIRS = {"node_modules", "__pycache__", "site-packages", "venv", "env", "build", "dist"}


@dataclass(frozen=True)
class FoundFlow:
    entrypoint: str  # path/to/file.py:function, relative to the directory scanned
    name: str  # the flow's name: @flow(name=...) when written as a literal, else the function's


def discover_flows(root: Path) -> list[FoundFlow]:
    """Functions decorated with @flow / @flow(...) (bare or through a module: @orchestrator.flow)
    in the .py files under `root`, hidden and virtualenv folders skipped. Files that do not
    parse are skipped: the scan never imports anything."""
    found = []
    for file in sorted(_python_files(root)):
        try:
            tree = ast.parse(file.read_bytes(), filename=str(file))
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in node.decorator_list:
                    name = _flow_decorator_name(decorator, node.name)
                    if name is not None:
                        found.append(FoundFlow(f"{file.relative_to(root).as_posix()}:{node.name}", name))
                        break
    return found


def _python_files(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in SKIPPED_DIRS]
        yield from (Path(directory) / f for f in files if f.endswith(".py"))


def _flow_decorator_name(decorator: ast.expr, function: str) -> str | None:
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call else decorator
    named = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else ""
    if named != "flow":
        return None
    for keyword in call.keywords if call else []:
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
            return keyword.value.value
    return function


@dataclass
class GitSource:
    repository: str
    branch: str
    root: Path
    warnings: list[str]


def detect_git(directory: Path) -> GitSource | None:
    """The repository `directory` is in and its remote (origin, else the first), with warnings
    about what a worker pulling from the remote would not see; None without a remote."""
    import git

    try:
        repo = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    remotes = {r.name: r for r in repo.remotes}
    remote = remotes.get("origin") or next(iter(remotes.values()), None)
    if remote is None or repo.working_tree_dir is None:
        return None
    try:
        url = next(iter(remote.urls))
    except (StopIteration, git.GitCommandError):
        return None
    root = Path(repo.working_tree_dir).resolve()
    warnings = []
    if root != directory.resolve():
        warnings.append(
            f"You are not at the root of the repository ({root}): entrypoints will be relative to "
            "the root, as in the clone workers make; deploy from the root to keep them short."
        )
    if repo.is_dirty(untracked_files=True):
        warnings.append("The working tree has changes that are not committed and pushed: workers will not see them.")
    try:
        branch = repo.active_branch
    except TypeError:
        return GitSource(url, "", root, [*warnings, "HEAD is detached: workers will pull the remote's default branch."])
    tracking = branch.tracking_branch()
    if tracking is None or not tracking.is_valid():
        # No upstream configured: the same-named branch of the remote, as a push leaves it.
        tracking = next((ref for ref in remote.refs if ref.remote_head == branch.name), None)
    if tracking is None or not tracking.is_valid():
        warnings.append(f"Branch {branch.name!r} has not been pushed to {remote.name!r}: workers cannot pull it yet.")
    else:
        ahead = sum(1 for _ in repo.iter_commits(f"{tracking.path}..{branch.path}"))
        if ahead:
            warnings.append(
                f"Branch {branch.name!r} has {ahead} commit(s) not pushed to {remote.name!r}: workers will not see them."
            )
    return GitSource(url, branch.name, root, warnings)


class Wizard:
    def __init__(self, out: Any, directory: Path, *, spec_file: Path) -> None:
        self.out = out
        self.directory = directory.resolve()
        self.spec_file = spec_file

    def say(self, text: str = "") -> None:
        self.out.write(text)
        self.out.flush()

    def run(self, report: Callable[[list[DeployResult]], None]) -> None:
        from workpools.models import WorkPool

        flows = discover_flows(self.directory)
        if not flows:
            raise ValidationError(
                f"No flows found in {self.directory}: decorate a function with @flow, or pass ENTRYPOINT."
            )
        pools = list(WorkPool.objects.order_by("name").values_list("name", flat=True))
        if not pools:
            raise ValidationError(
                "There is no work pool to deploy to: create one with `manage.py workpool create NAME`."
            )
        chosen = flows[
            self.choose("Which flow would you like to deploy?", [f"{f.name}  ({f.entrypoint})" for f in flows])
        ]
        name = self.ask("Deployment name", default="default")
        parameters = self.ask_parameters(flow_parameter_schema(chosen.entrypoint, self.directory))
        schedules = self.ask_schedule()
        pool = pools[self.choose("Which work pool would you like to deploy this flow to?", pools)]
        pull_steps, project_dir = self.ask_git()
        # Entrypoints are relative to the project directory: the clone's root when pulling from git.
        path, _, function = chosen.entrypoint.partition(":")
        entrypoint = f"{(self.directory / path).relative_to(project_dir).as_posix()}:{function}"
        definition = DeploymentDefinition(
            name=name,
            entrypoint=entrypoint,
            work_pool=pool,
            schedules=schedules,
            pull_steps=pull_steps,
            parameters=parameters,
        )
        report(deploy_definitions([definition], project_dir=project_dir))
        if self.confirm(f"Would you like to save this deployment's configuration to {self.spec_file}?", default=True):
            save_to_spec_file(self.spec_file, definition, pull_steps)
            self.say(f"Saved to {self.spec_file}; redeploy with: manage.py deploy --name {name}")

    # --- questions ---------------------------------------------------------------------------

    def ask(self, question: str, *, default: str = "") -> str:
        while True:
            suffix = f" [{default}]" if default else ""
            answer = self.read_line(f"{question}{suffix}: ").strip() or default
            if answer:
                return answer
            self.say("Please answer.")

    def confirm(self, question: str, *, default: bool) -> bool:
        while True:
            answer = self.read_line(f"{question} [{'Y/n' if default else 'y/N'}]: ").strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            self.say("Please answer y or n.")

    def read_line(self, prompt: str) -> str:
        self.out.write(prompt, ending="")
        self.out.flush()
        line = sys.stdin.readline()
        if not line:
            raise ValidationError("Stopped: no more input.")
        return line.rstrip("\n")

    def ask_parameters(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Default parameters: a value for each required parameter (a deployment without one
        could not run), then, if wanted, new defaults for the others (Enter keeps the flow's).
        Each answer is read and checked as `--param` is, and asked again until it fits."""
        properties: dict[str, Any] = schema.get("properties", {}) if isinstance(schema, dict) else {}
        required = [key for key in schema.get("required", []) if key in properties] if properties else []
        values: dict[str, Any] = {}
        for key in required:
            values[key] = self._ask_parameter(schema, key, required=True)
        optional = [key for key in properties if key not in required]
        if optional:
            shown = ", ".join(f"{key}={properties[key].get('default')!r}" for key in optional)
            if self.confirm(f"Would you like to change the defaults of its parameters ({shown})?", default=False):
                for key in optional:
                    value = self._ask_parameter(schema, key, required=False)
                    if value is not _KEEP:
                        values[key] = value
        return values

    def _ask_parameter(self, schema: dict[str, Any], key: str, *, required: bool) -> Any:
        spec = schema["properties"][key]
        kind = spec.get("type") or "any"
        while True:
            if required:
                text = self.read_line(f"Parameter {key!r} ({kind}, required): ").strip()
                if not text:
                    self.say("Please answer: the flow cannot run without it.")
                    continue
            else:
                default = spec.get("default")
                shown = default if isinstance(default, str) else json.dumps(default)
                text = self.read_line(f"Parameter {key!r} ({kind}) [{shown}]: ").strip()
                if not text:
                    return _KEEP
            try:
                value = parameters_from_strings(schema, {key: text})
                return check_default_parameters(schema, value)[key]
            except ValidationError as error:
                self.say(f"{error} Try again.")

    def ask_schedule(self) -> list[dict[str, Any]]:
        if not self.confirm("Would you like to schedule when this flow runs?", default=False):
            return []
        kinds = ["cron", "interval", "rrule"]
        labels = ["Cron (e.g. 0 9 * * 1-5)", "Interval (every N seconds)", "RRule (e.g. FREQ=WEEKLY;BYDAY=MO)"]
        kind = kinds[self.choose("What kind of schedule?", labels)]
        while True:
            text = self.ask(
                {"cron": "Cron expression", "interval": "Interval in seconds", "rrule": "Recurrence rule"}[kind]
            )
            zone = self.ask("Timezone", default="UTC")
            definition: dict[str, Any] = {"kind": kind, "timezone": zone}
            if kind == "interval":
                definition["interval_seconds"] = int(text) if text.isdigit() else -1
            else:
                definition[kind] = text
            spec = schedule_times.ScheduleSpec.of_definition(definition)
            try:
                schedule_times.validate_schedule(spec)
            except ValidationError as error:
                self.say(f"{error} Try again.")
                continue
            self.say(f"Schedule: {schedule_times.describe_schedule(spec)}")
            return [definition]

    def ask_git(self) -> tuple[list[dict[str, Any]], Path]:
        """The pull steps, and the directory entrypoints are relative to."""
        source = detect_git(self.directory)
        if source is None:
            self.say("No git remote found: workers will run the code from this directory.")
            return [], self.directory
        for warning in source.warnings:
            self.say(f"Warning: {warning}")
        question = (
            f"Would you like your workers to pull your flow code from its remote repository ({source.repository})?"
        )
        if not self.confirm(question, default=True):
            return [], self.directory
        options: dict[str, Any] = {"repository": source.repository}
        if source.branch:
            options["branch"] = source.branch
        return [{"git_clone": options}], source.root

    def choose(self, question: str, options: list[str]) -> int:
        """The index of the option picked with the arrow keys and Enter, or by typing its number."""
        self.say(f"{question} (use arrow keys or type a number, then Enter)")
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        current, typed = 0, ""
        self._draw(options, current, first=True)
        try:
            tty.setcbreak(fd)
            for key in _keys(fd):
                if key in ("\r", "\n"):
                    break
                if key in ("\x1b[A", "\x1bOA", "k"):
                    current, typed = (current - 1) % len(options), ""
                elif key in ("\x1b[B", "\x1bOB", "j"):
                    current, typed = (current + 1) % len(options), ""
                elif key.isdigit():
                    typed = typed + key if typed and 0 < int(typed + key) <= len(options) else key
                    if 0 < int(typed) <= len(options):
                        current = int(typed) - 1
                elif key == "\x03":
                    raise KeyboardInterrupt
                self._draw(options, current)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        self.say(f"Selected: {options[current]}")
        return current

    def _draw(self, options: list[str], current: int, *, first: bool = False) -> None:
        if not first:
            self.out.write(f"\x1b[{len(options)}A", ending="")
        for index, option in enumerate(options):
            marker = ">" if index == current else " "
            self.out.write(f"\r\x1b[2K{marker} {index + 1}) {option}")
        self.out.flush()


def _keys(fd: int) -> Iterator[str]:
    """Key presses read from the terminal: arrow keys as their escape sequences, anything else
    one character at a time (a paste or a fast typist sends several in one read)."""
    pending = ""
    while True:
        if not pending:
            chunk = os.read(fd, 64)
            if not chunk:
                raise ValidationError("Stopped: no more input.")
            pending = chunk.decode(errors="ignore")
        if pending[:1] == "\x1b" and pending[1:2] in ("[", "O") and len(pending) >= 3:
            key, pending = pending[:3], pending[3:]
        else:
            key, pending = pending[:1], pending[1:]
        yield key
