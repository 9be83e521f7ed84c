from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import store
from bot.answer import Answer
from bot.db import write_turns
from bot.models import Blob, Conversation, Job, SlackEvent, utcnow
from bot.options import parse_request
from tests.bot.helpers import CATALOG, add_job, new_conversation
from tests.bot.test_db import wait_until


def jpeg(color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "JPEG")
    return out.getvalue()


def generated(image: bytes, sig: str) -> Answer:
    parts = [
        {"text": "thinking", "thought": True},
        {"inlineData": {"mimeType": "image/jpeg", "bytes": jpeg("gray")}, "thought": True},
        {"text": "Done", "thoughtSignature": f"{sig}-text"},
        {"inlineData": {"mimeType": "image/jpeg", "bytes": image}, "thoughtSignature": sig},
    ]
    return Answer(parts=parts, final_index=3, usage={}, model_version=MODEL)


MODEL = "gemini-3.1-flash-image"


def answer(session: Session, conv: Conversation, job: Job, result: Answer, *, state: str = "done") -> None:
    job.result_turn_id = store.save_model_turn(session, conv, result).id
    job.state = state


def test_quick_replies_each_see_the_answer_to_the_one_before(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session)
        answer(session, conv, add_job(session, conv, "a mug"), generated(jpeg("red"), "SIG1"))
        reply1 = add_job(session, conv, "make it blue")
        reply2 = add_job(session, conv, "from above")  # stored before reply1 is answered
        answer(session, conv, reply1, generated(jpeg("blue"), "SIG2"))
        contents = store.contents_for(session, reply2).contents
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    assert contents[3]["parts"][-1]["thoughtSignature"] == "SIG2"
    assert contents[4]["parts"] == [{"text": "from above"}]


def test_an_answer_from_another_model_goes_back_as_a_user_image(sessions: sessionmaker[Session]) -> None:
    first = jpeg("red")
    with sessions.begin() as session:
        conv = new_conversation(session)
        job = add_job(session, conv, "a mug")
        job.model_id = "gemini-2.5-flash-image"  # no signatures: replayed as a model turn it would be a 400
        answer(session, conv, job, generated(first, "SIG1"))
        reply = add_job(session, conv, "make it blue")
        reply.model_id = "gemini-3-pro-image"
        contents = store.contents_for(session, reply).contents
    assert [c["role"] for c in contents] == ["user"]
    parts = contents[0]["parts"]
    assert [p.get("text") for p in parts] == ["a mug", "The image so far:", None, "make it blue"]
    assert base64.b64decode(parts[2]["inlineData"]["data"]) == first
    assert not any("thoughtSignature" in p for p in parts)


def test_answers_of_failed_jobs_are_not_history(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session)
        answer(session, conv, add_job(session, conv, "a mug"), generated(jpeg("red"), "SIG1"))
        lost = add_job(session, conv, "make it blue")
        answer(session, conv, lost, generated(jpeg("blue"), "SIG2"), state="failed")  # never delivered
        reply = add_job(session, conv, "from above")
        contents = store.contents_for(session, reply).contents
    signatures = [p.get("thoughtSignature") for c in contents for p in c["parts"] if "thoughtSignature" in p]
    assert signatures == ["SIG1-text", "SIG1"]


def test_a_reply_after_variations_builds_on_the_newest_result(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session)
        first = add_job(session, conv, "a mug")
        answer(session, conv, first, generated(jpeg("red"), "SIG1"))
        first.parent_job_id = None
        request = parse_request("", catalog=CATALOG, default_model="nano-banana-2", allow_empty_prompt=True)
        ids = store.enqueue_from_result(
            session, first, kind="variation", requested_by="U1", request=request, count=2
        )
        jobs = [session.get_one(Job, i) for i in ids]
        assert [j.group_id for j in jobs] == [ids[0], ids[0]]
        for job, sig in zip(jobs, ("SIGA", "SIGB"), strict=True):
            answer(session, conv, job, generated(jpeg("blue"), sig))
        # A variation asks for the first turn again: the brief alone.
        assert [c["role"] for c in store.contents_for(session, jobs[0]).contents] == ["user"]
        reply = add_job(session, conv, "from above")
        found = store.contents_for(session, reply)
        assert found.base == ids[1]
        assert [p.get("thoughtSignature") for p in found.contents[1]["parts"]] == ["SIGB-text", "SIGB"]
        # Once deleted, that result is no longer history: the reply builds on the one before it.
        assert store.delete_result(session, team_id="T1", job_id=ids[1])
        found = store.contents_for(session, reply)
        assert found.base == ids[0]
        assert not store.delete_result(session, team_id="T1", job_id=ids[1])  # once
        assert not store.delete_result(session, team_id="T2", job_id=ids[0])  # another workspace's


