"""
Thrift code for the tests, generated at test time from C{calculator.thrift}
with C{thrift --gen py:twisted} into a temporary directory (never into the
repository), and a handler for its service.

Set C{TXN_THRIFT_GEN} to a directory to generate there (subprocesses of a
test get the parent's directory this way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer
from zope.interface import classImplements

IDL = Path(__file__).with_name("calculator.thrift")
PACKAGE = "txn_test_calc"


class ThriftCompilerMissing(RuntimeError):
    pass


def generate(directory: str | None = None) -> str:
    """
    Generate the Python code for C{calculator.thrift} (once per process)
    and put its directory on C{sys.path}.

    @return: the directory holding the generated package.
    @raise ThriftCompilerMissing: C{thrift} is not installed.
    """
    directory = directory or os.environ.get("TXN_THRIFT_GEN")
    if directory is None:
        directory = tempfile.mkdtemp(prefix="txn-thrift-gen-")
        os.environ["TXN_THRIFT_GEN"] = directory
    if not (Path(directory) / PACKAGE / "Calculator.py").exists():
        compiler = shutil.which("thrift")
        if compiler is None:
            raise ThriftCompilerMissing(
                "the Thrift compiler is missing: apt-get install thrift-compiler"
            )
        Path(directory).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [compiler, "--gen", "py:twisted", "-out", directory, str(IDL)],
            check=True,
            capture_output=True,
        )
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return directory


def calculator() -> Any:
    """
    @return: the generated C{Calculator} module.
    """
    generate()
    from txn_test_calc import Calculator  # type: ignore[import-not-found]

    return Calculator


def ttypes() -> Any:
    generate()
    from txn_test_calc import ttypes as generated  # type: ignore[import-not-found]

    return generated


class Handler:
    """
    The service's implementation.

    @ivar notes: what C{notify} was called with.
    @ivar hanging: the Deferreds of C{hang} calls, never fired.
    """

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.hanging: list[defer.Deferred[None]] = []
        self.calls = 0

    def add(self, a: int, b: int) -> int:
        self.calls += 1
        return a + b

    def divide(self, a: int, b: int) -> defer.Deferred[int]:
        self.calls += 1
        if b == 0:
            return defer.fail(ttypes().DivideByZero(message=f"{a} / 0"))
        from twisted.internet import reactor

        # answer in a later turn, as a handler doing I/O would
        return defer.Deferred.fromCoroutine(_later(reactor, a // b))

    def fail(self, why: str) -> str:
        self.calls += 1
        raise RuntimeError(why)

    def hang(self) -> defer.Deferred[None]:
        self.calls += 1
        d: defer.Deferred[None] = defer.Deferred()
        self.hanging.append(d)
        return d

    def echo(self, data: bytes) -> bytes:
        self.calls += 1
        return data

    def notify(self, what: str) -> None:
        self.calls += 1
        self.notes.append(what)


async def _later(reactor: Any, value: int) -> int:
    from twisted.internet import task

    await task.deferLater(reactor, 0, lambda: None)
    return value


def processor(handler: Handler) -> Any:
    """
    A generated C{Calculator.Processor} calling C{handler}.
    """
    module = calculator()
    classImplements(Handler, module.Iface)
    return module.Processor(handler)


def make_processor() -> Any:
    """
    A processor for C{--thrift-processor tests.thrift.support.make_processor}.
    """
    return processor(Handler())
