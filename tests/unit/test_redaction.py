"""What the router passes on from upstreams is masked before it is shortened."""

from __future__ import annotations

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
