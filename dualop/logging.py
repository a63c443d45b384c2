"""Logging: structlog configured once, secrets masked, lines bridged to the Prefect UI.

Every dualop module logs with `log = structlog.get_logger(__name__)` and dotted event names
(`log.info("dualop.release.started", service=..., version=...)`). `configure_logging()` sends
those lines through one stdlib logger tree, `dualop`, which has:

- a stderr handler rendering JSON (for machines) or console lines (for people);
- with `prefect_bridge=True`, Prefect's `APILogHandler`, so lines logged inside a flow or
  task run show in the Prefect UI. Outside a run it stays silent. (Listing `dualop` in
  `PREFECT_LOGGING_EXTRA_LOGGERS` as well would send each line twice: don't.)

Context bound with `structlog.contextvars.bind_contextvars(service=..., flow_run_id=...)`
is added to every line. `drop_secrets` masks anything that looks like a secret before any
renderer sees it; `redact()` and `redact_url()` are the same rules for other outputs (the
audit log, artifacts, error messages).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any, Literal

import structlog
from pydantic import BaseModel, SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from dualop.exceptions import SettingsError

__all__ = [
    "MASK",
    "configure_logging",
    "drop_secrets",
    "is_secret_key",
    "redact",
    "redact_url",
    "reset_logging",
]

MASK = "***"
ROOT_LOGGER = "dualop"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}  # fmt: skip

_SECRET_KEY = re.compile(
    r"secret|token|passw(?:or)?d|api[-_]?key|authori[sz]ation|credential|private[-_]?key"
    r"|signature|dsn",
    re.IGNORECASE,
)
# scheme://user:password@host  (the password runs to the last '@' before the path)
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*):[^\s/?#]*@")
# ?token=...  &api_key=...  (query parameters whose name looks like a secret)
_URL_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][^=&#\s]*(?:secret|token|passw(?:or)?d|api[-_]?key|signature|credential)"
    r"[^=&#\s]*=)[^&#\s]*",
    re.IGNORECASE,
)


# --- redaction ------------------------------------------------------------------------------


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a secret (`github_secret`, `Authorization`, `api_key`, …)."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def redact_url(url: str) -> str:
    """Mask the password in `scheme://user:password@host/…` and secret-looking query values.

    `https://ci:hunter2@git.example.com/x.git` becomes `https://ci:***@git.example.com/x.git`;
    `json://user:pw@localhost:8080` becomes `json://user:***@localhost:8080`. Works on any
    text: every URL inside it is masked. Tokens that a scheme carries in its path (some apprise
    schemes do) are not recognised; don't log such URLs whole.
    """
    masked = _URL_USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", url)
    return _URL_QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", masked)


def redact(value: Any) -> Any:
    """Return `value` with secrets masked, recursively through mappings, lists and tuples.

    Masked: `SecretStr`/`SecretBytes` values, the values of keys that name a secret
    (see `is_secret_key`; a `None` value stays `None`), and credentials inside URLs in any
    string. Pydantic models are dumped to dicts first so their fields get the same rules.
    Other objects are returned unchanged.
    """
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, BaseModel):
        return redact(value.model_dump())
    if isinstance(value, Mapping):
        return {
            k: (MASK if v is not None and is_secret_key(k) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if isinstance(value, set | frozenset):
        return [redact(v) for v in value]
    return value


def drop_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every value of the event (see `redact`)."""
    masked: EventDict = redact(event_dict)
    return masked


# --- configuration --------------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever `sys.stderr` is at the time of the call (pytest swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # the stream is looked up at each write, never stored
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def _stdlib_logger(*args: Any) -> logging.Logger:
    """structlog logger factory: every structlog logger is a child of the `dualop` logger.

    `structlog.get_logger("flows.route")` writes to stdlib `dualop.flows.route`, so the
    handlers on `dualop` see every line whatever module logged it.
    """
    name = str(args[0]) if args and args[0] else ROOT_LOGGER
    if name != ROOT_LOGGER and not name.startswith(ROOT_LOGGER + "."):
        name = f"{ROOT_LOGGER}.{name}"
    return logging.getLogger(name)


