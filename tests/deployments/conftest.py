from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deployments.deploy_helpers import HELLO


@pytest.fixture
def project(tmp_path: Path, monkeypatch: Any, pool: Any) -> Path:
    """The tutorial's flow in flows/hello.py, as the working directory, with my-process-pool."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.py").write_text(HELLO)
    monkeypatch.chdir(tmp_path)
    return tmp_path
