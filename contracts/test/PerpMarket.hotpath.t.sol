// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";

/// @notice The gas-saving paths of place and cancel: the margin check that needs no oracle
///         call when it passes at every possible mark, its fallback to the exact check, and the
///         premium sample that is resampled only when a best price moves.
/// @dev `feed.set(0)` makes every oracle read revert with `InvalidOraclePrice(0)`, so a
///      placement that succeeds with it proves the oracle was not read, and that revert proves
///      the fallback read it.
contract PerpMarketHotPathTest is MarketFixture {
    function setUp() public override {
        super.setUp();
        fund(alice, 1_000_000e6);
        fund(bob, 1_000_000e6);
    }

    /// @dev Alice ends short 10 lots; both sides of the book are quoted.
    function shortMakerQuotingBothSides() internal {
        place(alice, ASK, PX + 50, 10, POST);
        place(bob, BID, PX + 50, 10, IOC);
        place(alice, BID, PX - 50, 10, POST);
        place(alice, ASK, PX + 50, 10, POST);
    }

    function test_place_InventoryMakerNeedsNoOracleWhenBothSidesQuoted() public {
        shortMakerQuotingBothSides();
        feed.set(0);
        uint256 id = place(alice, BID, PX - 10, 10, POST);
        assertTrue(id != 0, "rests without reading the oracle");
        assertEq(m.bestBid(), PX - 10, "best bid");
    }

    function test_place_InventoryMakerReadsOracleWithOneSideEmpty() public {
        place(alice, ASK, PX + 50, 10, POST);
        place(bob, BID, PX + 50, 10, IOC);
        place(alice, BID, PX - 50, 10, POST);
        feed.set(0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidOraclePrice.selector, int256(0)));
        m.place(order(BID, PX - 10, 10, POST));
    }

    function test_RevertWhen_InventoryMakerBelowMarginWithBothSidesQuoted() public {
        fund(carol, 4_000e6);
        place(alice, ASK, PX + 1, 1000, POST);
        place(carol, BID, PX + 1, 1000, IOC);
        place(alice, BID, PX - 50, 10, POST);
        place(alice, ASK, PX + 50, 10, POST);
        // 400 lots more on the ask side reserve ~$1,200 of margin on top of ~$3,000: too much.
        vm.prank(carol);
        vm.expectPartialRevert(IPerpMarketTypes.InsufficientMargin.selector);
        m.place(order(ASK, PX + 100, 400, POST));
    }

    /// @dev Carol is long 1000 lots with ~$3,985 of equity. With the best bid far below the
    ///      index the bound (equity at the best bid vs margin at the best ask) fails, while the
    ///      exact check at the mark (the index, $3000) passes: the placement must read the oracle.
    function test_place_FallsBackToExactCheckWhenBoundFails() public {
        fund(carol, 4_000e6);
        place(alice, ASK, PX + 1, 1000, POST);
        place(carol, BID, PX + 1, 1000, IOC);
        place(alice, BID, PX - 1000, 10, POST);
        place(alice, ASK, PX + 50, 10, POST);

        feed.set(0);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidOraclePrice.selector, int256(0)));
        m.place(order(ASK, PX + 100, 300, POST));

        feed.set(ORACLE_PX);
        uint256 id = place(carol, ASK, PX + 100, 300, POST);
        assertTrue(id != 0, "exact check at the live mark passes");
        IPerpMarketTypes.AccountState memory s = state(carol);
        assertTrue(s.equity >= int256(s.initialMargin), "within initial margin");
    }

    function test_place_SettlesFundingOnFirstTouchOfANewInterval() public {
        shortMakerQuotingBothSides();
        warpTo(T0 + 3600, ORACLE_PX);
        vm.expectEmit(true, false, false, false, market);
        emit IPerpMarketTypes.FundingPaid(alice, 0);
        place(alice, BID, PX - 10, 10, POST);
        assertEq(state(alice).fundingOwed, int256(0), "settled");
        // Later in the same interval nothing is owed and nothing is paid again.
        vm.warp(T0 + 3700);
        vm.recordLogs();
        place(alice, BID, PX - 11, 10, POST);
        assertEq(vm.getRecordedLogs().length, 1, "only OrderPlaced");
    }

    function test_cancel_LeavingBestPricesKeepsPremiumTwap() public {
        place(alice, BID, PX + 10, 5, POST);
        place(bob, BID, PX + 10, 5, POST);
        place(alice, ASK, PX + 30, 5, POST);
        uint256 id = place(bob, ASK, PX + 30, 5, POST);
        vm.warp(T0 + 600);
        (,, int256 before,,) = m.fundingState();
        vm.prank(bob);
        assertTrue(m.cancel(id), "cancelled");
        (,, int256 afterCancel,,) = m.fundingState();
        assertEq(afterCancel, before, "same book, same sample");
        vm.warp(T0 + 1200);
        (,, int256 later,,) = m.fundingState();
        assertEq(later, before, "premium constant while the best prices are");
        assertTrue(before > 0, "mid above the index");
    }

    function test_cancel_MovingBestPriceResamplesPremium() public {
        uint256 id = place(alice, BID, PX + 10, 5, POST);
        place(alice, ASK, PX + 30, 5, POST);
        vm.warp(T0 + 600);
        (,, int256 before,,) = m.fundingState();
        vm.prank(alice);
        assertTrue(m.cancel(id), "cancelled");
        vm.warp(T0 + 1200);
        (,, int256 later,,) = m.fundingState();
        // Bid side empty: mid = (index + ask) / 2 is lower, so the average falls.
        assertTrue(later < before, "resampled");
    }
}
