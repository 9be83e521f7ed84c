"""Every sentence a user reads. Errors become text here and nowhere else."""

from __future__ import annotations

from datetime import datetime

from bot.catalog import Catalog, successor
from bot.errors import (
    AttachmentError,
    BananaError,
    ChannelArchived,
    GaveUp,
    GeminiAlarm,
    GeminiAuthError,
    GeminiBadRequest,
    GeminiModelUnavailable,
    GeminiRefusal,
    GeminiUnavailable,
    NotInChannel,
    SlackAuthError,
    SlackError,
    SlackUnavailable,
    UserInputError,
    WorkspaceKeyRefused,
)
from bot.limits import Limit, Tally
from bot.mrkdwn import escape, mention, quote
from bot.prices import Usage, dollars

_REFUSALS = {
    "IMAGE_SAFETY": "Gemini blocked the image because it may break Google's safety rules",
    "IMAGE_PROHIBITED_CONTENT": "Gemini won't make that image: it may show prohibited content",
    "PROHIBITED_CONTENT": "Gemini won't make that: the request may involve prohibited content",
    "SAFETY": "Gemini blocked this request for safety reasons",
    "BLOCKLIST": "Gemini blocked this request because it contains blocked terms",
    "SPII": "Gemini blocked this request because it may contain sensitive personal information",
    "RECITATION": "Gemini stopped because the result was too close to existing copyrighted material",
    "IMAGE_RECITATION": "Gemini stopped because the image was too close to existing copyrighted material",
    "NO_IMAGE": "Gemini answered without making an image",
    "IMAGE_OTHER": "Gemini couldn't make an image this time",
    "OTHER": "Gemini blocked or stopped this request without giving a reason",
    "EMPTY": "Gemini sent back an empty answer",
    "MISSING_THOUGHT_SIGNATURE": "Gemini rejected the conversation history",
    "CONTINUATION": "Gemini's answer was cut short (it hit its limit for one request) before the image "
    "was finished",
}


NO_IMAGES_TO_EDIT = (
    "That message has no images for me to edit. Use *Edit with Nano Banana* on a message with an image "
    "attached, or start from scratch with `/banana <prompt>`."
)


NOTHING_TO_CHANGE = "Tell me what to change, e.g. `make it blue`."
NOT_UNDERSTOOD = "Slack sent me something I couldn't read, so nothing was queued. Please try again."
MODAL_ERROR_CHARS = 150  # Slack shows at most this much under a modal's input


def for_modal(err: BaseException) -> str:
    """A problem with what was typed into a modal, shown under its input: plain text, not mrkdwn."""
    return under_field(
        str(err) if isinstance(err, UserInputError) else "Something went wrong on my side; please try again."
    )


def under_field(text: str) -> str:
    """``text`` cut to what Slack shows under a modal's input."""
    return text if len(text) <= MODAL_ERROR_CHARS else text[: MODAL_ERROR_CHARS - 1] + "…"


def usage(catalog: Catalog, *, default_model: str) -> str:
    models = "\n".join(f"• {line}" for line in catalog.describe())
    return (
        "*Nano Banana* makes and edits images with Google's Gemini image models.\n\n"
        "*Start:* `/banana a clean studio photo of a ceramic mug --ar 4:5`\n"
        "I post your request in the channel and the image lands in its thread. You can also mention me "
        "(`@banana a cozy cabin at dusk`, with images attached as references) or DM me.\n\n"
        "*Refine:* reply in the thread — `make it matte blue`, `same but from above`. Anyone in the thread "
        "can, and each reply edits the latest image.\n\n"
        "*Options* (anywhere in the prompt):\n"
        f"• `--model` — an alias or a full `gemini-…` model ID (default `{default_model}`)\n"
        "• `--ar` — aspect ratio, e.g. `1:1`, `4:5`, `16:9`, `9:16`, `21:9`\n"
        "• `--size` — `1K`, `2K` or `4K` where the model has it (`512` on nano-banana-2)\n\n"
        "*Usage:* `/banana usage` shows your images and spend today and this month, and what is left under "
        "the limits. Admins: `/banana key` sets the workspace's own Gemini key (`/banana key remove`).\n\n"
        f"*Models:*\n{models}"
    )


