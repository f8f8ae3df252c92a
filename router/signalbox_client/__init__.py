"""A thin Python client for the Signalbox router over the official ``openai`` SDK: task types
mapped to model names, the router's per-request control headers, and a tool loop that runs
registered Python functions until the model answers. The router stays stateless: the
conversation lives here."""

from signalbox_client.async_client import AsyncClient
from signalbox_client.loop import Answer, Controls, Priority, ToolLoopLimit
from signalbox_client.sync_client import Client

__all__ = ["Answer", "AsyncClient", "Client", "Controls", "Priority", "ToolLoopLimit"]