def test_regenerating_a_finalized_result_renders_its_parent_again(sessions: sessionmaker[Session]) -> None:
    red = jpeg("red")
    with sessions.begin() as session:
        conv = new_conversation(session)
        first = add_job(session, conv, "a mug")
        answer(session, conv, first, generated(red, "SIG1"))
        request = parse_request("", catalog=CATALOG, default_model="nano-banana-pro", allow_empty_prompt=True)
        [final] = store.enqueue_from_result(
            session, first, kind="finalize", requested_by="U1", request=request
        )
        final_job = session.get_one(Job, final)
        answer(session, conv, final_job, generated(jpeg("blue"), "SIG2"))
        [again] = store.enqueue_from_result(
            session, final_job, kind="regenerate", requested_by="U1", request=request
        )
        contents = store.contents_for(session, session.get_one(Job, again)).contents
    [content] = contents  # the render of the first result, not its instruction
    assert base64.b64decode(content["parts"][0]["inlineData"]["data"]) == red
    assert content["parts"][1]["text"].startswith("Render this image again")


def test_dedupe_keys_are_claimed_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert store.claim_delivery(session, team_id="T1", keys=["msg:T1:C1:1.0", "event:Ev1"])
    with sessions.begin() as session:
        assert not store.claim_delivery(session, team_id="T1", keys=["msg:T1:C1:1.0", "event:Ev2"])
        assert not store.claim_delivery(session, team_id="T1", keys=["event:Ev1"])
        assert store.claim_delivery(session, team_id="T1", keys=["msg:T1:C1:2.0"])


