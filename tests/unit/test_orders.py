"""Order diff: minimal cancels/places, queue priority kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.orders import diff_orders
from agent.types import Lots, Order, Quote, Side, Tick


def _o(oid: int, side: Side, tick: int, lots: int, rem: int | None = None) -> Order:
    return Order(oid, side, Tick(tick), Lots(lots), Lots(lots if rem is None else rem))


def _q(side: Side, tick: int, lots: int) -> Quote:
    return Quote(side, Tick(tick), Lots(lots))


def test_identical_book_is_a_no_op() -> None:
    live = [_o(1, Side.BID, 100, 5), _o(2, Side.ASK, 102, 5)]
    d = diff_orders(live, [_q(Side.BID, 100, 5), _q(Side.ASK, 102, 5)])
    assert d.empty and len(d.keep) == 2


def test_moved_level_is_cancelled_and_replaced() -> None:
    live = [_o(1, Side.BID, 100, 5), _o(2, Side.ASK, 102, 5)]
    d = diff_orders(live, [_q(Side.BID, 99, 5), _q(Side.ASK, 102, 5)])
    assert d.cancel_ids == (1,)
    assert d.place == (_q(Side.BID, 99, 5),)


def test_partly_filled_order_keeps_its_queue_place_until_too_small() -> None:
    target = [_q(Side.BID, 100, 10)]
    assert diff_orders([_o(1, Side.BID, 100, 10, rem=6)], target).empty
    d = diff_orders([_o(1, Side.BID, 100, 10, rem=4)], target)
    assert d.cancel_ids == (1,) and d.place == tuple(target)


def test_oversized_live_order_is_replaced() -> None:
    d = diff_orders([_o(1, Side.ASK, 105, 20)], [_q(Side.ASK, 105, 10)])
    assert d.cancel_ids == (1,)


def test_empty_target_cancels_everything() -> None:
    d = diff_orders([_o(3, Side.BID, 1, 1), _o(1, Side.ASK, 2, 1)], [])
    assert d.cancel_ids == (1, 3) and not d.place


levels = st.tuples(st.sampled_from([Side.BID, Side.ASK]), st.integers(1, 6), st.integers(1, 4))


@given(st.lists(levels, max_size=8), st.lists(levels, max_size=8, unique_by=lambda x: x[:2]))
def test_applying_the_diff_yields_the_target(live_l: list, target_l: list) -> None:
    live = [_o(i + 1, s, t, n) for i, (s, t, n) in enumerate(live_l)]
    target = [_q(s, t, n) for s, t, n in target_l]
    d = diff_orders(live, target, keep_min_fill_ratio=1.0)
    after = [
        (o.side, o.price_ticks, o.remaining_lots) for o in live if o.order_id not in d.cancel_ids
    ]
    after += [(q.side, q.price_ticks, q.size_lots) for q in d.place]
    assert sorted(after) == sorted((q.side, q.price_ticks, q.size_lots) for q in target)
    assert set(d.cancel_ids) | {o.order_id for o in d.keep} == {o.order_id for o in live}
