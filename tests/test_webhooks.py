"""The webhook receiver: signatures, tokens, URL matching, every status code, real HTTP."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import structlog
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.applications import Starlette

from dualop.audit import FileAuditLog
from dualop.catalog import ApproverDirectory, Catalog, Service, WindowsConfig
from dualop.exceptions import CatalogInvalid, InputError, Problem
from dualop.settings import Settings, WebhookSettings
from dualop.webhooks import (
    PrefectRouteStarter,
    PrefectUnavailable,
    StartResult,
    create_app,
    github_signature,
    normalize_repo_url,
)
from tests.support import receiver_thread

SECRET = "test-github-secret-value"
TOKEN = "test-gitlab-token-value"
SHA = "0123456789abcdef0123456789abcdef01234567"
LIMIT = 4096


# --- helpers -------------------------------------------------------------------------------


@dataclass
class FakeStarter:
    """Records calls; one flow run id per idempotency key; can raise instead."""

    fail_with: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def start(
        self,
        *,
        service: str,
        ref: str,
        trigger: str,
        requested_by: str | None,
        idempotency_key: str,
    ) -> StartResult:
        self.calls.append(
            {
                "service": service,
                "ref": ref,
                "trigger": trigger,
                "requested_by": requested_by,
                "idempotency_key": idempotency_key,
            }
        )
        if self.fail_with is not None:
            raise self.fail_with
        run_id = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        return StartResult(flow_run_id=run_id, model="digital", action="paved-road")


def make_service(name: str, repo: str, branch: str = "main") -> Service:
    return Service.model_validate(
        {
            "name": name,
            "repo": repo,
            "branch": branch,
            "owner": "team-web",
            "runtime": "python",
            "operating_model": "digital",
            "reason": "tests",
        }
    )


def make_catalog(*services: Service) -> Catalog:
    return Catalog(
        config_dir=Path("config"),
        services={s.name: s for s in services},
        windows=WindowsConfig(),
        approvers=ApproverDirectory(),
    )


def make_settings(
    tmp: Path, *, github: str | None = SECRET, gitlab: str | None = TOKEN
) -> Settings:
    return Settings(
        config_dir=tmp / "config",
        data_dir=tmp / "data",
        webhook=WebhookSettings(
            github_secret=SecretStr(github) if github is not None else None,
            gitlab_token=SecretStr(gitlab) if gitlab is not None else None,
            max_body_bytes=LIMIT,
        ),
    )


WEB = make_service("web", "https://github.com/acme/web.git")
SHOP = make_service("shop", "git@gitlab.example.com:retail/shop.git", branch="release")


def github_push(
    *,
    ref: str = "refs/heads/main",
    after: str = SHA,
    clone_url: str | None = "https://github.com/Acme/Web.git",
    **extra: Any,
) -> dict[str, Any]:
    repository: dict[str, Any] = {"full_name": "acme/web"}
    if clone_url is not None:
        repository["clone_url"] = clone_url
    return {
        "ref": ref,
        "before": "f" * 40,
        "after": after,
        "repository": repository,
        "pusher": {"name": "ada", "email": "ada@example.test"},
        **extra,
    }


def gitlab_push(*, ref: str = "refs/heads/release", after: str = SHA) -> dict[str, Any]:
    return {
        "object_kind": "push",
        "ref": ref,
        "before": "f" * 40,
        "after": after,
        "user_username": "grace",
        "user_name": "Grace Hopper",
        "project": {
            "git_http_url": "https://gitlab.example.com/retail/shop.git",
            "git_ssh_url": "git@gitlab.example.com:retail/shop.git",
        },
    }


def github_headers(
    body: bytes, *, event: str = "push", delivery: str | None = "d-1", secret: str = SECRET
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": github_signature(secret.encode(), body),
    }
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    return headers


def gitlab_headers(*, event: str = "Push Hook", token: str | None = TOKEN) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return headers


@dataclass
class Receiver:
    app: Starlette
    starter: FakeStarter
    client: httpx.AsyncClient

    async def github(self, payload: Any, **kwargs: Any) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = github_headers(body, **kwargs)
        return await self.client.post("/webhooks/github", content=body, headers=headers)

    async def gitlab(
        self, payload: Any, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return await self.client.post(
            "/webhooks/gitlab", content=body, headers=headers or gitlab_headers(**kwargs)
        )


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    starter = FakeStarter()
    app = create_app(
        settings=make_settings(tmp_path), catalog=lambda: make_catalog(WEB, SHOP), starter=starter
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield Receiver(app, starter, client)


async def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver")


# --- signatures and URLs -------------------------------------------------------------------


class TestGithubSignature:
    def test_github_documented_vector(self) -> None:
        """GitHub's documented example signature comes out exactly."""
        assert github_signature(b"It's a Secret to Everybody", b"Hello, World!") == (
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        )

    def test_depends_on_secret_and_body(self) -> None:
        """Another secret or another body gives another signature."""
        base = github_signature(b"a", b"body")
        assert github_signature(b"b", b"body") != base
        assert github_signature(b"a", b"body ") != base


