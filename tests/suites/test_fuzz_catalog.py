"""Fuzzing the catalog loader: mutated and random service files, windows and approvers.

Whatever is in the config folder, `load_catalog` either returns a catalog or raises
`CatalogInvalid`, never anything else, and every problem it lists names the file it is
in and a field of that file (or `(file)`, `(top level)` for a file that is not a YAML
mapping at all) with a message. Bounded: a few hundred examples, well under 30 s.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dualop.catalog import ApproverDirectory, Service, WindowsConfig, load_catalog
from dualop.exceptions import CatalogInvalid

FUZZ = settings(
    max_examples=60,
    deadline=None,  # a loaded 2-core machine makes single examples slow, not wrong
    database=None,  # no .hypothesis folder in the repository
    # No shrinking: it is unbounded in time (Hypothesis gives up after 5 minutes); the
    # falsifying example is printed as found.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

WINDOWS = {
    "windows": {
        "nightly": {"cron": "0 2 * * *", "duration": "2h", "timezone": "Europe/London"},
    },
    "freezes": [
        {"name": "xmas", "start": "2026-12-20T00:00", "end": "2027-01-02T00:00"},
        {"name": "month-end", "cron": "0 0 28 * *", "duration": "3d", "services": ["svc"]},
    ],
}
APPROVERS = {"people": ["alice", "bob"], "groups": {"ops": ["alice"]}}
DIGITAL = {
    "name": "svc",
    "repo": "https://github.com/acme/svc",
    "branch": "main",
    "owner": "team-web",
    "runtime": "python3.12",
    "operating_model": "digital",
    "reason": "fuzzing",
    "tests_automated": True,
    "deploy": {"kind": "command", "deploy": ["make", "deploy"], "rollback": ["make", "back"]},
    "health": {"http": "http://127.0.0.1:8081/healthz", "timeout": "2s", "budget": "10s"},
    "paved_road": {"build": ["make", "build"], "test": ["make", "test"]},
    "tag_pattern": r"^release-(?P<version>\d+\.\d+\.\d+)$",
}
HERITAGE = {
    "name": "svc",
    "repo": "../repos/svc",
    "owner": "team-ledger",
    "runtime": "cobol",
    "operating_model": "heritage",
    "reason": "mainframe",
    "deploy": {"kind": "local"},
    "health": {"command": ["./check"], "timeout": "5s"},
    "heritage": {
        "windows": ["nightly"],
        "approvals": {"required": 1, "approvers": ["alice", "ops"], "deadline": "48h"},
        "steps": [
            {
                "name": "migrate",
                "apply": ["./apply"],
                "verify": ["./verify"],
                "rollback": ["./undo"],
                "estimate": "20m",
            }
        ],
        "ops_squad": {"name": "ops-emea", "notify": ["json://127.0.0.1:9/"]},
    },
}
PLACEHOLDERS = {"(file)", "(top level)", "(folder)"}
TOP_LEVEL = {
    "services": set(Service.model_fields),
    "windows.yaml": set(WindowsConfig.model_fields),
    "approvers.yaml": set(ApproverDirectory.model_fields),
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "0s",
            "-5m",
            "1x",
            "99999999999d",
            "* * *",
            "61 25 * * *",
            "Mars/Olympus",
            "local",
            "command",
            "http://",
            "json://",
            "../..",
            "-rf",
            "a" * 300,
            "2026-02-30T00:00",
            "(?P<version",
            "main..x",
            "cobol",
            "auto",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=4)
    ),
    max_leaves=10,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path in a YAML tree, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


def mutate(data: Any, draw: Any) -> Any:
    """Apply 1-4 random edits: delete, replace, add an unknown key, or rename a key."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(paths(data)))
        if not path:
            if draw(st.booleans()):
                data = draw(values)
            continue
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            key = path[-1]
            parent[key]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
        match draw(st.sampled_from(["delete", "replace", "add", "rename"])):
            case "delete":
                del parent[key]
            case "replace":
                parent[key] = draw(values)
            case "add" if isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=12))] = draw(values)
            case "rename" if isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
            case _:
                parent[key] = None
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def check(config: Path) -> None:
    """`load_catalog` returns, or raises CatalogInvalid whose problems name file and field."""
    try:
        load_catalog(config)
    except CatalogInvalid as e:
        problems = e.problems
    else:
        return
    assert problems, "CatalogInvalid with no problem"
    for problem in problems:
        assert problem.file.is_relative_to(config), problem
        assert problem.message.strip(), problem
        assert str(problem).startswith(f"{problem.file}: {problem.field}: "), problem
        field = problem.field
        assert field and field.strip(), problem
        if field in PLACEHOLDERS:
            continue
        kind = "services" if problem.file.parent.name == "services" else problem.file.name
        raw = yaml.safe_load(problem.file.read_text(encoding="utf-8"))
        written = {str(k) for k in raw} if isinstance(raw, dict) else set()
        # Starts with a field of the model, or with a key the file really has (unknown,
        # not a string: `[1]`, or blank or unprintable, quoted: `'\x0b'`).
        assert any(
            field == shown or field.startswith((f"{shown}.", f"{shown}[", f"[{shown}]"))
            for name in TOP_LEVEL[kind] | written
            for shown in (name, repr(name))
        ), problem


