# -*- test-case-name: tests.integration.test_service -*-
"""
L{txamqp_next.service.ConsumerService} and the C{txamqp_next} twistd plugin
against a real RabbitMQ (C{TXAMQP_NEXT_BROKER_URL}, by default
C{amqp://guest:guest@127.0.0.1:5672/}).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

import txamqp_next
from tests.integration.nodes import spare_ports
from txamqp_next import AMQPConnection, Channel, Message
from txamqp_next.service import ConsumerService


def spare_port() -> int:
    """
    A loopback port nothing listens on.
    """
    [port] = spare_ports(1)
    return port


BROKER_URL = os.environ.get("TXAMQP_NEXT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 15.0


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _fast_retry(attempt: int) -> float:
    return 0.2


async def sleep(seconds: float) -> None:
    await task.deferLater(_reactor(), seconds, lambda: None)


async def wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """
    Poll C{condition} until it is true.

    @raise AssertionError: it is still false after C{timeout} seconds.
    """
    deadline = _reactor().seconds() + timeout
    while not condition():
        if _reactor().seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await sleep(0.02)


class ServiceTestCase(TestCase):
    """
    A control connection to the broker and a fresh, non-durable queue
    (with a dead-letter queue), deleted after each test.
    """

    async def setUp(self) -> None:
        try:
            self.control: AMQPConnection = await txamqp_next.connect(
                _reactor(), BROKER_URL, connection_timeout=5
            )
        except Exception as e:
            self.fail(
                f"no RabbitMQ answers at {txamqp_next.parse_url(BROKER_URL)!r} ({e}). "
                "Start one with 'sudo rabbitmq-server -detached' (or './scripts/dev setup'), "
                "or point TXAMQP_NEXT_BROKER_URL at one."
            )
        self.addCleanup(self.control.close)
        self.channel: Channel = await self.control.open_channel()
        name = f"txamqp-next-test-service-{uuid.uuid4().hex[:12]}"
        self.queue = name
        self.dead = f"{name}-dead"
        await self.declare(self.dead)
        await self.declare(
            self.queue,
            {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.dead},
        )
        self.handled: list[bytes] = []

    async def declare(self, queue: str, arguments: dict[str, Any] | None = None) -> None:
        await self.channel.queue_declare(queue=queue, arguments=arguments or {})
        self.addCleanup(self.delete, queue)

    async def delete(self, queue: str) -> None:
        if self.channel.closed is not None:
            self.channel = await self.control.open_channel()
        await self.channel.queue_delete(queue=queue)

    async def publish(self, *bodies: bytes, queue: str | None = None) -> None:
        for body in bodies:
            await self.channel.basic_publish(routing_key=queue or self.queue, body=body)

    async def counts(self, queue: str | None = None) -> tuple[int, int]:
        """
        @return: the queue's ready messages and consumers.
        """
        ok = await self.channel.queue_declare(queue=queue or self.queue, passive=True)
        return ok.message_count, ok.consumer_count

    def record(self, message: Message) -> None:
        self.handled.append(message.body)

    async def start(self, handler: Any = None, **kwargs: Any) -> ConsumerService:
        """
        Start a service on the test queue and wait until it consumes.
        """
        kwargs.setdefault("declare", False)
        kwargs.setdefault("retry_policy", _fast_retry)
        service = ConsumerService(
            _reactor(), BROKER_URL, self.queue, handler or self.record, **kwargs
        )
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        await service.when_consuming(fail_after_failures=1).addTimeout(TIMEOUT, _reactor())
        return service


class ConsumingTests(ServiceTestCase):
    """
    Handling, acknowledging and rejecting messages.
    """

    async def test_consumes_and_acks(self) -> None:
        """
        Five published messages reach the handler in order and are
        acknowledged: after the service stopped, none is back in the queue.
        """
        service = await self.start()
        bodies = [f"message {n}".encode() for n in range(5)]
        await self.publish(*bodies)
        await wait_for(lambda: len(self.handled) == 5, "5 messages handled")
        self.assertEqual(self.handled, bodies)
        await service.stopService()
        self.assertEqual(await self.counts(), (0, 0))

    async def test_failure_rejects(self) -> None:
        """
        A message whose handler fails is rejected without requeueing (it is
        dead-lettered) and the failure logged; the others are acknowledged.
        """

        def handler(message: Message) -> None:
            self.handled.append(message.body)
            if message.body == b"bad":
                raise ValueError("cannot handle this one")

        service = await self.start(handler)
        await self.publish(b"good 1", b"bad", b"good 2")
        await wait_for(lambda: len(self.handled) == 3, "3 messages handled")
        await service.stopService()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(await self.counts(), (0, 0))
        dead = await self.channel.basic_get(queue=self.dead, no_ack=True)
        assert dead is not None
        self.assertEqual(dead.body, b"bad")

    async def test_requeue_on_failure(self) -> None:
        """
        With C{requeue_on_failure} a failed message comes back, and is
        acknowledged once its handler succeeds.
        """

        def handler(message: Message) -> None:
            self.handled.append(message.body)
            if not message.redelivered:
                raise ValueError("first time fails")

        service = await self.start(handler, requeue_on_failure=True)
        await self.publish(b"retry me")
        await wait_for(lambda: len(self.handled) == 2, "the message handled twice")
        await service.stopService()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(await self.counts(), (0, 0))
        self.assertEqual(await self.counts(self.dead), (0, 0))

    async def test_deferred_holds_ack(self) -> None:
        """
        A handler's L{Deferred} holds the acknowledgement: with a prefetch
        of one, the next message is not delivered until it fires.
        """
        pending: list[Deferred[None]] = []

        def handler(message: Message) -> Deferred[None]:
            self.handled.append(message.body)
            pending.append(Deferred())
            return pending[-1]

        service = await self.start(handler, prefetch=1)
        await self.publish(b"first", b"second")
        await wait_for(lambda: self.handled == [b"first"], "the first message")
        await sleep(0.3)
        self.assertEqual(self.handled, [b"first"])
        self.assertEqual(await self.counts(), (1, 1))
        pending[0].callback(None)
        await wait_for(lambda: len(self.handled) == 2, "the second message")
        pending[1].callback(None)
        await service.stopService()
        self.assertEqual(await self.counts(), (0, 0))

    async def test_stop_waits_for_handler(self) -> None:
        """
        C{stopService} waits for a running handler and acknowledges its
        message before closing the connection.
        """
        pending: Deferred[None] = Deferred()

        def handler(message: Message) -> Deferred[None]:
            self.handled.append(message.body)
            return pending

        service = await self.start(handler)
        await self.publish(b"slow")
        await wait_for(lambda: self.handled == [b"slow"], "the message")
        stopped = service.stopService()
        await sleep(0.3)
        self.assertNoResult(stopped)
        _reactor().callLater(0.1, pending.callback, None)
        await stopped
        self.assertEqual(await self.counts(), (0, 0))

    async def test_declares_durable_queue(self) -> None:
        """
        With C{declare=True} the service declares its queue, durable.
        """
        self.queue = f"txamqp-next-test-service-durable-{uuid.uuid4().hex[:12]}"
        self.addCleanup(self.delete, self.queue)
        service = await self.start(declare=True)
        await self.publish(b"durable")
        await wait_for(lambda: self.handled == [b"durable"], "the message")
        await service.stopService()
        self.assertEqual(await self.counts(), (0, 0))
        ok = await self.channel.queue_declare(queue=self.queue, durable=True)
        self.assertEqual(ok.queue, self.queue)


class FailurePolicyTests(ServiceTestCase):
    """
    Redelivery limits, delays and dead-lettering, on classic and quorum
    queues.
    """

    def always_fails(self, message: Message) -> None:
        self.handled.append(message.body)
        raise ValueError("cannot handle it")

    async def dead_message(self) -> Message:
        for _ in range(250):
            message = await self.channel.basic_get(queue=self.dead, no_ack=True)
            if message is not None:
                return message
            await sleep(0.02)
        raise AssertionError("nothing was dead-lettered")

    async def test_classic_limit(self) -> None:
        """
        On a classic queue, a message that always fails is handled
        1 + C{max_redeliveries} times (the service counts in a header), then
        dead-lettered.
        """
        service = await self.start(self.always_fails, max_redeliveries=2, redelivery_delay=0.05)
        await self.publish(b"poison")
        dead = await self.dead_message()
        self.assertEqual(dead.body, b"poison")
        self.assertEqual(dead.headers["x-txamqp-next-retries"], 2)
        self.assertEqual(self.handled, [b"poison"] * 3)
        await service.stopService()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 3)
        self.assertEqual(await self.counts(), (0, 0))

    async def test_quorum_limit(self) -> None:
        """
        On a quorum queue the service declares (with C{queue_arguments}),
        the broker counts the deliveries and C{x-delivery-limit} applies: a
        message that always fails is handled 1 + C{max_redeliveries} times,
        then dead-lettered.
        """
        self.queue = f"{self.queue}-quorum"
        self.addCleanup(self.delete, self.queue)
        arguments = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dead,
        }
        service = await self.start(
            self.always_fails,
            declare=True,
            queue_arguments=arguments,
            max_redeliveries=2,
            redelivery_delay=0.05,
        )
        await self.publish(b"poison")
        dead = await self.dead_message()
        self.assertEqual(dead.body, b"poison")
        self.assertEqual(self.handled, [b"poison"] * 3)
        await service.stopService()
        self.flushLoggedErrors(ValueError)
        # the broker holds the queue's delivery limit: declaring it without
        # one is refused
        await self.assertFailure(
            self.channel.queue_declare(
                queue=self.queue,
                durable=True,
                arguments=arguments,
            ),
            txamqp_next.errors.PreconditionFailed,
        )

    async def test_broker_enforces_quorum_limit(self) -> None:
        """
        The C{x-delivery-limit} the service declares on a quorum queue is
        the broker's: a consumer that keeps returning a message (as one
        that dies on it would) sees it 1 + C{max_redeliveries} times, then
        the broker dead-letters it.
        """
        self.queue = f"{self.queue}-quorum-limit"
        self.addCleanup(self.delete, self.queue)
        arguments = {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dead,
        }
        service = await self.start(declare=True, queue_arguments=arguments, max_redeliveries=2)
        await service.stopService()
        await self.publish(b"returned every time")
        deliveries: list[Message] = []

        def give_back(message: Message) -> None:
            deliveries.append(message)
            message.nack(requeue=True)

        channel = await self.control.open_channel()
        await channel.basic_consume(queue=self.queue, callback=give_back)
        dead = await self.dead_message()
        await channel.close()
        self.assertEqual(dead.body, b"returned every time")
        self.assertEqual(len(deliveries), 3)

    async def test_delay_paces_failures(self) -> None:
        """
        A handler that always fails, with C{requeue_on_failure}, is called
        about once per C{redelivery_delay} per prefetch slot, not in a hot
        loop.
        """
        from twisted.logger import Logger

        service = await self.start(
            self.always_fails, requeue_on_failure=True, redelivery_delay=0.2, prefetch=1
        )
        await self.publish(b"again and again")
        await sleep(2.0)
        await service.stopService()
        paced = len(self.handled)
        self.flushLoggedErrors(ValueError)
        self.assertGreaterEqual(paced, 5)
        self.assertLessEqual(paced, 11)
        # for comparison: no delay, the broker redelivers at once
        self.handled.clear()
        service = await self.start(
            self.always_fails, requeue_on_failure=True, redelivery_delay=0, prefetch=1
        )
        await sleep(0.5)
        await service.stopService()
        unpaced = len(self.handled)
        self.flushLoggedErrors(ValueError)
        Logger().info(
            "service figures: a handler that always fails, prefetch 1: {paced} calls in 2 s "
            "with a 0.2 s delay, {unpaced} calls in 0.5 s without",
            paced=paced,
            unpaced=unpaced,
        )


class PermanentErrorTests(ServiceTestCase):
    """
    Errors that retrying cannot mend stop the service with one log line.
    """

    async def stopped_by(self, url: str, error: type[Exception], **kwargs: Any) -> list[str]:
        from twisted.logger import formatEvent, globalLogPublisher

        events: list[Any] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        kwargs.setdefault("retry_policy", _fast_retry)
        service = ConsumerService(_reactor(), url, self.queue, self.record, **kwargs)
        service.startService()
        await self.assertFailure(service.when_consuming().addTimeout(TIMEOUT, _reactor()), error)
        await wait_for(lambda: not service.running, "the service to stop")
        self.assertIsInstance(service.failed, error)
        return [formatEvent(e) for e in events if e["log_level"].name == "error"]

    async def test_wrong_password(self) -> None:
        """
        Refused credentials (403) stop the service; the password is not
        logged.
        """
        url = BROKER_URL.replace("guest:guest", "guest:not-the-password")
        [line] = await self.stopped_by(url, txamqp_next.errors.AuthenticationError)
        self.assertIn("ACCESS_REFUSED", line)
        self.assertNotIn("not-the-password", line)

    async def test_missing_vhost(self) -> None:
        """
        A virtual host that does not exist (530) stops the service.
        """
        url = BROKER_URL.rstrip("/") + "/no-such-vhost-" + uuid.uuid4().hex[:8]
        [line] = await self.stopped_by(url, txamqp_next.errors.NotAllowed)
        self.assertIn("NOT_ALLOWED", line)

    async def test_inequivalent_arguments(self) -> None:
        """
        A queue that exists with other arguments (the test queue has a
        dead-letter exchange) stops the service, saying what to do.
        """
        [line] = await self.stopped_by(
            BROKER_URL, txamqp_next.errors.PreconditionFailed, declare=True
        )
        self.assertIn("PRECONDITION_FAILED", line)
        self.assertIn("queue_arguments", line)

    async def test_existing_quorum_queue(self) -> None:
        """
        An existing quorum queue is consumed when the service is given its
        arguments.
        """
        self.queue = f"{self.queue}-existing-quorum"
        await self.channel.queue_declare(
            queue=self.queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        self.addCleanup(self.delete, self.queue)
        service = await self.start(declare=True, queue_arguments={"x-queue-type": "quorum"})
        await self.publish(b"quorum")
        await wait_for(lambda: self.handled == [b"quorum"], "the message")
        await service.stopService()


class ReconnectionTests(ServiceTestCase):
    """
    The service survives losing its connection.
    """

    async def test_reconnects(self) -> None:
        """
        After its connection is dropped, the service reconnects and goes on
        consuming.
        """
        service = await self.start()
        first = await service.when_consuming()
        await self.publish(b"before")
        await wait_for(lambda: self.handled == [b"before"], "the first message")
        first.transport.abortConnection()
        await wait_for(lambda: first.closed is not None, "the connection lost")
        second = await service.when_consuming().addTimeout(TIMEOUT, _reactor())
        self.assertIsNot(second, first)
        await self.publish(b"after")
        await wait_for(lambda: len(self.handled) == 2, "the second message")
        self.assertEqual(self.handled, [b"before", b"after"])
        await service.stopService()
        self.assertEqual(await self.counts(), (0, 0))


class TwistdTests(ServiceTestCase):
    """
    C{twistd txamqp_next} runs the service from the command line.
    """

    def twistd(
        self, *options: str, env: dict[str, str] | None = None
    ) -> tuple[Any, Path, Callable[[str], Callable[[], bool]]]:
        """
        Start C{twistd -n txamqp_next --handler examples.handler.show} with
        C{options}.

        @return: the process, its log file, and C{logged(text)}, a check
            that C{text} is in the log (which fails if twistd exited).
        """
        log = Path(self.mktemp()).resolve()
        log.parent.mkdir(parents=True, exist_ok=True)
        twistd = "from twisted.scripts.twistd import run; run()"
        argv = [sys.executable, "-c", twistd, "-n", "--pidfile=", f"--logfile={log}"]
        argv += ["txamqp_next", *options, "--handler", "examples.handler.show"]
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(lambda: process.poll() is None and process.kill())

        def logged(text: str) -> Callable[[], bool]:
            def check() -> bool:
                if process.poll() is not None:
                    output = process.stdout.read() if process.stdout else b""
                    raise AssertionError(
                        f"twistd exited with {process.returncode}:\n{output.decode()}\n"
                        + (log.read_text() if log.exists() else "")
                    )
                return log.exists() and text in log.read_text()

            return check

        return process, log, logged

    async def test_twistd_settings_file(self) -> None:
        """
        Settings from a file and the environment, as an operator gives
        them: a list of brokers whose first is down (the service fails over
        to the second), queue arguments, and the password nowhere on the
        command line or in the log.
        """
        queue = f"txamqp-next-test-twistd-file-{uuid.uuid4().hex[:12]}"
        self.addCleanup(self.delete, queue)
        params = txamqp_next.parse_url(BROKER_URL)
        assert params.credentials is not None
        password = params.credentials.password
        dead = f"127.0.0.1:{spare_port()}"
        url = BROKER_URL.replace(
            f"@{params.host}:{params.port}", f"@{dead},{params.host}:{params.port}"
        )
        self.assertIn(dead, url)
        settings = Path(self.mktemp()).resolve()
        settings.write_text(
            "# the consumer of the tests\n"
            f"url = {url}\n"
            "queue-argument = x-max-length=100\n"
            "max-redeliveries = 2\n"
        )
        process, log, logged = self.twistd(
            "--config", str(settings), env={"TXAMQP_NEXT_QUEUE": queue}
        )
        await wait_for(logged(f"consuming from queue {queue}"), "twistd to consume", 30)
        await self.publish(b"from a settings file", queue=queue)
        await wait_for(logged("received b'from a settings file'"), "the message logged")
        process.send_signal(signal.SIGTERM)
        await wait_for(lambda: process.poll() is not None, "twistd to exit")
        text = log.read_text()
        self.assertIn(f"cannot reach amqp://{dead}", text)
        self.assertNotIn(password, text)
        # the queue was declared with the file's arguments
        await self.assertFailure(
            self.channel.queue_declare(queue=queue, durable=True),
            txamqp_next.errors.PreconditionFailed,
        )

    async def test_twistd(self) -> None:
        """
        C{twistd -n txamqp_next --queue Q --handler examples.handler.show}
        declares the queue, logs a published message's body, and on SIGTERM
        stops cleanly: the consumer is gone and nothing is left unacknowledged.
        """
        queue = f"txamqp-next-test-twistd-{uuid.uuid4().hex[:12]}"
        self.addCleanup(self.delete, queue)
        process, log, logged = self.twistd("--url", BROKER_URL, "--queue", queue)
        await wait_for(logged(f"consuming from queue {queue}"), "twistd to consume", 30)
        await self.publish(b"hello from the test", queue=queue)
        await wait_for(logged("received b'hello from the test'"), "the message logged")
        process.send_signal(signal.SIGTERM)
        await wait_for(lambda: process.poll() is not None, "twistd to exit")
        text = log.read_text()
        # twistd re-raises the signal it stopped for, as its exit status.
        self.assertEqual(process.returncode, -signal.SIGTERM, text)
        self.assertIn(f"stopped consuming from queue {queue}", text)
        self.assertIn("Server Shut Down.", text)
        self.assertNotIn("Traceback", text)
        self.assertNotIn(BROKER_URL, text)
        self.assertEqual(await self.counts(queue), (0, 0))
