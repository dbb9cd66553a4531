# -*- test-case-name: tests.test_packaging -*-
"""
The built sdist and wheel: what they contain, their metadata, that an
installed wheel loads its default spec without the repository, and that the
unit tests run from an unpacked sdist.
"""

from __future__ import annotations

import atexit
import email.parser
import functools
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.message import Message
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent

#: the tls extra's minimums, proven to install together and to pass the
#: unit tests (tests.test_tls among them) with Twisted 22.10.0 on Python
#: 3.10: pyOpenSSL 23.0.0 is the first release that allows cryptography 39,
#: which txamqp_next._tls needs (load_pem_x509_certificates).
#: scripts/run_tests.py installs exactly these in its lowest run.
PROVEN_MINIMUMS = {
    "tls": {"pyopenssl": "23.0.0", "cryptography": "39.0.0", "service-identity": "21.1.0"},
    "thrift": {"thrift": "0.16.0"},
    "prometheus": {"prometheus-client": "0.14.0"},
}

#: folders the sdist carries whole, so that its tests, docs and examples work
SDIST_FOLDERS = ("specs", "tests", "docs", "examples", "bench", "scripts", "newsfragments")

#: files in those folders that are made by running things, not sources
GENERATED = (".pyc", "dropin.cache")


def run(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@functools.cache
def built() -> tuple[Path, Path, Path]:
    """
    Build the sdist, and the wheel from it, once per test run, as
    C{python -m build} does for a release.

    @return: the sdist's and the wheel's paths and a scratch directory.
    """
    workdir = Path(tempfile.mkdtemp(prefix="txamqp-next-dist-"))
    atexit.register(shutil.rmtree, workdir, True)
    out = workdir / "dist"
    run(sys.executable, "-m", "build", "--outdir", str(out), str(ROOT))
    [sdist] = out.glob("txamqp_next-*.tar.gz")
    [wheel] = out.glob("txamqp_next-*.whl")
    return sdist, wheel, workdir


def built_wheel() -> tuple[Path, Path]:
    """
    @return: the wheel's path and a scratch directory.
    """
    _, wheel, workdir = built()
    return wheel, workdir


def wheel_metadata() -> Message:
    """
    The wheel's METADATA, as an email message (as the core metadata spec has it).
    """
    wheel, _ = built_wheel()
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


class WheelTests(SynchronousTestCase):
    """
    Build the wheel and inspect and install it.
    """

    def setUp(self) -> None:
        self.wheel, self.workdir = built_wheel()

    def names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as wheel:
            return set(wheel.namelist())

    def test_contents(self) -> None:
        """
        The wheel carries the package, its typing marker, the default spec
        (from the top-level specs/ folder, at the same place in the package
        as before), the twistd plugin and the license, and no __init__.py
        under twisted/ (which would shadow Twisted's own package).
        """
        names = self.names()
        for needed in (
            "txamqp_next/__init__.py",
            "txamqp_next/py.typed",
            "txamqp_next/specs/amqp0-9-1-rabbit.xml",
            "twisted/plugins/txamqp_next_plugin.py",
            "txamqp_next-0.1.0.dev0.dist-info/licenses/LICENSE",
        ):
            self.assertIn(needed, names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertFalse(
            [n for n in names if n.startswith(("tests/", "bench/", "examples/", "specs/"))]
        )

    def test_spec_is_the_repository_file(self) -> None:
        """
        The wheel's default spec is the top-level specs/ file, byte for byte.
        """
        with zipfile.ZipFile(self.wheel) as wheel:
            shipped = wheel.read("txamqp_next/specs/amqp0-9-1-rabbit.xml")
        self.assertEqual(shipped, (ROOT / "specs" / "amqp0-9-1-rabbit.xml").read_bytes())

    def test_installed_wheel_loads_default_spec(self) -> None:
        """
        Installed into a fresh virtual environment, the package loads its
        default spec from the installed copy, not from the repository.
        """
        # without the PYTHONPATH a checkout's test run may set, through which
        # pip would take the checkout for the installed project
        alone = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        venv = self.workdir / "venv"
        run(sys.executable, "-m", "venv", str(venv), env=alone)
        python = str(venv / "bin" / "python")
        env_pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run(*env_pip, str(self.wheel), env=alone)
        script = (
            "import txamqp_next, txamqp_next.spec as s; "
            "spec = s.load(); "
            "print(txamqp_next.__file__); print(spec.version_name, len(spec.methods))"
        )
        out = run(python, "-c", script, cwd=self.workdir, env=alone).splitlines()
        self.assertTrue(out[0].startswith(str(venv)), out[0])
        self.assertFalse(out[0].startswith(str(ROOT) + os.sep), out[0])
        version, count = out[1].split()
        self.assertEqual(version, "0-9-1")
        self.assertGreater(int(count), 60)


class MetadataTests(SynchronousTestCase):
    """
    The published metadata: license, classifiers, URLs and requirements.
    """

    def setUp(self) -> None:
        self.metadata = wheel_metadata()

    def extra_minimums(self, extra: str) -> dict[str, str]:
        """
        The lower bounds of one extra's requirements, by lower-case name.
        """
        marker = f'; extra == "{extra}"'
        found = {}
        for requirement in self.metadata.get_all("Requires-Dist") or []:
            if requirement.endswith(marker):
                spec = requirement[: -len(marker)].strip()
                self.assertIn(">=", spec, f"{spec}: the extras give a minimum version")
                name, version = spec.split(">=")
                found[name.strip().lower()] = version.strip()
        return found

    def test_license(self) -> None:
        """
        MIT, as an SPDX expression, with the LICENSE file named.
        """
        self.assertEqual(self.metadata["License-Expression"], "MIT")
        self.assertEqual(self.metadata.get_all("License-File"), ["LICENSE"])
        self.assertIn("MIT License", (ROOT / "LICENSE").read_text())

    def test_python_classifiers(self) -> None:
        """
        A classifier for each CPython the unit tests run on, 3.10 to 3.13,
        and requires-python says 3.10.
        """
        classifiers = self.metadata.get_all("Classifier") or []
        for version in ("3.10", "3.11", "3.12", "3.13"):
            self.assertIn(f"Programming Language :: Python :: {version}", classifiers)
        self.assertIn("Framework :: Twisted", classifiers)
        self.assertIn("Typing :: Typed", classifiers)
        self.assertEqual(self.metadata["Requires-Python"], ">=3.10")

    def test_urls(self) -> None:
        """
        Homepage, documentation, source and issues, all on the project's page.
        """
        urls = dict(
            entry.split(", ", 1) for entry in self.metadata.get_all("Project-URL") or []
        )
        self.assertEqual(set(urls), {"Homepage", "Documentation", "Source", "Issues"})
        for url in urls.values():
            self.assertTrue(url.startswith("https://github.com/txamqp-next/txamqp-next"), url)
        self.assertTrue(urls["Documentation"].endswith("/docs"), urls["Documentation"])

    def test_extras_are_the_proven_minimums(self) -> None:
        """
        The tls and thrift extras ask for exactly the minimums that were
        proven to install together and pass the unit tests; changing them
        means proving the new ones (scripts/run_tests.py's lowest run
        installs whatever the extras say) and updating PROVEN_MINIMUMS.
        """
        for extra, minimums in PROVEN_MINIMUMS.items():
            self.assertEqual(self.extra_minimums(extra), minimums, extra)

    def test_no_tool_extras(self) -> None:
        """
        Only what users need is published as extras: the test and bench
        tools are dependency groups, which do not reach the metadata.
        """
        self.assertEqual(
            sorted(self.metadata.get_all("Provides-Extra") or []), ["prometheus", "thrift", "tls"]
        )
        requirements = " ".join(self.metadata.get_all("Requires-Dist") or []).lower()
        for tool in ("hypothesis", "mypy", "ruff", "matplotlib", "pika", "aiormq", "txamqp"):
            self.assertNotIn(tool, requirements)


class SdistTests(SynchronousTestCase):
    """
    The sdist carries the whole project, and its unit tests run from it.
    """

    def setUp(self) -> None:
        self.sdist, _, self.workdir = built()

    def members(self) -> set[str]:
        """
        The sdist's files, relative to its top folder.
        """
        with tarfile.open(self.sdist) as archive:
            return {
                member.name.split("/", 1)[1]
                for member in archive.getmembers()
                if member.isfile() and "/" in member.name
            }

    def test_contents(self) -> None:
        """
        The license, the packaging files, the spec folder, and every source
        file of tests/ (its __init__, helpers and integration tests
        included), docs/, examples/, bench/, scripts/ and newsfragments/.
        """
        members = self.members()
        for needed in (
            "LICENSE",
            "README.md",
            "pyproject.toml",
            "setup.py",
            "specs/amqp0-9-1-rabbit.xml",
            "txamqp_next/specs/amqp0-9-1-rabbit.xml",
            "tests/__init__.py",
            "tests/helpers.py",
            "tests/integration/__init__.py",
            "tests/integration/broker.py",
        ):
            self.assertIn(needed, members)
        expected = {
            path.relative_to(ROOT).as_posix()
            for folder in SDIST_FOLDERS
            for path in (ROOT / folder).rglob("*")
            if path.is_file()
            and not path.name.endswith(GENERATED)
            and "__pycache__" not in path.parts
            and not path.relative_to(ROOT).as_posix().startswith("bench/results/")
        }
        self.assertEqual(expected - members, set(), "missing from the sdist")
        self.assertFalse([m for m in members if m.endswith(GENERATED)])

    def test_unit_tests_run(self) -> None:
        """
        Unpacked, the sdist's own unit tests (the codec, the spec and the
        packaged default spec) pass against the sdist's own package.
        """
        unpacked = self.workdir / "unpacked"
        if not unpacked.exists():
            with tarfile.open(self.sdist) as archive:
                archive.extractall(unpacked)
        [top] = unpacked.iterdir()
        env = {**os.environ, "PYTHONPATH": str(top)}
        script = "import txamqp_next; print(txamqp_next.__file__)"
        where = run(sys.executable, "-c", script, cwd=top, env=env)
        self.assertTrue(where.startswith(str(top) + os.sep), where)
        out = run(
            sys.executable,
            "-m",
            "twisted.trial",
            "--temp-directory",
            str(self.workdir / "sdist_trial_temp"),
            "tests.test_codec",
            "tests.test_spec",
            "tests.test_default_spec",
            cwd=top,
            env=env,
        )
        self.assertIn("PASSED (successes=", out.splitlines()[-1])
