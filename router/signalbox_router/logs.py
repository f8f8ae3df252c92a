"""The router's log lines, in the project's one format (``signalbox_api.log_format``), its own
and uvicorn's alike, each naming the id of the request it was written for (``request_id``; ``-``
for lines about no request). The edge sets the id for the request's task (``access_log``) and
asyncio copies it into the tasks that task starts.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from signalbox_api import log_format

NO_REQUEST = "-"
REQUEST_ID: ContextVar[str] = ContextVar("signalbox_request_id", default=NO_REQUEST)

FORMATS, LEVELS = log_format.FORMATS, log_format.LEVELS


class _WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure(level: str, fmt: str = "text", *, traced: bool = False) -> None:
    """Send every logger's lines (uvicorn's included: it is started without a logging config
    of its own) to stderr in ``fmt``, from ``level`` up; ``traced``: naming the trace and span
    of each line too."""
    log_format.install(level, fmt, field="request_id", adds=_WithRequestId(), traced=traced)
