// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPerpMarketTypes} from "./IPerpMarketTypes.sol";

/// @title IPerpMarketHot
/// @notice The quoting hot path and the agent's per-cycle read of its own orders, served by
///         `PerpMarket` itself (see `IPerpMarket`).
interface IPerpMarketHot is IPerpMarketTypes {
    // ------------------------------------------------------------------ orders

    /// @notice Place one order. A crossing order takes up to `maxFills` resting orders at
    ///         price-time priority; the rest rests unless IOC or reduce-only.
    /// @dev A post-only order that would cross a live order reverts with `PostOnlyWouldCross`
    ///      (a trader placing one order wants to know); `batch` skips such an order instead.
    /// @return orderId The id of the resting remainder, or 0 if nothing rests.
    function place(Place calldata order) external returns (uint256 orderId);

    /// @notice Cancel one resting order of the caller.
    /// @return cancelled False if the order had already left the book (filled, cancelled or
    ///         invalidated by `cancelAll`); reverts with `NotOrderOwner` for another's order.
    function cancel(uint256 orderId) external returns (bool cancelled);

    /// @notice Cancel, then place, atomically: a market maker's quote refresh in one tx.
    /// @dev Ids that already left the book are skipped (fills race cancels). A post-only place
    ///      that would cross a live order is skipped too, unlike in `place`: it is not placed,
    ///      reserves no margin, its `newIds` entry is 0 and `PlaceSkipped` says so, while the
    ///      cancels and the other places go through (as add-liquidity-only orders in a batch on
    ///      order-book DEXes: the book moving between a maker's read and its batch's inclusion
    ///      must not leave the maker's old quotes resting). Any other failing placement (invalid
    ///      order, margin, no free order slot) reverts the whole batch, cancels included.
    /// @return newIds One entry per placement: the resting order id, or 0 if nothing rests
    ///         (filled, IOC remainder dropped, or a skipped post-only place).
    function batch(uint256[] calldata cancelIds, Place[] calldata places) external returns (uint256[] memory newIds);

    // ------------------------------------------------------------------ views

    /// @notice Every live resting order of `account`, from its own order index: the cost does
    ///         not depend on other accounts' orders.
    function openOrders(address account) external view returns (OrderView[] memory orders);
}

/// @title IPerpMarketCold
/// @notice Everything else, served by `PerpMarketExtension` through `PerpMarket`'s fallback
///         (see `IPerpMarket`).
interface IPerpMarketCold is IPerpMarketTypes {
    // ------------------------------------------------------------------ collateral

    /// @notice Pull `amount` collateral from the caller (needs an ERC20 approval) and credit it.
    function deposit(uint256 amount) external;

    /// @notice Send `amount` collateral to the caller. Reverts with `InsufficientMargin` if the
    ///         remaining equity would be below the initial margin of the position plus resting
    ///         orders. A flat account needs no oracle to withdraw.
    function withdraw(uint256 amount) external;

    /// @notice Add `amount` to the insurance fund (a donation; it cannot be withdrawn).
    function depositInsurance(uint256 amount) external;

    /// @notice Send accrued trading fees to the immutable fee recipient (anyone may call).
    function claimFees() external returns (uint256 amount);

    // ------------------------------------------------------------------ orders

    /// @notice Cancel every resting order of the caller in O(1) (see `AllOrdersCancelled`).
    function cancelAll() external;

    /// @notice Cancel every expired resting order of the caller, freeing their index slots (an
    ///         account holds at most 32 resting orders). `place` and `batch` do this by
    ///         themselves when all slots are taken.
    /// @return cancelled How many orders were cancelled.
    function cancelExpired() external returns (uint256 cancelled);

    // ------------------------------------------------------------------ keepers

    /// @notice Close every funding interval whose boundary has passed and pay the caller
    ///         `keeperReward`. Reverts with `FundingNotDue` before the next boundary.
    ///         Every trade also closes due intervals first, so positions always pay for exactly
    ///         the intervals they were open across.
    function settleFunding() external;

    /// @notice Liquidate `account` if its equity is below maintenance margin: cancel its orders,
    ///         close the position against the book within `liquidationBandBps` of the mark, let
    ///         the insurance fund take the rest at mark -/+ `liquidationFeeBps`, cover bad debt
    ///         from the insurance fund, share what the fund cannot cover among the positions on
    ///         the other side (`LossSocialised`), and pay the caller `keeperReward` from the fund
    ///         (capped by the fund's balance and by `liquidationFeeBps` of the position's
    ///         notional).
    function liquidate(address account) external;

    // ------------------------------------------------------------------ views

    /// @notice Up to `depth` price levels of `side` from the best, with live lots per level.
    function bookLevels(uint8 side, uint256 depth) external view returns (uint256[] memory ticks, uint256[] memory lots);

