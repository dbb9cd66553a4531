"""
A message handler for the C{txamqp_next} twistd plugin.

    twistd -n txamqp_next --queue hello --handler examples.handler.show

logs the body of every message published to the queue C{hello}.  Run it from
the repository root (or anywhere, with the editable install).
"""

from __future__ import annotations

from twisted.logger import Logger

from txamqp_next import Message

log = Logger(namespace="examples.handler")


def show(message: Message) -> None:
    """
    Log the message's body.  Returning without an error gets it acknowledged.
    """
    log.info(
        "received {body!r} (delivery tag {delivery_tag})",
        body=message.body,
        delivery_tag=message.delivery_tag,
    )
