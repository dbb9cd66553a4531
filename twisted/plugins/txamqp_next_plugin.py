# -*- test-case-name: tests.test_tap -*-
from twisted.application.service import ServiceMaker

TxAMQPNextConsumer = ServiceMaker(
    "txamqp_next", "txamqp_next.tap", "Run an AMQP consumer service", "txamqp_next"
)
