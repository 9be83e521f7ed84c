from __future__ import annotations

from bot.history import TurnData, as_user_image, merge_roles, replayable, select


def u(seq: int) -> TurnData:
    return TurnData(seq, "user", [{"text": f"u{seq}"}])


def m(seq: int) -> TurnData:
    return TurnData(seq, "model", [{"text": f"m{seq}"}])


def seqs(turns: list[TurnData]) -> list[int]:
    return [t.seq for t in turns]


def test_first_request_is_just_the_brief() -> None:
    assert seqs(select([u(0)])) == [0]


def test_short_thread_is_sent_whole() -> None:
    assert seqs(select([u(0), m(1), u(2), m(3), u(4)])) == [0, 1, 2, 3, 4]


def test_long_thread_keeps_the_brief_and_the_latest_exchanges() -> None:
    turns = [u(0), m(1)] + [t for i in range(2, 40, 2) for t in (u(i), m(i + 1))] + [u(40)]
    assert seqs(select(turns, recent=2)) == [0, 36, 37, 38, 39, 40]


def test_unanswered_turns_are_dropped_and_a_refused_brief_keeps_only_its_references() -> None:
    # u0 was refused; u1 answered by m2; u3 failed; u4 is new.
    assert seqs(select([u(0), u(1), m(2), u(3), u(4)])) == [1, 2, 4]
    brief = TurnData(0, "user", [{"text": "something refused"}, {"inlineData": {"blobId": 1}}])
    chosen = select([brief, u(1)])
    assert [t.parts for t in chosen] == [[{"inlineData": {"blobId": 1}}], [{"text": "u1"}]]


def test_neighbours_of_one_role_are_merged_and_thoughts_dropped() -> None:
    merged = merge_roles(
        [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "user", "parts": [{"text": "b"}]},
            {"role": "model", "parts": [{"text": "c"}]},
        ]
    )
    assert merged == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}]},
    ]
    assert replayable([{"text": "t", "thought": True}, {"text": "x", "thoughtSignature": "s"}]) == [
        {"text": "x", "thoughtSignature": "s"}
    ]


def test_another_models_answer_becomes_its_final_image() -> None:
    parts = [
        {"text": "t", "thought": True},
        {"inlineData": {"blobId": 1}, "thought": True},
        {"text": "Done", "thoughtSignature": "S"},
        {"inlineData": {"blobId": 2}, "thoughtSignature": "S2"},
    ]
    assert as_user_image(parts) == [{"text": "The image so far:"}, {"inlineData": {"blobId": 2}}]
    assert as_user_image([{"text": "no image"}]) == []


def test_first_text_skips_thoughts_and_blank_parts() -> None:
    from bot.history import first_text

    parts = [{"text": "plan", "thought": True}, {"text": "  "}, {"inlineData": {}}, {"text": " Here it is "}]
    assert first_text(parts) == "Here it is"
    assert first_text([{"inlineData": {}}]) is None
