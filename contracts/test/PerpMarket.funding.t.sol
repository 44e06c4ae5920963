// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";

/// @notice Funding: hand-computed payments, hourly-snapshot semantics, time weighting, catch-up.
/// @dev With the book at the index the premium is 0, so the 8-hour rate is the interest 0.01%
///      and one hour pays 0.00125%: per lot of 0.01 ETH at $3000 that is exactly
///      0.01 x 3000 x 0.0000125 = $0.000375 = 375 units.
contract PerpMarketFundingTest is MarketFixture {
    int256 internal constant HOURLY_RATE = 1.25e13;
    int256 internal constant PER_LOT = 375;

    function setUp() public override {
        super.setUp();
        fund(alice, 100_000e6);
        fund(bob, 100_000e6);
        fund(carol, 100_000e6);
        // Seed the fee pot so the keeper reward is payable.
        place(carol, ASK, PX, 10_000, POST);
        place(alice, BID, PX, 10_000, IOC);
        place(carol, BID, PX, 10_000, POST);
        place(alice, ASK, PX, 10_000, IOC);
    }

    /// @dev Open bob long / alice short `lots` at the index price, leaving the book empty.
    function openAtIndex(uint48 lots) internal {
        place(alice, ASK, PX, lots, POST);
        place(bob, BID, PX, lots, IOC);
    }

    function test_settleFunding_PositionAcrossBoundaryPaysSizeTimesRateTimesIndex() public {
        openAtIndex(10);
        int256 bobBefore = state(bob).collateral;
        int256 aliceBefore = state(alice).collateral;
        warpTo(T0 + 3600, ORACLE_PX);
        vm.expectEmit(true, false, false, true, market);
        emit IPerpMarketTypes.FundingSettled(0, HOURLY_RATE, 3000e6, PER_LOT);
        vm.prank(keeper);
        m.settleFunding();
        assertEq(usd.balanceOf(keeper), 1e6, "keeper reward");
        IPerpMarketTypes.AccountState memory b = state(bob);
        assertEq(b.fundingOwed, 10 * PER_LOT, "long owes 10 x 375");
        assertEq(state(alice).fundingOwed, -10 * PER_LOT, "short is owed");
        // Touch both: the lazy payment lands in collateral.
        place(bob, ASK, PX + 100, 1, POST);
        place(alice, BID, PX - 100, 1, POST);
        assertEq(state(bob).collateral, bobBefore - 3750, "long paid");
        assertEq(state(alice).collateral, aliceBefore + 3750, "short received");
        (uint256 epoch, uint256 next,, int256 lastRate, int256 cum) = m.fundingState();
        assertEq(epoch, 1, "epoch advanced");
        assertEq(next, T0 + 7200, "next boundary");
        assertEq(lastRate, HOURLY_RATE, "last rate");
        assertEq(cum, PER_LOT, "cumulative index");
    }

    function test_settleFunding_OpenedAndClosedInsideIntervalPaysNothing() public {
        warpTo(T0 + 600, ORACLE_PX);
        openAtIndex(10);
        warpTo(T0 + 1800, ORACLE_PX);
        place(alice, BID, PX, 10, POST);
        place(bob, ASK, PX, 10, IOC);
        int256 bobFlat = state(bob).collateral;
        warpTo(T0 + 3600, ORACLE_PX);
        m.settleFunding();
        IPerpMarketTypes.AccountState memory b = state(bob);
        assertEq(b.positionLots, 0, "flat");
        assertEq(b.fundingOwed, 0, "owes nothing");
        assertEq(b.collateral, bobFlat, "nothing paid");
    }

    function test_settleFunding_PremiumSignFlipIsTimeWeighted() public {
        // +0.4% premium for the first quarter: a lone bid at $3024 -> mid $3012.
        uint256 bidId = place(carol, BID, PX + 2400, 1, POST);
        warpTo(T0 + 900, ORACLE_PX);
        // -0.4% for the other three quarters: a lone ask at $2976 -> mid $2988.
        uint256[] memory ids = new uint256[](1);
        ids[0] = bidId;
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](1);
        ps[0] = order(ASK, PX - 2400, 1, POST);
        vm.prank(carol);
        m.batch(ids, ps);
        warpTo(T0 + 1800, ORACLE_PX);
        (,, int256 twapSoFar,,) = m.fundingState();
        assertEq(twapSoFar, 0, "half way: +0.4% x 900 s and -0.4% x 900 s cancel out");
        warpTo(T0 + 3600, ORACLE_PX);
        m.settleFunding();
        // avg = (0.004 x 900 - 0.004 x 2700) / 3600 = -0.002
        // r8h = -0.002 + clamp(0.0001 + 0.002, +-0.0005) = -0.0015; hourly = -0.0001875
        (,,, int256 lastRate,) = m.fundingState();
        assertEq(lastRate, -1.875e14, "time-weighted rate");
    }

    function test_settleFunding_CatchesUpSeveralBoundaries() public {
        openAtIndex(10);
        warpTo(T0 + 3 * 3600 + 1200, ORACLE_PX);
        vm.recordLogs();
        m.settleFunding();
        (uint256 epoch, uint256 next,,, int256 cum) = m.fundingState();
        assertEq(epoch, 3, "three intervals closed");
        assertEq(next, T0 + 4 * 3600, "next boundary");
        assertEq(cum, 3 * PER_LOT, "three intervals of funding");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 settled;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IPerpMarketTypes.FundingSettled.selector) {
                assertEq(uint256(logs[i].topics[1]), settled, "one event per epoch, in order");
                ++settled;
            }
        }
        assertEq(settled, 3, "three FundingSettled");
        assertEq(state(bob).fundingOwed, 30 * PER_LOT, "long owes three intervals");
    }

    function test_trade_ClosesDueIntervalBeforeChangingPositions() public {
        openAtIndex(10);
        warpTo(T0 + 3600 + 5, ORACLE_PX);
        // Nobody called settleFunding; carol opens a position after the boundary.
        place(alice, ASK, PX, 5, POST);
        place(carol, BID, PX, 5, IOC);
        assertEq(state(carol).fundingOwed, 0, "opened after the snapshot: pays nothing for it");
        assertEq(state(bob).fundingOwed, 10 * PER_LOT, "bob was open at the snapshot");
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.FundingNotDue.selector, T0 + 7200));
        m.settleFunding();
    }

    function test_RevertWhen_SettleFundingEarly() public {
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.FundingNotDue.selector, T0 + 3600));
        m.settleFunding();
    }

    function test_RevertWhen_SettleFundingWithStaleOracle() public {
        vm.warp(T0 + 3600 * 3);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.StaleOracle.selector, T0, T0 + 3600 * 3));
        m.settleFunding();
    }

    function test_settleFunding_PremiumIsBanded() public {
        // A lone bid at twice the index is banded to +2%: mid +1%, r8h = 0.01 + clamp(0.0001 -
        // 0.01, +-0.0005) = 0.0095, hourly 0.0011875.
        place(carol, BID, 2 * PX, 1, POST);
        warpTo(T0 + 3600, ORACLE_PX);
        m.settleFunding();
        (,,, int256 lastRate,) = m.fundingState();
        assertEq(lastRate, 1.1875e15, "premium at most the band");
    }

    function test_settleFunding_NegativeRateShortsPay() public {
        openAtIndex(10);
        // A lone ask 1% below the index for the whole interval: premium -0.5%.
        place(carol, ASK, PX - 3000, 1, POST);
        warpTo(T0 + 3600, ORACLE_PX);
        m.settleFunding();
        (,,, int256 lastRate, int256 cum) = m.fundingState();
        // r8h = -0.005 + clamp(0.0001 + 0.005, +-0.0005) = -0.0045; hourly -0.0005625
        assertEq(lastRate, -5.625e14, "negative rate");
        assertEq(cum, -16_875, "per lot: 0.01 x 3000 x 0.0005625 = $0.016875");
        assertEq(state(alice).fundingOwed, 10 * 16_875, "short pays");
        assertEq(state(bob).fundingOwed, -10 * 16_875, "long receives");
    }
}
