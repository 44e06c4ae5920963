// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "../utils/MarketFixture.sol";
import {Handler} from "./Handler.sol";
import {IPerpMarketTypes} from "../../src/interfaces/IPerpMarketTypes.sol";
import {IMarketDeployment} from "../utils/IMarketDeployment.sol";
import {FundingMath} from "../../src/libraries/FundingMath.sol";

/// @notice System invariants under random traffic (see Handler).
/// @dev Accounting identity: a trade at any price leaves `collateral - entryNotional` summed over
///      both sides unchanged (realized PnL moves value between collateral and cost basis), and
///      funding is zero-sum over open interest. So the market's token balance must equal
///      sum(collateral - entryNotional - fundingOwed) over every account, insurance included,
///      plus accrued fees. With no positions open this is the plain "collateral + insurance +
///      fees" identity.
contract PerpMarketInvariantTest is MarketFixture {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new Handler(m, usd, feed, treasury);
        // Seed every actor so trading starts at once.
        for (uint256 i; i < 4; ++i) {
            handler.deposit(i, 10_000e6);
        }
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    function _value(address a) internal view returns (int256) {
        IPerpMarketTypes.AccountState memory s = m.accountState(a);
        return s.collateral - s.entryNotional - s.fundingOwed;
    }

    function _accounts() internal view returns (address[] memory all) {
        uint256 n = handler.actorCount();
        all = new address[](n + 1);
        for (uint256 i; i < n; ++i) {
            all[i] = handler.actors(i);
        }
        all[n] = market; // the insurance fund's account
    }

    function invariant_TokenBalanceEqualsLedger() public view {
        address[] memory all = _accounts();
        int256 sum;
        for (uint256 i; i < all.length; ++i) {
            sum += _value(all[i]);
        }
        sum += int256(m.accruedFees());
        assertEq(int256(usd.balanceOf(market)), sum, "balance == collateral + insurance + fees (marked)");
    }

    /// @dev The mark never leaves its band around the index, whatever the book holds.
    function invariant_MarkWithinBand() public view {
        try m.markPrice() returns (uint256 mark) {
            uint256 index = m.indexPrice();
            uint256 dev = mark > index ? mark - index : index - mark;
            assertLe(dev, index * MARK_BAND_BPS / 10_000, "mark within the band");
        } catch {} // stale oracle: there is no mark
    }

    function invariant_NoWithdrawalIntoBadDebt() public view {
        assertEq(handler.ghostWithdrawalsIntoBadDebt(), 0, "withdrawals leave equity >= 0");
    }

    /// @dev The per-account index lists only the account's own resting orders, each once, and
    ///      their notional is reserved (expired orders still reserve until pruned, so <=).
    function invariant_OpenOrdersMatchReservations() public view {
        uint256 n = handler.actorCount();
        for (uint256 i; i < n; ++i) {
            address a = handler.actors(i);
            IPerpMarketTypes.OrderView[] memory os = m.openOrders(a);
            assertLe(os.length, 32, "at most 32 resting orders");
            uint256[2] memory notional;
            for (uint256 j; j < os.length; ++j) {
                // The id encodes side (bit 64) and tick (bits 40..63) (see IPerpMarket).
                uint8 side = uint8((os[j].orderId >> 64) & 1);
                uint24 tick = uint24(os[j].orderId >> 40);
                assertEq(side, os[j].side, "side from the id");
                assertEq(tick, os[j].tick, "tick from the id");
                assertTrue(os[j].lots != 0, "live");
                for (uint256 k; k < j; ++k) {
                    assertTrue(os[k].orderId != os[j].orderId, "listed once");
                }
                notional[side] += uint256(os[j].lots) * tick * 100;
            }
            uint256 larger = notional[0] > notional[1] ? notional[0] : notional[1];
            assertLe(larger / 10, m.accountState(a).reservedMargin, "listed orders are reserved");
        }
    }

    function invariant_TokenBalanceEqualsGhostFlows() public view {
        assertEq(usd.balanceOf(market), handler.ghostIn() - handler.ghostOut(), "every token in and out");
    }

    function invariant_OpenInterestBalanced() public view {
        address[] memory all = _accounts();
        int256 longs;
        int256 shorts;
        for (uint256 i; i < all.length; ++i) {
            int256 p = m.accountState(all[i]).positionLots;
            if (p > 0) longs += p;
            else shorts -= p;
        }
        assertEq(longs, shorts, "long OI == short OI");
        // The open interest a socialised loss is shared over (slot 3, bits 160..223).
        assertEq(int256(uint256(uint64(uint256(vm.load(market, bytes32(uint256(3)))) >> 160))), longs, "tracked OI");
    }

    /// @dev Socialised loss: a liquidation never leaves the fund below zero while there are
    ///      positions to share the deficit over.
    function invariant_FundNeverNegativeWhileOpenInterest() public view {
        assertEq(handler.ghostFundNegativeWithOpenInterest(), 0, "deficit left unshared with OI open");
    }

    /// @dev Claims <= balance under socialised loss. The traders' equity plus fees is what can be
    ///      claimed; it equals the balance minus the fund's equity. So it can exceed the balance only
    ///      by the fund's own position marked at a loss (positions it took over are not
    ///      deleveraged) and by a deficit with no open interest to share it over (ghostUnshared).
    function invariant_ClaimsWithinBalance() public view {
        int256 claims = int256(m.accruedFees());
        uint256 n = handler.actorCount();
        for (uint256 i; i < n; ++i) {
            claims += m.accountState(handler.actors(i)).equity;
        }
        IPerpMarketTypes.AccountState memory f = m.accountState(market);
        int256 fundLoss = f.unrealizedPnl - f.fundingOwed;
        // Each account's unrealised PnL at the mark is rounded toward zero: one unit per account.
        int256 slack = (fundLoss < 0 ? -fundLoss : int256(0)) + int256(handler.ghostUnshared()) + int256(n + 1);
        assertTrue(claims <= int256(usd.balanceOf(market)) + slack, "claims <= balance");
    }

    function invariant_BookNeverCrossed() public view {
        uint24 bid = m.bestBid();
        uint24 ask = m.bestAsk();
        assertTrue(bid == 0 || ask == 0 || bid < ask, "crossed book");
    }

    function invariant_NoUnabsorbedNegativeCollateral() public view {
        uint256 n = handler.actorCount();
        for (uint256 i; i < n; ++i) {
            IPerpMarketTypes.AccountState memory s = m.accountState(handler.actors(i));
            if (s.positionLots == 0) assertGe(s.collateral, 0, "flat account below zero");
        }
    }

    // The hot path relies on three facts about the packed state (see PerpMarketBase: _due,
    // Position.fundingMark, _store). They are internal, so they are read with vm.load: slot 0 is
    // the Book word, slot 1 the FundingSlot, slot 2 the funding and loss indices, slot 6 the
    // positions mapping.

    /// @dev `_due` derives the boundary from the book word: the last touch lies in the open interval.
    function invariant_LastTouchInOpenInterval() public view {
        uint256 book = uint256(vm.load(market, bytes32(uint256(0))));
        uint256 lastTouch = uint40(book >> 48);
        (, uint256 nextBoundary,,,) = m.fundingState();
        assertEq((lastTouch / 3600 + 1) * 3600, nextBoundary, "lastTouch in [next - interval, next)");
    }

    /// @dev A position whose funding mark is the open interval owes nothing (its snapshot is current).
    function invariant_FundingMarkOfOpenIntervalOwesNothing() public view {
        (, uint256 nextBoundary,,,) = m.fundingState();
        uint256 open = nextBoundary / 3600 - 1;
        address[] memory all = _accounts();
        for (uint256 i; i < all.length; ++i) {
            uint256 id = IMarketDeployment(market).accountIdOf(all[i]);
            if (id == 0) continue;
            uint256 w = uint256(vm.load(market, keccak256(abi.encode(id, uint256(6)))));
            int256 lots = int64(uint64(w));
            uint256 mark = uint32(w >> 160);
            if (lots == 0) {
                assertEq(mark, 0, "flat: mark cleared");
                continue;
            }
            assertTrue(mark != 0 && mark <= open, "mark set, never ahead");
            // fundingOwed also counts the unsettled socialised loss of the position's side: the
            // loss indices are slot 2's bits 128..191 (longs) and 192..255 (shorts), the
            // position's snapshot its word's bits 192..255.
            uint256 losses = uint256(vm.load(market, bytes32(uint256(2))));
            uint256 idx = lots > 0 ? uint64(losses >> 128) : uint64(losses >> 192);
            int256 loss = int256((lots > 0 ? uint256(lots) : uint256(-lots)) * (idx - uint64(w >> 192)));
            if (mark == open) {
                assertEq(m.accountState(all[i]).fundingOwed - loss, 0, "mark current => no funding owed");
            }
        }
    }

    /// @dev Outside a due boundary the stored premium sample is the premium of the stored best
    ///      prices at the cached index, so skipping a resample that would not move them is exact.
    function _clamp(uint256 x, uint256 lo, uint256 hi) private pure returns (uint256) {
        return x < lo ? lo : x > hi ? hi : x;
    }

    function invariant_PremiumSampleMatchesBook() public view {
        (, uint256 nextBoundary,,,) = m.fundingState();
        if (block.timestamp >= nextBoundary) return;
        uint256 book = uint256(vm.load(market, bytes32(uint256(0))));
        uint256 index = uint96(uint256(vm.load(market, bytes32(uint256(1)))) >> 136);
        uint256 bid = uint24(book);
        uint256 ask = uint24(book >> 24);
        uint256 lo = index - index * MARK_BAND_BPS / 10_000;
        uint256 hi = index + index * MARK_BAND_BPS / 10_000;
        uint256 bidPx = bid == 0 ? index : _clamp(bid * 1e4, lo, hi);
        uint256 askPx = ask == 0 ? index : _clamp(ask * 1e4, lo, hi);
        int256 stored = int48(uint48(book >> 88));
        assertEq(stored, FundingMath.premium((bidPx + askPx) / 2, index), "premium sample == premium(book, index)");
    }
}
