"""Probing providers: one loop per LLMProvider, the HTTP probe, the circuit, uptime and model
discovery.
"""
