"""Admission: per-provider rate and concurrency limits, the local breaker, request priority, and
budgets shared through Redis.
"""
