"""What Gemini charges, and what one call cost.

The price table is data: ``bot/prices.json`` (with the date it was last checked against Google's pricing
page), or the file named by ``BANANA_PRICES_FILE``, which replaces it whole without a release. Money is
whole micro-dollars (``int``): sums stay exact, and a price per million tokens is a price in micro-dollars
per token.

A call is priced from its ``usageMetadata`` by the ``modelVersion`` that answered (Google bills deprecated
IDs that it re-routes at the new model's rates); a model the table does not know is priced as the dearest
one it does, so an unknown model can't slip under a limit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bot.errors import ConfigError

log = logging.getLogger(__name__)

BUILT_IN = Path(__file__).with_name("prices.json")
DEFAULT_SIZE = "1K"  # what the sized models make when no --size is given


@dataclass(frozen=True)
class Usage:
    """Token counts from a response's ``usageMetadata``. ``text`` is the answer's text output (its
    candidates' tokens that are not image tokens); ``thinking`` is billed at the text rate too."""

    prompt: int = 0
    image: int = 0
    text: int = 0
    thinking: int = 0

    @classmethod
    def of(cls, metadata: Mapping[str, Any] | None) -> Usage:
        if not metadata:
            return cls()
        candidates = _count(metadata.get("candidatesTokenCount"))
        image = sum(
            _count(d.get("tokenCount"))
            for d in metadata.get("candidatesTokensDetails") or []
            if isinstance(d, dict) and d.get("modality") == "IMAGE"
        )
        return cls(
            prompt=_count(metadata.get("promptTokenCount")),
            image=image,
            text=max(0, candidates - image),
            thinking=_count(metadata.get("thoughtsTokenCount")),
        )

    @property
    def empty(self) -> bool:
        return not (self.prompt or self.image or self.text or self.thinking)


@dataclass(frozen=True)
class ModelPrice:
    """Dollars per million tokens, and the output tokens one image costs at each size."""

    input: float
    text_output: float
    image_output: float
    image_tokens: Mapping[str, int]

    def tokens_per_image(self, size: str | None) -> int:
        tokens = self.image_tokens
        return tokens.get(size or DEFAULT_SIZE) or tokens.get(DEFAULT_SIZE) or max(tokens.values())

    def cost(self, usage: Usage) -> int:
        """Micro-dollars."""
        return round(
            usage.prompt * self.input
            + (usage.text + usage.thinking) * self.text_output
            + usage.image * self.image_output
        )


@dataclass(frozen=True)
class PriceTable:
    checked: date
    models: Mapping[str, ModelPrice]
    estimate_prompt_tokens: int
    estimate_thinking_tokens: int

    def knows(self, model_id: str) -> bool:
        """Whether ``model_id`` has a price here (exactly, or under an ID that prefixes it)."""
        return any(model_id == known or model_id.startswith(known) for known in self.models)

    def lookup(self, *model_ids: str | None) -> tuple[str, ModelPrice]:
        """The price of the first of ``model_ids`` the table knows (an exact ID, else the longest ID that
        prefixes it: ``gemini-3-pro-image-001``), and the ID it is listed under; the dearest model's when
        it knows none of them."""
        for model_id in model_ids:
            if not model_id:
                continue
            if model_id in self.models:
                return model_id, self.models[model_id]
            prefixes = [known for known in self.models if model_id.startswith(known)]
            if prefixes:
                known = max(prefixes, key=len)
                return known, self.models[known]
        dearest = max(
            self.models, key=lambda m: self.models[m].image_output * max(self.models[m].image_tokens.values())
        )
        log.warning(
            "no price for %s: priced as %s, the dearest known", "/".join(filter(None, model_ids)), dearest
        )
        return dearest, self.models[dearest]

    def image_price(self, model_id: str, size: str | None) -> int:
        """What one image costs at ``size``, without prompt or thinking (micro-dollars)."""
        _, price = self.lookup(model_id)
        return price.cost(Usage(image=price.tokens_per_image(size)))

    def estimate(self, model_id: str, size: str | None, *, images: int = 1) -> int:
        """A conservative cost of ``images`` calls before they are made: each image at ``size``, a long
        prompt with references and a long think (micro-dollars)."""
        _, price = self.lookup(model_id)
        one = Usage(
            prompt=self.estimate_prompt_tokens,
            image=price.tokens_per_image(size),
            thinking=self.estimate_thinking_tokens,
        )
        return images * price.cost(one)


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The built-in table, or the one at ``path``. A table that can't be read is a ``ConfigError``."""
    source = Path(path) if path else BUILT_IN
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
        models = {
            str(model_id): ModelPrice(
                input=_rate(entry["input"]),
                text_output=_rate(entry["text_output"]),
                image_output=_rate(entry["image_output"]),
                image_tokens={str(size): _tokens(n) for size, n in dict(entry["image_tokens"]).items()},
            )
            for model_id, entry in dict(raw["models"]).items()
        }
        if not models or any(not price.image_tokens for price in models.values()):
            raise ValueError("every model needs image_tokens, and there must be a model")
        estimate = dict(raw.get("estimate") or {})
        return PriceTable(
            checked=date.fromisoformat(str(raw["checked"])),
            models=models,
            estimate_prompt_tokens=_tokens(estimate.get("prompt_tokens", 3000)),
            estimate_thinking_tokens=_tokens(estimate.get("thinking_tokens", 1500)),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError([f"BANANA_PRICES_FILE: can't use {source}: {err}"]) from err


def dollars(micros: int) -> str:
    """For people: ``$1,234.50``, ``$0.20``; under ten cents, to the hundredth of a cent (``$0.0336``)."""
    value = micros / 1_000_000
    if abs(micros) >= 100_000 or micros == 0:
        return f"${value:,.2f}"
    text = f"{value:.4f}".rstrip("0")
    return "$" + (text + "0" if len(text.split(".")[1]) < 2 else text)


def _rate(value: Any) -> float:
    rate = float(value)
    if not rate >= 0:
        raise ValueError(f"a price must be a number of dollars, 0 or more (got {value!r})")
    return rate


def _tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a token count must be a whole number, 0 or more (got {value!r})")
    return value


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
