"""What every flow needs: settings, the catalog, the audit log, logging, the clock.

Flows are front ends over `dualop/`, like the CLI: they read the clock (`now()`) and the
environment here and pass both down as arguments. The catalog is re-read on every run,
so a catalog edit takes effect without restarting the served deployments.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

import structlog
from pydantic import Field

from dualop.audit import AuditLog, open_audit_log
from dualop.catalog import NAME_PATTERN, Catalog, Heritage, Service, load_catalog
from dualop.deploy import Deployer, deployer_for
from dualop.exceptions import InputError
from dualop.git import GitRepo
from dualop.logging import configure_logging
from dualop.settings import Settings, load_settings
from dualop.workspace import service_repo

__all__ = [
    "GitRefParam",
    "Runtime",
    "ServiceParam",
    "Trigger",
    "artifact_key",
    "now",
    "runtime",
]

log = structlog.get_logger(__name__)

ServiceParam = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="The service's name in the catalog (config/services/NAME.yaml).",
        examples=["storefront-web"],
    ),
]
GitRefParam = Annotated[
    str | None,
    Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,254}$",
        description="Branch, tag or commit to release. Empty: the head of the release branch.",
        examples=["main", "4f1c2e9"],
    ),
]
Trigger = Literal["webhook", "ui", "cli", "schedule"]


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    catalog: Catalog
    audit: AuditLog

    def service(self, name: str) -> Service:
        return self.catalog.service(name)

    @staticmethod
    def heritage(service: Service) -> Heritage:
        if service.heritage is None:
            raise InputError(
                f"{service.name} has no `heritage:` block in its catalog file; it cannot take "
                "the migration pipeline. Add one (windows, approvals, ops_squad)."
            )
        return service.heritage

    def repo(self, service: Service) -> GitRepo:
        return service_repo(service, workspace=self.settings.workspace_path)

    def deployer(self, service: Service) -> Deployer:
        return deployer_for(
            service,
            deploy_root=self.settings.deploy_root_path,
            keep=self.settings.deploy.keep_releases,
        )

    def health_env(self, service: Service, version: str, commit: str) -> dict[str, str]:
        """What a health command learns about the release it checks."""
        live = self.deployer(service).live_dir(service.name)
        return {
            "DUALOP_SERVICE": service.name,
            "DUALOP_VERSION": version,
            "DUALOP_COMMIT": commit,
            "DUALOP_DEPLOY_DIR": str(live.resolve()) if live else "",
        }


@functools.cache
def _configure_logging_once(fmt: str | None, level: str) -> None:
    configure_logging(fmt=fmt, level=level, prefect_bridge=True)  # type: ignore[arg-type]


def runtime() -> Runtime:
    """Settings from the environment (`dualop serve` passes its own down), a fresh catalog."""
    settings = load_settings()
    _configure_logging_once(settings.log_format, settings.log_level)
    return Runtime(settings, load_catalog(settings.config_dir), open_audit_log(settings))


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    raw = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in raw).strip("-")[:120]