def root_message(*, user_id: str, prompt: str, summary: str) -> str:
    return (
        f"{mention(user_id)} asked for: {escape(prompt)}\n"
        f"_{escape(summary)}_ · replies in this thread refine the image"
    )


def result_comment(*, user_id: str, text: str | None) -> str:
    """The comment under an uploaded image: the requester, and what Gemini said with it."""
    return f"{mention(user_id)} {escape(text.strip())}" if text and text.strip() else mention(user_id)


def file_title(prompt: str | None) -> str:
    """The uploaded image's title (plain text, not mrkdwn): the prompt, shortened."""
    title = prompt or "Nano Banana image"
    return title if len(title) <= 120 else title[:117] + "…"


def for_requester(user_id: str, text: str) -> str:
    """A message in the thread addressed to the person who asked."""
    return f"{mention(user_id)} {text}"


def over_limit(
    limit: Limit, *, used: Tally, asked: Tally, resets_at: str, resets_in: str, admins: tuple[str, ...]
) -> str:
    """A request refused before anything was queued or spent: which limit, when it resets, who to ask."""
    period = "today" if limit.period == "day" else "this month"
    ask = (
        "ask " + " or ".join(mention(a) for a in admins)
        if admins
        else "ask whoever runs this bot (the limits are its `BANANA_LIMITS` setting)"
    )
    this = f"about {dollars(asked.micros)}" if limit.money else limit.show(asked.images)
    return (
        f"🍌 Not queued, nothing spent: this request ({this}) would go over "
        f"{limit.whose()} limit of {limit.show(limit.amount)} a {limit.period} (`{limit}`); "
        f"{limit.show(limit.measure(used))} used {period}. It resets {resets_at} UTC, in {resets_in}. "
        f"To raise it, {ask}."
    )


KEY_NEEDS_OAUTH = (
    "`/banana key` is for the app installed in many workspaces: here every image is paid with the "
    "operator's `GEMINI_API_KEY`."
)
KEY_ADMINS_ONLY = (
    "Only admins can set the workspace's Gemini key: the people in the bot's `BANANA_ADMINS` setting and "
    "the workspace's owners and admins."
)
KEY_EMPTY = "Paste the key: it starts with AIza (https://aistudio.google.com/apikey)."
KEY_SAVED = (
    "🔑 Saved. From now on this workspace's images are paid with its own Gemini key. It is stored "
    "encrypted and never shown again; `/banana key remove` goes back to the operator's key."
)
KEY_REMOVED = (
    "🔑 The workspace's own Gemini key is removed: its images are paid with the operator's key again."
)
KEY_NONE = "This workspace has no Gemini key of its own: its images are paid with the operator's key."


def key_status(set_by: str | None, set_at: datetime | None) -> str:
    """What ``/banana key`` says about the key in use (never the key)."""
    if set_by is None or set_at is None:
        return KEY_NONE
    return (
        f"This workspace pays with its own Gemini key, saved by {mention(set_by)} on {set_at:%Y-%m-%d}. "
        "A key saved here replaces it."
    )


ADMINS_ONLY = (
    "Only admins can get the workspace's usage: the people in the bot's `BANANA_ADMINS` setting and the "
    "workspace's owners and admins."
)


