# -*- test-case-name: tests.test_service -*-
"""
Tests for L{txamqp_next.service.ConsumerService}, driven by a fake broker
over a memory reactor, and for the twistd plugin (L{txamqp_next.tap}).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import FrameFactory, SentParser
from txamqp_next import Message, tap
from txamqp_next._methods import Method
from txamqp_next.connection import AMQPConnection
from txamqp_next.service import ConsumerService

URL = "amqp://app:s3cret@127.0.0.1:5672/"
QUEUE = "jobs"
TAG = "ctag-1"

NOT_CALLABLE = 42


def record(message: Message) -> None:
    """
    A handler for the option tests; never called.
    """


class FakeBroker:
    """
    The broker side of the connections a service makes to a
    L{MemoryReactorClock}.
    """

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor
        self.frames = FrameFactory()
        self.parser = SentParser()
        self.transport = StringTransport()
        self.protocol: Any = None

    def accept(self) -> None:
        """
        Accept the connection attempt the service made last.
        """
        _, _, factory, _, _ = self.reactor.tcpClients.pop()
        self.parser = SentParser()
        self.transport = StringTransport()
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def reply(self, name: str, channel: int = 1, **fields: Any) -> None:
        self.send(self.frames.method(channel, name, **fields))

    def sent(self) -> list[Method]:
        """
        The methods the client sent since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        return self.parser.methods_sent(data)

    def sent_names(self) -> list[str]:
        return [m.NAME for m in self.sent()]

    def open(self) -> None:
        """
        Take the connection through the handshake.
        """
        self.send(self.frames.start())
        self.send(self.frames.tune())
        self.send(self.frames.open_ok())

    def set_up(self) -> list[Method]:
        """
        Accept a connection and answer everything the service asks for up to
        C{consume-ok}.

        @return: the methods the client sent.
        """
        self.accept()
        self.open()
        self.reply("channel.open-ok")
        self.reply("queue.declare-ok", queue=QUEUE, message_count=0, consumer_count=0)
        self.reply("basic.qos-ok")
        self.reply("basic.consume-ok", consumer_tag=TAG)
        return self.sent()

    def deliver(self, delivery_tag: int, body: bytes = b"body") -> None:
        self.send(
            self.frames.content(
                1,
                "basic.deliver",
                body,
                consumer_tag=TAG,
                delivery_tag=delivery_tag,
                redelivered=False,
                exchange="",
                routing_key=QUEUE,
            )
        )

    def lose(self) -> None:
        """
        The TCP connection goes away.
        """
        self.protocol.connectionLost(Failure(ConnectionLost()))

    def close_ok(self) -> None:
        """
        Answer the client's C{connection.close}, then drop the connection as
        the client asks.
        """
        self.reply("connection.close-ok", channel=0)
        assert self.transport.disconnecting
        self.protocol.connectionLost(Failure(ConnectionDone()))


