asyncio applications can use the library directly: under Twisted's asyncio reactor
(`AsyncioSelectorReactor`), an asyncio task awaits every `Deferred` the library returns
(connections, channel calls, publishes with confirms, consumers, recovering connections,
RPC, Thrift calls, the txAMQP names) and iterates consumers with `async for`, instead of
failing with `Task got bad yield`. Cancelling the task cancels the call. `docs/usage.md`
shows the same program with `inlineCallbacks`, `async def` and asyncio.
