# -*- test-case-name: tests.integration.test_examples -*-
"""
The examples run against the real broker: examples/demo.py and the example
in README.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent.parent
BROKER = os.environ.get("TXAMQP_NEXT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


class ExampleTests(SynchronousTestCase):
    """
    Run each example as a user would and check what it prints.
    """

    def test_demo(self) -> None:
        """
        The demo publishes, gets and consumes five messages, shows a broker
        error confined to its channel, and closes cleanly.
        """
        result = run_python("examples/demo.py", BROKER)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        out = result.stdout
        self.assertIn("published 5 messages", out)
        self.assertEqual(out.count("consumed   -> "), 4)
        self.assertIn("NotFound", out)
        self.assertIn("still works", out)
        self.assertIn("closed cleanly", out)

    def test_readme_example(self) -> None:
        """
        The README's example runs and prints the message it sent.
        """
        readme = (ROOT / "README.md").read_text()
        match = re.search(r"```python\n(.*?)```", readme, re.S)
        assert match is not None, "README.md has no python example"
        code = match.group(1).replace("amqp://guest:guest@127.0.0.1:5672/", BROKER)
        result = run_python("-c", code)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout.strip(), "b'hello' text/plain")

    def test_thrift_example(self) -> None:
        """
        The Thrift example generates its code, serves the calculator and
        calls it: results, the IDL's exception, and a call nobody serves.
        """
        result = run_python("examples/thrift_calculator.py", BROKER)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        out = result.stdout
        self.assertIn("add(2, 3)     -> 5", out)
        self.assertIn("100 concurrent calls -> sum 9900", out)
        self.assertIn("DivideByZero: cannot divide 1 by zero", out)
        self.assertIn("no server     -> ServiceUnavailable", out)
        self.assertIn("closed cleanly", out)
