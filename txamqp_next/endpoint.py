# -*- test-case-name: tests.test_endpoint -*-
"""
Connecting: AMQP URIs, Twisted endpoint strings, and L{connect}.

C{connect(reactor, "amqp://user:pass@host:5672/vhost?heartbeat=30")} returns a
L{Deferred} that fires with an open L{AMQClient}.  URIs follow RabbitMQ's
URI spec: user, password and vhost are percent-decoded (C{%2F} is C{/}); an
empty path means the default vhost C{/}; C{amqps} means TLS, on port 5671 by
default.  Query parameters: C{heartbeat}, C{frame_max}, C{channel_max},
C{connection_timeout} (milliseconds, as RabbitMQ documents it),
C{auth_mechanism}, C{connection_name}, and for TLS C{cacertfile},
C{certfile}, C{keyfile}, C{verify} (C{verify_peer} or C{verify_none}) and
C{server_name_indication} (a host name, or C{disable}); see
L{txamqp_next._tls}.

A Twisted client endpoint string (C{"tcp:host=broker:port=5672"},
C{"tls:host=broker:port=5671"}) works too, with the credentials given as
arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from twisted.internet import endpoints
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.error import TimeoutError as TCPTimeoutError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from txamqp_next._connection import DEFAULT_MAX_MESSAGE_SIZE, Credentials
from txamqp_next._tls import client_tls_options
from txamqp_next.errors import AMQPError
from txamqp_next.protocol import AMQClient
from txamqp_next.spec import Spec

__all__ = [
    "AMQEndpoint",
    "ConnectTimeout",
    "ConnectionParameters",
    "connect",
    "endpoint_and_factory",
    "parse_url",
]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_TIMEOUT = 10.0

_URI_PARAMETERS = frozenset(
    {
        "heartbeat",
        "frame_max",
        "channel_max",
        "connection_timeout",
        "auth_mechanism",
        "connection_name",
        "cacertfile",
        "certfile",
        "keyfile",
        "verify",
        "server_name_indication",
    }
)


# the valid range of each numeric URI parameter
_NUMBER_RANGES = {
    "heartbeat": (0, 65535),
    "channel_max": (0, 65535),
    "frame_max": (0, 2**32 - 1),  # 0 (no limit) or at least 4096, the spec's minimum
    "connection_timeout": (1, 2**31),
}


class ConnectTimeout(AMQPError, TimeoutError):
    """
    The broker did not complete the handshake within the connection
    timeout.  The socket was closed.
    """


@dataclass
class ConnectionParameters:
    """
    Where and how to connect, as parsed from a URI.

    @ivar tls: whether to use TLS.
    @ivar tls_options: C{cacertfile}, C{certfile}, C{keyfile}, C{verify},
        C{server_name_indication} from the URI.
    """

    host: str = "127.0.0.1"
    port: int = 5672
    credentials: Credentials = field(default_factory=Credentials)
    vhost: str = "/"
    heartbeat: int | None = None
    frame_max: int = 131072
    channel_max: int = 0
    connection_timeout: float = DEFAULT_TIMEOUT
    connection_name: str | None = None
    tls: bool = False
    tls_options: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        scheme = "amqps" if self.tls else "amqp"
        return (
            f"ConnectionParameters({scheme}://{self.credentials.username}@{self.host}:"
            f"{self.port}, vhost={self.vhost!r})"
        )


def parse_url(url: str) -> ConnectionParameters:
    """
    Parse an AMQP URI.

    @raise ValueError: not an C{amqp://} or C{amqps://} URI, a bad port or
        number, or an unknown query parameter.  The password never appears
        in the message.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # the message would quote the netloc, password included
        raise ValueError(
            "malformed AMQP URI (check that special characters are percent-encoded)"
        ) from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an AMQP URI (scheme {parts.scheme!r}); use amqp:// or amqps://")
    tls = parts.scheme == "amqps"
    params = ConnectionParameters(tls=tls, port=5671 if tls else 5672)
    netloc = parts.netloc.rpartition("@")[2]
    if netloc:
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in AMQP URI for host {parts.hostname!r}") from None
        if parts.hostname:
            params.host = unquote(parts.hostname)
        if port is not None:
            params.port = port
    username = unquote(parts.username) if parts.username is not None else "guest"
    password = unquote(parts.password) if parts.password is not None else "guest"
    mechanism = "PLAIN"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if path:
        params.vhost = unquote(path)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _URI_PARAMETERS:
            # quote the key only when it cannot be a piece of a password
            # split off by an unencoded "?"
            shown = repr(key) if key.replace("_", "").isalpha() and len(key) < 40 else "a parameter"
            raise ValueError(
                f"unknown AMQP URI parameter {shown}; known: {', '.join(sorted(_URI_PARAMETERS))}"
            )
        if key in _NUMBER_RANGES:
            low, high = _NUMBER_RANGES[key]
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"AMQP URI parameter {key} must be a whole number") from None
            if not low <= number <= high or (key == "frame_max" and 0 < number < 4096):
                extra = " (or 0)" if key == "frame_max" else ""
                raise ValueError(f"AMQP URI parameter {key} must be in {low}..{high}{extra}")
            if key == "connection_timeout":
                params.connection_timeout = number / 1000
            else:
                setattr(params, key, number)
        elif key == "auth_mechanism":
            mechanism = value.upper()
        elif key == "connection_name":
            params.connection_name = value
        else:
            params.tls_options[key] = value
    params.credentials = Credentials(username, password, mechanism)
    return params


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


