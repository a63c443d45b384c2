"""dualop.audit: the hash-chained audit log, as a JSON lines file and in PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dualop.audit import (
    GENESIS,
    AuditEntry,
    AuditLog,
    FileAuditLog,
    PostgresAuditLog,
    open_audit_log,
)
from dualop.exceptions import AuditChainBroken, AuditError, InputError
from dualop.settings import Settings
from tests.support import postgres_database

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
SECRET = "hunter2-s3cr3t-value"


def _fill(log: AuditLog, n: int = 5) -> list[AuditEntry]:
    """n entries: services alternate ledger/storefront, kinds cycle, one hour apart."""
    kinds = ["release.triggered", "classification", "step.applied"]
    return [
        log.append(
            kinds[i % 3],
            service="ledger" if i % 2 == 0 else "storefront",
            run_id=f"run-{i + 1}",
            at=T0 + timedelta(hours=i),
            note=f"value-{i + 1}",
        )
        for i in range(n)
    ]


def _expected_hash(entry: AuditEntry) -> str:
    """The hash spelled out independently: sha256 of sorted-key, no-space JSON of the rest."""
    body = {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "kind": entry.kind,
        "service": entry.service,
        "run_id": entry.run_id,
        "data": entry.data,
        "prev": entry.prev,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# --- behaviour shared by both implementations ---------------------------------------------


class _Contract:
    """Checks every AuditLog must pass; subclasses provide the `log` fixture."""

    def test_round_trip(self, log: AuditLog) -> None:
        """Appended entries come back in order, chained, hashed, and verify."""
        written = _fill(log)
        assert log.entries() == written
        assert [e.seq for e in written] == [1, 2, 3, 4, 5]
        assert written[0].prev == GENESIS
        assert [e.prev for e in written[1:]] == [e.hash for e in written[:-1]]
        assert all(e.hash == _expected_hash(e) for e in written)
        assert written[2].at == T0 + timedelta(hours=2)
        assert log.verify() == 5

    def test_empty(self, log: AuditLog) -> None:
        """A log nothing was written to has no entries and verifies as 0."""
        assert log.entries() == []
        assert log.verify() == 0

    def test_secrets_redacted_on_write(self, log: AuditLog) -> None:
        """Secret-looking data is masked before it is hashed and stored."""
        entry = log.append(
            "notification",
            service="ledger",
            at=T0,
            target=f"json://ops:{SECRET}@localhost:9000/hook",
            webhook={"github_secret": SECRET, "events": ["push"]},
            api_token=SecretStr(SECRET),
            approver="alice",
        )
        assert entry.data == {
            "target": "json://ops:***@localhost:9000/hook",
            "webhook": {"github_secret": "***", "events": ["push"]},
            "api_token": "***",
            "approver": "alice",
        }
        assert SECRET not in json.dumps([e.model_dump(mode="json") for e in log.entries()])
        assert log.verify() == 1

    def test_data_made_json(self, log: AuditLog) -> None:
        """Datetimes, paths and tuples in data are stored as their JSON forms."""
        entry = log.append(
            "change.pending", at=T0, deadline=T0, workdir=Path("/srv/x"), steps=("a", "b")
        )
        assert entry.data == {
            "deadline": "2024-03-01T09:00:00Z",
            "workdir": "/srv/x",
            "steps": ["a", "b"],
        }
        assert log.entries() == [entry]

    @pytest.mark.parametrize(
        ("service", "kinds", "seq"),
        [
            pytest.param("ledger", ["classification"], 5, id="newest-of-kind"),
            pytest.param("storefront", ["classification"], 2, id="older-than-others"),
            pytest.param("storefront", ["release.triggered", "step.applied"], 4, id="kind-set"),
            pytest.param("ledger", ["no.such.kind"], None, id="none-of-kind"),
            pytest.param("nobody", ["classification"], None, id="unknown-service"),
        ],
    )  # fmt: skip
    def test_latest(self, log: AuditLog, service: str, kinds: list[str], seq: int | None) -> None:
        """The newest entry of a service among some kinds, as `entries` would end with."""
        written = _fill(log)
        found = log.latest(service=service, kinds=kinds)
        assert (found.seq if found else None) == seq
        if found is not None:
            assert found == written[seq - 1]  # type: ignore[operator]

    def test_latest_across_long_entries(self, log: AuditLog) -> None:
        """Entries longer than the blocks the file is read backwards in, and many of them."""
        for i in range(40):
            log.append(
                "classification" if i % 7 == 0 else "step.applied",
                service=f"s{i % 3}",
                at=T0 + timedelta(minutes=i),
                reasons=["x" * 9000, f"entry {i}"],
            )
        found = log.latest(service="s1", kinds=["classification"])
        assert found is not None and found.data["reasons"][1] == "entry 28"
        assert log.latest(service="s0", kinds=["step.applied"]).data["reasons"][1] == "entry 39"  # type: ignore[union-attr]
        assert log.latest(service="s2", kinds=["classification"]) is not None
        assert log.verify() == 40

    def test_latest_of_an_empty_log(self, log: AuditLog) -> None:
        assert log.latest(service="ledger", kinds=["classification"]) is None

    def test_at_converted_to_utc(self, log: AuditLog) -> None:
        """An aware time in another zone is stored as the same instant in UTC."""
        from zoneinfo import ZoneInfo

        local = datetime(2024, 7, 1, 10, 0, tzinfo=ZoneInfo("Europe/London"))
        entry = log.append("release.triggered", at=local)
        assert entry.at == local
        assert entry.at.utcoffset() == timedelta(0)
        assert log.entries()[0].at.hour == 9

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            pytest.param(lambda log: log.append("step.applied", at=datetime(2024, 1, 1)),
                         "timezone-aware", id="naive-at"),
            pytest.param(lambda log: log.append("Step Applied", at=T0),
                         "dotted lowercase", id="bad-kind"),
            pytest.param(lambda log: log.append("step.applied", at=T0, x=object()),
                         "not JSON", id="object-in-data"),
            pytest.param(lambda log: log.append("step.applied", at=T0, x=float("nan")),
                         "not JSON", id="nan-in-data"),
            pytest.param(lambda log: log.entries(since=datetime(2024, 1, 1)),
                         "timezone-aware", id="naive-since"),
        ],
    )  # fmt: skip
    def test_bad_input(self, log: AuditLog, call: Callable[[AuditLog], Any], match: str) -> None:
        """Bad arguments are refused with an InputError, and nothing is written."""
        with pytest.raises(InputError, match=match):
            call(log)
        assert log.verify() == 0

    @pytest.mark.parametrize(
        ("query", "seqs"),
        [
            pytest.param({}, [1, 2, 3, 4, 5], id="all"),
            pytest.param({"service": "ledger"}, [1, 3, 5], id="service"),
            pytest.param({"kinds": ["classification"]}, [2, 5], id="one-kind"),
            pytest.param({"kinds": {"release.triggered", "step.applied"}}, [1, 3, 4],
                         id="kind-set"),
            pytest.param({"kinds": []}, [], id="no-kinds"),
            pytest.param({"since": T0 + timedelta(hours=3)}, [4, 5], id="since-inclusive"),
            pytest.param({"service": "storefront", "kinds": ["classification"],
                          "since": T0 + timedelta(minutes=1)}, [2], id="combined"),
            pytest.param({"service": "nobody"}, [], id="unknown-service"),
        ],
    )  # fmt: skip
    def test_filters(self, log: AuditLog, query: dict[str, Any], seqs: list[int]) -> None:
        """entries() filters by service, kinds and since, keeping log order."""
        _fill(log)
        assert [e.seq for e in log.entries(**query)] == seqs


# --- the JSON lines file --------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _edit_char(lines: list[str], k: int) -> list[str]:
    out = list(lines)
    out[k - 1] = out[k - 1].replace(f"value-{k}", f"valuE-{k}")
    assert out[k - 1] != lines[k - 1]
    return out


def _delete(lines: list[str], k: int) -> list[str]:
    return lines[: k - 1] + lines[k:]


def _swap_with_next(lines: list[str], k: int) -> list[str]:
    out = list(lines)
    out[k - 1], out[k] = out[k], out[k - 1]
    return out


def _truncate_inside(lines: list[str], k: int) -> list[str]:
    return [*lines[: k - 1], lines[k - 1][: len(lines[k - 1]) // 2]]


def _truncate_before(lines: list[str], k: int) -> list[str]:
    return lines[: k - 1]


def _edit_field(field: str, old: str, new: str) -> Callable[[list[str], int], list[str]]:
    def edit(lines: list[str], k: int) -> list[str]:
        raw = json.loads(lines[k - 1])
        assert str(raw[field]).startswith(old)
        raw[field] = type(raw[field])(new) if field == "seq" else str(raw[field]).replace(old, new)
        return [*lines[: k - 1], json.dumps(raw) + "\n", *lines[k:]]

    return edit


def _blank_line_before(lines: list[str], k: int) -> list[str]:
    return [*lines[: k - 1], "\n", *lines[k - 1 :]]


TAMPERING = [
    *(pytest.param(_edit_char, k, id=f"edit-char-line{k}") for k in range(1, 6)),
    *(pytest.param(_delete, k, id=f"delete-line{k}") for k in range(1, 6)),
    *(pytest.param(_swap_with_next, k, id=f"swap-lines{k}-{k + 1}") for k in range(1, 5)),
    *(pytest.param(_truncate_inside, k, id=f"truncate-inside-line{k}") for k in range(1, 6)),
    *(pytest.param(_truncate_before, k, id=f"truncate-before-line{k}") for k in range(1, 6)),
    pytest.param(_edit_field("at", "2024-03-01T11", "2024-03-01T12"), 3, id="edit-at"),
    pytest.param(_edit_field("service", "ledger", "Ledger"), 1, id="edit-service"),
    pytest.param(_edit_field("seq", "4", "7"), 4, id="edit-seq"),
    pytest.param(_edit_field("hash", "", "0"), 2, id="edit-hash"),
    pytest.param(_blank_line_before, 3, id="blank-line"),
]


class TestFileAuditLog(_Contract):
    @pytest.fixture
    def log(self, tmp_path: Path) -> FileAuditLog:
        return FileAuditLog(tmp_path / "data" / "audit.jsonl")

    def test_one_json_object_a_line(self, log: FileAuditLog) -> None:
        """The file holds one JSON object a line, seq first, ending with a newline."""
        written = _fill(log, 3)
        text = log.path.read_text()
        assert text.endswith("\n")
        parsed = [json.loads(line) for line in text.splitlines()]
        assert [next(iter(p)) for p in parsed] == ["seq"] * 3
        assert [AuditEntry.model_validate(p) for p in parsed] == written

    @pytest.mark.parametrize(("tamper", "line"), TAMPERING)
    def test_verify_names_the_tampered_line(
        self, log: FileAuditLog, tamper: Callable[[list[str], int], list[str]], line: int
    ) -> None:
        """Any one line edited, removed, moved or cut: verify names exactly that line."""
        _fill(log)
        log.path.write_text("".join(tamper(_lines(log.path), line)))
        with pytest.raises(AuditChainBroken) as caught:
            log.verify()
        assert caught.value.line == line
        assert f"line {line} of {log.path}" in str(caught.value) or "missing" in str(caught.value)

    def test_latest_refuses_a_cut_short_end(self, log: FileAuditLog) -> None:
        """A file whose last write was cut short: an error pointing at verify, not a guess."""
        _fill(log)
        log.path.write_text("".join(_truncate_inside(_lines(log.path), 5)))
        with pytest.raises(AuditChainBroken, match="dualop audit verify"):
            log.latest(service="ledger", kinds=["classification"])

    @pytest.mark.parametrize(
        ("tamper", "line"),
        [
            pytest.param(_delete, 5, id="last-line-deleted"),
            pytest.param(_truncate_inside, 5, id="last-line-cut"),
            pytest.param(_edit_char, 5, id="last-line-edited"),
        ],
    )
    def test_append_refuses_to_hide_damage(
        self, log: FileAuditLog, tamper: Callable[[list[str], int], list[str]], line: int
    ) -> None:
        """Appending after the end was damaged raises instead of chaining over the damage."""
        _fill(log)
        log.path.write_text("".join(tamper(_lines(log.path), line)))
        damaged = log.path.read_text()
        with pytest.raises(AuditChainBroken) as caught:
            log.append("rollback", at=T0)
        assert caught.value.line == line
        assert log.path.read_text() == damaged

    def test_messages(self, log: FileAuditLog) -> None:
        """The error says what happened to the entry and what to do about it."""
        _fill(log)
        log.path.write_text("".join(_edit_char(_lines(log.path), 2)))
        with pytest.raises(AuditChainBroken, match=r"entry 2: line 2 of .*edited.*backup"):
            log.verify()

    def test_unreadable_head_record(self, log: FileAuditLog) -> None:
        """A hand-edited head record is an AuditError that says how to get past it."""
        _fill(log, 2)
        log.head_path.write_text("{not json")
        with pytest.raises(AuditError, match=r"audit\.jsonl\.head.*Delete it"):
            log.verify()
        log.head_path.unlink()
        assert log.verify() == 2

    def test_long_lines(self, log: FileAuditLog) -> None:
        """Entries longer than the tail-reading chunk chain correctly."""
        log.append("step.applied", at=T0, output="x" * 10_000)
        log.append("step.applied", at=T0, output="y" * 5_000)
        third = log.append("step.applied", at=T0, output="z")
        assert third.seq == 3
        assert log.verify() == 3

    def test_entries_names_an_unreadable_line(self, log: FileAuditLog) -> None:
        """entries() on a damaged file raises naming the line it cannot read."""
        _fill(log)
        log.path.write_text("".join(_truncate_inside(_lines(log.path), 4)))
        with pytest.raises(AuditChainBroken) as caught:
            log.entries()
        assert caught.value.line == 4

    def test_concurrent_processes(self, log: FileAuditLog) -> None:
        """Several processes appending at once: seqs 1..N with no gap or duplicate, verifies."""
        writers, each = 4, 25
        script = textwrap.dedent(
            """
            import sys
            from datetime import UTC, datetime
            from pathlib import Path
            from dualop.audit import FileAuditLog

            log = FileAuditLog(Path(sys.argv[1]))
            for i in range(int(sys.argv[3])):
                log.append("step.applied", service=sys.argv[2], at=datetime.now(UTC), i=i)
            """
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(log.path), f"w{w}", str(each)])
            for w in range(writers)
        ]
        assert [p.wait(timeout=120) for p in procs] == [0] * writers
        assert log.verify() == writers * each
        entries = log.entries()
        assert [e.seq for e in entries] == list(range(1, writers * each + 1))
        for w in range(writers):
            assert [e.data["i"] for e in entries if e.service == f"w{w}"] == list(range(each))


# --- PostgreSQL -----------------------------------------------------------------------------


async def _sql(dsn: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards."""
    with postgres_database("dualop_test") as dsn:
        yield dsn


