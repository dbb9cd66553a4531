# -*- test-case-name: tests.test_testing -*-
"""
Test doubles for code that uses txamqp_next, without a broker or a socket.

  - L{MemoryBroker}: an in-memory broker that speaks AMQP frames to the
    real client on a L{twisted.internet.task.Clock}, routing, queueing and
    delivering as RabbitMQ does, for unit tests of consumers and
    publishers (see C{docs/testing.md}).
  - L{AMQPump}: txAMQP's frame-pumping transport, for tests that play the
    broker by hand, frame by frame.
"""

from txamqp_next.testing._broker import MemoryBroker, MemoryTransport
from txamqp_next.testing._model import Binding, Exchange, Message, Queue, VirtualHost
from txamqp_next.testing._pump import (
    AMQPump,
    BodyPayload,
    Frame,
    HeaderPayload,
    HeartbeatPayload,
    MethodPayload,
)
from txamqp_next.testing._server import Published, ServerChannel, ServerConnection, ServerConsumer

__all__ = [
    "AMQPump",
    "Binding",
    "BodyPayload",
    "Exchange",
    "Frame",
    "HeaderPayload",
    "HeartbeatPayload",
    "MemoryBroker",
    "MemoryTransport",
    "Message",
    "MethodPayload",
    "Published",
    "Queue",
    "ServerChannel",
    "ServerConnection",
    "ServerConsumer",
    "VirtualHost",
]
