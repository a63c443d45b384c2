"""The service catalog and the release windows: pydantic models and a loader.

Layout of the config folder (the user's interface; see the README):

    config/dualop.toml          settings (dualop.settings)
    config/services/NAME.yaml   one service a file, NAME equal to the service's name
    config/windows.yaml         release windows and freezes
    config/approvers.yaml       the people (and groups of them) who may approve

`load_catalog(config_dir)` reads every file and either returns a `Catalog` or raises
`CatalogInvalid` listing *every* problem as `FILE: field.path: what is wrong, and the
fix`. One bad file never hides the problems of another.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dualop.durations import parse_duration
from dualop.exceptions import CatalogInvalid, Problem, UnknownServiceError

__all__ = [
    "NAME_PATTERN",
    "Approvals",
    "ApproverDirectory",
    "Catalog",
    "CommandDeploy",
    "CommandHealth",
    "Freeze",
    "Heritage",
    "HttpHealth",
    "LocalDeploy",
    "MigrationStep",
    "OperatingModel",
    "OpsSquad",
    "PavedRoad",
    "Service",
    "Window",
    "WindowsConfig",
    "load_catalog",
]

NAME_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
_M = TypeVar("_M", bound=BaseModel)
# libyaml when it is built in (the wheels ship it); the pure-Python loader otherwise.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NAME_RE = re.compile(NAME_PATTERN)


class OperatingModel(StrEnum):
    DIGITAL = "digital"
    HERITAGE = "heritage"


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name; use 2-63 characters: a lowercase letter, then "
            "lowercase letters, digits or '-' (for example storefront-web)"
        )
    return value


def _check_argv(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            f"{value!r} is a string; commands are argv lists, never shell strings: "
            f"write it as a list such as {value.split()!r}"
        )
    if isinstance(value, list) and not value:
        raise ValueError("the command is empty; give at least the program, e.g. ['make', 'build']")
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA timezone; use a name such as Europe/London, "
            "America/New_York or UTC"
        ) from None
    return value


def _check_cron(value: str) -> str:
    # Prefect's own check, so a window that loads here is a schedule Prefect accepts.
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        if len(value.split()) != 5:
            raise ValueError(value)
        validate_cron_string(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a valid cron expression; use five fields "
            "'minute hour day-of-month month day-of-week', such as '0 2 * * SAT'"
        ) from None
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Argv = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_check_argv)]
Duration = Annotated[
    timedelta,
    BeforeValidator(lambda v: parse_duration(v) if isinstance(v, str) else v),
    Field(gt=timedelta(0)),
]
TimezoneName = Annotated[str, AfterValidator(_check_timezone)]
CronExpr = Annotated[str, AfterValidator(_check_cron)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- deploy and health ----------------------------------------------------------------


class LocalDeploy(_Model):
    """Release folders under the deploy root and an atomically switched `current` link."""

    kind: Literal["local"] = "local"


class CommandDeploy(_Model):
    """The service's own deploy and rollback commands (kubectl, helm, ansible, ssh...)."""

    kind: Literal["command"]
    deploy: Argv = Field(description="argv run to deploy a release")
    rollback: Argv = Field(description="argv run to go back to the previous release")
    timeout: Duration = Field(default=timedelta(minutes=10))


Deploy = Annotated[LocalDeploy | CommandDeploy, Field(discriminator="kind")]


class HttpHealth(_Model):
    http: Annotated[str, Field(pattern=r"^https?://\S+$")] = Field(
        description="URL that answers 2xx when the release is healthy"
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="per attempt")
    budget: Duration = Field(default=timedelta(seconds=60), description="for all attempts")


class CommandHealth(_Model):
    command: Argv = Field(description="argv that exits 0 when the release is healthy")
    timeout: Duration = Field(default=timedelta(seconds=30))
    budget: Duration = Field(default=timedelta(seconds=60))


def _health_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return "command" if "command" in value and "http" not in value else "http"
    return "command" if isinstance(value, CommandHealth) else "http"


Health = Annotated[
    Annotated[HttpHealth, Tag("http")] | Annotated[CommandHealth, Tag("command")],
    Discriminator(_health_kind),
]


class PavedRoad(_Model):
    """Build and test commands; unset ones take the opinionated defaults (README)."""

    build: Argv | None = None
    test: Argv | None = None


