"""Parse ``/banana`` text and message text into a prompt and validated options. Pure: no I/O."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from bot.catalog import Catalog, Model
from bot.errors import OptionError

MAX_PROMPT_CHARS = 4000
_OPTION_NAMES = {"model": "model", "m": "model", "ar": "ar", "aspect": "ar", "size": "size", "s": "size"}
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Request:
    """What someone asked for, checked against the model before anything is spent."""

    prompt: str
    model: Model
    aspect_ratio: str | None = None
    image_size: str | None = None


def strip_mentions(text: str) -> str:
    return _MENTION.sub("", text).strip()


def is_help(text: str) -> bool:
    return text.strip().lower() in {"", "help", "-h", "--help", "?"}


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text, posix=True)
    except ValueError:  # an unbalanced quote in a prompt is fine: fall back to whitespace
        return text.split()


def parse_request(
    text: str,
    *,
    catalog: Catalog,
    default_model: str,
    allow_empty_prompt: bool = False,
    base: Request | None = None,
) -> Request:
    """Split ``text`` into prompt words and ``--option value`` pairs, then validate them together.

    ``base`` carries the conversation's current model and options for thread replies, so "make it blue
    --ar 16:9" keeps the model and changes the ratio.
    """
    # Slack turns "--" into an em dash on some clients ("—ar 16:9"); accept it.
    words = _split(text.replace("\u2014", "--").replace("\u2013", "--"))
    prompt_words: list[str] = []
    values: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            key = _OPTION_NAMES.get(name.lower())
            if key is None:
                raise OptionError(
                    f"I don't know the option `--{name}`. Options are `--model`, `--ar` and `--size`; "
                    "try `/banana help`."
                )
            if not eq:
                if i + 1 >= len(words) or words[i + 1].startswith("--"):
                    raise OptionError(f"`--{name}` needs a value, for example `--{name} {_EXAMPLE[key]}`.")
                value = words[i + 1]
                i += 1
            values[key] = value.strip()
            i += 1
            continue
        prompt_words.append(word)
        i += 1

    prompt = " ".join(prompt_words).strip()
    if not prompt and not allow_empty_prompt:
        raise OptionError(
            "Tell me what to make, for example `/banana a ceramic mug on a marble counter --ar 4:5`."
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise OptionError(
            f"That prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}. "
            "Shorten it and try again."
        )

    if "model" in values:
        model = catalog.resolve(values["model"])
    elif base is not None:
        model = base.model
    else:
        model = catalog.resolve(default_model)
    aspect_ratio = values.get("ar", base.aspect_ratio if base else None)
    image_size = values.get("size", base.image_size if base else None)
    if "model" in values and base is not None:
        # A new model may not have the old options; keep only what it accepts.
        aspect_ratio = values.get("ar") or (
            aspect_ratio if aspect_ratio in model.family.aspect_ratios else None
        )
        image_size = values.get("size") or (image_size if image_size in model.family.sizes else None)
    return Request(
        prompt=prompt,
        model=model,
        aspect_ratio=_check_ratio(aspect_ratio, model),
        image_size=_check_size(image_size, model),
    )


_EXAMPLE = {"model": "pro", "ar": "16:9", "size": "2K"}


def _check_ratio(value: str | None, model: Model) -> str | None:
    if value is None:
        return None
    ratio = value.replace("x", ":").replace("/", ":")
    if ratio not in model.family.aspect_ratios:
        allowed = ", ".join(model.family.aspect_ratios)
        raise OptionError(f"`{model.label}` can't make `{value}` images. Aspect ratios it has: {allowed}.")
    return ratio


def _check_size(value: str | None, model: Model) -> str | None:
    if value is None:
        return None
    if not model.family.sizes:
        raise OptionError(
            f"`{model.label}` has one fixed size (about 1 megapixel), so `--size` can't be used with it. "
            "Try `--model pro` or `--model nano-banana-2` for 2K or 4K."
        )
    size = value.upper()
    if size not in model.family.sizes:
        allowed = ", ".join(model.family.sizes)
        raise OptionError(f"`{model.label}` can't make `{value}` images. Sizes it has: {allowed}.")
    return size
