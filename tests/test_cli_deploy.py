"""`dualop deploy --pool` and `dualop worker --pool`: arguments, errors, the worker's
environment. (The scale-out test in tests/scale runs both against a real server.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dualop import cli
from dualop.cli import main
from dualop.settings import load_settings
from dualop.stack import free_port
from dualop.testing import RepoBuilder


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder with one digital service; Prefect pointed at a port nobody serves."""
    repo = RepoBuilder.init(tmp_path / "repos" / "web")
    repo.commit("feat: first")
    config = tmp_path / "config"
    (config / "services").mkdir(parents=True)
    (config / "services" / "web.yaml").write_text(
        f"name: web\nrepo: {repo.path}\nowner: o\nruntime: python3.12\n"
        "operating_model: digital\nreason: test\n"
    )
    monkeypatch.delenv("DUALOP_DATA_DIR", raising=False)
    monkeypatch.setenv("DUALOP_CONFIG_DIR", str(config))
    return config


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """PREFECT_API_URL at a free port (nothing listens), picked up by Prefect's settings."""
    from prefect.context import refresh_global_settings_context

    url = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    monkeypatch.setenv("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "false")
    refresh_global_settings_context()
    yield url
    monkeypatch.undo()
    refresh_global_settings_context()


class TestPoolName:
    @pytest.mark.parametrize("command", ["deploy", "worker"])
    @pytest.mark.parametrize(
        ("pool", "why"),
        [
            pytest.param("a/b", "not a valid work pool name", id="slash"),
            pytest.param("_x", "not a valid work pool name", id="leading-underscore"),
            pytest.param("pool name", "not a valid work pool name", id="space"),
            pytest.param("x" * 101, "not a valid work pool name", id="too-long"),
            pytest.param("prefect-pool", "reserved by Prefect", id="reserved"),
            pytest.param("Prefect", "reserved by Prefect", id="reserved-case"),
        ],
    )
    def test_bad_names_exit_2(
        self, command: str, pool: str, why: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad pool name is refused before anything talks to Prefect, saying why."""
        assert main([command, "--pool", pool]) == 2
        err = capsys.readouterr().err
        assert why in err and "--pool" in err and "Traceback" not in err

    @pytest.mark.parametrize("command", ["deploy", "worker"])
    def test_pool_is_required(self, command: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`--pool` has no default: an organisation names its pool."""
        assert main([command]) == 2
        assert "--pool" in capsys.readouterr().err

    @pytest.mark.parametrize("limit", ["0", "-1", "two"])
    def test_worker_limit_must_be_positive(
        self, limit: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["worker", "--pool", "dualop", "--limit", limit]) == 2
        assert "--limit" in capsys.readouterr().err


class TestPrefectUnreachable:
    @pytest.mark.parametrize("command", ["deploy", "worker"])
    def test_exit_2_naming_prefect_api_url(
        self,
        command: str,
        config: Path,
        unreachable: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """No server at PREFECT_API_URL: exit 2 with the URL and what to do; no exec."""
        monkeypatch.setattr(cli, "_exec", _no_exec)
        assert main([command, "--pool", "dualop"]) == 2
        err = capsys.readouterr().err
        assert unreachable in err and "PREFECT_API_URL" in err
        assert "Traceback" not in err

    @pytest.mark.parametrize("command", ["deploy", "worker"])
    def test_broken_catalog_stops_first(
        self,
        command: str,
        config: Path,
        unreachable: str,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A broken catalog is reported (every problem) before Prefect is asked anything."""
        (config / "services" / "bad.yaml").write_text("name: bad\n")
        assert main([command, "--pool", "dualop"]) == 2
        err = capsys.readouterr().err
        assert "bad.yaml" in err and "PREFECT_API_URL" not in err


def _no_exec(argv: list[str], env: dict[str, str]) -> None:
    raise AssertionError(f"would have started {argv}")


class TestWorkerEnv:
    def test_relative_folders_become_absolute(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Flow runs start in a temporary folder: every folder they read is absolute."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / "conf").mkdir()
        for name in ("DUALOP_CONFIG_DIR", "DUALOP_DATA_DIR"):
            monkeypatch.delenv(name, raising=False)
        settings = load_settings(
            config_dir=Path("conf"),
            data_dir=Path("shared/data"),
            deploy_root=Path("shared/deploy"),
            workspace_dir=Path("ws"),
        )
        env = cli._worker_env(settings, {"PATH": "/usr/bin"})
        assert env["PATH"] == "/usr/bin"
        assert env["DUALOP_CONFIG_DIR"] == str(tmp_path / "conf")
        assert env["DUALOP_DATA_DIR"] == str(tmp_path / "shared" / "data")
        assert env["DUALOP_DEPLOY_ROOT"] == str(tmp_path / "shared" / "deploy")
        assert env["DUALOP_WORKSPACE_DIR"] == str(tmp_path / "ws")
        assert env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "true"
        assert env["PREFECT_LOCAL_STORAGE_PATH"] == str(tmp_path / "shared" / "data" / "results")
        assert env["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] == "false"
        assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"  # crashed runs get noticed

    def test_explicit_prefect_settings_win(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Result storage set by the operator (shared storage) is kept as it is."""
        monkeypatch.chdir(tmp_path)
        settings = load_settings(config_dir=tmp_path, data_dir=tmp_path / "d")
        base = {
            "PREFECT_LOCAL_STORAGE_PATH": "/mnt/shared/results",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        }
        env = cli._worker_env(settings, base)
        assert env["PREFECT_LOCAL_STORAGE_PATH"] == "/mnt/shared/results"
        assert "DUALOP_DEPLOY_ROOT" not in env and "DUALOP_WORKSPACE_DIR" not in env
        assert os.environ.get("PREFECT_LOCAL_STORAGE_PATH") != "/mnt/shared/results"
