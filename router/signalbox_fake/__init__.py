"""A local stand-in for cloud and local LLM providers, speaking each one's exact wire format.

Used by tests, benchmarks and the demo; ``signalbox-fake-provider`` runs one from the shell.
"""

from signalbox_fake.server import FakeProvider
from signalbox_fake.state import Faults, Flavor, SeenRequest

__all__ = ["FakeProvider", "Faults", "Flavor", "SeenRequest"]
