"""The next release version, from conventional commits.

The rule (also in the README):

- no earlier release: `0.1.0`;
- a breaking change (`type!:` / `type(scope)!:` in a subject, or a `BREAKING CHANGE:` /
  `BREAKING-CHANGE:` footer) → next major; while the major is 0, next minor instead
  (semver's 0.x promise: anything may change, so breaking changes do not leave 0.x by
  accident; release 1.0.0 by tagging it);
- a feature (`feat:` / `feat(scope):`) → next minor;
- anything else → next patch.
"""

from __future__ import annotations

import re

import semver

__all__ = ["next_version"]

_BREAKING_SUBJECT = re.compile(r"^\w+(\([^)]*\))?!:")
_BREAKING_FOOTER = re.compile(r"^BREAKING[ -]CHANGE:", re.MULTILINE)
_FEATURE = re.compile(r"^feat(\([^)]*\))?:")


def next_version(
    previous: semver.Version | None, messages: list[str]
) -> tuple[semver.Version, str]:
    """The version after `previous` for commits with these messages, and why."""
    if previous is None:
        return semver.Version(0, 1, 0), "first release: 0.1.0"
    breaking = [m for m in messages if _BREAKING_SUBJECT.match(m) or _BREAKING_FOOTER.search(m)]
    if breaking:
        first = breaking[0].splitlines()[0]
        if previous.major == 0:
            return previous.bump_minor(), f"minor: breaking change while 0.x ({first!r})"
        return previous.bump_major(), f"major: breaking change ({first!r})"
    features = [m for m in messages if _FEATURE.match(m)]
    if features:
        return (
            previous.bump_minor(),
            f"minor: {len(features)} feature(s) ({features[0].splitlines()[0]!r})",
        )
    return previous.bump_patch(), "patch: fixes and other changes only"
