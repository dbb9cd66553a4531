`txamqp_next.testing.MemoryBroker`: a public in-memory AMQP broker for unit tests, in the manner of
treq's `StubTreq`. It speaks frames to the real client (connections, the recovering connection, the
services) with no socket, on a `Clock`, with an explicit `flush()`: exchanges of the four types and
exchange bindings, queues (server-named, exclusive, auto-delete), publish with returns, get, consume
round-robin within QoS prefetch, ack/nack/reject with requeue, confirms (ack, nack or held), tx,
RabbitMQ's channel and connection errors, consumer cancels, connection loss and forced closes on
demand, and its state to inspect. It is also an `IStreamClientEndpoint`. See `docs/testing.md`.
`txamqp_next.testing` is now a package; `from txamqp_next.testing import AMQPump` still works.
