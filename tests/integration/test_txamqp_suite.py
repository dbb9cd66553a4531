# -*- test-case-name: tests.integration.test_txamqp_suite -*-
"""
txAMQP 0.8.2's own test suite passes on txamqp_next, against the real
broker, with each spec its test base can load: 0-9 (what it loads for
RabbitMQ), 0-8, 0-9-1 and RabbitMQ's 0-9-1.

The suite is txAMQP's sdist, with only its imports renamed and bodies
compared as bytes (see L{tests.txamqp_suite}).  Every test must end as
listed here: every broker test passes; the few unit tests that do not are
deliberate differences, each explained in C{docs/migrating-from-txamqp.md},
which these tests also check.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import threads
from twisted.trial.unittest import TestCase

from tests import txamqp_suite
from tests.integration.broker import async_test

DOCS = Path(__file__).parents[2] / "docs" / "migrating-from-txamqp.md"

#: txAMQP's own broker tests that do not pass on txamqp_next, by design:
#: none
DIFFERENT_BROKER_TESTS: dict[str, str] = {}

DIFFERENT_UNIT_TESTS = {
    # basic.consume sent on channel 0: txAMQP sent it, txamqp_next refuses it
    # with LocalProtocolError (a broker would close the connection with 503)
    "test_protocol.AMQClientTest.test_channel_close": "FAILURE",
    "test_protocol.AMQClientTest.test_connection_close_raises_error": "FAILURE",
    "test_protocol.AMQClientTest.test_connection_lost": "FAILURE",
    # close() sends connection.close before dropping the transport, so the
    # broker sees a clean close; txAMQP sent nothing
    "test_protocol.AMQClientTest.test_close": "FAILURE",
    # AMQPump completes the handshake, so `started` has fired already and
    # firing it again raises AlreadyFiredError
    "test_protocol.AMQClientTest.test_hearbeat_check_failure": "ERROR",
}

#: skipped by txAMQP's own decorators (tests for other brokers) or its
#: version checks (RabbitMQ 3 dropped immediate and 404 on queue.delete),
#: each with the reason below.  Run against RabbitMQ anyway (with
#: TXAMQP_BROKER=QPID), each fails on RabbitMQ's own refusal or semantics:
#: 540 NOT_IMPLEMENTED for no_local, basic.recover without requeue,
#: prefetch_size and channel.flow off; 403 on binding the default exchange;
#: 404 for a queue-less consume; 406 where Qpid answers 530; transactions
#: that do not requeue rolled-back acks (test_purge met 405 on its
#: "test-queue", a name the shared broker here already had a queue under).
#: The two version checks skip with the same reason.
SKIPPED = {
    "test_basic.BasicTests.test_ack",
    "test_basic.BasicTests.test_consume_no_local",
    "test_basic.BasicTests.test_consume_queue_unspecified",
    "test_basic.BasicTests.test_qos_prefetch_size",
    "test_broker.BrokerTests.test_basic_delivery_immediate",
    "test_broker.BrokerTests.test_channel_flow",
    "test_exchange.DefaultExchangeRuleTests.test_default_exchange",
    "test_exchange.MiscellaneousErrorsTests.test_different_declared_type",
    "test_queue.QueueTests.test_delete_non_existing",
    "test_queue.QueueTests.test_purge",
    "test_tx.TxTests.test_auto_rollback",
    "test_tx.TxTests.test_rollback",
}

#: the one reason txAMQP gives for all of them
SKIP_REASON = "Not supported for this broker."

#: the broker tests that run (and pass on txAMQP 0.8.2 itself with 0-8 and
#: 0-9): at least this many
BROKER_TESTS_RUN = 45


def _reactor_argument() -> list[str]:
    """
    Run the suite under the reactor this test runs under.
    """
    if os.environ.get("TXAMQP_NEXT_EXPECT_REACTOR") == "asyncio":
        return ["--reactor=asyncio"]
    return []


class TxAMQPSuiteTests(TestCase):
    """
    txAMQP's suite, one spec at a time.
    """

    timeout = 300

    def setUp(self) -> None:
        for spec in (
            txamqp_suite.SPEC_0_8,
            txamqp_suite.SPEC_0_9,
            txamqp_suite.SPEC_0_9_1,
            txamqp_suite.SPEC_0_9_1_RABBIT,
        ):
            if not spec.exists():
                self.fail(f"{spec} is missing: apt-get install amqp-specs (./scripts/dev does)")

    async def run_suite(
        self, spec: Path, modules: tuple[str, ...], expected: dict[str, str]
    ) -> dict[str, str]:
        done = await threads.deferToThread(
            txamqp_suite.run,
            str(spec),
            "txamqp_next",
            modules,
            ["--reporter=bwverbose", *_reactor_argument()],
        )
        found = {
            name.removeprefix("txamqp_suite."): result
            for name, result in txamqp_suite.results(done.stdout).items()
        }
        if not found:
            self.fail(f"the suite reported no results:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        reasons = {
            name.removeprefix("txamqp_suite."): reason
            for name, reason in txamqp_suite.skip_reasons(done.stdout).items()
        }
        skipped = {name for name, result in found.items() if result == "SKIPPED"}
        self.assertEqual(set(reasons), skipped, "a skipped test without its reason")
        for name, reason in reasons.items():
            self.assertEqual(reason, SKIP_REASON, f"{name} was skipped for another reason")
        different = {name: result for name, result in found.items() if result != "OK"}
        wanted = {**expected, **{name: "SKIPPED" for name in SKIPPED if name in found}}
        if different != wanted:
            unexpected = {k: v for k, v in different.items() if wanted.get(k) != v}
            missing = {k: v for k, v in wanted.items() if k not in different}
            self.fail(
                f"with {spec}, txAMQP's tests ended differently than expected:\n"
                f"unexpected: {unexpected}\nexpected but not seen: {missing}\n"
                f"{done.stdout[-6000:]}"
            )
        return found

    async def check_broker_tests(self, spec: Path) -> None:
        found = await self.run_suite(spec, txamqp_suite.BROKER_MODULES, DIFFERENT_BROKER_TESTS)
        ran = [name for name, result in found.items() if result != "SKIPPED"]
        # plus AMQEndpointIntegrationTest, run with the unit modules
        self.assertGreaterEqual(len(ran) + 1, BROKER_TESTS_RUN)
        passed = [name for name, result in found.items() if result == "OK"]
        self.assertEqual(len(passed), len(ran) - len(DIFFERENT_BROKER_TESTS))

    @async_test
    async def test_0_9(self) -> None:
        """
        With 0-9, the spec txAMQP's test base loads for RabbitMQ, every
        broker test passes.
        """
        await self.check_broker_tests(txamqp_suite.SPEC_0_9)

    @async_test
    async def test_0_8(self) -> None:
        """
        With 0-8, the same.
        """
        await self.check_broker_tests(txamqp_suite.SPEC_0_8)

    @async_test
    async def test_0_9_1(self) -> None:
        """
        With the plain 0-9-1 file, the same (txAMQP itself fails
        test_get and test_recover_requeue there).
        """
        await self.check_broker_tests(txamqp_suite.SPEC_0_9_1)

    @async_test
    async def test_0_9_1_rabbit(self) -> None:
        """
        With RabbitMQ's 0-9-1 file, the same.
        """
        await self.check_broker_tests(txamqp_suite.SPEC_0_9_1_RABBIT)

    @async_test
    async def test_unit_modules(self) -> None:
        """
        txAMQP's unit tests (AMQPump, the factory, endpoints, events) and
        its endpoint test against the broker pass but the deliberate
        differences.
        """
        await self.run_suite(txamqp_suite.SPEC_0_9, txamqp_suite.UNIT_MODULES, DIFFERENT_UNIT_TESTS)

    @async_test
    async def test_skipped_end_as_with_txamqp(self) -> None:
        """
        The tests txAMQP skips on RabbitMQ, run anyway (the suite told the
        broker is Qpid), end with txamqp_next as they do with txAMQP 0.8.2
        itself on the same broker and spec: they test what RabbitMQ does
        differently, not the client.  None passes; the two that check
        RabbitMQ's version skip whatever the broker is said to be.
        """
        names = tuple(sorted(SKIPPED))
        ended = {}
        for impl in ("txamqp_next", "txamqp"):
            done = await threads.deferToThread(
                txamqp_suite.run,
                str(txamqp_suite.SPEC_0_9),
                impl,
                names,
                ["--reporter=bwverbose"],
                broker="QPID",
            )
            ended[impl] = {
                name.removeprefix("txamqp_suite."): result
                for name, result in txamqp_suite.outcomes(done.stdout).items()
            }
        self.assertEqual(set(ended["txamqp_next"]), SKIPPED)
        self.assertEqual(ended["txamqp_next"], ended["txamqp"])
        self.assertEqual(
            {name for name, result in ended["txamqp_next"].items() if result == "SKIPPED"},
            {
                "test_broker.BrokerTests.test_basic_delivery_immediate",
                "test_queue.QueueTests.test_delete_non_existing",
            },
        )
        self.assertNotIn("OK", ended["txamqp_next"].values())

    def test_differences_documented(self) -> None:
        """
        Every test of txAMQP's that does not pass is named, with its reason,
        in the migration guide.
        """
        text = DOCS.read_text()
        for name in (*DIFFERENT_BROKER_TESTS, *DIFFERENT_UNIT_TESTS):
            self.assertIn(name.rsplit(".", 1)[-1], text, f"{name} is not in {DOCS}")
