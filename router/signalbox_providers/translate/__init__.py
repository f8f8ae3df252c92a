"""Sans-I/O translation between the OpenAI Chat Completions wire format and other providers' APIs.

Applications speak OpenAI's format to the router; some upstreams (Anthropic's Messages API,
Ollama's native ``/api/chat``) do not. Each module here turns an OpenAI request into one
provider's request, and that provider's responses, streams and errors back into OpenAI's
shapes, as plain functions over dicts: the router owns the HTTP client, so these stay easy to
test byte for byte and never touch the network.
"""
