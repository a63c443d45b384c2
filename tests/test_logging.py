"""dualop.logging: structlog configuration, secret masking, the bridge to the Prefect UI."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, SecretBytes, SecretStr

from dualop.exceptions import SettingsError
from dualop.logging import (
    MASK,
    configure_logging,
    drop_secrets,
    is_secret_key,
    redact,
    redact_url,
    reset_logging,
)

SECRET = "hunter2-s3cr3t-value"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Every test starts and ends with structlog unconfigured and no bound context."""
    reset_logging()
    structlog.contextvars.clear_contextvars()
    yield
    reset_logging()
    structlog.contextvars.clear_contextvars()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TestIsSecretKey:
    @pytest.mark.parametrize(
        "key",
        [
            "secret", "github_secret", "TOKEN", "gitlab_token", "access_token", "password",
            "db_passwd", "api_key", "apiKey", "API-KEY", "Authorization", "credentials",
            "credential", "private_key", "X-Hub-Signature-256", "dsn", "audit_dsn",
        ],
    )  # fmt: skip
    def test_secret_names(self, key: str) -> None:
        """Keys naming a secret are recognised whatever their case or surrounding words."""
        assert is_secret_key(key)

    @pytest.mark.parametrize(
        "key",
        ["service", "event", "key", "commit", "plan_digest", "approver", "url", "monkey", 3],
    )
    def test_ordinary_names(self, key: object) -> None:
        """Ordinary keys (and non-string keys) are left alone."""
        assert not is_secret_key(key)


class TestRedactUrl:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            pytest.param(
                "https://ci:hunter2@git.example.com/org/x.git",
                "https://ci:***@git.example.com/org/x.git",
                id="https-user-password",
            ),
            pytest.param(
                "json://user:pa:ss@localhost:8080/hook",
                "json://user:***@localhost:8080/hook",
                id="apprise-style",
            ),
            pytest.param(
                "postgresql://postgres:p@ss@127.0.0.1:5432/db",
                "postgresql://postgres:***@127.0.0.1:5432/db",
                id="at-sign-in-password",
            ),
            pytest.param(
                "https://hooks.example.com/x?token=abc123&channel=ops",
                "https://hooks.example.com/x?token=***&channel=ops",
                id="secret-query-parameter",
            ),
            pytest.param(
                "clone of https://u:pw@h.example/a failed; retry https://v:pw2@h.example/b",
                "clone of https://u:***@h.example/a failed; retry https://v:***@h.example/b",
                id="several-urls-in-text",
            ),
            pytest.param("ssh://git@github.com/org/x.git", "ssh://git@github.com/org/x.git",
                         id="user-only-unchanged"),
            pytest.param("https://example.com:8443/a:b@c", "https://example.com:8443/a:b@c",
                         id="port-and-path-unchanged"),
            pytest.param("/srv/repos/ledger", "/srv/repos/ledger", id="path-unchanged"),
        ],
    )  # fmt: skip
    def test_masks_credentials(self, url: str, expected: str) -> None:
        """Passwords in URLs and secret-looking query values become ***."""
        assert redact_url(url) == expected


class _Creds(BaseModel):
    user: str
    token: str


class TestRedact:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            pytest.param(SecretStr(SECRET), MASK, id="secret-str"),
            pytest.param(SecretBytes(b"x"), MASK, id="secret-bytes"),
            pytest.param({"token": SECRET, "service": "ledger"},
                         {"token": MASK, "service": "ledger"}, id="secret-key"),
            pytest.param({"password": None}, {"password": None}, id="none-stays-none"),
            pytest.param({"a": [{"b": {"API_KEY": SECRET}}, ("x", SecretStr(SECRET))]},
                         {"a": [{"b": {"API_KEY": MASK}}, ("x", MASK)]}, id="nested"),
            pytest.param({"credentials": {"user": "u", "pw": SECRET}}, {"credentials": MASK},
                         id="whole-secret-subtree"),
            pytest.param({"remote": f"https://ci:{SECRET}@git.example.com/x.git"},
                         {"remote": "https://ci:***@git.example.com/x.git"}, id="url-value"),
            pytest.param(_Creds(user="u", token=SECRET), {"user": "u", "token": MASK},
                         id="pydantic-model"),
            pytest.param([1, 2.5, True, None, "plain"], [1, 2.5, True, None, "plain"],
                         id="plain-values-unchanged"),
        ],
    )  # fmt: skip
    def test_masks(self, value: object, expected: object) -> None:
        """Secrets are masked wherever they sit; everything else is unchanged."""
        assert redact(value) == expected

    def test_input_not_mutated(self) -> None:
        """redact returns a copy and leaves the caller's dict alone."""
        data = {"token": SECRET}
        redact(data)
        assert data == {"token": SECRET}


