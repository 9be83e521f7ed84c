from __future__ import annotations

from bot.history import TurnData, merge_roles, replayable, select


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


def test_unanswered_turns_are_dropped_but_the_brief_stays() -> None:
    # u0 was refused; u1 answered by m2; u3 failed; u4 is new.
    turns = [u(0), u(1), m(2), u(3), u(4)]
    assert seqs(select(turns)) == [0, 1, 2, 4]


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
