"""The approval policy: who may approve, self-approval, lapses, deadlines, rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dualop.approvals import Decision, GateStatus, authors_matching, evaluate, gate_status

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DEADLINE = AT + timedelta(hours=48)
DIGEST = "a" * 64
ELIGIBLE = frozenset({"alice", "bob", "carol"})
AUTHORS = [("Dave Jones", "dave@acme.test"), ("Carol Smith", "c.smith@acme.test")]


def decision(
    who: str, what: str = "approve", *, digest: str = DIGEST, at: datetime = AT
) -> Decision:
    return Decision(what, who, "looks fine", digest, at)  # type: ignore[arg-type]


def rule(d: Decision, *, requester: str | None = "erin", already: tuple[str, ...] = ()) -> str:
    ruling = evaluate(
        d,
        eligible=ELIGIBLE,
        requester=requester,
        authors=AUTHORS,
        plan_digest=DIGEST,
        already_approved=already,
        deadline=DEADLINE,
    )
    return ("accepted: " if ruling.accepted else "refused: ") + ruling.reason


class TestEvaluate:
    @pytest.mark.parametrize(
        ("d", "kwargs", "expected"),
        [
            pytest.param(decision("alice"), {}, "accepted: approved by alice", id="approver"),
            pytest.param(
                decision("mallory"), {}, "refused: 'mallory' is not an approver", id="stranger"
            ),
            pytest.param(
                decision("carol"),
                {},
                "refused: self-approval: carol may be the author of Carol Smith",
                id="author-by-name",
            ),
            pytest.param(
                decision("bob"),
                {"requester": "bob"},
                "refused: self-approval: bob requested",
                id="requester",
            ),
            pytest.param(
                decision("alice"),
                {"already": ("alice",)},
                "refused: alice has already approved",
                id="twice",
            ),
            pytest.param(
                decision("alice", digest="b" * 64),
                {},
                "refused: the decision is for plan bbbbbbbbbbbb",
                id="lapsed-plan",
            ),
            pytest.param(
                decision("alice", at=DEADLINE),
                {},
                "refused: the approval deadline",
                id="at-deadline",
            ),
            pytest.param(
                decision("alice", at=DEADLINE - timedelta(microseconds=1)),
                {},
                "accepted",
                id="just-before-deadline",
            ),
            pytest.param(
                decision("carol", "reject"),
                {},
                "accepted: rejected by carol",
                id="author-may-reject",
            ),
            pytest.param(
                decision("mallory", "reject"),
                {},
                "refused: 'mallory' is not an approver",
                id="stranger-cannot-reject",
            ),
            pytest.param(decision("  "), {}, "refused: no approver name", id="blank"),
        ],
    )
    def test_rulings(self, d: Decision, kwargs: dict[str, object], expected: str) -> None:
        """Each policy rule accepts or refuses with a reason that names it."""
        assert rule(d, **kwargs).startswith(expected)  # type: ignore[arg-type]


class TestAuthorsMatching:
    @pytest.mark.parametrize(
        ("handle", "matches"),
        [
            pytest.param("dave", True, id="email-local-part-and-first-name"),
            pytest.param("jones", True, id="surname"),
            pytest.param("dave-jones", True, id="dashed-full-name"),
            pytest.param("c.smith", True, id="email-local-part"),
            pytest.param("DAVE", True, id="case-insensitive"),
            pytest.param("alice", False, id="not-an-author"),
        ],
    )
    def test_handles(self, handle: str, matches: bool) -> None:
        """Handles are matched against authors on the safe side."""
        assert bool(authors_matching(handle, AUTHORS)) is matches


class TestGateStatus:
    def replay(self, *decisions: Decision, required: int = 2) -> GateStatus:
        status, _ = gate_status(
            decisions,
            required=required,
            eligible=ELIGIBLE,
            requester="erin",
            authors=AUTHORS,
            plan_digest=DIGEST,
            deadline=DEADLINE,
        )
        return status

    def test_two_distinct_approvals_pass(self) -> None:
        """Two approvals from two different listed approvers meet required: 2."""
        status = self.replay(decision("alice"), decision("bob"))
        assert status.approved and status.approvals == ("alice", "bob")

    def test_refused_decisions_do_not_count(self) -> None:
        """A self-approval and a duplicate leave the gate waiting, and are listed as refused."""
        status = self.replay(decision("alice"), decision("alice"), decision("carol"))
        assert not status.approved
        assert status.missing == 1
        assert next(r for _, r in status.refused).startswith("alice has already approved")

    def test_any_rejection_ends_the_gate(self) -> None:
        """A rejection after an approval ends it, rejected."""
        status = self.replay(decision("alice"), decision("bob", "reject"), decision("carol"))
        assert not status.approved
        assert status.rejected_by is not None and status.rejected_by.approver == "bob"

    def test_emergency_needs_one_more(self) -> None:
        """required + 1 (emergency) is not met by two approvals."""
        assert not self.replay(decision("alice"), decision("bob"), required=3).approved

    def test_approvals_for_an_old_plan_lapse(self) -> None:
        """Decisions bound to another plan digest do not count for the current one."""
        status = self.replay(decision("alice", digest="b" * 64), decision("bob"))
        assert status.approvals == ("bob",)
