"""Start-up cost: a command loads only what it uses (Celery, pydantic and the REST API stay
unloaded until something needs them). Checked by what gets imported, never by a timer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import runpy, sys
sys.argv = ["manage.py", *sys.argv[1:]]
try:
    runpy.run_path("manage.py", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
heavy = ("celery", "kombu", "pydantic", "rest_framework.views", "drf_spectacular.openapi", "jinja2")
print(" ".join(sorted(name for name in heavy if name in sys.modules)) or "none", file=sys.stderr)
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", [["workpool", "ls"], ["flowrun", "ls"]])
def test_a_cli_command_loads_neither_celery_nor_pydantic_nor_the_api(
    subprocess_env: dict[str, str], command: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *command],
        cwd=ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "none"


@pytest.mark.django_db(transaction=True)
def test_sending_a_task_still_loads_the_celery_app(subprocess_env: dict[str, str]) -> None:
    probe = (
        "import django; django.setup()\n"
        "from deployments.tasks import schedule_deployment\n"
        "from django.conf import settings\n"
        "print(schedule_deployment.app.main, schedule_deployment.app.conf.broker_url == settings.CELERY_BROKER_URL)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["orchestrator", "True"]
