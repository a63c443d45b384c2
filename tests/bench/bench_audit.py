"""Benchmark: the receiver's per-delivery audit look-up on a long audit log.

    .venv/bin/python tests/bench/bench_audit.py [--entries 10000] [--repeat 20]

Fills a JSON-lines audit log (`FileAuditLog`, fsync per entry, as in production) with
N entries for 30 services, one in five a classification, then prints side by side in
one run the median time of:

- `entries(service=..., kinds=["classification"])[-1]`: every entry read and parsed
  (what the receiver did per delivery before `latest`);
- `latest(...)` for a service classified recently (found near the end);
- `latest(...)` for a service never classified (the whole file read backwards).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dualop.audit import FileAuditLog

CLASSIFICATION = ["classification"]


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dualop-bench-audit-") as tmp:
        log = FileAuditLog(Path(tmp) / "audit.jsonl")
        at = datetime(2026, 11, 1, tzinfo=UTC)
        t0 = time.perf_counter()
        for i in range(args.entries):
            log.append(
                "classification" if i % 5 == 0 else "release.triggered",
                service=f"svc-{i % 30}",  # svc-0, -5, -10 ... get classifications
                at=at + timedelta(seconds=i),
                model="digital",
                reasons=["busy repo, quick releases"],
            )
        filled = time.perf_counter() - t0
        size = log.path.stat().st_size
        print(
            f"audit log: {args.entries} entries, {size / 1e6:.1f} MB, written in {filled:.1f}s "
            f"({filled / args.entries * 1e3:.2f} ms an entry, fsync each); median of "
            f"{args.repeat}"
        )
        every = timed(lambda: log.entries(service="svc-25", kinds=CLASSIFICATION)[-1], args.repeat)
        recent = timed(lambda: log.latest(service="svc-25", kinds=CLASSIFICATION), args.repeat)
        never = timed(lambda: log.latest(service="svc-1", kinds=CLASSIFICATION), args.repeat)
        print(f"{'what':52} {'median':>10} {'vs entries':>11}")
        for name, value in [
            ("entries(service, kinds)[-1]  (every entry parsed)", every),
            ("latest(), a service classified recently", recent),
            ("latest(), a service never classified (whole file)", never),
        ]:
            print(f"{name:52} {value * 1e3:8.2f}ms {value / every:10.3f}x")


if __name__ == "__main__":
    main()
