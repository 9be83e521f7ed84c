"""The price table and the cost of one call (reference/gemini-image-api.md §6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.ledger import Payer, charge_row
from bot.prices import Usage, dollars, load_prices

PRO_2K_USAGE = {
    "promptTokenCount": 533,
    "candidatesTokenCount": 1140,
    "thoughtsTokenCount": 217,
    "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120}],
}
PAYER = Payer(
    team_id="T1", user_id="U1", channel_id="C1", job_id=7, model_id="gemini-3-pro-image", image_size="2K"
)


def test_the_built_in_table_says_when_it_was_checked_and_matches_googles_image_prices() -> None:
    prices = load_prices()
    assert prices.checked.isoformat() == "2026-12-01"
    assert prices.image_price("gemini-nano-banana-2.1", "1K") == 33_600  # $0.0336
    assert prices.image_price("gemini-nano-banana-2.1", "2K") == 50_400
    assert prices.image_price("gemini-3-pro-image", "2K") == 134_400  # $0.134, the same as 1K
    assert prices.image_price("gemini-3-pro-image", "4K") == 240_000
    assert prices.image_price("gemini-3.1-flash-image", "512") == 45_000
    assert prices.image_price("gemini-2.5-flash-image", None) == 38_700


def test_usage_splits_image_text_and_thinking_tokens() -> None:
    assert Usage.of(PRO_2K_USAGE) == Usage(prompt=533, image=1120, text=20, thinking=217)
    assert Usage.of({}).empty
    assert Usage.of({"promptTokenCount": "lots", "thoughtsTokenCount": -4}).empty  # nonsense counts nothing


def test_a_call_is_priced_by_the_model_that_answered_not_the_one_asked_for() -> None:
    prices = load_prices()
    asked_flash = Payer(**{**PAYER.__dict__, "model_id": "gemini-3.1-flash-image"})
    row = charge_row(
        prices,
        asked_flash,
        outcome="image",
        billed="yes",
        usage=PRO_2K_USAGE,
        model_version="gemini-3-pro-image",
    )
    assert row["priced_as"] == "gemini-3-pro-image"
    # Pro: $2 per 1M input, $12 per 1M text and thinking, $120 per 1M image tokens.
    assert row["cost_micros"] == (533 * 2 + (20 + 217) * 12 + 1120 * 120)
    assert (row["model_requested"], row["model_version"]) == ("gemini-3.1-flash-image", "gemini-3-pro-image")


def test_a_versioned_model_id_is_priced_as_its_family_and_an_unknown_one_as_the_dearest() -> None:
    prices = load_prices()
    assert prices.lookup("gemini-3-pro-image-002")[0] == "gemini-3-pro-image"
    assert prices.lookup("gemini-9-ultra-image")[0] == "gemini-3-pro-image"


def test_calls_without_an_image_are_recorded_with_what_they_may_have_cost() -> None:
    prices = load_prices()

    def row(outcome: str, billed: str, usage: dict[str, object]) -> dict[str, object]:
        return charge_row(prices, PAYER, outcome=outcome, billed=billed, usage=usage, model_version=None)  # type: ignore[arg-type]

    refused = row("refused", "yes", {"promptTokenCount": 1000})
    assert (refused["images"], refused["cost_micros"]) == (0, 2000)  # the prompt is billed
    assert row("error", "no", {})["cost_micros"] == 0  # a 503: Google bills nothing
    maybe = row("timeout", "maybe", {})
    assert maybe["images"] == 1
    assert maybe["cost_micros"] == prices.estimate("gemini-3-pro-image", "2K") > 134_400


def test_an_operator_replaces_the_table_with_a_file(tmp_path: Path) -> None:
    table = {
        "checked": "2027-01-15",
        "models": {
            "gemini-nano-banana-2.1": {
                "input": 1.0,
                "text_output": 5.0,
                "image_output": 20.0,
                "image_tokens": {"1K": 1000},
            }
        },
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table))
    prices = load_prices(path)
    assert prices.checked.isoformat() == "2027-01-15"
    assert prices.image_price("gemini-nano-banana-2.1", "1K") == 20_000


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"checked": "2026-12-01", "models": {}}',
        '{"checked": "yesterday", "models": {"m": {"input": 1, "text_output": 1, "image_output": 1, '
        '"image_tokens": {"1K": 1}}}}',
        '{"checked": "2026-12-01", "models": {"m": {"input": -1, "text_output": 1, "image_output": 1, '
        '"image_tokens": {"1K": 1}}}}',
        '{"checked": "2026-12-01", "models": {"m": {"input": 1, "text_output": 1, "image_output": 1, '
        '"image_tokens": {"1K": 1.5}}}}',
    ],
    ids=["not-json", "no-models", "bad-date", "negative-price", "fractional-tokens"],
)
def test_a_table_that_cant_be_used_stops_the_app_with_the_reason(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="BANANA_PRICES_FILE"):
        load_prices(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BANANA_PRICES_FILE"):
        load_prices(tmp_path / "nowhere.json")


@pytest.mark.parametrize(
    ("micros", "shown"),
    [(0, "$0.00"), (33_600, "$0.0336"), (50_000, "$0.05"), (200_000, "$0.20"), (1_234_500_000, "$1,234.50")],
)
def test_dollars_are_shown_to_the_cent_and_below_ten_cents_to_the_hundredth_of_a_cent(
    micros: int, shown: str
) -> None:
    assert dollars(micros) == shown
