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
