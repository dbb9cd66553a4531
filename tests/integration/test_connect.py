# -*- test-case-name: tests.integration.test_connect -*-
"""
Connecting to the real broker: URIs, endpoint strings, and each way it can
fail, with a clear typed error and no socket left open.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.internet import ClientService
from twisted.internet import defer, endpoints, protocol
from twisted.internet.error import ConnectionRefusedError
from twisted.logger import formatEvent, globalLogPublisher

import txamqp_next
from tests.integration.broker import BROKER, BrokerTestCase, async_test, reactor, sockets_to
from txamqp_next import Credentials, errors
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import ConnectTimeout, endpoint_and_factory, parse_url

SECRET = "s3cret-Passw0rd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class SilentServer(protocol.Protocol):
    """
    Accepts, records, and never answers (or answers with C{reply}).
    """

    reply = b""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)  # type: ignore[attr-defined]
        self.lost: defer.Deferred[None] = defer.Deferred()
        if self.reply:
            self.transport.write(self.reply)  # type: ignore[union-attr]

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


class ConnectTests(BrokerTestCase):
    """
    Good connections.
    """

    @async_test
    async def test_uri_parameters(self) -> None:
        """
        URI parameters are negotiated: heartbeat, frame_max, channel_max; the
        %2F vhost is "/".
        """
        base = BROKER.split("://", 1)[1].split("/", 1)[0]
        url = f"amqp://{base}/%2F?heartbeat=7&frame_max=8192&channel_max=64&connection_name=t"
        client = await self.connect(url)
        self.assertEqual(client.vhost, "/")
        self.assertEqual(
            (client.core.heartbeat, client.core.frame_max, client.core.channel_max), (7, 8192, 64)
        )
        ch = await client.open_channel()
        await ch.basic_publish(routing_key="nowhere", body=b"x" * 20000)
        await ch.queue_declare(queue="", exclusive=True)

    @async_test
    async def test_endpoint_string(self) -> None:
        """
        A Twisted endpoint string with credentials connects too.
        """
        params = parse_url(BROKER)
        client = await self.connect(
            f"tcp:host={params.host}:port={params.port}",
            credentials=params.credentials,
            vhost=params.vhost,
        )
        ch = await client.open_channel()
        self.assertTrue(ch.is_open)


class ConnectFailureTests(BrokerTestCase):
    """
    Each failure has its own error, arrives in time, and leaves no socket.
    """

    async def refused(
        self, expected: type[BaseException], *args: Any, **kwargs: Any
    ) -> BaseException:
        """
        Connecting with C{args} and C{kwargs} fails with C{expected} within
        the timeout, leaves no new socket to the broker, and logs nothing
        that contains the secret.
        """
        params = parse_url(BROKER)
        before = set(sockets_to(params.port))
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        start = reactor().seconds()
        error = await self.assertFailure(
            txamqp_next.connect(reactor(), *args, connection_timeout=5, **kwargs), expected
        )
        self.assertLess(reactor().seconds() - start, 5)
        self.assertEqual(set(sockets_to(params.port)) - before, set())
        self.assertNotIn(SECRET, str(error) + repr(error))
        for event in events:
            self.assertNotIn(SECRET, formatEvent(event) + repr(event))
        self.logged = [formatEvent(event) for event in events]
        return error

    @async_test
    async def test_wrong_password(self) -> None:
        """
        A wrong password fails with L{errors.AuthenticationError}; neither
        its text nor anything logged contains the password, and the socket
        is closed.
        """
        params = parse_url(BROKER)
        error = await self.refused(
            errors.AuthenticationError,
            f"amqp://{params.credentials.username}:{SECRET}@{params.host}:{params.port}/",
        )
        self.assertEqual(error.reply_code, 403)  # type: ignore[attr-defined]
        # the capture works: the refusal itself was logged
        self.assertTrue([text for text in self.logged if "ACCESS_REFUSED" in text], self.logged)

    @async_test
    async def test_wrong_password_endpoint_string(self) -> None:
        """
        The same with an endpoint string and L{Credentials}.
        """
        params = parse_url(BROKER)
        await self.refused(
            errors.AuthenticationError,
            f"tcp:host={params.host}:port={params.port}",
            credentials=Credentials(params.credentials.username, SECRET),
        )

    @async_test
    async def test_missing_vhost(self) -> None:
        """
        A vhost that does not exist fails with L{errors.NotAllowed}, and the
        socket is closed.
        """
        params = parse_url(BROKER)
        await self.refused(
            errors.NotAllowed,
            f"tcp:host={params.host}:port={params.port}",
            credentials=params.credentials,
            vhost="no-such-vhost-txamqp-next",
        )

    @async_test
    async def test_refused_port(self) -> None:
        """
        A port nobody listens on fails with C{ConnectionRefusedError}.
        """
        await self.assertFailure(
            txamqp_next.connect(reactor(), f"amqp://guest:guest@127.0.0.1:{free_port()}/"),
            ConnectionRefusedError,
        )

    async def against(self, reply: bytes, expected: type[BaseException], tls: bool = False) -> None:
        factory = protocol.Factory.forProtocol(SilentServer)
        factory.connections = []  # type: ignore[attr-defined]
        SilentServer.reply = reply
        port = reactor().listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        start = reactor().seconds()
        error = await self.assertFailure(
            txamqp_next.connect(
                reactor(),
                f"amqp{'s' if tls else ''}://guest:{SECRET}@127.0.0.1:{port.getHost().port}/"
                + ("?verify=verify_none" if tls else ""),
                connection_timeout=1,
            ),
            expected,
        )
        self.assertLess(reactor().seconds() - start, 3)
        self.assertNotIn(SECRET, str(error))
        [server] = factory.connections  # type: ignore[attr-defined]
        await server.lost  # our side closed the socket

    @async_test
    async def test_silent_server(self) -> None:
        """
        A server that accepts TCP and never answers fails with
        L{ConnectTimeout} within the timeout, and the socket is closed.
        """
        await self.against(b"", ConnectTimeout)

    @async_test
    async def test_silent_tls_server(self) -> None:
        """
        With amqps://, a server that accepts TCP and never answers the TLS
        handshake fails with L{ConnectTimeout} too, and the socket is
        closed.
        """
        await self.against(b"", ConnectTimeout, tls=True)

    @async_test
    async def test_garbage_server(self) -> None:
        """
        A server that answers with something that is not AMQP fails with
        L{errors.RemoteProtocolError}, and the socket is closed.
        """
        await self.against(b"HTTP/1.1 400 Bad Request\r\n\r\n", errors.RemoteProtocolError)

    @async_test
    async def test_other_protocol_version(self) -> None:
        """
        A broker speaking another AMQP version answers with its header; that
        is a clear L{errors.RemoteProtocolError}.
        """
        await self.against(b"AMQP\x00\x01\x00\x00", errors.RemoteProtocolError)

    def test_credentials_never_shown(self) -> None:
        """
        Neither parse_url's result nor Credentials show the password.
        """
        params = parse_url(f"amqp://user:{SECRET}@host/")
        self.assertNotIn(SECRET, repr(params) + str(params) + repr(Credentials("u", SECRET)))


class ProtocolStyleTests(BrokerTestCase):
    """
    L{AMQPConnection} is a plain protocol: Twisted's usual ways of
    connecting one all give a working client.
    """

    def make_client(self) -> AMQPConnection:
        params = parse_url(BROKER)
        return AMQPConnection(vhost=params.vhost, clock=reactor(), credentials=params.credentials)

    def tcp(self) -> endpoints.TCP4ClientEndpoint:
        params = parse_url(BROKER)
        return endpoints.TCP4ClientEndpoint(reactor(), params.host, params.port)

    async def works(self, client: AMQPConnection) -> None:
        self.addCleanup(client.close)
        await client.when_open()
        ch = await client.open_channel()
        queue = (await ch.queue_declare(queue="", exclusive=True)).queue
        await ch.basic_publish(routing_key=queue, body=b"styled")
        message = await ch.basic_get(queue=queue, no_ack=True)
        self.assertEqual(message.body, b"styled")

    @async_test
    async def test_connect_protocol(self) -> None:
        """
        endpoints.connectProtocol with an AMQPConnection given credentials.
        """
        client = await endpoints.connectProtocol(self.tcp(), self.make_client())
        await self.works(client)

    @async_test
    async def test_endpoint_and_factory(self) -> None:
        """
        An endpoint's connect() with a factory building AMQPConnections.
        """
        client = await self.tcp().connect(protocol.Factory.forProtocol(self.make_client))
        await self.works(client)

    @async_test
    async def test_client_creator(self) -> None:
        """
        ClientCreator with the credentials as a keyword argument.
        """
        params = parse_url(BROKER)
        client = await protocol.ClientCreator(
            reactor(), AMQPConnection, vhost=params.vhost, credentials=params.credentials
        ).connectTCP(params.host, params.port)
        await self.works(client)

    @async_test
    async def test_client_service(self) -> None:
        """
        Twisted's ClientService with endpoint_and_factory and the handshake
        in prepareConnection gives an open client; stopping the service
        closes it.
        """
        endpoint, factory = endpoint_and_factory(reactor(), BROKER)
        service = ClientService(
            endpoint, factory, prepareConnection=lambda client: client.when_open()
        )
        service.startService()
        try:
            client = await service.whenConnected(failAfterFailures=1)
            await self.works(client)
        finally:
            stopped = service.stopService()
        await stopped
        await client.when_closed()
        self.assertIsNotNone(client.closed)
