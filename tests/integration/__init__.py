"""
Integration tests against a real RabbitMQ (see STYLE.md, Tests).
"""
