"""
Every typed channel call of the default spec, as an application writes it.
C{tests.test_generated} runs C{mypy --strict} on this file and expects no
error; it also checks that every call of
L{txamqp_next.methods.ChannelMethods} and every call written by hand on
L{txamqp_next.channel.Channel} appears here.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from typing_extensions import assert_type

from txamqp_next.channel import Channel, Consumer
from txamqp_next.message import Message
from txamqp_next.methods import Basic, Confirm, Exchange, Queue, Tx
from txamqp_next.methods import Channel as ChannelClass
from txamqp_next.recovery import RecoveringChannel, RecoveringConsumer


async def every_call(ch: Channel) -> None:
    assert_type(await ch.channel_open(), Channel)
    assert_type(await ch.channel_flow(active=True), ChannelClass.FlowOk)
    assert_type(await ch.channel_flow_ok(active=True), None)
    assert_type(await ch.channel_close_ok(), None)
    declared = await ch.exchange_declare(exchange="x", type="topic", durable=True)
    assert_type(declared, Exchange.DeclareOk)
    assert_type(ch.exchange_declare(exchange="x", no_wait=True), Deferred[None])
    assert_type(await ch.exchange_delete(exchange="x", if_unused=True), Exchange.DeleteOk)
    assert_type(await ch.exchange_bind(destination="d", source="s"), Exchange.BindOk)
    assert_type(await ch.exchange_unbind(destination="d", source="s"), Exchange.UnbindOk)
    ok = await ch.queue_declare(queue="", exclusive=True, arguments={"x-max-length": 10})
    assert_type(ok, Queue.DeclareOk)
    assert_type(ok.queue, str)
    assert_type(ok.message_count, int)
    assert_type(await ch.queue_bind(queue=ok.queue, exchange="x", routing_key="k"), Queue.BindOk)
    assert_type(await ch.queue_unbind(queue=ok.queue, exchange="x"), Queue.UnbindOk)
    assert_type((await ch.queue_purge(queue=ok.queue)).message_count, int)
    assert_type(await ch.queue_delete(queue=ok.queue, if_empty=True), Queue.DeleteOk)
    assert_type(await ch.basic_qos(prefetch_count=10, global_=False), Basic.QosOk)
    assert_type(await ch.confirm_select(), Confirm.SelectOk | None)
    assert_type(await ch.basic_publish(routing_key="q", body=b"x", mandatory=True), None)
    consumer = await ch.basic_consume(queue="q", no_ack=False, callback=None)
    assert_type(consumer, Consumer)
    assert_type(await ch.basic_cancel(consumer.consumer_tag), Basic.CancelOk | None)
    assert_type(await ch.basic_cancel_ok(consumer_tag="t"), None)
    got = await ch.basic_get(queue="q")
    assert_type(got, Message | None)
    if got is not None:
        assert_type(got.properties.content_type, str | None)
        assert_type(got.properties.headers, dict[str, Any] | None)
        assert_type(got.body, bytes)
    assert_type(await ch.basic_ack(delivery_tag=1, multiple=True), None)
    assert_type(await ch.basic_nack(delivery_tag=1, requeue=False), None)
    assert_type(await ch.basic_reject(delivery_tag=1), None)
    assert_type(await ch.basic_recover(requeue=True), Basic.RecoverOk)
    assert_type(await ch.basic_recover_async(requeue=True), None)
    assert_type(await ch.tx_select(), Tx.SelectOk)
    assert_type(await ch.tx_commit(), Tx.CommitOk)
    assert_type(await ch.tx_rollback(), Tx.RollbackOk)
    assert_type(await ch.channel_close(), ChannelClass.CloseOk | None)
    # by name, for the methods of other specs: untyped
    assert_type(await ch.invoke("file.qos", prefetch_count=1), Any)


async def recovering(ch: RecoveringChannel) -> None:
    assert_type(await ch.queue_declare(queue="jobs", durable=True), Queue.DeclareOk)
    assert_type(await ch.basic_qos(prefetch_count=5), Basic.QosOk)
    assert_type(await ch.confirm_select(), Confirm.SelectOk | None)
    assert_type(await ch.basic_publish(routing_key="jobs", body=b"x"), None)
    consumer = await ch.basic_consume(queue="jobs")
    assert_type(consumer, RecoveringConsumer)
    assert_type(await ch.basic_get(queue="jobs"), Message | None)
    assert_type(await ch.basic_ack(delivery_tag=1), None)
