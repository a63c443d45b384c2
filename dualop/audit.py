"""The audit log: an append-only hash chain of everything a release did.

Every trigger, classification, pending change, decision, step, rollback, outcome and
notification is appended as an `AuditEntry`. Each entry carries the SHA-256 of the entry
before it (`prev`) and its own (`hash`, over the canonical JSON of every other field), so
`verify()` finds the first entry that was edited, removed or reordered.

Two implementations of the `AuditLog` protocol:

- `FileAuditLog`, the embedded default: JSON lines in `<data dir>/audit.jsonl`, one entry a
  line, fsynced per entry. Writers from several processes take an exclusive `flock` on the
  file, read the last line's hash, append, and record the newest entry in a small sidecar
  (`audit.jsonl.head`) so that lines deleted from the end are noticed too.
- `PostgresAuditLog`, for scale-out: table `dualop_audit` (plus `dualop_audit_head`), one
  writer at a time through `pg_advisory_xact_lock` in the insert's transaction.

The chain shows accidental or hand edits; it is not a signature (whoever can write the file
can recompute every hash). Data is passed through `dualop.logging.redact` before it is
hashed and written, so no secret is ever stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, assert_never, runtime_checkable

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticSerializationError, to_jsonable_python

from dualop.exceptions import AuditChainBroken, AuditError, InputError
from dualop.logging import redact, redact_url

if TYPE_CHECKING:
    from dualop.settings import Settings

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "FileAuditLog",
    "PostgresAuditLog",
    "open_audit_log",
]

GENESIS = "0" * 64
"""The `prev` of the first entry."""

_KIND = re.compile(r"^[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)*$")
_HEX64 = r"^[0-9a-f]{64}$"
_T = TypeVar("_T")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _canonical(obj: Any) -> str:
    """The one JSON spelling that hashes are computed over: sorted keys, no spaces."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


class AuditEntry(BaseModel):
    """One line of the audit log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1, description="1-based position in the log")
    at: datetime = Field(description="when it happened (UTC)")
    kind: str = Field(pattern=_KIND.pattern, description="dotted, e.g. `approval.decision`")
    service: str | None = None
    run_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="JSON data, secrets masked")
    prev: str = Field(pattern=_HEX64, description="hash of the entry before (GENESIS first)")
    hash: str = Field(pattern=_HEX64, description="sha256 of the canonical JSON of the rest")

    @field_validator("at")
    @classmethod
    def _aware_utc(cls, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("needs a timezone (UTC)")
        return at.astimezone(UTC)

    @field_serializer("at", when_used="json")
    def _at_iso(self, at: datetime) -> str:
        return _iso(at)


@runtime_checkable
class AuditLog(Protocol):
    """Where audit entries go; `open_audit_log` picks the implementation from settings."""

    def append(
        self,
        kind: str,
        *,
        service: str | None = None,
        run_id: str | None = None,
        at: datetime,
        **data: Any,
    ) -> AuditEntry:
        """Add an entry at the end of the chain and return it (data redacted)."""
        ...

    def entries(
        self,
        *,
        service: str | None = None,
        kinds: Collection[str] | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """Entries in order, optionally only one service's, some kinds, or at/after `since`."""
        ...

    def latest(self, *, service: str, kinds: Collection[str]) -> AuditEntry | None:
        """The newest entry of `service` of one of `kinds`, or None; read from the end,
        so its cost does not grow with the log (the receiver asks it per delivery)."""
        ...

    def verify(self) -> int:
        """Check the chain; return the number of entries or raise `AuditChainBroken`."""
        ...


# --- shared rules -------------------------------------------------------------------------


def _new_entry(
    kind: str,
    *,
    seq: int,
    prev: str,
    service: str | None,
    run_id: str | None,
    at: datetime,
    data: dict[str, Any],
) -> AuditEntry:
    """Build the next entry: validate, make the data JSON and masked, hash it."""
    if not _KIND.fullmatch(kind):
        raise InputError(
            f"audit entry kind {kind!r} is not a dotted lowercase name; use e.g. 'step.applied'"
        )
    if at.tzinfo is None or at.utcoffset() is None:
        raise InputError(f"audit entry {kind!r}: `at` must be timezone-aware; pass UTC times")
    try:
        # Masked before (SecretStr, models) and after (dataclasses) becoming JSON.
        clean = redact(to_jsonable_python(redact(data)))
        _canonical(clean)
    except (PydanticSerializationError, ValueError) as e:
        raise InputError(
            f"audit entry {kind!r}: its data is not JSON ({e}); pass strings, numbers, "
            "booleans, lists, dicts, datetimes or pydantic models"
        ) from None
    payload = {
        "seq": seq,
        "at": _iso(at),
        "kind": kind,
        "service": service,
        "run_id": run_id,
        "data": clean,
        "prev": prev,
    }
    return AuditEntry(**payload, hash=_digest(payload))


