"""ASGI primitives every room may use: reading a request's body and headers, reply values, and
sending them.
"""
