"""Parse ``/banana`` text and message text into a prompt and validated options. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.catalog import Catalog, Model
from bot.errors import OptionError
from bot.mrkdwn import to_plain

MAX_PROMPT_CHARS = 4000
_OPTION_NAMES = {"model": "model", "m": "model", "ar": "ar", "aspect": "ar", "size": "size", "s": "size"}
# "--name", "--name=value", or "—name" (some Slack clients turn "--" into a dash). Runs of dashes and
# words like "--OPEN--" don't match, so they stay in the prompt.
_OPTION = re.compile(r"^(?:--|\u2014|\u2013)([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)(?:=(.*))?$", re.DOTALL)
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class Request:
    """What someone asked for, checked against the model before anything is spent."""

    prompt: str
    model: Model
    aspect_ratio: str | None = None
    image_size: str | None = None


def is_help(text: str) -> bool:
    return text.strip().lower() in {"", "help", "-h", "--help", "?"}


def split_options(text: str) -> tuple[str, dict[str, str]]:
    """The prompt exactly as written, minus the ``--option value`` pairs wherever they are, and the values.

    Nothing else is touched: quotes, apostrophes, line breaks, backslashes and runs of punctuation reach
    Gemini as typed. A removed option takes the spaces before it along, so "a --ar 1:1 fox" → "a fox".
    """
    tokens = list(_TOKEN.finditer(text))
    values: dict[str, str] = {}
    cuts: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        match = _OPTION.match(token.group())
        dashed = token.group().startswith("--")
        if match is None or (not dashed and match.group(1).lower() not in _OPTION_NAMES):
            i += 1
            continue
        name, value = match.group(1), match.group(2)
        key = _OPTION_NAMES.get(name.lower())
        if key is None:
            raise OptionError(
                f"I don't know the option `--{name}`. Options are `--model`, `--ar` and `--size`; "
                "try `/banana help`."
            )
        end = token.end()
        if value is None:
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is None or _OPTION.match(following.group()):
                raise OptionError(f"`--{name}` needs a value, for example `--{name} {_EXAMPLE[key]}`.")
            value, end = following.group(), following.end()
            i += 1
        values[key] = to_plain(value).strip().strip("\"'\u201c\u201d\u2018\u2019")
        cuts.append((token.start(), end))
        i += 1
    return _cut(text, cuts), values


def _cut(text: str, cuts: list[tuple[int, int]]) -> str:
    """``text`` without the ``cuts`` spans, each with the spaces before it (or after it, at a line start)."""
    kept: list[str] = []
    pos = 0
    for start, end in cuts:
        begin = start
        while begin > pos and text[begin - 1] in " \t":
            begin -= 1
        if begin == 0 or text[begin - 1] == "\n":
            begin = start
            while end < len(text) and text[end] in " \t":
                end += 1
        kept.append(text[pos:begin])
        pos = end
    kept.append(text[pos:])
    return "".join(kept).strip()


def parse_request(
    text: str,
    *,
    catalog: Catalog,
    default_model: str,
    allow_empty_prompt: bool = False,
    base: Request | None = None,
) -> Request:
    """Split ``text`` into the prompt and ``--option value`` pairs, then validate them together.

    ``base`` carries the conversation's current model and options for thread replies, so "make it blue
    --ar 16:9" keeps the model and changes the ratio.
    """
    prompt, values = split_options(text)
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
