# -*- test-case-name: tests.test_imports -*-
"""
The sans-IO core imports without Twisted, as h11 does: C{txamqp_next}
itself, the spec model, the codec, the frames, the method classes, the
connection parameters and the protocol core load with Twisted made
unimportable.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from twisted.trial.unittest import SynchronousTestCase

#: the modules of the core
CORE = (
    "txamqp_next",
    "txamqp_next.errors",
    "txamqp_next.spec",
    "txamqp_next._codec",
    "txamqp_next._frames",
    "txamqp_next._methods",
    "txamqp_next._events",
    "txamqp_next._params",
    "txamqp_next._connection",
    "txamqp_next._txmessage",
)


class CoreWithoutTwistedTests(SynchronousTestCase):
    """
    Import the core in a fresh interpreter where C{import twisted} fails.
    """

    def run_python(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_core_imports_without_twisted(self) -> None:
        """
        Every core module imports, and a connection runs its handshake's
        first step, with Twisted and zope.interface unimportable; none of
        them is imported behind our back.
        """
        done = self.run_python(
            f"""
            import importlib, sys
            for name in ("twisted", "zope", "zope.interface"):
                sys.modules[name] = None
            for module in {CORE!r}:
                importlib.import_module(module)
            from txamqp_next._connection import Connection
            from txamqp_next._params import Credentials
            conn = Connection(credentials=Credentials())
            assert conn.data_to_send() == b"AMQP\\x00\\x00\\x09\\x01"
            loaded = sorted(m for m in sys.modules if m.startswith(("twisted", "zope")))
            assert all(sys.modules[m] is None for m in loaded), loaded
            print("ok")
            """
        )
        self.assertEqual((done.returncode, done.stdout.strip()), (0, "ok"), done.stderr)

    def test_package_names_load_lazily(self) -> None:
        """
        C{import txamqp_next} loads no Twisted; its public names (the
        Twisted adapter among them) load when first used.
        """
        done = self.run_python(
            """
            import sys
            import txamqp_next
            assert "twisted" not in sys.modules, "twisted imported by txamqp_next"
            assert txamqp_next.AMQPConnection.__module__ == "txamqp_next.connection"
            assert "twisted" in sys.modules
            assert "AMQClient" in dir(txamqp_next)
            try:
                txamqp_next.NoSuchName
            except AttributeError:
                print("ok")
            """
        )
        self.assertEqual((done.returncode, done.stdout.strip()), (0, "ok"), done.stderr)
