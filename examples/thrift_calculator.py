"""
Thrift over AMQP: a Calculator server and a client calling it through the
local RabbitMQ.

It generates the Thrift code for C{examples/calculator.thrift} with
C{thrift --gen py:twisted} into a temporary directory (Debian package
C{thrift-compiler}), serves the service, makes a few calls (one of which
raises the IDL's exception), one call with nobody serving it, and closes.

    python examples/thrift_calculator.py [AMQP_URL]
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from zope.interface import implementer

import txamqp_next
from txamqp_next.thrift import ServiceUnavailable, close_client, connect_client, serve

IDL = Path(__file__).with_name("calculator.thrift")


def generate() -> Any:
    """
    Generate and import the Thrift code for C{calculator.thrift}.
    """
    compiler = shutil.which("thrift")
    if compiler is None:
        sys.exit("the Thrift compiler is missing: apt-get install thrift-compiler")
    out = tempfile.mkdtemp(prefix="thrift-example-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run([compiler, "--gen", "py:twisted", "-out", out, str(IDL)], check=True)
    sys.path.insert(0, out)
    from calculator_example import Calculator, ttypes  # type: ignore[import-not-found]

    return Calculator, ttypes


async def main(reactor: Any, url: str) -> None:
    Calculator, ttypes = generate()

    @implementer(Calculator.Iface)
    class Handler:
        def add(self, a: int, b: int) -> int:
            return a + b

        def divide(self, a: int, b: int) -> int:
            if b == 0:
                raise ttypes.DivideByZero(message=f"cannot divide {a} by zero")
            return a // b

    amqp = await txamqp_next.connect(reactor, url, connection_name="txamqp_next thrift example")
    server = await serve(amqp, "calculator-example", Calculator.Processor(Handler()))
    print(f"serving calculator-example from queue {server.queue}")

    calc = await connect_client(amqp, "calculator-example", Calculator.Client, timeout=10)
    print(f"add(2, 3)     -> {await calc.add(2, 3)}")
    print(f"divide(7, 2)  -> {await calc.divide(7, 2)}")
    results = await defer.gatherResults([calc.add(i, i) for i in range(100)])
    print(f"100 concurrent calls -> sum {sum(results)}")
    try:
        await calc.divide(1, 0)
    except ttypes.DivideByZero as e:
        print(f"divide(1, 0)  -> DivideByZero: {e.message}")

    nobody = await connect_client(amqp, "calculator-example-nobody", Calculator.Client)
    try:
        await nobody.add(1, 1)
    except ServiceUnavailable as e:
        print(f"no server     -> ServiceUnavailable: {e}")

    await close_client(nobody)
    await close_client(calc)
    await server.stop()
    await amqp.close()
    print("closed cleanly")


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@127.0.0.1:5672/"
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, url)))