class TestDropSecrets:
    def test_processor(self) -> None:
        """As a structlog processor it masks the event dict's values, keeping the event."""
        out = drop_secrets(None, "info", {"event": "dualop.x", "github_secret": SECRET, "n": 1})
        assert out == {"event": "dualop.x", "github_secret": MASK, "n": 1}

    def test_in_capture_logs(self) -> None:
        """Lines pass through drop_secrets before any renderer (asserted on captured dicts)."""
        configure_logging(fmt="json")
        log = structlog.get_logger("dualop.test")
        with structlog.testing.capture_logs(processors=[drop_secrets]) as logs:
            log.info("dualop.test.secret", token=SECRET, value=SecretStr(SECRET))
        assert logs == [
            {"event": "dualop.test.secret", "log_level": "info", "token": MASK, "value": MASK}
        ]


class TestConfigureLogging:
    def test_json_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        """JSON lines carry the dotted event, level, logger, ISO UTC time and bound context."""
        configure_logging(fmt="json", level="info")
        structlog.contextvars.bind_contextvars(service="ledger", flow_run_id="r-1")
        structlog.get_logger("dualop.release").info("dualop.release.started", version="1.2.3")
        [line] = _json_lines(capsys.readouterr().err)
        assert line["event"] == "dualop.release.started"
        assert line["level"] == "info"
        assert line["logger"] == "dualop.release"
        assert line["timestamp"].endswith("Z")
        assert (line["service"], line["flow_run_id"], line["version"]) == ("ledger", "r-1", "1.2.3")

    def test_secrets_never_rendered(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A secret passed as a value, a key or in a URL is not in the output."""
        configure_logging(fmt="json")
        structlog.get_logger("dualop.x").warning(
            "dualop.x.y",
            token=SECRET,
            remote=f"https://u:{SECRET}@h.example/r.git",
            settings={"webhook": {"github_secret": SecretStr(SECRET)}},
        )
        err = capsys.readouterr().err
        assert SECRET not in err
        assert _json_lines(err)[0]["remote"] == "https://u:***@h.example/r.git"

    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_tracebacks_are_masked(self, fmt: Any, capsys: pytest.CaptureFixture[str]) -> None:
        """An exception's message and locals do not leak a secret into the line."""
        configure_logging(fmt=fmt)
        password = SECRET  # a local variable in the failing frame
        try:
            raise RuntimeError(f"cannot reach https://u:{password}@h.example/x")
        except RuntimeError:
            structlog.get_logger("dualop.x").exception("dualop.x.failed")
        err = capsys.readouterr().err
        assert "RuntimeError" in err
        assert SECRET not in err

    def test_console_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Console format renders `event key=value` for people, not JSON."""
        configure_logging(fmt="console")
        structlog.get_logger("dualop.x").info("dualop.x.done", service="ledger")
        err = capsys.readouterr().err
        assert "dualop.x.done" in err
        assert "service=ledger" in err
        assert not err.lstrip().startswith("{")

    def test_default_is_json_off_a_terminal(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With no format given and stderr not a terminal, lines are JSON."""
        configure_logging()
        structlog.get_logger("dualop.x").info("dualop.x.done")
        assert _json_lines(capsys.readouterr().err)[0]["event"] == "dualop.x.done"

    @pytest.mark.parametrize(
        ("level", "shown"),
        [
            pytest.param("debug", ["d", "i", "w"], id="debug"),
            pytest.param("info", ["i", "w"], id="info"),
            pytest.param("WARNING", ["w"], id="warning-any-case"),
        ],
    )
    def test_level(self, level: str, shown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """Lines below the configured level are dropped."""
        configure_logging(fmt="json", level=level)
        log = structlog.get_logger("dualop.x")
        log.debug("d")
        log.info("i")
        log.warning("w")
        assert [x["event"] for x in _json_lines(capsys.readouterr().err)] == shown

    def test_bad_level(self) -> None:
        """An unknown level is a settings error that names the setting and the choices."""
        with pytest.raises(SettingsError, match=r"debug, info.*DUALOP_LOG_LEVEL"):
            configure_logging(level="loud")

    def test_repeat_call_is_noop(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Configuring twice with the same arguments keeps one handler: each line once."""
        configure_logging(fmt="json")
        handlers = list(logging.getLogger("dualop").handlers)
        configure_logging(fmt="json")
        assert logging.getLogger("dualop").handlers == handlers
        structlog.get_logger("dualop.x").info("dualop.x.once")
        assert len(_json_lines(capsys.readouterr().err)) == 1

    def test_reconfigure(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Other arguments reconfigure, reaching loggers created before the change."""
        log = structlog.get_logger("dualop.x")
        configure_logging(fmt="console")
        log.info("dualop.x.first")
        configure_logging(fmt="json")
        log.info("dualop.x.second")
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2
        assert json.loads(lines[1])["event"] == "dualop.x.second"
        assert len(logging.getLogger("dualop").handlers) == 1

    def test_other_module_names_nest_under_dualop(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Loggers named after modules outside dualop (flows.route) still reach the handlers."""
        configure_logging(fmt="json")
        structlog.get_logger("flows.route").info("dualop.route.decided")
        assert _json_lines(capsys.readouterr().err)[0]["logger"] == "dualop.flows.route"

    def test_does_not_propagate_to_root(self, caplog: pytest.LogCaptureFixture) -> None:
        """Lines do not also go to the root logger (Prefect's console handler would repeat them)."""
        configure_logging(fmt="json")
        with caplog.at_level(logging.DEBUG):
            structlog.get_logger("dualop.x").info("dualop.x.once")
        assert caplog.records == []

    def test_bridge_silent_outside_a_run(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With the Prefect bridge on, a line outside any run goes to stderr only, no warning."""
        configure_logging(fmt="json", prefect_bridge=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            structlog.get_logger("dualop.x").info("dualop.x.outside", n=1)
        assert _json_lines(capsys.readouterr().err)[0]["event"] == "dualop.x.outside"

    def test_bridge_replaces_extra_logger_handlers(self) -> None:
        """A Prefect API handler already on `dualop` (EXTRA_LOGGERS) is replaced, not doubled."""
        from prefect.logging.handlers import APILogHandler

        logging.getLogger("dualop").addHandler(APILogHandler())
        configure_logging(fmt="json", prefect_bridge=True)
        handlers = logging.getLogger("dualop").handlers
        assert sum(isinstance(h, APILogHandler) for h in handlers) == 1


# --- end to end: a real flow run on a real (test) Prefect API -------------------------------


@pytest.fixture(scope="session")
def _prefect_harness() -> Iterator[None]:
    """A temporary Prefect API (SQLite) for the session; ~10 s to start."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.mark.e2e
@pytest.mark.usefixtures("_prefect_harness")
class TestPrefectBridge:
    def test_line_reaches_prefect_api_once(self) -> None:
        """A structlog line logged inside a flow run is stored once in the run's logs, masked."""
        from prefect import flow, get_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.logging.handlers import APILogHandler

        configure_logging(fmt="json", prefect_bridge=True)

        @flow(name="dualop-logging-bridge")
        def logs_a_line(marker: str) -> None:
            structlog.get_logger("dualop.test").info(
                "dualop.test.bridged", marker=marker, api_token=SECRET
            )

        state = logs_a_line("marker-7f3a", return_state=True)
        assert state.is_completed()
        run_id = state.state_details.flow_run_id
        assert run_id is not None
        APILogHandler().flush()  # send what is queued before reading it back
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
            )
        ours = [entry for entry in logs if "dualop.test.bridged" in entry.message]
        assert len(ours) == 1, [entry.message for entry in logs]
        assert "marker=marker-7f3a" in ours[0].message
        assert ours[0].name == "dualop.test"
        assert not any(SECRET in entry.message for entry in logs)
