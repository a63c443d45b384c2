"""Scale-out fixtures: fresh PostgreSQL databases and an HTTP endpoint for the ops squad."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

PG_HOST = "127.0.0.1:5432"
PG_ADMIN = f"postgresql://postgres@{PG_HOST}/postgres"


async def _admin(*statements: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=10)
    except OSError as e:
        raise AssertionError(
            f"PostgreSQL is not reachable at {PG_HOST} ({e}); the scale-out test needs it "
            "(trust auth, user postgres)"
        ) from None
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_databases() -> Iterator[tuple[str, str]]:
    """Two fresh databases, `dualop_scale_<random>` for Prefect and `<that>_audit` for
    dualop's audit log, dropped afterwards (connections still open are ended)."""
    name = f"dualop_scale_{secrets.token_hex(5)}"
    asyncio.run(_admin(f"CREATE DATABASE {name}", f"CREATE DATABASE {name}_audit"))
    try:
        yield (
            f"postgresql+asyncpg://postgres@{PG_HOST}/{name}",
            f"postgresql://postgres@{PG_HOST}/{name}_audit",
        )
    finally:
        asyncio.run(
            _admin(
                f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                f"DROP DATABASE IF EXISTS {name}_audit WITH (FORCE)",
            )
        )


@pytest.fixture(scope="module")
def ops_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP endpoint recording what apprise's json:// sends (the ops hand-overs)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/", received
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
