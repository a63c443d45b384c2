"""dualop's errors: one root, a small tree, messages that say the fix.

```
DualopError
├── ConfigError(ValueError)          settings or catalog content is wrong
│   ├── SettingsError                a setting (env, TOML, flag) is wrong
│   └── CatalogInvalid               one or more catalog files are wrong (all problems listed)
├── CatalogError
│   └── UnknownServiceError(KeyError)
├── InputError(ValueError)           a CLI argument, flow parameter or request field is wrong
│   └── UnsafeRefError               a git ref that could be an injection or path escape
├── ReleaseError                     an operation ran and failed
│   ├── GitError                     a git operation failed (GitPython errors translated here)
│   ├── CommandFailed                a configured argv command exited non-zero or timed out
│   ├── DeployError                  a deployer could not switch or roll back
│   ├── HealthCheckFailed
│   ├── WindowClosedError            no window open now (and when the next one opens)
│   ├── PreflightFailed
│   └── StepFailed
├── ApprovalError
│   ├── ApprovalRefused              a decision that the policy refuses (not an approver, …)
│   ├── ApprovalRejected             an approver rejected the change
│   └── ApprovalTimedOut             the deadline passed without enough approvals
└── AuditError
    └── AuditChainBroken             an entry was edited, removed or reordered
```

Leaf classes take keyword-only context so callers (the CLI, the webhook receiver,
the flows) can render or branch on it without parsing the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = [
    "ApprovalError",
    "ApprovalRefused",
    "ApprovalRejected",
    "ApprovalTimedOut",
    "AuditChainBroken",
    "AuditError",
    "CatalogError",
    "CatalogInvalid",
    "CommandFailed",
    "ConfigError",
    "DeployError",
    "DualopError",
    "GitError",
    "HealthCheckFailed",
    "InputError",
    "PreflightFailed",
    "Problem",
    "ReleaseError",
    "SettingsError",
    "StepFailed",
    "UnknownServiceError",
    "UnsafeRefError",
    "WindowClosedError",
]


class DualopError(Exception):
    """Root of every error dualop raises on purpose."""


class ConfigError(DualopError, ValueError):
    """Configuration (settings or catalog) is wrong."""


class SettingsError(ConfigError):
    """A setting from a flag, the environment or `dualop.toml` is wrong."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in one catalog file, rendered as `FILE: field.path: message`."""

    file: Path
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class CatalogInvalid(ConfigError):
    """The catalog has problems; every one of them is in `problems`, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"the catalog has {len(problems)} problem(s):\n{lines}")


class CatalogError(DualopError):
    """The catalog cannot answer a question asked of it."""


class UnknownServiceError(CatalogError, KeyError):
    def __init__(self, service: str, *, known: list[str]) -> None:
        self.service = service
        self.known = known
        listing = ", ".join(known) if known else "none"
        super().__init__(
            f"unknown service {service!r}: it has no file in config/services/; "
            f"known services: {listing}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class InputError(DualopError, ValueError):
    """An argument, flow parameter or request field is wrong."""


class UnsafeRefError(InputError):
    def __init__(self, ref: str, *, why: str) -> None:
        self.ref = ref
        super().__init__(
            f"refusing git ref {ref!r}: {why}; use a branch, tag or commit name "
            "made of letters, digits and . _ - / (no '..', no leading '-', no spaces or ';')"
        )


class ReleaseError(DualopError):
    """An operation ran and failed."""


class GitError(ReleaseError):
    """A git operation failed; the message says which and why (no credentials)."""


class CommandFailed(ReleaseError):
    def __init__(
        self,
        what: str,
        *,
        argv: list[str],
        returncode: int | None,
        output_tail: str = "",
        timed_out: bool = False,
    ) -> None:
        self.what = what
        self.argv = argv
        self.returncode = returncode
        self.output_tail = output_tail
        self.timed_out = timed_out
        how = "timed out" if timed_out else f"exited with status {returncode}"
        detail = f"\n{output_tail}" if output_tail else ""
        super().__init__(f"{what}: {argv[0]!r} {how}{detail}")


class DeployError(ReleaseError):
    """A deployer could not install, switch or roll back a release."""


class HealthCheckFailed(ReleaseError):
    """The health check did not pass within its budget."""


class WindowClosedError(ReleaseError):
    def __init__(self, service: str, *, now: datetime, next_open_at: datetime | None) -> None:
        self.service = service
        self.now = now
        self.next_open_at = next_open_at
        when = next_open_at.isoformat() if next_open_at else "never (no future slot found)"
        super().__init__(
            f"{service}: no release window is open at {now.isoformat()}; the next one opens "
            f"at {when}. Wait for it, or start an emergency change with a reason."
        )


class PreflightFailed(ReleaseError):
    """A pre-flight check failed; nothing was applied."""


class StepFailed(ReleaseError):
    """A migration step failed; the applied steps were rolled back."""


class ApprovalError(DualopError):
    """An approval gate could not be passed."""


class ApprovalRefused(ApprovalError):
    """A decision was refused by the policy (the run keeps waiting)."""


class ApprovalRejected(ApprovalError):
    """An approver rejected the change."""


class ApprovalTimedOut(ApprovalError):
    """The approval deadline passed."""


class AuditError(DualopError):
    """The audit log cannot be read or written."""


class AuditChainBroken(AuditError):
    def __init__(self, *, line: int, why: str) -> None:
        self.line = line
        self.why = why
        super().__init__(f"audit chain broken at entry {line}: {why}")
