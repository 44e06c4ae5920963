// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";

/// @notice Socialised loss: bad debt the insurance fund cannot cover is charged, per lot and
///         lazily, to the positions on the side that gained.
/// @dev carol buys 300 lots (3 ETH) at $3000 from alice with $1,000; the index falls to $1800
///      with no bids, so the empty fund takes carol's long over at $1782 (1% below the mark):
///      carol is $2,658.50 short (995.50 - 3 x 1218), which is 8,861,667 units per lot over the
///      300 lots of open interest, rounded up.
contract PerpMarketSocialisedLossTest is MarketFixture {
    uint256 internal constant DEFICIT = 2_658_500_000;
    uint256 internal constant PER_LOT = 8_861_667;

    function setUp() public override {
        super.setUp();
        fund(alice, 1_000_000e6);
        fund(bob, 1_000_000e6);
        fund(carol, 1_000e6);
        place(alice, ASK, PX, 300, POST);
        place(carol, BID, PX, 300, IOC);
        feed.set(1800e8);
    }

    function liquidateCarol() internal {
        vm.expectEmit(false, false, false, true, market);
        emit IPerpMarketTypes.LossSocialised(ASK, DEFICIT, PER_LOT);
        vm.prank(keeper);
        m.liquidate(carol);
    }

    /// @dev sum(collateral - entry - owed) over every account, plus fees: the token balance.
    function ledger() internal view returns (int256 sum) {
        address[5] memory all = [alice, bob, carol, keeper, market];
        for (uint256 i; i < all.length; ++i) {
            IPerpMarketTypes.AccountState memory s = m.accountState(all[i]);
            sum += s.collateral - s.entryNotional - s.fundingOwed;
        }
        sum += int256(m.accruedFees());
    }

    function test_liquidate_DeficitChargedToTheShorts() public {
        liquidateCarol();
        assertEq(state(market).positionLots, 300, "the fund holds carol's long");
        // 300 x 8,861,667 = 2,658,500,100: 100 above the deficit, paid out as the keeper reward.
        assertEq(m.insuranceFund(), 0, "the fund ends at zero");
        assertEq(usd.balanceOf(keeper), 100, "keeper reward from the rounding");
        assertEq(state(alice).fundingOwed, int256(300 * PER_LOT), "alice owes her share");
        assertEq(state(market).fundingOwed, 0, "the longs owe nothing");
        assertEq(ledger(), int256(usd.balanceOf(market)), "ledger == balance");
    }

    function test_liquidate_ShareSettledWhenTheAccountIsTouched() public {
        liquidateCarol();
        int256 before = state(alice).collateral;
        vm.expectEmit(true, false, false, true, market);
        emit IPerpMarketTypes.SocialisedLossPaid(alice, 300 * PER_LOT);
        vm.prank(alice);
        m.withdraw(1e6);
        assertEq(state(alice).collateral, before - int256(300 * PER_LOT) - 1e6, "paid once");
        assertEq(state(alice).fundingOwed, 0, "nothing left to pay");
        vm.prank(alice);
        m.withdraw(1e6);
        assertEq(state(alice).collateral, before - int256(300 * PER_LOT) - 2e6, "not paid twice");
        assertEq(ledger(), int256(usd.balanceOf(market)), "ledger == balance");
    }

    function test_liquidate_NewShortIsNotCharged() public {
        liquidateCarol();
        place(alice, BID, 180_000, 100, POST);
        place(bob, ASK, 180_000, 100, IOC);
        assertEq(state(bob).positionLots, -100, "bob short after the loss");
        assertEq(state(bob).fundingOwed, 0, "opens at the current loss index");
    }

    function test_liquidate_FlipPaysTheOldSideOnly() public {
        liquidateCarol();
        int256 before = state(alice).collateral;
        place(bob, ASK, 180_000, 600, POST);
        place(alice, BID, 180_000, 600, IOC);
        assertEq(state(alice).positionLots, 300, "flipped long");
        assertEq(state(alice).fundingOwed, 0, "joins the longs' index");
        // Buying back 300 at $1800 realises (3000 - 1800) x 3 = $3,600; the taker fee is 5 bps.
        int256 fee = int256(600 * 18e6 * 5 / 10_000);
        assertEq(state(alice).collateral, before - int256(300 * PER_LOT) + 3600e6 - fee, "short's share paid");
        assertEq(ledger(), int256(usd.balanceOf(market)), "ledger == balance");
    }
}

/// @notice Makers are re-checked at the fill: a fill that would leave the maker under
///         maintenance margin at the mark cancels its order instead (`CANCEL_MARGIN`).
contract PerpMarketMakerCheckTest is MarketFixture {
    address internal dave = address(0xDA7E);

    function setUp() public override {
        super.setUp();
        fund(alice, 1_000_000e6);
        fund(bob, 1_000e6);
        fund(dave, 1_000e6);
    }

    function test_fill_StaleBidThatWouldBreachMaintenanceIsCancelled() public {
        // bob bids 3 ETH at $3000 with $1,000 (IM $900); the index falls to $2800 before a
        // taker hits it: bob would be $600 down at about $2800 against $420 of maintenance.
        uint256 id = place(bob, BID, PX, 300, POST);
        place(dave, BID, PX - 100, 10, POST);
        feed.set(2800e8);
        vm.expectEmit(true, true, false, true, market);
        emit IPerpMarketTypes.OrderCancelled(bob, id, 7, 300, 3);
        place(alice, ASK, PX - 100, 300, IOC);
        assertEq(state(bob).positionLots, 0, "bob never filled");
        assertEq(state(bob).reservedMargin, 0, "bob's reservation released");
        assertEq(state(dave).positionLots, 10, "the taker went on to the next maker");
        assertEq(state(alice).positionLots, -10, "the taker sold only what passed");
    }

    function test_fill_HealthyMakerStillFills() public {
        place(bob, BID, PX, 100, POST);
        feed.set(2800e8);
        place(alice, ASK, PX, 100, IOC);
        assertEq(state(bob).positionLots, 100, "one ETH long: $200 down on $1,000, well above maintenance");
    }

    function testFuzz_fill_EveryFilledMakerAboveMaintenance(uint256 lots, uint256 pxBps) public {
        lots = bound(lots, 1, 330);
        int256 px = int256(3000e8 * (10_000 - bound(pxBps, 0, 1000)) / 10_000);
        place(bob, BID, PX, uint48(lots), POST);
        feed.set(px);
        place(alice, ASK, PX - 1000, uint48(lots), IOC);
        IPerpMarketTypes.AccountState memory s = state(bob);
        if (s.positionLots != 0) assertGe(s.equity, int256(s.maintenanceMargin), "filled maker above maintenance");
        else assertEq(s.reservedMargin, 0, "or its order is gone");
    }
}
