"""Release windows and freezes: exact open/close instants, DST, freezes, digital, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect.server.schemas.schedules import CronSchedule

from dualop.catalog import Freeze, OperatingModel, Service, Window, WindowsConfig
from dualop.exceptions import CatalogError, InputError
from dualop.windows import (
    WindowStatus,
    freeze_at,
    freeze_interval_at,
    next_freeze_start,
    next_openings,
    window_open_at,
    window_status,
)

US = timedelta(microseconds=1)
LONDON = "Europe/London"
NEW_YORK = "America/New_York"
DIGITAL = OperatingModel.DIGITAL
HERITAGE = OperatingModel.HERITAGE


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def prefect_openings(cron: str, timezone: str, start: datetime, n: int) -> list[datetime]:
    """Prefect's own answer, straight from the scheduler's engine, as UTC instants."""
    schedule = CronSchedule(cron=cron, timezone=timezone)
    return [
        datetime.fromtimestamp(0, UTC) + (d - datetime.fromtimestamp(0, UTC))
        for d in schedule._get_dates_generator(n=n, start=start)
    ]  # as plain stdlib datetimes: Prefect hands out pendulum subclasses


def service(name: str = "ledger", windows: list[str] | None = None) -> Service:
    return Service.model_validate(
        {
            "name": name,
            "repo": "https://example.com/ledger.git",
            "owner": "core-banking",
            "runtime": "cobol",
            "heritage": {
                "windows": windows or ["nightly"],
                "approvals": {"required": 1, "approvers": ["alice"]},
                "ops_squad": {"name": "ops", "notify": ["mailto://ops@example.com"]},
            },
        }
    )


def config(windows: dict[str, Any], freezes: list[dict[str, Any]] | None = None) -> WindowsConfig:
    return WindowsConfig.model_validate({"windows": windows, "freezes": freezes or []})


SATURDAY = {"cron": "0 2 * * SAT", "duration": "4h", "timezone": "UTC"}  # 02:00-06:00 UTC
SAT = utc(2026, 6, 6, 2)  # a Saturday opening


class TestWindowOpenAtDst:
    """Windows open and close at exact instants on DST days, exactly where Prefect runs them."""

    CASES = (
        pytest.param(
            "30 1 * * *",
            LONDON,
            utc(2026, 3, 29),
            "2026-03-29T02:30:00+01:00",
            "2026-03-29T03:30:00+01:00",
            id="london-spring-0130-shifted",
        ),
        pytest.param(
            "0 1 * * *",
            LONDON,
            utc(2026, 3, 29),
            "2026-03-29T02:00:00+01:00",
            "2026-03-29T03:00:00+01:00",
            id="london-spring-0100-shifted",
        ),
        pytest.param(
            "0 2 * * *",
            LONDON,
            utc(2026, 3, 29),
            "2026-03-29T02:00:00+01:00",
            "2026-03-29T03:00:00+01:00",
            id="london-spring-0200",
        ),
        pytest.param(
            "30 1 * * *",
            LONDON,
            utc(2026, 10, 25),
            "2026-10-25T01:30:00+01:00",
            "2026-10-25T01:30:00+00:00",
            id="london-fall-0130-first-only",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            utc(2026, 3, 8, 5),
            "2026-03-08T01:30:00-05:00",
            "2026-03-08T03:30:00-04:00",
            id="ny-spring-0130-before-gap",
        ),
        pytest.param(
            "30 2 * * *",
            NEW_YORK,
            utc(2026, 3, 8, 5),
            "2026-03-08T03:30:00-04:00",
            "2026-03-08T04:30:00-04:00",
            id="ny-spring-0230-shifted",
        ),
        pytest.param(
            "30 1 * * *",
            NEW_YORK,
            utc(2026, 11, 1, 4),
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:30:00-05:00",
            id="ny-fall-0130-first-only",
        ),
        pytest.param(
            "0 22 * * *",
            NEW_YORK,
            utc(2026, 11, 1, 4),
            "2026-11-01T22:00:00-05:00",
            "2026-11-01T23:00:00-05:00",
            id="ny-fall-evening",
        ),
    )

    @pytest.mark.parametrize(("cron", "tz", "day", "opens", "closes"), CASES)
    def test_opening_matches_prefect(
        self, cron: str, tz: str, day: datetime, opens: str, closes: str
    ) -> None:
        """The first opening of the day is Prefect's, shown with the window's local offset."""
        window = Window(cron=cron, duration="1h", timezone=tz)
        ours = next_openings(window, day, 3)
        assert [o.astimezone(UTC) for o in ours] == prefect_openings(cron, tz, day, 3)
        assert ours[0].isoformat() == opens

    @pytest.mark.parametrize(("cron", "tz", "day", "opens", "closes"), CASES)
    def test_open_at_open_closed_at_close(
        self, cron: str, tz: str, day: datetime, opens: str, closes: str
    ) -> None:
        """Closed 1µs before the opening, open at it and 1µs before the close, closed at it."""
        window = Window(cron=cron, duration="1h", timezone=tz)
        opening = prefect_openings(cron, tz, day, 1)[0]
        closing = opening + timedelta(hours=1)  # elapsed time, whatever the wall clock does
        assert window_open_at(window, opening - US) is None
        for inside in (opening, opening + timedelta(minutes=30), closing - US):
            got = window_open_at(window, inside)
            assert got is not None
            assert (iso(got[0]), iso(got[1])) == (opens, closes)
        assert window_open_at(window, closing) is None

    @pytest.mark.parametrize(("cron", "tz", "day", "opens", "closes"), CASES)
    def test_status_at_the_edges(
        self, cron: str, tz: str, day: datetime, opens: str, closes: str
    ) -> None:
        """window_status agrees: next_open_at is the opening, closes_at the close."""
        cfg = config({"nightly": {"cron": cron, "duration": "1h", "timezone": tz}})
        opening = prefect_openings(cron, tz, day, 1)[0]
        before = window_status(service(), HERITAGE, cfg, opening - US)
        at_open = window_status(service(), HERITAGE, cfg, opening)
        at_close = window_status(service(), HERITAGE, cfg, opening + timedelta(hours=1))
        assert (before.open, iso(before.next_open_at), before.window) == (False, opens, "nightly")
        assert (at_open.open, iso(at_open.opened_at), iso(at_open.closes_at)) == (
            True,
            opens,
            closes,
        )
        assert at_close.open is False
        assert at_close.next_open_at is not None
        assert (
            at_close.next_open_at.astimezone(UTC) == prefect_openings(cron, tz, opening + US, 1)[0]
        )

    def test_fall_back_repeated_hour_opens_once(self) -> None:
        """On fall-back day a 01:30 window does not reopen at the second 01:30."""
        window = Window(cron="30 1 * * *", duration="30m", timezone=LONDON)
        second_0130 = datetime(2026, 10, 25, 1, 30, tzinfo=ZoneInfo(LONDON), fold=1)
        assert window_open_at(window, second_0130) is None
        assert iso(next_openings(window, second_0130, 1)[0]) == "2026-10-26T01:30:00+00:00"


class TestWindowStatusHeritage:
    """Heritage services: open windows, midnight, next year, several windows."""

    @pytest.mark.parametrize(
        ("now", "open_", "opened_at", "closes_at", "next_open_at"),
        [
            pytest.param(
                utc(2026, 6, 10, 22),
                True,
                "2026-06-10T22:00:00+01:00",
                "2026-06-11T02:00:00+01:00",
                None,
                id="utc-22-is-23-bst",
            ),
            pytest.param(
                utc(2026, 6, 10, 21),
                True,
                "2026-06-10T22:00:00+01:00",
                "2026-06-11T02:00:00+01:00",
                None,
                id="at-open",
            ),
            pytest.param(
                utc(2026, 6, 11, 0, 59, 59, 999999),
                True,
                "2026-06-10T22:00:00+01:00",
                "2026-06-11T02:00:00+01:00",
                None,
                id="after-midnight",
            ),
            pytest.param(
                utc(2026, 6, 11, 1), False, None, None, "2026-06-11T22:00:00+01:00", id="at-close"
            ),
            pytest.param(
                utc(2026, 6, 10, 20, 59, 59, 999999),
                False,
                None,
                None,
                "2026-06-10T22:00:00+01:00",
                id="just-before",
            ),
        ],
    )
    def test_window_crossing_midnight(
        self,
        now: datetime,
        open_: bool,
        opened_at: str | None,
        closes_at: str | None,
        next_open_at: str | None,
    ) -> None:
        """A 22:00 + 4h window stays open past midnight and closes at 02:00 local."""
        cfg = config({"nightly": {"cron": "0 22 * * *", "duration": "4h", "timezone": LONDON}})
        st = window_status(service(), HERITAGE, cfg, now)
        assert (st.open, iso(st.opened_at), iso(st.closes_at), iso(st.next_open_at)) == (
            open_,
            opened_at,
            closes_at,
            next_open_at,
        )
        assert st.window == "nightly"
        assert st.frozen_by is None

    def test_next_slot_next_year(self) -> None:
        """A New Year window seen in June opens next January, in London winter time."""
        cfg = config({"new-year": {"cron": "0 2 1 1 *", "duration": "1h", "timezone": LONDON}})
        st = window_status(service(windows=["new-year"]), HERITAGE, cfg, utc(2026, 6, 1))
        assert (st.open, st.window, iso(st.next_open_at)) == (
            False,
            "new-year",
            "2027-01-01T02:00:00+00:00",
        )
        assert st.next_open_at is not None
        assert (
            st.next_open_at.astimezone(UTC)
            == prefect_openings("0 2 1 1 *", LONDON, utc(2026, 6, 1), 1)[0]
        )

    @pytest.mark.parametrize(
        ("now", "open_", "window", "closes_at", "next_open_at"),
        [
            pytest.param(
                utc(2026, 6, 6, 3),
                True,
                "long",
                "2026-06-06T10:00:00+00:00",
                None,
                id="both-open-longest-wins",
            ),
            pytest.param(
                utc(2026, 6, 6, 1),
                True,
                "short",
                "2026-06-06T04:00:00+00:00",
                None,
                id="only-short-open",
            ),
            pytest.param(
                utc(2026, 6, 6, 0, 30),
                False,
                "short",
                None,
                "2026-06-06T01:00:00+00:00",
                id="closed-names-next-window",
            ),
            pytest.param(
                utc(2026, 6, 6, 11),
                False,
                "short",
                None,
                "2026-06-07T01:00:00+00:00",
                id="closed-after-both",
            ),
        ],
    )
    def test_several_windows(
        self,
        now: datetime,
        open_: bool,
        window: str,
        closes_at: str | None,
        next_open_at: str | None,
    ) -> None:
        """Of several open windows the longest-lasting is reported; closed names the next."""
        cfg = config(
            {
                "short": {"cron": "0 1 * * *", "duration": "3h", "timezone": "UTC"},
                "long": {"cron": "0 2 * * *", "duration": "8h", "timezone": "UTC"},
            }
        )
        st = window_status(service(windows=["short", "long"]), HERITAGE, cfg, now)
        assert (st.open, st.window, iso(st.closes_at), iso(st.next_open_at)) == (
            open_,
            window,
            closes_at,
            next_open_at,
        )

    def test_unknown_window_is_a_catalog_error(self) -> None:
        """A service naming a window windows.yaml lacks is reported with the fix."""
        with pytest.raises(CatalogError, match=r"'weekly'.*not defined in windows.yaml"):
            window_status(service(windows=["weekly"]), HERITAGE, config({}), SAT)


class TestFreezes:
    """A freeze beats a window, wholly or in part; it may name the services it applies to."""

    @pytest.mark.parametrize(
        ("freeze", "now", "open_", "frozen_by", "closes_at", "next_open_at"),
        [
            pytest.param(
                {"start": "2026-06-06T01:00", "end": "2026-06-06T03:00"},
                SAT,
                False,
                "fz",
                None,
                "2026-06-06T03:00:00+00:00",
                id="covers-opening-remainder-opens-at-freeze-end",
            ),
            pytest.param(
                {"start": "2026-06-06T01:00", "end": "2026-06-06T03:00"},
                utc(2026, 6, 6, 3),
                True,
                None,
                "2026-06-06T06:00:00+00:00",
                None,
                id="open-after-partial-freeze",
            ),
            pytest.param(
                {"start": "2026-06-06T01:00", "end": "2026-06-06T03:00"},
                utc(2026, 6, 6, 0),
                False,
                None,
                None,
                "2026-06-06T03:00:00+00:00",
                id="before-window-next-open-skips-freeze",
            ),
            pytest.param(
                {"start": "2026-06-06T04:00", "end": "2026-06-06T08:00"},
                SAT,
                True,
                None,
                "2026-06-06T04:00:00+00:00",
                None,
                id="freeze-later-in-window-cuts-close",
            ),
            pytest.param(
                {"start": "2026-06-06T04:00", "end": "2026-06-06T08:00"},
                utc(2026, 6, 6, 4),
                False,
                "fz",
                None,
                "2026-06-13T02:00:00+00:00",
                id="freeze-to-window-end-next-week",
            ),
            pytest.param(
                {"start": "2026-06-06T00:00", "end": "2026-06-07T00:00"},
                SAT,
                False,
                "fz",
                None,
                "2026-06-13T02:00:00+00:00",
                id="covers-whole-window",
            ),
            pytest.param(
                {"start": "2026-06-06T06:00", "end": "2026-06-07T00:00"},
                SAT,
                True,
                None,
                "2026-06-06T06:00:00+00:00",
                None,
                id="starts-at-window-close",
            ),
            pytest.param(
                {"cron": "0 0 * * SAT", "duration": "3h"},
                SAT,
                False,
                "fz",
                None,
                "2026-06-06T03:00:00+00:00",
                id="recurring-freeze",
            ),
        ],
    )
    def test_freeze_against_saturday_window(
        self,
        freeze: dict[str, Any],
        now: datetime,
        open_: bool,
        frozen_by: str | None,
        closes_at: str | None,
        next_open_at: str | None,
    ) -> None:
        """The 02:00-06:00 Saturday window under freezes overlapping it partly or fully."""
        cfg = config({"nightly": SATURDAY}, [{"name": "fz", **freeze}])
        st = window_status(service(), HERITAGE, cfg, now)
        assert (st.open, st.frozen_by, iso(st.closes_at), iso(st.next_open_at)) == (
            open_,
            frozen_by,
            closes_at,
            next_open_at,
        )

    def test_freeze_names_one_service_only(self) -> None:
        """A freeze listing `ledger` closes ledger and leaves billing open at the same instant."""
        cfg = config(
            {"nightly": SATURDAY},
            [
                {
                    "name": "audit",
                    "start": "2026-06-06T00:00",
                    "end": "2026-06-07T00:00",
                    "services": ["ledger"],
                }
            ],
        )
        ledger = window_status(service("ledger"), HERITAGE, cfg, SAT)
        billing = window_status(service("billing"), HERITAGE, cfg, SAT)
        assert (ledger.open, ledger.frozen_by) == (False, "audit")
        assert (billing.open, billing.frozen_by) == (True, None)
        assert freeze_at(cfg.freezes, "billing", SAT) is None
        found = freeze_at(cfg.freezes, "ledger", SAT)
        assert found is not None and found.name == "audit"

    @pytest.mark.parametrize(
        ("start", "end", "starts", "ends"),
        [
            pytest.param(
                "2026-03-29T01:30",
                "2026-03-29T04:00",
                "2026-03-29T02:00:00+01:00",
                "2026-03-29T04:00:00+01:00",
                id="start-in-spring-gap-is-the-jump",
            ),
            pytest.param(
                "2026-03-28T22:00",
                "2026-03-29T01:30",
                "2026-03-28T22:00:00+00:00",
                "2026-03-29T02:00:00+01:00",
                id="end-in-spring-gap-is-the-jump",
            ),
            pytest.param(
                "2026-10-25T01:30",
                "2026-10-25T04:00",
                "2026-10-25T01:30:00+01:00",
                "2026-10-25T04:00:00+00:00",
                id="start-in-fold-is-first",
            ),
            pytest.param(
                "2026-10-24T22:00",
                "2026-10-25T01:30",
                "2026-10-24T22:00:00+01:00",
                "2026-10-25T01:30:00+00:00",
                id="end-in-fold-is-second",
            ),
        ],
    )
    def test_one_off_wall_times_in_gap_and_fold(
        self, start: str, end: str, starts: str, ends: str
    ) -> None:
        """Wall times that never happen or happen twice resolve towards *frozen* (documented)."""
        freeze = Freeze.model_validate(
            {"name": "fz", "start": start, "end": end, "timezone": LONDON}
        )
        inside = datetime.fromisoformat(starts)
        got = freeze_interval_at(freeze, inside)
        assert got is not None
        assert (iso(got[0]), iso(got[1])) == (starts, ends)
        assert freeze_interval_at(freeze, inside - US) is None
        assert freeze_interval_at(freeze, datetime.fromisoformat(ends)) is None

    def test_next_freeze_start(self) -> None:
        """The next applicable freeze is found, in its own timezone; others are ignored."""
        freezes = [
            Freeze.model_validate(
                {"name": "xmas", "cron": "0 0 24 12 *", "duration": "2d", "timezone": LONDON}
            ),
            Freeze.model_validate(
                {
                    "name": "other",
                    "start": "2026-07-01T00:00",
                    "end": "2026-07-02T00:00",
                    "services": ["billing"],
                }
            ),
        ]
        got = next_freeze_start(freezes, "ledger", utc(2026, 6, 1))
        assert got is not None
        assert (got[0].name, iso(got[1])) == ("xmas", "2026-12-24T00:00:00+00:00")


class TestDigital:
    """A digital service is always open unless a freeze applies to it now."""

    @pytest.mark.parametrize(
        ("freezes", "now", "open_", "frozen_by", "closes_at", "next_open_at"),
        [
            pytest.param([], SAT, True, None, None, None, id="no-freeze-always-open"),
            pytest.param(
                [
                    {
                        "name": "fz",
                        "start": "2026-06-06T00:00",
                        "end": "2026-06-06T12:00",
                        "services": ["billing"],
                    }
                ],
                SAT,
                True,
                None,
                None,
                None,
                id="freeze-for-another-service",
            ),
            pytest.param(
                [
                    {
                        "name": "fz",
                        "start": "2026-06-07T00:00",
                        "end": "2026-06-08T00:00",
                        "timezone": LONDON,
                    }
                ],
                SAT,
                True,
                None,
                "2026-06-07T00:00:00+01:00",
                None,
                id="open-until-next-freeze",
            ),
            pytest.param(
                [{"name": "fz", "start": "2026-06-06T00:00", "end": "2026-06-06T12:00"}],
                SAT,
                False,
                "fz",
                None,
                "2026-06-06T12:00:00+00:00",
                id="under-freeze",
            ),
            pytest.param(
                [{"name": "fz", "start": "2026-06-06T00:00", "end": "2026-06-06T12:00"}],
                utc(2026, 6, 6, 12),
                True,
                None,
                None,
                None,
                id="open-at-freeze-end",
            ),
            pytest.param(
                [
                    {"name": "fa", "start": "2026-06-06T00:00", "end": "2026-06-06T12:00"},
                    {"name": "fb", "start": "2026-06-06T12:00", "end": "2026-06-07T00:00"},
                    {"name": "fc", "start": "2026-06-06T20:00", "end": "2026-06-08T00:00"},
                ],
                SAT,
                False,
                "fa",
                None,
                "2026-06-08T00:00:00+00:00",
                id="chained-freezes",
            ),
            pytest.param(
                [{"name": "weekly", "cron": "0 0 * * SAT", "duration": "3h"}],
                SAT,
                False,
                "weekly",
                None,
                "2026-06-06T03:00:00+00:00",
                id="recurring-freeze",
            ),
        ],
    )
    def test_digital(
        self,
        freezes: list[dict[str, Any]],
        now: datetime,
        open_: bool,
        frozen_by: str | None,
        closes_at: str | None,
        next_open_at: str | None,
    ) -> None:
        """Open unless frozen; frozen reopens at the end of the freeze chain."""
        st = window_status(service("ledger"), DIGITAL, config({}, freezes), now)
        assert (st.open, st.frozen_by, iso(st.closes_at), iso(st.next_open_at), st.window) == (
            open_,
            frozen_by,
            closes_at,
            next_open_at,
            None,
        )


class TestRunInFlight:
    """A run started in a window sees its time left shrink to zero at the close."""

    @pytest.mark.parametrize(
        ("later", "left"),
        [
            pytest.param(timedelta(0), timedelta(hours=4), id="at-open"),
            pytest.param(
                timedelta(hours=3, minutes=59), timedelta(minutes=1), id="one-minute-left"
            ),
            pytest.param(timedelta(hours=4) - US, US, id="last-microsecond"),
            pytest.param(timedelta(hours=4), timedelta(0), id="at-close"),
            pytest.param(timedelta(hours=5), timedelta(0), id="after-close-floored"),
        ],
    )
    def test_time_left(self, later: timedelta, left: timedelta) -> None:
        """time_left(now) is measured from the status taken at the start of the run."""
        st = window_status(service(), HERITAGE, config({"nightly": SATURDAY}), SAT)
        assert st.time_left(SAT + later) == left
        assert window_status(
            service(), HERITAGE, config({"nightly": SATURDAY}), SAT + later
        ).open is (later < timedelta(hours=4))

    def test_time_left_across_fall_back_is_elapsed(self) -> None:
        """A 00:30 + 2h London window on fall-back day lasts two real hours."""
        cfg = config({"nightly": {"cron": "30 0 * * *", "duration": "2h", "timezone": LONDON}})
        start = utc(2026, 10, 24, 23, 30)  # 00:30 BST
        st = window_status(service(), HERITAGE, cfg, start)
        assert iso(st.closes_at) == "2026-10-25T01:30:00+00:00"
        assert st.time_left(start) == timedelta(hours=2)

    def test_closed_has_no_time_left(self) -> None:
        """A closed status has no time left."""
        st = window_status(service(), HERITAGE, config({"nightly": SATURDAY}), SAT - US)
        assert st.time_left(SAT) is None


class TestJson:
    """The JSON shape the CLI prints."""

    def test_shape_and_offsets(self) -> None:
        """Keys are fixed; instants are ISO-8601 with the window's offset; nulls where n/a."""
        cfg = config({"nightly": {"cron": "0 22 * * *", "duration": "4h", "timezone": LONDON}})
        open_ = window_status(service(), HERITAGE, cfg, utc(2026, 6, 10, 21, 30)).to_json_dict()
        closed = window_status(service(), HERITAGE, cfg, utc(2026, 12, 10, 12)).to_json_dict()
        assert json.loads(json.dumps(open_)) == {
            "service": "ledger",
            "model": "heritage",
            "open": True,
            "window": "nightly",
            "closes_at": "2026-06-11T02:00:00+01:00",
            "next_open_at": None,
            "frozen_by": None,
        }
        assert closed == {
            "service": "ledger",
            "model": "heritage",
            "open": False,
            "window": "nightly",
            "closes_at": None,
            "next_open_at": "2026-12-10T22:00:00+00:00",
            "frozen_by": None,
        }

    def test_status_is_frozen(self) -> None:
        """WindowStatus is immutable."""
        st = window_status(service(), DIGITAL, config({}), SAT)
        assert isinstance(st, WindowStatus)
        with pytest.raises(AttributeError):
            st.open = False  # type: ignore[misc]


class TestNaiveNow:
    """A time without an offset is refused with the fix."""

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(
                lambda t: window_status(service(), HERITAGE, config({"nightly": SATURDAY}), t),
                id="window_status",
            ),
            pytest.param(
                lambda t: window_open_at(Window.model_validate(SATURDAY), t), id="window_open_at"
            ),
            pytest.param(
                lambda t: next_openings(Window.model_validate(SATURDAY), t, 1), id="next_openings"
            ),
            pytest.param(lambda t: freeze_at([], "ledger", t), id="freeze_at"),
        ],
    )
    def test_naive_refused(self, call: Any) -> None:
        """Naive datetimes raise InputError telling to give an offset."""
        with pytest.raises(InputError, match="no UTC offset; give an aware time"):
            call(datetime(2026, 6, 6, 2))