def write_config(
    root: Path, service: bytes | str, windows: str | None = None, approvers: str | None = None
) -> Path:
    config = root / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(windows if windows is not None else dump(WINDOWS))
    (config / "approvers.yaml").write_text(approvers if approvers is not None else dump(APPROVERS))
    target = config / "services" / "svc.yaml"
    if isinstance(service, bytes):
        target.write_bytes(service)
    else:
        target.write_text(service, encoding="utf-8")
    return config


@FUZZ
@given(data=st.data(), base=st.sampled_from([DIGITAL, HERITAGE]))
def test_mutated_service_files(data: st.DataObject, base: dict[str, Any]) -> None:
    """A valid service file with random edits: a catalog or CatalogInvalid, well named."""
    service = mutate(base, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        check(write_config(Path(tmp), dump(service)))


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=200),
        st.lists(
            st.sampled_from(
                [
                    "name: svc",
                    "repo: x",
                    "owner: o",
                    "runtime: r",
                    "heritage:",
                    "  windows: [nightly",
                    "\tsteps: -",
                    "- a",
                    "deploy: {kind: command}",
                    "&a [*a]",
                    "!!python/object:os.system {}",
                    "? [a, b]",
                    ": x",
                    "name: 2026-01-01",
                    "%YAML 1.1",
                    "---",
                    "...",
                    "branch: null",
                    "'unclosed",
                ]
            ),
            max_size=8,
        ).map("\n".join),
    )
)
def test_random_service_files(text: str | bytes) -> None:
    """Random text, bytes and YAML fragments: a catalog or CatalogInvalid, well named."""
    with tempfile.TemporaryDirectory() as tmp:
        check(write_config(Path(tmp), text))


@FUZZ
@given(data=st.data())
def test_mutated_windows_and_approvers(data: st.DataObject) -> None:
    """The shared files mutated too, with a valid heritage service that uses them."""
    windows = mutate(WINDOWS, data.draw)
    approvers = mutate(APPROVERS, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        check(write_config(Path(tmp), dump(HERITAGE), dump(windows), dump(approvers)))


@pytest.mark.parametrize(
    ("file", "text"),
    [
        pytest.param(
            "windows.yaml", "1: x\nmaintenance: y\nwindows: {}\n", id="windows-int-and-str-keys"
        ),
        pytest.param("windows.yaml", "'': x\nwindows: {}\n", id="windows-blank-key"),
        pytest.param("services/svc.yaml", 'name: svc\n"\\v": x\n', id="service-blank-key"),
        pytest.param("approvers.yaml", "people: [alice]\n1: 2\nx: 3\n", id="approvers-int-key"),
        pytest.param("services/svc.yaml", "name: svc\n1: 2\n'': 3\n", id="service-odd-keys"),
        pytest.param("services/svc.yaml", "name: 2026-01-01\n", id="service-date-name"),
        pytest.param(
            "services/svc.yaml", "name: svc\noperating_model: {a: 1}\n", id="service-model-a-map"
        ),
        pytest.param(
            "windows.yaml",
            "windows:\n  7: {cron: '0 2 * * *', duration: 1h}\n  nightly: {cron: '0 2 * * *', duration: 1h}\n",
            id="windows-int-window-name",
        ),
        pytest.param("services/svc.yaml", "[" * 5000, id="service-deeply-nested"),
        pytest.param("services/svc.yaml", "a: &a [*a, *a]\n", id="service-alias"),
    ],
)
def test_edge_cases(file: str, text: str, tmp_path: Path) -> None:
    """Inputs the fuzzer found, or that it is unlikely to draw: still CatalogInvalid."""
    config = write_config(tmp_path, dump(HERITAGE))
    (config / file).write_text(text, encoding="utf-8")
    check(config)
