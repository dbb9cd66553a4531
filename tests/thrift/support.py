"""
Thrift code for the tests, generated at test time from C{calculator.thrift}
with C{thrift --gen py:twisted} into a temporary directory (never into the
repository), and a handler for its service.

Set C{TXN_THRIFT_GEN} to a directory to generate there (subprocesses of a
test get the parent's directory this way).
"""

from __future__ import annotations

import atexit
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


def generate(directory: str | None = None, idl: Path = IDL, package: str = PACKAGE) -> str:
    """
    Generate the Python code for C{calculator.thrift}, or for C{idl} whose
    namespace is C{package} (once per process), and put its directory on
    C{sys.path}.

    @return: the directory holding the generated package.
    @raise ThriftCompilerMissing: C{thrift} is not installed.
    """
    directory = directory or os.environ.get("TXN_THRIFT_GEN")
    if directory is None:
        directory = tempfile.mkdtemp(prefix="txn-thrift-gen-")
        os.environ["TXN_THRIFT_GEN"] = directory
        atexit.register(shutil.rmtree, directory, True)
    if not (Path(directory) / package / "Calculator.py").exists():
        compiler = shutil.which("thrift")
        if compiler is None:
            raise ThriftCompilerMissing(
                "the Thrift compiler is missing: apt-get install thrift-compiler"
            )
        Path(directory).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [compiler, "--gen", "py:twisted", "-out", directory, str(idl)],
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


class SlowHandler(Handler):
    """
    A handler whose C{add} answers after C{TXN_THRIFT_ADD_DELAY} seconds
    (read when it is made), and logs each call it takes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.delay = float(os.environ.get("TXN_THRIFT_ADD_DELAY", "0"))

    def add(self, a: int, b: int) -> Any:
        from twisted.internet import reactor, task
        from twisted.logger import Logger

        Logger().info("add({a}, {b}) called", a=a, b=b)
        self.calls += 1
        return task.deferLater(reactor, self.delay, lambda: a + b)


def make_slow_processor() -> Any:
    """
    A processor for C{--thrift-processor
    tests.thrift.support.make_slow_processor}: see L{SlowHandler}.
    """
    return processor(SlowHandler())


TXAMQP = "txAMQP==0.8.2"
SIX = "six==1.17.0"


class TxAMQPUnavailable(RuntimeError):
    pass


def txamqp_paths() -> list[str]:
    """
    A downloaded copy of txAMQP 0.8.2 (and the C{six} it needs), for
    subprocesses to put on their C{PYTHONPATH}: never installed, never
    imported by the library.  It is fetched with pip into
    C{~/.cache/txamqp-next-tests} (or C{$TXN_TXAMQP_CACHE}) once.

    @return: the directories and wheel to put on C{PYTHONPATH}.
    @raise TxAMQPUnavailable: pip could not fetch it; the message says so.
    """
    cache = Path(os.environ.get("TXN_TXAMQP_CACHE") or Path.home() / ".cache" / "txamqp-next-tests")
    source = cache / "txAMQP-0.8.2" / "src"
    wheels = sorted(cache.glob("six-*.whl"))
    if not (source / "txamqp" / "contrib" / "thrift" / "protocol.py").exists() or not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(cache), TXAMQP, SIX],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archive = cache / "txAMQP-0.8.2.tar.gz"
        if fetched.returncode != 0 or not archive.exists():
            raise TxAMQPUnavailable(
                f"could not download {TXAMQP} for the wire-compatibility tests "
                f"(pip download exited {fetched.returncode}): {fetched.stderr[-2000:]}"
                "\nThese tests need PyPI, or the sdist and a six wheel in "
                f"{cache} (set TXN_TXAMQP_CACHE to use another directory)."
            )
        import tarfile

        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("txAMQP-0.8.2/src/")]
            tar.extractall(cache, members=members, filter="data")
        wheels = sorted(cache.glob("six-*.whl"))
    return [str(source), *map(str, wheels)]
