# -*- test-case-name: tests.integration.test_docs -*-
"""
Every Python example in the documentation runs against the real broker.

The test reads C{README.md} and every C{docs/*.md} when it is imported and
makes one test per fenced C{```python} block, named after the document, the
block's number in it and its line (C{test_usage_4_line117}), so new blocks
and new documents are covered without editing this module.  A block is one
of:

  - B{A complete program} (no marker): it runs as C{python block.py} in a
    temporary directory, with the repository on C{PYTHONPATH}, under the
    reactor this test run uses (unless the program installs one itself),
    and must exit with status 0 within 60 seconds.  The test broker's URL
    replaces C{amqp://guest:guest@127.0.0.1:5672/} in it.
  - B{A trial test module} (no marker, and it defines a C{TestCase}
    class): it runs under C{python -m twisted.trial} and must pass, with at
    least one test.
  - B{A fragment}: a marker just above the block, an HTML comment Markdown
    does not show, names the context it runs in (see
    L{tests.integration.doc_blocks} for the marker's form).  The contexts:
      - C{channel}: the body of an C{async def} run in this process under
        the test's reactor, given C{reactor}, the module C{txamqp_next},
        C{url} (the test broker's URL), C{client} (an open
        C{AMQPConnection}) and C{ch} (an open C{Channel}).  Each block gets
        a virtual host of its own (made with C{rabbitmqctl} and deleted
        afterwards), so it may declare durable names such as C{jobs}
        freely.  After the block, C{client} and C{ch} must still be open
        (a broker error in the block would have closed C{ch}).
      - C{thrift}: as C{channel}, and the Thrift code of
        C{examples/calculator.thrift} is importable (C{calculator_example},
        generated with C{thrift --gen py:twisted}), C{amqp} is C{client},
        C{processor} is a C{Calculator.Processor} (C{add}, C{divide}), and
        a server of the service C{calculator} runs during the block.
      - C{txamqp}: txAMQP-style code, the body of an C{inlineCallbacks}
        generator given C{reactor}, C{client} (an
        C{AMQClient}, connected and authenticated by C{AMQEndpoint} and
        C{AMQFactory}), C{channel} (its channel 1, open) and C{msg} (a
        message got from a queue with C{basic_get}, its body
        C{"café".encode()}); txAMQP 0.8.2 itself is importable as
        C{txamqp}, so code shown as it was before migrating runs too.
      - C{memory}: the body of a C{SynchronousTestCase} test method, given
        C{self} (the test), C{broker} (a L{txamqp_next.testing.MemoryBroker})
        and C{channel} (an open C{Channel} on it).
    A marker's C{OLD -> NEW} lines point names in the block (a production
    URL, a certificate's path) at the test's: C{{url}} is the test broker's
    URL with the block's virtual host, C{{vhost}} that virtual host,
    C{{tls_port}} a TLS port on 127.0.0.1 that forwards to the broker (its
    certificate, for C{localhost}, is issued by a CA of the test, and it
    requires a client certificate from that CA), and C{{tls_dir}} a
    directory holding C{broker-ca.pem}, C{broker-cas/ca.pem},
    C{client.pem} and C{client.key}.
    After a fragment, the connections, services and Thrift servers left in
    its variables are closed or stopped.

A block followed by C{<!-- output -->} and a fence must print exactly that
fence's text.  Every fence must name its language (C{python}, C{sh},
C{text}, ...), so Python cannot hide in a bare fence.

Programs pick their own reactor or run under the one of this test run;
fragments run under this test run's reactor, so the suite's two runs (the
default reactor and C{--reactor=asyncio}) run them twice.  The virtual hosts
need C{rabbitmqctl} for the broker at C{TXAMQP_NEXT_BROKER_URL}, as
L{tests.integration.test_close} does.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from twisted.application.service import IService
from twisted.internet import defer
from zope.interface import implementer

import txamqp_next
from tests.integration import doc_blocks
from tests.integration.broker import BROKER, BrokerTestCase, no_broker, reactor
from txamqp_next.connection import AMQPConnection
from txamqp_next.recovery import RecoveringConnection

ROOT = doc_blocks.ROOT
LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/"
PROGRAM_TIMEOUT = 60
TEST_CASE = re.compile(r"^class \w+\([\w.]*TestCase\):", re.M)
INSTALLS_REACTOR = re.compile(r"reactor\.install\(|\binstallReactor\(")

DOCUMENTS = [doc_blocks.read(path) for path in doc_blocks.documents()]


def vhost_url(vhost: str) -> str:
    """
    The test broker's URL with C{vhost} as its virtual host.
    """
    parts = urlsplit(BROKER)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def asyncio_reactor() -> bool:
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    return isinstance(reactor(), AsyncioSelectorReactor)


class DocTestCase(BrokerTestCase):
    """
    The machinery that runs one block; L{DocTests} holds a test per block.
    """

    timeout = 120

    # -- programs -----------------------------------------------------------

    def run_program(self, block: doc_blocks.Block) -> str:
        """
        Run a complete program (or trial module) in a subprocess.

        @return: what it printed.
        """
        directory = Path(self.mktemp()).resolve()
        directory.mkdir(parents=True)
        code = block.code.replace(LOCAL_URL, BROKER)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(directory), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        if TEST_CASE.search(code):
            module = f"doc_block_{block.index}"
            (directory / f"{module}.py").write_text(code)
            reactor_option = ["--reactor=asyncio"] if asyncio_reactor() else []
            command = [sys.executable, "-m", "twisted.trial", *reactor_option, module]
        else:
            program = directory / "block.py"
            program.write_text(code)
            command = [sys.executable, str(program)]
            if asyncio_reactor() and not INSTALLS_REACTOR.search(code):
                command[1:] = [
                    "-c",
                    "import runpy, sys\n"
                    "from twisted.internet import asyncioreactor\n"
                    "asyncioreactor.install()\n"
                    f"sys.argv = [{str(program)!r}]\n"
                    f"runpy.run_path({str(program)!r}, run_name='__main__')\n",
                ]
        try:
            result = subprocess.run(
                command,
                cwd=directory,
                env=env,
                capture_output=True,
                text=True,
                timeout=PROGRAM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            self.fail(f"{block.where} did not end within {PROGRAM_TIMEOUT} s: {e.stdout}{e.stderr}")
        if "Connection was refused" in result.stderr or "ConnectionRefusedError" in result.stderr:
            self.fail(no_broker(ConnectionRefusedError(result.stderr[-500:])))
        self.assertEqual(
            result.returncode,
            0,
            f"{block.where} exited with {result.returncode}:\n{result.stdout}{result.stderr}",
        )
        if TEST_CASE.search(code):
            tail = result.stdout.strip().splitlines()[-1]
            self.assertTrue(tail.startswith("PASSED (successes="), f"{block.where}: {tail}")
        return result.stdout

    # -- fragments ----------------------------------------------------------

    async def run_fragment(self, block: doc_blocks.Block) -> str:
        """
        Run a fragment in its context, in this process.

        @return: what it printed.
        """
        if block.context not in CONTEXTS:
            self.fail(
                f"{block.where}: unknown context {block.context!r}; "
                f"the contexts are {', '.join(sorted(CONTEXTS))}"
            )
        fields: dict[str, str] = {}
        if block.context != "memory":
            vhost = self.make_vhost()
            fields.update(url=vhost_url(vhost), vhost=vhost)
        if any("{tls_" in new for _, new in block.replacements):
            fields.update(await self.tls_proxy())
        code = block.code
        for old, new in block.replacements:
            code = code.replace(old, new.format_map(fields))
        names = await CONTEXTS[block.context](self, fields)
        printed = io.StringIO()
        left: dict[str, Any] = {}
        try:
            with contextlib.redirect_stdout(printed):
                try:
                    result = run_in(block, code, names, left, block.context)
                    if isinstance(result, defer.Deferred):
                        await result
                    if block.context in ("channel", "thrift"):
                        self.assertTrue(names["ch"].is_open, f"{block.where} closed `ch`")
                        self.assertIsNone(names["client"].closed, f"{block.where} closed `client`")
                finally:
                    given = {id(value) for value in names.values()}
                    await self.release([v for v in left.values() if id(v) not in given])
        except BaseException:
            sys.stdout.write(printed.getvalue())
            raise
        return printed.getvalue()

    async def release(self, values: list[Any]) -> None:
        """
        Stop the services, Thrift servers and connections a block left in
        its variables.
        """
        from txamqp_next.thrift import ThriftServer

        for value in values:
            if IService.providedBy(value) and value.running:
                await value.stopService()
        for value in values:
            if isinstance(value, ThriftServer):
                await value.stop()
        for value in values:
            if isinstance(value, RecoveringConnection | AMQPConnection):
                await value.close()

    def make_vhost(self) -> str:
        """
        A virtual host for one block, deleted at cleanup, on which the
        test broker's user has every permission.
        """
        vhost = f"txamqp-next-docs-{uuid.uuid4().hex[:10]}"
        user = urlsplit(BROKER).username or "guest"
        rabbitmqctl("add_vhost", vhost)
        self.addCleanup(rabbitmqctl, "delete_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        return vhost

    async def tls_proxy(self) -> dict[str, str]:
        """
        Listen with TLS on a loopback port and forward to the broker.

        @return: the fields C{tls_port} and C{tls_dir}.
        """
        from OpenSSL import crypto
        from twisted.internet import endpoints, ssl
        from twisted.protocols import portforward

        from tests.certs import CertificateAuthority

        directory = Path(tempfile.mkdtemp(prefix="txamqp-next-docs-tls-"))
        self.addCleanup(shutil.rmtree, directory, True)
        ca = CertificateAuthority("txamqp_next docs CA")
        server = ca.issue("localhost", names=["localhost", "127.0.0.1"])
        client = ca.issue("txamqp_next docs client", client=True)
        (directory / "broker-ca.pem").write_bytes(ca.certificate_pem)
        (directory / "broker-cas").mkdir()
        (directory / "broker-cas" / "ca.pem").write_bytes(ca.certificate_pem)
        (directory / "client.pem").write_bytes(client.certificate_pem)
        (directory / "client.key").write_bytes(client.key_pem)

        def load(pem: bytes) -> Any:
            return crypto.load_certificate(crypto.FILETYPE_PEM, pem)

        options = ssl.CertificateOptions(
            privateKey=crypto.load_privatekey(crypto.FILETYPE_PEM, server.key_pem),
            certificate=load(server.certificate_pem),
            verify=True,
            caCerts=[load(ca.certificate_pem)],
            requireCertificate=True,
        )
        broker = urlsplit(BROKER)
        factory = portforward.ProxyFactory(broker.hostname or "127.0.0.1", broker.port or 5672)
        endpoint = endpoints.SSL4ServerEndpoint(reactor(), 0, options, interface="127.0.0.1")
        port = await endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        return {"tls_port": str(port.getHost().port), "tls_dir": str(directory)}

    # -- contexts -----------------------------------------------------------

    async def channel_context(self, fields: dict[str, str]) -> dict[str, Any]:
        client = await self.connect(fields["url"])
        return {
            "reactor": reactor(),
            "txamqp_next": txamqp_next,
            "url": fields["url"],
            "client": client,
            "ch": await client.open_channel(),
        }

    async def thrift_context(self, fields: dict[str, str]) -> dict[str, Any]:
        from tests.thrift.support import generate
        from txamqp_next.thrift import serve

        generate(idl=ROOT / "examples" / "calculator.thrift", package="calculator_example")
        from calculator_example import Calculator, ttypes  # type: ignore[import-not-found]

        @implementer(Calculator.Iface)
        class Handler:
            def add(self, a: int, b: int) -> int:
                return a + b

            def divide(self, a: int, b: int) -> int:
                if b == 0:
                    raise ttypes.DivideByZero(message=f"cannot divide {a} by zero")
                return a // b

        names = await self.channel_context(fields)
        names["amqp"] = names["client"]
        names["processor"] = Calculator.Processor(Handler())
        server = await serve(names["client"], "calculator", Calculator.Processor(Handler()))
        self.addCleanup(server.stop, 5)
        return names

    async def txamqp_context(self, fields: dict[str, str]) -> dict[str, Any]:
        from tests.thrift.support import txamqp_paths
        from txamqp_next.content import Content

        for path in txamqp_paths():
            if path not in sys.path:
                sys.path.append(path)
        client = await self.connect_txamqp(fields["url"])
        channel = await client.channel(1)
        await channel.channel_open()
        queue = (await channel.queue_declare(exclusive=True)).queue
        await channel.basic_publish(routing_key=queue, content=Content("café".encode()))
        msg = await channel.basic_get(queue=queue, no_ack=True)
        return {"reactor": reactor(), "client": client, "channel": channel, "msg": msg}

    async def memory_context(self, fields: dict[str, str]) -> dict[str, Any]:
        from txamqp_next.testing import MemoryBroker

        broker = MemoryBroker()
        connection = self.successResultOf(broker.open_connection())
        opening = connection.open_channel()
        broker.flush()
        return {"self": self, "broker": broker, "channel": self.successResultOf(opening)}


CONTEXTS = {
    "channel": DocTestCase.channel_context,
    "thrift": DocTestCase.thrift_context,
    "txamqp": DocTestCase.txamqp_context,
    "memory": DocTestCase.memory_context,
}


def run_in(
    block: doc_blocks.Block, code: str, names: dict[str, Any], left: dict[str, Any], context: str
) -> Any:
    """
    Compile a fragment as the body of a function taking the context's
    names, with the document's file name and line numbers (so a traceback
    shows the document's line), and call it.

    @param left: filled with the fragment's variables once it ends.
    @return: what the function returns: a coroutine, a L{defer.Deferred}
        (C{txamqp}), or L{None} (C{memory}).
    """
    parameters = ", ".join(["__left__", *names])
    header = {
        "channel": f"async def __block__({parameters}):",
        "thrift": f"async def __block__({parameters}):",
        "txamqp": f"def __block__({parameters}):",
        "memory": f"def __block__({parameters}):",
    }[context]
    body = textwrap.indent(code, " " * 8)
    if context == "txamqp":
        body += "        if False:\n            yield\n"
    source = (
        "\n" * max(block.line - 2, 0)
        + header
        + "\n    try:\n"
        + body
        + "    finally:\n        __left__.update(locals())\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, str(ROOT / block.path), "exec"), namespace)
    function = namespace["__block__"]
    if context == "txamqp":
        function = defer.inlineCallbacks(function)
    result = function(left, *names.values())
    if context in ("channel", "thrift"):
        return defer.Deferred.fromCoroutine(result)
    return result


def slug(path: str) -> str:
    return re.sub(r"\W+", "_", Path(path).stem).strip("_")


def make_test(block: doc_blocks.Block) -> Any:
    async def test(self: DocTestCase) -> None:
        if block.context is None:
            printed = await defer.Deferred.fromCoroutine(_in_thread(self.run_program, block))
        else:
            printed = await self.run_fragment(block)
        if block.output is not None:
            self.assertEqual(printed.strip(), block.output.strip(), f"{block.where} printed")

    kind = "a complete program" if block.context is None else f"a fragment in {block.context!r}"
    test.__name__ = f"test_{slug(block.path)}_{block.index}_line{block.line}"
    test.__doc__ = (
        f"Python block {block.index} of {block.path} (line {block.line}) runs as {kind}"
        + (" and prints what the document shows." if block.output is not None else ".")
    )

    def run(self: DocTestCase) -> defer.Deferred[None]:
        return defer.ensureDeferred(test(self))

    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


async def _in_thread(function: Any, *args: Any) -> Any:
    from twisted.internet import threads

    return await threads.deferToThread(function, *args)


class DocTests(DocTestCase):
    """
    One test per Python block of the documentation.
    """

    def test_fences(self) -> None:
        """
        Every fence names its language, every marker and shown output
        belongs to a Python block, and every marker's names occur in it.
        """
        problems = [problem for document in DOCUMENTS for problem in document.problems]
        self.assertEqual(problems, [])

    def test_found(self) -> None:
        """
        The documents hold Python blocks, and the test names are unique.
        """
        blocks = [block for document in DOCUMENTS for block in document.blocks]
        self.assertGreater(len(blocks), 20)
        names = [make_test(block).__name__ for block in blocks]
        self.assertEqual(len(names), len(set(names)))


for _document in DOCUMENTS:
    for _block in _document.blocks:
        _test = make_test(_block)
        setattr(DocTests, _test.__name__, _test)