def _line(entry: AuditEntry) -> bytes:
    """One line of the file: fields in their declared order (seq first) for people reading
    it; `verify` re-canonicalises before hashing, so the order is free."""
    text = json.dumps(entry.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode()


class _Broken(Exception):
    """Internal: why one entry breaks the chain (the caller adds where it is)."""


def _check(raw: object, *, position: int, prev: str) -> AuditEntry:
    """Check the entry found at `position` (1-based) after an entry whose hash is `prev`."""
    entry = _check_alone(raw)
    if entry.seq != position:
        raise _Broken(
            f"it is entry {entry.seq} where entry {position} was expected: "
            "an entry was removed or the entries were reordered"
        )
    if entry.prev != prev:
        raise _Broken(
            "its `prev` is not the hash of the entry before it: "
            "an entry was removed, replaced or reordered"
        )
    return entry


def _check_alone(raw: object) -> AuditEntry:
    """Check what one entry can say about itself: its form, and that it matches its hash."""
    if not isinstance(raw, dict):
        raise _Broken("it is not a JSON object")
    try:
        entry = AuditEntry.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        raise _Broken(f"it is not an audit entry ({where}: {first['msg']})") from None
    body = {k: v for k, v in raw.items() if k != "hash"}
    try:
        recomputed = _digest(body)
    except ValueError:  # NaN or infinity typed in by hand
        raise _Broken("its data is not valid JSON") from None
    if recomputed != entry.hash:
        raise _Broken("its content does not match its hash: the entry was edited")
    return entry


def _check_head(head: tuple[int, str] | None, *, last: AuditEntry | None, count: int) -> None:
    """The newest entry ever written (the head) must still be there, unchanged."""
    if head is None:
        return
    seq, digest = head
    if seq > count:
        missing = f"entry {count + 1}" if seq == count + 1 else f"entries {count + 1}..{seq}"
        raise AuditChainBroken(
            line=count + 1,
            why=f"{missing} missing: the log ends at entry {count} but entry {seq} was "
            "written; entries were deleted from the end or the log was truncated",
        )
    if seq == count and last is not None and last.hash != digest:
        raise AuditChainBroken(
            line=count, why="the last entry is not the one that was written: it was replaced"
        )


def _check_since(since: datetime | None) -> None:
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise InputError("`since` must be timezone-aware; pass a UTC time")


def _filtered(
    entries: Iterator[AuditEntry],
    *,
    service: str | None,
    kinds: Collection[str] | None,
    since: datetime | None,
) -> list[AuditEntry]:
    _check_since(since)
    wanted = set(kinds) if kinds is not None else None
    return [
        e
        for e in entries
        if (service is None or e.service == service)
        and (wanted is None or e.kind in wanted)
        and (since is None or e.at >= since)
    ]


_FIX = " Restore the log from a backup; entries from this one on cannot be trusted."


# --- JSON lines file ----------------------------------------------------------------------


class FileAuditLog:
    """Append-only JSON lines in `path`; safe for several processes appending at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    def __repr__(self) -> str:
        return f"FileAuditLog({str(self.path)!r})"

    @contextlib.contextmanager
    def _open(self, *, write: bool) -> Iterator[int | None]:
        """The log's file descriptor under a lock (exclusive to write, shared to read).

        Yields None when reading a log that does not exist yet.
        """
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        else:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                yield None
                return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def _raw_lines(self, fd: int) -> Iterator[tuple[int, bytes, bool]]:
        """(line number, bytes without the newline, whether the newline was there)."""
        with os.fdopen(os.dup(fd), "rb") as f:
            f.seek(0)
            for number, raw in enumerate(f, start=1):
                yield number, raw.rstrip(b"\n"), raw.endswith(b"\n")

    def _parse(self, number: int, raw: bytes, complete: bool) -> object:
        if not complete:
            raise AuditChainBroken(
                line=number,
                why=f"line {number} of {self.path} is incomplete (no end of line): "
                "the file was truncated or a write was cut short." + _FIX,
            )
        try:
            return json.loads(raw)
        except ValueError:
            raise AuditChainBroken(
                line=number,
                why=f"line {number} of {self.path} is not valid JSON: it was edited or "
                "truncated." + _FIX,
            ) from None

    def _read_head(self) -> tuple[int, str] | None:
        try:
            raw = json.loads(self.head_path.read_bytes())
            return int(raw["seq"]), str(raw["hash"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as e:
            raise AuditError(
                f"{self.head_path} (the record of the newest audit entry) is unreadable ({e}); "
                "it was edited. Delete it to verify the log without checking its end"
            ) from None

    def _write_head(self, entry: AuditEntry) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(_canonical({"seq": entry.seq, "hash": entry.hash}).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.head_path)

    def _verify_locked(self, fd: int | None) -> int:
        prev, last, count = GENESIS, None, 0
        if fd is not None:
            for number, raw, complete in self._raw_lines(fd):
                try:
                    last = _check(self._parse(number, raw, complete), position=number, prev=prev)
                except _Broken as e:
                    raise AuditChainBroken(
                        line=number, why=f"line {number} of {self.path}: {e}." + _FIX
                    ) from None
                prev, count = last.hash, number
        _check_head(self._read_head(), last=last, count=count)
        return count

    def verify(self) -> int:
        with self._open(write=False) as fd:
            return self._verify_locked(fd)

    def entries(
        self,
        *,
        service: str | None = None,
        kinds: Collection[str] | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        _check_since(since)
        with self._open(write=False) as fd:
            if fd is None:
                return []
            parsed: list[AuditEntry] = []
            for number, raw, complete in self._raw_lines(fd):
                try:
                    parsed.append(AuditEntry.model_validate(self._parse(number, raw, complete)))
                except ValidationError:
                    raise AuditChainBroken(
                        line=number,
                        why=f"line {number} of {self.path} is not an audit entry; "
                        "run `dualop audit verify` for details",
                    ) from None
        return _filtered(iter(parsed), service=service, kinds=kinds, since=since)

    @staticmethod
    def _backwards(fd: int) -> Iterator[bytes]:
        """The lines of the file from the last to the first, without their newlines.

        Raises `_Broken` if the file does not end with a newline (a cut-short write).
        """
        end = os.fstat(fd).st_size
        if end == 0:
            return
        if os.pread(fd, 1, end - 1) != b"\n":
            raise _Broken("the last line is incomplete")
        end -= 1  # the final newline
        buf = b""  # the bytes between `end` and the newline after the line being read
        while end > 0:
            step = min(65536, end)
            end -= step
            buf = os.pread(fd, step, end) + buf
            first, *complete = buf.split(b"\n")
            yield from reversed(complete)
            buf = first  # may begin in the block before
        yield buf

    def _tail(self, fd: int) -> AuditEntry | None:
        """The last entry, read backwards from the end; None for an empty file.

        Raises `_Broken` if the end of the file is not a complete, well-formed entry.
        """
        last = next(self._backwards(fd), None)
        if last is None:
            return None
        try:
            raw = json.loads(last)
        except ValueError:
            raise _Broken("the last line is not JSON") from None
        return _check_alone(raw)

    def latest(self, *, service: str, kinds: Collection[str]) -> AuditEntry | None:
        wanted = set(kinds)
        with self._open(write=False) as fd:
            if fd is None:
                return None
            try:
                for raw in self._backwards(fd):
                    try:
                        found = json.loads(raw)
                    except ValueError:
                        raise _Broken("a line is not JSON") from None
                    if (
                        isinstance(found, dict)
                        and found.get("service") == service
                        and found.get("kind") in wanted
                    ):
                        return AuditEntry.model_validate(found)
            except (_Broken, ValidationError) as e:
                raise AuditChainBroken(
                    line=0,
                    why=f"{self.path} is damaged near its end ({e}); run `dualop audit verify` "
                    "for the line",
                ) from None
        return None

    def append(
        self,
        kind: str,
        *,
        service: str | None = None,
        run_id: str | None = None,
        at: datetime,
        **data: Any,
    ) -> AuditEntry:
        with self._open(write=True) as fd:
            assert fd is not None  # noqa: S101  # opened for writing: never None
            created = os.fstat(fd).st_size == 0
            try:
                tail = self._tail(fd)
            except _Broken:
                tail = None
                intact = False
            else:
                head = self._read_head()
                intact = head is None or (
                    tail is not None
                    and (tail.seq > head[0] or (tail.seq == head[0] and tail.hash == head[1]))
                )
            if not intact:
                # Appending would hide the damage: name it instead.
                self._verify_locked(fd)
                raise AuditError(
                    f"{self.path} ends with a damaged entry; run `dualop audit verify`"
                )
            entry = _new_entry(
                kind,
                seq=tail.seq + 1 if tail else 1,
                prev=tail.hash if tail else GENESIS,
                service=service,
                run_id=run_id,
                at=at,
                data=data,
            )
            line = memoryview(_line(entry))
            while line:
                line = line[os.write(fd, line) :]
            os.fsync(fd)
            if created:  # make the new file's name durable too
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            self._write_head(entry)
        return entry


# --- PostgreSQL ---------------------------------------------------------------------------

_TABLE = "dualop_audit"
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"dualop_audit").digest()[:8], "big", signed=True)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dualop_audit (
    seq     bigint PRIMARY KEY,
    at      timestamptz NOT NULL,
    kind    text NOT NULL,
    service text,
    run_id  text,
    data    text NOT NULL,
    prev    text NOT NULL,
    hash    text NOT NULL
);
CREATE INDEX IF NOT EXISTS dualop_audit_service_seq ON dualop_audit (service, seq);
CREATE TABLE IF NOT EXISTS dualop_audit_head (
    id   smallint PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
"""
# `data` is text holding the canonical JSON: jsonb would reorder keys and respell numbers,
# and the hash must be recomputed from exactly what was hashed.
_COLUMNS = "seq, at, kind, service, run_id, data, prev, hash"


def _run_sync(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from sync code, even when this thread runs a loop."""

    async def main() -> _T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from async code (a Prefect async flow): don't nest loops on this thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dualop-audit") as pool:
        return pool.submit(asyncio.run, main()).result()


def _row_raw(row: Any) -> dict[str, Any]:
    """A table row as the JSON object the hash was computed over."""
    try:
        data = json.loads(row["data"])
    except ValueError:
        data = row["data"]  # fails the hash check (and the model's dict check) below
    return {
        "seq": row["seq"],
        "at": _iso(row["at"]),
        "kind": row["kind"],
        "service": row["service"],
        "run_id": row["run_id"],
        "data": data,
        "prev": row["prev"],
        "hash": row["hash"],
    }


def _entry_from_row(row: Any) -> AuditEntry:
    try:
        return AuditEntry.model_validate(_row_raw(row))
    except ValidationError:
        raise AuditChainBroken(
            line=row["seq"],
            why=f"row seq={row['seq']} of table {_TABLE} is not an audit entry; "
            "run `dualop audit verify` for details",
        ) from None


class PostgresAuditLog:
    """The audit log in PostgreSQL (scale-out): one writer at a time, the same hash chain."""

    def __init__(self, dsn: str) -> None:
        # SQLAlchemy spelling (as in PREFECT_API_DATABASE_CONNECTION_URL) accepted too.
        self._dsn = re.sub(r"^postgres(?:ql)?\+asyncpg://", "postgresql://", dsn)
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"PostgresAuditLog({redact_url(self._dsn)!r})"

    def _call(self, what: str, op: Callable[[Any], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

            try:
                conn = await asyncpg.connect(self._dsn, timeout=15)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                raise AuditError(
                    f"cannot connect to the audit database {redact_url(self._dsn)} to {what}: "
                    f"{type(e).__name__}: {redact_url(str(e))}; check that PostgreSQL is "
                    "running and DUALOP_AUDIT__DSN is right"
                ) from None
            try:
                if not self._schema_ready:
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                        await conn.execute(_SCHEMA)
                    self._schema_ready = True
                return await op(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                raise AuditError(
                    f"cannot {what} in the audit database {redact_url(self._dsn)}: "
                    f"{type(e).__name__}: {redact_url(str(e))}"
                ) from None
            finally:
                await conn.close()

        return _run_sync(run)

    @staticmethod
    async def _verify_rows(conn: Any) -> int:
        prev, last, count = GENESIS, None, 0
        async for row in conn.cursor(f"SELECT {_COLUMNS} FROM {_TABLE} ORDER BY seq"):  # noqa: S608
            position = count + 1
            try:
                last = _check(_row_raw(row), position=position, prev=prev)
            except _Broken as e:
                raise AuditChainBroken(
                    line=position, why=f"row seq={row['seq']} of table {_TABLE}: {e}." + _FIX
                ) from None
            prev, count = last.hash, position
        head = await conn.fetchrow("SELECT seq, hash FROM dualop_audit_head WHERE id = 1")
        _check_head((head["seq"], head["hash"]) if head else None, last=last, count=count)
        return count

    def verify(self) -> int:
        async def op(conn: Any) -> int:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await self._verify_rows(conn)

        return self._call("verify the chain", op)

    def entries(
        self,
        *,
        service: str | None = None,
        kinds: Collection[str] | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        _check_since(since)

        async def op(conn: Any) -> list[AuditEntry]:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM {_TABLE} "  # noqa: S608  # constants only
                "WHERE ($1::text IS NULL OR service = $1) "
                "AND ($2::text[] IS NULL OR kind = ANY($2)) "
                "AND ($3::timestamptz IS NULL OR at >= $3) ORDER BY seq",
                service,
                list(kinds) if kinds is not None else None,
                since,
            )
            return [_entry_from_row(row) for row in rows]

        return self._call("read entries", op)

    def latest(self, *, service: str, kinds: Collection[str]) -> AuditEntry | None:
        async def op(conn: Any) -> AuditEntry | None:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM {_TABLE} "  # noqa: S608  # constants only
                "WHERE service = $1 AND kind = ANY($2) ORDER BY seq DESC LIMIT 1",
                service,
                list(kinds),
            )
            return None if row is None else _entry_from_row(row)

        return self._call("read the latest entry", op)

    def append(
        self,
        kind: str,
        *,
        service: str | None = None,
        run_id: str | None = None,
        at: datetime,
        **data: Any,
    ) -> AuditEntry:
        _new_entry(kind, seq=1, prev=GENESIS, service=service, run_id=run_id, at=at, data=data)

        async def op(conn: Any) -> AuditEntry:
            async with conn.transaction():
                # One writer at a time, held until commit: the next writer sees this row.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                row = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM {_TABLE} ORDER BY seq DESC LIMIT 1"  # noqa: S608
                )
                head = await conn.fetchrow("SELECT seq, hash FROM dualop_audit_head WHERE id = 1")
                try:
                    tail = _check_alone(_row_raw(row)) if row is not None else None
                except _Broken:
                    tail, intact = None, False
                else:
                    intact = head is None or (
                        tail is not None
                        and (
                            tail.seq > head["seq"]
                            or (tail.seq == head["seq"] and tail.hash == head["hash"])
                        )
                    )
                if not intact:
                    # Appending would hide the damage: name it instead.
                    await self._verify_rows(conn)
                    raise AuditError(f"table {_TABLE} ends with a damaged entry; run verify")
                entry = _new_entry(
                    kind,
                    seq=tail.seq + 1 if tail else 1,
                    prev=tail.hash if tail else GENESIS,
                    service=service,
                    run_id=run_id,
                    at=at,
                    data=data,
                )
                await conn.execute(
                    f"INSERT INTO {_TABLE} ({_COLUMNS}) "  # noqa: S608  # constants only
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    entry.seq,
                    entry.at,
                    entry.kind,
                    entry.service,
                    entry.run_id,
                    _canonical(entry.data),
                    entry.prev,
                    entry.hash,
                )
                await conn.execute(
                    "INSERT INTO dualop_audit_head (id, seq, hash) VALUES (1, $1, $2) "
                    "ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
                    entry.seq,
                    entry.hash,
                )
                return entry

        return self._call("append an entry", op)


def open_audit_log(settings: Settings) -> AuditLog:
    """The audit log the settings name: the JSON lines file, or PostgreSQL (scale-out)."""
    backend = settings.audit.backend
    match backend:
        case "file":
            return FileAuditLog(settings.audit_path)
        case "postgres":
            if settings.audit.dsn is None:  # Settings refuses this; kept for type narrowing
                raise AuditError("audit.backend is 'postgres' but DUALOP_AUDIT__DSN is not set")
            return PostgresAuditLog(settings.audit.dsn.get_secret_value())
        case _:
            assert_never(backend)