class ServiceTestCase(SynchronousTestCase):
    """
    A L{ConsumerService} on a memory reactor, with its log captured.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.broker = FakeBroker(self.reactor)
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.handled: list[Message] = []

    def make_service(self, handler: Any = None, **kwargs: Any) -> ConsumerService:
        kwargs.setdefault("retry_policy", lambda attempt: 1.0)
        service = ConsumerService(
            self.reactor, URL, QUEUE, handler or self.handled.append, **kwargs
        )
        service.startService()
        return service

    def texts(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def assert_no_secrets_logged(self) -> None:
        for event in self.events:
            self.assertNotIn("s3cret", formatEvent(event))
            self.assertNotIn("s3cret", repr(event))


class SetUpTests(ServiceTestCase):
    """
    Each connection is prepared before it counts as connected.
    """

    def test_ready_only_when_consuming(self) -> None:
        """
        L{ConsumerService.when_consuming} fires with the client only once
        the handshake, channel, durable queue declaration, C{basic.qos} and
        C{basic.consume} are done, in that order.
        """
        service = self.make_service(prefetch=7)
        ready = service.when_consuming()
        self.broker.accept()
        self.broker.open()
        self.broker.reply("channel.open-ok")
        self.broker.reply("queue.declare-ok", queue=QUEUE, message_count=0, consumer_count=0)
        self.broker.reply("basic.qos-ok")
        self.assertNoResult(ready)
        self.broker.reply("basic.consume-ok", consumer_tag=TAG)
        self.assertNoResult(ready)
        self.reactor.advance(0)
        client = self.successResultOf(ready)
        self.assertIs(self.successResultOf(service.when_consuming()), client)
        self.assertIsInstance(client, AMQPConnection)
        sent = self.broker.sent()
        self.assertEqual(
            [m.NAME for m in sent],
            [
                "connection.start-ok",
                "connection.tune-ok",
                "connection.open",
                "channel.open",
                "queue.declare",
                "basic.qos",
                "basic.consume",
            ],
        )
        declare, qos, consume = sent[4:]
        self.assertEqual((declare.queue, declare.durable, declare.passive), (QUEUE, True, False))
        self.assertEqual(qos.prefetch_count, 7)
        self.assertEqual((consume.queue, consume.no_ack), (QUEUE, False))
        self.assertIn("consuming from queue jobs at amqp://127.0.0.1:5672", " ".join(self.texts()))
        self.assert_no_secrets_logged()

    def test_callbacks_may_use_service(self) -> None:
        """
        Callbacks on L{ConsumerService.when_consuming} may call the service
        again (ClientService's own Deferred fires inside its state machine,
        which refuses reentrant calls).
        """
        service = self.make_service()
        again: list[Deferred[AMQPConnection]] = []
        service.when_consuming().addCallback(lambda client: again.append(service.when_consuming()))
        self.broker.set_up()
        self.reactor.advance(0)
        self.assertIsInstance(self.successResultOf(again[0]), AMQPConnection)

    def test_passive_declare(self) -> None:
        """
        With C{declare=False} the queue is only checked, with a passive
        declare.
        """
        self.make_service(declare=False)
        declare = self.broker.set_up()[4]
        self.assertEqual((declare.queue, declare.passive), (QUEUE, True))

    def test_connection_name(self) -> None:
        """
        The connection is named after the queue unless told otherwise.
        """
        self.make_service()
        start_ok = self.broker.set_up()[0]
        self.assertEqual(
            start_ok.client_properties["connection_name"], "txamqp_next consumer of jobs"
        )

    def test_bad_arguments(self) -> None:
        """
        An invalid URI or prefetch count is refused at once.
        """
        with self.assertRaises(ValueError):
            ConsumerService(self.reactor, "http://host/", QUEUE, record)
        with self.assertRaises(ValueError):
            ConsumerService(self.reactor, URL, QUEUE, record, prefetch=70000)

    def test_setup_failure_closes_and_retries(self) -> None:
        """
        When setting up fails (the queue is missing), the connection is
        closed, the failure logged, and another attempt made after the retry
        delay; losing the rejected connection raises nothing.
        """
        service = self.make_service(declare=False)
        ready = service.when_consuming()
        self.broker.accept()
        self.broker.open()
        self.broker.reply("channel.open-ok")
        self.broker.reply(
            "channel.close",
            reply_code=404,
            reply_text="NOT_FOUND - no queue 'jobs'",
            class_id=50,
            method_id=10,
        )
        self.assertIn("connection.close", self.broker.sent_names())
        self.broker.close_ok()
        self.assertNoResult(ready)
        self.assertIn("NOT_FOUND", " ".join(self.texts()))
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.broker.set_up()
        self.reactor.advance(0)
        self.successResultOf(ready)

    def test_connection_lost_in_handshake(self) -> None:
        """
        A connection lost during the handshake (refused credentials) counts
        as a failed attempt, without ClientService raising from
        C{connectionLost}.
        """
        service = self.make_service()
        ready = service.when_consuming(fail_after_failures=1)
        self.broker.accept()
        self.broker.send(self.broker.frames.start())
        self.broker.lose()
        self.reactor.advance(0)
        self.failureResultOf(ready)
        self.assertIn("cannot consume from queue jobs", " ".join(self.texts()))
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_setup_timeout(self) -> None:
        """
        A broker that accepts the connection but does not answer is given
        up on after the connection timeout, and the attempt retried.
        """
        service = self.make_service()
        ready = service.when_consuming(fail_after_failures=1)
        self.broker.accept()
        self.reactor.advance(10)
        self.assertTrue(self.broker.transport.disconnecting)
        self.broker.lose()
        self.reactor.advance(0)
        self.failureResultOf(ready)
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_connect_failure_logged(self) -> None:
        """
        A refused TCP connection is logged (ClientService does not say why
        it retries) and retried.
        """
        from twisted.internet.error import ConnectionRefusedError

        self.make_service()
        _, _, factory, _, _ = self.reactor.tcpClients.pop()
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertIn("Connection was refused", " ".join(self.texts()))
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.tcpClients), 1)


class MessageTests(ServiceTestCase):
    """
    Messages are acknowledged after their handler succeeds, rejected when
    it fails.
    """

    def test_ack_after_handler(self) -> None:
        """
        A handler that returns normally gets its message acknowledged.
        """
        self.make_service()
        self.broker.set_up()
        self.broker.deliver(1, b"one")
        self.assertEqual([m.body for m in self.handled], [b"one"])
        [ack] = self.broker.sent()
        self.assertEqual((ack.NAME, ack.delivery_tag), ("basic.ack", 1))

    def test_ack_waits_for_deferred(self) -> None:
        """
        A handler's L{Deferred} holds the acknowledgement until it fires.
        """
        pending: Deferred[None] = Deferred()
        self.make_service(handler=lambda message: pending)
        self.broker.set_up()
        self.broker.deliver(1)
        self.assertEqual(self.broker.sent(), [])
        pending.callback(None)
        self.assertEqual(self.broker.sent_names(), ["basic.ack"])

    def test_coroutine_handler(self) -> None:
        """
        A coroutine handler is run to completion before the acknowledgement.
        """
        pending: Deferred[None] = Deferred()
        bodies: list[bytes] = []

        async def handler(message: Message) -> None:
            await pending
            bodies.append(message.body)

        self.make_service(handler=handler)
        self.broker.set_up()
        self.broker.deliver(1, b"co")
        self.assertEqual(self.broker.sent(), [])
        pending.callback(None)
        self.assertEqual(bodies, [b"co"])
        self.assertEqual(self.broker.sent_names(), ["basic.ack"])

    def test_failure_rejects_and_logs(self) -> None:
        """
        A handler that raises gets its message rejected without requeueing,
        and the traceback logged with the queue and delivery tag (and no
        credentials).
        """

        def handler(message: Message) -> None:
            raise ValueError("bad message")

        self.make_service(handler=handler)
        self.broker.set_up()
        self.broker.deliver(5)
        [reject] = self.broker.sent()
        self.assertEqual(
            (reject.NAME, reject.delivery_tag, reject.requeue), ("basic.reject", 5, False)
        )
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        [failure] = [e for e in self.events if "log_failure" in e]
        self.assertEqual((failure["queue"], failure["delivery_tag"]), (QUEUE, 5))
        self.assert_no_secrets_logged()

    def test_failed_deferred_requeued(self) -> None:
        """
        With C{requeue_on_failure}, a message whose handler's L{Deferred}
        fails is rejected with requeueing, once the L{Deferred} fails.
        """
        pending: Deferred[None] = Deferred()
        self.make_service(handler=lambda message: pending, requeue_on_failure=True)
        self.broker.set_up()
        self.broker.deliver(2)
        self.assertEqual(self.broker.sent(), [])
        pending.errback(ValueError("later"))
        [reject] = self.broker.sent()
        self.assertEqual((reject.NAME, reject.requeue), ("basic.reject", True))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_ack_after_connection_lost(self) -> None:
        """
        A handler that finishes after its connection was lost is logged,
        not raised: the broker redelivers the message.
        """
        pending: Deferred[None] = Deferred()
        self.make_service(handler=lambda message: pending)
        self.broker.set_up()
        self.broker.deliver(1)
        self.broker.lose()
        pending.callback(None)
        self.assertIn("could not ack message 1", " ".join(self.texts()))


class ReconnectionTests(ServiceTestCase):
    """
    The service consumes again after the connection or consumer is lost.
    """

    def test_reconnects_after_connection_lost(self) -> None:
        """
        After the connection is lost, a new one is made and set up again.
        """
        self.make_service()
        self.broker.set_up()
        self.broker.lose()
        self.assertIn("lost the connection", " ".join(self.texts()))
        self.reactor.advance(1.0)
        self.broker.set_up()
        self.broker.deliver(1, b"again")
        self.assertEqual([m.body for m in self.handled], [b"again"])
        self.assertEqual(self.broker.sent_names(), ["basic.ack"])

    def test_broker_shutdown(self) -> None:
        """
        A broker shutting down (C{connection.close} 320) and refusing
        connections for a while is waited out: every refused attempt is
        logged, and consuming resumes once it is back.
        """
        from twisted.internet.error import ConnectionRefusedError

        self.make_service()
        self.broker.set_up()
        self.broker.reply(
            "connection.close", channel=0, reply_code=320, reply_text="CONNECTION_FORCED"
        )
        self.assertEqual(self.broker.sent_names(), ["connection.close-ok"])
        self.broker.lose()
        for _ in range(3):
            self.reactor.advance(1.0)
            _, _, factory, _, _ = self.reactor.tcpClients.pop()
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(" ".join(self.texts()).count("Connection was refused"), 3)
        self.reactor.advance(1.0)
        self.broker.set_up()
        self.broker.deliver(1, b"back")
        self.assertEqual([m.body for m in self.handled], [b"back"])

    def test_consumer_cancelled_by_broker(self) -> None:
        """
        When the broker cancels the consumer (its queue was deleted), the
        connection is closed so that a new one declares the queue again.
        """
        self.make_service()
        self.broker.set_up()
        self.broker.reply("basic.cancel", consumer_tag=TAG, no_wait=True)
        self.assertEqual(self.broker.sent_names(), ["connection.close"])
        self.broker.close_ok()
        self.reactor.advance(1.0)
        self.assertEqual(self.broker.set_up()[4].NAME, "queue.declare")


class StopTests(ServiceTestCase):
    """
    Stopping cancels the consumer, waits for running handlers, then closes.
    """

    def test_stop_waits_for_handlers(self) -> None:
        """
        C{stopService} cancels the consumer, waits for the running handler
        and acknowledges its message, and only then closes the connection.
        """
        pending: Deferred[None] = Deferred()
        service = self.make_service(handler=lambda message: pending)
        self.broker.set_up()
        self.broker.deliver(1)
        stopped = service.stopService()
        [cancel] = self.broker.sent()
        self.assertEqual((cancel.NAME, cancel.consumer_tag), ("basic.cancel", TAG))
        self.broker.reply("basic.cancel-ok", consumer_tag=TAG)
        self.assertEqual(self.broker.sent(), [])
        pending.callback(None)
        self.assertEqual(self.broker.sent_names(), ["basic.ack", "connection.close"])
        self.assertNoResult(stopped)
        self.broker.close_ok()
        self.assertIsNone(self.successResultOf(stopped))
        self.reactor.advance(60)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_stop_timeout(self) -> None:
        """
        A handler still running after C{stop_timeout} is given up on: the
        connection is closed and the broker will redeliver its message.
        """
        service = self.make_service(handler=lambda message: Deferred(), stop_timeout=5)
        self.broker.set_up()
        self.broker.deliver(1)
        stopped = service.stopService()
        self.broker.reply("basic.cancel-ok", consumer_tag=TAG)
        self.broker.sent()
        self.reactor.advance(4.9)
        self.assertEqual(self.broker.sent(), [])
        self.reactor.advance(0.1)
        self.assertEqual(self.broker.sent_names(), ["connection.close"])
        self.broker.close_ok()
        self.successResultOf(stopped)
        self.assertIn("1 handlers still running", " ".join(self.texts()))

    def test_no_new_handlers_while_stopping(self) -> None:
        """
        A message delivered after the consumer was cancelled (but before
        the broker confirmed) is not handled nor acknowledged.
        """
        service = self.make_service()
        self.broker.set_up()
        stopped = service.stopService()
        self.broker.deliver(1)
        self.broker.reply("basic.cancel-ok", consumer_tag=TAG)
        self.assertEqual(self.handled, [])
        self.assertEqual(self.broker.sent_names(), ["basic.cancel", "connection.close"])
        self.broker.close_ok()
        self.successResultOf(stopped)

    def test_stop_while_connecting(self) -> None:
        """
        Stopping during the handshake closes the connection quietly.
        """
        service = self.make_service()
        self.broker.accept()
        self.broker.send(self.broker.frames.start())
        stopped = service.stopService()
        self.assertTrue(self.broker.transport.disconnecting)
        self.broker.lose()
        self.successResultOf(stopped)
        self.assertNotIn("cannot consume", " ".join(self.texts()))

    def test_stop_while_disconnected(self) -> None:
        """
        Stopping while waiting to reconnect cancels the reconnection.
        """
        service = self.make_service()
        self.broker.set_up()
        self.broker.lose()
        self.successResultOf(service.stopService())
        self.reactor.advance(60)
        self.assertEqual(self.reactor.tcpClients, [])


class OptionsTests(SynchronousTestCase):
    """
    The plugin's command line.
    """

    def parse(self, *args: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(args))
        return options

    def test_defaults(self) -> None:
        """
        Only the queue and handler are needed; the handler is resolved.
        """
        options = self.parse("--queue", "q", "--handler", "tests.test_service.record")
        self.assertEqual(options["url"], "amqp://guest:guest@127.0.0.1:5672/")
        self.assertEqual(options["queue"], "q")
        self.assertIs(options["handler"], record)
        self.assertEqual(options["prefetch"], 10)
        self.assertFalse(options["requeue-on-failure"])
        self.assertFalse(options["no-declare"])

    def test_everything(self) -> None:
        """
        Every option is read.
        """
        options = self.parse(
            "--url=amqp://u:p@broker:5673/v",
            "-q",
            "q",
            "--handler=examples.handler.show",
            "--prefetch=3",
            "--requeue-on-failure",
            "--no-declare",
        )
        from examples.handler import show

        self.assertEqual(options["url"], "amqp://u:p@broker:5673/v")
        self.assertIs(options["handler"], show)
        self.assertEqual(options["prefetch"], 3)
        self.assertTrue(options["requeue-on-failure"])
        self.assertTrue(options["no-declare"])

    def test_required(self) -> None:
        """
        Without C{--queue} or C{--handler} parsing fails, naming the option.
        """
        with self.assertRaises(UsageError) as queue:
            self.parse("--handler", "tests.test_service.record")
        self.assertIn("--queue", str(queue.exception))
        with self.assertRaises(UsageError) as handler:
            self.parse("--queue", "q")
        self.assertIn("--handler", str(handler.exception))

    def test_bad_values(self) -> None:
        """
        A URI that is not AMQP, or a prefetch count that is not a short
        number, is a usage error.
        """
        base = ["--queue", "q", "--handler", "tests.test_service.record"]
        with self.assertRaises(UsageError) as url:
            self.parse(*base, "--url", "http://u:hidden@host/")
        self.assertIn("--url", str(url.exception))
        self.assertNotIn("hidden", str(url.exception))
        for prefetch in ("many", "-1", "65536"):
            with self.assertRaises(UsageError):
                self.parse(*base, "--prefetch", prefetch)

    def test_make_service(self) -> None:
        """
        C{makeService} builds a L{ConsumerService} from the options.
        """
        options = self.parse(
            "--queue",
            "q",
            "--handler",
            "tests.test_service.record",
            "-p",
            "4",
            "--requeue-on-failure",
        )
        service = tap.makeService(options)
        self.assertIsInstance(service, ConsumerService)
        self.assertEqual((service.queue, service.prefetch), ("q", 4))
        self.assertTrue(service.requeue_on_failure)
        self.assertFalse(service.running)


class HandlerResolutionTests(SynchronousTestCase):
    """
    C{--handler} names a callable by its dotted name.
    """

    def assert_refused(self, name: str, *fragments: str) -> None:
        with self.assertRaises(UsageError) as caught:
            tap.resolve_handler(name)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_resolves(self) -> None:
        """
        A dotted name resolves to the callable it names.
        """
        self.assertIs(tap.resolve_handler("tests.test_service.record"), record)

    def test_not_dotted(self) -> None:
        """
        A name without a module, or with empty or odd parts, is refused.
        """
        for name in ("record", "", "tests..record", ".tests.record", "tests.test-service.x"):
            self.assert_refused(name, "dotted name")

    def test_missing(self) -> None:
        """
        A missing module or attribute is named in the error.
        """
        self.assert_refused("no_such_module_txn.handler", "cannot be found")
        self.assert_refused("tests.test_service.no_such_handler", "cannot be found")

    def test_not_callable(self) -> None:
        """
        A name that resolves to something not callable is refused.
        """
        self.assert_refused("tests.test_service.NOT_CALLABLE", "not a callable", "int")

    def test_import_error(self) -> None:
        """
        A module that fails to import gives a usage error with the cause.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "txn_broken_handler.py").write_text("raise RuntimeError('boom')\n")
        sys.path.insert(0, str(directory))
        self.addCleanup(sys.path.remove, str(directory))
        self.addCleanup(sys.modules.pop, "txn_broken_handler", None)
        self.assert_refused("txn_broken_handler.handle", "RuntimeError", "boom")


class PluginTests(SynchronousTestCase):
    """
    twistd finds the plugin.
    """

    def test_plugin(self) -> None:
        """
        The C{txamqp_next} service maker is found and names
        L{txamqp_next.tap}.
        """
        import twisted.plugins

        makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
        maker = makers["txamqp_next"]
        self.assertEqual(maker.module, "txamqp_next.tap")
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)

    def test_no_package_init(self) -> None:
        """
        The repository's C{twisted/} holds no C{__init__.py} that would
        shadow Twisted's package.
        """
        root = Path(__file__).resolve().parent.parent / "twisted"
        self.assertEqual(sorted(p.name for p in root.rglob("__init__.py")), [])
