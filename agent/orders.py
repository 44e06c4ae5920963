"""Order diff: turn a target ladder into the fewest cancels and places (pure).

Queue position is worth money on a price-time book: an order that already rests at the right price
keeps its place in the FIFO, so it is kept even when partly filled, as long as enough of it is left.
Everything else that differs is cancelled and re-placed in the same batch transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.types import Order, Quote

__all__ = ["OrderDiff", "diff_orders"]


@dataclass(frozen=True, slots=True)
class OrderDiff:
    """What to send: ids to cancel, quotes to place, and the live orders kept as they are."""

    cancel_ids: tuple[int, ...]
    place: tuple[Quote, ...]
    keep: tuple[Order, ...]

    @property
    def empty(self) -> bool:
        """True when the book already matches the target."""
        return not self.cancel_ids and not self.place


def diff_orders(
    live: Iterable[Order], target: Sequence[Quote], keep_min_fill_ratio: float = 0.5
) -> OrderDiff:
    """Compute the cancels and places that turn `live` into `target`.

    Parameters
    ----------
    live
        Our resting orders as the venue reports them.
    target
        The desired ladder.
    keep_min_fill_ratio
        A live order at a target's side and price is kept when its remaining size is at least this
        fraction of the target size and not larger than the target (a larger one would add
        unintended exposure); otherwise it is replaced.

    Returns
    -------
    OrderDiff
        Each target is matched with at most one live order; unmatched live orders are cancelled.
    """
    by_level: dict[tuple[int, int], list[Order]] = {}
    for o in sorted(live, key=lambda o: o.order_id):  # oldest first: best queue position
        by_level.setdefault((int(o.side), int(o.price_ticks)), []).append(o)
    keep: list[Order] = []
    place: list[Quote] = []
    for q in target:
        candidates = by_level.get((int(q.side), int(q.price_ticks)), [])
        match = next(
            (
                o
                for o in candidates
                if keep_min_fill_ratio * q.size_lots <= o.remaining_lots <= q.size_lots
            ),
            None,
        )
        if match is None:
            place.append(q)
        else:
            candidates.remove(match)
            keep.append(match)
    cancel = tuple(sorted(o.order_id for os_ in by_level.values() for o in os_))
    return OrderDiff(cancel_ids=cancel, place=tuple(place), keep=tuple(keep))
