`txamqp_next.testing.MemoryBroker`: a public in-memory AMQP broker for unit tests, in the manner of
treq's `StubTreq`. It speaks frames to the real client (connections, the recovering connection, the
services) with no socket, on a `Clock`, with an explicit `flush()`: exchanges of the four types and
exchange bindings, queues (server-named, exclusive, auto-delete), publish with returns, get, consume
round-robin within QoS prefetch, ack/nack/reject with requeue, confirms (ack, nack or held), tx,
RabbitMQ's channel and connection errors, consumer cancels, connection loss and forced closes on
demand, and its state to inspect. It is also an `IStreamClientEndpoint`. See `docs/testing.md`.
`txamqp_next.testing` is now a package; `from txamqp_next.testing import AMQPump` still works.

asyncio applications can use the library directly: under Twisted's asyncio reactor
(`AsyncioSelectorReactor`), an asyncio task awaits every `Deferred` the library returns
(connections, channel calls, publishes with confirms, consumers, recovering connections,
RPC, Thrift calls, the txAMQP names) and iterates consumers with `async for`, instead of
failing with `Task got bad yield`. Cancelling the task cancels the call. `docs/usage.md`
shows the same program with `inlineCallbacks`, `async def` and asyncio.

Typed, documented spec methods: every channel call of the default spec (`queue_declare`,
`basic_qos`, `exchange_bind`, ...) is a keyword-only method with typed fields and a typed reply
(`ch.queue_declare(...)` is a `Deferred[Queue.DeclareOk]`; with `no_wait=True` a `Deferred[None]`),
so `mypy --strict` catches a misspelt call, field or reply attribute and a wrong field type.
`txamqp_next.methods` is generated from the default spec by `scripts/generate_api.py` (a test
fails when the two disagree) and holds a typing protocol per method and `BasicProperties`
(`message.properties.content_type` is a `str | None`). The default spec now carries the AMQP
0-9-1 specification's own labels and text, which become the docstrings of the calls, of the
method classes built at run time and so of `help(ch.queue_declare)`. With another spec loaded the
same calls send that spec's fields; methods only it has stay reachable at run time, untyped.

An API reference built with pydoctor from the docstrings (`scripts/build_api_docs.py`, into
`build/apidocs/`), with no warnings and every spec call documented; the test suite builds it.

Counters per channel and per connection, read as frozen snapshots with `stats()`
(`ChannelStats`, `ConnectionStats` in `txamqp_next.stats`): messages published,
confirmed, nacked and returned by the broker, delivered, acked, nacked and rejected by the
application, body bytes each way, channels opened, time blocked by the broker, heartbeat
timeouts and losses; a `RecoveringConnection` keeps the totals across its connections and
counts reconnection attempts and recoveries. Each connection state change logs a
structured event with a stable `amqp_event` field (`connection.opened`,
`connection.blocked`, `connection.lost`, `recovery.reconnecting`, ...).
`txamqp_next.contrib.prometheus.AMQPCollector` exports the counters to Prometheus (extra
`prometheus`). See docs/observability.md.
