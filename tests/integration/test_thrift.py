# -*- test-case-name: tests.integration.test_thrift -*-
"""
Thrift over AMQP on the real broker: a L{txamqp_next.thrift} client calling
a L{txamqp_next.thrift} server, with code generated at test time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from thrift.protocol.TCompactProtocol import TCompactProtocolFactory
from thrift.Thrift import TApplicationException
from thrift.transport.TTransport import TTransportException
from twisted.internet import defer

from tests.integration.broker import BROKER, BrokerTestCase, async_test, sleep, unique
from tests.thrift.support import Handler, calculator, generate, processor, ttypes
from tests.txamqp_suite import SPEC_0_8, SPEC_0_9, SPEC_0_9_1
from txamqp_next import errors
from txamqp_next.thrift import (
    CallTimeout,
    ServiceUnavailable,
    ThriftClient,
    ThriftServer,
    ThriftServerService,
    TransportClosed,
    close_client,
    connect_client,
    open_client,
    serve,
)

ROOT = Path(__file__).resolve().parent.parent.parent


class ThriftTestCase(BrokerTestCase):
    """
    Connections, a unique service name and exchange, and cleanup.
    """

    def setUp(self) -> None:
        self.service = unique("thrift-svc")
        self.exchange = unique("thrift-x")
        self.handler = Handler()
        self.Calculator = calculator()

    async def serve(self, **kwargs: Any) -> ThriftServer:
        amqp = await self.connect()
        server = await serve(
            amqp,
            self.service,
            processor(self.handler),
            exchange=self.exchange,
            **kwargs,
        )
        self.addCleanup(server.stop, 5)
        self.addCleanup(self.delete_exchange, self.exchange)
        return server

    async def client(self, **kwargs: Any) -> Any:
        amqp = await self.connect()
        kwargs.setdefault("exchange", self.exchange)
        calc = await connect_client(amqp, self.service, self.Calculator.Client, **kwargs)
        self.addCleanup(close_client, calc)
        return calc

    async def until(self, condition: Any, what: str, timeout: float = 10) -> None:
        """
        Poll C{condition} until it is true; fail after C{timeout} seconds.
        """
        for _ in range(int(timeout / 0.02)):
            if condition():
                return
            await sleep(0.02)
        self.fail(f"timed out waiting for {what}")

    async def delete_exchange(self, exchange: str) -> None:
        amqp = await self.connect()
        channel = await amqp.open_channel()
        await channel.exchange_delete(exchange=exchange)
        await amqp.close()

    async def delete_queue(self, queue: str) -> None:
        """
        Delete a queue a test's service declared durable, so that it does
        not outlive the test on the shared broker.
        """
        amqp = await self.connect()
        channel = await amqp.open_channel()
        await channel.queue_delete(queue=queue)
        await amqp.close()


class CallTests(ThriftTestCase):
    """
    Calls reach the server and their results, or errors, come back.
    """

    @async_test
    async def test_calls(self) -> None:
        """
        A call's result comes back; binary arguments pass unchanged; a
        oneway call reaches the handler.
        """
        await self.serve()
        calc = await self.client()
        self.assertEqual(await calc.add(2, 3), 5)
        self.assertEqual(await calc.divide(7, 2), 3)
        data = bytes(range(256)) * 40
        self.assertEqual(await calc.echo(data), data)
        await calc.notify("hello")
        for _ in range(50):
            if self.handler.notes:
                break
            await sleep(0.05)
        self.assertEqual(self.handler.notes, ["hello"])

    @async_test
    async def test_many_concurrent_calls(self) -> None:
        """
        500 calls outstanding at once from two clients all get their own
        result, and nothing is left pending.
        """
        await self.serve(prefetch=50)
        one, two = await self.client(), await self.client()
        calls = [c.add(i, i) for i in range(250) for c in (one, two)]
        results = await defer.gatherResults(calls)
        self.assertEqual(results, [i + i for i in range(250) for _ in (one, two)])
        self.assertEqual(self.handler.calls, 500)
        for stub in (one, two):
            self.assertEqual(stub._transport.client.pending, 0)
            self.assertEqual(stub._reqs, {})

    @async_test
    async def test_declared_exception(self) -> None:
        """
        A handler raising an exception the IDL declares fails the call with
        that exception, fields intact; later calls work.
        """
        await self.serve()
        calc = await self.client()
        with self.assertRaises(ttypes().DivideByZero) as caught:
            await calc.divide(1, 0)
        self.assertEqual(caught.exception.message, "1 / 0")
        self.assertEqual(await calc.add(1, 1), 2)

    @async_test
    async def test_undeclared_error(self) -> None:
        """
        A handler raising an undeclared exception fails the call with a
        C{TApplicationException} (internal error); the server carries on.
        """
        await self.serve()
        calc = await self.client()
        with self.assertRaises(TApplicationException) as caught:
            await calc.fail("boom")
        self.assertEqual(caught.exception.type, TApplicationException.INTERNAL_ERROR)
        self.assertEqual(await calc.add(1, 2), 3)
        self.flushLoggedErrors()

    @async_test
    async def test_timeout(self) -> None:
        """
        A call the server never answers fails with L{CallTimeout} after the
        client's timeout, naming the method; other calls are unaffected.
        """
        await self.serve()
        calc = await self.client(timeout=2)
        hanging = calc.hang()
        self.assertEqual(await calc.add(1, 2), 3)
        with self.assertRaises(CallTimeout) as caught:
            await hanging
        error = caught.exception
        self.assertIsInstance(error, TTransportException)
        self.assertEqual(error.type, TTransportException.TIMED_OUT)
        self.assertEqual((error.method, error.timeout), ("hang", 2))
        self.assertIn(self.service, str(error))
        self.assertEqual(calc._transport.client.pending, 0)
        for d in self.handler.hanging:
            d.callback(None)

    @async_test
    async def test_timeouts_per_call(self) -> None:
        """
        Calls waiting at once each time out after the timeout the client
        had when it was sent, on the client's one timer: a call sent later
        with a lower timeout fails first; answered calls in between are
        unaffected, and no timer is left afterwards.
        """
        await self.serve()
        calc = await self.client(timeout=3)
        client = calc._transport.client
        slow = calc.hang()
        client.timeout = 1
        started = self.reactor_seconds()
        fast = calc.hang()
        self.assertEqual(await calc.add(1, 2), 3)
        with self.assertRaises(CallTimeout) as caught:
            await fast
        self.assertEqual(caught.exception.timeout, 1)
        self.assertLess(self.reactor_seconds() - started, 2.5)
        self.assertEqual(client.pending, 1)
        with self.assertRaises(CallTimeout) as caught:
            await slow
        self.assertEqual(caught.exception.timeout, 3)
        self.assertGreaterEqual(self.reactor_seconds() - started, 2.9)
        self.assertEqual(client.pending, 0)
        self.assertIsNone(client._timer)
        for d in self.handler.hanging:
            d.callback(None)

    @async_test
    async def test_no_server(self) -> None:
        """
        With no server queue bound, the broker returns the call and it fails
        at once with L{ServiceUnavailable}, well before the timeout.
        """
        amqp = await self.connect()
        channel = await amqp.open_channel()
        await channel.exchange_declare(exchange=self.exchange, type="direct")
        self.addCleanup(self.delete_exchange, self.exchange)
        calc = await self.client(timeout=30)
        started = self.reactor_seconds()
        with self.assertRaises(ServiceUnavailable) as caught:
            await calc.add(1, 2)
        self.assertLess(self.reactor_seconds() - started, 10)
        self.assertEqual(caught.exception.type, TTransportException.NOT_OPEN)
        self.assertEqual(caught.exception.routing_key, self.service)

    def reactor_seconds(self) -> float:
        from twisted.internet import reactor

        return float(reactor.seconds())  # type: ignore[attr-defined]

    @async_test
    async def test_broker_error(self) -> None:
        """
        A broker error on the client's channel (a call published to an
        exchange that does not exist) fails the pending calls with
        L{TransportClosed}, whose reason is the broker's L{NotFound}; later
        calls fail at once; a new client works.
        """
        await self.serve()
        calc = await self.client(exchange=unique("missing-x"), declare=False)
        with self.assertRaises(TransportClosed) as caught:
            await calc.add(1, 2)
        self.assertIsInstance(caught.exception.reason, errors.NotFound)
        with self.assertRaises(TransportClosed):
            await calc.add(1, 2)
        good = await self.client()
        self.assertEqual(await good.add(1, 2), 3)

    @async_test
    async def test_connection_lost(self) -> None:
        """
        A connection that closes under pending calls fails them all with
        L{TransportClosed} at once.
        """
        await self.serve()
        amqp = await self.connect()
        calc = await connect_client(
            amqp, self.service, self.Calculator.Client, exchange=self.exchange
        )
        hanging = [calc.hang() for _ in range(3)]
        await self.until(lambda: len(self.handler.hanging) == 3, "the calls to arrive")
        await amqp.close()
        results = await defer.DeferredList(hanging, consumeErrors=True)
        for ok, failure in results:
            self.assertFalse(ok)
            self.assertIsInstance(failure.value, TransportClosed)
        for d in self.handler.hanging:
            d.callback(None)

    @async_test
    async def test_close_client(self) -> None:
        """
        Closing the client fails its pending calls and later ones with
        L{TransportClosed}, deletes its reply queue, and closes its channel.
        """
        await self.serve()
        amqp = await self.connect()
        client: ThriftClient[Any] = await open_client(
            amqp, self.service, self.Calculator.Client, exchange=self.exchange
        )
        pending = client.stub.hang()
        await self.until(lambda: self.handler.hanging, "the call to arrive")
        await client.close()
        with self.assertRaises(TransportClosed):
            await pending
        with self.assertRaises(TransportClosed):
            await client.stub.add(1, 2)
        self.assertIsNotNone(client.channel.closed)
        probe = await amqp.open_channel()
        with self.assertRaises(errors.NotFound):
            await probe.queue_declare(queue=client.reply_queue, passive=True)
        for d in self.handler.hanging:
            d.callback(None)

    @async_test
    async def test_compact_protocol(self) -> None:
        """
        Client and server agree on another Thrift protocol when told.
        """
        await self.serve(protocol_factory=TCompactProtocolFactory())
        calc = await self.client(protocol_factory=TCompactProtocolFactory())
        self.assertEqual(await calc.add(20, 22), 42)

    @async_test
    async def test_shared_channel_and_queue(self) -> None:
        """
        Two servers on one queue share the calls; two clients on one
        channel each get their own replies.
        """
        await self.serve()
        other = Handler()
        amqp = await self.connect()
        second = await serve(amqp, self.service, processor(other), exchange=self.exchange)
        self.addCleanup(second.stop, 5)
        amqp = await self.connect()
        channel = await amqp.open_channel()
        one = await connect_client(
            channel, self.service, self.Calculator.Client, exchange=self.exchange
        )
        two = await connect_client(
            channel, self.service, self.Calculator.Client, exchange=self.exchange
        )
        results = await defer.gatherResults(
            [one.add(i, 0) for i in range(40)] + [two.add(0, -i) for i in range(40)]
        )
        self.assertEqual(results, list(range(40)) + [-i for i in range(40)])
        self.assertEqual(self.handler.calls + other.calls, 80)
        self.assertGreater(other.calls, 0)
        self.assertGreater(self.handler.calls, 0)


class SpecTests(ThriftTestCase):
    """
    Thrift over the reference specs of Debian's C{amqp-specs} (0-8, 0-9 and
    the plain 0-9-1 file), which have no C{confirm} class: the server
    acknowledges a call once its reply is handed to the transport.
    """

    @async_test
    async def test_reference_specs(self) -> None:
        """
        Sequential and concurrent calls come back right with each spec,
        client and server loading the same one.
        """
        for path in (SPEC_0_8, SPEC_0_9, SPEC_0_9_1):
            service, exchange = unique("thrift-spec"), unique("thrift-spec-x")
            amqp = await self.connect(spec=str(path))
            server = await serve(amqp, service, processor(self.handler), exchange=exchange)
            self.addCleanup(server.stop, 5)
            self.addCleanup(self.delete_exchange, exchange)
            self.assertFalse(server.channel.confirm_mode, path)
            calc = await connect_client(
                await self.connect(spec=str(path)),
                service,
                self.Calculator.Client,
                exchange=exchange,
            )
            self.addCleanup(close_client, calc)
            self.assertEqual([await calc.add(i, 1) for i in range(20)], list(range(1, 21)), path)
            replies = await defer.gatherResults([calc.add(i, 2) for i in range(100)])
            self.assertEqual(replies, list(range(2, 102)), path)


class ServerTests(ThriftTestCase):
    """
    The server's handling of what it receives.
    """

    @async_test
    async def test_garbage_rejected(self) -> None:
        """
        A call whose body is not a Thrift message is rejected (not
        requeued) and the server goes on answering.
        """
        server = await self.serve()
        amqp = await self.connect()
        channel = await amqp.open_channel()
        await channel.basic_publish(
            exchange=self.exchange, routing_key=self.service, body=b"\xff not thrift"
        )
        calc = await self.client()
        self.assertEqual(await calc.add(4, 4), 8)
        await self.until(lambda: server.in_flight == 0, "the server to settle its calls")
        ok = await channel.queue_declare(queue=server.queue, passive=True)
        self.assertEqual(ok.message_count, 0)
        self.flushLoggedErrors()

    @async_test
    async def test_ack_after_reply(self) -> None:
        """
        A call stays unacknowledged while its handler runs and is
        acknowledged once the reply is out.
        """
        server = await self.serve()
        calc = await self.client()
        hanging = calc.hang()
        await self.until(lambda: self.handler.hanging, "the call to arrive")
        self.assertEqual(server.in_flight, 1)
        self.handler.hanging[0].callback(None)
        self.assertIsNone(await hanging)
        await self.until(lambda: server.in_flight == 0, "the call to be acknowledged")

    @async_test
    async def test_stop_waits(self) -> None:
        """
        Stopping waits for a call being processed to be answered.
        """
        server = await self.serve()
        calc = await self.client()
        hanging = calc.hang()
        await self.until(lambda: self.handler.hanging, "the call to arrive")
        stopping = server.stop(5)
        await sleep(0.1)
        self.assertFalse(stopping.called)
        self.handler.hanging[0].callback(None)
        await hanging
        await stopping
        self.assertIsNotNone(server.channel.closed)


class ServiceTests(ThriftTestCase):
    """
    L{ThriftServerService} and the C{txamqp_next} twistd plugin.
    """

    @async_test
    async def test_service_recovers(self) -> None:
        """
        The service serves; when its queue is deleted under it (its channel
        and consumer end) it reconnects and serves again; it stops cleanly.
        """
        from twisted.internet import reactor

        service = ThriftServerService(
            reactor,
            BROKER,
            self.service,
            processor(self.handler),
            exchange=self.exchange,
            retry_policy=lambda attempt: 0.2,
        )
        # cleanups run last first: the queue goes once the service stopped
        self.addCleanup(self.delete_queue, self.service)
        service.startService()
        self.addCleanup(service.stopService)
        self.addCleanup(self.delete_exchange, self.exchange)
        await service.when_serving(fail_after_failures=5)
        calc = await self.client()
        self.assertEqual(await calc.add(1, 2), 3)
        amqp = await self.connect()
        channel = await amqp.open_channel()
        first = service.server
        await channel.queue_delete(queue=self.service)
        for _ in range(100):
            server = service.server
            if server is not None and server is not first and server.channel.closed is None:
                try:
                    await channel.queue_declare(queue=self.service, passive=True)
                    break
                except errors.NotFound:
                    channel = await amqp.open_channel()
            await sleep(0.05)
        self.assertIsNot(service.server, first)
        calc = await self.client()
        self.assertEqual(await calc.add(2, 3), 5)
        await service.stopService()
        self.assertIsNone(service.server)

    @async_test
    async def test_twistd(self) -> None:
        """
        C{twistd -n txamqp_next --thrift-service NAME --thrift-processor
        tests.thrift.support.make_processor} serves the service: our client
        calls it, including a declared exception; on SIGTERM it stops
        cleanly without a traceback or the broker's password in the log.
        """
        gen = generate()
        log = Path(self.mktemp()).resolve()
        log.parent.mkdir(parents=True, exist_ok=True)
        twistd = "from twisted.scripts.twistd import run; run()"
        argv = [sys.executable, "-c", twistd, "-n", "--pidfile=", f"--logfile={log}"]
        argv += ["txamqp_next", "--url", BROKER, "--thrift-service", self.service]
        argv += ["--thrift-processor", "tests.thrift.support.make_processor"]
        argv += ["--thrift-exchange", self.exchange]
        env = dict(os.environ, TXN_THRIFT_GEN=gen)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), gen])
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.addCleanup(self.delete_queue, self.service)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        self.addCleanup(self.delete_exchange, self.exchange)

        def text() -> str:
            return log.read_text() if log.exists() else ""

        for _ in range(600):
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                self.fail(f"twistd exited with {process.returncode}:\n{output}\n{text()}")
            if f"serving Thrift service {self.service}" in text():
                break
            await sleep(0.05)
        else:
            self.fail(f"twistd did not start serving:\n{text()}")
        calc = await self.client()
        self.assertEqual(
            await defer.gatherResults([calc.add(i, 1) for i in range(10)]),
            [i + 1 for i in range(10)],
        )
        with self.assertRaises(ttypes().DivideByZero):
            await calc.divide(1, 0)
        process.send_signal(signal.SIGTERM)
        for _ in range(300):
            if process.poll() is not None:
                break
            await sleep(0.05)
        self.assertEqual(process.returncode, -signal.SIGTERM, text())
        self.assertIn(f"stopped serving Thrift service {self.service}", text())
        self.assertNotIn("Traceback", text())
        self.assertNotIn(BROKER, text())