def _endpoint_for(reactor: Any, params: ConnectionParameters) -> IStreamClientEndpoint:
    if params.tls:
        return _tls_endpoint(reactor, params)
    if _is_ipv4(params.host):
        return endpoints.TCP4ClientEndpoint(
            reactor, params.host, params.port, timeout=params.connection_timeout + 1
        )
    return endpoints.HostnameEndpoint(
        reactor, params.host, params.port, timeout=params.connection_timeout + 1
    )


def connect(
    reactor: Any,
    url_or_endpoint: str | IStreamClientEndpoint = DEFAULT_URL,
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
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Deferred[AMQClient]:
    """
    Connect, log in and open a virtual host.

    @param url_or_endpoint: an AMQP URI, a Twisted client endpoint string
        (C{"tcp:host=...:port=..."}), or an endpoint object.
    @param credentials: overrides the URI's user and password (required to
        log in as anyone but guest with an endpoint string).
    @param connection_timeout: seconds for the whole of connecting and the
        handshake (default 10, or the URI's).
    @return: a L{Deferred} firing with the open L{AMQClient}.  It fails with
        L{errors.AuthenticationError} (refused credentials),
        L{errors.NotAllowed} (a missing vhost or one the user may not use),
        Twisted's C{ConnectionRefusedError} or C{DNSLookupError},
        L{errors.CertificateVerifyError} (we do not trust the broker's TLS
        certificate), L{errors.TLSError} (another TLS handshake failure), or
        L{ConnectTimeout}; no socket is left open.
    @raise ValueError: a bad URI, or TLS parameters naming files that
        cannot be read or hold no usable certificate or key.
    """
    if isinstance(url_or_endpoint, str) and url_or_endpoint.startswith(("amqp://", "amqps://")):
        params = parse_url(url_or_endpoint)
        if connection_timeout is not None:
            params.connection_timeout = connection_timeout
        endpoint = _endpoint_for(reactor, params)
    else:
        params = ConnectionParameters()
        if connection_timeout is not None:
            params.connection_timeout = connection_timeout
        if isinstance(url_or_endpoint, str):
            endpoint = endpoints.clientFromString(reactor, url_or_endpoint)  # type: ignore[no-untyped-call]
        else:
            endpoint = url_or_endpoint
    if credentials is not None:
        params.credentials = credentials
    if vhost is not None:
        params.vhost = vhost
    if heartbeat is not None:
        params.heartbeat = heartbeat
    if frame_max is not None:
        params.frame_max = frame_max
    if channel_max is not None:
        params.channel_max = channel_max
    if connection_name is not None:
        params.connection_name = connection_name

    def build() -> AMQClient:
        return AMQClient(
            vhost=params.vhost,
            spec=spec,
            heartbeat=params.heartbeat,
            clock=reactor,
            credentials=params.credentials,
            frame_max=params.frame_max,
            channel_max=params.channel_max,
            connection_name=params.connection_name,
            client_properties=client_properties,
            max_message_size=max_message_size,
        )

    return _Attempt(reactor, endpoint, build, params.connection_timeout).start()


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

    Each protocol the factory builds is an L{AMQClient} that starts the
    handshake (log-in and virtual host) as soon as it is connected; wait for
    its L{AMQClient.when_open} before using it.  Unlike L{connect}, nothing
    here bounds the handshake in time.

    @param url: an AMQP URI, or parameters from L{parse_url}.
    @param connection_name: the name the broker shows for the connections;
        overrides the URI's.
    @return: a client endpoint and a quiet protocol factory.
    @raise ValueError: C{url} is not a valid AMQP URI.
    """
    params = parse_url(url) if isinstance(url, str) else url
    name = connection_name if connection_name is not None else params.connection_name

    def build() -> AMQClient:
        return AMQClient(
            vhost=params.vhost,
            heartbeat=params.heartbeat,
            clock=reactor,
            credentials=params.credentials,
            frame_max=params.frame_max,
            channel_max=params.channel_max,
            connection_name=name,
        )

    factory = Factory.forProtocol(build)
    factory.noisy = False
    return _endpoint_for(reactor, params), factory


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
        self.client: AMQClient | None = None
        self.timed_out = False
        self.result: Deferred[AMQClient] = Deferred(self._cancel)

    def start(self) -> Deferred[AMQClient]:
        self.timer = self.reactor.callLater(self.timeout, self._on_timeout)
        factory = Factory.forProtocol(self.build)
        factory.noisy = False
        self.connecting = self.endpoint.connect(factory)
        self.connecting.addCallbacks(self._connected, self._failed)
        return self.result

    def _connected(self, client: AMQClient) -> None:
        self.client = client
        client.when_open().addCallbacks(self._opened, self._failed)

    def _opened(self, client: AMQClient) -> None:
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

    def _cancel(self, _: Deferred[AMQClient]) -> None:
        if self.timer.active():
            self.timer.cancel()
        if self.client is None:
            self.connecting.cancel()
        elif self.client.transport is not None:
            self.client.transport.abortConnection()  # type: ignore[attr-defined]


class AMQEndpoint:
    """
    txAMQP's endpoint: connects a factory's protocol and authenticates it.

    @see: L{connect}, the preferred way.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        username: str = "",
        password: str = "",
        vhost: str = "/",
        heartbeat: int = 0,
        auth_mechanism: str = "AMQPLAIN",
        timeout: float = 30,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
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
        An endpoint for an AMQP URI; C{amqps://} connects with TLS, as
        L{connect} does.
        """
        params = parse_url(uri)
        endpoint = cls(
            reactor,
            params.host,
            params.port,
            username=params.credentials.username,
            password=params.credentials._password,
            vhost=params.vhost,
            heartbeat=params.heartbeat or 0,
            auth_mechanism=params.credentials.mechanism,
            timeout=params.connection_timeout,
        )
        if params.tls:
            endpoint._tls_options = params.tls_options
        return endpoint

    def connect(self, protocol_factory: Any) -> Deferred[AMQClient]:
        """
        Connect C{protocol_factory}'s protocol and authenticate.

        @return: a L{Deferred} firing with the open client.
        """
        endpoint: IStreamClientEndpoint = endpoints.HostnameEndpoint(
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

        def authenticate(client: AMQClient) -> Deferred[AMQClient]:
            return client.authenticate(
                self._username, self._password, mechanism=self._auth_mechanism
            )

        return d.addCallback(authenticate)
