"""The dependency direction of docs/architecture.md, checked by import-linter on every run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_imports_point_one_way() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.subprocess
def test_the_runtime_imports_without_the_servers_settings(tmp_path: Path) -> None:
    """A flow process on a remote worker has no DJANGO_SETTINGS_MODULE and no database: the SDK,
    the engine and the HTTP client must import (and a flow be defined) with none of it."""
    code = (
        "import sys\n"
        "from orchestrator import flow, task, get_run_logger\n"
        "import orchestrator.engine, orchestrator.client.http\n"
        "@flow\n"
        "def f(x: int = 1):\n"
        "    return x\n"
        "server = [m for m in sys.modules if m.split('.')[0] in {'runs', 'deployments', 'workpools', 'accounts', 'automations'}"
        " or m in {'orchestrator.settings', 'orchestrator.direct', 'rest_framework', 'celery'}]\n"
        "assert not server, server\n"
        "print('ok', f.parameter_schema['properties']['x']['type'])\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ORCHESTRATOR_HOME": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok integer"
    assert not (tmp_path / "none").exists(), "importing the runtime created the server's data directory"