class TestNormalizeRepoUrl:
    @pytest.mark.parametrize(
        "url",
        [
            pytest.param("https://github.com/acme/web", id="https"),
            pytest.param("https://github.com/acme/web.git", id="https-dot-git"),
            pytest.param("https://GitHub.com/Acme/Web.GIT", id="case"),
            pytest.param("https://github.com/acme/web/", id="trailing-slash"),
            pytest.param("https://github.com/acme/web.git/", id="dot-git-slash"),
            pytest.param("http://github.com/acme/web", id="http"),
            pytest.param("https://x-token:secret@github.com/acme/web.git", id="credentials"),
            pytest.param("https://github.com:443/acme/web", id="port"),
            pytest.param("git@github.com:acme/web.git", id="scp-like"),
            pytest.param("git@github.com:/acme/web.git", id="scp-like-leading-slash"),
            pytest.param("ssh://git@github.com/acme/web.git", id="ssh-url"),
            pytest.param("ssh://git@github.com:22/acme/web", id="ssh-url-port"),
            pytest.param("git://github.com/acme/web.git", id="git-protocol"),
            pytest.param("  https://github.com/acme/web  ", id="whitespace"),
        ],
    )
    def test_spellings_of_one_repository(self, url: str) -> None:
        """Every spelling of one hosted repository normalises to host/owner/repo."""
        assert normalize_repo_url(url) == "github.com/acme/web"

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            pytest.param(
                "https://github.com/acme/web", "https://github.com/acme/webshop", id="name"
            ),
            pytest.param("https://github.com/acme/web", "https://gitlab.com/acme/web", id="host"),
            pytest.param("https://github.com/acme/web", "https://github.com/other/web", id="owner"),
        ],
    )
    def test_different_repositories_stay_apart(self, a: str, b: str) -> None:
        """Repositories that differ in host, owner or name do not collide."""
        assert normalize_repo_url(a) != normalize_repo_url(b)

    def test_gitlab_subgroups_kept(self) -> None:
        """GitLab's nested groups are part of the path."""
        assert normalize_repo_url("git@gitlab.com:a/b/c.git") == "gitlab.com/a/b/c"
        assert normalize_repo_url("https://gitlab.com/a/b/c") == "gitlab.com/a/b/c"

    def test_local_paths_and_file_urls(self, tmp_path: Path) -> None:
        """A path, its file:// URL and a symlink to it are one repository (case kept)."""
        repo = tmp_path / "Repo"
        repo.mkdir()
        link = tmp_path / "link"
        link.symlink_to(repo)
        expected = os.path.realpath(repo)
        assert normalize_repo_url(str(repo)) == expected
        assert normalize_repo_url(f"{repo}/") == expected
        assert normalize_repo_url(f"file://{repo}") == expected
        assert normalize_repo_url(f"file://{link}") == expected
        assert normalize_repo_url(str(link)) == expected
        assert normalize_repo_url(f"file://{tmp_path}/with%20space") == os.path.realpath(
            tmp_path / "with space"
        )

    @pytest.mark.parametrize(
        "url",
        [
            pytest.param("", id="empty"),
            pytest.param("relative/path", id="relative"),
            pytest.param("https://github.com", id="no-path"),
            pytest.param("file://relative", id="file-without-path"),
            pytest.param("http://[::1/x", id="bad-ipv6"),
        ],
    )
    def test_not_a_repository(self, url: str) -> None:
        """Text that names no repository is an InputError saying the accepted forms."""
        with pytest.raises(InputError):
            normalize_repo_url(url)


# --- the GitHub endpoint -------------------------------------------------------------------


