"""Settings precedence: flags > environment > dualop.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualop.exceptions import SettingsError
from dualop.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("DUALOP_"):
            monkeypatch.delenv(key)


def write_toml(config: Path, text: str) -> Path:
    config.mkdir(parents=True, exist_ok=True)
    (config / "dualop.toml").write_text(text)
    return config


class TestPrecedence:
    def test_defaults(self, tmp_path: Path) -> None:
        """With nothing set, the documented defaults apply."""
        settings = load_settings(config_dir=tmp_path)
        assert settings.data_dir == Path(".dualop")
        assert settings.deploy_root_path == Path(".dualop/deploy")
        assert settings.workspace_path == Path(".dualop/workspaces")
        assert settings.audit_path == Path(".dualop/audit.jsonl")
        assert settings.classifier.lookback_days == 90
        assert settings.webhook.max_body_bytes == 1024 * 1024

    def test_toml_beats_defaults(self, tmp_path: Path) -> None:
        """dualop.toml in the config dir is read, nested tables included."""
        config = write_toml(
            tmp_path / "cfg", 'data_dir = "/srv/dualop"\n[classifier]\nlookback_days = 30\n'
        )
        settings = load_settings(config_dir=config)
        assert settings.data_dir == Path("/srv/dualop")
        assert settings.classifier.lookback_days == 30

    def test_env_beats_toml(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """DUALOP_* variables, nested with __, override the TOML file."""
        config = write_toml(
            tmp_path / "cfg", 'data_dir = "/srv/dualop"\n[classifier]\nlookback_days = 30\n'
        )
        monkeypatch.setenv("DUALOP_DATA_DIR", "/env/dualop")
        monkeypatch.setenv("DUALOP_CLASSIFIER__LOOKBACK_DAYS", "60")
        monkeypatch.setenv("DUALOP_WEBHOOK__GITHUB_SECRET", "s3cret")
        settings = load_settings(config_dir=config)
        assert settings.data_dir == Path("/env/dualop")
        assert settings.classifier.lookback_days == 60
        assert settings.webhook.github_secret is not None
        assert settings.webhook.github_secret.get_secret_value() == "s3cret"
        assert "s3cret" not in repr(settings)

    def test_flags_beat_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A CLI flag wins; a flag left unset (None) does not erase the env value."""
        monkeypatch.setenv("DUALOP_DATA_DIR", "/env/dualop")
        monkeypatch.setenv("DUALOP_WEBHOOK_PORT", "9000")
        settings = load_settings(config_dir=tmp_path, data_dir=Path("/flag"), webhook_port=None)
        assert settings.data_dir == Path("/flag")
        assert settings.webhook_port == 9000

    def test_config_dir_from_env_locates_the_toml(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """DUALOP_CONFIG_DIR chooses which dualop.toml is read."""
        config = write_toml(tmp_path / "elsewhere", "prefect_port = 4300\n")
        monkeypatch.setenv("DUALOP_CONFIG_DIR", str(config))
        assert load_settings().prefect_port == 4300


class TestBadSettings:
    @pytest.mark.parametrize(
        ("toml", "expected"),
        [
            pytest.param("colour = 1\n", "colour (env DUALOP_COLOUR", id="unknown"),
            pytest.param("prefect_port = 0\n", "prefect_port (env DUALOP_PREFECT_PORT", id="range"),
            pytest.param(
                '[audit]\nbackend = "postgres"\n', "audit.dsn is not set", id="postgres-without-dsn"
            ),
            pytest.param("data_dir = \n", "cannot read", id="bad-toml"),
        ],
    )
    def test_names_the_setting_and_where_to_set_it(
        self, tmp_path: Path, toml: str, expected: str
    ) -> None:
        """A bad setting names the field, its env variable and the TOML file."""
        config = write_toml(tmp_path / "cfg", toml)
        with pytest.raises(SettingsError) as excinfo:
            load_settings(config_dir=config)
        assert expected in str(excinfo.value)
        assert "dualop.toml" in str(excinfo.value)
