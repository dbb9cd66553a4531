# -*- test-case-name: tests -*-
"""
txamqp_next: an AMQP 0-9-1 client for Twisted.

The layers, from the bottom:

  - L{txamqp_next.spec}: AMQP XML spec files as immutable objects;
  - method classes built from a spec (C{txamqp_next._methods}), the wire
    codec (C{_codec}) and frames (C{_frames});
  - the sans-IO connection core (C{_connection}, C{_events});
  - the Twisted adapter and helpers on top.
"""

from txamqp_next._connection import Credentials
from txamqp_next.channel import Channel, Consumer, ConsumerCancelled
from txamqp_next.content import Content
from txamqp_next.endpoint import ConnectTimeout, connect, parse_url
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
from txamqp_next.service import ConsumerService

__version__ = "0.1.0.dev0"

__all__ = [
    "AMQClient",
    "AMQPError",
    "Channel",
    "ChannelClosed",
    "Closed",
    "ConnectTimeout",
    "ConnectionClosed",
    "Consumer",
    "ConsumerCancelled",
    "ConsumerService",
    "Content",
    "Credentials",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "RemoteProtocolError",
    "SpecError",
    "__version__",
    "connect",
    "parse_url",
]
