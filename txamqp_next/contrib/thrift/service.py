# -*- test-case-name: tests.integration.test_thrift_compat -*-
"""
txAMQP's C{txamqp.contrib.thrift.service}: L{IThriftAMQClientFactory}.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

__all__ = ["IThriftAMQClientFactory"]


class IThriftAMQClientFactory(Interface):
    """
    What a factory of L{txamqp_next.contrib.thrift.protocol.ThriftAMQClient}s
    offers: the Thrift protocol factories its clients and servers use when
    none is passed, and a processor.
    """

    iprot_factory = Attribute("Input protocol factory")
    oprot_factory = Attribute("Output protocol factory")
    processor = Attribute("Thrift processor")
