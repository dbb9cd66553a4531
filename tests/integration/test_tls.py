# -*- test-case-name: tests.integration.test_tls -*-
"""
TLS against private RabbitMQ nodes with certificates made for the test run:
C{amqps://} URIs with their TLS parameters, the C{tls:} endpoint string, and
each way the handshake can fail, with a typed error that names the cause and
no socket left open.

Two nodes serve the whole module: one asks for a client certificate but
accepts connections without one, the other requires one
(C{fail_if_no_peer_cert}).  They start on first use and stop when the test
process exits.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import ISSLTransport

import txamqp_next
from tests.certs import CertificateAuthority
from tests.integration.broker import BrokerTestCase, async_test, reactor, sockets_to, unique
from tests.integration.nodes import PrivateNode
from txamqp_next import Credentials, errors
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import AMQEndpoint
from txamqp_next.factory import AMQFactory

TIMEOUT = 5

CERTS = Path(tempfile.mkdtemp(prefix="txamqp-next-certs-"))
CERTS.chmod(0o755)  # the broker runs as the rabbitmq user
atexit.register(shutil.rmtree, CERTS, True)

_authority = CertificateAuthority("txamqp_next test CA")
_stranger = CertificateAuthority("some other CA")
CA, _ = _authority.write(CERTS, "ca")
OTHER_CA, _ = _stranger.write(CERTS, "other-ca")
SERVER, SERVER_KEY = _authority.issue("localhost", ["localhost", "127.0.0.1"]).write(
    CERTS, "server"
)
CLIENT, CLIENT_KEY = _authority.issue("txamqp-next client", client=True).write(CERTS, "client")
STRANGER, STRANGER_KEY = _stranger.issue("stranger", client=True).write(CERTS, "stranger")
# a directory holding only our CA, for the tls: endpoint's trustRoots
CA_DIR = CERTS / "trust"
CA_DIR.mkdir()
shutil.copy(CA, CA_DIR / "ca.pem")
OTHER_CA_DIR = CERTS / "other-trust"
OTHER_CA_DIR.mkdir()
shutil.copy(OTHER_CA, OTHER_CA_DIR / "ca.pem")

_nodes: dict[bool, PrivateNode] = {}


async def tls_node(require_client_certificate: bool) -> PrivateNode:
    """
    The module's node that requires client certificates, or the one that
    does not; started on first use.
    """
    node = _nodes.get(require_client_certificate)
    if node is None:
        node = PrivateNode(
            config=[
                f"ssl_options.cacertfile = {CA}",
                f"ssl_options.certfile = {SERVER}",
                f"ssl_options.keyfile = {SERVER_KEY}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = "
                + ("true" if require_client_certificate else "false"),
            ],
            tls=True,
        )
        atexit.register(node.stop)
        await node.start_in_thread()
        _nodes[require_client_certificate] = node
    return node


class TLSTestCase(BrokerTestCase):
    """
    Connecting to a TLS node.
    """

    timeout = 120
    require_client_certificate = False

    async def node(self) -> PrivateNode:
        return await tls_node(self.require_client_certificate)

    async def url(self, host: str = "localhost", **parameters: object) -> str:
        node = await self.node()
        query = "&".join(f"{k}={v}" for k, v in parameters.items())
        return f"amqps://guest:guest@{host}:{node.tls_port}/?{query}"

    async def round_trip(self, client: AMQPConnection) -> None:
        """
        Publish a message through the broker and consume it.
        """
        self.assertTrue(ISSLTransport.providedBy(client.transport))
        # the check that failed connections leave no socket can see ours
        self.assertTrue(sockets_to(client.transport.getPeer().port))  # type: ignore[union-attr]
        # Nagle's algorithm is off on the TCP connection under TLS too
        tcp: Any = client.transport.transport  # type: ignore[union-attr]
        self.assertTrue(tcp.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue=unique("tls"), exclusive=True)).queue
        await ch.basic_publish(routing_key=queue, body=b"over TLS")
        consumer = await ch.basic_consume(queue=queue)
        message = await consumer.queue.get(timeout=TIMEOUT)
        self.assertEqual(message.body, b"over TLS")
        await message.ack()

    async def fails(
        self, url_or_endpoint: str, expected: type[BaseException], **kwargs: Any
    ) -> BaseException:
        """
        Connecting fails with C{expected} within the timeout and leaves no
        socket to the node.
        """
        node = await self.node()
        assert node.tls_port is not None
        start = reactor().seconds()
        error = await self.assertFailure(
            txamqp_next.connect(reactor(), url_or_endpoint, connection_timeout=TIMEOUT, **kwargs),
            expected,
        )
        self.assertLess(reactor().seconds() - start, TIMEOUT)
        self.assertEqual(sockets_to(node.tls_port), [])
        self.assertEqual(sockets_to(node.port), [])
        return error


class ServerCertificateTests(TLSTestCase):
    """
    Checking the broker's certificate.
    """

    @async_test
    async def test_verified(self) -> None:
        """
        With our CA in cacertfile, connecting by host name (a DNS name in the
        certificate) and by address (an IP address in it) both work end to
        end.
        """
        for host in ("localhost", "127.0.0.1"):
            client = await self.connect(await self.url(host, cacertfile=CA))
            await self.round_trip(client)

    @async_test
    async def test_ca_bundle(self) -> None:
        """
        A cacertfile with several CAs trusts each of them, not only the
        first.
        """
        bundle = CERTS / "bundle.pem"
        bundle.write_bytes(OTHER_CA.read_bytes() + CA.read_bytes())
        client = await self.connect(await self.url(cacertfile=bundle))
        await self.round_trip(client)

    @async_test
    async def test_untrusted(self) -> None:
        """
        A broker certificate not signed by the CA in cacertfile fails with
        CertificateVerifyError saying it is not trusted.
        """
        error = await self.fails(await self.url(cacertfile=OTHER_CA), errors.CertificateVerifyError)
        self.assertIn("not trusted", str(error))
        self.assertIsInstance(error, errors.ConnectionClosed)

    @async_test
    async def test_system_trust_store(self) -> None:
        """
        Without cacertfile the system's trust store decides, and it does not
        know our test CA.
        """
        await self.fails(await self.url(), errors.CertificateVerifyError)

    @async_test
    async def test_wrong_host_name(self) -> None:
        """
        A server_name_indication the certificate does not carry fails with
        CertificateVerifyError naming the host and the names it carries.
        """
        error = await self.fails(
            await self.url(cacertfile=CA, server_name_indication="broker.example.com"),
            errors.CertificateVerifyError,
        )
        self.assertIn("not valid for broker.example.com", str(error))
        self.assertIn("localhost, 127.0.0.1", str(error))

    @async_test
    async def test_server_name_indication(self) -> None:
        """
        server_name_indication names the host to check: connecting to
        127.0.0.1 while expecting localhost works; "disable" sends no SNI
        and still checks the URI's host.
        """
        client = await self.connect(
            await self.url("127.0.0.1", cacertfile=CA, server_name_indication="localhost")
        )
        await self.round_trip(client)
        client = await self.connect(await self.url(cacertfile=CA, server_name_indication="disable"))
        await self.round_trip(client)

    @async_test
    async def test_txamqp_endpoint(self) -> None:
        """
        txAMQP's AMQEndpoint.from_uri connects an amqps:// URI with TLS too.
        """
        endpoint = AMQEndpoint.from_uri(reactor(), await self.url(cacertfile=CA))
        client = await endpoint.connect(AMQFactory())
        self.addCleanup(client.close)
        await self.round_trip(client)

    @async_test
    async def test_verify_none(self) -> None:
        """
        verify=verify_none connects to a broker whose certificate nothing
        trusts.
        """
        client = await self.connect(await self.url(verify="verify_none"))
        await self.round_trip(client)

    @async_test
    async def test_not_tls(self) -> None:
        """
        amqps:// to the node's plain AMQP port fails with TLSError saying
        the port does not speak TLS.
        """
        node = await self.node()
        error = await self.fails(
            f"amqps://guest:guest@127.0.0.1:{node.port}/?cacertfile={CA}", errors.TLSError
        )
        self.assertIn("does not speak TLS", str(error))

    @async_test
    async def test_tls_endpoint_string(self) -> None:
        """
        A Twisted tls: endpoint string with trustRoots and credentials
        connects; with a directory of other CAs it fails with
        CertificateVerifyError.
        """
        node = await self.node()
        guest = Credentials("guest", "guest")
        client = await self.connect(
            f"tls:host=localhost:port={node.tls_port}:trustRoots={CA_DIR}", credentials=guest
        )
        await self.round_trip(client)
        await client.close()
        await self.fails(
            f"tls:host=localhost:port={node.tls_port}:trustRoots={OTHER_CA_DIR}",
            errors.CertificateVerifyError,
            credentials=guest,
        )


class ClientCertificateTests(TLSTestCase):
    """
    A broker that requires a client certificate.
    """

    require_client_certificate = True

    @async_test
    async def test_client_certificate(self) -> None:
        """
        certfile and keyfile signed by the broker's CA get in.
        """
        client = await self.connect(
            await self.url(cacertfile=CA, certfile=CLIENT, keyfile=CLIENT_KEY)
        )
        await self.round_trip(client)

    @async_test
    async def test_tls_endpoint_string(self) -> None:
        """
        The tls: endpoint string's certificate and privateKey work too.
        """
        node = await self.node()
        client = await self.connect(
            f"tls:host=localhost:port={node.tls_port}:trustRoots={CA_DIR}"
            f":certificate={CLIENT}:privateKey={CLIENT_KEY}",
            credentials=Credentials("guest", "guest"),
        )
        await self.round_trip(client)

    @async_test
    async def test_no_client_certificate(self) -> None:
        """
        Without a client certificate the connection fails with TLSError
        saying the broker requires one.
        """
        error = await self.fails(await self.url(cacertfile=CA), errors.TLSError)
        self.assertIn("requires a client certificate", str(error))
        self.assertNotIsInstance(error, errors.CertificateVerifyError)

    @async_test
    async def test_untrusted_client_certificate(self) -> None:
        """
        A client certificate from a CA the broker does not know fails with
        TLSError saying the broker does not trust it.
        """
        error = await self.fails(
            await self.url(cacertfile=CA, certfile=STRANGER, keyfile=STRANGER_KEY),
            errors.TLSError,
        )
        self.assertIn("does not trust our client certificate", str(error))


class PlainToTLSPortTests(TLSTestCase):
    """
    The other mistake: plain AMQP to the TLS port.
    """

    @async_test
    async def test_plain_to_tls_port(self) -> None:
        """
        amqp:// to the TLS port fails with RemoteProtocolError saying the
        server answered with TLS, within the timeout, leaving no socket.
        """
        node = await self.node()
        error = await self.fails(
            f"amqp://guest:guest@127.0.0.1:{node.tls_port}/", errors.RemoteProtocolError
        )
        self.assertIn("the server answered with TLS", str(error))