@pytest.mark.postgres
class TestPostgresAuditLog(_Contract):
    @pytest.fixture
    def log(self, pg_dsn: str) -> PostgresAuditLog:
        return PostgresAuditLog(pg_dsn)

    @pytest.mark.parametrize(
        ("sql", "line"),
        [
            pytest.param("UPDATE dualop_audit SET data = replace(data, 'value-3', 'valuE-3') "
                         "WHERE seq = 3", 3, id="data-edited"),
            pytest.param("UPDATE dualop_audit SET at = at + interval '1 second' WHERE seq = 1",
                         1, id="time-edited"),
            pytest.param("UPDATE dualop_audit SET data = '{not json' WHERE seq = 4", 4,
                         id="data-not-json"),
            pytest.param("DELETE FROM dualop_audit WHERE seq = 2", 2, id="row-deleted"),
            pytest.param("DELETE FROM dualop_audit WHERE seq = 5", 5, id="last-row-deleted"),
            pytest.param("UPDATE dualop_audit SET seq = -seq WHERE seq IN (2, 3); "
                         "UPDATE dualop_audit SET seq = 5 + seq WHERE seq < 0", 2,
                         id="rows-swapped"),
        ],
    )  # fmt: skip
    def test_verify_names_the_tampered_entry(
        self, log: PostgresAuditLog, pg_dsn: str, sql: str, line: int
    ) -> None:
        """A row edited, removed or reordered by SQL: verify names that entry."""
        _fill(log)
        asyncio.run(_sql(pg_dsn, sql))
        with pytest.raises(AuditChainBroken) as caught:
            log.verify()
        assert caught.value.line == line

    @pytest.mark.parametrize(
        "sql",
        [
            pytest.param("DELETE FROM dualop_audit WHERE seq = 5", id="last-row-deleted"),
            pytest.param("UPDATE dualop_audit SET kind = 'rollback' WHERE seq = 5",
                         id="last-row-edited"),
        ],
    )  # fmt: skip
    def test_append_refuses_to_hide_damage(
        self, log: PostgresAuditLog, pg_dsn: str, sql: str
    ) -> None:
        """Appending after the newest row was deleted or edited raises, naming it."""
        _fill(log)
        asyncio.run(_sql(pg_dsn, sql))
        before = log.entries()
        with pytest.raises(AuditChainBroken) as caught:
            log.append("rollback", at=T0)
        assert caught.value.line == 5
        assert log.entries() == before

    def test_concurrent_writers(self, pg_dsn: str) -> None:
        """Threads with their own log objects append at once: one chain, seqs contiguous."""
        writers, each = 6, 10
        errors: list[BaseException] = []

        def write(w: int) -> None:
            log = PostgresAuditLog(pg_dsn)  # each creates the schema if missing, at once
            try:
                for i in range(each):
                    log.append("step.applied", service=f"w{w}", at=T0, i=i)
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        log = PostgresAuditLog(pg_dsn)
        assert log.verify() == writers * each
        entries = log.entries()
        assert [e.seq for e in entries] == list(range(1, writers * each + 1))
        for w in range(writers):
            assert [e.data["i"] for e in entries if e.service == f"w{w}"] == list(range(each))

    def test_called_from_a_running_event_loop(self, log: PostgresAuditLog) -> None:
        """Sync calls work inside async code (a Prefect async flow) without nesting loops."""

        async def flow_body() -> int:
            log.append("release.triggered", service="ledger", at=T0)
            return log.verify()

        assert asyncio.run(flow_body()) == 1

    def test_sqlalchemy_dsn_accepted(self, pg_dsn: str) -> None:
        """A `postgresql+asyncpg://` DSN (Prefect's spelling) works too."""
        log = PostgresAuditLog(pg_dsn.replace("postgresql://", "postgresql+asyncpg://"))
        log.append("release.triggered", at=T0)
        assert log.verify() == 1