# --- heritage -------------------------------------------------------------------------


class Approvals(_Model):
    required: int = Field(ge=1, description="distinct approvals needed")
    approvers: list[Name] = Field(min_length=1, description="people or groups who may approve")
    deadline: Duration = Field(default=timedelta(hours=48))


class MigrationStep(_Model):
    name: Name
    apply: Argv
    verify: Argv | None = None
    rollback: Argv
    estimate: Duration


class OpsSquad(_Model):
    name: str = Field(min_length=1)
    notify: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9+.-]*://\S*$")]] = Field(
        min_length=1, description="apprise URLs"
    )


class Heritage(_Model):
    windows: list[Name] = Field(min_length=1)
    approvals: Approvals
    steps: list[MigrationStep] = Field(default_factory=list)
    ops_squad: OpsSquad

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[MigrationStep]) -> list[MigrationStep]:
        seen: set[str] = set()
        for step in steps:
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice; give each step its own")
            seen.add(step.name)
        return steps

    @property
    def estimate(self) -> timedelta:
        return sum((s.estimate for s in self.steps), timedelta())


# --- the service ----------------------------------------------------------------------


def _is_url(repo: str) -> bool:
    return "://" in repo or bool(re.match(r"^[\w.-]+@[\w.-]+:", repo))


class Service(_Model):
    name: Name
    repo: str = Field(
        min_length=1,
        description="git URL, or a path relative to the service's file (made absolute on load)",
    )
    branch: Annotated[str, Field(min_length=1)] = "main"
    owner: str = Field(min_length=1)
    runtime: str = Field(min_length=1)
    operating_model: Literal["auto", "digital", "heritage"] = "auto"
    reason: str | None = Field(default=None, description="why a forced model is forced")
    tests_automated: bool = True
    deploys_automated: bool = Field(
        default=True, description="false when releases need manual work (a cost of change)"
    )
    deploy: Deploy = Field(default_factory=LocalDeploy)
    health: Health | None = None
    paved_road: PavedRoad = Field(default_factory=PavedRoad)
    heritage: Heritage | None = None
    tag_pattern: str | None = Field(
        default=None,
        description="regex with a (?P<version>...) group; overrides the release tag forms",
    )

    @field_validator("repo")
    @classmethod
    def _resolve_repo(cls, repo: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base_dir")
        if _is_url(repo) or base is None:
            return repo
        return str((Path(base) / repo).resolve())

    @field_validator("branch")
    @classmethod
    def _branch_is_safe(cls, branch: str) -> str:
        from dualop.refs import validate_ref

        return validate_ref(branch)

    @field_validator("tag_pattern")
    @classmethod
    def _tag_pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"not a valid regular expression ({e})") from None
        if "version" not in compiled.groupindex:
            raise ValueError(
                "the pattern needs a named group for the version, "
                r"e.g. '^release-(?P<version>\d+\.\d+\.\d+)$'"
            )
        return pattern

    @model_validator(mode="after")
    def _model_rules(self) -> Self:
        for _field, message in service_rules(
            self.model_dump(include={"operating_model", "reason", "heritage"})
        ):
            raise ValueError(message)
        return self

    @property
    def forced_model(self) -> OperatingModel | None:
        match self.operating_model:
            case "auto":
                return None
            case "digital":
                return OperatingModel.DIGITAL
            case "heritage":
                return OperatingModel.HERITAGE

    @property
    def repo_is_url(self) -> bool:
        return _is_url(self.repo)


