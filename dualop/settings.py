"""dualop's settings: pydantic-settings over flags, the environment and `dualop.toml`.

Precedence, highest first (the README repeats it):

1. values passed in code or by a CLI flag (`Settings(data_dir=...)`, `--data-dir`)
2. environment variables `DUALOP_...`, nested with `__` (`DUALOP_WEBHOOK__GITHUB_SECRET`)
3. `<config dir>/dualop.toml`
4. the defaults below

The config folder itself comes from `--config-dir`, else `DUALOP_CONFIG_DIR`, else
`./config`; it cannot be set from inside the TOML file it locates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dualop.exceptions import SettingsError

__all__ = [
    "AuditSettings",
    "ClassifierSettings",
    "DeploySettings",
    "Settings",
    "WebhookSettings",
    "load_settings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookSettings(_Section):
    host: str = Field(default="127.0.0.1", description="address the receiver listens on")
    github_secret: SecretStr | None = Field(
        default=None, description="the secret of the GitHub webhook (X-Hub-Signature-256)"
    )
    gitlab_token: SecretStr | None = Field(
        default=None, description="the secret token of the GitLab webhook (X-Gitlab-Token)"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger bodies get 413")


class ClassifierSettings(_Section):
    lookback_days: int = Field(default=90, ge=7, description="history measured before `--at`")
    min_commits: int = Field(
        default=10, ge=1, description="fewer commits in the look-back: too little to measure"
    )
    min_releases: int = Field(
        default=2, ge=1, description="fewer release tags: lead time and release cadence unmeasured"
    )
    demand_high_commits_per_week: float = Field(default=5.0, gt=0)
    demand_high_authors: int = Field(default=4, ge=1)
    cost_high_lead_time_days: float = Field(
        default=14.0, gt=0, description="median commit-to-release above this is a high cost"
    )
    cost_high_release_interval_days: float = Field(default=30.0, gt=0)
    cost_high_failure_rate: float = Field(default=0.3, ge=0, le=1)
    cost_high_score: float = Field(
        default=0.5, ge=0, le=1, description="cost-of-change score at or above which it is high"
    )
    demand_high_score: float = Field(default=0.5, ge=0, le=1)
    heritage_runtimes: list[str] = Field(
        default=["cobol", "mainframe", "pl/i", "pli", "rpg", "jcl", "natural", "z/os", "as400"],
        description="declared runtimes (substring, case-insensitive) that mark a high cost",
    )


class DeploySettings(_Section):
    keep_releases: int = Field(default=5, ge=2, description="release folders kept per service")
    command_timeout_s: float = Field(default=600.0, gt=0, description="build/test/step timeout")


class AuditSettings(_Section):
    backend: Literal["file", "postgres"] = "file"
    dsn: SecretStr | None = Field(
        default=None, description="postgresql://... for backend=postgres (scale-out mode)"
    )


class Settings(BaseSettings):
    """All of dualop's settings; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix="DUALOP_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    config_dir: Path = Field(default=Path("config"), description="catalog and dualop.toml")
    data_dir: Path = Field(default=Path(".dualop"), description="Prefect DB, audit log, demo")
    deploy_root: Path | None = Field(default=None, description="default: <data_dir>/deploy")
    workspace_dir: Path | None = Field(default=None, description="default: <data_dir>/workspaces")
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="default: console on a terminal, JSON otherwise"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    prefect_port: int = Field(default=4200, ge=1, le=65535)
    webhook_port: int = Field(default=8088, ge=1, le=65535)
    demo: bool = Field(default=True, description="`dualop up` creates the demo repos and catalog")
    runner_poll_seconds: float = Field(
        default=1.0, gt=0, description="how often served deployments look for new runs"
    )
    runner_wake: bool = Field(
        default=True,
        description="`dualop serve` starts a new run as soon as the server announces it "
        "(its event stream), not on the next poll",
    )
    crash_after_s: float = Field(
        default=90.0,
        ge=45.0,
        description="a flow run silent this long (no heartbeat, sent every 30 s) is marked "
        "Crashed: its process died",
    )
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @model_validator(mode="after")
    def _postgres_needs_dsn(self) -> Settings:
        if self.audit.backend == "postgres" and self.audit.dsn is None:
            raise ValueError(
                "audit.backend is 'postgres' but audit.dsn is not set; set "
                "DUALOP_AUDIT__DSN=postgresql://user@host:5432/db"
            )
        return self

    @property
    def deploy_root_path(self) -> Path:
        return self.deploy_root or self.data_dir / "deploy"

    @property
    def workspace_path(self) -> Path:
        return self.workspace_dir or self.data_dir / "workspaces"

    @property
    def audit_path(self) -> Path:
        return self.data_dir / "audit.jsonl"

    @property
    def toml_file(self) -> Path:
        return self.config_dir / "dualop.toml"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        config_dir = Path(
            init_kwargs.get("config_dir") or os.environ.get("DUALOP_CONFIG_DIR") or "config"
        )
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_dir / "dualop.toml")
        return init_settings, env_settings, toml


def load_settings(**overrides: Any) -> Settings:
    """Build `Settings`, turning pydantic's errors into a `SettingsError` that names the source.

    `overrides` are CLI flags; `None` values mean "flag not given" and are dropped.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as e:
        config_dir = Path(given.get("config_dir") or os.environ.get("DUALOP_CONFIG_DIR", "config"))
        lines = []
        for err in e.errors():
            dotted = ".".join(str(p) for p in err["loc"]) or "(settings)"
            env = "DUALOP_" + "__".join(str(p) for p in err["loc"]).upper()
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown setting; remove it or check the spelling in the README"
            lines.append(f"{dotted} (env {env} or {config_dir / 'dualop.toml'}): {msg}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None
    except (OSError, ValueError) as e:  # an unreadable or malformed TOML file
        raise SettingsError(
            f"cannot read {Path(given.get('config_dir', 'config')) / 'dualop.toml'}: {e}"
        ) from None
