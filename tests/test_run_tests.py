# -*- test-case-name: tests.test_run_tests -*-
"""
C{scripts/run_tests.py}: reading trial's output (counts and failed tests),
the closing list of failures, and the interpreters and requirements of the
unit test runs on other Pythons.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


def load_run_tests() -> ModuleType:
    """
    Import C{scripts/run_tests.py}, which is a script, not a package module.
    """
    name = "txamqp_next_run_tests"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "run_tests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


run_tests = load_run_tests()

SEP = "=" * 79
END = "-" * 79

# a deep traceback: more lines than the excerpt keeps
FRAMES = "".join(f'  File "/src/m.py", line {n}, in f{n}\n    f{n + 1}()\n' for n in range(8))

# trial's layout, as Twisted 22.10 to 26.10 print it: one block per distinct
# traceback, the ids of the tests that raised it after a blank line
SAMPLE = f"""\
tests.test_x
  Things
    test_a ...                                                           [FAIL]
    test_b ...                                                          [ERROR]
    test_c ...                                                        [SKIPPED]

{SEP}
[SKIPPED]
not today

tests.test_x.Things.test_c
{SEP}
[FAIL]
Traceback (most recent call last):
  File "/src/tests/test_x.py", line 10, in test_a
    self.assertEqual(1, 2)
twisted.trial.unittest.FailTest: 1 != 2

tests.test_x.Things.test_a
{SEP}
[ERROR]
Traceback (most recent call last):
{FRAMES}builtins.ValueError: boom

tests.test_x.Things.test_b
tests.test_x.Other.test_b
{END}
Ran 3 tests in 0.010s