def counted(n: int, noun: str) -> str:
    """``1 image``, ``3 images``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def usage_report(today: Tally, month: Tally, standings: list[tuple[Limit, Tally, str]]) -> str:
    """``/banana usage``: your images and spend, and what is left under each limit that applies to you."""

    def tally(t: Tally) -> str:
        return f"{counted(t.images, 'image')}, {dollars(t.micros)}"

    lines = ["*Your Nano Banana usage* (days and months in UTC)"]
    lines.append(f"• Today: {tally(today)}")
    lines.append(f"• This month: {tally(month)}")
    if standings:
        lines.append("*What is left under the limits that apply to you here*")
        for limit, used, resets_in in standings:
            left = max(0, limit.amount - limit.measure(used))
            lines.append(
                f"• {limit.whose()} {limit.show(limit.amount)} a {limit.period} (`{limit}`): "
                f"{limit.show(left)} left, resets in {resets_in}"
            )
        lines.append("_Requests still queued count at their estimate until they are made._")
    else:
        lines.append("No spending limits are set.")
    return "\n".join(lines)


def workspace_report(
    month: str,
    *,
    total: Tally,
    people: list[tuple[str, Tally]],
    channels: list[tuple[str, Tally]],
    models: list[tuple[str, Tally]],
) -> str:
    """The admin's part of ``/banana usage``: the workspace's month, and who, where and what cost most."""

    def row(name: str, t: Tally) -> str:
        return f"{name} {dollars(t.micros)} ({counted(t.images, 'image')})"

    lines = [f"*This workspace in {month}*: {total.images} images, {dollars(total.micros)}"]
    if people:
        lines.append("Top people: " + " · ".join(row(mention(u), t) for u, t in people))
        lines.append("Top channels: " + " · ".join(row(f"<#{c}>", t) for c, t in channels))
        lines.append("Models: " + " · ".join(row(f"`{escape(m)}`", t) for m, t in models))
    lines.append("`/banana usage csv` sends you the month's ledger as a CSV file in a DM.")
    return "\n".join(lines)


def csv_not_sent(error: str) -> str:
    hint = (
        " The app needs the `im:write` scope: apply the new manifest and reinstall it."
        if error == "missing_scope"
        else ""
    )
    return f"I couldn't send you the CSV: Slack answered `{escape(error)}`.{hint}"


def csv_comment(month: str, rows: int) -> str:
    return f"🍌 The ledger for {month}: {counted(rows, 'Gemini call')}, one line each."


RESULT_GONE = (
    "That result is no longer here: its request was deleted (or the button isn't from this workspace)."
)


def result_origin(kind: str, *, parent: int | None, source: int | None) -> str | None:
    """Where a result came from, on its card: the result it refines, or the button that made it."""
    if kind == "regenerate" and source:
        return f"regenerated from result {source}"
    if kind == "variation" and source:
        return f"a variation of result {source}"
    if kind == "finalize" and source:
        return f"result {source} in Pro"
    return f"from result {parent}" if parent else None


ONLY_REQUESTER_DELETES = "Only {requester} or a workspace admin can delete this result."
RESULT_DELETED = "🗑️ Deleted: the image, its card and the stored copy are gone."


def result_not_deleted(error: str) -> str:
    return (
        f"⚠️ The stored copy is deleted, but Slack answered `{escape(error)}` when I tried to remove the "
        "image or its card from the thread. Try again in a moment."
    )


def result_settings(
    *,
    model_id: str,
    model_version: str | None,
    aspect_ratio: str | None,
    image_size: str | None,
    sent_turns: int | None,
    sent_images: int | None,
    usage: Usage | None,
    cost_micros: int | None,
    calls: int,
) -> str:
    """ "View settings" on a result card: the exact request, privately."""
    answered = (
        f" (answered by `{escape(model_version)}`)" if model_version and model_version != model_id else ""
    )
    lines = [
        "*The request behind this result*",
        f"• Model: `{escape(model_id)}`{answered}",
        f"• Aspect ratio: {escape(aspect_ratio) if aspect_ratio else 'chosen by Gemini'}"
        f" · Size: {escape(image_size) if image_size else 'the model’s default'}",
    ]
    if sent_turns is not None:
        images = f", {counted(sent_images, 'image')} among them" if sent_images else ""
        lines.append(f"• Sent: {counted(sent_turns, 'turn')} of the thread{images}")
    if usage is not None:
        out = f"{usage.image} image, {usage.text} text and {usage.thinking} thinking"
        lines.append(f"• Tokens: {usage.prompt} in; {out} out")
    if cost_micros is not None:
        tries = f" over {calls} calls" if calls > 1 else ""
        lines.append(f"• Cost: {dollars(cost_micros)}{tries}")
    return "\n".join(lines)


def queued(position: int) -> str:
    if position <= 0:
        return "🍌 Got it — working on your image."
    ahead = "1 request is" if position == 1 else f"{position} requests are"
    return f"🍌 Got it — {ahead} ahead of yours."


def working(*, editing: bool, summary: str) -> str:
    verb = "Editing the image" if editing else "Making your image"
    return f"🍌 {verb} with _{escape(summary)}_… this usually takes 10–40 seconds."


def retrying(reason: str, seconds: float) -> str:
    return f"⏳ {escape(reason[:1].upper() + reason[1:])}; trying again in {seconds:.0f} s…"


def not_in_channel(channel_id: str) -> str:
    return (
        f"I can't post in <#{channel_id}> because I'm not a member of it. Invite me with `/invite @banana` "
        "and run the command again — or DM me instead. Nothing was generated."
    )


def slack_trouble(err: SlackError) -> str:
    """Why a job is waiting for Slack, for the status message (``retrying``)."""
    if err.code in ("ratelimited", "rate_limited", "http_429"):
        return "Slack is rate limiting me"
    if err.code == "file_not_shared":
        return "Slack hasn't shown the image in this thread yet"
    if err.code in ("connection_failed", "upload_failed"):
        return "I couldn't reach Slack"
    return f"Slack is having trouble (`{err.code}`)"


def slack_failure(err: SlackError, *, generated: bool, tries: int = 1) -> str:
    """What the person reads when Slack stopped a job for good. ``generated``: Gemini's image exists (it
    stays stored with the failed job) but could not be posted."""
    after = f" after {tries} tries" if tries > 1 else ""
    if isinstance(err, NotInChannel):
        if generated:
            return (
                "⚠️ I made your image but can't post it: I'm not a member of that channel any more. "
                "Invite me with `/invite @banana` and ask again."
            )
        return (
            "⚠️ I'm not a member of that channel, so nothing was generated. Invite me with "
            "`/invite @banana` and try again."
        )
    if isinstance(err, ChannelArchived):
        if generated:
            return "⚠️ I made your image but can't post it: the channel was archived."
        return "⚠️ The channel is archived, so I can't post there. Nothing was generated."
    if isinstance(err, SlackAuthError):
        what = "I made your image but can't post it" if generated else "Nothing was generated"
        return (
            f"⚠️ Slack rejected the bot's token (`{err.code}`). {what}; an admin needs to reinstall the app."
        )
    if isinstance(err, SlackUnavailable):
        if err.code == "file_not_shared":
            return (
                f"⚠️ I made your image and uploaded it, but Slack never showed it in this thread{after}. "
                "Please try again in a few minutes."
            )
        if generated:
            return (
                f"⚠️ I made your image but couldn't post it: Slack kept answering `{err.code}`{after}. "
                "Please try again in a few minutes."
            )
        return (
            f"⚠️ Slack kept answering `{err.code}`{after}, so nothing was generated. "
            "Please try again in a few minutes."
        )
    if generated:
        return f"⚠️ I made your image but Slack wouldn't take it (`{err.code}`)."
    return f"⚠️ Slack refused my message (`{err.code}`), so nothing was generated."


def for_error(err: BaseException) -> str:
    """The one place an exception becomes a sentence for the person who asked. Whatever came from a
    person or from Gemini is escaped here."""
    if isinstance(err, AttachmentError):
        return f"⚠️ I couldn't use an attachment: {escape(str(err).rstrip('.'))}. Nothing was generated."
    if isinstance(err, UserInputError):
        return f"⚠️ {escape(str(err))}"
    if isinstance(err, GeminiAlarm):
        return (
            f"🚨 Gemini refused this request for a reason only an admin can deal with (`{err.reason}`: "
            f"{_ALARMS.get(err.reason, 'a policy block on the account')}). Nothing was generated; "
            "please tell the bot's admins. Trying again won't help until they have."
        )
    if isinstance(err, GeminiRefusal):
        if err.reason in ("STOP", "FINISH_REASON_UNSPECIFIED"):  # a normal finish, just without an image
            why = "Gemini answered with text instead of an image" if err.text else _REFUSALS["NO_IMAGE"]
        else:
            why = _REFUSALS.get(err.reason, f"Gemini didn't make an image ({escape(err.reason)})")
        advice = (
            "Try a simpler prompt or fewer reference images."
            if err.reason == "CONTINUATION"
            else "Try rephrasing the prompt."
        )
        extra = f"\n{quote(err.text[:500])}" if err.text else ""
        return f"🚫 {why}. {advice}{extra}"
    if isinstance(err, GeminiModelUnavailable):
        return model_unavailable(err)
    if isinstance(err, WorkspaceKeyRefused):
        return (
            "⚠️ Gemini rejected this workspace's own API key. An admin can save a new one with `/banana key`, "
            "or go back to the operator's with `/banana key remove`. Nothing was charged."
        )
    if isinstance(err, GeminiAuthError):
        return (
            "⚠️ Gemini rejected the bot's API key. An admin needs to check GEMINI_API_KEY. "
            "Nothing was charged."
        )
    if isinstance(err, GeminiBadRequest):
        return f"⚠️ Gemini couldn't accept this request: {escape(str(err)[:300])}"
    if isinstance(err, GeminiUnavailable):
        if err.rate_limited:
            wait = "in a minute"
            if err.retry_after and err.retry_after > 90:
                minutes = round(err.retry_after / 60)
                wait = f"in about {minutes} minute{'s' if minutes != 1 else ''} (Gemini's quota resets then)"
            return f"⏳ Gemini is rate limiting us right now, so nothing was generated. Try again {wait}."
        if err.timed_out:
            return (
                "⏳ Gemini didn't answer in time. I didn't send the request again, so you aren't charged "
                "twice if it was still working on it; please try again (a smaller `--size` is quicker)."
            )
        return (
            f"⏳ Gemini is having trouble right now — {err}. Nothing was generated; "
            "please try again in a few minutes."
        )
    if isinstance(err, GaveUp):
        return (
            f"💥 This request failed {err.attempts} times in a row, so I stopped trying. "
            "Please try again; if it keeps happening, tell the bot's admins."
        )
    if isinstance(err, NotInChannel):
        return "⚠️ I'm not a member of this channel. Invite me with `/invite @banana` and try again."
    if isinstance(err, ChannelArchived):
        return "⚠️ This channel is archived, so I can't post the image here."
    if isinstance(err, SlackAuthError):
        return "⚠️ Slack rejected the bot's token. An admin needs to reinstall the app."
    if isinstance(err, SlackError):
        return f"⚠️ Slack wouldn't take the image ({err.code}). It is saved; please try again shortly."
    if isinstance(err, BananaError):
        return f"⚠️ {escape(str(err))}"
    return "💥 Something went wrong on my side. The error was logged; please try again."


_ALARMS = {
    "PUP_LIMITED_DISABLED": "Google has limited the account behind the bot's API key for Prohibited Use "
    "Policy violations",
    "ESCALATION": "an escalation rule on Google's side filtered it",
}


def model_unavailable(err: GeminiModelUnavailable) -> str:
    """A 404: the model is gone. Names its successor when the catalogue knows one, and how to ask for it."""
    retired = "no longer available" in err.message.lower()
    said = "Gemini says it is no longer available" if retired else "Gemini says it doesn't exist"
    text = f"⚠️ The model `{escape(err.model)}` can't be used: {said}, so nothing was generated."
    alias = successor(err.model)
    if alias is None:
        return (
            f"{text} Pick another with `--model` (`/banana help` lists them), or ask an admin to set "
            "BANANA_DEFAULT_MODEL."
        )
    return (
        f"{text} Its successor is *{alias}*: add `--model {alias}` to your prompt (in a thread, reply "
        f"`--model {alias}` with your instruction and the thread keeps it). If it is the bot's default, an "
        f"admin should set `BANANA_DEFAULT_MODEL={alias}`."
    )
