"""The one log format: text lines with the optional bracketed field, or JSON objects with the
renamed standard fields and any extra ones, every earlier handler replaced."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from signalbox_api import log_format


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, srcfile = root.handlers[:], root.level, logging._srcfile
    yield
    root.handlers[:], logging._srcfile = handlers, srcfile
    root.setLevel(level)


class _Tag(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.tag = "t-1"
        return True


def test_text_lines_name_level_logger_and_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger().addHandler(logging.StreamHandler())  # a library's: replaced
    log_format.install("info", "text", field="tag", adds=_Tag())
    logging.getLogger("some.where").info("hello %s", "there")
    logging.getLogger("some.where").debug("below the level")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO some.where [t-1] hello there"), line


def test_json_lines_are_objects_with_their_fields(capsys: pytest.CaptureFixture[str]) -> None:
    log_format.install("warning", "json")
    logging.getLogger("uvicorn.error").warning("careful", extra={"status": 503})
    logging.getLogger("uvicorn.error").info("below the level")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert {k: record[k] for k in ("level", "logger", "message", "status")} == {
        "level": "WARNING",
        "logger": "uvicorn.error",
        "message": "careful",
        "status": 503,
    }
    assert record["time"]


def test_traced_lines_name_their_trace_and_span(capsys: pytest.CaptureFixture[str]) -> None:
    tracer = TracerProvider().get_tracer("t")
    for fmt in ("text", "json"):
        log_format.install("info", fmt, field="tag", adds=_Tag(), traced=True)
        logging.getLogger("x").info("outside")
        with tracer.start_as_current_span("s") as span:
            logging.getLogger("x").info("inside")
            ids = span.get_span_context()
        trace_id, span_id = format(ids.trace_id, "032x"), format(ids.span_id, "016x")
        outside, inside = capsys.readouterr().err.splitlines()
        if fmt == "text":
            assert outside.endswith(" INFO x [t-1 -/-] outside"), outside
            assert inside.endswith(f" INFO x [t-1 {trace_id}/{span_id}] inside"), inside
        else:
            assert (json.loads(outside)["trace_id"], json.loads(outside)["span_id"]) == ("-", "-")
            assert json.loads(inside)["trace_id"] == trace_id
            assert json.loads(inside)["span_id"] == span_id
