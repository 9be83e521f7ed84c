"""Slack's message markup, both ways. Pure: no I/O.

In: the text Slack delivers (``&amp;``, ``<@U123>``, ``<#C123|general>``, ``<https://x|label>``…) becomes
the text a person reads in Slack, which is what Gemini should get.

Out: every text that came from a person or from Gemini goes through ``escape`` before the bot posts it, so
``<!channel>``, ``<@U…>`` or ``<https://evil|click here>`` show as the characters typed and never ping or
hide a link. Only the markup the bot writes itself (``mention``, ``channel_link``) is live.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# One pass over Slack's markup: an angle-bracket entity, or one of the three escaped characters.
_MARKUP = re.compile(r"<([^<>]*)>|&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_USER = re.compile(r"^@([UW][A-Z0-9]+)(?:\|(.*))?$", re.DOTALL)
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}

UserName = Callable[[str], str | None]


def escape(text: str) -> str:
    """``text`` as inert mrkdwn: shown exactly as written, never a mention, broadcast or masked link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(text: str) -> str:
    """``text`` escaped and shown as a block quote, every line of it."""
    return "\n".join(f"> {line}" for line in escape(text).splitlines() or [""])


def mention(user_id: str) -> str:
    """A live mention of a user, for the bot's own words (the requester)."""
    return f"<@{user_id}>"


def channel_link(channel_id: str) -> str:
    return f"<#{channel_id}>"


def strip_user(markup: str, user_id: str) -> str:
    """``markup`` without mentions of ``user_id`` (the bot's own, which is an address, not content)."""
    return re.sub(rf"<@{re.escape(user_id)}(?:\|[^<>]*)?>", "", markup).strip()


def to_plain(markup: str, *, user_name: UserName = lambda _user_id: None) -> str:
    """The text a person reads for Slack-delivered ``markup``.

    - ``&amp;`` ``&lt;`` ``&gt;`` → ``&`` ``<`` ``>``
    - ``<@U123>`` → the person's display name from ``user_name`` (else the label Slack sent, else ``@U123``)
    - ``<#C123|general>`` → ``#general``; without a label (Slack leaves it out for some private channels)
      ``#channel``: the bot does not look channel names up (that would need another scope)
    - ``<https://x|label>`` → ``label``; ``<https://x>`` → ``https://x``; ``mailto:`` likewise
    - ``<!here>`` → ``@here``, ``<!subteam^S1|@design>`` → ``@design``, ``<!date^…|fallback>`` → ``fallback``
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(2):
            return _ENTITIES[match.group(2)]
        inner = match.group(1)
        target, _, label = inner.partition("|")
        label = _unescape(label)
        user = _USER.match(inner)
        if user:
            return user_name(user.group(1)) or (label.lstrip("@") if label else f"@{user.group(1)}")
        if target.startswith("#"):
            return f"#{label or 'channel'}"
        if target.startswith("!"):
            word = target[1:].split("^", 1)[0]
            return label or _SPECIAL.get(word, f"@{word}")
        return label or _unescape(target)

    return _MARKUP.sub(replace, markup)


def names_people(markup: str) -> bool:
    """Whether reading ``markup`` needs names from Slack: it mentions a person (``<@U123>``)."""
    return any(_USER.match(m.group(1)) for m in _MARKUP.finditer(markup) if m.group(1) is not None)


def _unescape(text: str) -> str:
    return re.sub(r"&(amp|lt|gt);", lambda m: _ENTITIES[m.group(1)], text)
