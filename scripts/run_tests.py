"""
Helpers for C{scripts/dev}: check for RabbitMQ and run the whole test suite.

C{python scripts/run_tests.py broker [--wait SECONDS]} exits 0 once RabbitMQ on
127.0.0.1:5672 answers the AMQP 0-9-1 protocol header, 1 if it does not within
SECONDS (default: a single try).

C{python scripts/run_tests.py test} runs trial on C{tests} with the default reactor,
trial on C{tests.integration} with the asyncio reactor (when it holds test modules;
but for L{SINGLE_REACTOR_MODULES}),
C{mypy --strict txamqp_next} and C{ruff check .}, and ends with one line
C{N passed, N failed} (and C{, N skipped} when tests were skipped).  It exits 1 if
anything failed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 5672
AMQP_0_9_1_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = b"\x01"

# The whole suite must finish within this budget; a step still running past it is
# killed and counted as failed, so a hung test cannot stall CI.
SUITE_BUDGET_SECONDS = 15 * 60

# Trial's closing line, e.g. "PASSED (successes=12)" or
# "FAILED (failures=1, errors=2, skips=1, successes=40)".
TRIAL_STATUS = re.compile(r"^(?:PASSED|FAILED)(?: \((?P<counts>\w+=\d+(?:, \w+=\d+)*)\))?$")
TRIAL_COUNTS = (
    "successes",
    "failures",
    "errors",
    "skips",
    "expectedFailures",
    "unexpectedSuccesses",
)


def amqp_answers(host: str = BROKER_HOST, port: int = BROKER_PORT) -> bool:
    """
    Whether an AMQP 0-9-1 broker answers on C{host}:C{port}.

    A broker that is listening but still booting can accept TCP and then drop it, so
    this sends the protocol header and waits for the first byte of the broker's
    C{connection.start} method frame.  It needs no privileges, unlike
    C{rabbitmq-diagnostics ping}, which needs the node's Erlang cookie.
    """
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.sendall(AMQP_0_9_1_HEADER)
            return sock.recv(1) == FRAME_METHOD
    except OSError:
        return False


def wait_for_broker(wait: float) -> int:
    """
    Poll the broker for up to C{wait} seconds.

    @return: exit status, 0 once the broker answers, 1 otherwise.
    """
    deadline = time.monotonic() + wait
    while not amqp_answers():
        if time.monotonic() >= deadline:
            if wait > 0:
                print(
                    f"error: RabbitMQ did not accept AMQP on {BROKER_HOST}:{BROKER_PORT} within "
                    f"{wait:g} s.\nStart it with 'sudo rabbitmq-server -detached' (its logs are "
                    "in /var/log/rabbitmq/) and run this command again.",
                    file=sys.stderr,
                )
            return 1
        time.sleep(1)
    return 0


@dataclass
class Tally:
    """
    Counts for the closing summary line.
    """

    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def line(self) -> str:
        text = f"{self.passed} passed, {self.failed} failed"
        return f"{text}, {self.skipped} skipped" if self.skipped else text


def parse_trial(lines: list[str]) -> dict[str, int] | None:
    """
    Read trial's closing status line.

    @return: the counts it names (C{successes}, C{failures}, C{errors}, C{skips},
        C{expectedFailures}, C{unexpectedSuccesses}), missing ones as 0, or L{None}
        if there is no status line.
    """
    for line in reversed(lines):
        match = TRIAL_STATUS.match(line.strip())
        if match:
            counts = dict.fromkeys(TRIAL_COUNTS, 0)
            for pair in (match["counts"] or "").split(", "):
                if pair:
                    key, value = pair.split("=")
                    counts[key] = int(value)
            return counts
    return None


def run_step(
    argv: list[str], deadline: float, env: dict[str, str] | None = None
) -> tuple[int | None, list[str]]:
    """
    Run one step, copying its output to ours as it comes.

    @param env: variables to add to the step's environment.

    @return: its exit status (L{None} if it ran past C{deadline} and was killed) and
        the last lines of its output.
    """
    print(f"==> {' '.join(argv)}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(max(deadline - time.monotonic(), 0), kill)
    timer.start()
    tail: deque[str] = deque(maxlen=200)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line.rstrip("\n"))
    status = proc.wait()
    timer.cancel()
    if timed_out.is_set():
        print(f"error: killed after the suite's {SUITE_BUDGET_SECONDS} s budget ran out")
        return None, list(tail)
    return status, list(tail)


def run_trial(
    argv: list[str], deadline: float, tally: Tally, env: dict[str, str] | None = None
) -> None:
    """
    Run trial and add its counts to C{tally}.

    Expected failures count as passed; unexpected successes count as failed, as in
    L{unittest}.  A run that executes no test, prints no status line, or exits non-zero
    without reporting a failure counts as one more failure.
    """
    status, lines = run_step(["twisted.trial", *argv], deadline, env)
    counts = parse_trial(lines)
    if counts is None:
        print("error: trial printed no status line")
        tally.failed += 1
        return
    passed = counts["successes"] + counts["expectedFailures"]
    failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
    tally.passed += passed
    tally.failed += failed
    tally.skipped += counts["skips"]
    if passed + failed + counts["skips"] == 0:
        print("error: trial ran no tests")
        tally.failed += 1
    elif status != 0 and failed == 0:
        tally.failed += 1


#: integration modules the asyncio pass leaves out: they take minutes, and
#: what they add to the other modules does not depend on the reactor (the
#: txAMQP suite runs in subprocesses; the recovery fault tests restart
#: private nodes around the same reactor calls the other modules make)
SINGLE_REACTOR_MODULES = ("test_recovery", "test_txamqp_suite")


def run_suite() -> int:
    """
    Run every step, print the summary line last.

    @return: exit status, 0 if nothing failed.
    """
    deadline = time.monotonic() + SUITE_BUDGET_SECONDS
    tally = Tally()
    run_trial(["tests"], deadline, tally)
    modules = [
        f"tests.integration.{path.stem}"
        for path in sorted(Path("tests/integration").glob("test_*.py"))
        if path.stem not in SINGLE_REACTOR_MODULES
    ]
    if modules:
        # tests.integration.test_reactor checks that this really is the
        # asyncio reactor
        run_trial(
            ["--reactor=asyncio", *modules],
            deadline,
            tally,
            env={"TXAMQP_NEXT_EXPECT_REACTOR": "asyncio"},
        )
    for linter in (["mypy", "--strict", "txamqp_next"], ["ruff", "check", "."]):
        status, _ = run_step(linter, deadline)
        if status != 0:
            print(f"error: {linter[0]} failed")
            tally.failed += 1
    print(tally.line(), flush=True)
    return 1 if tally.failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Check for RabbitMQ; run the test suite.")
    commands = parser.add_subparsers(dest="command", required=True)
    broker = commands.add_parser("broker", help="check that RabbitMQ answers AMQP")
    broker.add_argument("--wait", type=float, default=0, metavar="SECONDS")
    commands.add_parser("test", help="run the whole test suite")
    args = parser.parse_args()
    if args.command == "broker":
        return wait_for_broker(args.wait)
    return run_suite()


if __name__ == "__main__":
    sys.exit(main())
