"""A workspace's own Gemini key: tried with one free call, sealed at rest, used for its calls, and the
ledger row says whose key paid."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bot import ledger, messages
from bot.gemini import GeminiClient, build_request
from bot.models import Charge
from bot.prices import load_prices
from bot.reports import month_csv
from bot.sandbox.fake_gemini import FakeGemini
from bot.workspace_keys import WorkspaceKeys, key_request

OWN = "AIzaSy-own-key-of-the-workspace-000000"


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        fake.add_key(OWN, name="own")
        yield fake


def client(fake: FakeGemini, url: str | None = None) -> GeminiClient:
    return GeminiClient(httpx.Client(timeout=10), base_url=url or fake.url, api_key=fake.api_key)


def test_a_key_is_tried_with_one_free_call_before_it_is_saved(gemini: FakeGemini) -> None:
    assert client(gemini).check_key(OWN) is None
    refused = client(gemini).check_key("AIzaSy-nobodys-key")
    assert refused is not None and refused.startswith("Gemini refused this key: API key not valid")
    unreachable = client(gemini, url="http://127.0.0.1:9").check_key(OWN)
    assert unreachable == "Gemini couldn't be reached to try the key; try again in a moment"
    assert gemini.requests == []  # the model list, not a generateContent call


def test_a_call_uses_the_key_it_is_given_else_the_operators(gemini: FakeGemini) -> None:
    body = build_request(
        [{"role": "user", "parts": [{"text": "a kite"}]}], aspect_ratio=None, image_size=None
    )
    gemini_client = client(gemini)
    with gemini_client.answer("gemini-nano-banana-2.1", body, api_key=OWN):
        pass
    with gemini_client.answer("gemini-nano-banana-2.1", body):
        pass
    assert [c.key_name for c in gemini.requests] == ["own", "operator"]


def test_the_key_is_sealed_at_rest_and_offered_keys_are_checked(sessions: sessionmaker[Session]) -> None:
    secret = Fernet.generate_key().decode()
    checked: list[str] = []

    def check(key: str) -> str | None:
        checked.append(key)
        return None if key == OWN else "Gemini refused this key: no"

    keys = WorkspaceKeys(sessions=sessions, encryption_key=secret, check=check)
    assert keys.enabled and keys.get("T1") is None and "operator's key" in keys.status("T1")
    assert (
        keys.offer("T1", "   ", set_by="UADMIN")
        == "Paste the key: it starts with AIza (https://aistudio.google.com/apikey)."
    )
    assert keys.offer("T1", "AIza-wrong", set_by="UADMIN") == "Gemini refused this key: no"
    assert keys.get("T1") is None
    assert keys.offer("T1", f" {OWN}\n", set_by="UADMIN") is None
    assert checked == ["AIza-wrong", OWN]
    assert keys.get("T1") == OWN and keys.get("T2") is None
    assert "saved by <@UADMIN>" in keys.status("T1")
    with sessions() as session:
        stored = " ".join(str(row) for row in session.execute(text("SELECT * FROM workspace_key")))
    assert OWN not in stored and "AIza" not in stored
    # Another BANANA_ENCRYPTION_KEY can't open it: the operator's key pays, as if none were set.
    assert WorkspaceKeys(sessions=sessions, encryption_key=Fernet.generate_key().decode()).get("T1") is None
    assert keys.remove("T1") and not keys.remove("T1") and keys.get("T1") is None
    assert not WorkspaceKeys(sessions=sessions, encryption_key=None).enabled


def test_the_ledger_says_whose_key_paid(sessions: sessionmaker[Session]) -> None:
    prices = load_prices()
    for owner in ("workspace", "operator"):
        payer = ledger.Payer("T1", "U1", "C1", None, "gemini-nano-banana-2.1", None, key_owner=owner)
        row = ledger.charge_row(prices, payer, outcome="image", billed="yes", usage={}, model_version=None)
        with sessions.begin() as session:
            ledger.charge(session, row)
    with sessions() as session:
        rows = list(session.scalars(select(Charge).order_by(Charge.id)))
    assert [r.key_owner for r in rows] == ["workspace", "operator"]
    lines = month_csv(rows).decode().splitlines()
    assert (
        lines[0].endswith(",key_owner") and lines[1].endswith(",workspace") and lines[2].endswith(",operator")
    )


def test_only_the_whole_text_asks_for_the_key() -> None:
    assert key_request("key") == "set" and key_request(" Key  REMOVE ") == "remove"
    assert key_request("key lime pie") is None and key_request("a key") is None


def test_a_long_refusal_is_cut_to_what_slack_shows_under_the_field() -> None:
    shown = messages.under_field("Gemini refused this key: " + "x" * 400)
    assert len(shown) == messages.MODAL_ERROR_CHARS and shown.endswith("…")
