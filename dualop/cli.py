"""The `dualop` command line: a front end over `dualop/` (and Prefect, for the commands
that start, list or resume runs).

Exit codes: 0 success; 1 an operation that ran and failed (a release, a broken audit
chain); 2 bad input or configuration (the message names what and how to fix it).
Errors are printed without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dualop.exceptions import (
    ApprovalError,
    AuditError,
    CatalogInvalid,
    DualopError,
    InputError,
    ReleaseError,
)
from dualop.logging import configure_logging

if TYPE_CHECKING:
    from dualop.catalog import Service
    from dualop.classify import Classification
    from dualop.settings import Settings

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


# --- classify and windows ---------------------------------------------------------------


def _selected(catalog: Any, names: list[str]) -> list[Any]:
    return [catalog.service(n) for n in names] if names else list(catalog.services.values())


def _classify(settings: Settings, svc: Service, at: datetime) -> Classification:
    """The verdict `route` would reach for `svc` at `at` (its repo fetched first)."""
    from dualop.classify import classify_service
    from dualop.workspace import service_repo

    repo = service_repo(svc, workspace=settings.workspace_path)
    return classify_service(svc, repo, at=at, settings=settings.classifier)


def cmd_classify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    catalog = _catalog(settings)
    at = args.at or now_utc()
    verdicts = [_classify(settings, svc, at) for svc in _selected(catalog, args.services)]
    if args.json:
        _print_json([v.to_json_dict() for v in verdicts])
        return 0
    # One block a service, not a table: the reasons are sentences and need the width.
    print(f"Classification at {at.isoformat()}")
    for v in verdicts:
        model = v.model.value + (" (forced)" if v.forced else "")
        if v.migration_candidate:
            model += ", MIGRATION CANDIDATE"
        print(
            f"\n{v.service}: {model}   cost of change {v.cost_of_change.level} "
            f"({v.cost_of_change.score:.2f}), demand for change {v.demand_for_change.level} "
            f"({v.demand_for_change.score:.2f})"
        )
        for reason in v.reasons:
            print(f"  - {reason}")
    return 0


def cmd_windows(args: argparse.Namespace) -> int:
    from dualop.catalog import OperatingModel
    from dualop.windows import window_status

    settings = _settings(args)
    catalog = _catalog(settings)
    at = args.at or now_utc()
    statuses = []
    for svc in _selected(catalog, args.services):
        model = svc.forced_model or OperatingModel.DIGITAL
        if svc.forced_model is None and svc.heritage is not None:  # `auto`: as route would
            model = _classify(settings, svc, at).model
        statuses.append(window_status(svc, model, catalog.windows, at))
    if args.json:
        _print_json([s.to_json_dict() for s in statuses])
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Release windows at {at.isoformat()}")
    for column in ("service", "model", "open", "window", "closes at", "next open at", "frozen by"):
        table.add_column(column)
    for st in statuses:
        d = st.to_json_dict()
        table.add_row(
            st.service,
            str(d.get("model", "")),
            "yes" if st.open else "no",
            st.window or "-",
            d["closes_at"] or "-",
            d["next_open_at"] or "-",
            st.frozen_by or "-",
        )
    Console(width=max(120, Console().width)).print(table)
    return 0


# --- releases and approvals ---------------------------------------------------------------


def cmd_release(args: argparse.Namespace) -> int:
    from dualop.refs import validate_ref
    from dualop.routing import expected_route

    settings = _settings(args)
    catalog = _catalog(settings)
    svc = catalog.service(args.service)
    if args.ref:
        validate_ref(args.ref)
    if args.emergency and not (args.reason and args.reason.strip()):
        raise InputError("--emergency needs --reason TEXT saying why this cannot wait")
    if args.reason and not args.emergency:
        raise InputError("--reason goes with --emergency; drop it or add --emergency")
    _use_local_prefect(settings)
    from flows.prefect_api import start_deployment, wait_for_final

    requested_by = args.requested_by or _whoami()
    if args.emergency:
        if svc.heritage is None:
            raise InputError(
                f"{svc.name} has no heritage: block; an emergency change is a "
                "heritage migration. Use `dualop release` without --emergency"
            )
        run_id = start_deployment(
            "migration/migration",
            {
                "service": svc.name,
                "ref": args.ref,
                "trigger": "cli",
                "requested_by": requested_by,
                "emergency": True,
                "reason": args.reason,
            },
        )
        answer = {
            "flow_run_id": run_id,
            "service": svc.name,
            "model": "heritage",
            "action": "emergency-migration",
        }
    else:
        from dualop.audit import open_audit_log

        model, action = expected_route(svc, open_audit_log(settings))
        run_id = start_deployment(
            "route/route",
            {
                "service": svc.name,
                "ref": args.ref,
                "trigger": "cli",
                "requested_by": requested_by,
            },
        )
        answer = {"flow_run_id": run_id, "service": svc.name, "model": model, "action": action}
    code = 0
    if args.wait:
        state = wait_for_final(run_id, timeout=args.timeout)
        answer["state"] = state
        code = 0 if state == "Completed" else 1
    if args.json:
        _print_json(answer)
    else:
        print(answer["flow_run_id"])
        if args.wait:
            print(answer["state"], file=sys.stderr)
    return code


def _whoami() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cmd_approvals(args: argparse.Namespace) -> int:
    from dualop.audit import open_audit_log
    from flows.inbox import pending_approvals

    settings = _settings(args)
    _use_local_prefect(settings)
    items = pending_approvals(open_audit_log(settings))
    if args.json:
        _print_json(items)
        return 0
    if not items:
        print("no runs are awaiting approval")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Awaiting approval")
    for column in ("flow run", "service", "plan", "approvals", "deadline", "emergency"):
        table.add_column(column, no_wrap=column in {"flow run", "plan"})  # ids are copied
    for it in items:
        table.add_row(
            it["flow_run_id"],
            it["service"],
            it["plan_digest"][:12],
            f"{', '.join(it['approvals']) or '-'} ({len(it['approvals'])}/{it['required']})",
            it["deadline"],
            "EMERGENCY" if it["emergency"] else "",
        )
    Console(width=max(120, Console().width)).print(table)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from dualop.audit import open_audit_log
    from flows.inbox import decide

    settings = _settings(args)
    _use_local_prefect(settings)
    decision: Literal["approve", "reject"] = "approve" if args.command == "approve" else "reject"
    if decision == "reject" and not (args.comment and args.comment.strip()):
        raise InputError("a rejection needs --comment TEXT saying why")
    message = decide(
        open_audit_log(settings),
        args.run_id,
        decision=decision,
        approver=args.as_name,
        comment=args.comment or "",
        now=now_utc(),
    )
    print(message)
    return 0


# --- audit --------------------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from dualop.audit import open_audit_log

    settings = _settings(args)
    count = open_audit_log(settings).verify()
    print(f"audit chain intact: {count} entries")
    return 0


def cmd_audit_show(args: argparse.Namespace) -> int:
    from dualop.audit import open_audit_log

    settings = _settings(args)
    entries = open_audit_log(settings).entries(service=args.service)
    if args.json:
        _print_json([e.model_dump(mode="json") for e in entries])
        return 0
    for e in entries:
        data = " ".join(f"{k}={v}" for k, v in e.data.items() if v not in (None, "", [], {}))
        print(f"{e.seq:>5} {e.at.isoformat()} {e.kind:<20} {e.service or '-':<16} {data}")
    return 0


# --- report -------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from dualop.audit import open_audit_log
    from dualop.report import dora_report

    settings = _settings(args)
    until = now_utc()
    since = args.since or until - timedelta(days=30)
    report = dora_report(open_audit_log(settings).entries(), since=since, until=until)
    if args.json:
        _print_json(report.to_json_dict())
        return 0
    from rich.console import Console
    from rich.table import Table

    def fmt(value: object) -> str:
        return "-" if value is None else str(value)

    table = Table(title=f"DORA metrics {since:%Y-%m-%d} to {until:%Y-%m-%d}")
    columns = (
        "service",
        "model",
        "releases/wk",
        "lead time h",
        "failure rate",
        "restore h",
        "approval wait h",
        "window wait h",
        "migration candidate",
    )
    for column in columns:
        table.add_column(column)
    for s in report.services:
        table.add_row(
            s.service,
            s.model,
            fmt(s.deployment_frequency_per_week),
            fmt(s.lead_time_median_h),
            fmt(s.change_failure_rate),
            fmt(s.time_to_restore_median_h),
            fmt(s.approval_wait_median_h),
            fmt(s.window_wait_median_h),
            {True: "YES", False: "no", None: "-"}[s.migration_candidate],
        )
    for m in report.models:
        table.add_row(
            f"[b]all {m.model}[/b]",
            m.model,
            fmt(m.deployment_frequency_per_week),
            fmt(m.lead_time_median_h),
            fmt(m.change_failure_rate),
            fmt(m.time_to_restore_median_h),
            "",
            "",
            "",
        )
    Console(width=max(140, Console().width)).print(table)
    return 0


# --- running the stack ------------------------------------------------------------------


def _use_local_prefect(settings: Any, *, check: bool = True) -> str:
    """CLI commands that talk to Prefect use PREFECT_API_URL when set, else the local stack,
    and never a private in-process server. With `check`, an unreachable API is an error
    that names the URL, before anything is attempted."""
    import httpx

    url = os.environ.setdefault(
        "PREFECT_API_URL", f"http://127.0.0.1:{settings.prefect_port}/api"
    ).rstrip("/")
    os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "false")
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()  # Prefect read its settings when it was imported
    if not check:
        return url
    try:
        httpx.get(f"{url}/health", timeout=5.0).raise_for_status()
    except httpx.HTTPError as e:
        raise DualopError(
            f"the Prefect API at {url} is not reachable ({type(e).__name__}); start the local "
            "stack with `make up`, or set PREFECT_API_URL to your Prefect server"
        ) from e
    return url


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    catalog = _catalog(settings)
    _use_local_prefect(settings)
    from dualop.runner import serve
    from flows.deployments import (
        HEARTBEAT_SECONDS,
        build_deployments,
        ensure_crash_detection,
        ensure_release_limits,
    )

    ensure_release_limits(catalog.services)
    ensure_crash_detection(timedelta(seconds=settings.crash_after_s))
    # The runs this runner starts inherit it, and send heartbeats.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    serve(
        build_deployments(catalog),
        limit=args.limit,
        poll_seconds=settings.runner_poll_seconds,
        wake=settings.runner_wake,
    )
    return 0


def cmd_webhook(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _catalog(settings)  # refuse to start on a broken catalog
    _use_local_prefect(settings, check=False)
    from dualop.webhooks import run_receiver

    run_receiver(
        settings, host=args.host or settings.webhook.host, port=args.port or settings.webhook_port
    )
    return 0


# --- scale-out: deployments on a work pool, and its workers -------------------------------

_POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _pool_name(value: str) -> str:
    """`--pool` values: a Prefect work pool name that is safe in URLs and shells."""
    if not _POOL_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid work pool name; use 1-100 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (e.g. dualop)"
        )
    if value.lower().startswith("prefect"):
        raise argparse.ArgumentTypeError(
            f"{value!r}: work pool names starting with 'prefect' are reserved by Prefect; "
            "pick another (e.g. dualop)"
        )
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of 1 or more")
    return number


def cmd_deploy(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    settings = _settings(args)
    catalog = _catalog(settings)
    api = _use_local_prefect(settings)
    from flows.deployments import POOL_TYPE, deploy_to_pool

    created, registered = deploy_to_pool(
        catalog, args.pool, crash_after=timedelta(seconds=settings.crash_after_s)
    )
    if args.json:
        _print_json(
            {
                "api_url": api,
                "pool": args.pool,
                "pool_created": created,
                "release_limits": sorted(f"release-{name}" for name in catalog.services),
                "deployments": [asdict(d) for d in registered],
            }
        )
        return 0
    verb = "created" if created else "exists"
    print(f"work pool {args.pool!r} ({POOL_TYPE}): {verb}, on {api}")
    print(f"concurrency limits: release-<service> for {len(catalog.services)} service(s)")
    for d in registered:
        print(f"registered {d.name} ({d.entrypoint})")
        for schedule in d.schedules:
            print(f"    schedule {schedule}")
    print(f"start workers with: dualop worker --pool {args.pool}", file=sys.stderr)
    return 0


def _worker_env(settings: Any, base: dict[str, str]) -> dict[str, str]:
    """The environment a worker (and every flow run it starts) runs with.

    A process worker runs each flow run in a fresh temporary folder: relative folders
    would point somewhere else, so they are made absolute here. Results are persisted
    (a migration resumed after an approval reads its earlier tasks' results back, maybe
    on another worker) under the data folder unless PREFECT_LOCAL_STORAGE_PATH says where.
    """
    from flows.deployments import HEARTBEAT_SECONDS

    env = dict(base)
    data_dir = settings.data_dir.resolve()
    env["DUALOP_CONFIG_DIR"] = str(settings.config_dir.resolve())
    env["DUALOP_DATA_DIR"] = str(data_dir)
    if settings.deploy_root is not None:
        env["DUALOP_DEPLOY_ROOT"] = str(settings.deploy_root.resolve())
    if settings.workspace_dir is not None:
        env["DUALOP_WORKSPACE_DIR"] = str(settings.workspace_dir.resolve())
    env.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    env.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(data_dir / "results"))
    env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    # With PREFECT_API_URL unreachable, never fall back to a private in-process server.
    env.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "false")
    return env


def _exec(argv: list[str], env: dict[str, str]) -> None:  # replaced in tests
    os.execve(argv[0], argv, env)  # noqa: S606  # argv list, no shell: by design


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _catalog(settings)  # refuse to start on a broken catalog
    api = _use_local_prefect(settings)
    from flows.deployments import POOL_TYPE, ensure_work_pool

    ensure_work_pool(args.pool, create=False)
    argv = [sys.executable, "-m", "prefect", "worker", "start"]
    argv += ["--pool", args.pool, "--type", POOL_TYPE]
    if args.limit is not None:
        argv += ["--limit", str(args.limit)]
    if args.name:
        argv += ["--name", args.name]
    print(f"starting a Prefect {POOL_TYPE} worker on pool {args.pool!r} ({api})", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    _exec(argv, _worker_env(settings, dict(os.environ)))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from dualop.stack import up

    settings = _settings(
        args,
        data_dir=args.data_dir,
        prefect_port=args.prefect_port,
        webhook_port=args.webhook_port,
        demo=False if args.no_demo else None,
    )
    return up(settings, now=now_utc())


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

    classify = sub.add_parser("classify", help="which operating model, and why")
    classify.add_argument("services", nargs="*", metavar="SERVICE")
    classify.add_argument("--at", type=_at, default=None, help="ISO-8601 end of the look-back")
    classify.add_argument("--json", action="store_true")
    classify.set_defaults(handler=cmd_classify)

    windows = sub.add_parser("windows", help="can the service release now; next open slot")
    windows.add_argument("services", nargs="*", metavar="SERVICE")
    windows.add_argument("--at", type=_at, default=None, help="ISO-8601 instant (default now)")
    windows.add_argument("--json", action="store_true")
    windows.set_defaults(handler=cmd_windows)

    release = sub.add_parser("release", help="start a release (the route flow)")
    release.add_argument("service", metavar="SERVICE")
    release.add_argument("--ref", default=None, help="branch, tag or commit (default: branch head)")
    release.add_argument("--wait", action="store_true", help="wait for the run to finish")
    release.add_argument("--timeout", type=float, default=1800.0, help="with --wait, seconds")
    release.add_argument("--json", action="store_true")
    release.add_argument(
        "--emergency",
        action="store_true",
        help="heritage emergency change: no window wait, one extra approval",
    )
    release.add_argument("--reason", default=None, help="why (required with --emergency)")
    release.add_argument("--requested-by", default=None, help="default: your login name")
    release.set_defaults(handler=cmd_release)

    approvals = sub.add_parser("approvals", help="runs awaiting approval (an approver's inbox)")
    approvals.add_argument("--json", action="store_true")
    approvals.set_defaults(handler=cmd_approvals)
    for verb in ("approve", "reject"):
        p = sub.add_parser(verb, help=f"{verb} a heritage change awaiting approval")
        p.add_argument("run_id", metavar="RUN_ID")
        p.add_argument(
            "--as",
            dest="as_name",
            required=True,
            metavar="NAME",
            help="your approver name (checked against the policy)",
        )
        p.add_argument("--comment", default=None, help="why (required to reject)")
        p.set_defaults(handler=cmd_decide)

    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="exit 1 naming the first broken entry")
    verify.set_defaults(handler=cmd_audit_verify)
    show = audit_sub.add_parser("show", help="list entries")
    show.add_argument("--service", default=None)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_audit_show)

    report = sub.add_parser("report", help="DORA metrics per service and operating model")
    report.add_argument("--since", type=_at, default=None, help="ISO-8601 (default 30 days ago)")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=cmd_report)

    up = sub.add_parser(
        "up",
        help="run the local stack: Prefect server + UI, the served "
        "deployments, the webhook receiver, and the demo",
    )
    up.add_argument("--data-dir", type=Path, default=None, help="default: .dualop")
    up.add_argument("--prefect-port", type=int, default=None, help="default: 4200")
    up.add_argument("--webhook-port", type=int, default=None, help="default: 8088")
    up.add_argument("--no-demo", action="store_true", help="do not create the demo repositories")
    up.set_defaults(handler=cmd_up)

    serve = sub.add_parser("serve", help="serve the deployments alone (needs a Prefect server)")
    serve.add_argument("--limit", type=int, default=20, help="concurrent runs (default 20)")
    serve.set_defaults(handler=cmd_serve)

    deploy = sub.add_parser(
        "deploy",
        help="register the deployments on a Prefect process work pool (scale-out; "
        "creates the pool when missing)",
    )
    deploy.add_argument(
        "--pool", required=True, type=_pool_name, metavar="NAME", help="work pool name"
    )
    deploy.add_argument("--json", action="store_true")
    deploy.set_defaults(handler=cmd_deploy)

    worker = sub.add_parser(
        "worker", help="run a Prefect process worker on a pool (after `dualop deploy`)"
    )
    worker.add_argument(
        "--pool", required=True, type=_pool_name, metavar="NAME", help="work pool name"
    )
    worker.add_argument(
        "--limit", type=_positive_int, default=None, help="concurrent flow runs (default: no limit)"
    )
    worker.add_argument("--name", default=None, help="worker name shown in Prefect")
    worker.set_defaults(handler=cmd_worker)

    webhook = sub.add_parser("webhook", help="run the webhook receiver alone")
    webhook.add_argument("--host", default=None, help="default: 127.0.0.1")
    webhook.add_argument("--port", type=int, default=None, help="default: 8088")
    webhook.set_defaults(handler=cmd_webhook)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (already printed)
        return int(e.code or 0)
    handler: Handler = args.handler
    try:
        # Log lines go to stderr, so stdout stays the command's answer (`--json`).
        configure_logging(fmt=_env_choice("DUALOP_LOG_FORMAT", {"json", "console"}))
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


def _env_choice(name: str, allowed: set[str]) -> Any:
    """The environment's value of `name` when it is one of `allowed` (settings check it
    properly later); the CLI configures logging before it loads any settings."""
    value = os.environ.get(name, "").strip().lower()
    return value if value in allowed else None


def now_utc() -> datetime:
    """The CLI is a front end: it reads the clock and passes `now` down."""
    return datetime.now(UTC)


if __name__ == "__main__":
    sys.exit(main())
