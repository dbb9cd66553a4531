# -*- test-case-name: tests.integration.test_thrift_compat -*-
"""
Wire compatibility with txAMQP 0.8.2's Thrift transport, on the real
broker: txAMQP itself (a downloaded copy, run in subprocesses by
C{tests/thrift/txamqp_peer.py}) calls our server and serves our client; the
messages both libraries publish are compared byte for byte; and the same
txAMQP code runs on L{txamqp_next.contrib.thrift} with its imports renamed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport.TTransport import TMemoryBuffer
from twisted.internet import defer, error, protocol
from twisted.python.failure import Failure

from tests.integration.broker import BROKER, BrokerTestCase, async_test, reactor, unique
from tests.thrift.support import Handler, calculator, generate, processor, ttypes, txamqp_paths
from txamqp_next.endpoint import parse_url
from txamqp_next.thrift import close_client, connect_client, serve

ROOT = Path(__file__).resolve().parent.parent.parent
PEER = ROOT / "tests" / "thrift" / "txamqp_peer.py"
# the 0-9-1 spec a txAMQP application loads (Debian's amqp-specs)
SPEC = "/usr/share/amqp/specs/0-9-1/amqp0-9-1.stripped.xml"

EXPECTED = [*(i + 100 for i in range(20)), ["DivideByZero", "9 / 0"]]
EXPECTED += [["TApplicationException", TApplicationException.INTERNAL_ERROR]]
EXPECTED += [b"\x00\xffbytes".hex()]


class _Peer(protocol.ProcessProtocol):
    """
    A peer subprocess: collects its output, fires C{ready} at its first
    line and C{ended} with its exit status.
    """

    def __init__(self) -> None:
        self.output = b""
        self.ready: defer.Deferred[str] = defer.Deferred()
        self.ended: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if b"\n" in self.output and not self.ready.called:
            self.ready.callback(self.output.split(b"\n", 1)[0].decode())

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        code = reason.value.exitCode if isinstance(reason.value, error.ProcessTerminated) else 0
        if not self.ready.called:
            self.ready.errback(AssertionError(f"the peer exited first:\n{self.output.decode()}"))
        self.ended.callback(code or 0)


class CompatTestCase(BrokerTestCase):
    """
    Unique names, the txAMQP copy, and peers.
    """

    timeout = 120

    def setUp(self) -> None:
        if not os.path.exists(SPEC):
            self.fail(f"{SPEC} is missing: apt-get install amqp-specs")
        self.paths = txamqp_paths()
        self.gen = generate()
        self.exchange = unique("tx-services")
        self.responses = unique("tx-responses")
        self.key = unique("tx-calc")
        self.queue = unique("tx-calc-pool")
        self.Calculator = calculator()
        self.stops: list[Any] = []
        self.addCleanup(self.delete_exchanges)

    async def delete_exchanges(self) -> None:
        amqp = await self.connect()
        channel = await amqp.open_channel()
        for name in (self.exchange, self.responses):
            await channel.exchange_delete(exchange=name)
        await amqp.close()

    def start_peer(self, role: str, *extra: str, compat: bool = False) -> _Peer:
        params = parse_url(BROKER)
        argv = [sys.executable, str(PEER), role, params.host, str(params.port), SPEC]
        argv += [self.exchange, self.responses, self.key, *extra]
        if compat:
            argv.append("--compat")
        env = dict(os.environ)
        path = [str(ROOT), self.gen] if compat else [*self.paths, str(ROOT), self.gen]
        env["PYTHONPATH"] = os.pathsep.join(path)
        env["TXN_THRIFT_GEN"] = self.gen
        peer = _Peer()
        transport = reactor().spawnProcess(peer, sys.executable, argv, env=env, path=str(ROOT))

        def stop() -> defer.Deferred[int]:
            if not peer.ended.called:
                transport.signalProcess("KILL")
            return peer.ended

        self.addCleanup(stop)
        self.stops.append(stop)
        return peer

    async def run_client(self, compat: bool = False) -> list[Any]:
        peer = self.start_peer("client", compat=compat)
        code = await peer.ended
        text = peer.output.decode()
        self.assertEqual(code, 0, text)
        lines = [line for line in text.splitlines() if line.startswith("[")]
        self.assertTrue(lines, text)
        results: list[Any] = json.loads(lines[-1])
        return results

    async def start_server(self, compat: bool = False) -> None:
        peer = self.start_peer("server", self.queue, compat=compat)
        self.assertEqual(await peer.ready, "ready", peer.output.decode())

    async def our_server(self) -> None:
        amqp = await self.connect()
        server = await serve(
            amqp,
            self.key,
            processor(Handler()),
            exchange=self.exchange,
            responses_exchange=self.responses,
            queue=self.queue,
        )
        self.addCleanup(server.stop, 5)

    async def our_client(self, timeout: float) -> Any:
        """
        A txamqp_next Thrift client of the calculator, closed at cleanup.
        """
        amqp = await self.connect()
        calc = await connect_client(
            amqp,
            self.key,
            self.Calculator.Client,
            exchange=self.exchange,
            responses_exchange=self.responses,
            timeout=timeout,
        )
        self.addCleanup(close_client, calc)
        return calc

    async def our_calls(self) -> list[Any]:
        calc = await self.our_client(timeout=20)
        calls = [calc.add(i, 100) for i in range(20)]
        calls += [calc.divide(9, 0), calc.fail("boom"), calc.echo(b"\x00\xffbytes")]
        results: list[Any] = []
        for d in calls:
            try:
                value = await d
            except ttypes().DivideByZero as e:
                value = ["DivideByZero", e.message]
            except TApplicationException as e:
                value = ["TApplicationException", e.type]
            results.append(value.hex() if isinstance(value, bytes) else value)
        return results


class TxAMQPPeerTests(CompatTestCase):
    """
    txAMQP 0.8.2 and txamqp_next.thrift call each other.
    """

    @async_test
    async def test_txamqp_client_calls_our_server(self) -> None:
        """
        txAMQP's C{createThriftClient} calls a L{txamqp_next.thrift.serve}
        server: results, a declared exception and an undeclared error come
        back as they would from a txAMQP server.
        """
        await self.our_server()
        self.assertEqual(await self.run_client(), EXPECTED)
        self.flushLoggedErrors()

    @async_test
    async def test_our_client_calls_txamqp_server(self) -> None:
        """
        A L{txamqp_next.thrift.connect_client} client calls txAMQP's
        C{createThriftServer}.
        """
        await self.start_server()
        self.assertEqual(await self.our_calls(), EXPECTED)

    @async_test
    async def test_renamed_imports_client(self) -> None:
        """
        The txAMQP client code, run on C{txamqp_next.contrib.thrift}, calls a
        txAMQP server.
        """
        await self.start_server()
        self.assertEqual(await self.run_client(compat=True), EXPECTED)

    @async_test
    async def test_renamed_imports_server(self) -> None:
        """
        The txAMQP server code, run on C{txamqp_next.contrib.thrift}, answers
        a txAMQP client.
        """
        await self.start_server(compat=True)
        self.assertEqual(await self.run_client(), EXPECTED)


class WireFormatTests(CompatTestCase):
    """
    The AMQP messages of both libraries, compared on the broker.
    """

    async def spy(self, exchange: str, key: str) -> tuple[Any, str]:
        amqp = await self.connect()
        channel = await amqp.open_channel()
        await channel.exchange_declare(exchange=exchange, type="direct")
        ok = await channel.queue_declare(queue="", exclusive=True, auto_delete=True)
        await channel.queue_bind(queue=ok.queue, exchange=exchange, routing_key=key)
        return channel, ok.queue

    async def take(self, channel: Any, queue: str) -> Any:
        for _ in range(100):
            message = await channel.basic_get(queue=queue, no_ack=True)
            if message is not None:
                return message
            await defer.Deferred.fromCoroutine(_sleep(0.05))
        self.fail(f"nothing arrived on {queue}")

    def properties(self, message: Any) -> dict[str, Any]:
        return {
            name: getattr(message.properties, name)
            for name in message.properties.field_names
            if getattr(message.properties, name) is not None
        }

    @async_test
    async def test_calls_match(self) -> None:
        """
        The call txAMQP's client publishes for C{add(1, 2)} and the one ours
        publishes go to the same exchange with the same routing key, with
        the same properties (a C{reply_to} naming the client's reply queue
        and the C{thriftClientName} header) and the same body bytes.
        """
        channel, spy = await self.spy(self.exchange, self.key)
        await channel.exchange_declare(exchange=self.responses, type="direct")
        probe = self.start_peer("probe")
        self.assertEqual(await probe.ready, "sent", probe.output.decode())
        theirs = await self.take(channel, spy)

        calc = await self.our_client(timeout=5)
        pending = calc.add(1, 2)
        pending.addErrback(lambda _: None)
        ours = await self.take(channel, spy)

        for message in (theirs, ours):
            self.assertEqual((message.exchange, message.routing_key), (self.exchange, self.key))
            self.assertTrue(message.properties.reply_to.startswith("amq.gen-"))
        self.assertEqual(
            self.properties(theirs) | {"reply_to": "?"}, self.properties(ours) | {"reply_to": "?"}
        )
        self.assertEqual(theirs.headers, {"thriftClientName": "Client" + self.key})
        self.assertEqual(theirs.body, ours.body)
        name, mtype, seqid = (
            TBinaryProtocolFactory().getProtocol(TMemoryBuffer(ours.body)).readMessageBegin()
        )
        self.assertEqual((name, mtype, seqid), ("add", TMessageType.CALL, 1))

    @async_test
    async def test_replies_match(self) -> None:
        """
        Given the same call, txAMQP's server and ours publish the same reply:
        to the responses exchange, routed by the call's C{reply_to}, with
        no properties and the same body bytes.
        """
        reply_key = unique("spy-reply")
        channel, spy = await self.spy(self.responses, reply_key)
        await channel.exchange_declare(exchange=self.exchange, type="direct")
        buffer = TMemoryBuffer()
        oprot = TBinaryProtocolFactory().getProtocol(buffer)
        oprot.writeMessageBegin("add", TMessageType.CALL, 7)
        args = self.Calculator.add_args(a=40, b=2)
        args.write(oprot)
        oprot.writeMessageEnd()
        call = buffer.getvalue()

        replies = []
        for start in (self.start_server, self.our_server):
            await start()
            await channel.basic_publish(
                exchange=self.exchange,
                routing_key=self.key,
                body=call,
                properties={"reply_to": reply_key},
            )
            replies.append(await self.take(channel, spy))
            if start == self.start_server:
                await self.stop_peers()
        theirs, ours = replies
        for message in replies:
            self.assertEqual((message.exchange, message.routing_key), (self.responses, reply_key))
        self.assertEqual(self.properties(theirs), {})
        self.assertEqual(self.properties(ours), {})
        self.assertEqual(theirs.body, ours.body)
        iprot = TBinaryProtocolFactory().getProtocol(TMemoryBuffer(ours.body))
        self.assertEqual(iprot.readMessageBegin(), ("add", TMessageType.REPLY, 7))
        result = self.Calculator.add_result()
        result.read(iprot)
        self.assertEqual(result.success, 42)

    async def stop_peers(self) -> None:
        """
        Kill the peers started so far (their cleanups then find them ended),
        and wait for the broker to drop their queue.
        """
        for stop in self.stops:
            await stop()
        await defer.Deferred.fromCoroutine(_sleep(0.3))


async def _sleep(seconds: float) -> None:
    from twisted.internet import task

    await task.deferLater(reactor(), seconds, lambda: None)
