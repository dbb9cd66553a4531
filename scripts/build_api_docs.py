"""
Build the API reference with pydoctor, and check it.

C{python scripts/build_api_docs.py [OUTPUT]} writes the HTML reference of
C{txamqp_next} to OUTPUT (default C{build/apidocs}), from the epytext
docstrings, and exits 1 when pydoctor warns of anything (a docstring it
cannot parse, a link it cannot resolve) or when the reference lacks a spec
method: each call of L{txamqp_next.methods.ChannelMethods} must be
documented there with the spec's own text.  The test command runs it.

Links to Twisted's names (L{Deferred}) go to Twisted's online reference
through a small inventory built here from the installed Twisted, so the
build needs no network.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWISTED_API = "https://docs.twisted.org/en/stable/api/"
#: the Twisted modules whose names our docstrings link to
TWISTED_MODULES = (
    "twisted.application.internet",
    "twisted.application.service",
    "twisted.internet.defer",
    "twisted.internet.endpoints",
    "twisted.internet.error",
    "twisted.internet.interfaces",
    "twisted.internet.protocol",
    "twisted.internet.task",
    "twisted.logger",
    "twisted.python.failure",
)


def twisted_inventory(path: Path) -> None:
    """
    Write a Sphinx inventory (version 2) of the public classes, functions
    and methods of L{TWISTED_MODULES}, pointing at Twisted's pydoctor
    pages: a class at C{<name>.html}, a function at C{<module>.html#<name>},
    a method at C{<class>.html#<name>}.
    """
    from zope.interface.interface import InterfaceClass

    import twisted

    lines = []
    for module_name in TWISTED_MODULES:
        module = importlib.import_module(module_name)
        lines.append(f"{module_name} py:module 1 {module_name}.html -")
        exported = set(getattr(module, "__all__", ()))
        for name, value in vars(module).items():
            home = getattr(value, "__module__", None) or ""
            if name.startswith("_") or not (home == module_name or name in exported):
                continue
            full = f"{module_name}.{name}"
            if inspect.isclass(value) or isinstance(value, InterfaceClass):
                lines.append(f"{full} py:class 1 {full}.html -")
                members = value.names() if isinstance(value, InterfaceClass) else vars(value)
                for attribute in members:
                    if not attribute.startswith("_"):
                        lines.append(f"{full}.{attribute} py:method 1 {full}.html#{attribute} -")
            elif inspect.isfunction(value):
                lines.append(f"{full} py:function 1 {module_name}.html#{name} -")
    header = (
        "# Sphinx inventory version 2\n"
        "# Project: Twisted\n"
        f"# Version: {twisted.__version__}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path.write_bytes(header.encode() + zlib.compress("\n".join(lines).encode() + b"\n"))


def build(output: Path) -> list[str]:
    """
    Run pydoctor; its warnings, one per line.
    """
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "twisted.inv"
        twisted_inventory(inventory)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pydoctor",
                "--quiet",
                "--project-name=txamqp_next",
                f"--html-output={output}",
                "--docformat=epytext",
                f"--intersphinx-file={inventory}::{TWISTED_API}",
                "txamqp_next",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    text = result.stdout + result.stderr
    # pip's own notes about local package indexes are not pydoctor's
    warnings = [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("WARNING: Location 'file://")
    ]
    if result.returncode != 0 and not warnings:
        warnings.append(f"pydoctor exited with status {result.returncode}")
    return warnings


def spec_methods_documented(output: Path) -> tuple[int, list[str]]:
    """
    How many of the default spec's channel calls the reference documents
    with the spec's text (generated calls on C{ChannelMethods}' page, the
    calls written by hand on C{Channel}'s), and the calls it lacks.
    """
    from txamqp_next import methods, spec
    from txamqp_next.channel import Channel

    def flat(text: str) -> str:
        # text as a reader sees it: no tags, no epytext markup, one space
        text = re.sub(r"<[^>]+>", "", text)
        text = re.sub(r"[A-Z]\{([^{}]*)\}", r"\1", text)
        return re.sub(r"\s+", " ", text).replace("&quot;", '"').replace("&#x27;", "'")

    pages = {
        cls: (output / f"{cls.__module__}.{cls.__name__}.html").read_text()
        for cls in (methods.ChannelMethods, Channel)
    }
    texts = {cls: flat(page) for cls, page in pages.items()}
    calls = [
        m for m in spec.load().methods if "server" in m.chassis and m.class_name != "connection"
    ]
    missing = []
    for method in calls:
        name = method.python_name
        owner = methods.ChannelMethods if name in vars(methods.ChannelMethods) else Channel
        doc = inspect.getdoc(getattr(owner, name)) or ""
        # the spec's text for generated calls; the first words otherwise
        text = (method.doc if owner is methods.ChannelMethods else doc).split("\n\n")[0]
        if f'name="{name}"' not in pages[owner] or flat(text)[:40] not in texts[owner]:
            missing.append(name)
    return len(calls) - len(missing), missing


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "apidocs"
    warnings = build(output)
    for line in warnings:
        print(line)
    if warnings:
        print(f"error: pydoctor gave {len(warnings)} warning lines")
        return 1
    documented, missing = spec_methods_documented(output)
    if missing:
        print(f"error: the reference lacks spec methods: {', '.join(missing)}")
        return 1
    print(f"API reference in {output}: {documented} spec methods documented, no warnings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
