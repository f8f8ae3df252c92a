"""The Signalbox router: an OpenAI-compatible data plane that picks a provider per request.

It reads LLMProvider and RoutingPolicy status from an in-memory snapshot kept by a watcher and
never calls the API server on the request path.
"""
