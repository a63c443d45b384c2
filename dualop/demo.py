"""The demo that `dualop up` creates on first start: two real local git repositories.

- `storefront-web`, a small Python web front end with a busy history: five authors,
  commits every day or two, a release tag within a day of its changes. The classifier
  finds it **digital**; a push takes the paved road.
- `ledger-core`, a "COBOL" ledger with a quiet history: two authors, a handful of
  commits over the year, releases months apart. The classifier finds it **heritage**;
  its changes wait for a release window, two approvals and three migration steps.

`dualop up` also runs the demo **ops inbox** (`python -m dualop.demo ops-inbox`): the
apprise `json://127.0.0.1:9099/` target of the demo ops squad, which appends each
hand-over it receives to `<data dir>/ops-inbox.jsonl`, so a newcomer sees what the 24/7
squad would get.

The repositories live in `<config dir>/../demo/` (where `config/services/*.yaml` point).
Their history is dated relative to `now`, so the classifier's 90-day look-back sees it.
They are created once and never touched again, so your own commits to them survive.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["DEMO_SERVICES", "OPS_INBOX_PORT", "ensure_demo", "ops_inbox_app"]

OPS_INBOX_PORT = 9099

DEMO_SERVICES = ("storefront-web", "ledger-core")

_STOREFRONT_FILES = {
    "app.py": '"""storefront-web: the shop front."""\n\n\ndef greeting(name: str) -> str:\n'
    '    return f"Welcome to the shop, {name}!"\n',
    "build.py": '"""Build: copy the app into dist/ with its version stamp."""\n\nimport os\n'
    "import pathlib\nimport shutil\n\n"
    'dist = pathlib.Path("dist")\ndist.mkdir(exist_ok=True)\n'
    'shutil.copy("app.py", dist / "app.py")\n'
    '(dist / "BUILD").write_text(os.environ.get("DUALOP_COMMIT", "local"))\n'
    'print("built", sorted(p.name for p in dist.iterdir()))\n',
    "test_app.py": "import unittest\n\nfrom app import greeting\n\n\n"
    "class TestGreeting(unittest.TestCase):\n    def test_greets(self) -> None:\n"
    '        self.assertIn("Ada", greeting("Ada"))\n',
    "healthcheck.py": '"""Health: the live release has its built app."""\n\nimport os\n'
    "import pathlib\nimport sys\n\n"
    'live = pathlib.Path(os.environ["DUALOP_DEPLOY_DIR"])\n'
    'ok = (live / "dist" / "app.py").is_file()\nprint("healthy" if ok else "dist/app.py missing")\n'
    "sys.exit(0 if ok else 1)\n",
}

_LEDGER_FILES = {
    "LEDGER.cbl": "       IDENTIFICATION DIVISION.\n       PROGRAM-ID. LEDGER.\n"
    "       PROCEDURE DIVISION.\n           DISPLAY 'LEDGER POSTED'.\n           STOP RUN.\n",
    "migrate.py": '"""ledger-core migration steps; state in $DUALOP_STATE_DIR/ledger.json."""\n\n'
    "import json\nimport os\nimport pathlib\nimport sys\n\n"
    'state_dir = pathlib.Path(os.environ.get("DUALOP_STATE_DIR", ".ledger-state"))\n'
    "state_dir.mkdir(parents=True, exist_ok=True)\n"
    'db = state_dir / "ledger.json"\n'
    'state = json.loads(db.read_text()) if db.exists() else {"schema": 1, "backups": 0}\n'
    "step = sys.argv[1]\n"
    'if step == "backup":\n    state["backups"] += 1\n'
    'elif step == "verify-backup":\n    sys.exit(0 if state["backups"] > 0 else 1)\n'
    'elif step == "discard-backup":\n    state["backups"] = max(0, state["backups"] - 1)\n'
    'elif step == "schema-up":\n    state["schema"] += 1\n'
    'elif step == "schema-check":\n    sys.exit(0 if state["schema"] > 1 else 1)\n'
    'elif step == "schema-down":\n    state["schema"] -= 1\n'
    "else:\n    sys.exit(f'unknown step {step}')\n"
    "db.write_text(json.dumps(state))\nprint(step, state)\n",
}

_WEB_AUTHORS = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov"]
_LEDGER_AUTHORS = ["Jean Sammet", "Frances Allen"]


def _git(repo: Path, *args: str, when: datetime | None = None, author: str | None = None) -> None:
    env = dict(os.environ)
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    if author is not None:
        email = author.lower().replace(" ", ".") + "@demo.invalid"
        env.update(GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL=email)
        env.update(GIT_COMMITTER_NAME=author, GIT_COMMITTER_EMAIL=email)
    env.setdefault("GIT_COMMITTER_NAME", "dualop demo")
    env.setdefault("GIT_COMMITTER_EMAIL", "demo@dualop.invalid")
    env.setdefault("GIT_AUTHOR_NAME", "dualop demo")
    env.setdefault("GIT_AUTHOR_EMAIL", "demo@dualop.invalid")
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def _init(repo: Path, files: dict[str, str]) -> None:
    repo.mkdir(parents=True)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "config", "receive.denyCurrentBranch", "updateInstead")
    for name, text in files.items():
        (repo / name).write_text(text)


def _commit(repo: Path, message: str, when: datetime, author: str, touch: str) -> None:
    path = repo / touch
    path.write_text(path.read_text() + f"# {message}\n" if path.exists() else f"# {message}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", message, when=when, author=author)


def _tag(repo: Path, name: str, when: datetime) -> None:
    _git(repo, "tag", "-a", name, "-m", f"release {name}", when=when, author="Release Bot")


def _build_storefront(repo: Path, now: datetime) -> None:
    _init(repo, _STOREFRONT_FILES)
    start = now - timedelta(days=80)
    _commit(repo, "feat: first shop front", start, _WEB_AUTHORS[0], "CHANGES.md")
    patch = 0
    for i in range(1, 48):
        when = start + timedelta(days=i * 1.6)
        kind = "feat" if i % 7 == 0 else "fix"
        _commit(repo, f"{kind}: storefront change {i}", when, _WEB_AUTHORS[i % 5], "CHANGES.md")
        if i % 3 == 0:
            patch += 1
            _tag(repo, f"storefront-web/v1.{patch // 10}.{patch % 10}", when + timedelta(hours=4))


def _build_ledger(repo: Path, now: datetime) -> None:
    _init(repo, _LEDGER_FILES)
    start = now - timedelta(days=360)
    _commit(repo, "ledger: initial import from the mainframe", start, _LEDGER_AUTHORS[0], "NOTES")
    for i, days in enumerate([40, 95, 150, 210, 260, 300, 340], start=1):
        when = start + timedelta(days=days)
        _commit(repo, f"ledger: change request CR-{100 + i}", when, _LEDGER_AUTHORS[i % 2], "NOTES")
        if i in (2, 5):
            _tag(repo, f"ledger-core/v3.{i}.0", when + timedelta(days=45))
    _commit(
        repo,
        "ledger: posting rule CR-120 (unreleased)",
        now - timedelta(days=2),
        _LEDGER_AUTHORS[0],
        "NOTES",
    )


def ensure_demo(config_dir: Path, now: datetime) -> list[Path]:
    """Create the demo repositories that do not exist yet; return their paths."""
    root = config_dir.resolve().parent / "demo"
    builders = {"storefront-web": _build_storefront, "ledger-core": _build_ledger}
    created = []
    for name, builder in builders.items():
        repo = root / name
        if not (repo / ".git").exists():
            builder(repo, now)
            created.append(repo)
    return created


def ops_inbox_app(out: Path) -> Starlette:
    """The demo ops squad's inbox: every JSON body POSTed to `/` is appended to `out`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    out.parent.mkdir(parents=True, exist_ok=True)

    async def receive(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        line = {"received_at": datetime.now(UTC).isoformat(), "notification": body}
        with out.open("a") as f:
            f.write(json.dumps(line) + "\n")
        print(f"ops inbox: {body.get('title', '(no title)')}", flush=True)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/", receive, methods=["POST"])])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dualop.demo")
    sub = parser.add_subparsers(dest="command", required=True)
    inbox = sub.add_parser("ops-inbox", help="run the demo ops squad's notification inbox")
    inbox.add_argument("--port", type=int, default=OPS_INBOX_PORT)
    inbox.add_argument("--out", type=Path, required=True, help="JSON lines file to append to")
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(ops_inbox_app(args.out), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
