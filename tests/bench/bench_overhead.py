"""Benchmark: orchestration overhead of a paved-road release that has nothing to do.

    .venv/bin/python tests/bench/bench_overhead.py [--reps 10] [--database sqlite|postgres]

Against a real `prefect server start` (SQLite in a temp folder, or a fresh PostgreSQL
database), a digital service whose build and test are `python -c pass`, deploy `local`
and no health check is released N times (a new commit each time), next to a bare Prefect
flow with as many tasks as the paved road ran, each doing nothing. Both flows are called
in-process (the flow function, with the environment `dualop serve` gives its runs) by one
worker process, alternating paved/bare and bare/paved, so both see the same load. What is
timed is the wall time of the call: creating the flow run, every task with its states and
persisted results, the flow's final state. The start of a served run (runner poll, a fresh
interpreter) is left out on purpose: bench_webhook.py measures it. One warm-up of each
(first clone of the repository, first imports) is run first and shown apart.

Also printed: where a paved-road release spends its time, per task, from the start and end
times Prefect recorded, and what is left between tasks (flow run creation, the release
lock, audit log appends, the final state).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench._stack import BenchStack, bench_stack, bounded, summary

SERVICE = "web-overhead"


# --- the worker: runs both flows in-process, reports wall times as JSON --------------------


def worker(args: argparse.Namespace) -> None:
    from prefect import flow, task

    from dualop.testing import RepoBuilder
    from flows.paved_road import paved_road

    @task(name="noop")
    def noop() -> None:
        return None

    @flow(name="bench-bare-tasks")
    def bare(tasks: int) -> None:
        for _ in range(tasks):
            noop()

    repo = RepoBuilder(Path(args.repo))
    results: list[dict[str, Any]] = []
    for i in range(args.warmup + args.reps):
        order = ("paved-road", "bare") if i % 2 == 0 else ("bare", "paved-road")
        for kind in order:
            if kind == "paved-road":
                sha = repo.commit(f"fix: change {i}")
                t0 = time.perf_counter()
                state: Any = paved_road(SERVICE, ref=sha, trigger="cli", return_state=True)
            else:
                t0 = time.perf_counter()
                state = bare(args.tasks, return_state=True)
            wall = time.perf_counter() - t0
            results.append(
                {
                    "kind": kind,
                    "warmup": i < args.warmup,
                    "wall": wall,
                    "flow_run_id": str(state.state_details.flow_run_id),
                    "state": state.name,
                    "message": state.message,
                }
            )
            print(f"{i} {kind} {wall:.3f}s {state.name}", file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(results))


# --- the main process ---------------------------------------------------------------------------


def task_runs(flow_run_id: str) -> list[Any]:
    """The task runs of a finished flow run, once each has its end time (task states
    reach the server as events: they may lag the flow's own end a little)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 20
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
            )
        if (runs and all(t.end_time is not None for t in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def flow_run_seconds(flow_run_id: str) -> float:
    from tests.bench._stack import read_flow_run, seconds_between

    run = read_flow_run(flow_run_id)
    return float("nan") if run.start_time is None else seconds_between(run.start_time, run.end_time)


def base_name(task_run_name: str) -> str:
    return task_run_name.rsplit("-", 1)[0]  # Prefect names task runs `<task>-<3 hex>`


def count_paved_tasks(stack: BenchStack) -> int:
    """Release once (in a worker, not timed) to count the tasks a release runs."""
    out = stack.root / "count.json"
    run_worker(stack, reps=1, warmup=0, tasks=1, out=out)
    [paved] = [r for r in json.loads(out.read_text()) if r["kind"] == "paved-road"]
    if paved["state"] != "Completed":
        raise RuntimeError(f"the counting release ended {paved['state']}: {paved['message']}")
    return len(task_runs(paved["flow_run_id"]))


def run_worker(stack: BenchStack, *, reps: int, warmup: int, tasks: int, out: Path) -> None:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        f"--reps={reps}",
        f"--warmup={warmup}",
        f"--tasks={tasks}",
        f"--repo={stack.root / 'repos' / SERVICE}",
        f"--out={out}",
    ]
    name = f"worker-{out.stem}"
    proc = stack.spawn(name, argv)
    while proc.alive():  # bounded by --time-limit (SIGALRM)
        time.sleep(0.2)
    if proc.proc.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"the worker exited with status {proc.proc.returncode}; its log ends with:\n"
            f"{proc.tail(40)}"
        )


