"""dualop.git on real repositories: tags, history, refs, tagging, checkouts, fetches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dualop.exceptions import GitError, UnsafeRefError
from dualop.git import GitRepo, parse_release_version
from dualop.testing import RepoBuilder

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def origin(tmp_path: Path) -> RepoBuilder:
    repo = RepoBuilder.init(tmp_path / "origin")
    for i in range(3):
        repo.commit(f"fix: change {i}", when=T0 + timedelta(days=i), author="Ada Lovelace")
    return repo


def cache(origin: RepoBuilder, tmp_path: Path) -> GitRepo:
    return GitRepo.clone_or_fetch(str(origin.path), tmp_path / "ws" / "repo.git")


class TestReleaseVersions:
    @pytest.mark.parametrize(
        ("tag", "expected"),
        [
            pytest.param("v1.2.3", "1.2.3", id="v-prefix"),
            pytest.param("1.2.3", "1.2.3", id="bare"),
            pytest.param("svc/v1.2.3", "1.2.3", id="service-prefix"),
            pytest.param("svc/1.2.3", "1.2.3", id="service-prefix-bare"),
            pytest.param("other/v1.2.3", None, id="other-service"),
            pytest.param("1.2.0rc1", None, id="pep440-prerelease"),
            pytest.param("v2.0.0-beta.1", None, id="semver-prerelease"),
            pytest.param("v1.2.3+build.5", None, id="build-metadata"),
            pytest.param("v1.2", None, id="two-parts"),
            pytest.param("release-1", None, id="not-a-version"),
        ],
    )
    def test_forms(self, tag: str, expected: str | None) -> None:
        """The forms real projects use are releases; pre-releases are not."""
        version = parse_release_version(tag, "svc")
        assert (str(version) if version else None) == expected

    def test_tag_pattern_overrides_the_forms(self) -> None:
        """A service's tag_pattern replaces the default forms."""
        pattern = r"^release-(?P<version>\d+\.\d+\.\d+)$"
        assert str(parse_release_version("release-4.5.6", "svc", pattern)) == "4.5.6"
        assert parse_release_version("v4.5.6", "svc", pattern) is None


class TestGitRepo:
    def test_release_tags_sorted_by_version_with_dates(
        self, origin: RepoBuilder, tmp_path: Path
    ) -> None:
        """Annotated and lightweight tags are read in one call, sorted by version."""
        origin.tag("svc/v1.10.0", when=T0 + timedelta(days=3))
        origin.git("tag", "v1.9.0", "HEAD~1")
        origin.tag("v2.0.0-rc.1", when=T0)
        repo = cache(origin, tmp_path)
        tags = repo.release_tags("svc")
        assert [t.name for t in tags] == ["v1.9.0", "svc/v1.10.0"]
        assert tags[1].tagged_at == T0 + timedelta(days=3)
        assert tags[0].tagged_at == T0 + timedelta(days=1)  # lightweight: the commit's date
        assert tags[1].sha == origin.head()

    def test_commits_since_the_last_release(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """Only the commits after the last reachable release tag."""
        origin.tag("svc/v0.1.0", when=T0 + timedelta(days=3))
        new = origin.commit("feat: new thing\n\nBREAKING CHANGE: api", when=T0 + timedelta(days=4))
        repo = cache(origin, tmp_path)
        last = repo.last_release("svc", reachable_from="main")
        assert last is not None and str(last.version) == "0.1.0"
        commits = repo.commits_between(last.sha, "main")
        assert [c.sha for c in commits] == [new]
        assert commits[0].subject == "feat: new thing"
        assert "BREAKING CHANGE" in commits[0].message

    def test_history_within_a_period(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """history() keeps commits committed inside [since, until]."""
        repo = cache(origin, tmp_path)
        got = repo.history(
            "main", since=T0 + timedelta(hours=12), until=T0 + timedelta(days=1, hours=1)
        )
        assert [c.subject for c in got] == ["fix: change 1"]
        assert got[0].author_name == "Ada Lovelace"

    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param("main;rm -rf /", id="shell"),
            pytest.param("../x", id="dotdot"),
            pytest.param("-x", id="option"),
            pytest.param("a b", id="space"),
            pytest.param("", id="empty"),
            pytest.param("refs/heads/.hidden", id="dot-component"),
        ],
    )
    def test_unsafe_refs_are_refused(self, origin: RepoBuilder, tmp_path: Path, ref: str) -> None:
        """A ref that could be an injection or a path escape never reaches git."""
        repo = cache(origin, tmp_path)
        with pytest.raises(UnsafeRefError, match="refusing git ref"):
            repo.resolve(ref)

    def test_unknown_ref_says_so(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A well-formed ref that does not exist is a GitError naming it."""
        with pytest.raises(GitError, match="'nope' is not a branch, tag or commit"):
            cache(origin, tmp_path).resolve("nope")

    def test_create_and_push_tag(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """An annotated tag made in the cache reaches the origin; re-tagging is a no-op."""
        repo = cache(origin, tmp_path)
        head = repo.resolve("main")
        repo.create_tag("svc/v0.1.0", head, "svc 0.1.0")
        repo.create_tag("svc/v0.1.0", head, "svc 0.1.0")
        repo.push_tag("svc/v0.1.0")
        assert origin.git("rev-parse", "svc/v0.1.0^{commit}") == head
        assert origin.git("cat-file", "-t", "svc/v0.1.0") == "tag"
        with pytest.raises(GitError, match="already exists"):
            repo.create_tag("svc/v0.1.0", origin.git("rev-parse", "HEAD~1"), "moved")

    def test_checkout_of_an_exact_commit(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """checkout() makes a clean tree of exactly that commit."""
        repo = cache(origin, tmp_path)
        old = origin.git("rev-parse", "HEAD~2")
        tree = repo.checkout(old, tmp_path / "tree")
        assert (tree / "CHANGES").read_text() == "fix: change 0\n"
        with pytest.raises(GitError, match="already exists"):
            repo.checkout(old, tmp_path / "tree")

    def test_fetch_sees_a_moved_branch(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A second clone_or_fetch brings new commits and tags."""
        repo = cache(origin, tmp_path)
        before = repo.resolve("main")
        new = origin.commit("fix: later", when=T0 + timedelta(days=9))
        origin.tag("svc/v0.2.0", when=T0 + timedelta(days=9))
        repo = cache(origin, tmp_path)
        assert repo.resolve("main") == new != before
        assert repo.is_ancestor(before, new) and not repo.is_ancestor(new, before)
        assert [t.name for t in repo.release_tags("svc")] == ["svc/v0.2.0"]

    def test_unreachable_remote_is_a_clear_error(self, tmp_path: Path) -> None:
        """A remote that cannot be fetched names the repo (without credentials) and the fix."""
        url = "https://user:s3cret@127.0.0.1:9/nope.git"
        with pytest.raises(GitError) as excinfo:
            GitRepo.clone_or_fetch(url, tmp_path / "ws" / "repo.git")
        message = str(excinfo.value)
        assert "cannot fetch https://user:***@127.0.0.1:9/nope.git" in message
        assert "s3cret" not in message
        assert not (tmp_path / "ws" / "repo.git").exists()