@pytest.mark.anyio
class TestGithubReceiver:
    async def test_release_push_starts_route(self, receiver: Receiver) -> None:
        """A signed push to the release branch starts `route` and answers 202 with the run."""
        answer = await receiver.github(github_push(), delivery="abc-123")
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body == {
            "flow_run_id": body["flow_run_id"],
            "service": "web",
            "model": "digital",
            "action": "paved-road",
        }
        assert receiver.starter.calls == [
            {
                "service": "web",
                "ref": SHA,
                "trigger": "webhook",
                "requested_by": "ada",
                "idempotency_key": "github:abc-123",
            }
        ]

    async def test_redelivery_uses_the_same_key(self, receiver: Receiver) -> None:
        """The same delivery twice gives the same idempotency key, hence the same run."""
        first = await receiver.github(github_push(), delivery="same")
        second = await receiver.github(github_push(), delivery="same")
        other = await receiver.github(github_push(), delivery="other")
        keys = [c["idempotency_key"] for c in receiver.starter.calls]
        assert keys == ["github:same", "github:same", "github:other"]
        assert first.json()["flow_run_id"] == second.json()["flow_run_id"]
        assert other.json()["flow_run_id"] != first.json()["flow_run_id"]

    async def test_no_delivery_header_uses_the_body_digest(self, receiver: Receiver) -> None:
        """Without X-GitHub-Delivery the key is the body's SHA-256: one body, one release."""
        body = json.dumps(github_push()).encode()
        await receiver.github(body, delivery=None)
        assert receiver.starter.calls[0]["idempotency_key"] == (
            "github:" + hashlib.sha256(body).hexdigest()
        )

    async def test_repository_matched_by_any_url_field(self, receiver: Receiver) -> None:
        """A payload with only ssh_url still finds the service."""
        payload = github_push(clone_url=None)
        payload["repository"]["ssh_url"] = "git@github.com:acme/web.git"
        answer = await receiver.github(payload)
        assert answer.status_code == 202, answer.text

    async def test_pusher_falls_back_to_sender(self, receiver: Receiver) -> None:
        """requested_by is pusher.name, else sender.login, else None."""
        payload = github_push(sender={"login": "octocat"})
        del payload["pusher"]
        await receiver.github(payload, delivery="one")
        payload.pop("sender")
        await receiver.github(payload, delivery="two")
        assert [c["requested_by"] for c in receiver.starter.calls] == ["octocat", None]

    async def test_ping(self, receiver: Receiver) -> None:
        """A ping answers 200 and starts nothing."""
        answer = await receiver.github(
            {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping"
        )
        assert answer.status_code == 200
        assert answer.json() == {"ok": True, "event": "ping"}
        assert receiver.starter.calls == []

    async def test_other_events_ignored(self, receiver: Receiver) -> None:
        """Events other than push answer 200 with a reason and start nothing."""
        answer = await receiver.github({"action": "opened"}, event="pull_request")
        assert answer.status_code == 200
        assert answer.json() == {
            "ignored": True,
            "reason": "event 'pull_request' is not handled; only pushes release",
        }
        assert receiver.starter.calls == []

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            pytest.param(
                github_push(ref="refs/heads/feature/x"),
                "a push to branch 'feature/x'; releases come from the release branch (web: main)",
                id="other-branch",
            ),
            pytest.param(
                github_push(ref="refs/tags/v1.0.0"),
                "a tag push; only branch pushes release",
                id="tag",
            ),
            pytest.param(github_push(deleted=True), "a branch deletion", id="deleted-flag"),
            pytest.param(github_push(after="0" * 40), "a branch deletion", id="zero-after"),
            pytest.param(
                github_push(ref="refs/pull/1/head"),
                "'refs/pull/1/head' is not a branch; only branch pushes release",
                id="not-a-branch",
            ),
        ],
    )
    async def test_pushes_that_do_not_release(
        self, receiver: Receiver, payload: dict[str, Any], reason: str
    ) -> None:
        """Other branches, tags and deletions answer 200 with the reason, starting nothing."""
        answer = await receiver.github(payload)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ignored": True, "reason": reason, "service": "web"}
        assert receiver.starter.calls == []

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="missing"),
            pytest.param({"X-Hub-Signature-256": "sha256=" + "0" * 64}, id="wrong"),
            pytest.param({"X-Hub-Signature-256": "garbage"}, id="malformed"),
            pytest.param({"X-Hub-Signature-256": ""}, id="empty"),
            pytest.param(
                {"X-Hub-Signature-256": github_signature(b"other secret", b"{}")}, id="other-secret"
            ),
        ],
    )
    async def test_bad_signature_is_401(self, receiver: Receiver, headers: dict[str, str]) -> None:
        """Missing or wrong signatures get the same bare 401 and start nothing."""
        body = json.dumps(github_push()).encode()
        sent = {"Content-Type": "application/json", "X-GitHub-Event": "push", **headers}
        answer = await receiver.client.post("/webhooks/github", content=body, headers=sent)
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized"}
        assert receiver.starter.calls == []

    async def test_signature_of_another_body_is_401(self, receiver: Receiver) -> None:
        """A valid signature for a different body does not authorise this one."""
        headers = github_headers(b"{}")
        body = json.dumps(github_push()).encode()
        answer = await receiver.client.post("/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 401

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            pytest.param(b"{not json", "the body is not valid JSON at line 1, column 2", id="json"),
            pytest.param(b"\xff\xfe", "the body is not valid JSON", id="not-utf8"),
            pytest.param(b"[1, 2]", "the body is JSON list, not an object", id="array"),
            pytest.param(b"[" * 100_0 + b"]" * 100_0, "the body is", id="deep"),
        ],
    )
    async def test_malformed_body_is_400(self, receiver: Receiver, body: bytes, error: str) -> None:
        """A signed body that is not a JSON object gets 400 saying so."""
        answer = await receiver.github(body)
        assert answer.status_code == 400
        assert answer.json()["error"].startswith(error)

    @pytest.mark.parametrize(
        ("drop", "field_name"),
        [
            pytest.param("ref", "missing field ref", id="ref"),
            pytest.param("after", "missing field after", id="after"),
            pytest.param(
                "repository",
                "missing field repository.clone_url (or another repository URL field)",
                id="repository",
            ),
        ],
    )
    async def test_missing_field_is_400_naming_it(
        self, receiver: Receiver, drop: str, field_name: str
    ) -> None:
        """A push without a required field gets 400 naming the field."""
        payload = github_push()
        del payload[drop]
        answer = await receiver.github(payload)
        assert answer.status_code == 400
        assert answer.json() == {"error": field_name}

    @pytest.mark.parametrize(
        ("change", "error"),
        [
            pytest.param({"ref": 7}, "field ref must be a string, not int", id="ref-type"),
            pytest.param({"after": None}, "missing field after", id="after-null"),
            pytest.param({"deleted": "yes"}, "field deleted must be true or false", id="deleted"),
            pytest.param({"after": "HEAD"}, "field after is 'HEAD', not a commit sha", id="sha"),
            pytest.param(
                {"after": "--upload-pack=evil" + "0" * 22}, "field after is", id="option-sha"
            ),
            pytest.param({"ref": "refs/heads/../x"}, "field ref: refusing git ref", id="unsafe"),
            pytest.param({"ref": "refs/heads/-x"}, "field ref: refusing git ref", id="dash"),
        ],
    )
    async def test_bad_fields_are_400(
        self, receiver: Receiver, change: dict[str, Any], error: str
    ) -> None:
        """Wrongly typed fields, non-sha `after` and unsafe refs get 400 and start nothing."""
        answer = await receiver.github({**github_push(), **change})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith(error)
        assert receiver.starter.calls == []

    async def test_missing_event_header_is_400(self, receiver: Receiver) -> None:
        """A signed request without X-GitHub-Event gets 400 naming the header."""
        body = json.dumps(github_push()).encode()
        headers = github_headers(body)
        del headers["X-GitHub-Event"]
        answer = await receiver.client.post("/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 400
        assert answer.json() == {"error": "missing header X-GitHub-Event"}

    async def test_bad_delivery_header_is_400(self, receiver: Receiver) -> None:
        """A delivery id that is not a plain token is refused, not passed to Prefect."""
        answer = await receiver.github(github_push(), delivery="a b;c")
        assert answer.status_code == 400
        assert "X-GitHub-Delivery".lower() in answer.json()["error"].lower()

    async def test_unknown_repository_is_404(self, receiver: Receiver) -> None:
        """A push from a repository no service uses gets 404 naming the URL."""
        answer = await receiver.github(github_push(clone_url="https://github.com/acme/other.git"))
        assert answer.status_code == 404
        assert "'https://github.com/acme/other.git'" in answer.json()["error"]

    async def test_unknown_repository_url_hides_credentials(self, receiver: Receiver) -> None:
        """Credentials in a pushed URL do not come back in the 404."""
        url = "https://user:hunter2@github.com/acme/other.git"
        answer = await receiver.github(github_push(clone_url=url))
        assert answer.status_code == 404
        assert "hunter2" not in answer.text

    async def test_content_length_over_limit_is_413(self, receiver: Receiver) -> None:
        """A declared body over max_body_bytes gets 413 before anything else is checked."""
        body = b"x" * (LIMIT + 1)
        answer = await receiver.client.post(
            "/webhooks/github", content=body, headers={"Content-Type": "text/plain"}
        )
        assert answer.status_code == 413
        assert "webhook.max_body_bytes" in answer.json()["error"]

    async def test_streamed_body_over_limit_is_413(self, receiver: Receiver) -> None:
        """A chunked body (no Content-Length) is counted as it arrives: 413 once over."""

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        answer = await receiver.client.post(
            "/webhooks/github",
            content=chunks(),
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=0"},
        )
        assert answer.status_code == 413

    async def test_body_at_the_limit_is_read(self, receiver: Receiver) -> None:
        """Exactly max_body_bytes is allowed (it then fails the signature, not the size)."""
        answer = await receiver.client.post(
            "/webhooks/github",
            content=b" " * LIMIT,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 401

    async def test_bad_content_length_is_400(self, receiver: Receiver) -> None:
        """A Content-Length that is not a number is a 400."""
        scope_headers = [(b"content-length", b"ten"), (b"content-type", b"application/json")]
        status, body = await raw_asgi(receiver.app, "/webhooks/github", scope_headers, b"{}")
        assert status == 400
        assert b"Content-Length" in body

    @pytest.mark.parametrize(
        ("content_type", "hint"),
        [
            pytest.param(
                "application/x-www-form-urlencoded",
                "set its Content type to application/json",
                id="github-form",
            ),
            pytest.param("text/plain", "send application/json", id="text"),
            pytest.param(None, "Content-Type is none; send application/json", id="missing"),
        ],
    )
    async def test_wrong_content_type_is_415(
        self, receiver: Receiver, content_type: str | None, hint: str
    ) -> None:
        """Anything but application/json gets 415 saying what to send."""
        body = json.dumps(github_push()).encode()
        headers = github_headers(body)
        del headers["Content-Type"]
        if content_type is not None:
            headers["Content-Type"] = content_type
        answer = await receiver.client.post("/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 415
        assert hint in answer.json()["error"]

    async def test_content_type_parameters_accepted(self, receiver: Receiver) -> None:
        """`application/json; charset=utf-8` is JSON."""
        body = json.dumps(github_push()).encode()
        headers = {**github_headers(body), "Content-Type": "Application/JSON; charset=utf-8"}
        answer = await receiver.client.post("/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202

    async def test_no_secret_configured_is_503(self, tmp_path: Path) -> None:
        """Without a GitHub secret the endpoint refuses everything, saying which setting."""
        starter = FakeStarter()
        app = create_app(
            settings=make_settings(tmp_path, github=None),
            catalog=lambda: make_catalog(WEB),
            starter=starter,
        )
        body = json.dumps(github_push()).encode()
        async with await client_for(app) as client:
            answer = await client.post(
                "/webhooks/github", content=body, headers=github_headers(body)
            )
        assert answer.status_code == 503
        assert answer.json() == {
            "error": "the github webhook is disabled: set DUALOP_WEBHOOK__GITHUB_SECRET"
        }
        assert starter.calls == []

    async def test_prefect_unavailable_is_503(self, receiver: Receiver) -> None:
        """When Prefect cannot be reached the sender gets 503 (and retries)."""
        receiver.starter.fail_with = PrefectUnavailable("cannot reach the Prefect API")
        answer = await receiver.github(github_push())
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "10"
        assert "cannot reach the Prefect API" in answer.json()["error"]

    async def test_invalid_catalog_is_503(self, tmp_path: Path) -> None:
        """A broken catalog answers 503 without its file paths, and logs the problems."""

        def broken() -> Catalog:
            raise CatalogInvalid([Problem(tmp_path / "web.yaml", "repo", "missing")])

        app = create_app(settings=make_settings(tmp_path), catalog=broken, starter=FakeStarter())
        body = json.dumps(github_push()).encode()
        with structlog.testing.capture_logs() as logs:
            async with await client_for(app) as client:
                answer = await client.post(
                    "/webhooks/github", content=body, headers=github_headers(body)
                )
        assert answer.status_code == 503
        assert str(tmp_path) not in answer.text
        assert [e["event"] for e in logs if e["log_level"] == "error"] == [
            "dualop.webhook.catalog_invalid"
        ]

    async def test_unexpected_error_is_json_500_without_traceback(self, receiver: Receiver) -> None:
        """A bug gives a JSON 500 with no detail; the traceback goes to the log only."""
        receiver.starter.fail_with = RuntimeError("secret internals")
        with structlog.testing.capture_logs() as logs:
            answer = await receiver.github(github_push())
        assert answer.status_code == 500
        assert answer.json() == {"error": "internal error; see the receiver's log"}
        assert "secret internals" not in answer.text
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["dualop.webhook.failed"]

    async def test_secrets_and_signatures_never_logged(self, receiver: Receiver) -> None:
        """Logs of accepted and refused deliveries hold no secret, signature or body."""
        body = json.dumps(github_push()).encode()
        with structlog.testing.capture_logs() as logs:
            await receiver.github(body)
            await receiver.github(body, secret="wrong")
        text = repr(logs)
        assert {e["event"] for e in logs} == {
            "dualop.webhook.started",
            "dualop.webhook.unauthorized",
        }
        assert SECRET not in text
        assert github_signature(SECRET.encode(), body).removeprefix("sha256=") not in text
        assert "ada@example.test" not in text


# --- the GitLab endpoint -------------------------------------------------------------------


@pytest.mark.anyio
class TestGitlabReceiver:
    async def test_push_hook_starts_route(self, receiver: Receiver) -> None:
        """A Push Hook with the right token starts `route` keyed by the event UUID."""
        headers = {**gitlab_headers(), "X-Gitlab-Event-UUID": "uuid-1"}
        answer = await receiver.gitlab(gitlab_push(), headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["service"] == "shop"
        assert receiver.starter.calls == [
            {
                "service": "shop",
                "ref": SHA,
                "trigger": "webhook",
                "requested_by": "grace",
                "idempotency_key": "gitlab:uuid-1",
            }
        ]

    async def test_delivery_id_fallbacks(self, receiver: Receiver) -> None:
        """Webhook-UUID when there is no Event-UUID; else the body's SHA-256."""
        body = json.dumps(gitlab_push()).encode()
        await receiver.gitlab(body, headers={**gitlab_headers(), "X-Gitlab-Webhook-UUID": "w-2"})
        await receiver.gitlab(body)
        keys = [c["idempotency_key"] for c in receiver.starter.calls]
        assert keys == ["gitlab:w-2", "gitlab:" + hashlib.sha256(body).hexdigest()]

    @pytest.mark.parametrize(
        "token",
        [
            pytest.param(None, id="missing"),
            pytest.param("wrong", id="wrong"),
            pytest.param(TOKEN + "x", id="longer"),
            pytest.param(SECRET, id="github-secret"),
        ],
    )
    async def test_bad_token_is_401(self, receiver: Receiver, token: str | None) -> None:
        """A missing or wrong X-Gitlab-Token gets a bare 401."""
        answer = await receiver.gitlab(gitlab_push(), token=token)
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized"}
        assert receiver.starter.calls == []

    async def test_tag_push_hook_ignored(self, receiver: Receiver) -> None:
        """A Tag Push Hook answers 200 with the reason."""
        answer = await receiver.gitlab(gitlab_push(ref="refs/tags/v1"), event="Tag Push Hook")
        assert answer.status_code == 200
        assert answer.json()["reason"] == "a tag push; only branch pushes release"

    async def test_other_branch_ignored(self, receiver: Receiver) -> None:
        """A push to main, when the service releases from `release`, is ignored."""
        answer = await receiver.gitlab(gitlab_push(ref="refs/heads/main"))
        assert answer.status_code == 200
        assert answer.json()["ignored"] is True

    async def test_missing_project_is_400(self, receiver: Receiver) -> None:
        """A Push Hook without project URLs names project.git_http_url."""
        payload = gitlab_push()
        del payload["project"]
        answer = await receiver.gitlab(payload)
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("missing field project.git_http_url")

    async def test_no_token_configured_is_503(self, tmp_path: Path) -> None:
        """Without a GitLab token the endpoint is disabled and says which setting."""
        app = create_app(
            settings=make_settings(tmp_path, gitlab=None),
            catalog=lambda: make_catalog(SHOP),
            starter=FakeStarter(),
        )
        async with await client_for(app) as client:
            answer = await client.post(
                "/webhooks/gitlab", json=gitlab_push(), headers=gitlab_headers()
            )
        assert answer.status_code == 503
        assert "DUALOP_WEBHOOK__GITLAB_TOKEN" in answer.json()["error"]


# --- catalog matching, audit, other routes -------------------------------------------------


@pytest.mark.anyio
class TestMatchingAndAudit:
    async def test_local_repo_matched_through_file_url(self, tmp_path: Path) -> None:
        """A catalog path and a pushed file:// URL through a symlink are the same repo."""
        repo = tmp_path / "repos" / "ledger"
        repo.mkdir(parents=True)
        (tmp_path / "alias").symlink_to(repo)
        service = make_service("ledger", str(repo))
        starter = FakeStarter()
        app = create_app(
            settings=make_settings(tmp_path),
            catalog=lambda: make_catalog(WEB, service),
            starter=starter,
        )
        body = json.dumps(github_push(clone_url=f"file://{tmp_path}/alias/")).encode()
        async with await client_for(app) as client:
            answer = await client.post(
                "/webhooks/github", content=body, headers=github_headers(body)
            )
        assert answer.status_code == 202, answer.text
        assert answer.json()["service"] == "ledger"

    async def test_catalog_read_per_request(self, tmp_path: Path) -> None:
        """A service added to the catalog is found without restarting the receiver."""
        services = [WEB]
        app = create_app(
            settings=make_settings(tmp_path),
            catalog=lambda: make_catalog(*services),
            starter=FakeStarter(),
        )
        payload = github_push(
            clone_url="git@gitlab.example.com:retail/shop.git", ref="refs/heads/release"
        )
        body = json.dumps(payload).encode()
        async with await client_for(app) as client:
            before = await client.post(
                "/webhooks/github", content=body, headers=github_headers(body)
            )
            services.append(SHOP)
            after = await client.post(
                "/webhooks/github", content=body, headers=github_headers(body)
            )
        assert (before.status_code, after.status_code) == (404, 202)

    async def test_services_sharing_a_repository(self, tmp_path: Path) -> None:
        """Two services on one repo and branch each get a run, with distinct keys."""
        api = make_service("web-api", "https://github.com/acme/web")
        starter = FakeStarter()
        app = create_app(
            settings=make_settings(tmp_path),
            catalog=lambda: make_catalog(WEB, api),
            starter=starter,
        )
        body = json.dumps(github_push()).encode()
        async with await client_for(app) as client:
            answer = await client.post(
                "/webhooks/github", content=body, headers=github_headers(body, delivery="d")
            )
        assert answer.status_code == 202
        assert answer.json()["service"] == "web"
        assert [r["service"] for r in answer.json()["runs"]] == ["web", "web-api"]
        assert [c["idempotency_key"] for c in starter.calls] == ["github:d:web", "github:d:web-api"]

    async def test_audit_records_started_and_ignored(self, tmp_path: Path) -> None:
        """Each push for a known service is one `webhook.received` entry, without secrets."""
        audit = FileAuditLog(tmp_path / "audit.jsonl")
        app = create_app(
            settings=make_settings(tmp_path),
            catalog=lambda: make_catalog(WEB),
            starter=FakeStarter(),
            audit=audit,
        )
        started = json.dumps(github_push()).encode()
        ignored = json.dumps(github_push(ref="refs/tags/v1")).encode()
        async with await client_for(app) as client:
            run = await client.post(
                "/webhooks/github", content=started, headers=github_headers(started, delivery="s")
            )
            await client.post(
                "/webhooks/github", content=ignored, headers=github_headers(ignored, delivery="i")
            )
        entries = audit.entries(kinds=["webhook.received"])
        assert [(e.service, e.run_id, e.data) for e in entries] == [
            (
                "web",
                run.json()["flow_run_id"],
                {"provider": "github", "delivery": "s", "outcome": "started", "ref": SHA},
            ),
            (
                "web",
                None,
                {
                    "provider": "github",
                    "delivery": "i",
                    "outcome": "ignored",
                    "reason": "a tag push; only branch pushes release",
                },
            ),
        ]
        assert audit.verify() == 2
        assert SECRET not in (tmp_path / "audit.jsonl").read_text()

    async def test_healthz_and_unknown_routes(self, receiver: Receiver) -> None:
        """/healthz is 200; unknown paths and methods answer JSON errors."""
        health = await receiver.client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"ok": True})
        missing = await receiver.client.get("/nope")
        assert missing.status_code == 404
        assert missing.json() == {"error": "Not Found"}
        wrong_method = await receiver.client.get("/webhooks/github")
        assert wrong_method.status_code == 405
        assert wrong_method.json() == {"error": "Method Not Allowed"}


async def raw_asgi(
    app: Starlette, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, bytes]:
    """Call the app with exact headers (httpx would fix a bad Content-Length)."""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("receiver", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )


def prefect_error(status: int) -> Exception:
    """The error Prefect's client raises for an API answer with `status`."""
    from prefect.exceptions import PrefectHTTPStatusError

    request = httpx.Request("POST", "http://prefect/api/deployments/x/create_flow_run")
    response = httpx.Response(status, request=request, text="database is locked")
    return PrefectHTTPStatusError(str(status), request=request, response=response)


# --- the real starter ----------------------------------------------------------------------


@pytest.mark.anyio
class TestPrefectRouteStarter:
    def starter(self, tmp_path: Path, **kwargs: Any) -> PrefectRouteStarter:
        return PrefectRouteStarter(
            make_settings(tmp_path), lambda: make_catalog(WEB), None, backoff_s=0.0, **kwargs
        )

    async def start(self, starter: PrefectRouteStarter) -> StartResult:
        return await starter.start(
            service="web", ref=SHA, trigger="webhook", requested_by="ada", idempotency_key="k"
        )

    async def test_unreachable_prefect_is_prefect_unavailable(self, tmp_path: Path) -> None:
        """A Prefect API nobody listens on gives PrefectUnavailable naming the URL and fix."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from dualop.stack import free_port

        url = f"http://127.0.0.1:{free_port()}/api"
        with (
            temporary_settings({PREFECT_API_URL: url}),
            pytest.raises(PrefectUnavailable) as caught,
        ):
            await self.start(self.starter(tmp_path))
        assert url in str(caught.value)
        assert "dualop up" in str(caught.value)
        assert caught.value.transient is True

    async def test_5xx_retried_then_started(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A 503 ("database is locked") is retried; the run then starts with the parameters."""
        calls = self.fake_prefect(monkeypatch, [prefect_error(503), prefect_error(503)])
        result = await self.start(self.starter(tmp_path, attempts=3))
        assert result == StartResult(
            flow_run_id=str(FAKE_RUN), model="digital", action="paved-road"
        )
        assert len(calls) == 3
        assert calls[-1] == {
            "name": "route/route",
            "parameters": {
                "service": "web",
                "ref": SHA,
                "trigger": "webhook",
                "requested_by": "ada",
            },
            "timeout": 0,
            "idempotency_key": "k",
        }

    @pytest.mark.parametrize(
        "failure",
        [
            pytest.param(lambda: prefect_error(503), id="503-database-is-locked"),
            pytest.param(lambda: prefect_error(500), id="500-database-is-locked"),
            pytest.param(lambda: httpx.ConnectError("refused"), id="connection-refused"),
            pytest.param(lambda: httpx.RemoteProtocolError("closed"), id="connection-cut"),
            pytest.param(lambda: ConnectionResetError(104, "reset"), id="connection-reset"),
        ],
    )
    async def test_transient_failures_are_retried_with_the_same_key(
        self, failure: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two transient failures, then the run: created once, always with the same key
        (so Prefect's idempotency makes a retry that did reach it harmless)."""
        calls = self.fake_prefect(monkeypatch, [failure(), failure()])
        result = await self.start(self.starter(tmp_path, attempts=4))
        assert result == StartResult(str(FAKE_RUN), "digital", "paved-road")
        assert [c["idempotency_key"] for c in calls] == ["k"] * 3

    @pytest.mark.parametrize(
        ("failures", "calls_made", "match"),
        [
            pytest.param(
                [httpx.ConnectError("refused")] * 9, 3, "cannot reach", id="still-unreachable"
            ),
            pytest.param([prefect_error(503)] * 9, 3, "answered 503", id="still-locked"),
            pytest.param([httpx.ReadTimeout("slow")], 1, "timed out", id="timeout-not-retried"),
        ],
    )
    async def test_gives_up_as_prefect_unavailable(
        self,
        failures: list[Exception],
        calls_made: int,
        match: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """After its attempts (at once for a timeout, which Prefect's client retried
        already): PrefectUnavailable, which the receiver answers with 503."""
        calls = self.fake_prefect(monkeypatch, failures)
        with pytest.raises(PrefectUnavailable, match=match):
            await self.start(self.starter(tmp_path, attempts=3))
        assert len(calls) == calls_made

    async def test_a_4xx_is_not_retried(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A client error is not transient: one attempt, raised as is."""
        from prefect.exceptions import PrefectHTTPStatusError

        calls = self.fake_prefect(monkeypatch, [prefect_error(422)])
        with pytest.raises(PrefectHTTPStatusError):
            await self.start(self.starter(tmp_path))
        assert len(calls) == 1

    async def test_missing_deployment_is_prefect_unavailable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No `route/route` deployment: unavailable, telling to run `dualop serve`."""
        from prefect.exceptions import ObjectNotFound

        self.fake_prefect(monkeypatch, [ObjectNotFound(http_exc=Exception("404"))] * 9)
        with pytest.raises(PrefectUnavailable, match="dualop serve"):
            await self.start(self.starter(tmp_path))

    async def test_entered_it_keeps_one_client_for_every_delivery(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The receiver enters the starter for its lifetime: one Prefect client (one pool
        of connections) for every delivery, closed at shutdown; outside, one per call."""
        clients: list[Any] = []
        calls = self.fake_prefect(monkeypatch, [prefect_error(503)], clients)
        starter = self.starter(tmp_path)
        async with starter:
            for _ in range(3):
                await self.start(starter)
        assert len(calls) == 4  # one 503 retried, then three runs
        assert len(clients) == 1 and not clients[0].open
        await self.start(starter)
        assert len(clients) == 2 and not clients[1].open

    def test_the_receiver_enters_its_starter_for_its_lifetime(self, tmp_path: Path) -> None:
        """`create_app`'s lifespan enters a starter that is an async context manager."""
        events: list[str] = []

        class EnteredStarter(FakeStarter):
            async def __aenter__(self) -> EnteredStarter:
                events.append("entered")
                return self

            async def __aexit__(self, *exc: object) -> None:
                events.append("exited")

        starter = EnteredStarter()
        app = create_app(
            settings=make_settings(tmp_path), catalog=lambda: make_catalog(WEB), starter=starter
        )
        with receiver_thread(app) as url:
            body = json.dumps(github_push()).encode()
            answer = httpx.post(
                f"{url}/webhooks/github", content=body, headers=github_headers(body), timeout=10
            )
            assert answer.status_code == 202, answer.text
            assert events == ["entered"]
        assert events == ["entered", "exited"]

    @staticmethod
    def fake_prefect(
        monkeypatch: pytest.MonkeyPatch,
        failures: list[Exception],
        clients: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """`arun_deployment` raising `failures` in turn, then creating the run; each
        Prefect client made is added to `clients`."""
        clients = [] if clients is None else clients
        import prefect
        import prefect.deployments

        calls: list[dict[str, Any]] = []

        class FakeClient:
            def __init__(self) -> None:
                self.open = False
                clients.append(self)

            async def __aenter__(self) -> FakeClient:
                self.open = True
                return self

            async def __aexit__(self, *exc: object) -> None:
                self.open = False

        async def arun_deployment(name: str, *, client: object, **kwargs: Any) -> Any:
            assert isinstance(client, FakeClient) and client.open
            calls.append({"name": name, **kwargs})
            if len(calls) <= len(failures):
                raise failures[len(calls) - 1]
            return type("Run", (), {"id": FAKE_RUN})()

        monkeypatch.setattr(prefect, "get_client", FakeClient)
        monkeypatch.setattr(prefect.deployments, "arun_deployment", arun_deployment)
        return calls


FAKE_RUN = "7d9a2f7e-0000-4000-8000-000000000001"


# --- real HTTP -----------------------------------------------------------------------------


@pytest.fixture
def live_receiver(tmp_path: Path) -> Iterator[tuple[str, FakeStarter]]:
    """The receiver under real uvicorn on a free port, in a thread."""
    starter = FakeStarter()
    app = create_app(
        settings=make_settings(tmp_path), catalog=lambda: make_catalog(WEB), starter=starter
    )
    with receiver_thread(app) as url:
        yield url, starter


class TestRealHttp:
    def test_signed_push_and_limits_over_real_http(
        self, live_receiver: tuple[str, FakeStarter]
    ) -> None:
        """Over a real socket: health, a signed push (202), a chunked oversize body (413)."""
        url, starter = live_receiver
        body = json.dumps(github_push()).encode()
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/healthz").json() == {"ok": True}
            answer = client.post(
                "/webhooks/github", content=body, headers=github_headers(body, delivery="live")
            )
            assert answer.status_code == 202, answer.text
            assert starter.calls[0]["idempotency_key"] == "github:live"
            big = client.post(
                "/webhooks/github",
                content=iter([b" " * 1024] * 8),
                headers={"Content-Type": "application/json"},
            )
            assert big.status_code == 413
            assert client.post("/webhooks/gitlab", json={}).status_code == 401


# --- no input gives a 500 ------------------------------------------------------------------


@functools.cache
def property_app() -> tuple[Starlette, FakeStarter]:
    starter = FakeStarter()
    settings = Settings(
        config_dir=Path("/nonexistent-config"),
        data_dir=Path("/nonexistent-data"),
        webhook=WebhookSettings(
            github_secret=SecretStr(SECRET), gitlab_token=SecretStr(TOKEN), max_body_bytes=LIMIT
        ),
    )
    return create_app(
        settings=settings, catalog=lambda: make_catalog(WEB, SHOP), starter=starter
    ), starter


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["refs/heads/main", "refs/tags/v1", "refs/heads/../x", SHA, "0" * 40]),
    st.sampled_from(
        ["https://github.com/acme/web", "git@gitlab.example.com:retail/shop.git", "/no/such/repo"]
    ),
)


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)


def mostly(good: Any, bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` three times in four, else something from `bad`, so examples get past each check."""
    return st.sampled_from([True, True, True, False]).flatmap(
        lambda ok: st.just(good) if ok else bad
    )


@st.composite
def webhook_requests(draw: st.DrawFn) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
    """(provider, raw headers, body): real pushes with random damage at every layer."""
    provider = draw(st.sampled_from(["github", "gitlab"]))
    kind = draw(mostly(provider, st.sampled_from(["github", "gitlab", "json", "bytes"])))
    if kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        payload: dict[str, Any] = github_push() if kind == "github" else gitlab_push()
        for key in draw(st.lists(st.sampled_from([*payload, "deleted", "x"]), max_size=2)):
            if draw(st.booleans()):
                payload[key] = draw(field_values)
            else:
                payload.pop(key, None)
        if draw(st.booleans()) and isinstance(payload.get("repository"), dict):
            url_field = draw(st.sampled_from(["clone_url", "ssh_url", "url"]))
            payload["repository"] = {**payload["repository"], url_field: draw(field_values)}
        body = json.dumps(payload).encode()
    headers: list[tuple[bytes, bytes]] = []

    def put(name: str, value: str | None) -> None:
        if value is not None:
            headers.append((name.encode(), value.encode("latin-1")))

    other_types = st.sampled_from(["application/x-www-form-urlencoded", "text/plain", None])
    put("content-type", draw(mostly("application/json", other_types | header_text)))
    events = st.sampled_from(["push", "ping", "Push Hook", "Tag Push Hook", None]) | header_text
    signed = draw(mostly(True, st.just(False)))
    delivery = draw(st.none() | header_text)
    if provider == "github":
        put("x-github-event", draw(mostly("push", events)))
        put("x-github-delivery", delivery)
        put("x-hub-signature-256", github_signature(SECRET.encode(), body) if signed else None)
    else:
        put("x-gitlab-event", draw(mostly("Push Hook", events)))
        put("x-gitlab-event-uuid", delivery)
        put("x-gitlab-token", TOKEN if signed else None)
    names = st.sampled_from(["content-length", "x-hub-signature-256", "x-gitlab-token", "x-a"])
    extra = draw(mostly({}, st.dictionaries(names, header_text, max_size=2)))
    for name, value in extra.items():
        put(name, value)
    if "content-length" not in extra:
        put("content-length", str(len(body)))
    return provider, headers, body


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=webhook_requests())
def test_random_requests_never_give_500(
    request: tuple[str, list[tuple[bytes, bytes]], bytes],
) -> None:
    """Random bodies, headers and content types get a deliberate 2xx/4xx, never a 500."""
    provider, headers, body = request
    app, _starter = property_app()
    with structlog.testing.capture_logs() as logs:
        status, answer = asyncio.run(raw_asgi(app, f"/webhooks/{provider}", headers, body))
    hypothesis.event(f"status {status}")
    assert status in {200, 202, 400, 401, 404, 413, 415}, (status, answer)
    assert "error" in json.loads(answer) or status in {200, 202}
    assert not [e for e in logs if e["log_level"] in {"error", "critical"}]
