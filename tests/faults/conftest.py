from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI
from tests.faults.pg_cluster import PrivateCluster, find_bin_dir


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster, created for the test and removed after it."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "needs PostgreSQL's server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    made = PrivateCluster(bin_dir)
    try:
        made.create()
        yield made
    finally:
        made.drop()