def _in_prefect_run(record: logging.LogRecord) -> bool:
    """Handler filter: only records inside a Prefect flow or task run go to the Prefect API."""
    if getattr(record, "flow_run_id", None):
        return True
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _for_prefect_ui(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The Prefect UI shows time, level and logger itself; keep the event and its data."""
    for key in ("timestamp", "level", "logger"):
        event_dict.pop(key, None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        drop_secrets,
    ]


def _renderer(
    fmt: Literal["json", "console"], *, colors: bool, pad_event_to: int = 30
) -> list[Processor]:
    """The tail of a handler's chain: render tracebacks, mask them too, then the line."""
    if fmt == "json":
        # No local variables in tracebacks: they are where secrets hide.
        tracebacks: Processor = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        return [tracebacks, drop_secrets, structlog.processors.JSONRenderer(sort_keys=True)]
    return [
        structlog.processors.format_exc_info,  # plain text, so drop_secrets can mask it
        drop_secrets,
        structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=pad_event_to),
    ]


class _State:
    """What `configure_logging` last did, so a repeat call can be a no-op."""

    lock = threading.Lock()
    configured: tuple[str, str, bool] | None = None
    handlers: list[logging.Handler] = []  # noqa: RUF012  # one process-wide list, on purpose


def configure_logging(
    *,
    fmt: Literal["json", "console"] | None = None,
    level: str = "info",
    prefect_bridge: bool = False,
) -> None:
    """Configure structlog and the `dualop` stdlib logger; a repeat call with the same
    arguments does nothing, a call with other arguments reconfigures.

    `fmt` is `Settings.log_format` (`DUALOP_LOG_FORMAT`): `None` picks console on a terminal
    and JSON otherwise. `prefect_bridge=True` imports Prefect and sends lines logged inside
    flow and task runs to the Prefect API (the UI); only front ends that run flows need it.
    """
    if level.lower() not in LEVELS:
        raise SettingsError(
            f"log level {level!r} is not one of {', '.join(LEVELS)}; "
            "set DUALOP_LOG_LEVEL to one of them"
        )
    tty = sys.stderr.isatty()
    chosen: Literal["json", "console"] = fmt or ("console" if tty else "json")
    key = (chosen, level.lower(), prefect_bridge)
    with _State.lock:
        if _State.configured == key:
            return
        shared = _shared_processors()
        stderr = _StderrHandler()
        stderr.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *_renderer(chosen, colors=tty and chosen == "console"),
                ],
                foreign_pre_chain=shared,
            )
        )
        handlers: list[logging.Handler] = [stderr]
        if prefect_bridge:
            from prefect.logging.handlers import APILogHandler

            api = APILogHandler()
            api.addFilter(_in_prefect_run)
            api.setFormatter(
                structlog.stdlib.ProcessorFormatter(
                    processors=[
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        _for_prefect_ui,
                        *_renderer("console", colors=False, pad_event_to=0),
                    ],
                    foreign_pre_chain=shared,
                )
            )
            handlers.append(api)
        _install(handlers, LEVELS[level.lower()])
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *shared,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=_stdlib_logger,
            wrapper_class=structlog.stdlib.BoundLogger,
            context_class=dict,
            # Off so that a reconfiguration reaches module-level `log = get_logger()` proxies.
            cache_logger_on_first_use=False,
        )
        _State.configured = key


def _install(handlers: list[logging.Handler], level: int) -> None:
    root = logging.getLogger(ROOT_LOGGER)
    # The `dualop` logger is ours: drop what an earlier call (or Prefect's
    # PREFECT_LOGGING_EXTRA_LOGGERS) attached, so no line is emitted twice.
    for old in list(root.handlers):
        root.removeHandler(old)
        if old in _State.handlers:
            old.close()
    _State.handlers[:] = handlers
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # the root logger's handlers (Prefect's console) would repeat it


def reset_logging() -> None:
    """Undo `configure_logging` (for tests): structlog defaults, no `dualop` handlers."""
    with _State.lock:
        _install([], logging.NOTSET)
        logging.getLogger(ROOT_LOGGER).propagate = True
        structlog.reset_defaults()
        _State.configured = None
