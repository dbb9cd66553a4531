# -*- test-case-name: tests.test_txamqp_suite_output -*-
"""
Reading trial's output of txAMQP's suite (L{tests.txamqp_suite}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests import txamqp_suite

OUTPUT = """\
txamqp_suite.test_a.A.test_ok ... [OK]
txamqp_suite.test_a.A.test_failed ... [FAILURE]
txamqp_suite.test_a.A.test_skipped_then_leaked ... [SKIPPED][ERROR]
txamqp_suite.test_a.A.test_broken ... ERROR:root:Unexpected exception in handler
Traceback (most recent call last):
ValueError: logged

===============================================================================
[SKIPPED]
Not supported for this broker.

txamqp_suite.test_a.A.test_skipped_then_leaked
===============================================================================
[ERROR]
Traceback (most recent call last):
ConnectionClosed: left by the test before

txamqp_suite.test_a.A.test_skipped_then_leaked
txamqp_suite.test_a.A.test_broken
===============================================================================
[FAIL]
Traceback (most recent call last):
FailTest: 1 != 2

txamqp_suite.test_a.A.test_failed
-------------------------------------------------------------------------------
Ran 4 tests in 0.1s
"""


class OutcomesTests(SynchronousTestCase):
    """
    L{txamqp_suite.outcomes}: each test's own result.
    """

    def test_outcomes(self) -> None:
        """
        The first result on a test's line is its own (an error logged after
        it does not count); a test whose line a log message broke takes the
        kind of the summary block naming it; C{FAILURE} reads as C{FAIL}.
        """
        self.assertEqual(
            txamqp_suite.outcomes(OUTPUT),
            {
                "txamqp_suite.test_a.A.test_ok": "OK",
                "txamqp_suite.test_a.A.test_failed": "FAIL",
                "txamqp_suite.test_a.A.test_skipped_then_leaked": "SKIPPED",
                "txamqp_suite.test_a.A.test_broken": "ERROR",
            },
        )

    def test_skip_reasons(self) -> None:
        """
        L{txamqp_suite.skip_reasons} reads why each test was skipped.
        """
        self.assertEqual(
            txamqp_suite.skip_reasons(OUTPUT),
            {"txamqp_suite.test_a.A.test_skipped_then_leaked": "Not supported for this broker."},
        )
