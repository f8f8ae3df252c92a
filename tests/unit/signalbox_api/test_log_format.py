"""The one log format: text lines with the optional bracketed field, or JSON objects with the
renamed standard fields and any extra ones, every earlier handler replaced."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

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
