"""P&L attribution (pure): where the money came from, in components that add up exactly.

All amounts are in collateral units (USD). The reference price for directional risk is the index
(oracle) price; each venue's deviation from it is basis.

==============  =================================================================================
component       definition
==============  =================================================================================
spread          edge of each DEX fill against the DEX mid at the fill: (mid − price) × signed size
inventory       net delta (DEX position + CEX hedge position) × change of the index
basis           DEX position × change of (DEX mid − index) + hedge × change of (CEX mid − index)
funding         DEX funding received − paid (applied, plus accrued but not yet applied), CEX funding
fees            DEX fees paid (negative) and maker rebates (positive)
gas             native gas spent × native price (negative)
hedge           edge of each CEX fill against the CEX mid at the fill, minus CEX fees
==============  =================================================================================

The sum of the components equals the mark-to-market change of equity (DEX position at DEX mid plus
CEX position at CEX mid, plus cash flows); a unit test holds it to that.
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

    Call :meth:`mark` whenever prices are observed (it attributes the move since the last mark),
    and the ``on_*`` methods as events arrive. Positions are in base units (signed).
    """

    dex_position: float = 0.0
    hedge_position: float = 0.0
    accrued_funding: float = 0.0
    """DEX funding accrued at settled snapshots but not yet applied to the account (the market
    applies it lazily on the next touch); + means receivable."""
    _index: float | None = None
    _dex_mid: float | None = None
    _cex_mid: float | None = None
    _c: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("spread", "inventory", "basis", "funding", "fees", "gas", "hedge"), 0.0
        )
    )

    def mark(self, index: float, dex_mid: float, cex_mid: float | None = None) -> None:
        """Attribute price moves since the last mark to inventory and basis."""
        cex = cex_mid if cex_mid is not None else index
        if self._index is not None and self._dex_mid is not None and self._cex_mid is not None:
            d_index = index - self._index
            self._c["inventory"] += (self.dex_position + self.hedge_position) * d_index
            self._c["basis"] += self.dex_position * (
                (dex_mid - index) - (self._dex_mid - self._index)
            )
            self._c["basis"] += self.hedge_position * (
                (cex - index) - (self._cex_mid - self._index)
            )
        self._index, self._dex_mid, self._cex_mid = index, dex_mid, cex

    def on_dex_fill(self, signed_size: float, price: float, fee: float, mid: float) -> None:
        """Book one DEX fill of ours: `fee` > 0 is paid, < 0 a rebate; `mid` the DEX mid then."""
        self._c["spread"] += (mid - price) * signed_size
        self._c["fees"] -= fee
        self.dex_position += signed_size
        # Equity values the position at the last marked mid; if the fill's mid differs, the
        # difference is a move of the DEX against the index that the next mark would not see.
        if self._dex_mid is not None:
            self._c["basis"] += signed_size * (self._dex_mid - mid)

    def on_cex_fill(self, signed_size: float, price: float, fee: float, mid: float) -> None:
        """Book one CEX hedge fill: edge vs the CEX mid, minus the fee."""
        self._c["hedge"] += (mid - price) * signed_size - fee
        self.hedge_position += signed_size
        if self._cex_mid is not None:
            self._c["basis"] += signed_size * (self._cex_mid - mid)

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
