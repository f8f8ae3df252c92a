"""The response cache a RoutingPolicy opts into: what may be kept, the key, and where answers are
kept.
"""
