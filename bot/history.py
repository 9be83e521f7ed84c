"""Which turns go into the next request. Pure: works on plain data, no database.

A request carries the first user turn (the brief and its references), the most recent answered exchanges
and the new instruction, so its size does not grow with the thread. Model turns are replayed with every
non-thought part and its ``thoughtSignature`` exactly as Gemini returned them; ``thought: true`` parts are
left out (they are drafts and reasoning, and are large).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

RECENT_EXCHANGES = 2


@dataclass(frozen=True)
class TurnData:
    seq: int
    role: str
    parts: list[dict[str, Any]]
    foreign: bool = False  # a model turn made by another model than the one being called


def as_user_image(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Another model's answer: its signatures mean nothing to this model (and it may have none), so its
    final image goes back as a user part, as Google advises for images the model did not make."""
    images = [p for p in parts if "inlineData" in p and not p.get("thought")]
    if not images:
        return []
    return [{"text": "The image so far:"}, {"inlineData": images[-1]["inlineData"]}]


def select(turns: Sequence[TurnData], *, recent: int = RECENT_EXCHANGES) -> list[TurnData]:
    """``turns`` ends with the user turn being answered. Unanswered user turns (refused or failed) are
    dropped, except the first: the brief always stays."""
    if not turns:
        return []
    *earlier, current = turns
    exchanges: list[tuple[TurnData, TurnData]] = []
    for i, turn in enumerate(earlier):
        if turn.role == "user" and i + 1 < len(earlier) and earlier[i + 1].role == "model":
            exchanges.append((turn, earlier[i + 1]))
    first = turns[0]
    window = exchanges[-recent:] if recent > 0 else []
    chosen: list[TurnData] = []
    if not (window and window[0][0] is first) and first is not current:
        if not (len(turns) > 1 and turns[1].role == "model"):
            # The brief was never answered (refused): its references stay, its words would be refused again.
            first = TurnData(first.seq, first.role, [p for p in first.parts if "text" not in p])
        if first.parts:
            chosen.append(first)
    for user, model in window:
        chosen += [user, model]
    chosen.append(current)
    return chosen


def merge_roles(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join neighbours of the same role (e.g. the brief followed by a later instruction)."""
    merged: list[dict[str, Any]] = []
    for content in contents:
        if merged and merged[-1]["role"] == content["role"]:
            merged[-1] = {"role": content["role"], "parts": merged[-1]["parts"] + content["parts"]}
        else:
            merged.append(content)
    return merged


def first_text(parts: list[dict[str, Any]]) -> str | None:
    """The first non-empty text of a turn that is not a thought: a user's instruction, the model's comment."""
    for part in parts:
        text = part.get("text")
        if isinstance(text, str) and text.strip() and not part.get("thought"):
            return text.strip()
    return None


def replayable(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in parts if not p.get("thought")]


FINALIZE_INSTRUCTION = (
    "Render this image again at a higher resolution. Keep everything exactly as it is: the composition, "
    "the subjects, the colours and light, any text, and the style."
)


@dataclass(frozen=True)
class Node:
    """A job of the conversation, as the results tree sees it. ``answered``: its answer stored, and neither
    failed nor deleted: its image is in the thread, or on its way there."""

    id: int
    turn_id: int
    parent_id: int | None
    kind: str
    answered: bool
    source_id: int | None = None  # the result whose button made it


def base_of(nodes: dict[int, Node], node: Node) -> int | None:
    """The result ``node`` builds on: its recorded parent (a button's job has one from the start, a turn
    once its answer is stored), else, for a turn, the newest result before it (every earlier job of its
    conversation has its answer by the time it runs)."""
    if node.parent_id is not None or node.kind != "turn":
        return node.parent_id
    return max((n.id for n in nodes.values() if n.id < node.id and n.answered), default=None)


def renders(nodes: dict[int, Node], node: Node) -> bool:
    """Whether ``node`` re-renders its parent's image (Finalize), rather than answering an instruction:
    a Finalize, and a Regenerate or Variation of a Finalize's result (pressed again, it renders again)."""
    seen: set[int] = set()
    while node.kind in ("regenerate", "variation") and node.source_id in nodes and node.id not in seen:
        seen.add(node.id)
        node = nodes[node.source_id]
    return node.kind == "finalize"


def lineage(nodes: dict[int, Node], job_id: int) -> list[Node]:
    """The results ``job_id`` builds on, the first first (its base last)."""
    chain: list[Node] = []
    at = base_of(nodes, nodes[job_id])
    while at is not None and at in nodes and all(n.id != at for n in chain):
        chain.append(nodes[at])
        at = base_of(nodes, nodes[at])
    return chain[::-1]
