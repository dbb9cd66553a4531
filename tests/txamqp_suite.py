"""
txAMQP 0.8.2's own test suite, run against txamqp_next.

The suite comes from txAMQP's sdist (downloaded with pip once, see
L{tests.thrift.support.txamqp_sdist}).  Two mechanical changes are made to
its test modules, and nothing else:

  - imports are renamed, C{txamqp} to C{txamqp_next};
  - where a comparison has a message body on one side, the other side is
    compared as bytes (txamqp_next's bodies are always C{bytes}; txAMQP's
    tests compare them with C{str} literals).

The test base, C{txamqp_next.testlib.TestBase}, loads the spec named by
C{TXAMQP_SPEC}; L{run} points it at each spec in turn.

    python -m tests.txamqp_suite [--impl txamqp] SPEC [TRIAL ARGS...]

runs the suite once and prints trial's output; C{--impl txamqp} runs the
same rewritten suite on txAMQP 0.8.2 itself (its own test base, pointed at
SPEC), for comparison.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.thrift.support import txamqp_paths

SPECS = Path("/usr/share/amqp/specs")
#: Debian's spec files (package amqp-specs), the same as txAMQP's own
SPEC_0_8 = SPECS / "0-8" / "amqp0-8.stripped.xml"
SPEC_0_9 = SPECS / "0-9" / "amqp0-9.stripped.xml"
SPEC_0_9_1 = SPECS / "0-9-1" / "amqp0-9-1.stripped.xml"
SPEC_0_9_1_RABBIT = SPECS / "0-9-1-rabbit" / "amqp0-9-1.stripped.extended.xml"

#: the tests that talk to a broker: those of txAMQP's test base
BROKER_MODULES = (
    "test_basic",
    "test_broker",
    "test_example",
    "test_exchange",
    "test_heartbeat",
    "test_queue",
    "test_testlib",
    "test_tx",
)

#: the unit tests: no broker (AMQPump, the factory, events, endpoints)
UNIT_MODULES = ("test_event", "test_factory", "test_protocol", "test_testing", "test_endpoint")

_ASSERTS = frozenset({"assertEqual", "assertEquals", "failUnlessEqual", "assertNotEqual"})

#: the helper the rewritten modules compare bodies with
_HELPER = '''
def _as_bytes(value):
    """A str compared with a message body, as txamqp_next's bytes."""
    return value.encode("utf-8") if isinstance(value, str) else value
