"""The private answer to /banana promises nothing about where the image will go."""

from __future__ import annotations

from bot.messages import queued


def test_queued_is_neutral_about_where_the_image_goes() -> None:
    assert queued(0) == "🍌 Got it — working on your image."
    assert queued(1) == "🍌 Got it — 1 request is ahead of yours."
    assert queued(3) == "🍌 Got it — 3 requests are ahead of yours."
    assert all("thread" not in queued(n) for n in range(3))
