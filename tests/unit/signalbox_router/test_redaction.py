"""What the router passes on from upstreams is masked before it is shortened."""

from __future__ import annotations

import orjson
import pytest

from signalbox_router import redaction

KEY = "sk-live-0123456789abcdef"
SECRETS = redaction.secret_values([KEY, "short-key", None, "abc"])


@pytest.mark.parametrize("padding", range(redaction.MAX_MESSAGE - 30, redaction.MAX_MESSAGE + 2))
def test_a_secret_across_the_cut_leaves_none_of_itself(padding: int) -> None:
    said = redaction.redact_text("y" * padding + KEY + " and short-key", SECRETS)
    assert len(said) <= redaction.MAX_MESSAGE
    assert KEY[:4] not in said
    assert "short-key" not in said


def test_a_short_message_is_masked_and_kept_whole() -> None:
    said = redaction.redact_text(f"bad key {KEY}, abc", SECRETS)
    assert said == "bad key [REDACTED], abc"  # values under MIN_SECRET are not masked


def test_text_that_is_not_valid_unicode_is_still_masked() -> None:
    said = redaction.redact_text(f"\ud800 {KEY}", SECRETS)
    assert said == "? [REDACTED]"


def test_a_key_with_json_escapes_is_masked_inside_json_too() -> None:
    # Keys may hold any visible ASCII: one with a quote or a backslash is escaped in a JSON body.
    key = 'sk-ab"cd\\ef-0123456789'
    body = orjson.dumps({"error": {"message": f"bad key {key}"}})
    assert key.encode() not in body  # as it stands in JSON, not as it is
    masked = redaction.redact(body, redaction.secret_values([key]))
    assert key not in orjson.loads(masked)["error"]["message"]
    assert "[REDACTED]" in orjson.loads(masked)["error"]["message"]


def test_an_answer_is_masked_even_where_json_escapes_spell_the_key() -> None:
    secrets = redaction.secret_values(["sk-live-0123456789"])
    body = b'{"content": "the key is \\u0073k-live-0123456789 and caf\\u00e9 \\u0022x\\u0022"}'
    masked = redaction.redact_answer(body, secrets)
    assert b"0123456789" not in masked
    assert b"caf\\u00e9 \\u0022x\\u0022" in masked, "escapes a JSON needs are kept"
    assert redaction.redact_answer(b"plain", secrets) == b"plain"