def overhead(args: argparse.Namespace, stack: BenchStack) -> None:
    from tests.e2e.helpers import digital_repo, py, service_yaml

    repo = digital_repo(stack.root, SERVICE)
    noop = py("pass")
    (stack.config_dir / "services" / f"{SERVICE}.yaml").write_text(
        service_yaml(SERVICE, repo.path, build=noop, test=noop)
    )
    tasks = count_paved_tasks(stack)
    print(
        f"service {SERVICE}: build and test `python -c pass`, deploy local, no health check; "
        f"a release runs {tasks} tasks, so the bare flow runs {tasks} no-op tasks. Both flows "
        f"called in-process by one worker process, {args.reps} times each (+{args.warmup} "
        "warm-up), alternating.",
        flush=True,
    )
    out = stack.root / "results.json"
    run_worker(stack, reps=args.reps, warmup=args.warmup, tasks=tasks, out=out)
    results = json.loads(out.read_text())
    timed = [r for r in results if not r["warmup"]]
    paved = [r for r in timed if r["kind"] == "paved-road"]
    bare = [r for r in timed if r["kind"] == "bare"]
    failed = [r for r in paved + bare if r["state"] != "Completed"]
    for r in failed:
        print(f"NOTE: a {r['kind']} run ended {r['state']}: {r['message']}")

    def row(label: str, a: list[float], b: list[float]) -> None:
        am, ap = summary(a)
        bm, bp = summary(b)
        print(
            f"{label:<34} {am:>8.3f}s {ap:>8.3f}s   {bm:>8.3f}s {bp:>8.3f}s   "
            f"{am / bm:>6.2f}x  {am - bm:>+7.3f}s"
        )

    print()
    print(f"{'':<34} {'paved road':>19}   {f'bare flow, {tasks} tasks':>19}")
    print(
        f"{'':<34} {'median':>9} {'p95':>9}   {'median':>9} {'p95':>9}   {'ratio':>7}  {'diff':>8}"
    )
    row(
        "wall time of the flow call  <==",
        [r["wall"] for r in paved],
        [r["wall"] for r in bare],
    )
    row(
        "flow run start → end (server)",
        [flow_run_seconds(r["flow_run_id"]) for r in paved],
        [flow_run_seconds(r["flow_run_id"]) for r in bare],
    )
    warm = {r["kind"]: r["wall"] for r in results if r["warmup"]}
    if warm:
        print(
            f"warm-up (first call, not counted): paved road {warm.get('paved-road', 0):.3f}s, "
            f"bare {warm.get('bare', 0):.3f}s"
        )

    per_task: dict[str, list[float]] = defaultdict(list)
    between: list[float] = []
    bare_between: list[float] = []
    for rows, gaps in ((paved, between), (bare, bare_between)):
        for r in rows:
            spent: dict[str, float] = defaultdict(float)
            for t in task_runs(r["flow_run_id"]):
                if t.start_time is not None and t.end_time is not None:
                    spent[base_name(t.name)] += (t.end_time - t.start_time).total_seconds()
            if rows is paved:
                for name, seconds in spent.items():
                    per_task[name].append(seconds)
            gaps.append(r["wall"] - sum(spent.values()))
    print("\nwhere a paved-road release spends its time (median over the timed runs):")
    order = [
        "fetch-and-resolve",
        "check-superseded",
        "checkout",
        "build",
        "test",
        "tag-release",
        "deploy",
        "health-check",
        "record-outcome",
    ]
    for name in sorted(per_task, key=lambda n: order.index(n) if n in order else 99):
        print(f"  {name:<32} {summary(per_task[name])[0] * 1000:>8.0f} ms")
    print(
        f"  {'outside tasks (wall - tasks)':<32} {summary(between)[0] * 1000:>8.0f} ms   "
        f"(bare flow: {summary(bare_between)[0] * 1000:.0f} ms)"
    )
    noop_tasks = [
        (t.end_time - t.start_time).total_seconds()
        for r in bare
        for t in task_runs(r["flow_run_id"])
        if t.start_time is not None and t.end_time is not None
    ]
    print(f"  a no-op task of the bare flow    {summary(noop_tasks)[0] * 1000:>8.0f} ms")
    fixed_costs()


def fixed_costs() -> None:
    """What every paved-road task pays before its own work, timed here in-process."""
    from flows.common import runtime

    loads, fetches = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        rt = runtime()  # settings, a fresh catalog, the audit log
        t1 = time.perf_counter()
        rt.repo(rt.service(SERVICE))  # the cache clone, fetched
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        fetches.append(t2 - t1)
    print(
        "\nfixed costs inside the tasks (10 calls each, here): flows.common.runtime() "
        f"median {summary(loads)[0] * 1000:.0f} ms (every task calls it), Runtime.repo() "
        f"(git fetch of the cache clone) median {summary(fetches)[0] * 1000:.0f} ms "
        "(fetch-and-resolve, check-superseded x2, checkout, tag-release call it)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--reps", type=int, default=10, help="timed runs of each flow")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--time-limit", type=int, default=1200, help="seconds, then stop")
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    # The worker (started by this script): runs the flows, writes wall times as JSON.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.reps < 1 or args.warmup < 0:
        parser.error("need --reps >= 1 and --warmup >= 0")
    with bounded(args.time_limit) as exits:
        stack = bench_stack(
            exits,
            database=args.database,
            prefix="dualop-bench-overhead",
            title="paved-road orchestration overhead",
            keep_logs=args.keep_logs,
        )
        overhead(args, stack)


if __name__ == "__main__":
    main()
