"""Scale-out fixtures: fresh PostgreSQL databases and an HTTP endpoint for the ops squad."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import for_prefect, ops_inbox, postgres_database


@pytest.fixture(scope="module")
def pg_databases() -> Iterator[tuple[str, str]]:
    """Two fresh databases, one for Prefect (as its server takes the URL) and one for
    dualop's audit log, dropped afterwards (connections still open are ended)."""
    with (
        postgres_database("dualop_scale") as prefect_db,
        postgres_database("dualop_scale_audit") as audit_db,
    ):
        yield for_prefect(prefect_db), audit_db


@pytest.fixture(scope="module")
def ops_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint recording what apprise's json:// sends (the ops hand-overs)."""
    with ops_inbox() as inbox:
        yield inbox