FAILED (skips=1, failures=1, errors=2)
"""


class ParseFailuresTests(SynchronousTestCase):
    """
    L{run_tests.parse_failures} finds every failed and errored test id.
    """

    def test_sample(self) -> None:
        """
        Each id of a [FAIL] or [ERROR] block is one failed test, with the last
        ten non-blank lines of its block; [SKIPPED] blocks are not failures.
        """
        found = run_tests.parse_failures(SAMPLE.splitlines(), "trial tests")
        self.assertEqual(
            [(f.test_id, f.kind, f.where) for f in found],
            [
                ("tests.test_x.Things.test_a", "FAIL", "trial tests"),
                ("tests.test_x.Things.test_b", "ERROR", "trial tests"),
                ("tests.test_x.Other.test_b", "ERROR", "trial tests"),
            ],
        )
        self.assertEqual(found[0].excerpt[-1], "twisted.trial.unittest.FailTest: 1 != 2")
        self.assertEqual(found[0].excerpt[0], "Traceback (most recent call last):")
        self.assertEqual(len(found[1].excerpt), run_tests.EXCERPT_LINES)
        self.assertEqual(found[1].excerpt[-1], "builtins.ValueError: boom")
        self.assertEqual(found[1].excerpt, found[2].excerpt)

    def test_nothing_failed(self) -> None:
        """
        A passing run's output has no failed tests.
        """
        lines = ["tests.test_x", "  T", "    test_a ... [OK]", END, "Ran 1 tests", "PASSED"]
        self.assertEqual(run_tests.parse_failures(lines, "x"), [])

    def test_cut_output(self) -> None:
        """
        Output that stops inside a block (a killed step) still yields the
        ids printed so far.
        """
        lines = SAMPLE.splitlines()
        cut = lines[: lines.index("tests.test_x.Things.test_a") + 1]
        found = run_tests.parse_failures(cut, "x")
        self.assertEqual([f.test_id for f in found], ["tests.test_x.Things.test_a"])

    def test_real_trial(self) -> None:
        """
        The parser reads what this machine's trial really prints: a failing,
        an erroring and an unexpectedly succeeding test and a module that does
        not import are reported with their ids, the rest are not.
        """
        workdir = Path(tempfile.mkdtemp(prefix="txamqp-next-run-tests-"))
        self.addCleanup(shutil.rmtree, workdir, True)
        package = workdir / "sample_suite"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "test_mixed.py").write_text(
            textwrap.dedent(
                """
                from twisted.trial.unittest import SkipTest, SynchronousTestCase

                class Mixed(SynchronousTestCase):
                    def test_ok(self):
                        pass

                    def test_fails(self):
                        self.assertEqual("left", "right")

                    def test_errors(self):
                        raise KeyError("missing-key")

                    def test_skips(self):
                        raise SkipTest("not here")

                    def test_todo_passes(self):
                        pass

                    test_todo_passes.todo = "should fail"
                """
            )
        )
        (package / "test_broken.py").write_text("import no_such_module_anywhere\n")
        result = subprocess.run(
            [sys.executable, "-c", run_tests.TRIAL_MAIN, "sample_suite"],
            cwd=workdir,
            env={"PYTHONPATH": str(workdir), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = result.stdout.splitlines()
        found = {f.test_id: f for f in run_tests.parse_failures(lines, "sample")}
        self.assertEqual(
            {test_id: f.kind for test_id, f in found.items()},
            {
                "sample_suite.test_mixed.Mixed.test_fails": "FAIL",
                "sample_suite.test_mixed.Mixed.test_errors": "ERROR",
                "sample_suite.test_mixed.Mixed.test_todo_passes": "UNEXPECTED SUCCESS",
                "sample_suite.test_broken": "ERROR",
            },
            result.stdout + result.stderr,
        )
        errored = found["sample_suite.test_mixed.Mixed.test_errors"]
        self.assertIn("'missing-key'", errored.excerpt[-1])
        broken = found["sample_suite.test_broken"]
        self.assertIn("no_such_module_anywhere", "\n".join(broken.excerpt))
        counts = run_tests.parse_trial(lines)
        assert counts is not None
        self.assertEqual(
            (counts["successes"], counts["failures"], counts["errors"], counts["skips"]),
            (1, 1, 2, 1),
        )
        self.assertEqual(counts["unexpectedSuccesses"], 1)


class FailureReportTests(SynchronousTestCase):
    """
    L{run_tests.failure_report} lists what failed for the end of the log.
    """

    def test_lines(self) -> None:
        """
        A header, then each test's id, kind and step, its excerpt indented.
        """
        failures = [
            run_tests.FailedTest("Python 3.12.1", "tests.test_a.T.test_x", "FAIL", ["Trace", "E"]),
            run_tests.FailedTest("mypy", "mypy", "FAILED", ["Found 1 error"]),
        ]
        self.assertEqual(
            run_tests.failure_report(failures),
            [
                "failed tests:",
                "  tests.test_a.T.test_x [FAIL] (Python 3.12.1)",
                "      | Trace",
                "      | E",
                "  mypy [FAILED] (mypy)",
                "      | Found 1 error",
            ],
        )

    def test_none(self) -> None:
        """
        Nothing failed, nothing printed.
        """
        self.assertEqual(run_tests.failure_report([]), [])


class TallyTrialTests(SynchronousTestCase):
    """
    L{run_tests.tally_trial} counts a run and keeps its failures.
    """

    def test_counts_and_failures(self) -> None:
        """
        The status line's counts go to the tally; the failed ids to the list.
        """
        tally = run_tests.Tally()
        failures: list[object] = []
        run_tests.tally_trial(1, ["==> trial", *SAMPLE.splitlines()], "t", tally, failures)
        self.assertEqual((tally.passed, tally.failed, tally.skipped), (0, 3, 1))
        self.assertEqual(len(failures), 3)

    def test_no_status_line(self) -> None:
        """
        A run killed before its status line is one failure, listed with the
        end of its output.
        """
        tally = run_tests.Tally()
        failures: list[run_tests.FailedTest] = []
        lines = ["==> trial", "tests.test_x", "    test_a ...", "error: killed"]
        run_tests.tally_trial(None, lines, "Python 3.13.0", tally, failures)
        self.assertEqual(tally.failed, 1)
        [failure] = failures
        self.assertEqual(failure.where, "Python 3.13.0")
        self.assertEqual(failure.excerpt[-1], "error: killed")


class MatrixTests(SynchronousTestCase):
    """
    What the runs on other Pythons install and run.
    """

    project: ClassVar[dict[str, Any]] = {
        "project": {
            "dependencies": ["Twisted>=22.10.0"],
            "optional-dependencies": {
                "tls": ["pyOpenSSL>=23.0.0", "cryptography>=39.0.0"],
                "thrift": ["thrift>=0.16.0"],
            },
        },
        "dependency-groups": {
            "test": ["hypothesis>=6.70", "thrift>=0.16.0", {"include-group": "other"}],
            "bench": ["matplotlib>=3.7"],
        },
    }

    def test_lowest_pins(self) -> None:
        """
        Each declared lower bound becomes an exact pin.
        """
        self.assertEqual(
            run_tests.lowest_pins(self.project),
            ["Twisted==22.10.0", "pyOpenSSL==23.0.0", "cryptography==39.0.0", "thrift==0.16.0"],
        )

    def test_requirements(self) -> None:
        """
        The dependencies, the extras and the test group, once each; not the
        bench group.
        """
        self.assertEqual(
            run_tests.unit_test_requirements(self.project),
            [
                "Twisted>=22.10.0",
                "pyOpenSSL>=23.0.0",
                "cryptography>=39.0.0",
                "thrift>=0.16.0",
                "hypothesis>=6.70",
            ],
        )

    def test_own_pyproject(self) -> None:
        """
        The lowest run pins Twisted 22.10.0, the lowest release the project
        declares.
        """
        pins = run_tests.lowest_pins(run_tests.read_project(ROOT))
        self.assertIn("Twisted==22.10.0", pins)

    def test_unit_modules(self) -> None:
        """
        Every tests/test_*.py module but the packaging and API reference
        tests.
        """
        modules = run_tests.unit_modules(ROOT)
        self.assertIn("tests.test_codec", modules)
        self.assertIn("tests.test_run_tests", modules)
        self.assertNotIn("tests.test_packaging", modules)
        self.assertNotIn("tests.test_api_docs", modules)
        self.assertEqual(len(modules), len(list((ROOT / "tests").glob("test_*.py"))) - 2)

    def test_venv_key(self) -> None:
        """
        The cached venv's name follows the interpreter and the requirements.
        """
        target = run_tests.Target("Python 3.12.1", "/p", "3.12.1", ["Twisted>=22.10.0"])
        same = run_tests.Target("other label", "/q", "3.12.1", ["Twisted>=22.10.0"])
        pinned = run_tests.Target("x", "/p", "3.12.1", ["Twisted>=22.10.0", "Twisted==22.10.0"])
        newer = run_tests.Target("x", "/p", "3.12.2", ["Twisted>=22.10.0"])
        self.assertEqual(target.venv(), same.venv())
        self.assertNotEqual(target.venv(), pinned.venv())
        self.assertNotEqual(target.venv(), newer.venv())
        self.assertTrue(target.venv().name.startswith("py3.12.1-"))
        self.assertNotIn(str(ROOT), str(target.venv()))

    def test_find_own_python(self) -> None:
        """
        find_python finds a CPython of this version (our own at the least)
        and reports its full version.
        """
        found = run_tests.find_python(sys.version_info[:2])
        assert found is not None
        self.assertEqual(found[1], ".".join(map(str, sys.version_info[:3])))

    def test_find_missing_python(self) -> None:
        """
        A version no machine has is not found.
        """
        self.assertIsNone(run_tests.find_python((3, 99)))

    def test_prune_venvs(self) -> None:
        """
        Cached venvs unused for two weeks go, unless a run wants them; the
        rest stay.
        """
        cache = Path(tempfile.mkdtemp(prefix="txamqp-next-cache-"))
        self.addCleanup(shutil.rmtree, cache, True)
        self.patch(os, "environ", {**os.environ, "XDG_CACHE_HOME": str(cache)})
        venvs = run_tests.venv_cache()
        now = 1_900_000_000.0
        old = now - run_tests.VENV_UNUSED_SECONDS - 60
        for name, used in [("stale", old), ("wanted", old), ("fresh", now - 60)]:
            (venvs / name).mkdir(parents=True)
            marker = venvs / name / ".complete"
            marker.write_text("")
            os.utime(marker, (used, used))
        run_tests.prune_venvs({venvs / "wanted"}, now)
        self.assertEqual(sorted(p.name for p in venvs.iterdir()), ["fresh", "wanted"])


class ReportMatrixTests(SynchronousTestCase):
    """
    L{run_tests.report_matrix} counts what the other interpreters' runs did.
    """

    def setUp(self) -> None:
        self.target = run_tests.Target("Python 3.12.1", "/p", "3.12.1", [])
        self.tally = run_tests.Tally()
        self.failures: list[run_tests.FailedTest] = []
        self.printed: list[list[str]] = []
        self.patch(run_tests, "print_step", self.printed.append)

    def test_passed(self) -> None:
        """
        A made venv and a passing trial add their counts, and nothing fails.
        """
        run = run_tests.MatrixRun(self.target, [(0, ["==> making"])])
        run.trial = (0, ["==> trial", "Ran 2 tests", "PASSED (successes=2)"])
        run_tests.report_matrix([run], self.tally, self.failures)
        self.assertEqual((self.tally.passed, self.tally.failed), (2, 0))
        self.assertEqual(self.failures, [])
        self.assertEqual([lines[0] for lines in self.printed], ["==> making", "==> trial"])

    def test_venv_failed(self) -> None:
        """
        A venv that could not be made is one failure, listed with pip's last
        words.
        """
        run = run_tests.MatrixRun(self.target, [(1, ["==> making", "ERROR: no such package"])])
        run_tests.report_matrix([run], self.tally, self.failures)
        self.assertEqual(self.tally.failed, 1)
        [failure] = self.failures
        self.assertEqual((failure.test_id, failure.excerpt), ("venv", ["ERROR: no such package"]))

    def test_crash(self) -> None:
        """
        A run stopped by an exception in run_tests itself is one failure,
        with the traceback's end.
        """
        run = run_tests.MatrixRun(self.target, [], crash=["Traceback", "OSError: disk full"])
        run_tests.report_matrix([run], self.tally, self.failures)
        self.assertEqual(self.tally.failed, 1)
        [failure] = self.failures
        self.assertEqual(failure.excerpt[-1], "OSError: disk full")

    def test_run_matrix_records_crash(self) -> None:
        """
        An exception while making a venv (here: the cache is a file) is
        kept for the report, and the next target still runs.
        """
        blocker = Path(tempfile.mkdtemp(prefix="txamqp-next-cache-")) / "file"
        self.addCleanup(shutil.rmtree, blocker.parent, True)
        blocker.write_text("not a folder")
        self.patch(os, "environ", {**os.environ, "XDG_CACHE_HOME": str(blocker)})
        other = run_tests.Target("Python 3.13.0", "/q", "3.13.0", [])
        runs: list[run_tests.MatrixRun] = []
        run_tests.run_matrix([self.target, other], ROOT, time.monotonic() + 60, runs)
        self.assertEqual([r.target for r in runs], [self.target, other])
        for run in runs:
            assert run.crash is not None
            self.assertIn("Error", run.crash[-1])
            self.assertIsNone(run.trial)
