# -*- test-case-name: tests.test_api_docs -*-
"""
The API reference: C{scripts/build_api_docs.py} builds it with pydoctor,
with no warning, and it documents every channel call of the default spec
with the spec's own text.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import load_script
from txamqp_next import spec

ROOT = Path(__file__).resolve().parent.parent


def builder() -> ModuleType:
    return load_script("build_api_docs")


class ReferenceTests(SynchronousTestCase):
    """
    Build the reference once and look at it.
    """

    def test_build(self) -> None:
        """
        The build exits 0 with no warning and counts every client method of
        the default spec as documented; a page that lacks one of them, or
        its text, is caught.
        """
        output = Path(self.mktemp()).resolve()
        result = subprocess.run(
            [sys.executable, "scripts/build_api_docs.py", str(output)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        calls = [
            m
            for m in spec.load().methods
            if "server" in m.chassis and m.class_name != "connection"
        ]
        self.assertIn(f"{len(calls)} spec methods documented, no warnings", result.stdout)
        self.assertTrue((output / "index.html").exists())

        check = builder().spec_methods_documented
        self.assertEqual(check(output), (len(calls), []))
        broken = Path(self.mktemp()).resolve()
        shutil.copytree(output, broken)
        page = broken / "txamqp_next.methods.ChannelMethods.html"
        text = page.read_text()
        page.write_text(
            text.replace('name="queue_purge"', 'name="gone"').replace(
                "This method removes all messages from a queue", "gone"
            )
        )
        self.assertEqual(check(broken), (len(calls) - 1, ["queue_purge"]))
