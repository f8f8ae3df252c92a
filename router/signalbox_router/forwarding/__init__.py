"""Forwarding one request: the failover loop, the attempt that owns what it takes, the exchange
with a provider, streams and deadlines.
"""
