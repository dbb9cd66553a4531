# -*- test-case-name: tests.test_endpoint -*-
"""
Tests for L{txamqp_next.endpoint}: AMQP URIs (RabbitMQ's URI spec) and
L{connect} with its overall timeout, over fake endpoints and a L{Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import endpoints
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.helpers import FrameFactory, SentParser
from txamqp_next import errors
from txamqp_next._connection import Credentials
from txamqp_next._methods import Method
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import (
    AMQEndpoint,
    Broker,
    ConnectionParameters,
    ConnectTimeout,
    FailoverEndpoint,
    NoBrokerAvailable,
    brokers_for,
    connect,
    endpoint_for,
    parse_brokers,
    parse_url,
)
from txamqp_next.factory import AMQFactory

SECRET = "s3cr3t-PASSWORD"


class ParseURLTests(SynchronousTestCase):
    """
    L{parse_url} follows RabbitMQ's URI spec
    (U{https://www.rabbitmq.com/docs/uri-spec}).
    """

    def test_defaults(self) -> None:
        """
        C{amqp://} alone means guest/guest on 127.0.0.1:5672, vhost C{/},
        PLAIN, no TLS.
        """
        params = parse_url("amqp://")
        self.assertEqual((params.host, params.port, params.vhost), ("127.0.0.1", 5672, "/"))
        self.assertEqual(params.credentials.username, "guest")
        self.assertEqual(params.credentials._password, "guest")
        self.assertEqual(params.credentials.mechanism, "PLAIN")
        self.assertFalse(params.tls)
        self.assertIsNone(params.heartbeat)
        self.assertEqual((params.frame_max, params.channel_max), (131072, 0))
        self.assertEqual(params.connection_timeout, 10.0)
        self.assertIsNone(params.connection_name)
        self.assertEqual(params.tls_options, {})

    def test_full(self) -> None:
        """
        User, password, host, port and vhost are all read.
        """
        params = parse_url("amqp://user:pass@broker.example:10000/vhost")
        self.assertEqual(
            (params.credentials.username, params.credentials._password),
            ("user", "pass"),
        )
        self.assertEqual(
            (params.host, params.port, params.vhost), ("broker.example", 10000, "vhost")
        )

    def test_amqps(self) -> None:
        """
        C{amqps} means TLS, on port 5671 unless another is given.
        """
        params = parse_url("amqps://broker")
        self.assertTrue(params.tls)
        self.assertEqual(params.port, 5671)
        self.assertEqual(parse_url("amqps://broker:6000").port, 6000)
        self.assertEqual(parse_url("amqp://broker:6000").port, 6000)

    def test_percent_decoding(self) -> None:
        """
        User, password and vhost are percent-decoded: C{%2F} is C{/}.
        """
        params = parse_url("amqp://us%40er:p%3Ass%2F@host/v%2Fhost")
        self.assertEqual(params.credentials.username, "us@er")
        self.assertEqual(params.credentials._password, "p:ss/")
        self.assertEqual(params.vhost, "v/host")
        self.assertEqual(parse_url("amqp://host/%2F").vhost, "/")
        self.assertEqual(parse_url("amqp://host/%2f").vhost, "/")
        self.assertEqual(parse_url("amqp://host/%2Fv").vhost, "/v")
        self.assertEqual(parse_url("amqp://h/caf%C3%A9").vhost, "caf\u00e9")

    def test_spec_example_host(self) -> None:
        """
        The spec's example C{amqp://user%61:%61pass@ho%61st:10000/v%2fhost}
        gives user C{usera}, password C{apass}, host C{hoast}, vhost
        C{v/host}: the host is percent-decoded too.
        """
        params = parse_url("amqp://user%61:%61pass@ho%61st:10000/v%2fhost")
        self.assertEqual(params.credentials.username, "usera")
        self.assertEqual(params.credentials._password, "apass")
        self.assertEqual(params.port, 10000)
        self.assertEqual(params.vhost, "v/host")
        self.assertEqual(params.host, "hoast")

    def test_empty_parts(self) -> None:
        """
        The spec's rows for empty parts: C{amqp://:@/} is an empty user and
        password; C{amqp://user@} keeps the default password; C{amqp://:10000}
        only sets the port; C{amqp:///vhost} only the vhost.
        """
        params = parse_url("amqp://:@/")
        self.assertEqual((params.credentials.username, params.credentials._password), ("", ""))
        params = parse_url("amqp://user@")
        self.assertEqual(
            (params.credentials.username, params.credentials._password), ("user", "guest")
        )
        params = parse_url("amqp://:10000")
        self.assertEqual((params.host, params.port), ("127.0.0.1", 10000))
        params = parse_url("amqp:///vhost")
        self.assertEqual((params.host, params.port, params.vhost), ("127.0.0.1", 5672, "vhost"))

    def test_empty_path(self) -> None:
        """
        No path or an empty one means the default vhost C{/}.
        """
        self.assertEqual(parse_url("amqp://host").vhost, "/")
        self.assertEqual(parse_url("amqp://host/").vhost, "/")
        self.assertEqual(parse_url("amqp://host/?heartbeat=5").vhost, "/")

    def test_ipv6(self) -> None:
        """
        An IPv6 literal in brackets is the host, without the brackets.
        """
        params = parse_url("amqp://[::1]")
        self.assertEqual((params.host, params.port), ("::1", 5672))
        params = parse_url("amqps://u:p@[2001:db8::7]:5673/v")
        self.assertEqual((params.host, params.port, params.vhost), ("2001:db8::7", 5673, "v"))

    def test_query(self) -> None:
        """
        The tuning parameters, auth mechanism and connection name are read
        from the query; C{connection_timeout} is in milliseconds.
        """
        params = parse_url(
            "amqp://h/?heartbeat=30&frame_max=65536&channel_max=100"
            "&connection_timeout=2500&auth_mechanism=amqplain&connection_name=my%20app"
        )
        self.assertEqual(params.heartbeat, 30)
        self.assertEqual(params.frame_max, 65536)
        self.assertEqual(params.channel_max, 100)
        self.assertEqual(params.connection_timeout, 2.5)
        self.assertEqual(params.credentials.mechanism, "AMQPLAIN")
        self.assertEqual(params.connection_name, "my app")
        self.assertEqual(parse_url("amqp://h?heartbeat=0").heartbeat, 0)

    def test_external(self) -> None:
        """
        C{auth_mechanism=external} selects EXTERNAL; an unsupported mechanism
        is a L{ValueError}.
        """
        self.assertEqual(
            parse_url("amqps://h?auth_mechanism=external").credentials.mechanism, "EXTERNAL"
        )
        exc = self.assertRaises(ValueError, parse_url, "amqp://h?auth_mechanism=cram-md5")
        self.assertIn("CRAM-MD5", str(exc))

    def test_tls_options(self) -> None:
        """
        The TLS options are kept as given.
        """
        params = parse_url(
            "amqps://h?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem"
            "&verify=verify_none&server_name_indication=broker.example"
        )
        self.assertEqual(
            params.tls_options,
            {
                "cacertfile": "/ca.pem",
                "certfile": "/c.pem",
                "keyfile": "/k.pem",
                "verify": "verify_none",
                "server_name_indication": "broker.example",
            },
        )

    def test_unknown_parameter(self) -> None:
        """
        An unknown query parameter is a L{ValueError} naming it and the known
        ones.
        """
        exc = self.assertRaises(ValueError, parse_url, "amqp://h?hearbeat=5")
        self.assertIn("'hearbeat'", str(exc))
        self.assertIn("heartbeat", str(exc))

    def test_bad_numbers(self) -> None:
        """
        A number parameter that is not an integer is a L{ValueError} naming
        it.
        """
        for query in ("heartbeat=abc", "frame_max=1.5", "channel_max=", "connection_timeout=x"):
            exc = self.assertRaises(ValueError, parse_url, f"amqp://h?{query}")
            self.assertIn(query.partition("=")[0], str(exc))

    def test_out_of_range_numbers(self) -> None:
        """
        Negative numbers, and numbers too large for their field (a short
        for heartbeat and channel_max, a long for frame_max), are a
        L{ValueError} too, not an encoding error in the middle of the
        handshake.
        """
        for query in (
            "heartbeat=-1",
            "heartbeat=65536",
            "channel_max=70000",
            "frame_max=-5",
            "connection_timeout=-1",
        ):
            self.assertRaises(ValueError, parse_url, f"amqp://h?{query}")

    def test_bad_port(self) -> None:
        """
        A port that is not a number, or out of range, is a L{ValueError}.
        """
        for url in ("amqp://h:abc/", "amqp://h:99999/", "amqp://h:-1/"):
            self.assertRaises(ValueError, parse_url, url)

    def test_bad_scheme(self) -> None:
        """
        A scheme other than C{amqp} or C{amqps} is a L{ValueError} naming it.
        """
        for url in ("http://h/", "amqp+tls://h", "h:5672", ""):
            exc = self.assertRaises(ValueError, parse_url, url)
            self.assertIn("not an AMQP URI", str(exc))

    def test_password_hidden(self) -> None:
        """
        The password is in neither C{str} nor C{repr} of the result.
        """
        params = parse_url(f"amqps://app:{SECRET}@h:5671/v")
        for text in (str(params), repr(params), repr(params.credentials)):
            self.assertNotIn(SECRET, text)
        self.assertIn("app@h:5671", repr(params))

    def test_password_not_in_errors(self) -> None:
        """
        The error for a URI that does not parse never quotes the password.
        """
        for url in (
            f"amqp://app:{SECRET}@h:port/",
            f"amqp://app:{SECRET}@h:99999/",
            f"amqp://app:{SECRET}@h/?bogus=1",
            f"amqp://app:{SECRET}@h/?heartbeat=x",
            f"http://app:{SECRET}@h/",
            f"amqp://app:{SECRET}@[::1/",
        ):
            exc = self.assertRaises(ValueError, parse_url, url)
            self.assertNotIn(SECRET, str(exc), url)

    def test_password_not_in_normalization_error(self) -> None:
        """
        A password that is not percent-encoded and holds a character that
        NFKC-normalizes to a delimiter (a fullwidth C{@}) makes
        L{urllib.parse.urlsplit} fail quoting the whole netloc; that message
        must not reach the caller.
        """
        exc = self.assertRaises(ValueError, parse_url, "amqp://app:pa\uff20ss@h/")
        self.assertNotIn("pa\uff20ss", str(exc))


class EndpointForTests(SynchronousTestCase):
    """
    The Twisted endpoint chosen for parsed parameters.
    """

    def test_ipv4(self) -> None:
        """
        An IPv4 address connects with a plain TCP4 endpoint.
        """
        endpoint = endpoint_for(MemoryReactorClock(), parse_url("amqp://10.0.0.1"))
        self.assertIsInstance(endpoint, endpoints.TCP4ClientEndpoint)

    def test_names_and_ipv6(self) -> None:
        """
        Host names and IPv6 literals use L{endpoints.HostnameEndpoint}.
        """
        reactor = MemoryReactorClock()
        for url in ("amqp://broker.example", "amqp://[::1]"):
            self.assertIsInstance(endpoint_for(reactor, parse_url(url)), endpoints.HostnameEndpoint)

    def test_tls(self) -> None:
        """
        C{amqps} wraps the TCP endpoint in TLS; a bad C{verify} value is a
        L{ValueError}.
        """
        reactor = MemoryReactorClock()
        endpoint = endpoint_for(reactor, parse_url("amqps://broker.example"))
        self.assertTrue(IStreamClientEndpoint.providedBy(endpoint))
        self.assertNotIsInstance(endpoint, endpoints.HostnameEndpoint)
        exc = self.assertRaises(
            ValueError, endpoint_for, reactor, parse_url("amqps://h?verify=maybe")
        )
        self.assertIn("verify_peer", str(exc))


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """
    An endpoint whose connection attempt the test completes (or not).
    """

    def __init__(self) -> None:
        self.attempt: Deferred[Any] | None = None
        self.cancelled = False
        self.factory: IProtocolFactory | None = None

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        self.factory = factory

        def cancel(d: Deferred[Any]) -> None:
            self.cancelled = True

        self.attempt = Deferred(cancel)
        return self.attempt


class AbortTransport(StringTransport):
    """
    A L{StringTransport} that records C{abortConnection}.
    """

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class ConnectTests(SynchronousTestCase):
    """
    L{connect} with a fake endpoint and a L{Clock} as the reactor.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = FakeEndpoint()
        self.frames = FrameFactory()
        self.parser = SentParser()
        self.transport = AbortTransport()
        self.client: AMQPConnection | None = None

    def connect(self, **kwargs: Any) -> Deferred[AMQPConnection]:
        kwargs.setdefault("connection_timeout", 5)
        return connect(self.clock, self.endpoint, **kwargs)

    def accept(self) -> AMQPConnection:
        """
        Complete the TCP connection: build the protocol, connect it to the
        transport, fire the endpoint's L{Deferred}.
        """
        assert self.endpoint.factory is not None and self.endpoint.attempt is not None
        client = self.endpoint.factory.buildProtocol(None)
        assert isinstance(client, AMQPConnection)
        client.makeConnection(self.transport)
        self.endpoint.attempt.callback(client)
        self.client = client
        return client

    def send(self, data: bytes) -> None:
        assert self.client is not None
        self.client.dataReceived(data)

    def sent(self) -> list[Method]:
        data = self.transport.value()
        self.transport.clear()
        return self.parser.methods_sent(data)

    def handshake(self) -> None:
        self.send(self.frames.start())
        self.send(self.frames.tune(heartbeat=0))
        self.send(self.frames.open_ok())

    def test_success(self) -> None:
        """
        C{connect} fires with the client once the handshake is done, using
        the credentials and vhost given, and leaves no timer behind.
        """
        d = self.connect(credentials=Credentials("app", SECRET), vhost="/v", connection_name="n")
        client = self.accept()
        self.assertNoResult(d)
        self.send(self.frames.start())
        [start_ok] = self.sent()
        self.assertEqual(start_ok.response, b"\0app\0" + SECRET.encode())
        self.assertEqual(start_ok.client_properties["connection_name"], "n")
        self.send(self.frames.tune(heartbeat=0))
        _, open_ = self.sent()
        self.assertEqual(open_.virtual_host, "/v")
        self.assertNoResult(d)
        self.send(self.frames.open_ok())
        self.assertIs(self.successResultOf(d), client)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(60)
        self.assertFalse(self.transport.disconnecting)

    def test_client_uses_clock(self) -> None:
        """
        The client is given the reactor as its clock, so heartbeats run on
        it.
        """
        d = self.connect(heartbeat=10)
        client = self.accept()
        self.assertIs(client.clock, self.clock)
        self.send(self.frames.start())
        self.send(self.frames.tune(heartbeat=60))
        self.send(self.frames.open_ok())
        self.successResultOf(d)
        self.assertEqual(client.core.heartbeat, 10)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_timeout_before_tcp(self) -> None:
        """
        When TCP does not connect in time the endpoint's attempt is
        cancelled and C{connect} fails with L{ConnectTimeout}.
        """
        d = self.connect()
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertTrue(self.endpoint.cancelled)
        failure = self.failureResultOf(d, ConnectTimeout)
        self.assertIn("5s", str(failure.value))
        self.assertIsInstance(failure.value, TimeoutError)

    def test_timeout_in_handshake(self) -> None:
        """
        When the broker accepts TCP but does not finish the handshake in
        time, the transport is aborted and C{connect} fails with
        L{ConnectTimeout} saying so.
        """
        d = self.connect()
        client = self.accept()
        self.send(self.frames.start())
        self.clock.advance(5)
        self.assertTrue(self.transport.aborted)
        failure = self.failureResultOf(d, ConnectTimeout)
        self.assertIn("handshake", str(failure.value))
        client.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_refused_credentials(self) -> None:
        """
        A handshake failure fails C{connect} with the broker's error and
        aborts the transport.
        """
        d = self.connect()
        self.accept()
        self.send(self.frames.start())
        self.send(
            self.frames.method(0, "connection.close", reply_code=403, reply_text="ACCESS_REFUSED")
        )
        self.failureResultOf(d, errors.AuthenticationError)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_missing_vhost(self) -> None:
        """
        A 530 in the handshake fails C{connect} with L{errors.NotAllowed}.
        """
        d = self.connect(vhost="nope")
        self.accept()
        self.send(self.frames.start())
        self.send(self.frames.tune(heartbeat=0))
        self.send(
            self.frames.method(0, "connection.close", reply_code=530, reply_text="NOT_ALLOWED")
        )
        self.failureResultOf(d, errors.NotAllowed)
        self.assertTrue(self.transport.aborted)

    def test_tcp_refused(self) -> None:
        """
        A failed TCP connection fails C{connect} with the endpoint's error.
        """
        d = self.connect()
        assert self.endpoint.attempt is not None
        self.endpoint.attempt.errback(ConnectionRefusedError())
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel_before_tcp(self) -> None:
        """
        Cancelling C{connect}'s L{Deferred} before TCP connected cancels the
        endpoint's attempt.
        """
        d = self.connect()
        d.cancel()
        self.assertTrue(self.endpoint.cancelled)
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel_in_handshake(self) -> None:
        """
        Cancelling C{connect}'s L{Deferred} during the handshake aborts the
        transport.
        """
        d = self.connect()
        client = self.accept()
        d.cancel()
        self.assertTrue(self.transport.aborted)
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        client.connectionLost(Failure(ConnectionLost()))

    def test_url(self) -> None:
        """
        With an AMQP URI, C{connect} dials its host and port (the TCP attempt
        gets the URI's timeout plus a second, so the overall timer, which
        reports L{ConnectTimeout}, fires first), and the client uses its
        credentials, vhost and heartbeat.
        """
        reactor = MemoryReactorClock()
        d = connect(
            reactor, f"amqp://app:{SECRET}@10.1.2.3:5673/v%2Fh?heartbeat=7&connection_timeout=2000"
        )
        [(host, port, factory, timeout, _)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("10.1.2.3", 5673, 3.0))
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(self.transport)
        self.client = protocol._wrappedProtocol
        self.sent()
        self.send(self.frames.start())
        [start_ok] = self.sent()
        self.assertEqual(start_ok.response, b"\0app\0" + SECRET.encode())
        self.send(self.frames.tune(heartbeat=60))
        tune_ok, open_ = self.sent()
        self.assertEqual(tune_ok.heartbeat, 7)
        self.assertEqual(open_.virtual_host, "v/h")
        self.send(self.frames.open_ok())
        self.assertIs(self.successResultOf(d), self.client)

    def test_url_timeout_override(self) -> None:
        """
        The C{connection_timeout} argument overrides the URI's, for the TCP
        connection and the whole attempt.
        """
        reactor = MemoryReactorClock()
        d = connect(reactor, "amqp://10.0.0.1?connection_timeout=1500", connection_timeout=3)
        [(_, _, _, timeout, _)] = reactor.tcpClients
        self.assertEqual(timeout, 3 + 1)
        reactor.advance(1.5)
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d)

    def test_url_timeout_before_tcp(self) -> None:
        """
        With a real TCP endpoint, a connection that does not come up within
        the URI's C{connection_timeout} fails with L{ConnectTimeout}.  (A
        Twisted endpoint fails a cancelled attempt with
        L{ConnectingCancelledError}, not L{CancelledError}.)
        """
        reactor = MemoryReactorClock()
        d = connect(reactor, "amqp://10.0.0.1?connection_timeout=1500")
        reactor.advance(1.5)
        self.failureResultOf(d, ConnectTimeout)


class AMQEndpointTests(SynchronousTestCase):
    """
    txAMQP's L{AMQEndpoint}.
    """

    def test_from_uri(self) -> None:
        """
        C{from_uri} carries the URI's parts over; the password does not show
        in the endpoint's repr.
        """
        endpoint = AMQEndpoint.from_uri(
            Clock(), f"amqp://app:{SECRET}@h:5673/v?heartbeat=9&auth_mechanism=amqplain"
        )
        self.assertEqual((endpoint._host, endpoint._port, endpoint._vhost), ("h", 5673, "v"))
        self.assertEqual((endpoint._username, endpoint._password), ("app", SECRET))
        self.assertEqual((endpoint._heartbeat, endpoint._auth_mechanism), (9, "AMQPLAIN"))
        self.assertNotIn(SECRET, repr(endpoint))

    def test_from_amqps_uri(self) -> None:
        """
        An C{amqps} URI connects with TLS (port 5671 by default), with the
        URI's TLS parameters.
        """
        reactor = MemoryReactorClock()
        endpoint = AMQEndpoint.from_uri(reactor, "amqps://u:p@127.0.0.1/?verify=verify_none")
        endpoint.connect(AMQFactory())
        [(host, port, factory, _, _)] = reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 5671))
        tls = factory._wrappedFactory  # HostnameEndpoint's attempt factory
        self.assertIsInstance(tls, TLSMemoryBIOFactory)
        self.assertRaises(
            ValueError,
            AMQEndpoint.from_uri(reactor, "amqps://h/?verify=maybe").connect,
            AMQFactory(),
        )

    def test_parameters_repr(self) -> None:
        """
        L{ConnectionParameters} built by hand hide their password too.
        """
        params = ConnectionParameters(credentials=Credentials("u", SECRET))
        self.assertNotIn(SECRET, repr(params))
        self.assertEqual(repr(params), "ConnectionParameters(amqp://u@127.0.0.1:5672, vhost='/')")


class ParametersTests(SynchronousTestCase):
    """
    L{ConnectionParameters}, where they live and how they change.
    """

    def test_parameters_module(self) -> None:
        """
        L{ConnectionParameters}, L{parse_url} and L{Credentials} live in
        L{txamqp_next._params}; the endpoint module (and the core, for
        L{Credentials}) re-export the very same objects.
        """
        from txamqp_next import _connection, _params, endpoint

        self.assertIs(endpoint.ConnectionParameters, _params.ConnectionParameters)
        self.assertIs(endpoint.parse_url, _params.parse_url)
        self.assertIs(_connection.Credentials, _params.Credentials)
        self.assertIs(Credentials, _params.Credentials)

    def test_parameters_replace(self) -> None:
        """
        C{replace} gives a changed copy and ignores C{None} values, so
        optional overrides pass straight through.
        """
        params = parse_url("amqp://u:p@h/v?heartbeat=5")
        changed = params.replace(vhost="w", heartbeat=None, frame_max=4096)
        self.assertEqual((changed.vhost, changed.heartbeat, changed.frame_max), ("w", 5, 4096))
        self.assertEqual((params.vhost, params.frame_max), ("v", 131072))
        self.assertIs(changed.credentials, params.credentials)


class ParseBrokersTests(SynchronousTestCase):
    """
    L{parse_brokers} reads lists of brokers to fail over between.
    """

    def test_hosts_in_one_uri(self) -> None:
        """
        Hosts separated by commas share the URI's user, vhost and query.
        """
        brokers = parse_brokers(f"amqp://u:{SECRET}@h1:5705,h2:5706,h3/prod?heartbeat=7")
        self.assertEqual(
            [(b.host, b.port, b.vhost, b.heartbeat) for b in brokers],
            [("h1", 5705, "prod", 7), ("h2", 5706, "prod", 7), ("h3", 5672, "prod", 7)],
        )
        for broker in brokers:
            assert broker.credentials is not None
            self.assertEqual(broker.credentials.password, SECRET)

    def test_several_uris(self) -> None:
        """
        URIs separated by C{;} or white space are read one by one: each
        keeps its own user, password, TLS and vhost.
        """
        brokers = parse_brokers(f"amqp://a:{SECRET}@h1/one; amqps://b:x@h2/two\namqp://h3")
        self.assertEqual(
            [(b.host, b.port, b.tls, b.vhost) for b in brokers],
            [("h1", 5672, False, "one"), ("h2", 5671, True, "two"), ("h3", 5672, False, "/")],
        )
        assert brokers[1].credentials is not None
        self.assertEqual(brokers[1].credentials.username, "b")

    def test_one_broker(self) -> None:
        """
        A single URI is a list of one, as L{parse_url} reads it.
        """
        self.assertEqual(parse_brokers("amqp://h:1/v"), [parse_url("amqp://h:1/v")])

    def test_ipv6_hosts(self) -> None:
        """
        IPv6 literals may be listed.
        """
        brokers = parse_brokers("amqp://[::1]:5701,[::2]")
        self.assertEqual([(b.host, b.port) for b in brokers], [("::1", 5701), ("::2", 5672)])

    def test_bad_lists(self) -> None:
        """
        An empty list, an empty host or a bad URI in the list is a
        L{ValueError} that never shows a password.
        """
        for text in (
            "",
            " ; ",
            f"amqp://u:{SECRET}@h1,,h2/",
            f"amqp://u:{SECRET}@h1/; amqp://u:{SECRET}@h2:notaport/",
            f"amqp://u:{SECRET}@h1/; ftp://u:{SECRET}@h2/",
        ):
            exc = self.assertRaises(ValueError, parse_brokers, text)
            self.assertNotIn(SECRET, str(exc), text)

    def test_parse_url_refuses_lists(self) -> None:
        """
        L{parse_url} takes one broker: a list of hosts or of URIs is a
        L{ValueError} pointing to L{parse_brokers}, and the second URI's
        password never shows (it was once read as part of the vhost).
        """
        for text in (
            f"amqp://u:{SECRET}@h1:5705,h2:5706/",
            f"amqp://u:{SECRET}@h1,h2/",
            f"amqp://u:{SECRET}@h1/v;amqp://u:{SECRET}@h2/v",
        ):
            exc = self.assertRaises(ValueError, parse_url, text)
            self.assertIn("parse_brokers", str(exc))
            self.assertNotIn(SECRET, str(exc))


class BrokersForTests(SynchronousTestCase):
    """
    L{brokers_for} turns what names brokers into L{Broker}s.
    """

    def test_mixed(self) -> None:
        """
        URIs, endpoint strings, endpoints and parameters may be mixed;
        endpoints take the base parameters, and overrides apply to all.
        """
        reactor = MemoryReactorClock()
        endpoint = FakeEndpoint()
        base = ConnectionParameters(vhost="base", credentials=Credentials("u", SECRET))
        brokers = brokers_for(
            reactor,
            [
                f"amqp://x:{SECRET}@h1,h2/v",
                "tls:h3:5671",
                endpoint,
                ConnectionParameters(host="h4"),
            ],
            base,
            connection_name="svc",
        )
        self.assertEqual(len(brokers), 5)
        self.assertEqual([b.params.connection_name for b in brokers], ["svc"] * 5)
        self.assertEqual([b.params.vhost for b in brokers], ["v", "v", "base", "base", "/"])
        self.assertIs(brokers[3].endpoint, endpoint)
        self.assertEqual(brokers[4].params.host, "h4")
        for broker in brokers:
            self.assertNotIn(SECRET, broker.name)
        self.assertEqual(brokers[0].name, "amqp://h1:5672 vhost 'v'")

    def test_single_string(self) -> None:
        """
        One string may name one broker or several.
        """
        reactor = MemoryReactorClock()
        self.assertEqual(len(brokers_for(reactor, "amqp://h1")), 1)
        self.assertEqual(len(brokers_for(reactor, "amqp://h1,h2;amqp://h3")), 3)
        self.assertEqual(len(brokers_for(reactor, "tcp:h1:5672")), 1)

    def test_errors(self) -> None:
        """
        No broker, or a bad endpoint string, is a L{ValueError}.
        """
        reactor = MemoryReactorClock()
        self.assertRaises(ValueError, brokers_for, reactor, [])
        self.assertRaises(ValueError, brokers_for, reactor, "nosuchtransport:h1")


class FakeFactory(Factory):
    """
    A protocol factory the fake endpoints never use.
    """


class FailoverEndpointTests(SynchronousTestCase):
    """
    L{FailoverEndpoint} tries its brokers in turn.
    """

    def setUp(self) -> None:
        self.endpoints = [FakeEndpoint() for _ in range(3)]
        params = ConnectionParameters()
        self.failover = FailoverEndpoint(
            [Broker(params, e, f"b{i}") for i, e in enumerate(self.endpoints)]
        )

    def refuse(self, index: int) -> None:
        attempt = self.endpoints[index].attempt
        assert attempt is not None
        self.endpoints[index].attempt = None
        attempt.errback(ConnectionRefusedError(f"b{index} refused"))

    def test_next_broker_on_failure(self) -> None:
        """
        When a broker cannot be reached the next is tried; C{connecting}
        names the broker tried.
        """
        d = self.failover.connect(FakeFactory())
        self.assertEqual(self.failover.connecting.name, "b0")
        self.refuse(0)
        self.assertEqual(self.failover.connecting.name, "b1")
        attempt = self.endpoints[1].attempt
        assert attempt is not None
        attempt.callback("protocol")
        self.assertEqual(self.successResultOf(d), "protocol")
        self.assertIsNone(self.endpoints[2].attempt)

    def test_all_fail(self) -> None:
        """
        When none can be reached the attempt fails with
        L{NoBrokerAvailable}, which says why for each.
        """
        d = self.failover.connect(FakeFactory())
        for index in range(3):
            self.refuse(index)
        error = self.failureResultOf(d, NoBrokerAvailable).value
        self.assertEqual([name for name, _ in error.errors], ["b0", "b1", "b2"])
        self.assertIn("b2 refused", str(error))

    def test_one_broker_fails_with_its_error(self) -> None:
        """
        With a single broker its own error comes through.
        """
        endpoint = FakeEndpoint()
        failover = FailoverEndpoint([Broker(ConnectionParameters(), endpoint, "only")])
        d = failover.connect(FakeFactory())
        assert endpoint.attempt is not None
        endpoint.attempt.errback(ConnectionRefusedError("nope"))
        self.failureResultOf(d, ConnectionRefusedError)

    def test_after_loss_start_with_the_next(self) -> None:
        """
        After the connection to a broker is lost the next attempt starts
        with the broker after it; after a success it starts with the
        broker that worked.
        """
        d = self.failover.connect(FakeFactory())
        self.refuse(0)
        assert self.endpoints[1].attempt is not None
        self.endpoints[1].attempt.callback("p1")
        self.successResultOf(d)
        self.endpoints[1].attempt = None
        self.failover.connect(FakeFactory())
        self.assertIsNotNone(self.endpoints[1].attempt)
        self.endpoints[1].attempt = None
        self.failover.lost()
        self.failover.connect(FakeFactory())
        self.assertIsNone(self.endpoints[1].attempt)
        self.assertIsNotNone(self.endpoints[2].attempt)

    def test_cancel(self) -> None:
        """
        Cancelling the attempt cancels the broker being tried.
        """
        d = self.failover.connect(FakeFactory())
        d.cancel()
        self.assertTrue(self.endpoints[0].cancelled)
        self.failureResultOf(d, CancelledError)
        self.assertIsNone(self.endpoints[1].attempt)

    def test_no_brokers(self) -> None:
        """
        A failover endpoint needs a broker.
        """
        self.assertRaises(ValueError, FailoverEndpoint, [])
