"""Hand-over notifications to the ops squad, through apprise (a Prefect dependency).

A notification that fails is reported back (never raised): a completed migration stays
completed, and the run's final artifact and the audit log say the hand-over did not
reach its target.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import apprise
import structlog

from dualop.logging import redact_url

__all__ = ["Delivery", "notify", "unreachable"]

log = structlog.get_logger(__name__)

_DEFAULT_PORTS = {"json": 80, "jsons": 443, "xml": 80, "xmls": 443, "form": 80, "forms": 443}


@dataclass(frozen=True)
class Delivery:
    target: str  # redacted URL
    ok: bool
    error: str | None = None


def unreachable(urls: list[str], *, timeout: float = 3.0) -> list[str]:
    """The targets that apprise does not understand, or whose host does not accept a TCP
    connection (for URL schemes with a host and port); redacted for display."""
    bad = []
    for url in urls:
        if apprise.Apprise.instantiate(url) is None:
            bad.append(f"{redact_url(url)} (not a URL apprise understands)")
            continue
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        if parts.hostname and port:
            try:
                with socket.create_connection((parts.hostname, port), timeout=timeout):
                    pass
            except OSError as e:
                bad.append(f"{redact_url(url)} ({e.strerror or type(e).__name__})")
    return bad


def notify(urls: list[str], *, title: str, body: str) -> list[Delivery]:
    """Send to each target separately, so one bad target does not hide the others."""
    deliveries = []
    for url in urls:
        target = redact_url(url)
        sender = apprise.Apprise()
        if not sender.add(url):
            deliveries.append(Delivery(target, False, "not a URL apprise understands"))
            continue
        try:
            ok = bool(sender.notify(title=title, body=body))
        except Exception as e:  # apprise plugins raise anything; the hand-over must not
            deliveries.append(Delivery(target, False, f"{type(e).__name__}: {e}"))
            continue
        deliveries.append(Delivery(target, ok, None if ok else "the target refused or failed"))
        log.info("dualop.notify.sent", target=target, ok=ok)
    return deliveries
