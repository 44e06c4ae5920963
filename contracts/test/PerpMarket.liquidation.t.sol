// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";

/// @notice Liquidation: against the book, by the insurance fund, with bad debt, and refusals.
/// @dev carol deposits $1,000 and buys 300 lots (3 ETH, $9,000) at $3000 from alice.
contract PerpMarketLiquidationTest is MarketFixture {
    function setUp() public override {
        super.setUp();
        fund(alice, 1_000_000e6);
        fund(carol, 1_000e6);
        place(alice, ASK, PX, 300, POST);
        place(carol, BID, PX, 300, IOC); // taker fee 5 bps of $9,000 = $4.50
    }

    function test_RevertWhen_LiquidatingHealthyAccount() public {
        feed.set(2830e8); // equity 1000 - 4.5 - 510 = 485.5 > 5% of 8490
        vm.expectRevert(
            abi.encodeWithSelector(IPerpMarketTypes.NotLiquidatable.selector, int256(485_500_000), 424_500_000)
        );
        m.liquidate(carol);
    }

    function test_RevertWhen_LiquidatingUnknownAccount() public {
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.UnknownAccount.selector, bob));
        m.liquidate(bob);
    }

    function test_RevertWhen_LiquidatingWithStaleOracle() public {
        vm.warp(T0 + 3601);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.StaleOracle.selector, T0, T0 + 3601));
        m.liquidate(carol);
    }

    function test_liquidate_ClosesAgainstBook() public {
        place(alice, BID, 279_000, 300, POST); // $2790, inside the 5% band
        place(carol, ASK, 310_000, 10, POST); // must be cancelled by the liquidation
        feed.set(2800e8);
        vm.expectEmit(true, true, false, true, market);
        emit IPerpMarketTypes.Liquidation(carol, keeper, 300, 300, 0, 2800e6, 83_700_000, 1e6);
        vm.prank(keeper);
        m.liquidate(carol);
        IPerpMarketTypes.AccountState memory s = state(carol);
        assertEq(s.positionLots, 0, "closed");
        // 1000 - 4.5 - 630 (loss) - 4.185 (taker fee) - 83.7 (1% penalty)
        assertEq(s.collateral, 277_615_000, "collateral after liquidation");
        assertEq(m.openOrders(carol).length, 0, "orders cancelled");
        assertEq(state(alice).positionLots, 0, "alice took the other side");
        assertEq(m.insuranceFund(), 82_700_000, "penalty minus keeper reward");
        assertEq(usd.balanceOf(keeper), 1e6, "keeper paid");
    }

    function test_liquidate_InsuranceTakesWhatTheBookCannot() public {
        place(alice, BID, 279_000, 100, POST);
        place(alice, BID, 200_000, 1000, POST); // far outside the band: untouched
        feed.set(2800e8);
        vm.prank(keeper);
        m.liquidate(carol);
        assertEq(state(carol).positionLots, 0, "closed");
        assertEq(state(market).positionLots, 200, "insurance fund holds the rest");
        // The mark: median($2800 index, banded mid (2790 + 2800) / 2 = $2795, the TWAP side
        // sampled at the $3000 cached index: mid (2940 + 3000) / 2, -1%, so $2772) = $2795.
        // 200 lots at 2795 x 0.99 = $2767.05: entry notional 200 x 0.01 x 2767.05
        assertEq(state(market).entryNotional, 5534.1e6, "taken at mark minus penalty");
        assertEq(m.bestBid(), 200_000, "out-of-band bid untouched");
        // 1000 - 4.5 - 100 lots (-210 loss, 1.395 fee, 27.9 penalty) - 200 lots (-465.9 loss)
        assertEq(state(carol).collateral, 1000e6 - 4_500_000 - 210e6 - 1_395_000 - 27_900_000 - 465.9e6, "collateral");
    }

    function test_liquidate_InsuranceCoversBadDebt() public {
        usd.mint(bob, 10_000e6);
        vm.startPrank(bob);
        usd.approve(market, 10_000e6);
        m.depositInsurance(10_000e6);
        vm.stopPrank();
        feed.set(2600e8); // loss $1,200 > collateral
        vm.expectEmit(true, false, false, false, market);
        emit IPerpMarketTypes.BadDebtCovered(carol, 0, 0);
        vm.prank(keeper);
        m.liquidate(carol);
        IPerpMarketTypes.AccountState memory s = state(carol);
        assertEq(s.collateral, 0, "no negative collateral left");
        // The fund bought 300 lots at 2600 x 0.99 = 2574: carol lost 1278 + 4.5 fee on $1000.
        int256 badDebt = 1278e6 + 4_500_000 - 1000e6;
        assertEq(m.insuranceFund(), 10_000e6 - badDebt - 1e6, "fund absorbed the bad debt and paid the keeper");
    }

    function test_liquidate_DeadOrdersDoNotShieldTheMark() public {
        // Quotes that were mass-cancelled still sit at the top of the book until pruned; left
        // there they would hold the mark at $3000 and block the liquidation.
        place(alice, BID, PX, 10, POST);
        place(alice, ASK, PX + 1000, 10, POST);
        vm.prank(alice);
        m.cancelAll();
        feed.set(2800e8);
        vm.prank(keeper);
        m.liquidate(carol);
        assertEq(state(carol).positionLots, 0, "liquidated at the index-led mark");
        assertEq(m.bestBid(), 0, "dead bid pruned");
    }

    function test_fill_InsuranceAbsorbsAMakerLeftFlatBelowZero() public {
        // carol's resting ask at $2000 is fully margined when placed: $900 + $600 <= $1,505.50.
        fund(carol, 510e6);
        place(carol, ASK, 200_000, 300, POST);
        feed.set(2000e8);
        fund(bob, 100_000e6);
        vm.expectEmit(true, false, false, false, market);
        emit IPerpMarketTypes.BadDebtCovered(carol, 0, 0);
        place(bob, BID, 200_000, 300, IOC);
        // Loss 300 x 0.01 x $1000 = $3000 on $1,505.50, plus a $0.60 rebate: $1,493.90 short.
        assertEq(state(carol).positionLots, 0, "flat");
        assertEq(state(carol).collateral, 0, "no negative collateral left behind");
        assertEq(m.insuranceFund(), -1_493_900_000, "uncovered bad debt shows in the fund");
    }
}
