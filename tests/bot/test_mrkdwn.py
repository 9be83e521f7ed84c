from __future__ import annotations

import pytest

from bot.mrkdwn import escape, quote, strip_user, to_plain

NAMES = {"UBOB": "Bob", "UDANA": "Dana Reyes"}


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        ("fish &amp; chips &lt;3 &gt;_&lt;", "fish & chips <3 >_<"),
        ("a card for <@UBOB> from the team", "a card for Bob from the team"),
        ("<@UBOB|bob.s> and <@UDANA>", "Bob and Dana Reyes"),
        ("<@UNKNOWN|carol>", "carol"),
        ("<@UNKNOWN>", "@UNKNOWN"),
        ("in <#C123|design> and <#C456>", "in #design and #channel"),
        ("see <https://example.com/a?b=1&amp;c=2|the menu>", "see the menu"),
        ("see <https://example.com/a?b=1&amp;c=2>", "see https://example.com/a?b=1&c=2"),
        ("mail <mailto:a@b.co|a@b.co>", "mail a@b.co"),
        ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
        ("<!subteam^S123|@design-team> <!date^1392734382^{date}|Feb 18>", "@design-team Feb 18"),
        ("&amp;lt; stays &lt;", "&lt; stays <"),
        ("quotes \"x\" 'y' \\ back\nline", "quotes \"x\" 'y' \\ back\nline"),
    ],
)
def test_slack_markup_becomes_what_a_person_reads(markup: str, plain: str) -> None:
    assert to_plain(markup, user_name=NAMES.get) == plain


def test_escape_makes_every_hostile_form_inert() -> None:
    hostile = "<!channel> <!here> <@U1> <https://evil|click here> & co"
    escaped = escape(hostile)
    assert "<" not in escaped and ">" not in escaped
    assert escaped == "&lt;!channel&gt; &lt;!here&gt; &lt;@U1&gt; &lt;https://evil|click here&gt; &amp; co"
    assert to_plain(escaped) == hostile  # and Slack shows exactly what was written


def test_quote_escapes_and_quotes_every_line() -> None:
    assert quote("one <!here>\ntwo") == "> one &lt;!here&gt;\n> two"


def test_only_the_bots_mention_is_stripped() -> None:
    assert strip_user("<@UBOT> a card for <@UBOB> <@UBOT|banana>", "UBOT") == "a card for <@UBOB>"
