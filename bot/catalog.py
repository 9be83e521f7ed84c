"""The Nano Banana model family: aliases, model IDs and what each model accepts (README, "Models").

Model IDs change faster than code ships, so operators can remap aliases with ``BANANA_MODEL_ALIASES``
and users can name any full ``gemini-…`` model ID; capabilities are then inferred from its family.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.errors import OptionError

STANDARD_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXTRA_RATIOS = ("1:4", "4:1", "1:8", "8:1")


@dataclass(frozen=True)
class Family:
    """What a model family accepts. ``sizes == ()`` means the model has no imageSize option."""

    name: str
    sizes: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    max_reference_images: int


NANO_BANANA = Family("Nano Banana", (), STANDARD_RATIOS, 3)
NANO_BANANA_PRO = Family("Nano Banana Pro", ("1K", "2K", "4K"), STANDARD_RATIOS, 14)
NANO_BANANA_2 = Family("Nano Banana 2", ("512", "1K", "2K", "4K"), STANDARD_RATIOS + EXTRA_RATIOS, 14)
NANO_BANANA_2_1 = Family("Nano Banana 2.1", ("1K", "2K", "4K"), STANDARD_RATIOS + EXTRA_RATIOS, 14)
NANO_BANANA_2_LITE = Family("Nano Banana 2 Lite", ("1K",), STANDARD_RATIOS + EXTRA_RATIOS, 14)
GENERIC = Family("Gemini image model", ("1K", "2K", "4K"), STANDARD_RATIOS + EXTRA_RATIOS, 14)

DEFAULT_MODEL = "nano-banana-2.1"

# alias → default model ID; the names people type map onto these aliases.
DEFAULT_ALIASES: dict[str, str] = {
    "nano-banana": "gemini-2.5-flash-image",
    "nano-banana-pro": "gemini-3-pro-image",
    "nano-banana-2": "gemini-3.1-flash-image",
    "nano-banana-2.1": "gemini-nano-banana-2.1",
    "nano-banana-2-lite": "gemini-3.1-flash-lite-image",
}
NICKNAMES: dict[str, str] = {
    "nb": "nano-banana",
    "flash": "nano-banana",
    "pro": "nano-banana-pro",
    "nb2": "nano-banana-2",
    "nb2.1": "nano-banana-2.1",
    "lite": "nano-banana-2-lite",
}

# Retired or deprecated model IDs → the alias to move to, for the message a 404 gets. Google points 2.5
# Flash Image users to 2 Lite, 3.1 Flash Image to 2.1 (https://ai.google.dev/gemini-api/docs/deprecations).
SUCCESSORS: dict[str, str] = {
    "gemini-2.5-flash-image": "nano-banana-2-lite",
    "gemini-2.5-flash-image-preview": "nano-banana-2-lite",
    "gemini-3-pro-image-preview": "nano-banana-pro",
    "gemini-3.1-flash-image": "nano-banana-2.1",
    "gemini-3.1-flash-image-preview": "nano-banana-2.1",
}

# Most specific prefix first.
_FAMILIES: tuple[tuple[str, Family], ...] = (
    ("gemini-3.1-flash-lite-image", NANO_BANANA_2_LITE),
    ("gemini-3.1-flash-image", NANO_BANANA_2),
    ("gemini-3-pro-image", NANO_BANANA_PRO),
    ("gemini-2.5-flash-image", NANO_BANANA),
    ("gemini-nano-banana-2.1", NANO_BANANA_2_1),
)
MAX_MODEL_ID = 64  # Google's IDs are far shorter; job.model_id and model_label hold 128
_MODEL_ID = re.compile(r"^(?:models/)?(gemini-[a-z0-9][a-z0-9.\-]*)$")


def is_model_id(value: str) -> bool:
    """A full Gemini model ID (``gemini-…``, at most ``MAX_MODEL_ID`` characters)."""
    return len(value) <= MAX_MODEL_ID and _MODEL_ID.match(value.lower()) is not None


def successor(model_id: str) -> str | None:
    """The alias to use instead of ``model_id`` once Gemini says it is gone, if the catalogue knows one."""
    return SUCCESSORS.get(model_id.removeprefix("models/"))


@dataclass(frozen=True)
class Model:
    """A resolved model: the ID sent to Gemini, the name shown to people, and its family."""

    model_id: str
    label: str
    family: Family


def family_of(model_id: str) -> Family:
    for prefix, family in _FAMILIES:
        if model_id.startswith(prefix):
            return family
    return GENERIC


def closest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str | None:
    """The aspect ratio in ``ratios`` nearest to ``width``×``height`` (compared in log space)."""
    if width <= 0 or height <= 0 or not ratios:
        return None

    def distance(ratio: str) -> float:
        w, h = (int(x) for x in ratio.split(":"))
        return abs(math.log((width / height) / (w / h)))

    return min(ratios, key=distance)


class Catalog:
    """Alias table with operator overrides (``BANANA_MODEL_ALIASES``)."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self.aliases = {**DEFAULT_ALIASES, **{k.lower(): v for k, v in (overrides or {}).items()}}

    def resolve(self, name: str) -> Model:
        key = name.strip().lower()
        if len(key) > MAX_MODEL_ID:
            raise OptionError(
                f"That model name is {len(key):,} characters long; model IDs have at most {MAX_MODEL_ID}. "
                "`/banana help` lists the models."
            )
        alias = NICKNAMES.get(key, key)
        if alias in self.aliases:
            model_id = self.aliases[alias]
            return Model(model_id=model_id, label=alias, family=family_of(model_id))
        match = _MODEL_ID.match(key)
        if match:
            model_id = match.group(1)
            return Model(model_id=model_id, label=model_id, family=family_of(model_id))
        names = ", ".join(f"`{a}`" for a in self.aliases)
        raise OptionError(
            f"I don't know the model `{name}`. Use one of {names}, or a full `gemini-…` model ID."
        )

    def describe(self) -> list[str]:
        """One line per alias for the help text."""
        nick = {alias: [n for n, a in NICKNAMES.items() if a == alias] for alias in self.aliases}
        lines = []
        for alias, model_id in self.aliases.items():
            family = family_of(model_id)
            also = f" (or {', '.join(nick[alias])})" if nick[alias] else ""
            sizes = ", ".join(family.sizes) if family.sizes else "fixed ~1 MP"
            lines.append(f"`{alias}`{also} → `{model_id}`, sizes: {sizes}")
        return lines
