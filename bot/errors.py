"""The one exception hierarchy of the bot.

    BananaError
    ├── ConfigError                 missing or invalid configuration (stops the program)
    ├── StartupError                the program can't start (the database, the port): one line
    ├── GaveUp                      a job that kept failing is stopped, not retried forever
    ├── Interrupted                 the process is stopping: the job goes back to the queue, untold
    ├── UserInputError              the request itself is wrong; nothing is spent
    │   ├── OptionError             unknown option, bad --ar/--size/--model, empty or huge prompt
    │   └── AttachmentError         an attached file that can't be used as a reference image
    ├── GeminiError                 Gemini did not give us an image
    │   ├── GeminiRefusal           a safety block or an answer without an image (never retried)
    │   │   └── GeminiAlarm         PUP_LIMITED_DISABLED / ESCALATION: the key's account needs an admin
    │   ├── GeminiModelUnavailable  404: the model ID does not exist (any more)
    │   ├── GeminiAuthError         the API key is invalid or lacks permission
    │   │   └── WorkspaceKeyRefused the workspace's own key (``/banana key``), not the operator's
    │   ├── GeminiBadRequest        any other 400
    │   └── GeminiUnavailable       429/5xx/timeouts/garbage after the retry budget was spent
    └── SlackError                  a Slack Web API call failed
        ├── NotInChannel            not_in_channel / channel_not_found
        ├── ChannelArchived         is_archived
        ├── SlackAuthError          invalid_auth, token_revoked, account_inactive, …
        ├── SlackDeliveryFailed     anything else Slack refused for good
        └── SlackUnavailable        transient: rate limited after the client's retries, 5xx, connection
                                    errors, a file Slack accepted but never shared (retried later)

Every catch in the worker loop and in the Bolt error handler turns one of these into a sentence from
``bot.messages``; nothing else decides what a user reads.
"""

from __future__ import annotations


class BananaError(Exception):
    """Base class for every error the bot raises on purpose."""


class ConfigError(BananaError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class StartupError(BananaError):
    """The program can't start. ``str(err)`` is one line for the operator: what, the cause, a hint."""


class UserInputError(BananaError):
    """The request can't be run as given. ``str(err)`` is written for the person who asked."""


class OptionError(UserInputError):
    pass


class AttachmentError(UserInputError):
    pass


class ResultGone(UserInputError):
    """The result a button's job works from was deleted before the job ran."""

    def __init__(self) -> None:
        super().__init__("The result this was made from has been deleted, so nothing was generated.")


class GeminiError(BananaError):
    pass


class GeminiRefusal(GeminiError):
    """Gemini answered 200 but gave no image: a safety block, a recitation stop or a text-only answer."""

    def __init__(self, reason: str, *, detail: str | None = None, text: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.text = text


class GeminiAlarm(GeminiRefusal):
    """A refusal aimed at the operator, not the prompt: the API key's account is limited for Prohibited Use
    Policy violations (``PUP_LIMITED_DISABLED``) or an escalation rule filtered the request
    (``ESCALATION``). Logged as an ERROR, never retried; the person is told an admin must act."""

    ALARMS = ("PUP_LIMITED_DISABLED", "ESCALATION")


class GeminiModelUnavailable(GeminiError):
    """404: the model ID does not exist, or "is no longer available" (shut down)."""

    def __init__(self, model: str, message: str = "") -> None:
        super().__init__(model)
        self.model = model
        self.message = message


class GeminiAuthError(GeminiError):
    pass


class WorkspaceKeyRefused(GeminiAuthError):
    """Gemini refused the workspace's own key (``/banana key``): its admins can mend it, not the operator."""


class GeminiBadRequest(GeminiError):
    pass


class GeminiUnavailable(GeminiError):
    """Transient trouble that outlived the retry budget (rate limits, overload, timeouts, bad bodies)."""

    def __init__(
        self,
        message: str,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.timed_out = timed_out


class Interrupted(BananaError):
    """The process is stopping (SIGTERM) before the job reached Gemini, or while it waited to try Gemini
    again: nothing was bought, so the job goes back to the queue for another worker, and nobody is told."""


class GaveUp(BananaError):
    """A job that kept failing (crashes, lapsed leases) is stopped instead of being retried forever."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts")
        self.attempts = attempts


class SlackError(BananaError):
    def __init__(self, code: str, *, method: str = "") -> None:
        super().__init__(f"{method}: {code}" if method else code)
        self.code = code
        self.method = method


class NotInChannel(SlackError):
    pass


class ChannelArchived(SlackError):
    pass


class SlackAuthError(SlackError):
    pass


class SlackDeliveryFailed(SlackError):
    pass


class SlackUnavailable(SlackError):
    """Slack trouble that may pass: the job is released and tried again later (``BANANA_SLACK_RETRY_DELAYS``).

    ``settled``: Slack answered, so the call certainly had no effect (a 429, an ``ok: false``); a timeout,
    a dropped connection or a 5xx leaves it open whether the call went through.
    """

    def __init__(
        self, code: str, *, method: str = "", retry_after: float | None = None, settled: bool = False
    ) -> None:
        super().__init__(code, method=method)
        self.retry_after = retry_after
        self.settled = settled
