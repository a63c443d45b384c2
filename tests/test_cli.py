"""The `dualop` command line: exit codes, messages without tracebacks, JSON shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dualop.audit import FileAuditLog
from dualop.cli import main
from dualop.testing import RepoBuilder

AT = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder with one digital service backed by a real repo."""
    repo = RepoBuilder.init(tmp_path / "repos" / "web")
    for i in range(12):
        repo.commit(f"fix: {i}", when=AT - timedelta(days=20 - i))
    config = tmp_path / "config"
    (config / "services").mkdir(parents=True)
    (config / "services" / "web.yaml").write_text(
        f"name: web\nrepo: {repo.path}\nowner: o\nruntime: python3.12\n"
        "operating_model: digital\nreason: test\n"
    )
    (config / "dualop.toml").write_text(f'data_dir = "{tmp_path / "data"}"\n')
    monkeypatch.delenv("DUALOP_DATA_DIR", raising=False)
    monkeypatch.setenv("DUALOP_CONFIG_DIR", str(config))
    return config


class TestCatalogValidate:
    def test_ok(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A good catalog exits 0 and says what it checked."""
        assert main(["catalog", "validate"]) == 0
        assert "OK: 1 service(s)" in capsys.readouterr().out

    def test_problems_exit_2_with_every_problem(
        self, config: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Bad files exit 2 and print `FILE: field: message` lines, no traceback."""
        (config / "services" / "bad.yaml").write_text("name: bad\ncolour: red\n")
        assert main(["--config-dir", str(config), "catalog", "validate"]) == 2
        err = capsys.readouterr().err
        assert f"{config / 'services' / 'bad.yaml'}: colour: unknown key" in err
        assert f"{config / 'services' / 'bad.yaml'}: owner: required but missing" in err
        assert "Traceback" not in err


class TestClassify:
    def test_json(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`classify --json --at` prints the promised fields, reproducibly."""
        assert main(["classify", "web", "--json", "--at", AT.isoformat()]) == 0
        [verdict] = json.loads(capsys.readouterr().out)
        assert verdict["service"] == "web"
        assert verdict["model"] == "digital" and verdict["forced"] is True
        assert verdict["metrics"]["commits"] == 12
        assert {"score", "level"} == set(verdict["demand_for_change"])

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            pytest.param(
                ["classify", "--at", "yesterday"], "'yesterday' is not an ISO-8601", id="bad-at"
            ),
            pytest.param(
                ["classify", "--at", "2026-11-01T00:00"], "has no UTC offset", id="naive-at"
            ),
            pytest.param(["classify", "nope"], "unknown service 'nope'", id="unknown-service"),
        ],
    )
    def test_bad_input_exits_2(
        self, config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
    ) -> None:
        """Bad arguments exit 2 with a message naming the problem."""
        assert main(argv) == 2
        assert expected in capsys.readouterr().err


class TestRelease:
    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            pytest.param(
                ["release", "web", "--ref", "main;rm -rf /"], "refusing git ref", id="unsafe-ref"
            ),
            pytest.param(
                ["release", "web", "--emergency"],
                "--emergency needs --reason",
                id="emergency-no-reason",
            ),
            pytest.param(
                ["release", "web", "--reason", "x"],
                "--reason goes with --emergency",
                id="reason-alone",
            ),
            pytest.param(["release", "ghost"], "unknown service 'ghost'", id="unknown"),
        ],
    )
    def test_refused_before_anything_starts(
        self, config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
    ) -> None:
        """Bad release requests exit 2 without contacting Prefect."""
        assert main(argv) == 2
        assert expected in capsys.readouterr().err


class TestAudit:
    def test_verify_and_show(
        self, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """verify exits 0 on an intact chain and 1 naming the edited line."""
        log = FileAuditLog(tmp_path / "data" / "audit.jsonl")
        for i in range(3):
            log.append("release.triggered", service="web", at=AT, n=i)
        assert main(["audit", "verify"]) == 0
        assert "intact: 3 entries" in capsys.readouterr().out
        assert main(["audit", "show", "--json", "--service", "web"]) == 0
        assert [e["data"]["n"] for e in json.loads(capsys.readouterr().out)] == [0, 1, 2]
        path = tmp_path / "data" / "audit.jsonl"
        lines = path.read_text().splitlines()
        lines[1] = lines[1].replace('"n":1', '"n":7')
        path.write_text("\n".join(lines) + "\n")
        assert main(["audit", "verify"]) == 1
        assert "entry 2" in capsys.readouterr().err
