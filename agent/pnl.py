"""P&L attribution (pure): where the money came from, in components that add up exactly.

All amounts are in collateral units (USD). Each leg is valued at one price per mark, and the
moves of those prices between marks are split into a directional part (the index) and basis:

==============  =================================================================================
component       definition
==============  =================================================================================
spread          edge of each DEX fill against the DEX leg's mark: (mark − price) × signed size
inventory       net delta (DEX position + CEX hedge position) × change of the index
basis           DEX position × change of (DEX mark − index) + hedge × change of (CEX mark − index)
funding         DEX funding received − paid (applied, plus accrued but not yet applied), CEX funding
fees            DEX fees paid (negative) and maker rebates (positive)
gas             native gas spent × native price (negative)
hedge           edge of each CEX fill against the CEX mid at the fill, minus CEX fees
==============  =================================================================================

The sum of the components equals the mark-to-market change of equity (DEX position at its mark
plus CEX position at its mark, plus cash flows); a unit test holds it to that.

Which price marks each leg (:meth:`PnlLedger.mark_fair`, what the agent calls every cycle)::

    leg     marked at                                   why
    ------  ------------------------------------------  -------------------------------------------
    index   fair value less the DEX premium (the        the directional reference: the index as
            agent's index estimate)                     the exchange tells it now, not the oracle
                                                        report that lags it or stops with a chain
    DEX     index estimate + the premium other makers'  the DEX book mid is no price: it holds our
            book shows, while that book and the index   own quotes, stale ones too, and freezes
            are fresh (fair value); else + the last     with the chain; right after a halt other
            premium read so (``PremiumFreshness``)      makers' quotes are stale as well
    CEX     the exchange mid read fresh this cycle;     the hedge's own venue while it answers;
            else fair value's estimate of it (index     during an outage its last mid is frozen
            estimate + the exchange's basis estimate)   while the DEX leg follows the market

Fair value is the estimator the model, the collar and the risk engine use
(:mod:`agent.model.fairvalue`), so the ledger counts the money the engine judges. Its premium is
sampled only from other makers' posts (never our quotes, never a book more than
``max_premium_bps`` from the index), and only while
:class:`agent.model.fairvalue.PremiumFreshness` holds: the runtime computes that flag once per cycle
and gives it to fair value and to :meth:`PnlLedger.mark_fair`, so the premium the ledger marks is
the one the engine quotes from. While the premium is not fresh the ledger holds the last
fresh one rather than dropping it: the perp will trade near it again, and
a 50-bps premium dropped from a 0.6-unit position at $60,000 would be a $180 step. When
both venues answer, the CEX mark is the exchange mid and the DEX mark the market's price of the
perp, so basis is the real DEX-versus-exchange difference. Marking one leg at a frozen price
while the other follows the market is what made the old ledger report phantom drawdowns (the
hedge frozen through the exchange outage of ``holdout/crash_exchange_down``, the DEX leg at the
book mid through the halt of ``holdout/chain_halt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PnlComponents", "PnlLedger"]


@dataclass(frozen=True, slots=True)
class PnlComponents:
    """Cumulative P&L by component, collateral units."""

    spread: float = 0.0
    inventory: float = 0.0
    basis: float = 0.0
    funding: float = 0.0
    fees: float = 0.0
    gas: float = 0.0
    hedge: float = 0.0

    @property
    def total(self) -> float:
        """Sum of all components."""
        return (
            self.spread
            + self.inventory
            + self.basis
            + self.funding
            + self.fees
            + self.gas
            + self.hedge
        )

    def as_dict(self) -> dict[str, float]:
        """Components plus total, for logs, metrics and reports."""
        return {
            "spread": self.spread,
            "inventory": self.inventory,
            "basis": self.basis,
            "funding": self.funding,
            "fees": self.fees,
            "gas": self.gas,
            "hedge": self.hedge,
            "total": self.total,
        }


@dataclass(slots=True)
class PnlLedger:
    """Accumulates P&L components from marks, fills and cash flows.

    Call :meth:`mark_fair` (or :meth:`mark` with explicit prices) whenever prices are observed:
    it attributes the move since the last mark. Call the ``on_*`` methods as events arrive.
    Positions are in base units (signed).
    """

    dex_position: float = 0.0
    hedge_position: float = 0.0
    accrued_funding: float = 0.0
    """DEX funding accrued at settled snapshots but not yet applied to the account (the market
    applies it lazily on the next touch); + means receivable."""
    _index: float | None = None
    _dex_mark: float | None = None
    _cex_mark: float | None = None
    _premium: float = 0.0
    """The last fresh DEX premium (what the DEX leg is marked at over the index while the
    premium read now is not fresh)."""
    _c: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("spread", "inventory", "basis", "funding", "fees", "gas", "hedge"), 0.0
        )
    )

    def mark(self, index: float, dex_mid: float, cex_mid: float | None = None) -> None:
        """Value the legs at these prices; attribute the move since the last mark.

        Parameters
        ----------
        index
            The directional reference price.
        dex_mid
            The price the DEX leg is marked at.
        cex_mid
            The price the hedge leg is marked at (None: the index).
        """
        cex = cex_mid if cex_mid is not None else index
        if self._index is not None and self._dex_mark is not None and self._cex_mark is not None:
            d_index = index - self._index
            self._c["inventory"] += (self.dex_position + self.hedge_position) * d_index
            self._c["basis"] += self.dex_position * (
                (dex_mid - index) - (self._dex_mark - self._index)
            )
            self._c["basis"] += self.hedge_position * (
                (cex - index) - (self._cex_mark - self._index)
            )
        self._index, self._dex_mark, self._cex_mark = index, dex_mid, cex

    def mark_fair(
        self,
        fair: float,
        premium: float,
        *,
        premium_fresh: bool,
        cex_mid: float | None,
        cex_estimate: float,
    ) -> None:
        """Mark both legs from fair value (see the module docstring's table for why).

        Parameters
        ----------
        fair
            Fair value of the DEX perp (a fresh estimate: the caller skips the mark when the
            estimator has nothing fresh, and the next mark attributes the move).
        premium
            The part of `fair` that is the perp's premium over the index.
        premium_fresh
            Whether that premium was read from a fresh book against a fresh index
            (:meth:`agent.model.fairvalue.PremiumFreshness.fresh`, the flag fair value sampled
            its premium under this cycle). When not, the DEX leg is marked at the index
            estimate plus the last premium read so.
        cex_mid
            The exchange mid read fresh this cycle; None when the read is stale or failed.
        cex_estimate
            The exchange's price as fair value estimates it (index estimate plus the exchange's
            basis), the hedge's mark when `cex_mid` is None.
        """
        index = fair - premium
        if premium_fresh:
            self._premium = premium
        self.mark(index, index + self._premium, cex_mid if cex_mid is not None else cex_estimate)

    def on_dex_fill(self, signed_size: float, price: float, fee: float, mid: float) -> None:
        """Book one DEX fill of ours: `fee` > 0 is paid, < 0 a rebate.

        Its edge is measured against the DEX leg's last mark, the price the position is valued
        at, so the fill adds no basis; `mid` (the caller's reference, the DEX book mid) is used
        only before the first mark. Against a book mid that holds our own quotes the split
        would read our own half-spread as edge and put the quotes' offset from fair value into
        basis (a mempool stall once held that mid at 58,496 with fair value at 54,194).
        """
        ref = self._dex_mark if self._dex_mark is not None else mid
        self._c["spread"] += (ref - price) * signed_size
        self._c["fees"] -= fee
        self.dex_position += signed_size

    def on_cex_fill(self, signed_size: float, price: float, fee: float, mid: float) -> None:
        """Book one CEX hedge fill: edge vs the CEX mid, minus the fee."""
        self._c["hedge"] += (mid - price) * signed_size - fee
        self.hedge_position += signed_size
        if self._cex_mark is not None:
            self._c["basis"] += signed_size * (self._cex_mark - mid)

    def on_funding(self, amount: float) -> None:
        """Book a funding payment: positive received, negative paid (either venue)."""
        self._c["funding"] += amount

    def set_accrued_funding(self, amount: float) -> None:
        """Set the funding accrued but not yet applied (from the account view; + receivable)."""
        self.accrued_funding = amount

    def on_gas(self, cost: float) -> None:
        """Book gas spent, in collateral units (positive number)."""
        self._c["gas"] -= cost

    def snapshot(self) -> PnlComponents:
        """Return the cumulative components."""
        c = dict(self._c)
        c["funding"] += self.accrued_funding
        return PnlComponents(**c)
