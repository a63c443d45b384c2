"""The catalog loader: valid catalogs load; every bad input is named by file and field."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from dualop.catalog import CommandDeploy, CommandHealth, HttpHealth, load_catalog
from dualop.exceptions import CatalogInvalid, UnknownServiceError

WINDOWS = """
windows:
  weekend-night: {cron: "0 2 * * SAT", duration: 4h, timezone: Europe/London}
freezes:
  - {name: year-end, start: "2026-12-20T00:00", end: "2027-01-03T00:00", timezone: Europe/London}
"""
APPROVERS = """
people: [alice, bob, carol]
groups:
  board: [alice, bob]
"""
HERITAGE = """
name: ledger-core
repo: ../../repos/ledger-core
branch: main
owner: team-ledger
runtime: cobol
operating_model: heritage
reason: mainframe batch, no automated tests
tests_automated: false
deploy: {kind: command, deploy: ["deploy.sh"], rollback: ["rollback.sh"], timeout: 5m}
health: {command: ["check.sh"]}
heritage:
  windows: [weekend-night]
  approvals: {required: 2, approvers: [alice, bob, carol], deadline: 48h}
  steps:
    - {name: migrate-schema, apply: [a], verify: [v], rollback: [r], estimate: 20m}
    - {name: reindex, apply: [a], rollback: [r], estimate: 1h30m}
  ops_squad: {name: ops-emea, notify: ["json://127.0.0.1:9099/"]}
