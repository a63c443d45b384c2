"""dualop.git on real repositories: tags, history, refs, tagging, checkouts, fetches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dualop.exceptions import GitError, UnsafeRefError
from dualop.git import GitRepo, parse_release_version, shown_url
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
            pytest.param("v10.20.30", "10.20.30", id="multi-digit"),
            pytest.param("other/v1.2.3", None, id="other-service"),
            pytest.param("1.2.0rc1", None, id="pep440-prerelease"),
            pytest.param("v2.0.0-beta.1", None, id="semver-prerelease"),
            pytest.param("svc/v2.0.0-rc.1", None, id="service-prerelease"),
            pytest.param("v1.2.3+build.5", None, id="build-metadata"),
            pytest.param("v1.2", None, id="two-parts"),
            pytest.param("release-1", None, id="not-a-version"),
            pytest.param("vv1.2.3", None, id="double-v"),
        ],
    )
    def test_forms(self, tag: str, expected: str | None) -> None:
        """The forms real projects use are releases; pre-releases are not."""
        version = parse_release_version(tag, "svc")
        assert (str(version) if version else None) == expected

    @pytest.mark.parametrize(
        ("tag", "expected"),
        [
            pytest.param("release-4.5.6", "4.5.6", id="matches"),
            pytest.param("v4.5.6", None, id="default-form-no-longer-counts"),
            pytest.param("release-4.5.6-rc1", None, id="no-match"),
        ],
    )
    def test_tag_pattern_overrides_the_forms(self, tag: str, expected: str | None) -> None:
        """A service's tag_pattern replaces the default forms."""
        version = parse_release_version(tag, "svc", r"^release-(?P<version>\d+\.\d+\.\d+)$")
        assert (str(version) if version else None) == expected

    def test_a_pattern_capturing_a_prerelease_is_still_not_a_release(self) -> None:
        """Whatever the pattern captures, a semver pre-release is not a release."""
        assert parse_release_version("r-1.0.0-rc.1", "svc", r"r-(?P<version>.+)") is None


class TestShownUrl:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            pytest.param(
                "https://user:s3cret@host/x.git", "https://user:***@host/x.git", id="password"
            ),
            pytest.param("https://ghp_s3cret@host/x.git", "https://***@host/x.git", id="token"),
            pytest.param("ssh://git@host/x.git", "ssh://git@host/x.git", id="ssh-user-kept"),
            pytest.param("/srv/git/x", "/srv/git/x", id="path"),
            pytest.param(
                "fatal: unable to access 'https://a:s3cret@h/x/'",
                "fatal: unable to access 'https://a:***@h/x/'",
                id="inside-text",
            ),
        ],
    )
    def test_credentials_are_masked(self, url: str, shown: str) -> None:
        """Credentials in URLs never reach a message."""
        assert shown_url(url) == shown


