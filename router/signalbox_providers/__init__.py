"""Provider wire formats: adapters per provider type, error classification, and a fake provider.

A shared leaf: imports neither the operator, the router nor kopf.
"""
