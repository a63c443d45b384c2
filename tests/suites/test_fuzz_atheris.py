"""The atheris fuzzers (`fuzz_atheris.py`) run for a bounded time each: no crash.

libFuzzer exits non-zero with the failing input and its traceback when a target raises
(a 500 from the receiver, a catalog problem that names no field, any exception other
than `CatalogInvalid`); the figures it prints at the end are shown with `-s`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris has no wheel for this platform")

FUZZER = Path(__file__).with_name("fuzz_atheris.py")
SECONDS = 20


@pytest.mark.parametrize("target", ["webhook", "catalog"])
def test_fuzzer_finds_no_crash(target: str, tmp_path: Path) -> None:
    # A crashing input is written under the test's folder, not into the checkout.
    done = subprocess.run(
        [
            sys.executable,
            str(FUZZER),
            target,
            f"-max_total_time={SECONDS}",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS * 6,
        check=False,
    )
    tail = "\n".join(done.stderr.splitlines()[-40:])
    assert done.returncode == 0, f"the {target} fuzzer found a crash:\n{tail}"
    runs = re.search(r"Done (\d+) runs in (\d+) second", done.stderr)
    coverage = re.findall(r"cov: (\d+)", done.stderr)
    assert runs is not None and int(runs.group(1)) > 1000, tail
    print(
        f"\n[atheris {target}] {runs.group(1)} inputs in {runs.group(2)} s, "
        f"{coverage[-1]} coverage points in dualop, no crash"
    )
