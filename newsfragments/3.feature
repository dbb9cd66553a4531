txAMQP 0.8.2 compatibility: client.TwistedDelegate, factory.AMQFactory, endpoint.AMQEndpoint, Content, TimeoutDeferredQueue; see docs/migrating-from-txamqp.md.
