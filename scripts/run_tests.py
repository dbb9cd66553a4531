"""
Helpers for C{scripts/dev}: check for RabbitMQ and run the whole test suite.

C{python scripts/run_tests.py broker [--wait SECONDS]} exits 0 once RabbitMQ on
127.0.0.1:5672 answers the AMQP 0-9-1 protocol header, 1 if it does not within
SECONDS (default: a single try).

C{python scripts/run_tests.py test} runs trial on C{tests} with the default reactor,
trial on C{tests.integration} with the asyncio reactor (when it holds test modules;
but for L{SINGLE_REACTOR_MODULES}),
C{mypy --strict txamqp_next} and C{ruff check .}.  Meanwhile, at a lower CPU
priority, it runs the unit tests (L{unit_modules}) on the checkout under every other
CPython in L{SUPPORTED_PYTHONS} that the machine has, and once more on the lowest
of them with the lowest releases the project declares (L{lowest_pins}), each in a
virtual environment cached under L{venv_cache} (see L{Target}).  It ends with the
ids and last traceback lines of every failed test (L{parse_failures}), then one
line C{N passed, N failed} (and C{, N skipped} when tests were skipped).  It exits
1 if anything failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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
    command: list[str],
    deadline: float,
    env: dict[str, str] | None = None,
    *,
    header: str | None = None,
    echo: bool = True,
    nice: int = 0,
) -> tuple[int | None, list[str]]:
    """
    Run one step, copying its output to ours as it comes.

    @param command: the command line, the program first.
    @param env: variables to add to the step's environment.
    @param header: what the C{==>} line says; the command line by default.
    @param echo: copy the header and the output to ours as they come; when false,
        the caller prints them (see L{print_step}).
    @param nice: how much to lower the step's CPU priority.

    @return: its exit status (L{None} if it ran past C{deadline} and was killed) and
        its output's lines, the header line first.
    """
    lines = [f"==> {header or ' '.join(command)}"]
    if echo:
        print(lines[0], flush=True)
    if nice and shutil.which("nice"):
        command = ["nice", "-n", str(nice), *command]
    proc = subprocess.Popen(
        command,
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
    assert proc.stdout is not None
    for line in proc.stdout:
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    status = proc.wait()
    timer.cancel()
    if timed_out.is_set():
        lines.append(f"error: killed after the suite's {SUITE_BUDGET_SECONDS} s budget ran out")
        if echo:
            print(lines[-1])
        return None, lines
    return status, lines


def print_step(lines: list[str]) -> None:
    """
    Print the header and output of a step that ran without echo.
    """
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


@dataclass
class FailedTest:
    """
    A test that failed, for the list at the end of the run.

    @ivar where: which step ran it (C{"trial tests"}, C{"Python 3.12"}, ...).
    @ivar test_id: the id trial printed (C{tests.test_codec.TableTests.test_x}), or
        what failed when it is no single test (C{"mypy"}).
    @ivar kind: C{FAIL}, C{ERROR}, C{UNEXPECTED SUCCESS}, or the step's own word.
    @ivar excerpt: the last lines of its traceback.
    """

    where: str
    test_id: str
    kind: str
    excerpt: list[str]


# Trial prints each failure as a block: a line of "=" signs, "[FAIL]" (or
# "[ERROR]", "[SKIPPED]", ...), the traceback, a blank line, and the ids of
# the tests that failed so; a line of "-" signs closes the last block.
TRIAL_BLOCK_START = "=" * 79
TRIAL_BLOCKS_END = "-" * 79
TRIAL_BLOCK_KIND = re.compile(r"^\[(?P<kind>[A-Z!? ]+)\]$")
#: the blocks of failed tests, and what the closing list calls them
TRIAL_FAILED_KINDS = {"FAIL": "FAIL", "ERROR": "ERROR", "SUCCESS!?!": "UNEXPECTED SUCCESS"}
TRIAL_TEST_ID = re.compile(r"^[A-Za-z_][\w.]*$")

#: how many lines of each failure's traceback the closing list shows
EXCERPT_LINES = 10


def parse_failures(lines: list[str], where: str) -> list[FailedTest]:
    """
    Read the failed and errored tests out of trial's output.

    @param lines: trial's output, one line an item, without line ends.
    @param where: which step it was, for L{FailedTest.where}.
    @return: one L{FailedTest} per test id of each C{[FAIL]}, C{[ERROR]} and
        C{[SUCCESS!?!]} (unexpected success) block, in trial's order, each with the last
        L{EXCERPT_LINES} non-blank lines of its block's text.
    """
    found: list[FailedTest] = []
    index = 0
    while index < len(lines):
        match = TRIAL_BLOCK_KIND.match(lines[index])
        if not (index > 0 and lines[index - 1] == TRIAL_BLOCK_START and match):
            index += 1
            continue
        kind = match["kind"]
        index += 1
        block: list[str] = []
        while index < len(lines) and lines[index] not in (TRIAL_BLOCK_START, TRIAL_BLOCKS_END):
            block.append(lines[index])
            index += 1
        if kind not in TRIAL_FAILED_KINDS:
            continue
        kind = TRIAL_FAILED_KINDS[kind]
        while block and not block[-1].strip():
            block.pop()
        ids: list[str] = []
        while block and TRIAL_TEST_ID.match(block[-1]):
            ids.insert(0, block.pop())
        text = [line for line in block if line.strip()][-EXCERPT_LINES:]
        found.extend(FailedTest(where, test_id, kind, text) for test_id in ids)
    return found


def failure_report(failures: list[FailedTest]) -> list[str]:
    """
    The closing list of what failed, so that a log whose middle is cut still
    shows it at its end.

    @return: its lines; none when nothing failed.
    """
    if not failures:
        return []
    report = ["failed tests:"]
    for failure in failures:
        report.append(f"  {failure.test_id} [{failure.kind}] ({failure.where})")
        report.extend(f"      | {line}" for line in failure.excerpt)
    return report


def tally_trial(
    status: int | None, lines: list[str], where: str, tally: Tally, failures: list[FailedTest]
) -> None:
    """
    Add a trial run's counts to C{tally} and its failed tests to C{failures}.

    Expected failures count as passed; unexpected successes count as failed, as in
    L{unittest}.  A run that executes no test, prints no status line, or exits non-zero
    without reporting a failure counts as one more failure.
    """
    failures.extend(parse_failures(lines, where))
    counts = parse_trial(lines)
    problem = None
    if counts is None:
        problem = "trial printed no status line"
        tally.failed += 1
    else:
        passed = counts["successes"] + counts["expectedFailures"]
        failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
        tally.passed += passed
        tally.failed += failed
        tally.skipped += counts["skips"]
        if passed + failed + counts["skips"] == 0:
            problem = "trial ran no tests"
            tally.failed += 1
        elif status != 0 and failed == 0:
            problem = f"trial exited {status} without reporting a failure"
            tally.failed += 1
    if problem:
        print(f"error: {problem}")
        failures.append(FailedTest(where, "trial", problem, step_tail(lines)))


def step_tail(lines: list[str]) -> list[str]:
    """
    The last non-blank lines of a step's output, past its header.
    """
    return [line for line in lines[1:] if line.strip()][-EXCERPT_LINES:]


def run_trial(
    argv: list[str],
    deadline: float,
    tally: Tally,
    failures: list[FailedTest],
    env: dict[str, str] | None = None,
) -> None:
    """
    Run trial with our own Python and tally it (L{tally_trial}).
    """
    status, lines = run_step([sys.executable, "-m", "twisted.trial", *argv], deadline, env)
    tally_trial(status, lines, f"trial {' '.join(argv)}", tally, failures)


#: integration modules the asyncio pass leaves out: they take minutes, and
#: what they add to the other modules does not depend on the reactor (the
#: txAMQP suite runs in subprocesses; the recovery fault tests restart
#: private nodes around the same reactor calls the other modules make)
SINGLE_REACTOR_MODULES = ("test_recovery", "test_txamqp_suite")

#: the CPython versions the project supports (its classifiers)
SUPPORTED_PYTHONS = ((3, 10), (3, 11), (3, 12), (3, 13))

#: test modules that are not unit tests: they build and install the package, or
#: build the API reference (once is enough)
NOT_UNIT_MODULES = ("test_packaging", "test_api_docs")

#: how much the other interpreters' runs lower their CPU priority, so that
#: they take the time the integration tests spend waiting and leave the
#: timing-sensitive ones alone
MATRIX_NICE = 10

# Trial on the checkout, without "python -m twisted.trial": Twisted 22.10's
# twisted/trial/__main__.py goes through pkg_resources, which today's
# zope.interface metadata defeats.
TRIAL_MAIN = "import sys; from twisted.scripts.trial import run; sys.argv[0] = 'trial'; run()"


def unit_modules(root: Path) -> list[str]:
    """
    The unit test modules: every C{tests/test_*.py} but L{NOT_UNIT_MODULES}.
    """
    return [
        f"tests.{path.stem}"
        for path in sorted((root / "tests").glob("test_*.py"))
        if path.stem not in NOT_UNIT_MODULES
    ]


def read_project(root: Path) -> dict[str, Any]:
    """
    The C{[project]} and C{[dependency-groups]} tables of C{pyproject.toml}.
    """
    with open(root / "pyproject.toml", "rb") as f:
        data = tomllib.load(f)
    return {"project": data["project"], "dependency-groups": data.get("dependency-groups", {})}


def unit_test_requirements(project: dict[str, Any]) -> list[str]:
    """
    What the unit tests need: the project's dependencies, its extras' and its
    C{test} dependency group's requirements (without the project itself, and
    without the group's C{include-group} entries: it has none).
    """
    meta = project["project"]
    requirements = list(meta.get("dependencies", []))
    for extra in meta.get("optional-dependencies", {}).values():
        requirements += extra
    requirements += [r for r in project["dependency-groups"].get("test", []) if isinstance(r, str)]
    return list(dict.fromkeys(requirements))


LOWER_BOUND = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*(?P<version>[\w.]+)$")


def lowest_pins(project: dict[str, Any]) -> list[str]:
    """
    The lowest releases the project declares: C{name==version} for each
    C{name>=version} of its dependencies and optional dependencies.
    """
    meta = project["project"]
    declared = list(meta.get("dependencies", []))
    for extra in meta.get("optional-dependencies", {}).values():
        declared += extra
    pins = []
    for requirement in declared:
        match = LOWER_BOUND.match(requirement.strip())
        if match:
            pins.append(f"{match['name']}=={match['version']}")
    return pins


@dataclass
class Target:
    """
    One more run of the unit tests: an interpreter and what to install with it.

    The virtual environment lives in L{venv_cache}, named after the Python and a
    hash of the interpreter's version and the requirements, so that later runs on
    the same machine reuse it and a changed requirement gets a new one.

    @ivar label: how the summary names it (C{"Python 3.12"}).
    @ivar python: the interpreter's path.
    @ivar version: its full version (C{"3.12.1"}).
    @ivar requirements: what C{pip install} gets, pins last.
    """

    label: str
    python: str
    version: str
    requirements: list[str]

    def venv(self) -> Path:
        key = hashlib.sha256("\n".join([self.version, *self.requirements]).encode()).hexdigest()
        return venv_cache() / f"py{self.version}-{key[:12]}"


def venv_cache() -> Path:
    """
    Where L{Target}s keep their virtual environments: C{txamqp-next/venvs} in
    C{$XDG_CACHE_HOME} (by default C{~/.cache}), outside any checkout.
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "txamqp-next" / "venvs"