"""
DIGITAL = """
name: storefront-web
repo: https://github.com/acme/storefront-web.git
owner: team-web
runtime: python3.12
operating_model: digital
reason: stateless web front end with full test coverage
health: {http: "http://127.0.0.1:8081/healthz"}
"""


def write_config(root: Path, services: dict[str, str], **files: str) -> Path:
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(files.get("windows", WINDOWS))
    (config / "approvers.yaml").write_text(files.get("approvers", APPROVERS))
    for filename, body in services.items():
        (config / "services" / filename).write_text(textwrap.dedent(body))
    return config


def problems_of(config: Path) -> list[str]:
    with pytest.raises(CatalogInvalid) as excinfo:
        load_catalog(config)
    return [str(p) for p in excinfo.value.problems]


class TestValidCatalog:
    def test_loads_services_windows_and_approvers(self, tmp_path: Path) -> None:
        """A good catalog loads with every field typed."""
        config = write_config(
            tmp_path, {"ledger-core.yaml": HERITAGE, "storefront-web.yaml": DIGITAL}
        )
        catalog = load_catalog(config)
        ledger = catalog.service("ledger-core")
        assert ledger.repo == str((config / "services" / "../../repos/ledger-core").resolve())
        assert isinstance(ledger.deploy, CommandDeploy)
        assert ledger.deploy.timeout == timedelta(minutes=5)
        assert isinstance(ledger.health, CommandHealth)
        assert ledger.heritage is not None
        assert ledger.heritage.estimate == timedelta(hours=1, minutes=50)
        assert ledger.heritage.steps[1].verify is None
        web = catalog.service("storefront-web")
        assert web.repo == "https://github.com/acme/storefront-web.git"
        assert isinstance(web.health, HttpHealth)
        assert catalog.approvers.expand(["board", "carol"]) == {"alice", "bob", "carol"}
        assert [s.name for s in catalog.heritage_services_in("weekend-night")] == ["ledger-core"]

    def test_unknown_service_names_the_known_ones(self, tmp_path: Path) -> None:
        """Asking for a service that is not in the catalog says which ones are."""
        catalog = load_catalog(write_config(tmp_path, {"storefront-web.yaml": DIGITAL}))
        with pytest.raises(UnknownServiceError, match="known services: storefront-web"):
            catalog.service("nope")

    def test_the_shipped_demo_catalog_is_valid(self) -> None:
        """config/ as checked in loads (make up relies on it)."""
        catalog = load_catalog(Path(__file__).parent.parent / "config")
        assert {"storefront-web", "ledger-core"} <= set(catalog.services)


def heritage_with(**replace: str) -> str:
    body = textwrap.dedent(HERITAGE)
    for old, new in replace.items():
        old_text = old.replace("__", " ")
        assert old_text in body, old_text
        body = body.replace(old_text, new)
    return body


BAD_SERVICES = [
    pytest.param(
        DIGITAL + "colour: blue\n", "storefront-web.yaml: colour: unknown key", id="unknown-key"
    ),
    pytest.param(
        DIGITAL.replace("owner: team-web", "ownr: team-web"),
        "storefront-web.yaml: ownr: unknown key; did you mean 'owner'?",
        id="misspelt-key",
    ),
    pytest.param(
        DIGITAL.replace("name: storefront-web", "name: Storefront_Web"),
        "storefront-web.yaml: name: 'Storefront_Web' is not a valid name",
        id="bad-name",
    ),
    pytest.param(
        DIGITAL.replace("name: storefront-web", "name: storefront-api"),
        "storefront-web.yaml: name: 'storefront-api' differs from the file name",
        id="name-differs-from-stem",
    ),
    pytest.param(
        DIGITAL.replace("reason: stateless web front end with full test coverage\n", ""),
        "storefront-web.yaml: reason: operating_model is forced to 'digital' without a reason",
        id="forced-without-reason",
    ),
    pytest.param(
        DIGITAL.replace("operating_model: digital", "operating_model: auto"),
        "storefront-web.yaml: heritage: operating_model 'auto' may classify this service heritage",
        id="heritage-capable-without-heritage-block",
    ),
    pytest.param(
        DIGITAL.replace("operating_model: digital", "operating_model: legacy"),
        "storefront-web.yaml: operating_model: 'legacy' is not allowed",
        id="bad-operating-model",
    ),
    pytest.param(
        heritage_with(**{"windows: [weekend-night]": "windows: []"}),
        "ledger-core.yaml: heritage.windows: is empty",
        id="heritage-without-windows",
    ),
    pytest.param(
        heritage_with(**{"windows: [weekend-night]": "windows: [full-moon]"}),
        "ledger-core.yaml: heritage.windows[0]: no window named 'full-moon'",
        id="unknown-window",
    ),
    pytest.param(
        heritage_with(**{"approvers: [alice, bob, carol]": "approvers: [alice, mallory]"}),
        "ledger-core.yaml: heritage.approvals.approvers[1]: 'mallory' is not a person or group",
        id="unknown-approver",
    ),
    pytest.param(
        heritage_with(**{"required: 2": "required: 4"}),
        "ledger-core.yaml: heritage.approvals.required: 4 approvals required but only 3",
        id="required-exceeds-approvers",
    ),
    pytest.param(
        heritage_with(**{"deadline: 48h": "deadline: two days"}),
        "ledger-core.yaml: heritage.approvals.deadline: 'two days' is not a duration",
        id="bad-duration",
    ),
    pytest.param(
        heritage_with(**{"estimate: 20m": "estimate: 0m"}),
        "ledger-core.yaml: heritage.steps[0].estimate: '0m' is zero",
        id="zero-duration",
    ),
    pytest.param(
        heritage_with(**{"apply: [a], verify": 'apply: "psql -f up.sql", verify'}),
        "ledger-core.yaml: heritage.steps[0].apply: 'psql -f up.sql' is a string; commands are "
        "argv lists",
        id="shell-string-command",
    ),
    pytest.param(
        heritage_with(**{"deploy: {kind: command": "deploy: {kind: ftp"}),
        "ledger-core.yaml: deploy: unknown kind; use kind: local or kind: command",
        id="bad-deploy-kind",
    ),
    pytest.param(
        heritage_with(**{'["json://127.0.0.1:9099/"]': '["not a url"]'}),
        "ledger-core.yaml: heritage.ops_squad.notify[0]: 'not a url' is not an apprise URL",
        id="bad-notify-url",
    ),
    pytest.param(
        heritage_with(**{"branch: main": "branch: main;rm -rf /"}),
        "ledger-core.yaml: branch: refusing git ref 'main;rm -rf /'",
        id="unsafe-branch",
    ),
    pytest.param(
        heritage_with(**{"tests_automated: false": "tests_automated: sometimes"}),
        "ledger-core.yaml: tests_automated: 'sometimes' is not true or false",
        id="bad-bool",
    ),
    pytest.param(
        heritage_with(**{"branch: main": "branch: main\ntag_pattern: 'release-(\\d+)'"}),
        "ledger-core.yaml: tag_pattern: the pattern needs a named group for the version",
        id="tag-pattern-without-version-group",
    ),
    pytest.param(
        "name: [unclosed\n", "ledger-core.yaml: (file): not valid YAML at line 2", id="yaml"
    ),
    pytest.param("- a\n- b\n", "ledger-core.yaml: (top level): expected a mapping", id="not-a-map"),
]


class TestBadServices:
    @pytest.mark.parametrize(("body", "expected"), BAD_SERVICES)
    def test_each_problem_names_file_and_field(
        self, tmp_path: Path, body: str, expected: str
    ) -> None:
        """The message is `FILE: field.path: what is wrong, and how to fix it`."""
        filename = "storefront-web.yaml" if "storefront" in body else "ledger-core.yaml"
        config = write_config(tmp_path, {filename: body})
        found = problems_of(config)
        assert any(p.startswith(str(config / "services") + "/") and expected in p for p in found), (
            found
        )

    def test_duplicate_names_across_files(self, tmp_path: Path) -> None:
        """Two files defining the same service are both named."""
        config = write_config(
            tmp_path, {"storefront-web.yaml": DIGITAL, "storefront-web.yml": DIGITAL}
        )
        found = problems_of(config)
        assert any(
            "storefront-web.yml: name: 'storefront-web' is already defined in" in p
            and "storefront-web.yaml" in p
            for p in found
        ), found

    def test_one_bad_file_never_hides_another(self, tmp_path: Path) -> None:
        """Problems from every file are reported together, in file order."""
        config = write_config(
            tmp_path,
            {
                "ledger-core.yaml": heritage_with(**{"required: 2": "required: 9"}),
                "storefront-web.yaml": DIGITAL + "colour: blue\n",
                "zz-broken.yaml": "name: [\n",
            },
        )
        found = problems_of(config)
        files = [p.split(": ", 1)[0].rsplit("/", 1)[-1] for p in found]
        assert files == ["ledger-core.yaml", "storefront-web.yaml", "zz-broken.yaml"], found

    def test_several_problems_in_one_file_are_all_reported(self, tmp_path: Path) -> None:
        """A bad field does not hide cross-checks of the same file."""
        body = heritage_with(
            **{
                "reason: mainframe batch, no automated tests\n": "",
                "windows: [weekend-night]": "windows: [nope]",
                "deadline: 48h": "deadline: soon",
            }
        )
        found = problems_of(write_config(tmp_path, {"ledger-core.yaml": body}))
        fields = sorted(p.split(": ")[1] for p in found)
        assert fields == ["heritage.approvals.deadline", "heritage.windows[0]", "reason"], found


BAD_WINDOWS = [
    pytest.param(
        'windows:\n  w: {cron: "0 25 * * *", duration: 4h}\n',
        "windows.w.cron: '0 25 * * *' is not a valid cron expression",
        id="bad-cron",
    ),
    pytest.param(
        'windows:\n  w: {cron: "0 2 * *", duration: 4h}\n',
        "windows.w.cron: '0 2 * *' is not a valid cron expression",
        id="four-field-cron",
    ),
    pytest.param(
        'windows:\n  w: {cron: "0 2 * * SAT", duration: 4h, timezone: Europe/Lndon}\n',
        "windows.w.timezone: 'Europe/Lndon' is not an IANA timezone",
        id="bad-timezone",
    ),
    pytest.param(
        'windows:\n  w: {cron: "0 2 * * SAT", duration: four hours}\n',
        "windows.w.duration: 'four hours' is not a duration",
        id="bad-window-duration",
    ),
    pytest.param(
        'freezes:\n  - {name: xmas, start: "2026-12-24T00:00", end: "2026-12-20T00:00"}\n',
        "freezes[0]: end is not after start",
        id="freeze-backwards",
    ),
    pytest.param(
        'freezes:\n  - {name: xmas, start: "2026-12-24T00:00"}\n',
        "freezes[0]: a one-off freeze needs both start and end",
        id="freeze-without-end",
    ),
    pytest.param(
        'freezes:\n  - {name: xmas, start: "2026-12-24", end: "2026-12-26", services: [ghost]}\n',
        "freezes[0].services[0]: no service named 'ghost'",
        id="freeze-unknown-service",
    ),
    pytest.param("windws: {}\n", "windws: unknown key", id="unknown-top-level-key"),
]


class TestBadWindows:
    @pytest.mark.parametrize(("body", "expected"), BAD_WINDOWS)
    def test_each_problem_names_the_field(self, tmp_path: Path, body: str, expected: str) -> None:
        """windows.yaml problems name the window or freeze and the field."""
        config = write_config(tmp_path, {"storefront-web.yaml": DIGITAL}, windows=body)
        found = problems_of(config)
        assert any(p.startswith(f"{config / 'windows.yaml'}: {expected}") for p in found), found

    def test_a_bad_window_is_not_also_reported_as_missing(self, tmp_path: Path) -> None:
        """A service naming a window that is declared but invalid gets no second problem."""
        windows = 'windows:\n  weekend-night: {cron: "nope", duration: 4h}\n'
        config = write_config(tmp_path, {"ledger-core.yaml": HERITAGE}, windows=windows)
        found = problems_of(config)
        assert len(found) == 1, found
        assert "windows.weekend-night.cron" in found[0]


class TestApproverDirectory:
    def test_group_member_must_be_a_person(self, tmp_path: Path) -> None:
        """A group that names someone not in people is named."""
        approvers = "people: [alice]\ngroups:\n  board: [alice, zed]\n"
        config = write_config(tmp_path, {"storefront-web.yaml": DIGITAL}, approvers=approvers)
        assert any(
            "approvers.yaml: groups.board[1]: 'zed' is not in people" in p
            for p in problems_of(config)
        )
