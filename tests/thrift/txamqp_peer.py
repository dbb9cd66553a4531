"""
A Thrift client or server written against txAMQP 0.8.2 itself, run in a
subprocess by C{tests.integration.test_thrift_compat} with txAMQP on its
path (never imported by the library or the other tests).

    python txamqp_peer.py server HOST PORT SPEC EXCHANGE RESPONSES KEY QUEUE
    python txamqp_peer.py client HOST PORT SPEC EXCHANGE RESPONSES KEY
    python txamqp_peer.py probe HOST PORT SPEC EXCHANGE RESPONSES KEY

With C{--compat} the same code runs on C{txamqp_next} instead, its imports
renamed (that is the compatibility promise).  The server prints C{ready}
once it consumes and runs until killed; the client makes its calls, prints
one JSON line of results and exits; the probe sends one call, C{add(1, 2)},
prints C{sent} and exits without waiting for a reply.
"""

from __future__ import annotations

import json
import sys
from typing import Any

if "--compat" in sys.argv:
    sys.argv.remove("--compat")
    from txamqp_next import spec as txspec
    from txamqp_next.contrib.thrift.client import ThriftTwistedDelegate
    from txamqp_next.contrib.thrift.protocol import ThriftAMQClient
else:
    from txamqp import spec as txspec  # type: ignore[no-redef]
    from txamqp.contrib.thrift.client import ThriftTwistedDelegate  # type: ignore[no-redef]
    from txamqp.contrib.thrift.protocol import ThriftAMQClient  # type: ignore[no-redef]

from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
from thrift.Thrift import TApplicationException
from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientCreator

from tests.thrift.support import Handler, calculator, processor, ttypes


async def connect(host: str, port: int, spec_path: str) -> Any:
    spec = txspec.load(spec_path)
    creator = ClientCreator(reactor, ThriftAMQClient, ThriftTwistedDelegate(), "/", spec)
    client = await creator.connectTCP(host, port)
    await client.authenticate("guest", "guest")
    return client


async def run_server(argv: list[str]) -> None:
    host, port, spec_path, exchange, responses, key, queue = argv
    client = await connect(host, int(port), spec_path)
    await client.createThriftServer(
        responses,
        exchange,
        key,
        processor(Handler()),
        queue,
        iprot_factory=TBinaryProtocolFactory(),
        oprot_factory=TBinaryProtocolFactory(),
    )
    print("ready", flush=True)


async def outcome(d: defer.Deferred[Any]) -> Any:
    try:
        value = await d
    except ttypes().DivideByZero as e:
        return ["DivideByZero", e.message]
    except TApplicationException as e:
        return ["TApplicationException", e.type]
    except Exception as e:
        return [type(e).__name__, str(e)]
    return value.hex() if isinstance(value, bytes) else value


async def make_client(argv: list[str]) -> Any:
    host, port, spec_path, exchange, responses, key = argv
    client = await connect(host, int(port), spec_path)
    channel = await client.channel(1)
    await channel.channel_open()
    await channel.exchange_declare(exchange=exchange, type="direct")
    await channel.exchange_declare(exchange=responses, type="direct")
    factory = TBinaryProtocolFactory()
    calc = await client.createThriftClient(
        responses,
        exchange,
        key,
        calculator().Client,
        iprot_factory=factory,
        oprot_factory=factory,
    )
    return calc


async def run_client(argv: list[str]) -> None:
    calc = await make_client(argv)
    calls = [calc.add(i, 100) for i in range(20)]
    calls += [calc.divide(9, 0), calc.fail("boom"), calc.echo(b"\x00\xffbytes")]
    results = [await outcome(d) for d in calls]
    print(json.dumps(results), flush=True)


async def run_probe(argv: list[str]) -> None:
    calc = await make_client(argv)
    calc.add(1, 2)
    from twisted.internet import task

    await task.deferLater(reactor, 0.5, lambda: None)
    print("sent", flush=True)


def main() -> None:
    role, argv = sys.argv[1], sys.argv[2:]
    run = {"server": run_server, "client": run_client, "probe": run_probe}[role]

    def done(result: object) -> object:
        if role != "server":
            reactor.stop()
        return result

    status = []

    def failed(failure: Any) -> None:
        failure.printTraceback()
        status.append(1)
        reactor.stop()

    d = defer.Deferred.fromCoroutine(run(argv))
    d.addCallbacks(done, failed)
    reactor.run()
    sys.exit(status[0] if status else 0)


if __name__ == "__main__":
    main()
