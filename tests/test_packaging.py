# -*- test-case-name: tests.test_packaging -*-
"""
The built wheel: what it contains, and that an installed copy loads its
default spec without the repository.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | str | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@functools.cache
def built_wheel() -> tuple[Path, Path]:
    """
    Build the wheel once per test run.

    @return: the wheel's path and a scratch directory beside it.
    """
    workdir = Path(tempfile.mkdtemp(prefix="txamqp-next-wheel-"))
    atexit.register(shutil.rmtree, workdir, True)
    out = workdir / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT))
    [wheel] = out.glob("txamqp_next-*.whl")
    return wheel, workdir


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
        and the twistd plugin, and no __init__.py under twisted/ (which
        would shadow Twisted's own package).
        """
        names = self.names()
        for needed in (
            "txamqp_next/__init__.py",
            "txamqp_next/py.typed",
            "txamqp_next/specs/amqp0-9-1-rabbit.xml",
            "twisted/plugins/txamqp_next_plugin.py",
        ):
            self.assertIn(needed, names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertFalse([n for n in names if n.startswith(("tests/", "bench/", "examples/"))])

    def test_installed_wheel_loads_default_spec(self) -> None:
        """
        Installed into a fresh virtual environment, the package loads its
        default spec from the installed copy, not from the repository.
        """
        venv = self.workdir / "venv"
        run(sys.executable, "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        env_pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run(*env_pip, str(self.wheel))
        script = (
            "import txamqp_next, txamqp_next.spec as s; "
            "spec = s.load(); "
            "print(txamqp_next.__file__); print(spec.version_name, len(spec.methods))"
        )
        out = run(python, "-c", script, cwd=self.workdir).splitlines()
        self.assertTrue(out[0].startswith(str(venv)), out[0])
        self.assertFalse(out[0].startswith(str(ROOT) + os.sep), out[0])
        version, count = out[1].split()
        self.assertEqual(version, "0-9-1")
        self.assertGreater(int(count), 60)
