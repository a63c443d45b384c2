"""Release windows and freezes: can a service release at `now`, until when, and if not, when.

`window_status(service, model, windows, now)` is the one question the CLI, the router and
the migration flow ask. The rules:

- **Digital** services are always open, unless a freeze that applies to them is in force;
  then they are closed until the freeze (and any freeze overlapping or touching it) ends.
- **Heritage** services are open while one of their windows is open and no freeze applies.
  A window occurrence is the half-open interval `[opening, opening + duration)`: open at
  the opening instant, closed at the closing instant. When several windows are open the
  one that stays open longest is reported. `closes_at` is the earlier of that window's
  end and the start of the next applicable freeze. Closed, `next_open_at` is the first
  instant after `now` when some window is open and no freeze applies: a freeze covering a
  window's opening but ending before its close opens the remainder at the freeze's end.
  The search looks about two years ahead; beyond that `next_open_at` is None.

**Cron semantics.** Openings come from Prefect's own scheduler engine,
`prefect.server.schemas.schedules.CronSchedule(cron=..., timezone=...)`, so the schedule
a Prefect deployment runs on and this check can never disagree, DST included: a wall time
that does not exist (spring forward) runs once at the shifted instant (a London 01:30
becomes 02:30 BST), and a wall time that happens twice (fall back) runs once, at the first
occurrence. This is the only module of `dualop/` that imports Prefect; the import is lazy
(inside `_schedule`) so importing dualop, and `dualop --help`, stay fast and server-free.

**Durations are elapsed time.** A `4h` window lasts four real hours even across a DST
change (so its closing wall time may read 3h or 5h after its opening wall time). All
arithmetic and comparisons are done in UTC (Python compares and subtracts datetimes that
share a `tzinfo` by wall clock, which is wrong across a fold); results are converted to the
window's (or the freeze's) timezone at the end, so they print with the right offset.

**One-off freezes** give `start`/`end` as local wall times in the freeze's timezone. A freeze
covers every instant whose wall-clock reading lies in `[start, end)`, taken as one interval
(the hull), so an ambiguous or missing wall time always errs towards *frozen*:

- a wall time in a fold (it happens twice): `start` is its first occurrence, `end` its
  second;
- a wall time in a gap (it never happens): both `start` and `end` resolve to the instant
  the clocks jump, the first instant whose wall time is past it.

Recurring freezes (`cron` + `duration`) use the same Prefect cron semantics as windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any, assert_never
from zoneinfo import ZoneInfo

import structlog

from dualop.catalog import Freeze, OperatingModel, Service, Window, WindowsConfig
from dualop.exceptions import CatalogError, InputError

if TYPE_CHECKING:
    from prefect.server.schemas.schedules import CronSchedule

__all__ = [
    "SEARCH_HORIZON",
    "WindowStatus",
    "freeze_at",
    "freeze_interval_at",
    "next_freeze_start",
    "next_openings",
    "window_open_at",
    "window_status",
]

log = structlog.get_logger(__name__)

SEARCH_HORIZON = timedelta(days=2 * 366)
"""How far ahead `window_status` looks for the next open slot or the next freeze."""

_MAX_STEPS = 1000  # bound on freeze-chaining and freeze-skipping loops (each step progresses)
_PAGE = 1000  # Prefect checks at most 1,000 candidates a call; page past that


# --- the answer -------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowStatus:
    """Whether `service` may release at the `now` it was computed for, and the times around it.

    Datetimes are aware and expressed in the timezone of the window they belong to (or of
    the freeze, for a digital service), so they print with the local offset.
    """

    service: str
    model: OperatingModel
    open: bool
    window: str | None
    """The open window; for a closed service, the window that opens next."""
    opened_at: datetime | None
    """When the open window's occurrence opened (None when closed or digital)."""
    closes_at: datetime | None
    """When releasing stops being allowed (window end or next freeze); None if unbounded."""
    next_open_at: datetime | None
    """For a closed service, the next instant it may release; None if open or none found."""
    frozen_by: str | None
    """The name of the freeze in force at `now`, if any."""

    def time_left(self, now: datetime) -> timedelta | None:
        """`closes_at - now`, floored at zero; None when closed or when nothing closes it."""
        _require_aware(now, "now")
        if not self.open or self.closes_at is None:
            return None
        return max(timedelta(0), _utc(self.closes_at) - _utc(now))

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO-8601 strings with offsets, null where not applicable."""
        return {
            "service": self.service,
            "model": self.model.value,
            "open": self.open,
            "window": self.window,
            "closes_at": _iso(self.closes_at),
            "next_open_at": _iso(self.next_open_at),
            "frozen_by": self.frozen_by,
        }


def window_status(
    service: Service, model: OperatingModel, windows: WindowsConfig, now: datetime
) -> WindowStatus:
    """Is `service` open at `now` under `model`, which window, until when, or when next."""
    _require_aware(now, "now")
    at = _utc(now)
    match model:
        case OperatingModel.DIGITAL:
            status = _digital_status(service.name, windows.freezes, at)
        case OperatingModel.HERITAGE:
            status = _heritage_status(service, windows, at)
        case _:
            assert_never(model)
    log.debug(
        "dualop.windows.status",
        service=service.name,
        model=model.value,
        now=now.isoformat(),
        open=status.open,
        window=status.window,
        frozen_by=status.frozen_by,
    )
    return status


def _digital_status(name: str, freezes: Sequence[Freeze], at: datetime) -> WindowStatus:
    frozen = _freeze_chain(freezes, name, at)
    if frozen is not None:
        freeze, until = frozen
        return WindowStatus(
            service=name,
            model=OperatingModel.DIGITAL,
            open=False,
            window=None,
            opened_at=None,
            closes_at=None,
            next_open_at=until.astimezone(freeze.tz),
            frozen_by=freeze.name,
        )
    upcoming = _next_freeze(freezes, name, at, at + SEARCH_HORIZON)
    return WindowStatus(
        service=name,
        model=OperatingModel.DIGITAL,
        open=True,
        window=None,
        opened_at=None,
        closes_at=upcoming[1].astimezone(upcoming[0].tz) if upcoming else None,
        next_open_at=None,
        frozen_by=None,
    )


def _heritage_status(service: Service, config: WindowsConfig, at: datetime) -> WindowStatus:
    names = service.heritage.windows if service.heritage is not None else []
    missing = [n for n in names if n not in config.windows]
    if missing:
        raise CatalogError(
            f"{service.name}: window(s) {', '.join(map(repr, missing))} are not defined in "
            f"windows.yaml; define them or fix the names in the service's heritage.windows "
            f"(defined: {', '.join(sorted(config.windows)) or 'none'})"
        )
    windows = [(n, config.windows[n]) for n in names]
    frozen = _freeze_chain(config.freezes, service.name, at)
    current = _open_window(windows, at)
    if current is not None and frozen is None:
        name, opened, closes = current
        tz = config.windows[name].tz
        upcoming = _next_freeze(config.freezes, service.name, at, closes)
        if upcoming is not None and upcoming[1] < closes:
            closes = upcoming[1]
        return WindowStatus(
            service=service.name,
            model=OperatingModel.HERITAGE,
            open=True,
            window=name,
            opened_at=opened.astimezone(tz),
            closes_at=closes.astimezone(tz),
            next_open_at=None,
            frozen_by=None,
        )
    nxt = _next_open(windows, config.freezes, service.name, at)
    return WindowStatus(
        service=service.name,
        model=OperatingModel.HERITAGE,
        open=False,
        window=nxt[0] if nxt else None,
        opened_at=None,
        closes_at=None,
        next_open_at=nxt[1].astimezone(config.windows[nxt[0]].tz) if nxt else None,
        frozen_by=frozen[0].name if frozen else None,
    )


def _open_window(
    windows: Sequence[tuple[str, Window]], at: datetime
) -> tuple[str, datetime, datetime] | None:
    """The open window that stays open longest at `at` (ties: the first listed), in UTC."""
    best: tuple[str, datetime, datetime] | None = None
    for name, window in windows:
        occurrence = _occurrence_at(window.cron, window.timezone, window.duration, at)
        if occurrence is not None and (best is None or occurrence[1] > best[2]):
            best = (name, *occurrence)
    return best


def _next_open(
    windows: Sequence[tuple[str, Window]], freezes: Sequence[Freeze], service: str, at: datetime
) -> tuple[str, datetime] | None:
    """First instant >= `at` when a window is open and no freeze applies (UTC), and its window."""
    deadline = at + SEARCH_HORIZON
    t = at
    for _ in range(_MAX_STEPS):
        candidate = _earliest_open(windows, t, deadline)
        if candidate is None:
            return None
        name, start = candidate
        frozen = _freeze_chain(freezes, service, start)
        if frozen is None:
            return name, start
        if frozen[1] <= start or frozen[1] > deadline:  # no progress, or beyond the horizon
            return None
        t = frozen[1]
    log.warning("dualop.windows.search_exhausted", service=service, at=at.isoformat())
    return None


def _earliest_open(
    windows: Sequence[tuple[str, Window]], t: datetime, deadline: datetime
) -> tuple[str, datetime] | None:
    """The first instant >= `t` (up to `deadline`) when one of `windows` is open."""
    current = _open_window(windows, t)
    if current is not None:
        return current[0], t
    best: tuple[str, datetime] | None = None
    for name, window in windows:
        for opening in _openings(window.cron, window.timezone, t, deadline, limit=1):
            if best is None or opening < best[1]:
                best = (name, opening)
    return best


# --- windows ----------------------------------------------------------------------------


def next_openings(window: Window, after: datetime, n: int) -> list[datetime]:
    """The first `n` openings of `window` at or after `after` (Prefect's `start` semantics),
    aware in the window's timezone."""
    _require_aware(after, "after")
    if n < 1:
        raise InputError(f"n={n}: ask for at least one opening (n >= 1)")
    tz = window.tz
    return [o.astimezone(tz) for o in _openings(window.cron, window.timezone, _utc(after), None, n)]


def window_open_at(window: Window, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence of `window` open at `now` as `(opened, closes)` in the window's timezone,
    or None. Open at the opening instant, closed at the closing instant; of overlapping
    occurrences, the one that opened last (it closes last)."""
    _require_aware(now, "now")
    occurrence = _occurrence_at(window.cron, window.timezone, window.duration, _utc(now))
    if occurrence is None:
        return None
    tz = window.tz
    return occurrence[0].astimezone(tz), occurrence[1].astimezone(tz)


def _occurrence_at(
    cron: str, timezone: str, duration: timedelta, at: datetime
) -> tuple[datetime, datetime] | None:
    """The latest opening in `(at - duration, at]` and its end, in UTC."""
    latest: datetime | None = None
    for opening in _openings(cron, timezone, at - duration, at):
        latest = opening
    if latest is None or latest + duration <= at:
        return None
    return latest, latest + duration


# --- freezes ----------------------------------------------------------------------------


def freeze_at(freezes: Sequence[Freeze], service_name: str, now: datetime) -> Freeze | None:
    """The freeze in force for `service_name` at `now` (the one lasting longest), or None."""
    _require_aware(now, "now")
    found = _covering(freezes, service_name, _utc(now))
    return found[0] if found else None


def freeze_interval_at(freeze: Freeze, now: datetime) -> tuple[datetime, datetime] | None:
    """The interval `[start, end)` of `freeze` containing `now`, in the freeze's timezone."""
    _require_aware(now, "now")
    interval = _interval_at(freeze, _utc(now))
    if interval is None:
        return None
    return interval[0].astimezone(freeze.tz), interval[1].astimezone(freeze.tz)


def next_freeze_start(
    freezes: Sequence[Freeze], service_name: str, after: datetime
) -> tuple[Freeze, datetime] | None:
    """The applicable freeze starting first, strictly after `after` (within the search
    horizon), and its start in its own timezone."""
    _require_aware(after, "after")
    at = _utc(after)
    found = _next_freeze(freezes, service_name, at, at + SEARCH_HORIZON)
    return (found[0], found[1].astimezone(found[0].tz)) if found else None


def _interval_at(freeze: Freeze, at: datetime) -> tuple[datetime, datetime] | None:
    if freeze.cron is not None and freeze.duration is not None:
        return _occurrence_at(freeze.cron, freeze.timezone, freeze.duration, at)
    start, end = _one_off(freeze)
    return (start, end) if start <= at < end else None


def _one_off(freeze: Freeze) -> tuple[datetime, datetime]:
    if freeze.start is None or freeze.end is None:  # the model forbids it; keeps mypy sure
        raise CatalogError(f"freeze {freeze.name!r} has neither cron nor start and end; fix it")
    tz = freeze.tz
    return _localise(freeze.start, tz, latest=False), _localise(freeze.end, tz, latest=True)


def _covering(
    freezes: Sequence[Freeze], service: str, at: datetime
) -> tuple[Freeze, datetime] | None:
    """The applicable freeze in force at `at` ending last (ties: first listed), and its end."""
    best: tuple[Freeze, datetime] | None = None
    for freeze in freezes:
        if not freeze.applies_to(service):
            continue
        interval = _interval_at(freeze, at)
        if interval is not None and (best is None or interval[1] > best[1]):
            best = (freeze, interval[1])
    return best


def _freeze_chain(
    freezes: Sequence[Freeze], service: str, at: datetime
) -> tuple[Freeze, datetime] | None:
    """The freeze in force at `at` and when freezing really stops: overlapping and
    back-to-back freezes are followed to the end of the chain (UTC)."""
    first = _covering(freezes, service, at)
    if first is None:
        return None
    end = first[1]
    for _ in range(_MAX_STEPS):
        more = _covering(freezes, service, end)
        if more is None or more[1] <= end or end > at + SEARCH_HORIZON:
            return first[0], end
        end = more[1]
    log.warning("dualop.windows.freeze_chain_exhausted", service=service, at=at.isoformat())
    return first[0], end


def _next_freeze(
    freezes: Sequence[Freeze], service: str, at: datetime, until: datetime
) -> tuple[Freeze, datetime] | None:
    """The applicable freeze starting first in `(at, until]`, and its start (UTC)."""
    best: tuple[Freeze, datetime] | None = None
    for freeze in freezes:
        if not freeze.applies_to(service):
            continue
        if freeze.cron is not None:
            starts = _openings(freeze.cron, freeze.timezone, at, until, limit=2)
            start = next((s for s in starts if s > at), None)
        else:
            one_off_start = _one_off(freeze)[0]
            start = one_off_start if at < one_off_start <= until else None
        if start is not None and (best is None or start < best[1]):
            best = (freeze, start)
    return best


# --- time helpers -----------------------------------------------------------------------


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(
            f"{what}={value.isoformat()} has no UTC offset; give an aware time such as "
            f"{value.isoformat()}+00:00 (or with your local offset)"
        )


def _utc(value: datetime) -> datetime:
    """`value` as a plain stdlib datetime in UTC (Prefect hands out pendulum subclasses,
    whose arithmetic differs; none of them travel further than this)."""
    u = value.astimezone(UTC)
    return datetime(u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond, tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _localise(wall: datetime, tz: ZoneInfo, *, latest: bool) -> datetime:
    """A naive wall time in `tz` as a UTC instant, by the rule in the module docstring:
    in a fold, the first occurrence (or the second if `latest`); in a gap, the instant the
    clocks jump."""
    early = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early == late:
        return early
    if early.astimezone(tz).replace(tzinfo=None) == wall:  # a fold: both instants exist
        return max(early, late) if latest else min(early, late)
    return _transition(min(early, late), max(early, late), tz)


def _transition(before: datetime, after: datetime, tz: tzinfo) -> datetime:
    """The first instant in `(before, after]` (UTC) with `after`'s UTC offset in `tz`."""
    target = after.astimezone(tz).utcoffset()
    lo, hi = before, after  # offset(lo) != target, offset(hi) == target
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi


# --- Prefect's cron engine --------------------------------------------------------------


@lru_cache(maxsize=256)
def _schedule(cron: str, timezone: str) -> CronSchedule:
    from prefect.server.schemas.schedules import CronSchedule

    return CronSchedule(cron=cron, timezone=timezone)


def _openings(
    cron: str, timezone: str, start: datetime, end: datetime | None, limit: int | None = None
) -> Iterator[datetime]:
    """Openings of `cron` in `timezone` in `[start, end]` as UTC stdlib datetimes, in order,
    exactly as Prefect's scheduler computes them; at most `limit` of them."""
    schedule = _schedule(cron, timezone)
    produced = 0
    cursor = start
    while limit is None or produced < limit:
        want = _PAGE if limit is None else min(_PAGE, limit - produced)
        page = [_utc(d) for d in schedule._get_dates_generator(n=want, start=cursor, end=end)]
        yield from page
        produced += len(page)
        if len(page) < want or (end is None and limit is None):
            return
        cursor = page[-1] + timedelta(microseconds=1)
