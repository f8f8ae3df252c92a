"""Real inference servers (llama.cpp's server, Ollama) for the tests below, once per session."""

from tests.support.inference_fixtures import llama_cpp, ollama, server

__all__ = ["llama_cpp", "ollama", "server"]
