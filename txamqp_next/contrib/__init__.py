# -*- test-case-name: tests.integration.test_thrift_compat -*-
"""
txAMQP's C{txamqp.contrib} package: see L{txamqp_next.contrib.thrift}.
"""
