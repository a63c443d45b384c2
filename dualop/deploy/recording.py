"""A deployer that records when each deploy ran, to prove deploys of a service never overlap.

`RecordingDeployer(inner, record)` appends one JSON line per deploy and rollback to `record`
(`{service, version, action, start, end, pid, ok}`, wall-clock seconds), under a file lock
so that several processes can share one record. `overlaps(record)` returns every pair of
entries of one service whose time spans intersect. The end-to-end tests switch it on with
`DUALOP_DEPLOY_RECORD=/path/to/record.jsonl` (see `dualop.deploy.deployer_for`).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dualop.deploy.base import Deployer, LineSink, Release

__all__ = ["RecordingDeployer", "overlaps", "read_record"]


class RecordingDeployer:
    """Wraps a deployer; every deploy and rollback is appended to `record` as it ends."""

    def __init__(
        self, inner: Deployer, record: Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.inner = inner
        self.record = record
        self._clock = clock

    def __repr__(self) -> str:
        return f"RecordingDeployer({self.inner!r}, record={str(self.record)!r})"

    def deploy(self, release: Release, *, on_line: LineSink | None = None) -> None:
        start = self._clock()
        ok = False
        try:
            self.inner.deploy(release, on_line=on_line)
            ok = True
        finally:
            self._append(release, "deploy", start, ok)

    def rollback(self, release: Release, *, on_line: LineSink | None = None) -> str | None:
        start = self._clock()
        ok = False
        try:
            back_to = self.inner.rollback(release, on_line=on_line)
            ok = True
        finally:
            self._append(release, "rollback", start, ok)
        return back_to

    def current_version(self, service: str) -> str | None:
        return self.inner.current_version(service)

    def live_dir(self, service: str) -> Path | None:
        return self.inner.live_dir(service)

    def _append(self, release: Release, action: str, start: float, ok: bool) -> None:
        entry = {
            "service": release.service,
            "version": release.version,
            "commit": release.commit,
            "action": action,
            "start": start,
            "end": self._clock(),
            "pid": os.getpid(),
            "ok": ok,
        }
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with self.record.open("a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(json.dumps(entry, sort_keys=True) + "\n")
                f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def read_record(record: Path) -> list[dict[str, Any]]:
    """The entries of a record file, in the order they were written (a torn line is skipped)."""
    if not record.exists():
        return []
    entries: list[dict[str, Any]] = []
    for line in record.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def overlaps(record: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every pair of entries of one service whose [start, end] spans intersect."""
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in read_record(record):
        by_service[str(entry.get("service"))].append(entry)
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for entries in by_service.values():
        entries.sort(key=lambda e: (float(e["start"]), float(e["end"])))
        for i, a in enumerate(entries):
            for b in entries[i + 1 :]:
                if float(b["start"]) >= float(a["end"]):
                    break
                found.append((a, b))
    return found