def find_python(version: tuple[int, int]) -> tuple[str, str] | None:
    """
    A CPython C{version} on this machine that can make virtual environments:
    pyenv's, or one on C{PATH}.

    @return: its path and full version, or L{None}.
    """
    name = f"python{version[0]}.{version[1]}"
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [str(p) for p in sorted((pyenv / "versions").glob(f"*/bin/{name}"))]
    candidates += [p for p in [shutil.which(name), f"/usr/bin/{name}", sys.executable] if p]
    probe = (
        "import sys, venv, ensurepip; "
        "print('.'.join(map(str, sys.version_info[:3])), sys.implementation.name)"
    )
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", probe], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        words = out.stdout.split()
        if (
            out.returncode == 0
            and len(words) == 2
            and words[1] == "cpython"
            and tuple(map(int, words[0].split(".")[:2])) == version
        ):
            return candidate, words[0]
    return None


def matrix_targets(root: Path) -> tuple[list[Target], list[str]]:
    """
    The other interpreters' runs: each supported CPython but our own with the
    newest releases, and the lowest of all with L{lowest_pins}.

    @return: the targets, and a notice for each supported version not found.
    """
    project = read_project(root)
    requirements = unit_test_requirements(project)
    own = sys.version_info[:2]
    found: list[tuple[tuple[int, int], str, str]] = []
    notices = []
    for version in SUPPORTED_PYTHONS:
        dotted = f"{version[0]}.{version[1]}"
        if version == own:
            found.append((version, sys.executable, ".".join(map(str, sys.version_info[:3]))))
            continue
        located = find_python(version)
        if located is None:
            notices.append(
                f"notice: no CPython {dotted} with venv here (pyenv or python{dotted} on PATH); "
                "its unit test run is left out"
            )
        else:
            found.append((version, *located))
    targets = [
        Target(f"Python {full}", python, full, requirements)
        for version, python, full in found
        if version != own
    ]
    if found:
        _, python, full = found[0]
        pins = lowest_pins(project)
        label = f"Python {full}, lowest ({', '.join(pins)})"
        targets.insert(0, Target(label, python, full, requirements + pins))
    return targets, notices


