"""Usage and cost: token estimates, Prometheus metrics, the usage summary and the gauges read at
scrape time.
"""
