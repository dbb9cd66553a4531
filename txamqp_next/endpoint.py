# -*- test-case-name: tests.test_endpoint -*-
"""
Connecting: AMQP URIs, Twisted endpoint strings, and L{connect}.

C{connect(reactor, "amqp://user:pass@host:5672/vhost?heartbeat=30")} returns a
L{Deferred} that fires with an open L{AMQPConnection}.  URIs follow RabbitMQ's
URI spec (see L{parse_url}): user, password and vhost are percent-decoded
(C{%2F} is C{/}); C{amqps} means TLS, on port 5671 by default; the query
takes C{heartbeat}, C{frame_max}, C{channel_max}, C{connection_timeout}
(milliseconds), C{auth_mechanism}, C{connection_name} and RabbitMQ's TLS
parameters (see L{txamqp_next._tls}).

A Twisted client endpoint string (C{"tcp:host=broker:port=5672"},
C{"tls:host=broker:port=5671"}) works too, with the credentials given as
arguments.  Whatever the form, the settings travel as one
L{ConnectionParameters} down to the protocol core.

L{AMQEndpoint} is txAMQP's endpoint, with its URI reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlsplit

from twisted.internet import endpoints
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.error import TimeoutError as TCPTimeoutError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp_next._deferred import AsyncioDeferred, adopt, from_coroutine
from txamqp_next._params import (
    DEFAULT_URL,
    ConnectionParameters,
    Credentials,
    parse_brokers,
    parse_url,
)
from txamqp_next._tls import client_tls_options
from txamqp_next.connection import AMQPConnection
from txamqp_next.errors import AMQPError
from txamqp_next.spec import Spec

__all__ = [
    "DEFAULT_URL",
    "AMQEndpoint",
    "Broker",
    "BrokerList",
    "ConnectTimeout",
    "ConnectionParameters",
    "FailoverEndpoint",
    "NoBrokerAvailable",
    "brokers_for",
    "connect",
    "endpoint_and_factory",
    "endpoint_for",
    "parse_brokers",
    "parse_url",
]


class ConnectTimeout(AMQPError, TimeoutError):
    """
    The broker did not complete the handshake within the connection
    timeout.  The socket was closed.
    """


def _tls_endpoint(reactor: Any, params: ConnectionParameters) -> IStreamClientEndpoint:
    creator = client_tls_options(params.host, params.tls_options)
    tcp = (
        endpoints.TCP4ClientEndpoint(
            reactor, params.host, params.port, timeout=params.connection_timeout + 1
        )
        if _is_ipv4(params.host)
        else endpoints.HostnameEndpoint(
            reactor, params.host, params.port, timeout=params.connection_timeout + 1
        )
    )
    return endpoints.wrapClientTLS(creator, tcp)


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def endpoint_for(reactor: Any, params: ConnectionParameters) -> IStreamClientEndpoint:
    """
    The Twisted client endpoint for C{params}' host, port and TLS settings.

    @raise ValueError: TLS parameters naming files that cannot be read or
        hold no usable certificate or key.
    """
    if params.tls:
        return _tls_endpoint(reactor, params)
    if _is_ipv4(params.host):
        return endpoints.TCP4ClientEndpoint(
            reactor, params.host, params.port, timeout=params.connection_timeout + 1
        )
    return endpoints.HostnameEndpoint(
        reactor, params.host, params.port, timeout=params.connection_timeout + 1
    )


@dataclass(frozen=True)
class Broker:
    """
    One broker to connect to.

    @ivar params: the connection parameters (credentials, vhost, ...).
    @ivar endpoint: the Twisted endpoint that reaches it.
    @ivar name: how logs name it (C{amqp://host:port vhost '/'}, never
        with the password).
    """

    params: ConnectionParameters
    endpoint: IStreamClientEndpoint
    name: str


#: what may name a broker: an AMQP URI (or several, see L{parse_brokers}),
#: a Twisted client endpoint string or object, L{ConnectionParameters}, or
#: a L{Broker}
BrokerList: TypeAlias = str | Sequence[str | IStreamClientEndpoint | ConnectionParameters | Broker]


def _describe(params: ConnectionParameters) -> str:
    scheme = "amqps" if params.tls else "amqp"
    return f"{scheme}://{params.host}:{params.port} vhost {params.vhost!r}"


def brokers_for(
    reactor: Any,
    given: BrokerList,
    base: ConnectionParameters | None = None,
    **overrides: Any,
) -> list[Broker]:
    """
    The brokers named by C{given}, in order.

    @param given: AMQP URIs (a string may hold several, see
        L{parse_brokers}), Twisted client endpoint strings or objects,
        L{ConnectionParameters} or L{Broker}s, alone or in a list.
    @param base: the parameters for brokers given as endpoints (their
        credentials, vhost, ...); the defaults when omitted.
    @param overrides: parameters to change for every broker (C{None}
        values are ignored), such as C{connection_name}.
    @raise ValueError: a bad URI or endpoint string, or no broker at all.
        The password never appears in the message.
    """
    items: Sequence[Any] = [given] if isinstance(given, str) else list(given)
    brokers: list[Broker] = []
    for item in items:
        if isinstance(item, Broker):
            brokers.append(item)
        elif isinstance(item, ConnectionParameters):
            params = item.replace(**overrides)
            brokers.append(Broker(params, endpoint_for(reactor, params), _describe(params)))
        elif isinstance(item, str) and "://" in item:
            for params in parse_brokers(item):
                params = params.replace(**overrides)
                brokers.append(Broker(params, endpoint_for(reactor, params), _describe(params)))
        elif isinstance(item, str):
            params = (base or ConnectionParameters()).replace(**overrides)
            endpoint = endpoints.clientFromString(reactor, item)  # type: ignore[no-untyped-call]
            brokers.append(Broker(params, endpoint, item))
        else:
            params = (base or ConnectionParameters()).replace(**overrides)
            brokers.append(Broker(params, item, repr(item)))
    if not brokers:
        raise ValueError("no broker given")
    return brokers


class NoBrokerAvailable(AMQPError):
    """
    No broker of the list could be reached; C{errors} says why for each.

    @ivar errors: C{(broker name, error)} for each broker tried.
    """

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        super().__init__(
            "no broker could be reached: " + "; ".join(f"{name}: {error}" for name, error in errors)
        )
        self.errors = errors


@implementer(IStreamClientEndpoint)
class FailoverEndpoint:
    """
    An endpoint over a list of brokers: each connection attempt tries them
    in turn, from the one that worked last, until one connects.  After a
    connection is lost (L{lost}), the next attempt starts with the broker
    after it, so a dead node is not waited for first.

    @ivar brokers: the brokers, in order.
    @ivar connecting: the broker being tried (a protocol factory may read
        its parameters), or that was connected to last.
    """

    log = Logger()

    def __init__(self, brokers: Sequence[Broker]) -> None:
        if not brokers:
            raise ValueError("no broker given")
        self.brokers = list(brokers)
        self.connecting: Broker = self.brokers[0]
        self._start = 0

    def __repr__(self) -> str:
        return f"<FailoverEndpoint {', '.join(b.name for b in self.brokers)}>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        """
        Try each broker in turn.

        @return: a L{Deferred} firing with the protocol of the first broker
            that connected, or failing with L{NoBrokerAvailable} (a single
            broker's own error when there is one broker).
        """
        return from_coroutine(self._connect(protocolFactory))

    async def _connect(self, factory: IProtocolFactory) -> Any:
        errors: list[tuple[str, BaseException]] = []
        count = len(self.brokers)
        for step in range(count):
            index = (self._start + step) % count
            broker = self.brokers[index]
            self.connecting = broker
            try:
                protocol = await broker.endpoint.connect(factory)
            except CancelledError:
                raise
            except Exception as e:
                self.log.warn("cannot reach {broker}: {error}", broker=broker.name, error=e)
                errors.append((broker.name, e))
                continue
            self._start = index
            return protocol
        if count == 1:
            raise errors[0][1]
        raise NoBrokerAvailable(errors)

    def lost(self) -> None:
        """
        The connection made last was lost: start the next attempt with the
        broker after it.
        """
        self._start = (self.brokers.index(self.connecting) + 1) % len(self.brokers)


def connect(
    reactor: Any,
    url_or_endpoint: str | IStreamClientEndpoint | ConnectionParameters = DEFAULT_URL,
    *,
    credentials: Credentials | None = None,
    vhost: str | None = None,
    heartbeat: int | None = None,
    frame_max: int | None = None,
    channel_max: int | None = None,
    connection_timeout: float | None = None,
    connection_name: str | None = None,
    client_properties: Mapping[str, Any] | None = None,
    spec: Spec | str | None = None,
    max_message_size: int | None = None,
    params: ConnectionParameters | None = None,
) -> Deferred[AMQPConnection]:
    """
    Connect, log in and open a virtual host.

    @param url_or_endpoint: an AMQP URI, a Twisted client endpoint string
        (C{"tcp:host=...:port=..."}), an endpoint object, or
        L{ConnectionParameters}.
    @param credentials: overrides the URI's user and password (required to
        log in as anyone but guest with an endpoint string).
    @param connection_timeout: seconds for the whole of connecting and the
        handshake (default 10, or the URI's).
    @param params: the parameters to start from when C{url_or_endpoint} is
        an endpoint string or object; the keyword arguments override them.
    @return: a L{Deferred} firing with the open L{AMQPConnection}.  It fails
        with L{errors.AuthenticationError} (refused credentials),
        L{errors.NotAllowed} (a missing vhost or one the user may not use),
        Twisted's C{ConnectionRefusedError} or C{DNSLookupError},
        L{errors.CertificateVerifyError} (we do not trust the broker's TLS
        certificate), L{errors.TLSError} (another TLS handshake failure), or
        L{ConnectTimeout}; no socket is left open.
    @raise ValueError: a bad URI, or TLS parameters naming files that
        cannot be read or hold no usable certificate or key.
    """
    endpoint: IStreamClientEndpoint | None = None
    if isinstance(url_or_endpoint, ConnectionParameters):
        base = url_or_endpoint
    elif isinstance(url_or_endpoint, str) and url_or_endpoint.startswith(("amqp://", "amqps://")):
        base = parse_url(url_or_endpoint)
    else:
        base = params if params is not None else ConnectionParameters()
        if isinstance(url_or_endpoint, str):
            endpoint = endpoints.clientFromString(reactor, url_or_endpoint)  # type: ignore[no-untyped-call]
        else:
            endpoint = url_or_endpoint
    chosen = base.replace(
        credentials=credentials,
        vhost=vhost,
        heartbeat=heartbeat,
        frame_max=frame_max,
        channel_max=channel_max,
        connection_timeout=connection_timeout,
        connection_name=connection_name,
        client_properties=client_properties,
        spec=spec,
        max_message_size=max_message_size,
    )
    if endpoint is None:
        endpoint = endpoint_for(reactor, chosen)

    def build() -> AMQPConnection:
        return AMQPConnection(chosen, clock=reactor)

    return _Attempt(reactor, endpoint, build, chosen.connection_timeout).start()


def endpoint_and_factory(
    reactor: Any,
    url: str | ConnectionParameters,
    *,
    connection_name: str | None = None,
) -> tuple[IStreamClientEndpoint, IProtocolFactory]:
    """
    The endpoint and protocol factory for an AMQP URI, for callers that
    manage connections themselves, such as
    L{twisted.application.internet.ClientService}.

    Each protocol the factory builds is an L{AMQPConnection} that starts the
    handshake (log-in and virtual host) as soon as it is connected; wait for
    its L{AMQPConnection.when_open} before using it.  Unlike L{connect},
    nothing here bounds the handshake in time.

    @param url: an AMQP URI, or parameters from L{parse_url}.
    @param connection_name: the name the broker shows for the connections;
        overrides the URI's.
    @return: a client endpoint and a quiet protocol factory.
    @raise ValueError: C{url} is not a valid AMQP URI.
    """
    params = parse_url(url) if isinstance(url, str) else url
    params = params.replace(connection_name=connection_name)

    def build() -> AMQPConnection:
        return AMQPConnection(params, clock=reactor)

    factory = Factory.forProtocol(build)
    factory.noisy = False
    return endpoint_for(reactor, params), factory


class _Attempt:
    """
    One connection attempt with an overall timeout.
    """

    def __init__(
        self, reactor: Any, endpoint: IStreamClientEndpoint, build: Any, timeout: float
    ) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.build = build
        self.timeout = timeout
        self.client: AMQPConnection | None = None
        self.timed_out = False
        self.result: Deferred[AMQPConnection] = AsyncioDeferred(self._cancel)

    def start(self) -> Deferred[AMQPConnection]:
        self.timer = self.reactor.callLater(self.timeout, self._on_timeout)
        factory = Factory.forProtocol(self.build)
        factory.noisy = False
        self.connecting = self.endpoint.connect(factory)
        self.connecting.addCallbacks(self._connected, self._failed)
        return self.result

    def _connected(self, client: AMQPConnection) -> None:
        self.client = client
        client.when_open().addCallbacks(self._opened, self._failed)

    def _opened(self, client: AMQPConnection) -> None:
        if self.timer.active():
            self.timer.cancel()
        if not self.result.called:
            self.result.callback(client)

    def _failed(self, failure: Failure) -> None:
        if self.timer.active():
            self.timer.cancel()
        if self.client is not None and self.client.transport is not None:
            self.client.transport.abortConnection()  # type: ignore[attr-defined]
        # our timer runs out first (the TCP endpoint has a second more), and
        # cancelling a TCP attempt fails it with one of these
        if failure.check(TCPTimeoutError) or (  # type: ignore[no-untyped-call]
            self.timed_out and failure.check(CancelledError, ConnectingCancelledError)  # type: ignore[no-untyped-call]
        ):
            failure = Failure(self._timeout_error())  # type: ignore[no-untyped-call]
        if not self.result.called:
            self.result.errback(failure)

    def _timeout_error(self) -> ConnectTimeout:
        return ConnectTimeout(
            f"no AMQP connection within {self.timeout:g}s"
            + (" (the broker accepted TCP but did not finish the handshake)" if self.client else "")
        )

    def _on_timeout(self) -> None:
        self.timed_out = True
        if self.client is None:
            self.connecting.cancel()
        else:
            error = self._timeout_error()
            self.client.transport.abortConnection()  # type: ignore[union-attr]
            if not self.result.called:
                self.result.errback(error)

    def _cancel(self, _: Deferred[AMQPConnection]) -> None:
        if self.timer.active():
            self.timer.cancel()
        if self.client is None:
            self.connecting.cancel()
        elif self.client.transport is not None:
            self.client.transport.abortConnection()  # type: ignore[attr-defined]


class AMQEndpoint:
    """
    txAMQP's endpoint: connects a factory's protocol (an L{AMQClient}, as
    L{txamqp_next.factory.AMQFactory} builds) over TCP, then authenticates
    it.  C{amqps://} URIs connect with TLS, which txAMQP could not.

    @see: L{connect}, the preferred way.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int | str,
        username: str = "",
        password: str = "",
        vhost: str = "/",
        heartbeat: int = 0,
        auth_mechanism: str = "AMQPLAIN",
        timeout: float = 30,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = int(port)
        self._username = username
        self._password = password
        self._vhost = vhost
        self._heartbeat = heartbeat
        self._auth_mechanism = auth_mechanism
        self._timeout = timeout
        self._tls_options: dict[str, str] | None = None

    @classmethod
    def from_uri(cls, reactor: Any, uri: str) -> AMQEndpoint:
        """
        An endpoint for an AMQP URI, read as txAMQP reads it: host, port
        (5672 by default, 5671 for C{amqps}), user and password, the vhost
        from the path (C{/} when the path is empty or C{/}), and the query's
        C{heartbeat}, C{auth_mechanism} and C{timeout} (seconds).  Unlike
        txAMQP, names are percent-decoded (C{%2F} is C{/}), a port next to
        a user name works, and C{amqps://} means TLS (with RabbitMQ's TLS
        query parameters).

        @raise ValueError: not an AMQP URI, a bad port or number, or an
            unknown query parameter.
        """
        parts = urlsplit(uri)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError(f"not an AMQP URI (scheme {parts.scheme!r}); use amqp:// or amqps://")
        tls = parts.scheme == "amqps"
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in AMQP URI for host {parts.hostname!r}") from None
        kwargs: dict[str, Any] = {}
        if parts.username is not None:
            kwargs["username"] = unquote(parts.username)
        if parts.password is not None:
            kwargs["password"] = unquote(parts.password)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        kwargs["vhost"] = unquote(path) if path else "/"
        tls_options: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "heartbeat":
                kwargs["heartbeat"] = int(value)
            elif key == "timeout":
                kwargs["timeout"] = float(value)
            elif key == "auth_mechanism":
                kwargs["auth_mechanism"] = value.upper()
            elif tls and key in (
                "cacertfile",
                "certfile",
                "keyfile",
                "verify",
                "server_name_indication",
            ):
                tls_options[key] = value
            else:
                raise ValueError(f"unknown AMQP URI parameter {key!r} for AMQEndpoint")
        endpoint = cls(
            reactor,
            unquote(parts.hostname or "localhost"),
            port if port is not None else (5671 if tls else 5672),
            **kwargs,
        )
        if tls:
            endpoint._tls_options = tls_options
        return endpoint

    def connect(self, protocol_factory: Any) -> Deferred[Any]:
        """
        Connect C{protocol_factory}'s protocol and authenticate.

        @return: a L{Deferred} firing with the open client.
        """
        endpoint: IStreamClientEndpoint = endpoints.TCP4ClientEndpoint(
            self._reactor, self._host, self._port, timeout=self._timeout
        )
        if self._tls_options is not None:
            endpoint = endpoints.wrapClientTLS(
                client_tls_options(self._host, self._tls_options), endpoint
            )
        # the client takes these at construction, so the factory must know
        if hasattr(protocol_factory, "set_vhost"):
            protocol_factory.set_vhost(self._vhost)
        if hasattr(protocol_factory, "set_heartbeat"):
            protocol_factory.set_heartbeat(self._heartbeat)
        d: Deferred[Any] = endpoint.connect(protocol_factory)

        def authenticate(client: Any) -> Deferred[Any]:
            opened: Deferred[Any] = client.authenticate(
                self._username, self._password, mechanism=self._auth_mechanism
            )
            return opened.addCallback(lambda _: client)

        return adopt(d.addCallback(authenticate))