@dataclass
class MatrixRun:
    """
    What one L{Target} printed and how it ended, for the main thread to report.

    @ivar crash: the traceback of an exception that stopped the run, if one did.
    """

    target: Target
    steps: list[tuple[int | None, list[str]]]
    trial: tuple[int | None, list[str]] | None = None
    crash: list[str] | None = None


def prepare_venv(target: Target, deadline: float) -> tuple[int | None, list[str]]:
    """
    Make C{target}'s virtual environment unless the cache has it.

    A half-made one (no C{.complete} marker) is made again from scratch.
    """
    venv = target.venv()
    if (venv / ".complete").exists():
        (venv / ".complete").touch()
        return 0, [f"==> {target.label}: reusing {venv}"]
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = str(venv / "bin" / "python")
    script = (
        f"{shlex.quote(target.python)} -m venv {shlex.quote(str(venv))} && "
        f"{shlex.quote(python)} -m pip install -q --disable-pip-version-check "
        + " ".join(shlex.quote(r) for r in target.requirements)
    )
    status, lines = run_step(
        ["sh", "-c", script],
        deadline,
        header=f"{target.label}: making {venv}",
        echo=False,
        nice=MATRIX_NICE,
    )
    if status == 0:
        (venv / ".complete").write_text("\n".join(target.requirements) + "\n")
    return status, lines


