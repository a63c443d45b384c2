"""What every deployer shares: the `Release` it installs and the `Deployer` protocol."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dualop.exceptions import InputError

__all__ = [
    "Deployer",
    "LineSink",
    "Release",
    "UnsafeReleaseName",
    "check_component",
    "fsync_dir",
    "write_json_atomic",
]

LineSink = Callable[[str], None]

# A service name, a version: one path component, no dot-dot, no leading '-' or '.'.
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class UnsafeReleaseName(InputError):
    """A service or version that cannot safely name a folder."""

    def __init__(self, kind: str, value: str) -> None:
        self.kind = kind
        self.value = value
        super().__init__(
            f"refusing {kind} {value!r}: it must be one folder name of 1-128 letters, digits "
            "and . _ + - starting with a letter or digit, with no '..' (for example 1.4.2)"
        )


def check_component(kind: str, value: str) -> str:
    """Return `value` if it is safe as one path component, else raise `UnsafeReleaseName`."""
    if not _COMPONENT.fullmatch(value) or ".." in value:
        raise UnsafeReleaseName(kind, value)
    return value


@dataclass(frozen=True)
class Release:
    """One version of one service, built from `source_dir` (the checked-out, built tree)."""

    service: str
    version: str
    commit: str
    source_dir: Path
    previous_version: str | None = None


@runtime_checkable
class Deployer(Protocol):
    """Installs releases of services and can go back to the one live before."""

    def deploy(self, release: Release, *, on_line: LineSink | None = None) -> None:
        """Make `release` the live release of its service; raise `DeployError` if it can't."""

    def rollback(self, release: Release, *, on_line: LineSink | None = None) -> str | None:
        """Go back to the release live before `release`; return its version (None: none)."""

    def current_version(self, service: str) -> str | None:
        """The live version of `service`, or None when nothing is live."""

    def live_dir(self, service: str) -> Path | None:
        """The folder of the live release (None when the deployer has no local folder)."""


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` so that a reader sees the old or the new file, whole."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
