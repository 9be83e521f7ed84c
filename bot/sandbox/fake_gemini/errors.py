"""Google's JSON error body (``{"error": {code, message, status[, details]}}``) and the fake's errors."""

from __future__ import annotations

from typing import Any

TROUBLESHOOTING_URL = "https://developers.generativeai.google/guide/troubleshooting"


class ApiError(Exception):
    """An error answer: ``{"error": {"code", "message", "status"[, "details"]}}``."""

    def __init__(
        self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{code} {status}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:  # Google leaves the field out when there is nothing to say
            error["details"] = self.details
        return {"error": error}


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def api_key_invalid() -> ApiError:
    message = "API key not valid. Please pass a valid API key."
    return ApiError(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )


def api_key_missing() -> ApiError:
    return ApiError(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def model_not_found(model_id: str, *, no_longer_available: bool = False) -> ApiError:
    if no_longer_available:
        return ApiError(
            404,
            "NOT_FOUND",
            f"This model models/{model_id} is no longer available. Please update your code to use a newer "
            "model for the latest features and improvements.",
        )
    return ApiError(
        404,
        "NOT_FOUND",
        f"models/{model_id} is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods.",
    )


def format_duration(seconds: float) -> str:
    """A protobuf JSON Duration: "2s", "53s", "0.500s" (0, 3, 6 or 9 fractional digits)."""
    nanos = round(seconds * 1_000_000_000)
    whole, frac = divmod(nanos, 1_000_000_000)
    if frac == 0:
        return f"{whole}s"
    digits = f"{frac:09d}"
    for keep in (3, 6):
        if digits[keep:] == "0" * (9 - keep):
            return f"{whole}.{digits[:keep]}s"
    return f"{whole}.{digits}s"


def rate_limited_error(model_id: str, retry_delay_s: float) -> ApiError:
    metric = "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count"
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
        "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. "
        f"\n* Quota exceeded for metric: {metric}, "
        f"limit: 1000000, model: {model_id}\nPlease retry in {float(retry_delay_s)}s."
    )
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": "GenerateContentPaidTierInputTokensPerModelPerMinute",
                        "quotaDimensions": {"location": "global", "model": model_id},
                        "quotaValue": "1000000",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format_duration(retry_delay_s),
            },
        ],
    )
