"""The one log format of Signalbox's processes, the router, the operator and the HTTP servers
and libraries inside them: text, or one JSON object a line (``FORMATS``).

Text lines read ``time LEVEL logger message``; the router adds the id of the request a line is
about (``[id]``), and with tracing on every line names the trace and span it was written in
(``[id trace/span]``, ``-`` outside one). JSON lines carry ``time``, ``level``, ``logger``,
``message``, ``trace_id`` and ``span_id`` when traced, and any fields a line was given (the
router's access lines: one field each). Whatever a library set up before
is replaced, so every line on the process's stderr has the same form.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from signalbox_api.tracing import TraceIds

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}


def install(
    level: str,
    fmt: str = "text",
    *,
    field: str | None = None,
    adds: logging.Filter | None = None,
    traced: bool = False,
) -> None:
    """Every logger's lines to stderr in ``fmt`` from ``level`` up; ``field``: a record
    attribute (set by ``adds``, a filter) shown on every line after the logger's name;
    ``traced``: the trace and span ids as well."""
    handler = logging.StreamHandler(sys.stderr)
    if adds is not None:
        handler.addFilter(adds)
    fields = [f"%({field})s"] if field else []
    if traced:
        handler.addFilter(TraceIds())
        fields.append("%(trace_id)s %(span_id)s" if fmt == "json" else "%(trace_id)s/%(span_id)s")
    if fmt == "json":
        shown = "".join(f" {f}" for f in fields)
        layout = f"%(asctime)s %(levelname)s %(name)s{shown} %(message)s"
        handler.setFormatter(JsonFormatter(layout, rename_fields=_RENAMED))
    else:
        bracketed = f" [{' '.join(fields)}]" if fields else ""
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{bracketed} %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # What no line shows, not gathered for every record (the logging HOWTO's "Optimization"):
    # the caller's file and line, thread and process.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
