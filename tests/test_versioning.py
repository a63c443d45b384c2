"""The next release version from conventional commits."""

from __future__ import annotations

import pytest
import semver

from dualop.versioning import next_version


class TestNextVersion:
    def test_first_release(self) -> None:
        """Without an earlier release the first version is 0.1.0, whatever the commits."""
        assert next_version(None, ["feat!: everything"]) == (
            semver.Version(0, 1, 0),
            "first release: 0.1.0",
        )

    @pytest.mark.parametrize(
        ("previous", "messages", "expected"),
        [
            pytest.param("1.2.3", ["fix: a bug"], "1.2.4", id="fix-patch"),
            pytest.param("1.2.3", ["docs: readme", "chore: deps"], "1.2.4", id="other-patch"),
            pytest.param("1.2.3", [], "1.2.4", id="nothing-patch"),
            pytest.param("1.2.3", ["fix: a", "feat: b"], "1.3.0", id="feat-minor"),
            pytest.param("1.2.3", ["feat(api): b"], "1.3.0", id="scoped-feat-minor"),
            pytest.param("1.2.3", ["features: no"], "1.2.4", id="not-quite-feat"),
            pytest.param("1.2.3", ["fix: a\n\nfeat: in the body"], "1.2.4", id="feat-in-body"),
            pytest.param("1.2.3", ["feat!: drop v1 api"], "2.0.0", id="bang-major"),
            pytest.param("1.2.3", ["fix(db)!: new schema"], "2.0.0", id="scoped-bang-major"),
            pytest.param(
                "1.2.3", ["refactor: x\n\nBREAKING CHANGE: config renamed"], "2.0.0", id="footer"
            ),
            pytest.param(
                "1.2.3",
                ["refactor: x\n\nBREAKING-CHANGE: config renamed"],
                "2.0.0",
                id="footer-dash",
            ),
            pytest.param(
                "1.2.3",
                ["fix: x\n\nmentions a BREAKING CHANGE: inline"],
                "1.2.4",
                id="not-a-footer",
            ),
            pytest.param("0.4.1", ["feat!: drop v1 api"], "0.5.0", id="breaking-while-0x-minor"),
            pytest.param("0.4.1", ["feat: b"], "0.5.0", id="feat-while-0x"),
            pytest.param("0.4.1", ["fix: a"], "0.4.2", id="fix-while-0x"),
        ],
    )
    def test_bump(self, previous: str, messages: list[str], expected: str) -> None:
        """Breaking → major (minor while 0.x), feat → minor, anything else → patch."""
        version, _ = next_version(semver.Version.parse(previous), messages)
        assert str(version) == expected

    @pytest.mark.parametrize(
        ("previous", "messages", "reason"),
        [
            pytest.param("1.0.0", ["fix: a"], "patch: fixes and other changes only", id="patch"),
            pytest.param(
                "1.0.0",
                ["feat: b\n\nmore", "feat: c"],
                "minor: 2 feature(s) ('feat: b')",
                id="minor",
            ),
            pytest.param(
                "1.0.0",
                ["feat!: drop\n\nwhy"],
                "major: breaking change ('feat!: drop')",
                id="major",
            ),
            pytest.param(
                "0.3.0",
                ["feat!: drop"],
                "minor: breaking change while 0.x ('feat!: drop')",
                id="major-while-0x",
            ),
        ],
    )
    def test_reason_names_the_commit(self, previous: str, messages: list[str], reason: str) -> None:
        """The reason (for the release notes) says the bump and the commit that caused it."""
        assert next_version(semver.Version.parse(previous), messages)[1] == reason
