# -*- test-case-name: tests.integration.test_thrift_compat -*-
"""
txAMQP 0.8.2's C{txamqp.contrib.thrift}, on L{txamqp_next.thrift}: code
written for it runs after renaming C{txamqp} to C{txamqp_next} in its
imports.

  - L{transport.TwistedAMQPTransport}: the Thrift transport that publishes
    each message;
  - L{protocol.ThriftAMQClient}: an L{txamqp_next.AMQClient} with
    C{createThriftClient} and C{createThriftServer};
  - L{client.ThriftTwistedDelegate}: the delegate that hands returned
    Thrift calls to their client;
  - L{service.IThriftAMQClientFactory} (also in C{protocol}).

New code uses L{txamqp_next.thrift} directly.
"""