'''


def _mentions_body(node: ast.AST) -> bool:
    """
    Whether C{node} is a message body: C{msg.content.body}, C{reply.body}.
    """
    return isinstance(node, ast.Attribute) and node.attr == "body"


def _wrap(node: ast.expr) -> ast.expr:
    return ast.Call(func=ast.Name("_as_bytes", ast.Load()), args=[node], keywords=[])


class _BodiesAsBytes(ast.NodeTransformer):
    """
    Wrap the side of a comparison facing a message body in C{_as_bytes}.
    """

    def __init__(self) -> None:
        self.changed = 0

    def _pair(self, left: ast.expr, right: ast.expr) -> tuple[ast.expr, ast.expr]:
        if _mentions_body(right) and not _mentions_body(left):
            self.changed += 1
            return _wrap(left), right
        if _mentions_body(left) and not _mentions_body(right):
            self.changed += 1
            return left, _wrap(right)
        return left, right

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _ASSERTS and len(node.args) >= 2:
            node.args[0], node.args[1] = self._pair(node.args[0], node.args[1])
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if len(node.ops) == 1 and isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
            node.left, node.comparators[0] = self._pair(node.left, node.comparators[0])
        return node


def rewrite(source: str, package: str) -> str:
    """
    One test module of the suite, its imports renamed to C{package} and its
    body comparisons made on bytes.
    """
    source = re.sub(r"\btxamqp\b", package, source)
    tree = ast.parse(source)
    transformer = _BodiesAsBytes()
    tree = transformer.visit(tree)
    if transformer.changed:
        # after the imports, before any code that may run at import time
        imports = [
            i for i, node in enumerate(tree.body) if isinstance(node, (ast.Import, ast.ImportFrom))
        ]
        at = imports[-1] + 1 if imports else 0
        tree.body[at:at] = ast.parse(_HELPER).body
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


@dataclass
class Prepared:
    """
    A rewritten copy of the suite, ready for trial.

    @ivar root: the directory to run trial in (the suite is the package
        C{txamqp_suite} there).
    @ivar pythonpath: what to put on C{PYTHONPATH}.
    """

    root: Path
    pythonpath: list[str]


def prepare(workdir: Path, impl: str, spec: str) -> Prepared:
    """
    Copy txAMQP's test modules into C{workdir}/run/txamqp_suite, rewritten
    for C{impl} (C{"txamqp_next"} or C{"txamqp"}).

    For txAMQP itself, its test base loads C{../specs/standard/amqp0-9.stripped.xml}
    from the working directory (trial's C{_trial_temp}): that path is made a
    link to C{spec}, and
    its own test base is rewritten as its tests are (it compares bodies).
    """
    paths = txamqp_paths()
    source = Path(paths[0])
    run = workdir / "run"
    suite = run / "txamqp_suite"
    suite.mkdir(parents=True)
    # the sdist lacks the spec files its tests name by relative path (from
    # trial's run/_trial_temp); the nearest of Debian's stands in
    fixtures = run / "specs" / "rabbitmq"
    fixtures.mkdir(parents=True)
    (fixtures / "amqp0-8.stripped.rabbitmq.xml").symlink_to(SPEC_0_8)
    (suite / "__init__.py").write_text("")
    for test in sorted((source / "txamqp" / "test").glob("test_*.py")):
        text = test.read_text()
        # txAMQP itself decodes text bodies to str: its tests run unchanged
        (suite / test.name).write_text(text if impl == "txamqp" else rewrite(text, impl))
    pythonpath = [str(run)]
    if impl == "txamqp":
        package = workdir / "lib" / "txamqp"
        shutil.copytree(source / "txamqp", package)
        # trial runs the tests in run/_trial_temp; DEFAULT_SPEC is found
        # from the package, in lib
        for base in (run, workdir / "lib"):
            standard = base / "specs" / "standard"
            standard.mkdir(parents=True, exist_ok=True)
            (standard / "amqp0-9.stripped.xml").symlink_to(spec)
            # and the one it loads when told the broker is Qpid (see run)
            qpid = base / "specs" / "qpid"
            qpid.mkdir(parents=True, exist_ok=True)
            (qpid / "amqp.0-8.xml").symlink_to(spec)
        pythonpath += [str(workdir / "lib"), *paths[1:]]
    return Prepared(run, pythonpath)


def run(
    spec: str,
    impl: str = "txamqp_next",
    modules: tuple[str, ...] = BROKER_MODULES,
    extra: list[str] | None = None,
    timeout: float = 600,
    broker: str = "RABBITMQ",
) -> subprocess.CompletedProcess[str]:
    """
    Run the rewritten suite once under trial, in a subprocess.

    @param spec: the spec file the test base loads.
    @param modules: the modules to run, or single tests by their names
        (C{test_basic.BasicTests.test_ack}).
    @param broker: the broker the suite is told it runs against
        (C{TXAMQP_BROKER}): its tests for Qpid only run with C{"QPID"}.
    @return: the finished process, its output in C{stdout}.
    """
    with tempfile.TemporaryDirectory(prefix="txamqp-suite-") as tmp:
        prepared = prepare(Path(tmp), impl, spec)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(prepared.pythonpath),
            "TXAMQP_BROKER": broker,
            "TXAMQP_SPEC": spec,
        }
        argv = [sys.executable, "-m", "twisted.trial", *(extra or [])]
        argv += [f"txamqp_suite.{m}" for m in modules]
        return subprocess.run(
            argv,
            cwd=prepared.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


_RESULT = re.compile(r"^(?P<name>txamqp_suite\.\S+)\s*\.\.\.\s*\[(?P<result>[A-Z]+)\]$")


def results(output: str) -> dict[str, str]:
    """
    Each test's result (C{OK}, C{FAIL}, C{ERROR}, C{SKIPPED}) from trial's
    C{--reporter=bwverbose} output.
    """
    found = {}
    for line in output.splitlines():
        match = _RESULT.match(line.strip())
        if match:
            found[match["name"]] = match["result"]
    return found


_OWN_RESULT = re.compile(
    r"^(?P<name>txamqp_suite\.\S+)\s*\.\.\.\s*\[(?P<result>[A-Z]+)\](\[[A-Z]+\])*$"
)


def outcomes(output: str) -> dict[str, str]:
    """
    Each test's own result (C{OK}, C{FAIL}, C{ERROR}, C{SKIPPED}): the
    first on its line of trial's C{--reporter=bwverbose} output (more
    follow it for errors logged after the test, such as one a previous
    test's connection left behind), or, for a test whose line a log
    message broke, the kind of the summary's block that names it (C{FAIL}
    over C{ERROR}).
    """
    found: dict[str, str] = {}
    for line in output.splitlines():
        match = _OWN_RESULT.match(line.strip())
        if match:
            result = match["result"]
            found[match["name"]] = "FAIL" if result == "FAILURE" else result
    kind = None
    for line in output.splitlines():
        text = line.strip()
        if text in ("[FAIL]", "[ERROR]"):
            kind = text[1:-1]
        elif text.startswith(("=====", "-----")):
            kind = None
        elif kind is not None and line.startswith("txamqp_suite.") and text not in found:
            found[text] = kind
    return found


def skip_reasons(output: str) -> dict[str, str]:
    """
    Why each skipped test was skipped, from the summary of trial's output:
    a C{[SKIPPED]} line, the reason, a blank line, then the names of the
    tests skipped for it.
    """
    reasons: dict[str, str] = {}
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "[SKIPPED]":
            i += 1
            continue
        i += 1
        reason: list[str] = []
        while i < len(lines) and lines[i].strip():
            reason.append(lines[i].strip())
            i += 1
        i += 1
        while i < len(lines) and lines[i].startswith("txamqp_suite."):
            reasons[lines[i].strip()] = " ".join(reason)
            i += 1
    return reasons


def main() -> int:
    args = sys.argv[1:]
    impl = "txamqp_next"
    if args[:1] == ["--impl"]:
        impl, args = args[1], args[2:]
    spec, extra = args[0], args[1:]
    done = run(spec, impl, BROKER_MODULES + UNIT_MODULES, ["--reporter=bwverbose", *extra])
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    table = results(done.stdout)
    counts: dict[str, int] = {}
    for result in table.values():
        counts[result] = counts.get(result, 0) + 1
    print(counts)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
