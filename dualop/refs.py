"""Validation of git refs and names before they reach git or a path.

Refs arrive from webhooks, flow parameters and the CLI. They are passed to git as argv
(never a shell), but a ref that starts with `-` would still be read as an option, and
one with `..` can escape a folder when it is used in a path. So a ref must be a plain
name: the subset of `git check-ref-format` that real branch and tag names use.
"""

from __future__ import annotations

import re

from dualop.exceptions import UnsafeRefError

__all__ = ["validate_ref"]

_ALLOWED = re.compile(r"[A-Za-z0-9._/+-]+")
_MAX = 255


def validate_ref(ref: str) -> str:
    """Return `ref` unchanged if it is a safe ref name, else raise `UnsafeRefError`."""
    if not isinstance(ref, str) or not ref:
        raise UnsafeRefError(str(ref), why="it is empty")
    if len(ref) > _MAX:
        raise UnsafeRefError(ref[:40] + "...", why=f"it is longer than {_MAX} characters")
    if not _ALLOWED.fullmatch(ref):
        bad = sorted({c for c in ref if not _ALLOWED.fullmatch(c)})
        raise UnsafeRefError(ref, why=f"it contains {''.join(bad)!r}")
    if ref.startswith("-"):
        raise UnsafeRefError(ref, why="it starts with '-' and would be read as an option")
    if ".." in ref:
        raise UnsafeRefError(ref, why="it contains '..'")
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise UnsafeRefError(ref, why="it has an empty path component")
    parts = ref.split("/")
    if any(p.startswith(".") or p.endswith(".lock") for p in parts):
        raise UnsafeRefError(ref, why="a component starts with '.' or ends with '.lock'")
    if ref.endswith("."):
        raise UnsafeRefError(ref, why="it ends with '.'")
    return ref