def test_claiming_and_linking_a_delivery_take_one_statement_each(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """They are on the ack path of every mention and reply, where each round trip to the database waits
    for the GIL again behind busy workers (on PostgreSQL, four statements were a fifth of an ack)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    with sessions.begin() as session:
        job = add_job(session, new_conversation(session))
        session.flush()
        event.listen(engine, "before_cursor_execute", record)
        try:
            assert store.claim_delivery(session, team_id="T1", keys=["msg:T1:C1:9.0", "event:Ev9"])
            assert statements == ["INSERT"]
            store.link_delivery(session, keys=["msg:T1:C1:9.0", "event:Ev9"], job_id=job.id)
            assert statements == ["INSERT", "UPDATE"]
        finally:
            event.remove(engine, "before_cursor_execute", record)
    with sessions() as session:
        linked = session.scalars(select(SlackEvent.job_id).where(SlackEvent.dedupe_key.like("%9%"))).all()
        assert linked == [job.id, job.id]


def test_of_two_claims_of_one_delivery_at_once_the_second_loses(sessions: sessionmaker[Session]) -> None:
    first = sessions()
    assert store.claim_delivery(first, team_id="T1", keys=["event:EvTwice"])
    with ThreadPoolExecutor(max_workers=1) as pool:

        def second() -> bool:
            with sessions.begin() as session:
                return store.claim_delivery(session, team_id="T1", keys=["event:EvTwice", "event:EvOther"])

        racing = pool.submit(second)
        turns = write_turns(sessions.kw["bind"])
        if turns is not None:  # SQLite: the second is waiting for the first's write lock
            wait_until(lambda: turns.waiting[False] == 1)
        first.commit()
        first.close()
        assert racing.result(timeout=30) is False


def test_uncommitted_delivery_is_not_recorded(sessions: sessionmaker[Session]) -> None:
    session = sessions()
    assert store.claim_delivery(session, team_id="T1", keys=["event:EvLost"])
    session.rollback()  # e.g. the process died before commit: Slack's retry must get through
    session.close()
    with sessions.begin() as session:
        assert store.claim_delivery(session, team_id="T1", keys=["event:EvLost"])


def test_replayed_history_keeps_signatures_and_drops_thoughts(sessions: sessionmaker[Session]) -> None:
    first, second = jpeg("red"), jpeg("blue")
    with sessions.begin() as session:
        conv = new_conversation(session)
        answer(session, conv, add_job(session, conv, "a mug"), generated(first, "SIG1"))
        answer(session, conv, add_job(session, conv, "make it blue"), generated(second, "SIG2"))
        job = add_job(session, conv, "from above")
        contents = store.contents_for(session, job).contents
    assert [c["role"] for c in contents] == ["user", "model", "user", "model", "user"]
    model_parts = contents[3]["parts"]
    assert [p.get("thoughtSignature") for p in model_parts] == ["SIG2-text", "SIG2"]
    assert base64.b64decode(model_parts[1]["inlineData"]["data"]) == second
    assert all(not p.get("thought") for c in contents for p in c["parts"])


@pytest.mark.parametrize(
    ("markup", "parts"),
    [
        ("fish &amp; chips, see <https://x.co/menu|the menu>", [{"text": "fish & chips, see the menu"}]),
        ("in <#C123|design> &lt;3", [{"text": "in #design <3"}]),
        ("a card for <@UBOB> from the team", [{"slackText": "a card for <@UBOB> from the team"}]),
        ("<https://x.co|   >", []),
    ],
)
def test_markup_that_names_nobody_is_stored_as_the_text_a_person_reads(
    markup: str, parts: list[dict[str, Any]]
) -> None:
    """Only a mention needs a name from Slack (``users.info``, in the job); everything else in Slack's
    markup is read at intake, so the job has no prompt to resolve and goes to Gemini a write sooner."""
    assert store.user_parts(markup, [], markup=True) == parts
    assert store.user_parts("a &amp; <b>", [], markup=False) == [{"text": "a &amp; <b>"}]  # typed in a modal


def test_blobs_are_scoped_to_their_workspace(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session, team="T1")
        add_job(session, conv)
        turn = store.save_model_turn(session, conv, generated(jpeg("red"), "S"))
        blob_id = store.final_image(session, turn).id
    with sessions() as session:
        assert store.load_blob(session, team_id="T1", blob_id=blob_id).data
        with pytest.raises(LookupError):
            store.load_blob(session, team_id="T2", blob_id=blob_id)


def test_same_thread_in_two_workspaces_are_two_conversations(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        a = new_conversation(session, team="T1", channel="C1", thread="5.0")
        b = new_conversation(session, team="T2", channel="C1", thread="5.0")
        assert a.id != b.id
        found = store.find_conversation(session, team_id="T2", channel_id="C1", thread_ts="5.0")
        assert found is not None and found.id == b.id


def test_thought_images_are_not_stored(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        conv = new_conversation(session)
        turn = store.save_model_turn(session, conv, generated(jpeg("red"), "SIG"))
        assert [p.get("thought", False) for p in turn.parts] == [
            True,
            False,
            False,
        ]  # the draft image is gone
        assert session.scalar(select(func.count()).select_from(Blob)) == 1  # the result only


def test_dedupe_keys_older_than_a_day_are_forgotten(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert store.claim_delivery(session, team_id="T1", keys=["event:old", "event:new"])
        session.execute(
            update(SlackEvent)
            .where(SlackEvent.dedupe_key == "event:old")
            .values(received_at=utcnow() - timedelta(days=2))
        )
    with sessions.begin() as session:
        assert store.prune_deliveries(session) == 1
    with sessions.begin() as session:
        assert not store.claim_delivery(session, team_id="T1", keys=["event:new"])  # still known
        assert store.claim_delivery(session, team_id="T1", keys=["event:old"])  # forgotten, so new again
