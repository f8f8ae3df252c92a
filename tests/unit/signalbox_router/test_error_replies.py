"""The request path's one error tree, and the one place it becomes a reply: every error in the
shape of the client's API, with the status, code and headers its kind stands for."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from signalbox_providers.outcomes import Outcome
from signalbox_providers.translate.messages_to_chat import InvalidMessages
from signalbox_router.edge import error_replies
from signalbox_router.failures import (
    BadRequest,
    BodyTooLarge,
    MethodNotAllowed,
    NoEligibleProvider,
    NotFound,
    OutOfTime,
    RateLimited,
    RequestError,
    Unauthorized,
    UnknownModel,
    UpstreamFailed,
)
from signalbox_router.forwarding.controls import InvalidControl

CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"
TIMEOUT = "x-signalbox-timeout"


def _body(reply: Any) -> Any:
    return orjson.loads(reply.body)


@pytest.mark.parametrize(
    ("error", "status", "code", "param"),
    [
        (BadRequest("bad"), 400, "invalid_request", None),
        (BadRequest("no", code="invalid_json"), 400, "invalid_json", None),
        (BodyTooLarge("big"), 413, "request_too_large", None),
        (
            InvalidControl(b"x-signalbox-timeout", "no"),
            400,
            "invalid_header",
            "x-signalbox-timeout",
        ),
        (Unauthorized("key"), 401, "invalid_api_key", None),
        (NotFound("where"), 404, "unknown_url", None),
        (UnknownModel("gpt-9"), 404, "model_not_found", "model"),
        (MethodNotAllowed("GET"), 405, "method_not_allowed", None),
        (RateLimited("slow", retry_after=2.0), 429, "rate_limit_exceeded", None),
        (NoEligibleProvider("m"), 503, "no_eligible_provider", None),
        (OutOfTime(3), 504, "total_timeout", None),
    ],
)
def test_each_kind_has_its_status_and_code(
    error: RequestError, status: int, code: str, param: str | None
) -> None:
    reply = error_replies.reply_for(error, CHAT)
    assert reply.status == status
    assert _body(reply)["error"] | {"message": ""} == {
        "message": "",
        "type": _body(reply)["error"]["type"],
        "code": code,
        "param": param,
    }


def test_the_unknown_model_says_which() -> None:
    reply = error_replies.reply_for(UnknownModel("gpt-9"), CHAT)
    assert _body(reply)["error"]["message"] == "The model 'gpt-9' does not exist."


def test_retry_after_and_attempts_travel_as_headers() -> None:
    assert (b"retry-after", b"5") in error_replies.reply_for(NoEligibleProvider("m"), CHAT).headers
    assert (b"x-signalbox-attempts", b"3") in error_replies.reply_for(OutOfTime(3), CHAT).headers


def test_a_client_apis_parse_error_is_a_400_naming_the_field() -> None:
    reply = error_replies.reply_for(InvalidMessages("max_tokens is required", "max_tokens"), CHAT)
    assert reply.status == 400
    assert _body(reply)["error"]["param"] == "max_tokens"


def test_a_bug_of_ours_is_a_500_that_says_nothing_more(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        reply = error_replies.reply_for(KeyError("secret detail"), CHAT)
    assert reply.status == 500
    assert _body(reply)["error"]["code"] == "internal"
    assert "secret detail" not in reply.body.decode()
    assert "failed inside the router" in caplog.text


def test_on_the_messages_route_every_error_is_in_anthropics_shape() -> None:
    reply = error_replies.reply_for(Unauthorized("Missing or invalid API key."), MESSAGES)
    assert reply.status == 401
    assert _body(reply) == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Missing or invalid API key."},
    }
    assert _body(error_replies.reply_for(Unauthorized("x"), CHAT))["error"]["code"] == (
        "invalid_api_key"
    )


def test_the_last_upstream_failure_names_its_attempts_and_masks_secrets() -> None:
    failure = UpstreamFailed(Outcome.SERVER_ERROR, "p: HTTP 500 for key sk-secret-1")
    failure.attempts = 2
    reply = error_replies.reply_for(failure, CHAT, (b"sk-secret-1",))
    assert reply.status == 502
    message = _body(reply)["error"]["message"]
    assert message.startswith("upstream failed after 2 attempt(s): p: HTTP 500")
    assert "sk-secret-1" not in message
    assert (b"x-signalbox-attempts", b"2") in reply.headers


def test_a_rate_limited_upstream_says_when_to_come_back() -> None:
    reply = error_replies.reply_for(UpstreamFailed(Outcome.RATE_LIMITED, "p: HTTP 429"), CHAT)
    assert reply.status == 429
    assert (b"retry-after", b"5") in reply.headers


def test_the_providers_own_error_passes_on_redacted_when_the_request_was_at_fault() -> None:
    upstream = {"error": {"message": "bad tool schema near sk-secret-1", "code": "invalid"}}
    failure = UpstreamFailed(
        Outcome.BAD_REQUEST, "p: HTTP 400", upstream_status=400, upstream=upstream
    )
    failure.names = ((b"x-signalbox-provider", b"p"),)
    reply = error_replies.reply_for(failure, CHAT, (b"sk-secret-1",))
    assert reply.status == 400
    assert _body(reply)["error"]["message"] == "bad tool schema near [REDACTED]"
    assert (b"x-signalbox-provider", b"p") in reply.headers