def service_rules(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Cross-field rules of a service, as `(field, message)`, on raw or dumped data.

    Kept apart from field validation so the loader reports them even when some other
    field of the same file is wrong.
    """
    model = data.get("operating_model", "auto")
    if not isinstance(model, str):
        return  # field validation already reports a model that is not a word
    reason = data.get("reason")
    if model in {"digital", "heritage"} and not (isinstance(reason, str) and reason.strip()):
        yield (
            "reason",
            f"operating_model is forced to {model!r} without a reason; add `reason:` saying "
            "why, or set operating_model: auto",
        )
    if model in {"auto", "heritage"} and data.get("heritage") is None:
        yield (
            "heritage",
            f"operating_model {model!r} may classify this service heritage, but it has no "
            "`heritage:` block; add one with windows, approvals and ops_squad, or force "
            "operating_model: digital with a reason",
        )


# --- windows --------------------------------------------------------------------------


class Window(_Model):
    cron: CronExpr = Field(description="when the window opens, in its own timezone")
    duration: Duration
    timezone: TimezoneName = "UTC"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Freeze(_Model):
    """A period with no releases: one-off (`start`/`end`) or recurring (`cron`/`duration`)."""

    name: Name
    timezone: TimezoneName = "UTC"
    start: datetime | None = Field(
        default=None, description="local wall time, e.g. 2026-12-20T00:00"
    )
    end: datetime | None = None
    cron: CronExpr | None = None
    duration: Duration | None = None
    services: list[Name] | None = Field(default=None, description="omit to freeze every service")
    reason: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError(
                "give either start and end (a one-off freeze) or cron and duration "
                "(a recurring one)"
            )
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off freeze needs both start and end")
            if self.start.tzinfo is not None or self.end.tzinfo is not None:
                raise ValueError(
                    "start and end are local wall times in `timezone`; drop the UTC offset"
                )
            if self.end <= self.start:
                raise ValueError("end is not after start; swap them or fix the dates")
        elif self.cron is None or self.duration is None:
            raise ValueError("a recurring freeze needs both cron and duration")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def applies_to(self, service: str) -> bool:
        return self.services is None or service in self.services


class WindowsConfig(_Model):
    windows: dict[Name, Window] = Field(default_factory=dict)
    freezes: list[Freeze] = Field(default_factory=list)


class ApproverDirectory(_Model):
    """`config/approvers.yaml`: who may approve, and named groups of them."""

    people: list[Name] = Field(default_factory=list)
    groups: dict[Name, list[Name]] = Field(default_factory=dict)

    def expand(self, names: list[str]) -> frozenset[str]:
        """People named directly or through a group."""
        people: set[str] = set()
        for name in names:
            people.update(self.groups.get(name, [name]))
        return frozenset(people)


# --- the catalog ----------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """Everything under the config folder, validated together."""

    config_dir: Path
    services: dict[str, Service]
    windows: WindowsConfig
    approvers: ApproverDirectory
    files: dict[str, Path] = field(default_factory=dict)

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise UnknownServiceError(name, known=sorted(self.services)) from None

    def approvers_for(self, service: Service) -> frozenset[str]:
        if service.heritage is None:
            return frozenset()
        return self.approvers.expand(service.heritage.approvals.approvers)

    def heritage_services_in(self, window: str) -> Iterator[Service]:
        for svc in self.services.values():
            if svc.heritage is not None and window in svc.heritage.windows:
                yield svc


# --- loading --------------------------------------------------------------------------


def _shown_key(key: object) -> str:
    """A key as a field path shows it: as written when it is a plain word, else quoted
    (`''`, `'\\x0b'`), so a blank or unprintable key still names something."""
    text = str(key)
    return text if text.strip() and text.isprintable() else repr(text)


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"http", "command", "local"} and out.endswith(("health", "deploy")):
            continue  # discriminated-union tags are not keys the user wrote
        else:
            out += f".{_shown_key(part)}" if out else _shown_key(part)
    return out or "(top level)"


def _fix_for(error: Any, model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    msg = str(error["msg"]).removeprefix("Value error, ")
    match kind:
        case "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return f"unknown key; {hint}remove it (allowed here: {', '.join(allowed)})"
        case "missing":
            return "required but missing; add it"
        case "string_pattern_mismatch" if loc and loc[-1] == "http":
            return "not an http(s) URL; write it like 'http://127.0.0.1:8081/healthz'"
        case "string_pattern_mismatch":
            return (
                f"{error.get('input')!r} is not an apprise URL; write it like 'json://host:port/'"
            )
        case "union_tag_invalid" | "union_tag_not_found":
            return "unknown kind; use kind: local or kind: command"
        case "bool_type" | "bool_parsing":
            return f"{error.get('input')!r} is not true or false; write true or false"
        case "list_type":
            return "expected a list; write it as [a, b]"
        case "dict_type" | "model_type" | "model_attributes_type":
            return "expected a mapping of keys to values; write it as {key: value}"
        case "literal_error":
            return f"{error.get('input')!r} is not allowed; {msg.lower()}"
        case "greater_than_equal" | "greater_than":
            return f"{error.get('input')!r} is too small; {msg.lower()}"
        case "too_short":
            return "is empty; give at least one entry"
        case _:
            return msg


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            continue
        info = current.model_fields.get(str(part))
        if info is None:
            continue
        current = _model_in(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The first pydantic model inside an annotation such as `list[Step] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or getattr(annotation, "__metadata__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    origin = getattr(annotation, "__origin__", None)
    return _model_in(origin) if origin is not None and origin is not annotation else None


def _problems_from(file: Path, error: ValidationError, model: type[BaseModel]) -> list[Problem]:
    problems = []
    for err in error.errors():
        loc = tuple(err["loc"])
        problems.append(Problem(file, _field_path(loc), _fix_for(err, model, loc)))
    return problems


def _read_yaml(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # noqa: S506
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or "unparseable"
        problems.append(Problem(path, "(file)", f"not valid YAML{where}: {what}; fix the syntax"))
        return None
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(path, "(file)", f"cannot be read ({e}); check the file"))
        return None
    except RecursionError:
        problems.append(Problem(path, "(file)", "nested too deeply to read; flatten the YAML"))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(
            Problem(path, "(top level)", "expected a mapping of keys to values, not a list or text")
        )
        return None
    return data


def _validate(
    model: type[_M], data: dict[str, Any], path: Path, problems: list[Problem], **context: Any
) -> _M | None:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        problems.extend(_problems_from(path, e, model))
        return None


def _load_optional(model: type[_M], path: Path, problems: list[Problem]) -> _M:
    """A file that may be absent (its defaults apply), or is read and validated."""
    if path.exists():
        data = _read_yaml(path, problems)
        if data is not None:
            loaded = _validate(model, data, path, problems)
            if loaded is not None:
                return loaded
    return model()


def _load_windows(path: Path, problems: list[Problem]) -> tuple[WindowsConfig, dict[str, Any]]:
    """Windows and freezes validated one entry at a time, so one bad window neither hides
    the others nor makes every service that names it look wrong too."""
    empty: dict[str, Any] = {"windows": {}, "freezes": []}
    if not path.exists():
        return WindowsConfig(), empty
    data = _read_yaml(path, problems)
    if data is None:
        return WindowsConfig(), empty
    raw = {"windows": data.get("windows") or {}, "freezes": data.get("freezes") or []}
    if not isinstance(raw["windows"], dict) or not isinstance(raw["freezes"], list):
        _validate(WindowsConfig, data, path, problems)  # reports the shapes
        return WindowsConfig(), empty
    for key in sorted(set(data) - {"windows", "freezes"}, key=str):
        problems.append(
            Problem(path, _shown_key(key), "unknown key; remove it (allowed: freezes, windows)")
        )
    good: dict[str, Any] = {"windows": {}, "freezes": []}
    for name, entry in raw["windows"].items():
        probe: list[Problem] = []
        _validate(WindowsConfig, {"windows": {name: entry}}, path, probe)
        problems.extend(probe)
        if not probe:
            good["windows"][name] = entry
    for i, entry in enumerate(raw["freezes"]):
        probe = []
        _validate(Freeze, entry if isinstance(entry, dict) else {}, path, probe)
        if not isinstance(entry, dict):
            probe = [Problem(path, f"freezes[{i}]", "expected a mapping such as {name: ..., ...}")]
        problems.extend(
            Problem(
                p.file,
                f"freezes[{i}]" + ("" if p.field == "(top level)" else f".{p.field}"),
                p.message,
            )
            for p in probe
        )
        if not probe:
            good["freezes"].append(entry)
    return WindowsConfig.model_validate(good), raw


def load_catalog(config_dir: Path) -> Catalog:
    """Load and cross-check the whole config folder; raise `CatalogInvalid` listing all problems."""
    config_dir = Path(config_dir)
    problems: list[Problem] = []

    windows_file = config_dir / "windows.yaml"
    windows, raw_windows = _load_windows(windows_file, problems)
    approvers_file = config_dir / "approvers.yaml"
    approvers = _load_optional(ApproverDirectory, approvers_file, problems)
    for group, members in approvers.groups.items():
        problems.extend(
            Problem(
                approvers_file,
                f"groups.{group}[{i}]",
                f"{member!r} is not in people; add them to people or remove them",
            )
            for i, member in enumerate(members)
            if member not in approvers.people
        )

    services, raw = _load_services(config_dir / "services", problems)
    files = {name: path for name, (path, _) in raw.items()}
    for path, data in raw.values():
        problems.extend(
            _cross_check(data, path, set(raw_windows["windows"]), approvers, approvers_file)
        )
    for i, freeze in enumerate(raw_windows["freezes"]):
        services_listed = freeze.get("services") if isinstance(freeze, Mapping) else None
        problems.extend(
            Problem(
                windows_file,
                f"freezes[{i}].services[{j}]",
                f"no service named {name!r}; known: {', '.join(sorted(files)) or 'none'}",
            )
            for j, name in enumerate(_str_list(services_listed))
            if name and name not in files
        )

    if problems:
        # Grouped by file (shared files first), each file's problems in the order found.
        problems.sort(key=lambda p: (p.file.parent.name == "services", str(p.file)))
        raise CatalogInvalid(problems)
    return Catalog(config_dir, services, windows, approvers, files)


def _load_services(
    services_dir: Path, problems: list[Problem]
) -> tuple[dict[str, Service], dict[str, tuple[Path, dict[str, Any]]]]:
    """Each `services/*.yaml` on its own; returns the valid services, and every named
    file with its raw data (cross-checked even where a field is wrong)."""
    if not services_dir.is_dir():
        problems.append(
            Problem(services_dir, "(folder)", "missing; create it with one NAME.yaml per service")
        )
        return {}, {}
    services: dict[str, Service] = {}
    files: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted([*services_dir.glob("*.yaml"), *services_dir.glob("*.yml")]):
        data = _read_yaml(path, problems)
        if data is None:
            continue
        svc = _validate(Service, data, path, problems, base_dir=path.parent)
        problems[:] = [p for p in problems if not (p.file == path and p.field == "(top level)")]
        problems.extend(Problem(path, field, message) for field, message in service_rules(data))
        name = data.get("name")
        if not isinstance(name, str):
            continue
        if name != path.stem:
            problems.append(
                Problem(
                    path,
                    "name",
                    f"{name!r} differs from the file name {path.stem!r}; rename the file to "
                    f"{name}{path.suffix} or set name: {path.stem}",
                )
            )
            svc = None
        if name in files:
            problems.append(
                Problem(
                    path,
                    "name",
                    f"{name!r} is already defined in {files[name][0]}; service names must be "
                    "unique",
                )
            )
            continue
        files[name] = (path, data)
        if svc is not None:
            services[name] = svc
    return services, files


def _cross_check(
    data: Mapping[str, Any],
    path: Path,
    windows: set[str],
    approvers: ApproverDirectory,
    approvers_file: Path,
) -> Iterator[Problem]:
    """Names a service uses that other files define (windows, approvers), on raw data."""
    heritage = data.get("heritage")
    if not isinstance(heritage, Mapping):
        return
    known_windows = sorted(str(w) for w in windows)
    for i, window in enumerate(_str_list(heritage.get("windows"))):
        if window and window not in windows:
            yield Problem(
                path,
                f"heritage.windows[{i}]",
                f"no window named {window!r} in windows.yaml; "
                f"use one of: {', '.join(known_windows) or 'none defined yet'}",
            )
    policy = heritage.get("approvals")
    if not isinstance(policy, Mapping):
        return
    names = _str_list(policy.get("approvers"))
    known = set(approvers.people) | set(approvers.groups)
    for i, approver in enumerate(names):
        if approver and approver not in known:
            yield Problem(
                path,
                f"heritage.approvals.approvers[{i}]",
                f"{approver!r} is not a person or group in {approvers_file.name}; "
                "add them there or fix the spelling",
            )
    required = policy.get("required")
    people = approvers.expand([a for a in names if a in known]) or set(names)
    if isinstance(required, int) and required > len(people):
        yield Problem(
            path,
            "heritage.approvals.required",
            f"{required} approvals required but only {len(people)} approver(s) can give one; "
            "lower required or add approvers",
        )


def _str_list(value: Any) -> list[str]:
    """The strings of a raw list (positions kept; other items become '')."""
    if not isinstance(value, list):
        return []
    return [v if isinstance(v, str) else "" for v in value]
