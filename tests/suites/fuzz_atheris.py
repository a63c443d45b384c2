"""Coverage-guided fuzzing (atheris, libFuzzer) of the webhook receiver and the catalog loader.

    .venv/bin/python tests/suites/fuzz_atheris.py webhook|catalog [libFuzzer flags]
    e.g. ... webhook -max_total_time=20 -seed=1

Run by `test_fuzz_atheris.py` for a bounded time; the hypothesis tests beside it draw
from structured strategies, this one mutates bytes guided by the coverage of dualop's
code (only `dualop.*` is instrumented). An input that breaks a rule raises, and libFuzzer
stops with the input and the traceback:

- `webhook`: the receiver answers every request, signed with the right secret or not,
  with a deliberate status (never a 500), and every refusal carries an `error` field.
- `catalog`: a service file of any bytes gives a catalog or `CatalogInvalid`, whose
  every problem names the file and a field with a message.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["dualop"]):
    from dualop.catalog import load_catalog
    from dualop.exceptions import CatalogInvalid
    from dualop.logging import configure_logging
    from dualop.webhooks import github_signature

# After the instrumented imports, so that dualop is imported (and instrumented) there.
from tests.suites.test_fuzz_catalog import APPROVERS, HERITAGE, WINDOWS, dump  # noqa: E402
from tests.test_webhooks import (  # noqa: E402
    SECRET,
    TOKEN,
    github_push,
    gitlab_push,
    property_app,
    raw_asgi,
)

ANSWERS = {200, 202, 400, 401, 404, 413, 415}
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", ""]
EVENTS = {
    "github": [b"push", b"ping", b"issues", b"\xffpush"],
    "gitlab": [b"Push Hook", b"Tag Push Hook", b"Note Hook", b"push hook "],
}


def webhook_target() -> tuple[Callable[[bytes], None], list[bytes]]:
    app, _starter = property_app()

    def one(data: bytes) -> None:
        # The first byte chooses the envelope, the rest is the body: bit 0 the provider,
        # bits 1-2 a right signature unless both are 0, bits 3-4 the content type, bits
        # 5-6 the event (a push, a ping, another, an odd one).
        head, body = (data[0], data[1:]) if data else (0, b"")
        provider = "github" if head & 1 else "gitlab"
        signed = bool(head & 0b110)
        content_type = CONTENT_TYPES[(head >> 3) & 0b11]
        event = EVENTS[provider][(head >> 5) & 0b11]
        headers = [(b"content-type", content_type.encode())] if content_type else []
        if provider == "github":
            headers.append((b"x-github-event", event))
            headers.append((b"x-github-delivery", b"fuzz"))
            signature = github_signature(SECRET.encode(), body) if signed else "sha256=00"
            headers.append((b"x-hub-signature-256", signature.encode()))
        else:
            headers.append((b"x-gitlab-event", event))
            headers.append((b"x-gitlab-token", TOKEN.encode() if signed else b"wrong"))
        headers.append((b"content-length", str(len(body)).encode()))
        status, answer = asyncio.run(raw_asgi(app, f"/webhooks/{provider}", headers, body))
        if status not in ANSWERS:
            raise AssertionError(f"status {status}: {answer[:300]!r}")
        if status >= 400 and "error" not in json.loads(answer):
            raise AssertionError(f"status {status} without an error field: {answer[:300]!r}")

    seeds = [
        b"\x03" + json.dumps(github_push()).encode(),
        b"\x02" + json.dumps(gitlab_push()).encode(),
    ]
    return one, seeds


def catalog_target() -> tuple[Callable[[bytes], None], list[bytes]]:
    config = Path(tempfile.mkdtemp(prefix="dualop-fuzz-catalog-")) / "config"
    (config / "services").mkdir(parents=True)
    (config / "windows.yaml").write_text(dump(WINDOWS))
    (config / "approvers.yaml").write_text(dump(APPROVERS))
    target = config / "services" / "svc.yaml"

    def one(data: bytes) -> None:
        target.write_bytes(data)
        try:
            load_catalog(config)
        except CatalogInvalid as e:
            if not e.problems:
                raise AssertionError("CatalogInvalid without a problem") from None
            for problem in e.problems:
                shown = str(problem)
                if not (problem.field.strip() and problem.message.strip()):
                    raise AssertionError(f"a problem without field or message: {shown}") from None
                if not shown.startswith(f"{problem.file}: {problem.field}: "):
                    raise AssertionError(f"badly formed: {shown}") from None

    return one, [dump(HERITAGE).encode()]


def main() -> None:
    targets = {"webhook": webhook_target, "catalog": catalog_target}
    if len(sys.argv) < 2 or sys.argv[1] not in targets:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(targets)} [libFuzzer flags]")
    configure_logging(fmt="json", level="error")  # the receiver logs every request
    one, seeds = targets[sys.argv[1]]()
    corpus = Path(tempfile.mkdtemp(prefix=f"dualop-fuzz-{sys.argv[1]}-"))
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *sys.argv[2:], str(corpus)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
