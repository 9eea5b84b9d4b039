"""A full state's long lists of views are joined from blocks (issue 13): a block found
again as it was is joined once and its bytes reused, read after read, so that a read
joins ~200 pieces rather than 110,000 views. Whatever the blocks, what is joined is the
views' bytes, in order."""

from __future__ import annotations

import random

import pytest

from mesos_zmq.master import read_cache
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.read_cache import _Blocks
from tests.unit.test_read_cache import Cluster, answer


def views(rng: random.Random, n: int) -> list[bytes | None]:
    return [f"view-{rng.randrange(10**9)}-{'x' * rng.randrange(5)}".encode() for _ in range(n)]


def test_blocks_found_again_are_joined_once_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_cache, "BLOCK", 10)
    rng = random.Random(1)
    listed = views(rng, 100)
    blocks = _Blocks()
    first = blocks.pieces(listed)
    assert b"".join(first) == b"".join(listed)  # type: ignore[arg-type]
    assert len(first) == 100  # nothing found yet: view by view
    second = blocks.pieces(listed)
    assert [len(piece) for piece in second] == [len(b"".join(listed[at:at + 10]))  # type: ignore
                                                for at in range(0, 100, 10)]
    # unchanged: the very same bytes, not joined again
    third = blocks.pieces(list(listed))
    assert all(a is b for a, b in zip(second, third, strict=True))
    # a view changed in the fourth block, one gone from the seventh, two new at the end:
    # the other blocks are still found in their places
    listed[35] = b"changed"
    del listed[62]
    listed += [b"new-1", b"new-2"]
    fourth = blocks.pieces(listed)
    assert b"".join(fourth) == b"".join(listed)  # type: ignore[arg-type]
    reused = {id(piece) for piece in third} & {id(piece) for piece in fourth}
    assert len(reused) == 8


@pytest.mark.parametrize("seed", range(6))
def test_blocks_join_to_the_views_through_any_change(monkeypatch: pytest.MonkeyPatch,
                                                     seed: int) -> None:
    """Views go away anywhere, come at the end, change in place (new bytes, or equal
    bytes in a new object), or (never in a dict, but the join must not care) move."""
    monkeypatch.setattr(read_cache, "BLOCK", 7)
    rng = random.Random(seed)
    listed = views(rng, rng.randrange(0, 300))
    blocks = _Blocks()
    found = 0
    for _ in range(300):
        for _ in range(rng.choice((0, 0, 1, 5, 40))):
            roll = rng.random()
            if roll < 0.3 and listed:
                del listed[rng.randrange(len(listed))]
            elif roll < 0.55:
                listed += views(rng, rng.randrange(1, 20))
            elif roll < 0.75 and listed:
                listed[rng.randrange(len(listed))] = views(rng, 1)[0]
            elif roll < 0.9 and listed:
                at = rng.randrange(len(listed))
                listed[at] = bytes(listed[at])  # type: ignore[arg-type]  # equal, not same
            elif len(listed) > 2:
                at, to = rng.randrange(len(listed)), rng.randrange(len(listed))
                listed.insert(to, listed.pop(at))
        pieces = blocks.pieces(list(listed))
        assert b"".join(pieces) == b"".join(listed)  # type: ignore[arg-type]
        found += len(pieces) < len(listed)
        # views that go away everywhere leave small blocks: their number stays bounded
        assert len(blocks._blocks) <= 4 * (len(listed) // 7) + 16
    assert found > 50


def test_the_cached_state_from_blocks_is_the_childs_byte_for_byte(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_cache, "BLOCK", 8)
    monkeypatch.setattr(read_cache, "LOOKAHEAD", 2)
    cluster = Cluster(41)
    reads = LoopReads()
    for round_ in range(15):
        for limit in (None, None, 5):
            assert answer(reads, cluster, limit) == cluster.expected(limit), round_
        cluster.churn(cluster.rng.choice((0, 3, 30, 200)))
    assert len(reads.cache._task_blocks._blocks) > 10


def test_blocks_left_small_everywhere_start_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_cache, "BLOCK", 10)
    listed = views(random.Random(2), 1000)
    blocks = _Blocks()
    blocks.pieces(listed)
    blocks.pieces(listed)
    assert len(blocks._blocks) == 100
    # one view left of each block's ten: a hundred blocks of one view each would be
    # found again and again, for a list of a hundred views
    listed = listed[::10]
    assert b"".join(blocks.pieces(listed)) == b"".join(listed)  # type: ignore[arg-type]
    assert blocks._blocks == []
    blocks.pieces(listed)
    assert len(blocks._blocks) == 10
