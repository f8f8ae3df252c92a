"""Ingress: the APIs the router accepts besides OpenAI chat, as the mirror image of ``dialects``.

A dialect turns the router's internal request (OpenAI chat) into what one provider type speaks;
an ingress turns what one client API speaks (Anthropic Messages, legacy text completions) into
the internal request, and the internal answer and stream back into that API. ``wrapping`` puts
the two together per attempt, so failover, limits and metering see an ordinary chat request.
"""
