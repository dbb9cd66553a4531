# ruff: noqa: B018, F841
"""
Mistakes C{mypy --strict} must catch in calls of the default spec.  Each
line that must be an error ends with a comment C{# error: <text>}, where
the text is part of mypy's message; C{tests.test_generated} checks that
mypy reports exactly those lines.
"""

from __future__ import annotations

from txamqp_next.channel import Channel
from txamqp_next.recovery import RecoveringChannel


async def mistakes(ch: Channel, rch: RecoveringChannel) -> None:
    await ch.queue_declar(queue="q")  # error: has no attribute "queue_declar"
    await ch.queue_declare(queue="q", durabel=True)  # error: No overload variant of "queue_decl
    await ch.basic_qos(prefetch_count="ten")  # error: Argument "prefetch_count"
    await ch.queue_declare("q")  # error: No overload variant of "queue_declare"
    ok = await ch.queue_declare(queue="q")
    ok.queue_name  # error: has no attribute "queue_name"
    count: str = ok.message_count  # error: Incompatible types in assignment
    nothing: int = await ch.queue_delete(queue="q", no_wait=True)  # error: Incompatible types
    await ch.basic_consume(queue="q", no_ak=True)  # error: Argument "no_ak"
    await ch.basic_publish(routing_key="q", body=1)  # error: Argument "body"
    await ch.basic_publish(routing_key="q", mandatroy=True)  # error: Argument "mandatroy"
    message = await ch.basic_get(queue="q")
    message.body  # error: Item "None" of "Message | None" has no attribute "body"
    if message is not None:
        message.properties.content_typ  # error: has no attribute "content_typ"
        priority: str = message.properties.priority  # error: Incompatible types
    await rch.exchange_declare(exchange="x", tyep="topic")  # error: No overload variant of
    await rch.basic_consume(queue="q", exclusiv=True)  # error: Argument "exclusiv"
