# -*- test-case-name: tests -*-
"""
txamqp_next: an AMQP 0-9-1 client for Twisted.

The layers, from the bottom:

  - L{txamqp_next.spec}: AMQP XML spec files as immutable objects;
  - method classes built from a spec (C{txamqp_next._methods}), the wire
    codec (C{_codec}) and frames (C{_frames});
  - the sans-IO connection core (C{_connection}, C{_events}, C{_params}),
    which imports nothing of Twisted;
  - the Twisted adapter (L{txamqp_next.connection}, L{txamqp_next.channel})
    and the helpers on top (endpoints, services, RPC, Thrift);
  - txAMQP's names, built on the adapter (L{txamqp_next.protocol},
    C{client}, C{factory}, C{content}, C{queue}, C{testing}, C{testlib},
    C{contrib.thrift}).

The names below are imported when first used, so C{import
txamqp_next._connection} works without Twisted installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txamqp_next._params import ConnectionParameters, Credentials
    from txamqp_next.channel import Channel, Consumer, ConsumerCancelled
    from txamqp_next.connection import AMQPConnection
    from txamqp_next.content import Content
    from txamqp_next.endpoint import (
        ConnectTimeout,
        NoBrokerAvailable,
        connect,
        parse_brokers,
        parse_url,
    )
    from txamqp_next.errors import (
        AMQPError,
        ChannelClosed,
        Closed,
        ConnectionClosed,
        LocalProtocolError,
        ProtocolError,
        RemoteProtocolError,
        SpecError,
    )
    from txamqp_next.message import Message
    from txamqp_next.protocol import AMQClient
    from txamqp_next.recovery import (
        ConnectionEvent,
        RecoveringChannel,
        RecoveringConnection,
        connect_recovering,
    )
    from txamqp_next.service import ConsumerService
    from txamqp_next.stats import ChannelStats, ConnectionStats

__version__ = "0.1.0.dev0"

#: each public name, and the module it comes from
_EXPORTS = {
    "AMQClient": "txamqp_next.protocol",
    "AMQPConnection": "txamqp_next.connection",
    "AMQPError": "txamqp_next.errors",
    "Channel": "txamqp_next.channel",
    "ChannelClosed": "txamqp_next.errors",
    "ChannelStats": "txamqp_next.stats",
    "Closed": "txamqp_next.errors",
    "ConnectTimeout": "txamqp_next.endpoint",
    "ConnectionEvent": "txamqp_next.recovery",
    "ConnectionClosed": "txamqp_next.errors",
    "ConnectionParameters": "txamqp_next._params",
    "ConnectionStats": "txamqp_next.stats",
    "Consumer": "txamqp_next.channel",
    "ConsumerCancelled": "txamqp_next.channel",
    "ConsumerService": "txamqp_next.service",
    "Content": "txamqp_next.content",
    "Credentials": "txamqp_next._params",
    "LocalProtocolError": "txamqp_next.errors",
    "Message": "txamqp_next.message",
    "NoBrokerAvailable": "txamqp_next.endpoint",
    "ProtocolError": "txamqp_next.errors",
    "RecoveringChannel": "txamqp_next.recovery",
    "RecoveringConnection": "txamqp_next.recovery",
    "RemoteProtocolError": "txamqp_next.errors",
    "SpecError": "txamqp_next.errors",
    "connect": "txamqp_next.endpoint",
    "connect_recovering": "txamqp_next.recovery",
    "parse_brokers": "txamqp_next.endpoint",
    "parse_url": "txamqp_next.endpoint",
}

__all__ = [
    "AMQClient",
    "AMQPConnection",
    "AMQPError",
    "Channel",
    "ChannelClosed",
    "ChannelStats",
    "Closed",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionEvent",
    "ConnectionParameters",
    "ConnectionStats",
    "Consumer",
    "ConsumerCancelled",
    "ConsumerService",
    "Content",
    "Credentials",
    "LocalProtocolError",
    "Message",
    "NoBrokerAvailable",
    "ProtocolError",
    "RecoveringChannel",
    "RecoveringConnection",
    "RemoteProtocolError",
    "SpecError",
    "__version__",
    "connect",
    "connect_recovering",
    "parse_brokers",
    "parse_url",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'txamqp_next' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