class TestCacheClone:
    def test_clone_from_a_file_url(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """file:// URLs work like paths; the cache is bare and mirrors the branches."""
        repo = GitRepo.clone_or_fetch(f"file://{origin.path}", tmp_path / "ws" / "repo.git")
        assert repo.resolve("main") == origin.head()
        assert repo.raw().bare

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

    def test_fetch_prunes_deleted_branches_and_tags(
        self, origin: RepoBuilder, tmp_path: Path
    ) -> None:
        """A branch or tag deleted on the remote is gone from the cache after a fetch."""
        origin.git("branch", "old-feature")
        origin.tag("v0.9.0")
        repo = cache(origin, tmp_path)
        assert repo.resolve("old-feature") and repo.release_tags("svc")
        origin.git("branch", "-D", "old-feature")
        origin.git("tag", "-d", "v0.9.0")
        repo = cache(origin, tmp_path)
        assert repo.release_tags("svc") == []
        with pytest.raises(GitError, match="'old-feature' is not a branch"):
            repo.resolve("old-feature")

    def test_fetch_follows_a_changed_url(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """When the catalog's repo moves, the cache fetches from the new place."""
        cache(origin, tmp_path)
        moved = RepoBuilder.init(tmp_path / "moved")
        sha = moved.commit("fix: elsewhere", when=T0)
        repo = GitRepo.clone_or_fetch(str(moved.path), tmp_path / "ws" / "repo.git")
        assert repo.resolve("main") == sha

    def test_unreachable_remote_is_a_clear_error(self, tmp_path: Path) -> None:
        """A remote that cannot be fetched names the repo (without credentials) and the fix."""
        url = "https://user:s3cret@127.0.0.1:9/nope.git"
        with pytest.raises(GitError) as excinfo:
            GitRepo.clone_or_fetch(url, tmp_path / "ws" / "repo.git")
        message = str(excinfo.value)
        assert "cannot fetch https://user:***@127.0.0.1:9/nope.git" in message
        assert "check that the repository exists" in message
        assert "s3cret" not in message and excinfo.value.__cause__ is None
        assert not (tmp_path / "ws" / "repo.git").exists()
        assert not (tmp_path / "ws" / "repo.git.partial").exists()

    def test_missing_local_repo_is_a_clear_error(self, tmp_path: Path) -> None:
        """A local path that is not a repository fails with the path named."""
        with pytest.raises(GitError, match=r"cannot fetch .*/nowhere"):
            GitRepo.clone_or_fetch(str(tmp_path / "nowhere"), tmp_path / "ws" / "repo.git")

    @pytest.mark.parametrize(
        "url",
        [pytest.param("--upload-pack=touch /tmp/x", id="option"), pytest.param("", id="empty")],
    )
    def test_option_like_url_is_refused(self, tmp_path: Path, url: str) -> None:
        """A repo that git would read as an option never reaches git."""
        with pytest.raises(GitError, match="refusing repository"):
            GitRepo.clone_or_fetch(url, tmp_path / "ws" / "repo.git")

    def test_a_foreign_folder_is_not_overwritten(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A non-empty folder that is not a cache clone is left alone, with a fix."""
        dest = tmp_path / "ws" / "repo.git"
        dest.mkdir(parents=True)
        (dest / "notes.txt").write_text("mine")
        with pytest.raises(GitError, match="not a dualop cache clone; remove the folder"):
            GitRepo.clone_or_fetch(str(origin.path), dest)
        assert (dest / "notes.txt").read_text() == "mine"

    def test_open_a_non_repository(self, tmp_path: Path) -> None:
        """GitRepo.open on a plain folder is a GitError naming it."""
        with pytest.raises(GitError, match="is not a git repository"):
            GitRepo.open(tmp_path)


class TestRefs:
    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param("main;rm -rf /", id="shell"),
            pytest.param("../x", id="dotdot"),
            pytest.param("-x", id="option"),
            pytest.param("a b", id="space"),
            pytest.param("", id="empty"),
            pytest.param("refs/heads/.hidden", id="dot-component"),
            pytest.param("main@{1}", id="reflog-syntax"),
        ],
    )
    def test_unsafe_refs_are_refused(self, origin: RepoBuilder, tmp_path: Path, ref: str) -> None:
        """A ref that could be an injection or a path escape never reaches git."""
        repo = cache(origin, tmp_path)
        with pytest.raises(UnsafeRefError, match="refusing git ref"):
            repo.resolve(ref)

    def test_branch_tag_and_shas_resolve(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A branch, an annotated tag, a full and a short sha give the full commit sha."""
        origin.tag("v1.0.0")
        repo = cache(origin, tmp_path)
        head = origin.head()
        assert {repo.resolve(r) for r in ("main", "v1.0.0", head, head[:8])} == {head}

    def test_unknown_ref_says_so(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A well-formed ref that does not exist is a GitError naming it."""
        with pytest.raises(GitError, match="'nope' is not a branch, tag or commit"):
            cache(origin, tmp_path).resolve("nope")


class TestReleaseTags:
    def test_sorted_by_version_with_dates(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """Annotated and lightweight tags are read in one call, sorted by version."""
        origin.tag("svc/v1.10.0", when=T0 + timedelta(days=3))
        origin.git("tag", "v1.9.0", "HEAD~1")
        origin.tag("v2.0.0-rc.1", when=T0)
        origin.tag("other/v5.0.0", when=T0)
        repo = cache(origin, tmp_path)
        tags = repo.release_tags("svc")
        assert [t.name for t in tags] == ["v1.9.0", "svc/v1.10.0"]
        assert tags[1].tagged_at == T0 + timedelta(days=3)  # annotated: the tagger date
        assert tags[0].tagged_at == T0 + timedelta(days=1)  # lightweight: the commit's date
        assert tags[1].sha == origin.head()  # peeled: the commit, not the tag object
        assert tags[0].sha == origin.git("rev-parse", "HEAD~1")

    def test_same_version_prefers_the_service_form(
        self, origin: RepoBuilder, tmp_path: Path
    ) -> None:
        """With `v1.0.0` and `svc/v1.0.0`, the last release is dualop's own tag."""
        origin.tag("v1.0.0", when=T0)
        origin.tag("svc/v1.0.0", when=T0)
        last = cache(origin, tmp_path).last_release("svc")
        assert last is not None and last.name == "svc/v1.0.0"

    def test_tag_pattern_on_a_repository(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A tag_pattern selects the service's own tag scheme."""
        origin.tag("release-3.0.0", when=T0)
        origin.tag("v9.0.0", when=T0)
        repo = cache(origin, tmp_path)
        tags = repo.release_tags("svc", r"release-(?P<version>\d+\.\d+\.\d+)")
        assert [t.name for t in tags] == ["release-3.0.0"]

    def test_last_release_reachable_from_a_commit(
        self, origin: RepoBuilder, tmp_path: Path
    ) -> None:
        """A higher release on another branch is not the last release of this line."""
        base = origin.head()
        origin.tag("v1.0.0", ref="HEAD~1")
        origin.switch("next", create=True)
        origin.commit("feat: next", when=T0 + timedelta(days=5))
        origin.tag("v2.0.0")
        origin.switch("main")
        repo = cache(origin, tmp_path)
        assert str(repo.last_release("svc").version) == "2.0.0"  # type: ignore[union-attr]
        last = repo.last_release("svc", reachable_from=base)
        assert last is not None and str(last.version) == "1.0.0"

    def test_no_tags(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A repository without tags has no last release."""
        assert cache(origin, tmp_path).last_release("svc") is None


class TestHistory:
    def test_commits_since_the_last_release(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """Only the commits after the last reachable release tag, with their messages."""
        origin.tag("svc/v0.1.0", when=T0 + timedelta(days=3))
        new = origin.commit("feat: new thing\n\nBREAKING CHANGE: api", when=T0 + timedelta(days=4))
        repo = cache(origin, tmp_path)
        last = repo.last_release("svc", reachable_from="main")
        assert last is not None and str(last.version) == "0.1.0"
        commits = repo.commits_between(last.sha, "main")
        assert [c.sha for c in commits] == [new]
        assert commits[0].subject == "feat: new thing"
        assert commits[0].message == "feat: new thing\n\nBREAKING CHANGE: api"
        assert commits[0].committed_at == T0 + timedelta(days=4)

    def test_all_commits_without_a_release(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """since=None lists the whole history, newest first."""
        commits = cache(origin, tmp_path).commits_between(None, "main")
        assert [c.subject for c in commits] == ["fix: change 2", "fix: change 1", "fix: change 0"]
        assert commits[-1].parents == () and commits[0].parents == (commits[1].sha,)

    def test_unsafe_since_is_refused(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """The lower bound is validated like any ref."""
        with pytest.raises(UnsafeRefError):
            cache(origin, tmp_path).commits_between("--all", "main")

    def test_history_within_a_period(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """history() keeps commits committed inside [since, until], bounds included."""
        repo = cache(origin, tmp_path)
        got = repo.history("main", since=T0 + timedelta(days=1), until=T0 + timedelta(days=1))
        assert [c.subject for c in got] == ["fix: change 1"]
        assert got[0].author_name == "Ada Lovelace"
        assert got[0].author_email == "ada.lovelace@example.test"

    def test_odd_messages_survive_the_format(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """Subjects with separators-looking text, unicode and multi-line bodies parse intact."""
        message = 'fix: «naïve» | ; "quoted" %s %H\n\nbody line 1\n\nbody line 2\n'
        origin.commit(message, when=T0 + timedelta(days=5), author="Zoë Ölçer")
        [commit] = cache(origin, tmp_path).commits_between(
            origin.git("rev-parse", "HEAD~1"), "main"
        )
        assert commit.subject == 'fix: «naïve» | ; "quoted" %s %H'
        assert commit.body == "body line 1\n\nbody line 2"
        assert commit.author_name == "Zoë Ölçer"

    def test_merges_are_marked(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """A merge commit has two parents and is_merge; both sides are in the history."""
        origin.switch("feature", create=True)
        side = origin.commit("feat: side", when=T0 + timedelta(days=5))
        origin.switch("main")
        origin.commit("fix: main", when=T0 + timedelta(days=6))
        merge = origin.merge("feature", when=T0 + timedelta(days=7))
        commits = cache(origin, tmp_path).commits_between(None, "main")
        by_sha = {c.sha: c for c in commits}
        assert by_sha[merge].is_merge and len(by_sha[merge].parents) == 2
        assert side in by_sha and not by_sha[side].is_merge

    def test_history_off_branch(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """Commits reachable from a tip but not from the branch, within the period."""
        origin.switch("maint", create=True)
        fix = origin.commit("fix: on maint", when=T0 + timedelta(days=4))
        origin.switch("main")
        repo = cache(origin, tmp_path)
        period = {"since": T0, "until": T0 + timedelta(days=10)}
        assert [c.sha for c in repo.history_off_branch([fix], "main", **period)] == [fix]
        assert repo.history_off_branch([], "main", **period) == []

    def test_diff_stat(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """From a base, the changes since; without one, everything in the tree."""
        origin.commit("feat: app", files={"app.py": "x = 1\n"}, when=T0 + timedelta(days=4))
        repo = cache(origin, tmp_path)
        since = repo.diff_stat(origin.git("rev-parse", "HEAD~1"), "main")
        assert "app.py" in since and "CHANGES" not in since
        everything = repo.diff_stat(None, "main")
        assert "app.py" in everything and "CHANGES" in everything


class TestTagging:
    def test_create_and_push_tag(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """An annotated tag made in the cache reaches the origin; re-tagging is a no-op."""
        repo = cache(origin, tmp_path)
        head = repo.resolve("main")
        name = repo.new_tag_name("svc", "0.1.0")
        assert name == "svc/v0.1.0"
        repo.create_tag(name, head, "svc 0.1.0")
        repo.create_tag(name, head, "svc 0.1.0")
        repo.push_tag(name)
        assert origin.git("rev-parse", "svc/v0.1.0^{commit}") == head
        assert origin.git("cat-file", "-t", "svc/v0.1.0") == "tag"
        assert origin.git("tag", "-l", "--format=%(contents:subject)", name) == "svc 0.1.0"
        with pytest.raises(GitError, match=r"already exists on .*; a released version is never"):
            repo.create_tag(name, origin.git("rev-parse", "HEAD~1"), "moved")

    def test_push_of_a_tag_the_origin_has_elsewhere_fails(
        self, origin: RepoBuilder, tmp_path: Path
    ) -> None:
        """A push never moves a tag on the origin."""
        repo = cache(origin, tmp_path)
        origin.tag("svc/v0.1.0", ref="HEAD~2")
        repo.create_tag("svc/v0.1.0", repo.resolve("main"), "svc 0.1.0")
        with pytest.raises(GitError, match=r"cannot push tag svc/v0\.1\.0 to .*check write access"):
            repo.push_tag("svc/v0.1.0")
        assert origin.git("rev-parse", "svc/v0.1.0^{commit}") == origin.git("rev-parse", "HEAD~2")

    @pytest.mark.parametrize(
        "name", [pytest.param("-f", id="option"), pytest.param("v1;reboot", id="shell")]
    )
    def test_unsafe_tag_names_are_refused(
        self, origin: RepoBuilder, tmp_path: Path, name: str
    ) -> None:
        """Tag names are validated before git sees them."""
        repo = cache(origin, tmp_path)
        with pytest.raises(UnsafeRefError):
            repo.create_tag(name, repo.resolve("main"), "x")


class TestCheckout:
    def test_checkout_of_an_exact_commit(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """checkout() makes a clean, detached tree of exactly that commit."""
        repo = cache(origin, tmp_path)
        old = origin.git("rev-parse", "HEAD~2")
        tree = repo.checkout(old, tmp_path / "trees" / "one")
        assert (tree / "CHANGES").read_text() == "fix: change 0\n"
        checked = RepoBuilder(tree)
        assert checked.head() == old
        assert checked.git("status", "--porcelain") == ""
        assert checked.git("rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached

    def test_checkout_into_an_existing_folder_fails(
        self, origin: RepoBuilder, tmp_path: Path
    ) -> None:
        """A release tree is always a fresh folder."""
        repo = cache(origin, tmp_path)
        (tmp_path / "tree").mkdir()
        with pytest.raises(GitError, match="already exists; a release tree is always a fresh"):
            repo.checkout(repo.resolve("main"), tmp_path / "tree")

    def test_a_deleted_tree_can_be_made_again(self, origin: RepoBuilder, tmp_path: Path) -> None:
        """Removing a tree's folder is enough to check the same commit out there again."""
        import shutil

        repo = cache(origin, tmp_path)
        head = repo.resolve("main")
        shutil.rmtree(repo.checkout(head, tmp_path / "tree"))
        assert RepoBuilder(repo.checkout(head, tmp_path / "tree")).head() == head