#: a cached venv unused for this long is removed
VENV_UNUSED_SECONDS = 14 * 24 * 3600


def prune_venvs(keep: set[Path], now: float) -> None:
    """
    Remove the cached venvs no run has used for L{VENV_UNUSED_SECONDS}, but
    those in C{keep}; other checkouts may still use the rest.
    """
    if not venv_cache().is_dir():
        return
    for venv in venv_cache().iterdir():
        marker = venv / ".complete"
        try:
            used = (marker if marker.exists() else venv).stat().st_mtime
        except OSError:
            continue
        if venv not in keep and now - used > VENV_UNUSED_SECONDS:
            shutil.rmtree(venv, ignore_errors=True)


def run_matrix(
    targets: list[Target], root: Path, deadline: float, runs: list[MatrixRun]
) -> None:
    """
    For each target in turn, make its venv and run the unit tests of the
    checkout at C{root} in it; append what happened to C{runs}.
    """
    prune_venvs({target.venv() for target in targets}, time.time())
    modules = unit_modules(root)
    for target in targets:
        run = MatrixRun(target, [])
        runs.append(run)
        try:
            run_target(run, root, modules, deadline)
        except Exception:
            run.crash = traceback.format_exc().splitlines()


def run_target(run: MatrixRun, root: Path, modules: list[str], deadline: float) -> None:
    """
    Make C{run}'s venv, then run C{modules} in it; record both in C{run}.
    """
    target = run.target
    status, lines = prepare_venv(target, deadline)
    run.steps.append((status, lines))
    if status != 0:
        return
    temp = Path(tempfile.mkdtemp(prefix="txamqp-next-trial-"))
    command = [
        str(target.venv() / "bin" / "python"),
        "-c",
        TRIAL_MAIN,
        f"--temp-directory={temp / '_trial_temp'}",
        *modules,
    ]
    try:
        run.trial = run_step(
            command,
            deadline,
            env={"PYTHONPATH": str(root)},
            header=f"{target.label}: unit tests of {root} with {command[0]}: "
            f"trial {' '.join(modules)}",
            echo=False,
            nice=MATRIX_NICE,
        )
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def report_matrix(runs: list[MatrixRun], tally: Tally, failures: list[FailedTest]) -> None:
    """
    Print each run's steps and add them to the tally.
    """
    for run in runs:
        for status, lines in run.steps:
            print_step(lines)
            if status != 0:
                print(f"error: {run.target.label}: its virtual environment could not be made")
                tally.failed += 1
                failures.append(
                    FailedTest(run.target.label, "venv", "ERROR", step_tail(lines))
                )
        if run.trial is not None:
            status, lines = run.trial
            print_step(lines)
            tally_trial(status, lines, run.target.label, tally, failures)
        if run.crash is not None:
            print_step([f"==> {run.target.label}: the run stopped on an exception", *run.crash])
            tally.failed += 1
            failures.append(FailedTest(run.target.label, "run_tests", "ERROR", run.crash[-10:]))


def run_suite() -> int:
    """
    Run every step, print the failed tests and the summary line last.

    @return: exit status, 0 if nothing failed.
    """
    deadline = time.monotonic() + SUITE_BUDGET_SECONDS
    root = Path(__file__).resolve().parent.parent
    tally = Tally()
    failures: list[FailedTest] = []
    targets, notices = matrix_targets(root)
    runs: list[MatrixRun] = []
    matrix = threading.Thread(target=run_matrix, args=(targets, root, deadline, runs))
    matrix.start()
    run_trial(["tests"], deadline, tally, failures)
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
            failures,
            env={"TXAMQP_NEXT_EXPECT_REACTOR": "asyncio"},
        )
    for linter in (["mypy", "--strict", "txamqp_next"], ["ruff", "check", "."]):
        status, lines = run_step([sys.executable, "-m", *linter], deadline)
        if status != 0:
            print(f"error: {linter[0]} failed")
            tally.failed += 1
            failures.append(FailedTest(linter[0], linter[0], "FAILED", step_tail(lines)))
    matrix.join()
    for notice in notices:
        print(notice)
    report_matrix(runs, tally, failures)
    for line in failure_report(failures):
        print(line)
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
