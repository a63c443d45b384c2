"""The `dualop` command line: a front end over `dualop/` (and Prefect, for the commands
that start, list or resume runs).

Exit codes: 0 success; 1 an operation that ran and failed (a release, a broken audit
chain); 2 bad input or configuration (the message names what and how to fix it).
Errors are printed without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dualop.exceptions import (
    ApprovalError,
    AuditError,
    CatalogInvalid,
    DualopError,
    InputError,
    ReleaseError,
)

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message (no usage dump on every error)."""

    def error(self, message: str) -> None:  # type: ignore[override]  # returns NoReturn
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _at(value: str) -> datetime:
    """`--at` values: ISO-8601 with an offset (or `Z`)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO-8601 time; write e.g. 2026-11-28T14:00:00+00:00"
        ) from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} has no UTC offset; add one, e.g. {value}+00:00 or {value}Z"
        )
    return parsed


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from dualop.settings import load_settings

    return load_settings(config_dir=getattr(args, "config_dir", None), **overrides)


def _catalog(settings: Any) -> Any:
    from dualop.catalog import load_catalog

    return load_catalog(settings.config_dir)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


# --- catalog ----------------------------------------------------------------------------


def cmd_catalog_validate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    catalog = _catalog(settings)
    windows = len(catalog.windows.windows)
    print(
        f"{settings.config_dir}: OK: {len(catalog.services)} service(s), {windows} window(s), "
        f"{len(catalog.windows.freezes)} freeze(s)"
    )
    return 0


# --- the parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dualop",
        description="Release pipelines for the dual operating model: a paved road for "
        "digital services, release-window migrations for heritage ones.",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="catalog and dualop.toml folder (default: $DUALOP_CONFIG_DIR or ./config)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    catalog = sub.add_parser("catalog", help="check the service catalog")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    validate = catalog_sub.add_parser("validate", help="validate every file; exit 2 on problems")
    validate.set_defaults(handler=cmd_catalog_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except CatalogInvalid as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(f"{len(e.problems)} problem(s) found", file=sys.stderr)
        return 2
    except (ReleaseError, AuditError) as e:
        print(f"dualop: {e}", file=sys.stderr)
        return 1
    except (InputError, ApprovalError, DualopError) as e:
        print(f"dualop: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def now_utc() -> datetime:
    """The CLI is a front end: it reads the clock and passes `now` down."""
    return datetime.now(UTC)


if __name__ == "__main__":
    sys.exit(main())
