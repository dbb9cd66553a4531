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
