from __future__ import annotations

import pytest

from bot.catalog import Catalog
from bot.errors import OptionError
from bot.options import MAX_PROMPT_CHARS, Request, is_help, parse_request, split_options

CATALOG = Catalog()


def parse(text: str, **kwargs: object) -> Request:
    return parse_request(text, catalog=CATALOG, default_model="nano-banana-2", **kwargs)  # type: ignore[arg-type]


def test_prompt_and_options_are_split() -> None:
    request = parse("a clean studio product photo of a ceramic coffee mug --ar 4:5")
    assert request.prompt == "a clean studio product photo of a ceramic coffee mug"
    assert request.aspect_ratio == "4:5"
    assert request.model.model_id == "gemini-3.1-flash-image"
    assert request.image_size is None


def test_model_alias_nickname_and_full_id() -> None:
    assert parse("x --model pro").model.model_id == "gemini-3-pro-image"
    assert parse("x --model=nb").model.model_id == "gemini-2.5-flash-image"
    full = parse("x --model gemini-3-pro-image-2099")
    assert full.model.model_id == "gemini-3-pro-image-2099"
    assert full.model.family.sizes == ("1K", "2K", "4K")


def test_size_is_normalised_to_uppercase_k() -> None:
    assert parse("x --size 2k").image_size == "2K"
    assert parse("x --size 512").image_size == "512"


def test_em_dash_from_slack_clients_counts_as_option() -> None:
    assert parse("a fox \u2014ar 16:9").aspect_ratio == "16:9"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "Tell me what to make"),
        ("   --ar 1:1", "Tell me what to make"),
        ("x --foo 1", "`--foo`"),
        ("x --ar 7:3", "Aspect ratios it has: 1:1"),
        ("x --model pro --ar 1:8", "can't make `1:8`"),
        ("x --model pro --size 512", "Sizes it has: 1K, 2K, 4K"),
        ("x --model nano-banana --size 2K", "one fixed size"),
        ("x --model dall-e", "I don't know the model `dall-e`"),
        ("x --ar", "`--ar` needs a value"),
    ],
)
def test_bad_input_says_what_is_allowed(text: str, needle: str) -> None:
    with pytest.raises(OptionError) as info:
        parse(text)
    assert needle in str(info.value)


def test_huge_prompt_is_refused_with_the_limit() -> None:
    with pytest.raises(OptionError, match=f"{MAX_PROMPT_CHARS:,}"):
        parse("a" * 20_000)


def test_reply_keeps_the_conversation_options_unless_changed() -> None:
    base = parse("mug --model pro --ar 4:5 --size 2K")
    reply = parse("make it blue", base=base)
    assert (reply.model.model_id, reply.aspect_ratio, reply.image_size) == ("gemini-3-pro-image", "4:5", "2K")
    switched = parse("again --model nano-banana", base=base)
    assert (switched.aspect_ratio, switched.image_size) == ("4:5", None)


def test_help() -> None:
    assert is_help("") and is_help(" help ") and not is_help("a helpful robot")


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ('a poster with the headline "GRAND OPENING" --ar 4:5', 'a poster with the headline "GRAND OPENING"'),
        ("--ar 4:5 it's a 'quoted' word", "it's a 'quoted' word"),
        ("line one --size 2K\nline two\n\nline four", "line one\nline two\n\nline four"),
        ("a path C:\\dir\\file --model pro and \\n", "a path C:\\dir\\file and \\n"),
        ("wow!!! ?!?! ... --- -- — –", "wow!!! ?!?! ... --- -- — –"),
        ('an unbalanced "quote --ar 1:1', 'an unbalanced "quote'),
        ("a sign reading --OPEN-- now", "a sign reading --OPEN-- now"),
        ("a cat \u2014 sleeping \u2014ar 16:9", "a cat \u2014 sleeping"),
        ("two  spaces\tand a tab", "two  spaces\tand a tab"),
    ],
)
def test_options_are_removed_and_everything_else_passes_through(text: str, prompt: str) -> None:
    assert split_options(text)[0] == prompt


def test_option_values_are_read_as_a_person_reads_them() -> None:
    assert split_options('x --ar "16:9" --model=pro')[1] == {"ar": "16:9", "model": "pro"}
    with pytest.raises(OptionError, match="`<!channel>`"):
        parse("x --ar &lt;!channel&gt;")


def test_operator_can_remap_aliases() -> None:
    catalog = Catalog({"nano-banana-2": "gemini-3.2-flash-image"})
    assert catalog.resolve("nb2").model_id == "gemini-3.2-flash-image"


def test_closest_ratio() -> None:
    from bot.catalog import STANDARD_RATIOS, closest_ratio

    assert closest_ratio(1376, 768, STANDARD_RATIOS) == "16:9"
    assert closest_ratio(928, 1152, STANDARD_RATIOS) == "4:5"
    assert closest_ratio(640, 480, STANDARD_RATIOS) == "4:3"
    assert closest_ratio(0, 10, STANDARD_RATIOS) is None
