"""What every client API's request reader raises for a body it cannot serve."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The body is not a request of the client's API that the router can serve; ``param``
    names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param
