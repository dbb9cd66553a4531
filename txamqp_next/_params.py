# -*- test-case-name: tests.test_endpoint -*-
"""
Connection parameters: one object from the URI (or the caller) down to the
protocol core.

L{ConnectionParameters} holds everything that says where and how to
connect: the broker's address and TLS settings (read by the endpoint), the
log-in, virtual host and tuning wishes (read by the core), and the
client-side limits (read by the Twisted adapter).  L{parse_url} builds one
from an AMQP URI; L{txamqp_next.connect}, the endpoint helpers, the
services and L{txamqp_next.connection.AMQPConnection} take one and pass it
down unchanged, so a setting is spelled once.

Nothing here imports Twisted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from txamqp_next._codec import encode_table

if TYPE_CHECKING:
    from txamqp_next.spec import Spec

__all__ = [
    "DEFAULT_MAX_HELD_BYTES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "ConnectionParameters",
    "Credentials",
    "parse_brokers",
    "parse_url",
]

#: The largest inbound message body accepted unless configured otherwise.
DEFAULT_MAX_MESSAGE_SIZE: Final = 128 * 1024 * 1024
#: How many body bytes of publishes may wait while publishing is paused.
DEFAULT_MAX_HELD_BYTES: Final = 256 * 1024 * 1024
#: Seconds for connecting and the handshake, unless configured otherwise.
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"


class Credentials:
    """
    A user name and password, and the SASL mechanism to present them with.

    The password never appears in C{repr}, C{str} or log output.

    @ivar mechanism: C{"PLAIN"} (default), C{"AMQPLAIN"} or C{"EXTERNAL"}
        (for TLS client certificates; user and password are unused).
    """

    MECHANISMS: Final = ("PLAIN", "AMQPLAIN", "EXTERNAL")

    def __init__(self, username: str = "guest", password: str = "guest", mechanism: str = "PLAIN"):
        mechanism = mechanism.upper()
        if mechanism not in self.MECHANISMS:
            raise ValueError(
                f"unsupported auth mechanism {mechanism!r}; use one of {', '.join(self.MECHANISMS)}"
            )
        self.username = username
        self._password = password
        self.mechanism = mechanism
        self._response: bytes | None = None

    @classmethod
    def from_response(
        cls, mechanism: str, response: bytes | str | Mapping[str, Any]
    ) -> Credentials:
        """
        Credentials that answer C{connection.start} with a response made
        by the caller (txAMQP's C{AMQClient.start(response, mechanism)}).

        @param mechanism: the SASL mechanism's name, as the broker offers it.
        @param response: the response's bytes; a C{str} is sent as UTF-8,
            and a mapping as a field table (AMQPLAIN's
            C{{"LOGIN": ..., "PASSWORD": ...}}).
        """
        self = cls(mechanism="EXTERNAL")
        self.mechanism = mechanism
        self.username = ""
        if isinstance(response, Mapping):
            self._response = encode_table(response)[4:]
            self.username = str(response.get("LOGIN", ""))
        elif isinstance(response, str):
            self._response = response.encode("utf-8")
        else:
            self._response = bytes(response)
        return self

    @property
    def password(self) -> str:
        """
        The password (never shown by C{repr}).
        """
        return self._password

    def response(self) -> bytes:
        """
        The C{start-ok} response for this mechanism.
        """
        if self._response is not None:
            return self._response
        if self.mechanism == "PLAIN":
            return b"\0" + self.username.encode() + b"\0" + self._password.encode()
        if self.mechanism == "AMQPLAIN":
            return encode_table({"LOGIN": self.username, "PASSWORD": self._password})[4:]
        return b""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.mechanism, self.username, self.response()) == (
            other.mechanism,
            other.username,
            other.response(),
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Credentials(username={self.username!r}, password=<hidden>, "
            f"mechanism={self.mechanism!r})"
        )


@dataclass
class ConnectionParameters:
    """
    Where and how to connect: the transport (C{host} to
    C{connection_timeout}, read by the endpoint), the protocol (C{spec} to
    C{max_message_size}, read by the core) and the client (C{close_timeout}
    and C{max_held_bytes}, read by the Twisted adapter).

    @ivar host: the broker's host name or address.
    @ivar port: its port (5672, or 5671 for TLS).
    @ivar tls: whether to use TLS.
    @ivar tls_options: C{cacertfile}, C{certfile}, C{keyfile}, C{verify},
        C{server_name_indication}, as RabbitMQ's URIs name them.
    @ivar connection_timeout: seconds for connecting and the handshake.
    @ivar spec: the spec to speak: a L{Spec}, a spec file path or short
        name; C{None} for the default 0-9-1 spec.
    @ivar credentials: who to log in as; C{None} makes the handshake wait
        for C{authenticate} (txAMQP's way).
    @ivar vhost: the virtual host to open.
    @ivar heartbeat: the heartbeat interval to ask for in seconds; C{None}
        accepts the broker's, C{0} asks for none (granted only when the
        broker also proposes none).
    @ivar frame_max: the largest frame we accept; C{0} for the broker's.
    @ivar channel_max: the highest channel id we want; C{0} for the broker's.
    @ivar connection_name: shown in the broker's management UI.
    @ivar client_properties: extra client properties, merged over ours.
    @ivar locale: the locale asked for in C{start-ok}.
    @ivar max_message_size: inbound bodies larger than this close their
        channel with 311 (content too large).
    @ivar close_timeout: how long a close waits for the broker's close-ok.
    @ivar max_held_bytes: the most body bytes of publishes held while
        publishing is paused; a publish past it fails with
        C{PublishBufferFull}.
    """

    host: str = "127.0.0.1"
    port: int = 5672
    tls: bool = False
    tls_options: dict[str, str] = field(default_factory=dict)
    connection_timeout: float = DEFAULT_TIMEOUT
    spec: Spec | str | None = None
    credentials: Credentials | None = field(default_factory=Credentials)
    vhost: str = "/"
    heartbeat: int | None = None
    frame_max: int = 131072
    channel_max: int = 0
    connection_name: str | None = None
    client_properties: Mapping[str, Any] | None = None
    locale: str = "en_US"
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    close_timeout: float = 10.0
    max_held_bytes: int = DEFAULT_MAX_HELD_BYTES

    def replace(self, **changes: Any) -> ConnectionParameters:
        """
        A copy with some parameters changed; C{None} values are ignored, so
        a caller's optional overrides can be passed straight through.
        """
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given)

    def __repr__(self) -> str:
        scheme = "amqps" if self.tls else "amqp"
        user = self.credentials.username if self.credentials is not None else ""
        return (
            f"ConnectionParameters({scheme}://{user}@{self.host}:{self.port}, vhost={self.vhost!r})"
        )


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


# where a list of URIs breaks: ";" or white space before a scheme
_SEVERAL_URIS = re.compile(r"[;\s]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def parse_brokers(text: str) -> list[ConnectionParameters]:
    """
    Parse a list of brokers to fail over between, in the order to try them:
    AMQP URIs separated by C{;} or white space, each of which may name
    several hosts, separated by commas, that share its user, vhost and
    parameters::

        amqp://user:secret@h1:5672,h2:5673,h3/prod?heartbeat=30
        amqp://user:secret@h1/prod; amqps://user:secret@h2/prod

    @return: one L{ConnectionParameters} per broker.
    @raise ValueError: as L{parse_url}, for any of them, or no broker at
        all.  The password never appears in the message.
    """
    brokers: list[ConnectionParameters] = []
    for uri in _SEVERAL_URIS.split(text.strip()):
        uri = uri.strip().rstrip(";").strip()
        if not uri:
            continue
        scheme, sep, rest = uri.partition("://")
        authority, slash, tail = rest.partition("/")
        if not slash:
            authority, query_mark, query = authority.partition("?")
            tail = ("?" + query) if query_mark else ""
            slash = "/" if query_mark else ""
        userinfo, at, hosts = authority.rpartition("@")
        for host in hosts.split(","):
            host = host.strip()
            if not host and "," in hosts:
                raise ValueError("an empty host in the AMQP URI's list of hosts")
            brokers.append(parse_url(f"{scheme}{sep}{userinfo}{at}{host}{slash}{tail}"))
    if not brokers:
        raise ValueError("no broker given")
    return brokers


def parse_url(url: str) -> ConnectionParameters:
    """
    Parse an AMQP URI, as RabbitMQ's URI spec reads it: user, password and
    vhost are percent-decoded (C{%2F} is C{/}); an empty path means the
    default vhost C{/}; C{amqps} means TLS, on port 5671 by default.  Query
    parameters: C{heartbeat}, C{frame_max}, C{channel_max},
    C{connection_timeout} (milliseconds), C{auth_mechanism},
    C{connection_name}, and for TLS C{cacertfile}, C{certfile}, C{keyfile},
    C{verify} and C{server_name_indication}.

    @raise ValueError: not an C{amqp://} or C{amqps://} URI, a bad port or
        number, or an unknown query parameter.  The password never appears
        in the message.
    """
    if _SEVERAL_URIS.search(url.strip()):
        raise ValueError("several AMQP URIs given where one is expected; use parse_brokers()")
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
    if "," in netloc:
        raise ValueError(
            "the AMQP URI names several hosts where one is expected; use parse_brokers()"
        )
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
