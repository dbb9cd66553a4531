# -*- test-case-name: tests.test_service -*-
"""
Tests for L{txamqp_next.service.ConsumerService}, against fake brokers on
a L{Clock} (L{txamqp_next.testing.MemoryBroker}) and, for URIs, a memory reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import flush_brokers
from txamqp_next import Message
from txamqp_next._methods import Method
from txamqp_next._params import ConnectionParameters, Credentials
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import Broker
from txamqp_next.errors import AuthenticationError, NotFound, PreconditionFailed
from txamqp_next.service import RETRIES_HEADER, ConsumerService
from txamqp_next.testing import MemoryBroker
from txamqp_next.testing import Message as TestMessage

URL = "amqp://app:s3cret@127.0.0.1:5672/"
QUEUE = "jobs"
PARAMS = ConnectionParameters(credentials=Credentials(), heartbeat=0)


def record(message: Message) -> None:
    """
    A handler that is never called.
    """


class ServiceTestCase(SynchronousTestCase):
    """
    A L{ConsumerService} of fake brokers on a clock, with its log captured.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(self.clock)
        self.brokers = [self.broker]
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.handled: list[Message] = []

    def make_service(
        self, handler: Any = None, *brokers: MemoryBroker, **kwargs: Any
    ) -> ConsumerService:
        kwargs.setdefault("retry_policy", lambda attempt: 1.0)
        fakes = brokers or (self.broker,)
        self.brokers.extend(b for b in fakes if b not in self.brokers)
        service = ConsumerService(
            self.clock,
            [Broker(PARAMS, fake, f"fake{i}") for i, fake in enumerate(fakes)],
            QUEUE,
            handler or self.handled.append,
            **kwargs,
        )
        service.startService()
        self.flush()
        return service

    def flush(self) -> None:
        """
        Let the clients talk with every broker of this test until all are
        quiet.
        """
        flush_brokers(self.brokers)

    def sent(self, name: str) -> list[Method]:
        """
        The methods called C{name} the client sent on the latest
        connection.
        """
        return [method for _, method in self.broker.current.methods if name == method.NAME]

    def settled(self) -> list[tuple[str, int, Any]]:
        """
        C{(method name, delivery tag, requeue)} for each ack, nack and
        reject the client sent.
        """
        return [
            (name, method.delivery_tag, getattr(method, "requeue", None))
            for _, name, method in self.broker.settled
        ]

    def deliver(self, body: bytes = b"body", headers: dict[str, Any] | None = None) -> int:
        """
        Publish a message to the queue from outside and let the broker
        deliver it.

        @return: its delivery tag on the consumer's channel.
        """
        self.assertEqual(
            self.broker.publish(QUEUE, body, properties={"headers": headers} if headers else None),
            [QUEUE],
        )
        self.flush()
        [channel] = [c for c in self.broker.current.channels.values() if c.consumers]
        return channel.next_tag - 1

    def texts(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def errors(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e["log_level"].name in ("error", "critical")]


class SetUpTests(ServiceTestCase):
    """
    The service declares its queue, sets QoS and consumes; errors that
    retrying cannot mend stop it.
    """

    def test_consuming(self) -> None:
        """
        The queue is declared durable with its arguments, QoS set, and the
        consumer started; C{when_consuming} fires with the connection.
        """
        service = self.make_service(prefetch=7, queue_arguments={"x-max-length": 10})
        connection = self.successResultOf(service.when_consuming())
        self.assertIsInstance(connection, AMQPConnection)
        [declare] = self.sent("queue.declare")
        self.assertEqual(
            (declare.queue, declare.durable, declare.passive, declare.arguments),
            (QUEUE, True, False, {"x-max-length": 10}),
        )
        [qos] = self.sent("basic.qos")
        self.assertEqual(qos.prefetch_count, 7)
        [consume] = self.sent("basic.consume")
        self.assertEqual((consume.queue, consume.no_ack), (QUEUE, False))
        self.assertEqual(self.sent("confirm.select"), [])
        self.assertIn("consuming from queue jobs at fake0 (prefetch 7)", " ".join(self.texts()))

    def test_waits_for_consuming(self) -> None:
        """
        Until the consumer runs, C{when_consuming} waits; callbacks may ask
        again.
        """
        self.broker.accepting = False
        service = self.make_service()
        again: list[Deferred[AMQPConnection]] = []
        ready = service.when_consuming()
        ready.addCallback(lambda _: again.append(service.when_consuming()))
        self.assertNoResult(ready)
        self.broker.accepting = True
        self.clock.advance(1)
        self.flush()
        self.successResultOf(ready)
        self.assertIsInstance(self.successResultOf(again[0]), AMQPConnection)

    def test_passive_declare(self) -> None:
        """
        With C{declare=False} the queue is only checked, so a queue with
        any arguments (a quorum queue) can be consumed as it is.
        """
        self.broker.declare_queue(QUEUE)
        self.make_service(declare=False)
        [declare] = self.sent("queue.declare")
        self.assertEqual((declare.queue, declare.passive), (QUEUE, True))

    def test_quorum_delivery_limit(self) -> None:
        """
        A quorum queue with C{max_redeliveries} is declared with RabbitMQ's
        C{x-delivery-limit}, which the broker enforces; no confirm mode is
        needed.
        """
        self.make_service(queue_arguments={"x-queue-type": "quorum"}, max_redeliveries=3)
        [declare] = self.sent("queue.declare")
        self.assertEqual(declare.arguments, {"x-queue-type": "quorum", "x-delivery-limit": 3})
        self.assertEqual(self.sent("confirm.select"), [])

    def test_classic_retries_use_confirms(self) -> None:
        """
        On other queues, C{max_redeliveries} puts the channel in confirm
        mode: failed messages go back as confirmed copies.
        """
        self.make_service(max_redeliveries=3)
        self.assertEqual(len(self.sent("confirm.select")), 1)
        [declare] = self.sent("queue.declare")
        self.assertEqual(declare.arguments, {})

    def test_connection_name(self) -> None:
        """
        The connection is named after the queue unless told otherwise.
        """
        self.make_service()
        [start_ok] = self.sent("connection.start-ok")
        self.assertEqual(
            start_ok.client_properties["connection_name"], "txamqp_next consumer of jobs"
        )
        other = MemoryBroker(self.clock)
        self.make_service(None, other, connection_name="billing")
        [start_ok] = [m for _, m in other.current.methods if m.NAME == "connection.start-ok"]
        self.assertEqual(start_ok.client_properties["connection_name"], "billing")

    def test_brokers_from_uris(self) -> None:
        """
        A URI may name several brokers; the service logs them without the
        password.
        """
        service = ConsumerService(
            MemoryReactorClock(), "amqp://app:s3cret@h1,h2:5673/v", QUEUE, record
        )
        self.assertEqual(
            [b.name for b in service.brokers],
            ["amqp://h1:5672 vhost 'v'", "amqp://h2:5673 vhost 'v'"],
        )
        self.assertNotIn("s3cret", repr(service))

    def test_bad_arguments(self) -> None:
        """
        An invalid URI or option is refused at once.
        """
        reactor = MemoryReactorClock()
        for args, kwargs in [
            (("http://host/",), {}),
            ((URL,), {"prefetch": 70000}),
            ((URL,), {"max_redeliveries": -1}),
            ((URL,), {"redelivery_delay": -1.0}),
        ]:
            with self.assertRaises(ValueError):
                ConsumerService(reactor, *args, QUEUE, record, **kwargs)

    def assertStops(self, service: ConsumerService, error: type[Exception], *hints: str) -> None:
        """
        The service stopped for good with C{error}, in one error line that
        holds C{hints}, and makes no further attempt.
        """
        self.assertIsInstance(service.failed, error)
        self.assertFalse(service.running)
        self.failureResultOf(service.when_consuming(), error)
        [line] = self.errors()
        for hint in hints:
            self.assertIn(hint, line)
        attempts = self.broker.attempts
        self.clock.advance(120)
        self.flush()
        self.assertEqual(self.broker.attempts, attempts)

    def test_missing_queue_stops(self) -> None:
        """
        With C{declare=False}, a missing queue stops the service with a
        line that says what to do.
        """
        service = self.make_service(declare=False)
        self.assertStops(service, NotFound, "consumer of queue jobs", "NOT_FOUND", "declare")

    def test_inequivalent_queue_stops(self) -> None:
        """
        A queue that exists with other arguments (PRECONDITION_FAILED)
        stops the service, pointing to C{queue_arguments} and
        C{declare=False}, instead of retrying for ever.
        """
        self.broker.declare_queue(QUEUE, arguments={"x-max-length": 1})
        service = self.make_service()
        self.assertStops(service, PreconditionFailed, "queue_arguments", "declare=False")

    def test_refused_login_stops(self) -> None:
        """
        Refused credentials stop the service.
        """
        self.broker.users["guest"] = "another password"
        service = self.make_service()
        self.assertStops(service, AuthenticationError, "ACCESS_REFUSED")

    def test_connect_failure_retried(self) -> None:
        """
        A broker that cannot be reached is logged and retried; with
        C{fail_after_failures}, C{when_consuming} fails.
        """
        self.broker.accepting = False
        service = self.make_service()
        ready = service.when_consuming(fail_after_failures=2)
        self.clock.advance(1)
        self.flush()
        self.assertNoResult(ready)
        self.clock.advance(1)
        self.flush()
        self.failureResultOf(ready)
        self.assertIn("cannot reach fake0", " ".join(self.texts()))
        self.assertTrue(service.running)
        self.broker.accepting = True
        self.clock.advance(1)
        self.flush()
        self.successResultOf(service.when_consuming())

    def test_failover(self) -> None:
        """
        The service fails over to the next broker of its list when the one
        it used goes away.
        """
        other = MemoryBroker(self.clock)
        service = self.make_service(None, self.broker, other)
        self.broker.stop()
        self.clock.advance(1)
        self.flush()
        self.successResultOf(service.when_consuming())
        other.publish(QUEUE, b"moved")
        self.flush()
        self.assertEqual([m.body for m in self.handled], [b"moved"])
        self.assertIn("consuming from queue jobs at fake1", " ".join(self.texts()))


class MessageTests(ServiceTestCase):
    """
    Messages are acknowledged after their handler succeeds; a failed one is
    rejected, or sent back to the queue after a delay, with one log line.
    """

    def test_ack_after_handler(self) -> None:
        """
        A handler that returns normally gets its message acknowledged.
        """
        self.make_service()
        tag = self.deliver(b"one")
        self.assertEqual([m.body for m in self.handled], [b"one"])
        self.assertEqual(self.settled(), [("basic.ack", tag, None)])

    def test_ack_waits_for_deferred(self) -> None:
        """
        A handler's L{Deferred} holds the acknowledgement until it fires.
        """
        pending: Deferred[None] = Deferred()
        self.make_service(handler=lambda message: pending)
        self.deliver()
        self.assertEqual(self.settled(), [])
        pending.callback(None)
        self.flush()
        self.assertEqual([name for name, _, _ in self.settled()], ["basic.ack"])

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
        self.deliver(b"co")
        self.assertEqual(self.settled(), [])
        pending.callback(None)
        self.flush()
        self.assertEqual(bodies, [b"co"])
        self.assertEqual([name for name, _, _ in self.settled()], ["basic.ack"])

    def fail_always(self, message: Message) -> None:
        self.handled.append(message)
        raise ValueError("bad message")

    def failure_lines(self) -> list[str]:
        self.flushLoggedErrors(ValueError)
        return [t for t in self.texts() if "handler failed" in t]

    def test_failure_rejects_and_logs(self) -> None:
        """
        By default a handler that raises gets its message rejected without
        requeueing, with one log line (and the traceback) that says so.
        """
        self.make_service(handler=self.fail_always)
        tag = self.deliver()
        self.assertEqual(self.settled(), [("basic.reject", tag, False)])
        [line] = self.failure_lines()
        self.assertIn(f"message {tag} from queue jobs", line)
        self.assertIn("rejected", line)
        [event] = [e for e in self.events if "handler failed" in formatEvent(e)]
        self.assertIsInstance(event["log_failure"].value, ValueError)

    def test_dead_letter_exchange_named(self) -> None:
        """
        When the queue's arguments name a dead-letter exchange, the log line
        says the message goes there.
        """
        self.make_service(
            handler=self.fail_always, queue_arguments={"x-dead-letter-exchange": "dlx"}
        )
        self.deliver()
        [line] = self.failure_lines()
        self.assertIn("dead-lettered to exchange 'dlx'", line)

    def test_requeue_after_delay(self) -> None:
        """
        With C{requeue_on_failure} a failed message goes back to the queue,
        but only after C{redelivery_delay}: a handler that always fails is
        called about once a second per prefetch slot, not in a hot loop.
        """
        self.make_service(
            handler=self.fail_always, requeue_on_failure=True, redelivery_delay=1.0, prefetch=1
        )
        self.deliver()
        self.assertEqual(self.settled(), [])
        for _ in range(10):
            self.clock.advance(1.0)
            self.flush()
        self.assertEqual(len(self.handled), 11)
        self.assertEqual(
            {(name, requeue) for name, _, requeue in self.settled()}, {("basic.reject", True)}
        )
        lines = self.failure_lines()
        self.assertEqual(len(lines), 11)
        self.assertIn("goes back to the queue in 1.0s", lines[0])

    def test_quorum_redelivery_limit(self) -> None:
        """
        On a quorum queue the broker's C{x-delivery-count} counts: below
        C{max_redeliveries} the message is requeued after the delay; at the
        limit it is rejected for good.
        """
        self.make_service(
            handler=self.fail_always,
            queue_arguments={"x-queue-type": "quorum"},
            max_redeliveries=2,
            redelivery_delay=0.5,
        )
        first = self.deliver(b"a", {"x-delivery-count": 1})
        last = self.deliver(b"b", {"x-delivery-count": 2})
        self.assertEqual(self.settled(), [("basic.reject", last, False)])
        self.clock.advance(0.5)
        self.flush()
        self.assertEqual(self.settled()[1], ("basic.reject", first, True))
        lines = self.failure_lines()
        self.assertIn("retry 2 of 2", lines[0])
        self.assertIn("failed 3 times and is rejected", lines[1])

    def test_classic_redelivery_limit(self) -> None:
        """
        On other queues the service counts: a failed message goes back as a
        copy carrying the count in its headers (published to the queue and
        confirmed before the original is acknowledged); at the limit it is
        rejected for good.
        """
        self.make_service(handler=self.fail_always, max_redeliveries=2, redelivery_delay=0.5)
        tag = self.deliver(b"job", {"trace": "t1"})
        self.assertEqual(self.broker.published, [])
        self.clock.advance(0.5)
        self.flush()
        [copy] = self.broker.published
        self.assertEqual((copy.exchange, copy.routing_key), ("", QUEUE))
        self.assertEqual(copy.body, b"job")
        self.assertEqual(copy.properties.headers, {"trace": "t1", RETRIES_HEADER: 1})
        self.assertEqual(self.settled(), [("basic.ack", tag, None)])
        last = self.deliver(b"job", {RETRIES_HEADER: 2})
        self.assertEqual(self.settled()[1], ("basic.reject", last, False))
        # the copy, routed to the queue, failed once more in between
        lines = self.failure_lines()
        self.assertEqual(len(lines), 3)
        self.assertIn("retry 2 of 2", lines[1])

    def test_ack_after_connection_lost(self) -> None:
        """
        A handler that finishes after its connection was lost has its ack
        dropped with a log line: the broker redelivers the message.
        """
        pending: Deferred[None] = Deferred()
        self.make_service(handler=lambda message: pending)
        self.deliver()
        self.broker.current.lose()
        self.flush()
        pending.callback(None)
        self.flush()
        self.assertIn("ack of delivery 1 dropped", " ".join(self.texts()))
        self.assertEqual(self.settled(), [])


class ReconnectionTests(ServiceTestCase):
    """
    The service consumes again after the connection or consumer is lost.
    """

    def test_reconnects_after_connection_lost(self) -> None:
        """
        After the connection is lost, a new one declares the queue and
        consumes with the same handler.
        """
        service = self.make_service()
        self.broker.current.lose()
        self.flush()
        self.assertNoResult(service.when_consuming())
        self.clock.advance(1.0)
        self.flush()
        self.successResultOf(service.when_consuming())
        self.assertEqual(len(self.sent("queue.declare")), 1)
        tag = self.deliver(b"again")
        self.assertEqual([m.body for m in self.handled], [b"again"])
        self.assertEqual(self.settled(), [("basic.ack", tag, None)])
        self.assertEqual(" ".join(self.texts()).count("consuming from queue jobs"), 2)

    def test_consumer_cancelled_by_broker(self) -> None:
        """
        When the broker cancels the consumer (its queue was deleted), the
        service declares the queue again and consumes on a new channel.
        """
        service = self.make_service()
        self.broker.delete_queue(QUEUE)
        self.flush()
        self.assertNoResult(service.when_consuming())
        self.clock.advance(1.0)
        self.flush()
        self.successResultOf(service.when_consuming())
        self.assertEqual(len(self.sent("basic.consume")), 2)
        self.assertIn(QUEUE, self.broker.queues)
        self.deliver(b"after")
        self.assertEqual([m.body for m in self.handled], [b"after"])


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
        self.deliver()
        stopped = service.stopService()
        self.flush()
        self.assertEqual(len(self.sent("basic.cancel")), 1)
        self.assertEqual(self.sent("connection.close"), [])
        pending.callback(None)
        self.flush()
        self.assertEqual([name for name, _, _ in self.settled()], ["basic.ack"])
        self.assertEqual(len(self.sent("connection.close")), 1)
        self.assertIsNone(self.successResultOf(stopped))
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.assertEqual(self.broker.attempts, attempts)

    def test_stop_timeout(self) -> None:
        """
        A handler still running after C{stop_timeout} is given up on: the
        connection is closed and the broker will redeliver its message.
        """
        service = self.make_service(handler=lambda message: Deferred(), stop_timeout=5)
        self.deliver()
        stopped = service.stopService()
        self.flush()
        self.clock.advance(4.9)
        self.flush()
        self.assertEqual(self.sent("connection.close"), [])
        self.clock.advance(0.1)
        self.flush()
        self.assertEqual(len(self.sent("connection.close")), 1)
        self.successResultOf(stopped)
        self.assertIn("1 handlers still running", " ".join(self.texts()))

    def test_stop_cancels_waiting_retries(self) -> None:
        """
        A failed message waiting to go back to the queue is left
        unacknowledged at a stop (the broker redelivers it), without
        waiting for its delay.
        """

        def fail(message: Message) -> None:
            raise ValueError("no")

        service = self.make_service(handler=fail, requeue_on_failure=True, redelivery_delay=30)
        self.deliver()
        stopped = service.stopService()
        self.flush()
        self.successResultOf(stopped)
        self.assertEqual(self.settled(), [])
        self.flushLoggedErrors(ValueError)

    def test_no_new_handlers_while_stopping(self) -> None:
        """
        A message delivered after the consumer was cancelled (but before
        the broker confirmed) is not handled nor acknowledged.
        """
        service = self.make_service()
        channel = self.broker.current.methods[-1][0]
        tag = self.sent("basic.consume")[0].consumer_tag or "amq.ctag-2"
        stopped = service.stopService()
        self.broker.current.send_content(
            channel,
            "basic.deliver",
            TestMessage("", QUEUE, None, b"late"),
            consumer_tag=tag,
            delivery_tag=1,
            routing_key=QUEUE,
        )
        self.flush()
        self.assertEqual(self.handled, [])
        self.assertEqual(self.settled(), [])
        self.successResultOf(stopped)

    def test_stop_while_connecting(self) -> None:
        """
        Stopping while the broker is unreachable stops the retries quietly.
        """
        self.broker.accepting = False
        service = self.make_service()
        self.successResultOf(service.stopService())
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.assertEqual(self.broker.attempts, attempts)
        self.assertEqual(self.errors(), [])

    def test_stop_while_disconnected(self) -> None:
        """
        Stopping while waiting to reconnect cancels the reconnection.
        """
        service = self.make_service()
        self.broker.current.lose()
        self.flush()
        self.successResultOf(service.stopService())
        attempts = self.broker.attempts
        self.clock.advance(60)
        self.assertEqual(self.broker.attempts, attempts)

    def test_restart(self) -> None:
        """
        A stopped service can be started again.
        """
        service = self.make_service()
        stopped = service.stopService()
        self.flush()
        self.successResultOf(stopped)
        service.startService()
        self.flush()
        self.successResultOf(service.when_consuming())
