"""Benchmark: measuring a 20,000-commit history through dualop vs a bare `git log`.

    .venv/bin/python tests/bench/bench_classify.py [--commits 20000] [--repeat 7]

Builds a repository (git fast-import) of N commits by 12 authors over the look-back
period with a release tag every 100 commits, then prints, side by side in one run, the
median time of:

- `git log` over the same range and in the same format, run directly (git's own cost);
- `dualop.git.GitRepo.history` (one `git log` + parsing into Commit records);
- `dualop.classify.measure` (history + tags + lead times + failure rate);
- `dualop.classify.classify_service` (measure + the verdict).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dualop.catalog import Service
from dualop.classify import classify_service, measure
from dualop.git import LOG_FORMAT, GitRepo
from dualop.settings import ClassifierSettings
from dualop.testing import RepoBuilder


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.test")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.test")
    settings = ClassifierSettings()
    at = datetime(2026, 11, 1, tzinfo=UTC)
    span = timedelta(days=settings.lookback_days - 1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        builder = RepoBuilder.init(Path(tmp) / "big")
        builder.fast_history(
            args.commits,
            start=at - span,
            step_seconds=int(span.total_seconds() // args.commits),
            authors=[f"Author {i}" for i in range(12)],
            tag_every=100,
            tag_prefix="big/v",
        )
        repo = GitRepo.open(builder.path)
        built = time.perf_counter() - t0
        svc = Service.model_validate(
            {
                "name": "big",
                "repo": str(builder.path),
                "owner": "o",
                "runtime": "python3.12",
                "operating_model": "digital",
                "reason": "benchmark",
            }
        )
        since = at - timedelta(days=settings.lookback_days)
        bare = [
            "git",
            "log",
            f"--since={since.isoformat()}",
            f"--until={at.isoformat()}",
            f"--format={LOG_FORMAT}",
            "main",
        ]
        rows = [
            (
                "bare git log (same range)",
                timed(
                    lambda: subprocess.run(bare, cwd=builder.path, capture_output=True, check=True),
                    args.repeat,
                ),
            ),
            (
                "GitRepo.history",
                timed(lambda: repo.history("main", since=since, until=at), args.repeat),
            ),
            (
                "classify.measure",
                timed(lambda: measure(repo, svc, at=at, settings=settings), args.repeat),
            ),
            (
                "classify_service",
                timed(lambda: classify_service(svc, repo, at=at, settings=settings), args.repeat),
            ),
        ]
        commits = len(repo.history("main", since=since, until=at))
        print(
            f"repository: {commits} commits in the look-back, {args.commits // 100} release tags "
            f"(built in {built:.1f}s); {args.repeat} runs each"
        )
        base = rows[0][1][0]
        print(f"{'what':<30} {'median':>10} {'min':>10} {'vs git log':>11}")
        for name, (med, low) in rows:
            print(f"{name:<30} {med * 1000:>8.1f}ms {low * 1000:>8.1f}ms {med / base:>10.2f}x")


if __name__ == "__main__":
    main()
