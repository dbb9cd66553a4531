"""
The benchmark's tests run its drivers (C{python -m bench.run},
C{python -m bench.scale}) in a subprocess, on tiny counts, against the
broker.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.integration.broker import BROKER

#: the checkout, where C{python -m bench...} finds the package
ROOT = Path(__file__).resolve().parent.parent.parent


def run_module(module: str, *args: str) -> list[str]:
    """
    Run C{python -m <module> <args>} from the checkout and check it
    succeeded.

    @return: the lines it printed.
    @raise AssertionError: it failed; the end of its error output says why.
    """
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stdout.splitlines()


def run_driver(module: str, prefix: str, argv: list[str]) -> Path:
    """
    Run C{python -m <module>} quietly on the broker, writing to a fresh
    folder, and check it succeeded.

    @param prefix: the folder's name starts with it.
    @param argv: the driver's other arguments.
    @return: the output folder (table, chart and raw records).
    @raise AssertionError: the driver failed; the end of its error output
        says why.
    """
    out = Path(tempfile.mkdtemp(prefix=prefix))
    run_module(module, "--output-dir", str(out), "--url", BROKER, "--quiet", *argv)
    return out
