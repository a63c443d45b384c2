"""The webhook receiver: signed git pushes in, `route` runs out.

A small Starlette app (Starlette comes with Prefect), run by uvicorn:

    POST /webhooks/github   X-Hub-Signature-256 (HMAC-SHA256 of the raw body)
    POST /webhooks/gitlab   X-Gitlab-Token (the webhook's secret token)
    GET  /healthz           {"ok": true}
    GET  /metrics           DORA metrics from the audit log (Prometheus text), `?days=30`

A request is checked in this order, and the first failure answers:

| check                                  | answer                                         |
|----------------------------------------|------------------------------------------------|
| Content-Length, then the bytes read    | 413 over `webhook.max_body_bytes`              |
| Content-Type `application/json`        | 415 (GitHub's form content type included:      |
|                                        | switch the webhook to application/json)        |
| the secret or token is configured      | 503 (never accept unsigned deliveries)         |
| signature or token                     | 401 `{"error": "unauthorized"}`, nothing more  |
| JSON object                            | 400                                            |
| event (`ping`, `push` / `Push Hook`)   | 200 for a ping and for other events (ignored)  |
| required fields                        | 400 naming the field                           |
| the repository is in the catalog       | 404 naming the URL                             |
| branch, tag push, deletion             | 200 `{"ignored": true, "reason": ...}`         |
| `after` is a commit sha                | 400                                            |
| the `route` run is created             | 202 `{"flow_run_id", "service", "model",       |
|                                        | "action"}`; 503 if Prefect cannot be reached   |

Bad input never gets a 500; an unexpected error gets a JSON 500 without a traceback
(logged on the server).

**Deliveries are deduplicated** through Prefect's flow-run idempotency key
`<provider>:<delivery id>`: a redelivered webhook answers with the run the first
delivery started. The delivery id is GitHub's `X-GitHub-Delivery`; for GitLab it is
`X-Gitlab-Event-UUID`, else `X-Gitlab-Webhook-UUID`; when no such header is sent (a
hand-made `curl`), it is the SHA-256 of the body, so the same body sent twice is one
delivery.

**Repositories** are matched to catalog services with `normalize_repo_url`: every URL
the payload gives (GitHub `repository.clone_url`, `ssh_url`, `git_url`, `html_url`,
`url`; GitLab `project.git_http_url`, `git_ssh_url`, `web_url`, `repository.git_http_url`,
`repository.url`) against each service's `repo`. If several services share one repository
and branch, each gets a run; the answer describes the first (by name) and lists all of them
under `"runs"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol
from urllib.parse import unquote, urlsplit

import anyio.to_thread
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dualop.exceptions import CatalogInvalid, DualopError, InputError, UnsafeRefError
from dualop.logging import redact_url
from dualop.refs import validate_ref

if TYPE_CHECKING:
    from pydantic import SecretStr

    from dualop.audit import AuditLog
    from dualop.catalog import Catalog, Service
    from dualop.settings import Settings

__all__ = [
    "PrefectRouteStarter",
    "PrefectUnavailable",
    "RouteStarter",
    "StartResult",
    "create_app",
    "github_signature",
    "normalize_repo_url",
    "run_receiver",
]

log = structlog.get_logger(__name__)

Provider = Literal["github", "gitlab"]

_ZERO_SHA = re.compile(r"^0+$")
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1, or SHA-256 object format
_DELIVERY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>(?!//)[^\s]*)$")
_MAX_NAME = 200

GITHUB_URL_FIELDS = (
    ("repository", "clone_url"),
    ("repository", "ssh_url"),
    ("repository", "git_url"),
    ("repository", "html_url"),
    ("repository", "url"),
)
GITLAB_URL_FIELDS = (
    ("project", "git_http_url"),
    ("project", "git_ssh_url"),
    ("project", "web_url"),
    ("repository", "git_http_url"),
    ("repository", "url"),
)


# --- errors and the seam to Prefect --------------------------------------------------------


class PrefectUnavailable(DualopError):
    """The Prefect API could not create the run (down, timing out, 5xx, no `route` deployment).

    The receiver answers 503 so the sender retries the delivery later. `transient` marks
    a failure worth retrying at once (a 5xx from the API, e.g. SQLite's "database is locked").
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class StartResult:
    """The `route` run a release request created (or found, for a redelivery)."""

    flow_run_id: str
    model: str
    action: str


class RouteStarter(Protocol):
    """Starts the `route` flow for a service; `PrefectRouteStarter` is the real one."""

    async def start(
        self,
        *,
        service: str,
        ref: str,
        trigger: str,
        requested_by: str | None,
        idempotency_key: str,
    ) -> StartResult:
        """Create the run (or return the one with this idempotency key); raise
        `PrefectUnavailable` when Prefect cannot be reached."""
        ...


class PrefectRouteStarter:
    """Creates runs of the `route/route` deployment through Prefect's API.

    Transient failures are retried `attempts` times in all, with a doubling, jittered
    backoff, on top of Prefect's own client retries: a 5xx (such as SQLite's "database
    is locked" under a burst) and a connection refused, reset or cut short (a server
    restarting). Every attempt carries the same idempotency key, so a retry never
    creates a second run. Timeouts are not retried here: Prefect's client has already
    retried them, and the sender retries after our 503.

    Used as an async context manager (the receiver's lifespan does), it keeps one
    Prefect client, and so its connections, for every delivery; otherwise each call
    opens a client of its own.
    """

    def __init__(
        self,
        settings: Settings,
        catalog: Callable[[], Catalog],
        audit: AuditLog | None = None,
        *,
        deployment: str = "route/route",
        attempts: int = 4,
        backoff_s: float = 0.25,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._audit = audit
        self._deployment = deployment
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._clients = contextlib.AsyncExitStack()
        self._client: Any = None  # a PrefectClient while entered

    async def __aenter__(self) -> PrefectRouteStarter:
        from prefect import get_client

        self._client = await self._clients.enter_async_context(get_client())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._client = None
        await self._clients.aclose()

    @contextlib.asynccontextmanager
    async def _prefect(self) -> AsyncIterator[Any]:
        if self._client is not None:
            yield self._client
            return
        from prefect import get_client

        async with get_client() as client:
            yield client

    async def start(
        self,
        *,
        service: str,
        ref: str,
        trigger: str,
        requested_by: str | None,
        idempotency_key: str,
    ) -> StartResult:
        from dualop.routing import expected_route

        audit = self._audit

        def _expected() -> tuple[str, str]:
            return expected_route(self._catalog().service(service), audit)

        model, action = await anyio.to_thread.run_sync(_expected)
        parameters = {
            "service": service,
            "ref": ref,
            "trigger": trigger,
            "requested_by": requested_by,
        }
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                run_id = await self._create_run(parameters, idempotency_key)
            except PrefectUnavailable as e:
                if not e.transient or attempt == self._attempts:
                    raise
                log.warning(
                    "dualop.webhook.prefect_retry",
                    service=service,
                    attempt=attempt,
                    retry_in_s=delay,
                    why=str(e),
                )
                # Jittered, so the requests of one burst do not all come back at once.
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311  # not crypto
                delay *= 2
            else:
                return StartResult(flow_run_id=run_id, model=model, action=action)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def _create_run(self, parameters: dict[str, Any], idempotency_key: str) -> str:
        import httpx
        from prefect.deployments import arun_deployment
        from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

        try:
            async with self._prefect() as client:
                run = await arun_deployment(
                    self._deployment,
                    client=client,
                    parameters=parameters,
                    timeout=0,
                    idempotency_key=idempotency_key,
                )
        except ObjectNotFound:
            raise self._unavailable(
                f"the deployment {self._deployment!r} does not exist; start the deployments "
                "with `dualop serve` (or the whole stack with `dualop up`)"
            ) from None
        except PrefectHTTPStatusError as e:
            status = e.response.status_code
            if status < 500:
                raise
            raise self._unavailable(f"the Prefect API answered {status}", transient=True) from None
        except httpx.TimeoutException as e:
            raise self._unavailable(f"the Prefect API timed out ({type(e).__name__})") from None
        except (httpx.TransportError, OSError) as e:
            raise self._unavailable(
                f"cannot reach the Prefect API ({type(e).__name__})", transient=True
            ) from None
        return str(run.id)

    def _unavailable(self, why: str, *, transient: bool = False) -> PrefectUnavailable:
        return PrefectUnavailable(
            f"{why} at {_api_url(self._settings)}; check that the Prefect server is running "
            "(`dualop up`) or that PREFECT_API_URL points at it; the sender will retry",
            transient=transient,
        )


def _api_url(settings: Settings) -> str:
    try:
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
    except Exception:  # only for the message
        url = None
    return redact_url(str(url or f"http://127.0.0.1:{settings.prefect_port}/api"))


# --- signatures and URLs -------------------------------------------------------------------


def github_signature(secret: bytes, body: bytes) -> str:
    """GitHub's `X-Hub-Signature-256` value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def normalize_repo_url(url: str) -> str:
    """One spelling per repository, so a pushed URL can be compared with a catalog `repo`.

    `https://Host/o/r.git`, `http://host/o/r/`, `git@host:o/r.git`, `ssh://git@host:22/o/r`
    and `git://host/o/r` all become `host/o/r` (user, password and port dropped, lower
    case). `file:///srv/r` and the absolute path `/srv/r` become the real path `/srv/r`
    (symlinks resolved; case kept, since file systems are case-sensitive).
    Raise `InputError` for anything else.
    """
    text = url.strip()
    if not text:
        raise InputError("the repository URL is empty; give a git URL or an absolute path")
    if text.lower().startswith("file://"):
        path = unquote(urlsplit(text).path)
        if not path.startswith("/"):
            raise InputError(f"{url!r} has no absolute path; write it like file:///srv/git/repo")
        return os.path.realpath(path)
    if text.startswith("/"):
        return os.path.realpath(text)
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
        except ValueError:
            raise InputError(f"{url!r} is not a valid URL; check the host part") from None
        path = unquote(parts.path)
    else:
        match = _SCP_LIKE.match(text)
        if match is None:
            raise InputError(
                f"{url!r} is not a git URL or an absolute path; use https://host/owner/repo, "
                "git@host:owner/repo.git, ssh://git@host/owner/repo or /path/to/repo"
            )
        host, path = match["host"], match["path"]
    path = path.strip("/")
    if path.lower().endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    if not host or not path:
        raise InputError(f"{url!r} needs a host and a repository path, like host/owner/repo")
    return f"{host}/{path}".lower()


# --- the app ---------------------------------------------------------------------------------


class _Answer(Exception):
    """Ends request handling early with a JSON answer."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


def _fail(status: int, error: str) -> NoReturn:
    raise _Answer(status, {"error": error})


@dataclass(frozen=True, slots=True)
class _Push:
    """The fields of a push both providers send, once read and checked."""

    urls: tuple[tuple[str, str], ...]  # (field, url), in the order they are tried
    ref: str
    after: str
    deleted: bool
    pusher: str | None


@dataclass(frozen=True, slots=True)
class _Provider:
    name: Provider
    events: tuple[str, ...]  # handled as pushes
    tag_events: tuple[str, ...]  # always ignored as tag pushes
    event_header: str
    setting: str  # the env variable to name when the secret is missing
    secret: Callable[[Settings], SecretStr | None]
    authorised: Callable[[bytes, Request, bytes], bool]
    delivery: Callable[[Request, bytes], str]
    push: Callable[[dict[str, Any]], _Push]
    ping: str | None = None


def _github_ok(secret: bytes, request: Request, body: bytes) -> bool:
    given = request.headers.get("x-hub-signature-256")
    if given is None:
        return False
    expected = github_signature(secret, body).encode()
    return hmac.compare_digest(expected, given.strip().encode("latin-1"))


def _gitlab_ok(secret: bytes, request: Request, body: bytes) -> bool:
    given = request.headers.get("x-gitlab-token")
    if given is None:
        return False
    return hmac.compare_digest(secret, given.encode("latin-1"))


def _delivery_from(request: Request, body: bytes, *headers: str) -> str:
    for header in headers:
        value = request.headers.get(header)
        if value is None:
            continue
        value = value.strip()
        if not _DELIVERY.match(value):
            _fail(
                400,
                f"header {header} is not a delivery id; send up to 128 letters, digits "
                "and . _ : - (or leave it out to use the body's SHA-256)",
            )
        return value
    return hashlib.sha256(body).hexdigest()


def _field(payload: Mapping[str, Any], *path: str) -> Any:
    value: Any = payload
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text(payload: Mapping[str, Any], *path: str) -> str:
    """A required string field."""
    value = _field(payload, *path)
    dotted = ".".join(path)
    if value is None:
        _fail(400, f"missing field {dotted}")
    if not isinstance(value, str):
        _fail(400, f"field {dotted} must be a string, not {type(value).__name__}")
    return value


def _urls(
    payload: Mapping[str, Any], fields: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    found = []
    for path in fields:
        value = _field(payload, *path)
        if isinstance(value, str) and value.strip():
            found.append((".".join(path), value))
    if not found:
        first = ".".join(fields[0])
        _fail(400, f"missing field {first} (or another repository URL field)")
    return tuple(found)


def _name(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:_MAX_NAME]
    return None


def _deleted(payload: Mapping[str, Any]) -> bool:
    deleted = _field(payload, "deleted")
    if deleted is not None and not isinstance(deleted, bool):
        _fail(400, f"field deleted must be true or false, not {type(deleted).__name__}")
    return bool(deleted)


def _github_push(payload: dict[str, Any]) -> _Push:
    urls = _urls(payload, GITHUB_URL_FIELDS)
    ref = _text(payload, "ref")
    after = _text(payload, "after")
    pusher = _name(_field(payload, "pusher", "name")) or _name(_field(payload, "sender", "login"))
    return _Push(urls=urls, ref=ref, after=after, deleted=_deleted(payload), pusher=pusher)


def _gitlab_push(payload: dict[str, Any]) -> _Push:
    urls = _urls(payload, GITLAB_URL_FIELDS)
    ref = _text(payload, "ref")
    after = _text(payload, "after")
    pusher = _name(payload.get("user_username")) or _name(payload.get("user_name"))
    return _Push(urls=urls, ref=ref, after=after, deleted=_deleted(payload), pusher=pusher)


GITHUB = _Provider(
    name="github",
    events=("push",),
    tag_events=(),
    event_header="X-GitHub-Event",
    setting="DUALOP_WEBHOOK__GITHUB_SECRET",
    secret=lambda s: s.webhook.github_secret,
    authorised=_github_ok,
    delivery=lambda request, body: _delivery_from(request, body, "x-github-delivery"),
    push=_github_push,
    ping="ping",
)
GITLAB = _Provider(
    name="gitlab",
    events=("Push Hook",),
    tag_events=("Tag Push Hook",),
    event_header="X-Gitlab-Event",
    setting="DUALOP_WEBHOOK__GITLAB_TOKEN",
    secret=lambda s: s.webhook.gitlab_token,
    authorised=_gitlab_ok,
    delivery=lambda request, body: _delivery_from(
        request, body, "x-gitlab-event-uuid", "x-gitlab-webhook-uuid"
    ),
    push=_gitlab_push,
)


def _check_content_type(request: Request, provider: _Provider) -> None:
    raw = request.headers.get("content-type")
    media = (raw or "").split(";", 1)[0].strip().lower()
    if media == "application/json":
        return
    if media == "application/x-www-form-urlencoded" and provider.name == "github":
        _fail(
            415,
            "the webhook sends form data; edit the webhook on GitHub and set its "
            "Content type to application/json",
        )
    shown = "none" if raw is None else repr(media[:60])
    _fail(415, f"Content-Type is {shown}; send application/json")


def _too_big(limit: int) -> NoReturn:
    _fail(413, f"the body is over the {limit}-byte limit (webhook.max_body_bytes)")


def _check_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is None:
        return
    if not length.strip().isdigit():
        _fail(400, "header Content-Length is not a number of bytes")
    if int(length) > limit:
        _too_big(limit)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, counted while it streams in (a chunked body has no Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                _too_big(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        _fail(400, "the client went away before the whole body arrived")
    return b"".join(chunks)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        where = (
            f" at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        )
        _fail(400, f"the body is not valid JSON{where}; send the webhook's JSON payload")
    except RecursionError:
        _fail(400, "the body is not valid JSON (nested too deeply)")
    if not isinstance(payload, dict):
        _fail(400, f"the body is JSON {type(payload).__name__}, not an object")
    return payload


def _match(catalog: Catalog, push: _Push) -> tuple[str, list[Service]]:
    """(the URL that matched or the first one given, the services on that repository)."""
    pushed: dict[str, str] = {}
    for _field_name, url in push.urls:
        try:
            pushed.setdefault(normalize_repo_url(url), url)
        except InputError:
            continue
    services = []
    matched_url = push.urls[0][1]
    for service in sorted(catalog.services.values(), key=lambda s: s.name):
        try:
            key = normalize_repo_url(service.repo)
        except InputError:
            continue
        if key in pushed:
            services.append(service)
            matched_url = pushed[key]
    return matched_url, services


def create_app(
    *,
    settings: Settings,
    catalog: Callable[[], Catalog],
    starter: RouteStarter,
    audit: AuditLog | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    """The receiver (module docstring). `catalog` is called for each push, so catalog edits
    apply without a restart; make it cheap if pushes are frequent. `clock` ends the period
    `GET /metrics` reports on."""
    limit = settings.webhook.max_body_bytes

    async def record(
        provider: _Provider,
        delivery: str,
        service: str,
        outcome: Literal["started", "ignored"],
        *,
        run_id: str | None = None,
        reason: str | None = None,
        ref: str | None = None,
    ) -> None:
        if audit is None:
            return
        data: dict[str, Any] = {"provider": provider.name, "delivery": delivery}
        data["outcome"] = outcome
        if reason is not None:
            data["reason"] = reason
        if ref is not None:
            data["ref"] = ref

        def _append() -> None:
            audit.append(
                "webhook.received",
                service=service,
                run_id=run_id,
                at=datetime.now(UTC),
                **data,
            )

        try:
            await anyio.to_thread.run_sync(_append)
        except Exception:  # the run is started; the answer must say so
            log.exception("dualop.webhook.audit_failed", service=service, delivery=delivery)

    async def ignored(
        provider: _Provider, delivery: str, reason: str, service: str | None = None
    ) -> Response:
        log.info(
            "dualop.webhook.ignored",
            provider=provider.name,
            delivery=delivery,
            service=service,
            reason=reason,
        )
        if service is not None:
            await record(provider, delivery, service, "ignored", reason=reason)
        body: dict[str, Any] = {"ignored": True, "reason": reason}
        if service is not None:
            body["service"] = service
        return JSONResponse(body, status_code=200)

    async def handle(request: Request, provider: _Provider) -> Response:
        # size → content type → configured → size while reading → auth → parse → fields
        _check_length(request, limit)
        _check_content_type(request, provider)
        secret = provider.secret(settings)
        secret_bytes = secret.get_secret_value().encode() if secret is not None else b""
        if not secret_bytes:
            _fail(503, f"the {provider.name} webhook is disabled: set {provider.setting}")
        body = await _read_body(request, limit)
        if not provider.authorised(secret_bytes, request, body):
            log.warning("dualop.webhook.unauthorized", provider=provider.name)
            _fail(401, "unauthorized")
        payload = _parse(body)
        delivery = provider.delivery(request, body)
        event = request.headers.get(provider.event_header)
        if event is None:
            _fail(400, f"missing header {provider.event_header}")
        event = event.strip()
        if provider.ping is not None and event == provider.ping:
            log.info("dualop.webhook.ping", provider=provider.name, delivery=delivery)
            return JSONResponse({"ok": True, "event": "ping"}, status_code=200)
        if event in provider.tag_events:
            return await ignored(provider, delivery, "a tag push; only branch pushes release")
        if event not in provider.events:
            shown = event[:60] if event.isprintable() else repr(event[:60])
            return await ignored(
                provider, delivery, f"event {shown!r} is not handled; only pushes release"
            )
        push = provider.push(payload)
        return await release(provider, delivery, push)

    async def release(provider: _Provider, delivery: str, push: _Push) -> Response:
        try:
            current = await anyio.to_thread.run_sync(catalog)
        except CatalogInvalid as e:
            log.error("dualop.webhook.catalog_invalid", problems=[str(p) for p in e.problems])
            _fail(
                503,
                "the catalog is invalid; run `dualop catalog validate` on the receiver's host "
                "and fix it (the sender will retry)",
            )
        url, services = _match(current, push)
        if not services:
            shown = redact_url(url)[:300]
            _fail(
                404,
                f"unknown repository {shown!r}: no service in the catalog has this repo; "
                "add a config/services/NAME.yaml with `repo:` set to it",
            )
        names = ", ".join(s.name for s in services)
        if push.deleted or _ZERO_SHA.match(push.after):
            return await ignored(provider, delivery, "a branch deletion", names)
        if push.ref.startswith("refs/tags/"):
            return await ignored(
                provider, delivery, "a tag push; only branch pushes release", names
            )
        if not push.ref.startswith("refs/heads/"):
            return await ignored(
                provider,
                delivery,
                f"{push.ref[:100]!r} is not a branch; only branch pushes release",
                names,
            )
        branch = push.ref.removeprefix("refs/heads/")
        try:
            validate_ref(branch)
        except UnsafeRefError as e:
            _fail(400, f"field ref: {e}")
        on_branch = [s for s in services if s.branch == branch]
        if not on_branch:
            wanted = ", ".join(sorted({f"{s.name}: {s.branch}" for s in services}))
            return await ignored(
                provider,
                delivery,
                f"a push to branch {branch!r}; releases come from the release branch ({wanted})",
                names,
            )
        if not _SHA.match(push.after):
            _fail(
                400,
                f"field after is {push.after[:80]!r}, not a commit sha (40 lowercase hex digits)",
            )
        runs: list[dict[str, str]] = []
        for service in on_branch:
            key = f"{provider.name}:{delivery}"
            if len(on_branch) > 1:
                key += f":{service.name}"
            result = await starter.start(
                service=service.name,
                ref=push.after,
                trigger="webhook",
                requested_by=push.pusher,
                idempotency_key=key,
            )
            log.info(
                "dualop.webhook.started",
                provider=provider.name,
                delivery=delivery,
                service=service.name,
                ref=push.after,
                flow_run_id=result.flow_run_id,
                model=result.model,
                action=result.action,
            )
            await record(
                provider,
                delivery,
                service.name,
                "started",
                run_id=result.flow_run_id,
                ref=push.after,
            )
            runs.append(
                {
                    "flow_run_id": result.flow_run_id,
                    "service": service.name,
                    "model": result.model,
                    "action": result.action,
                }
            )
        answer: dict[str, Any] = dict(runs[0])
        if len(runs) > 1:
            answer["runs"] = runs
        return JSONResponse(answer, status_code=202)

    def endpoint(provider: _Provider) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            try:
                return await handle(request, provider)
            except _Answer as a:
                return JSONResponse(a.body, status_code=a.status, headers=a.headers)
            except PrefectUnavailable as e:
                log.error("dualop.webhook.prefect_unavailable", provider=provider.name, why=str(e))
                return JSONResponse(
                    {"error": f"Prefect is unavailable: {e}"},
                    status_code=503,
                    headers={"Retry-After": "10"},
                )
            except Exception:  # never a traceback to the sender
                log.exception("dualop.webhook.failed", provider=provider.name)
                return JSONResponse(
                    {"error": "internal error; see the receiver's log"}, status_code=500
                )

        return receive

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def metrics(request: Request) -> Response:
        """DORA metrics from the audit log, Prometheus text; `?days=N` (default 30)."""
        from dualop.report import dora_report, prometheus_text

        if audit is None:
            return JSONResponse({"error": "no audit log configured"}, status_code=404)
        days = request.query_params.get("days", "30")
        if not days.isdigit() or not 1 <= int(days) <= 3660:
            return JSONResponse(
                {"error": "query parameter `days` must be a whole number from 1 to 3660"},
                status_code=400,
            )
        until = clock()
        since = until - timedelta(days=int(days))
        report = await anyio.to_thread.run_sync(
            lambda: dora_report(audit.entries(), since=since, until=until)
        )
        return Response(
            prometheus_text(report), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def http_error(_request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # pragma: no cover  # registered for it only
            raise exc
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(starter, contextlib.AbstractAsyncContextManager):
                await stack.enter_async_context(starter)  # one Prefect client for all
            yield

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/webhooks/github", endpoint(GITHUB), methods=["POST"]),
            Route("/webhooks/gitlab", endpoint(GITLAB), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )


def run_receiver(settings: Settings, *, host: str, port: int) -> None:
    """Run the receiver with the real catalog, audit log and Prefect until interrupted."""
    import prefect.deployments  # noqa: F401  # imported now, not on the first push
    import uvicorn

    from dualop.audit import open_audit_log
    from dualop.catalog import load_catalog

    audit = open_audit_log(settings)

    def catalog() -> Catalog:
        return load_catalog(settings.config_dir)

    app = create_app(
        settings=settings,
        catalog=catalog,
        starter=PrefectRouteStarter(settings, catalog, audit),
        audit=audit,
    )
    log.info("dualop.webhook.listening", host=host, port=port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