    /// @notice Margin state of `account` at the current mark. Funding owed covers the intervals
    ///         closed so far; an interval whose boundary passed is included once anyone closes it
    ///         (`settleFunding` or any trade).
    function accountState(address account) external view returns (AccountState memory state);

    /// @notice Funding state.
    /// @return epoch Number of the interval in progress.
    /// @return nextBoundary Unix time it closes.
    /// @return premiumTwap Time-weighted average premium of the interval so far, 1e18-scaled.
    /// @return lastRate Rate of the last closed interval, 1e18-scaled.
    /// @return cumulativeIndex Cumulative funding per lot, collateral units.
    function fundingState()
        external
        view
        returns (uint256 epoch, uint256 nextBoundary, int256 premiumTwap, int256 lastRate, int256 cumulativeIndex);

    /// @notice Median of the index, the book mid with each best price clamped to `markBandBps`
    ///         around the index (an empty side counting as the index) and the index moved by the
    ///         open interval's premium TWAP: always within `markBandBps` of the index. Margin,
    ///         withdrawals and liquidation use it; premium samples use the banded mid.
    function markPrice() external view returns (uint256);

    /// @notice The oracle price converted to collateral units per whole base unit; reverts if
    ///         stale or non-positive.
    function indexPrice() external view returns (uint256);

    /// @notice Best bid tick (0 if none). May point at orders that expired or were cancelled
    ///         by `cancelAll` until matching prunes them.
    function bestBid() external view returns (uint24);

    /// @notice Best ask tick (0 if none); same caveat as `bestBid`.
    function bestAsk() external view returns (uint24);

    /// @notice Side and tick encoded in an order id.
    function decodeOrderId(uint256 orderId) external pure returns (uint8 side, uint24 tick);

    /// @notice Insurance fund balance. Negative only after a deficit that no open interest was
    ///         left to share (`LossSocialised` with `perLot` 0).
    function insuranceFund() external view returns (int256);

    /// @notice Trading fees accrued and not yet claimed.
    function accruedFees() external view returns (uint256);
}

/// @title IPerpMarket
/// @notice A perpetual-futures central limit order book for one instrument, settled in one ERC20.
///
/// @dev Units (never mix them):
/// - **collateral** amounts are raw token units (the USD token has 6 decimals: 1e6 = $1).
/// - **tick**: an integer price index in [1, 2**24 - 1]. The price of a tick is
///   `tick * tickSize`, in collateral units per ONE whole base unit (1e18 base wei).
/// - **lots**: an integer size. One lot is `lotSize` base wei (1e18 base wei = one whole unit).
///   Positions are signed lots (long > 0).
/// - **price** (index, mark): collateral units per one whole base unit, the same scale as
///   `tick * tickSize`; the oracle's 8-decimal answer is converted in `PriceLib` only.
/// - **notional** of `lots` at `tick` is `lots * tick * tickSize * lotSize / 1e18`, exact by
///   construction (the constructor requires `tickSize * lotSize` to be a multiple of 1e18).
/// - **rates** (funding, premium) are 1e18-scaled fractions (1e18 = 100%).
/// - **side**: 0 = bid (buy), 1 = ask (sell).
///
/// Order ids are globally unique and strictly increasing. They also encode where the order
/// rests so a cancel needs no lookup: bits [0,40) queue index within the level, [40,64) tick,
/// bit 64 side, bits [65,105) a global sequence number. The layout is part of the ABI: `Fill`
/// gives the maker order's side and tick only through its id (`decodeOrderId` decodes one).
///
/// Margin: equity = collateral + unrealized PnL at the mark - funding owed. Required initial
/// margin = IMF * (|position| * mark + max(bid order notional, ask order notional)); resting
/// orders reserve margin when placed, and only the larger side is reserved because at most one
/// side's worth of fills can add risk on top of the position. Maintenance margin =
/// MMF * |position| * mark. Fees, PnL and funding are internal ledger moves; tokens only move on
/// deposit, withdraw, fee claims and keeper rewards.
///
/// Limits per account: at most 32 resting orders (`TooManyOrders`; expired ones are reclaimed
/// when the room is needed, or by `cancelExpired`), and resting notional per side below 2**48
/// collateral units. The mark stays within `markBandBps` of the index.
///
/// No account, owner or keeper can move another account's funds. All market parameters are
/// immutable, bounded in the constructor and published once in `MarketCreated`.
///
/// The hot and cold halves are declared apart so the compiler checks that `PerpMarket`
/// implements `IPerpMarketHot` and `PerpMarketExtension` implements `IPerpMarketCold`: together
/// they serve the whole ABI at the market's address.
interface IPerpMarket is IPerpMarketHot, IPerpMarketCold {}