class TestPostgresErrors:
    def test_unreachable_server(self) -> None:
        """No server: an AuditError naming the host and the setting, never the password."""
        log = PostgresAuditLog(f"postgresql://dualop:{SECRET}@127.0.0.1:1/audit")
        with pytest.raises(AuditError, match=r"127\.0\.0\.1:1.*DUALOP_AUDIT__DSN") as caught:
            log.verify()
        assert SECRET not in str(caught.value)
        assert SECRET not in repr(log)


class TestOpenAuditLog:
    def test_file_by_default(self, tmp_path: Path) -> None:
        """The embedded default is the JSON lines file in the data folder."""
        settings = Settings(config_dir=tmp_path, data_dir=tmp_path / "data")
        log = open_audit_log(settings)
        assert isinstance(log, FileAuditLog)
        assert log.path == tmp_path / "data" / "audit.jsonl"

    def test_postgres(self, tmp_path: Path) -> None:
        """backend=postgres opens the PostgreSQL log with the configured DSN."""
        settings = Settings(
            config_dir=tmp_path,
            audit={"backend": "postgres", "dsn": "postgresql://u:pw@db.example:5432/audit"},
        )
        log = open_audit_log(settings)
        assert isinstance(log, PostgresAuditLog)
        assert "db.example:5432/audit" in repr(log)
        assert "pw" not in repr(log)
