"""
The Thrift code of the C{thrift} workload, generated from C{bench.thrift}
with C{thrift --gen py:twisted} into a temporary directory when a run starts
(never into the repository; Debian package C{thrift-compiler}), and the
handler of its service.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from zope.interface import classImplements

from bench import common
from bench.common import BenchError, check_body

IDL = Path(__file__).with_name("bench.thrift")
SERVICE = "Echo"


def echo_module() -> Any:
    """
    Generate the code (once per process) and import it.

    @return: the generated C{Echo} module.
    @raise BenchError: the Thrift compiler is missing or failed.
    """
    try:
        from txn_bench_echo import Echo  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        return Echo
    compiler = shutil.which("thrift")
    if compiler is None:
        raise BenchError("the Thrift compiler is missing: apt-get install thrift-compiler")
    out = tempfile.mkdtemp(prefix="txn-bench-thrift-")
    atexit.register(shutil.rmtree, out, True)
    proc = subprocess.run(
        [compiler, "--gen", "py:twisted", "-out", out, str(IDL)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"thrift --gen py:twisted failed: {proc.stderr.strip()[-500:]}")
    sys.path.insert(0, out)
    from txn_bench_echo import Echo

    return Echo


class EchoHandler:
    """
    The service: C{echo} answers with its argument.
    """

    def __init__(self) -> None:
        self.calls = 0

    def echo(self, data: bytes) -> bytes:
        self.calls += 1
        return data


def processor(handler: EchoHandler) -> Any:
    """
    A generated C{Echo.Processor} calling C{handler}.
    """
    module = echo_module()
    classImplements(EchoHandler, module.Iface)
    return module.Processor(handler)


async def measure(args: Any, stub: Any) -> dict[str, Any]:
    """
    The measured part of the C{thrift} workload, the same for every client:
    C{args.count} sequential C{echo} calls (each waits for its reply), then
    C{args.count} concurrent ones (all in flight at once), every reply
    checked against the body it should echo.

    The record's C{msgs_per_s}, C{cpu_us_per_msg} and C{p50_us}/C{p99_us}
    are the sequential calls'; C{concurrent_per_s} and
    C{concurrent_cpu_us} the concurrent ones'.  The CPU time includes the
    server's, which runs in the same process.
    """
    import time

    from twisted.internet import defer

    count, size = args.count, args.size
    payloads = common.bodies(count, size)
    latencies = []
    perf_counter = time.perf_counter
    sequential = common.Meter()
    sequential.start()
    for i in range(count):
        t0 = perf_counter()
        got = await stub.echo(payloads[i])
        latencies.append(perf_counter() - t0)
        check_body(i, size, got)
    sequential.stop()
    concurrent = common.Meter()
    concurrent.start()
    replies = await defer.gatherResults(
        [stub.echo(payload) for payload in payloads], consumeErrors=True
    )
    concurrent.stop()
    if len(replies) != count:
        raise BenchError(f"{len(replies)} concurrent replies, not {count}")
    for i, got in enumerate(replies):
        check_body(i, size, got)
    return common.thrift_result(args, sequential, concurrent, latencies)
