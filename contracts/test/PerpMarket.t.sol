// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";
import {IPerpMarket} from "../src/interfaces/IPerpMarket.sol";
import {IMarketDeployment} from "./utils/IMarketDeployment.sol";

/// @notice Unit tests: collateral, placement, cancels, batch, matching rules and views.
contract PerpMarketTest is MarketFixture {
    function setUp() public override {
        super.setUp();
        fund(alice, 100_000e6);
        fund(bob, 100_000e6);
    }

    // ------------------------------------------------------------ deposit / withdraw

    function test_deposit_CreditsCollateral() public {
        assertEq(uint256(state(alice).collateral), 100_000e6, "collateral");
        assertEq(usd.balanceOf(market), 200_000e6, "token balance");
    }

    function test_RevertWhen_DepositZero() public {
        vm.prank(alice);
        vm.expectRevert(IPerpMarketTypes.ZeroAmount.selector);
        m.deposit(0);
    }

    function test_withdraw_SendsTokens() public {
        vm.prank(alice);
        m.withdraw(40_000e6);
        assertEq(usd.balanceOf(alice), 40_000e6, "alice tokens");
        assertEq(uint256(state(alice).collateral), 60_000e6, "collateral");
    }

    function test_RevertWhen_WithdrawZero() public {
        vm.prank(alice);
        vm.expectRevert(IPerpMarketTypes.ZeroAmount.selector);
        m.withdraw(0);
    }

    function test_RevertWhen_WithdrawUnknownAccount() public {
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.UnknownAccount.selector, carol));
        m.withdraw(1);
    }

    function test_RevertWhen_WithdrawBelowOrderMargin() public {
        // 1000 lots of 0.01 ETH at $3000 = $30,000 notional -> $3,000 initial margin reserved.
        place(alice, BID, PX, 1000, POST);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InsufficientMargin.selector, int256(2_000e6), 3_000e6));
        m.withdraw(98_000e6);
        vm.prank(alice);
        m.withdraw(97_000e6);
    }

    function test_RevertWhen_WithdrawBelowPositionMargin() public {
        place(alice, ASK, PX, 1000, POST);
        place(bob, BID, PX, 1000, IOC);
        // bob long 1000 lots ($30,000): IM $3,000; collateral 100,000 - taker fee 15.
        vm.prank(bob);
        vm.expectRevert();
        m.withdraw(97_000e6);
        vm.prank(bob);
        m.withdraw(96_000e6);
    }

    function test_withdraw_FlatAccountIgnoresStaleOracle() public {
        vm.warp(T0 + 2 days);
        vm.prank(alice);
        m.withdraw(1e6);
        assertEq(usd.balanceOf(alice), 1e6, "withdrawn while the oracle is stale");
    }

    function test_depositInsurance_AddsToFund() public {
        usd.mint(carol, 5e6);
        vm.startPrank(carol);
        usd.approve(market, 5e6);
        m.depositInsurance(5e6);
        vm.stopPrank();
        assertEq(uint256(m.insuranceFund()), 5e6, "insurance");
    }

    function test_RevertWhen_DepositInsuranceZero() public {
        vm.expectRevert(IPerpMarketTypes.ZeroAmount.selector);
        m.depositInsurance(0);
    }

    function test_claimFees_PaysRecipientOnly() public {
        place(alice, ASK, PX, 1000, POST);
        place(bob, BID, PX, 1000, IOC);
        // taker 5 bps of $30,000 = $15, maker rebate 1 bp = $3 -> $12 accrued.
        assertEq(m.accruedFees(), 12e6, "accrued");
        vm.prank(carol);
        uint256 paid = m.claimFees();
        assertEq(paid, 12e6, "paid");
        assertEq(usd.balanceOf(treasury), 12e6, "treasury");
        vm.expectRevert(IPerpMarketTypes.ZeroAmount.selector);
        m.claimFees();
    }

    // ------------------------------------------------------------ place

    function test_place_RestsAtLevel() public {
        vm.expectEmit(true, false, false, false, market);
        emit IPerpMarketTypes.OrderPlaced(alice, 0, 7, BID, PX, 5, POST, 0);
        uint256 id = place(alice, BID, PX, 5, POST);
        assertTrue(id != 0, "id");
        assertEq(m.bestBid(), PX, "best bid");
        (uint256[] memory ticks, uint256[] memory lots) = m.bookLevels(BID, 3);
        assertEq(ticks.length, 1, "levels");
        assertEq(ticks[0], PX, "tick");
        assertEq(lots[0], 5, "lots");
        (uint8 side, uint24 tick) = m.decodeOrderId(id);
        assertEq(side, BID, "decoded side");
        assertEq(tick, PX, "decoded tick");
        // 5 lots x $30 = $150 notional -> $15 reserved.
        assertEq(state(alice).reservedMargin, 15e6, "reserved");
    }

    function test_place_IdsIncrease() public {
        uint256 a = place(alice, BID, PX - 10, 1, POST);
        uint256 b = place(bob, BID, PX - 20, 1, POST);
        uint256 c = place(alice, ASK, PX + 10, 1, POST);
        assertTrue(a < b && b < c, "monotonic ids");
    }

    function test_RevertWhen_PlaceInvalidSide() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidSide.selector, uint8(2)));
        m.place(order(2, PX, 1, 0));
    }

    function test_RevertWhen_PlaceTickZero() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidTick.selector, uint256(0)));
        m.place(order(BID, 0, 1, 0));
    }

    function test_RevertWhen_PlaceZeroLots() public {
        vm.prank(alice);
        vm.expectRevert(IPerpMarketTypes.InvalidLots.selector);
        m.place(order(BID, PX, 0, 0));
    }

    function test_RevertWhen_PlaceContradictoryFlags() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidFlags.selector, uint8(POST | IOC)));
        m.place(order(BID, PX, 1, POST | IOC));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidFlags.selector, uint8(8)));
        m.place(order(BID, PX, 1, 8));
    }

    function test_RevertWhen_PlaceExpired() public {
        IPerpMarketTypes.Place memory o = order(BID, PX, 1, 0);
        o.expiry = uint32(block.timestamp);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidExpiry.selector, uint32(block.timestamp)));
        m.place(o);
    }

    function test_RevertWhen_PlaceBelowMinNotional() public {
        // 1 lot at tick 100 = 10,000 units < 1e6.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.BelowMinNotional.selector, uint256(10_000), 1e6));
        m.place(order(BID, 100, 1, 0));
    }

    function test_RevertWhen_PlaceUnknownAccount() public {
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.UnknownAccount.selector, carol));
        m.place(order(BID, PX, 1, 0));
    }

    function test_RevertWhen_PlaceBeyondMargin() public {
        // $100,000 equity at 10% IM supports $1,000,000 of orders: 33,333 lots at $30.
        place(alice, BID, PX, 33_333, POST);
        vm.prank(alice);
        vm.expectRevert();
        m.place(order(BID, PX, 1, POST));
    }

    function test_place_OppositeSidesReserveOnlyTheLarger() public {
        place(alice, BID, PX - 100, 30_000, POST);
        place(alice, ASK, PX + 100, 30_000, POST);
        assertLe(state(alice).reservedMargin, 100_000e6, "both sides fit one side's margin");
    }

    function test_RevertWhen_PostOnlyWouldCross() public {
        place(alice, ASK, PX, 1, POST);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.PostOnlyWouldCross.selector, PX, PX));
        m.place(order(BID, PX, 1, POST));
    }

    function test_RevertWhen_PostOnlyWouldCrossOwnOrder() public {
        place(alice, ASK, PX, 1, POST);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.PostOnlyWouldCross.selector, PX, PX));
        m.place(order(BID, PX, 1, POST));
    }

    function test_place_PostOnlyPrunesDeadCrossingOrders() public {
        place(alice, ASK, PX, 1, POST);
        vm.prank(alice);
        m.cancelAll();
        // The dead ask still marks the best price until pruned; a post-only bid prunes it and rests.
        place(bob, BID, PX, 1, POST);
        assertEq(m.bestBid(), PX, "bid rests");
        assertEq(m.bestAsk(), 0, "dead ask pruned");
    }

    function test_place_TakesAtMakerPrice() public {
        place(alice, ASK, PX, 10, POST);
        vm.expectEmit(true, true, false, true, market);
        // 10 lots = $300: maker rebate 1 bp = $0.03, taker fee 5 bps = $0.15.
        emit IPerpMarketTypes.Fill(alice, bob, 0, 7, 10, -3e4, 15e4);
        uint256 id = place(bob, BID, PX + 500, 10, 0);
        assertEq(id, 0, "nothing rests");
        assertEq(state(bob).positionLots, 10, "taker long");
        assertEq(state(alice).positionLots, -10, "maker short");
        assertEq(state(bob).entryNotional, 300e6, "entry at maker price");
    }

    function test_place_RemainderRests() public {
        place(alice, ASK, PX, 4, POST);
        uint256 id = place(bob, BID, PX, 10, 0);
        assertTrue(id != 0, "remainder rests");
        assertEq(m.bestBid(), PX, "bid at limit");
        assertEq(m.bestAsk(), 0, "ask consumed");
        (, uint256[] memory lots) = m.bookLevels(BID, 1);
        assertEq(lots[0], 6, "remaining lots");
    }

    function test_place_IocDropsRemainder() public {
        place(alice, ASK, PX, 4, POST);
        uint256 id = place(bob, BID, PX, 10, IOC);
        assertEq(id, 0, "ioc never rests");
        assertEq(m.bestBid(), 0, "no bid");
        assertEq(state(bob).positionLots, 4, "filled part");
    }

    function test_place_ReduceOnlyClipsToPosition() public {
        place(alice, ASK, PX, 5, POST);
        place(bob, BID, PX, 5, IOC);
        place(alice, BID, PX - 1, 50, POST);
        place(bob, ASK, PX - 1, 50, REDUCE);
        assertEq(state(bob).positionLots, 0, "reduced to flat, not flipped");
    }

    function test_RevertWhen_ReduceOnlyWouldIncrease() public {
        vm.prank(bob);
        vm.expectRevert(IPerpMarketTypes.ReduceOnlyWouldIncrease.selector);
        m.place(order(ASK, PX, 1, REDUCE));
    }

    function test_place_PriceTimePriority() public {
        uint256 first = place(alice, ASK, PX, 3, POST);
        fund(carol, 100_000e6);
        place(carol, ASK, PX, 3, POST);
        place(carol, ASK, PX - 1, 2, POST); // better price goes first
        vm.recordLogs();
        place(bob, BID, PX, 4, IOC);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 fills;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] != IPerpMarketTypes.Fill.selector) continue;
            ++fills;
            address maker = address(uint160(uint256(logs[i].topics[1])));
            if (fills == 1) assertEq(maker, carol, "best price first");
            if (fills == 2) {
                assertEq(maker, alice, "then the earliest at the next level");
                assertEq(uint256(logs[i].topics[3]), first, "alice's order id");
            }
        }
        assertEq(fills, 2, "two fills");
        assertEq(state(carol).positionLots, -2, "carol filled at the better price only");
        assertEq(state(alice).positionLots, -2, "alice partially");
    }

    function test_place_SelfTradeCancelsRestingOrder() public {
        uint256 own = place(alice, ASK, PX, 5, POST);
        place(bob, ASK, PX, 5, POST);
        vm.expectEmit(true, true, false, true, market);
        emit IPerpMarketTypes.OrderCancelled(alice, own, 7, 5, 2);
        place(alice, BID, PX, 5, IOC);
        assertEq(state(alice).positionLots, 5, "filled against bob, not itself");
        assertEq(state(bob).positionLots, -5, "bob filled");
        assertEq(state(alice).reservedMargin, 0, "cancelled order's margin released");
    }

    function test_place_ExpiredOrderNeverFills() public {
        IPerpMarketTypes.Place memory o = order(ASK, PX, 5, POST);
        o.expiry = uint32(block.timestamp + 60);
        vm.prank(alice);
        uint256 id = m.place(o);
        vm.warp(block.timestamp + 61);
        feed.set(ORACLE_PX);
        vm.expectEmit(true, true, false, true, market);
        emit IPerpMarketTypes.OrderCancelled(alice, id, 7, 5, 1);
        place(bob, BID, PX, 5, IOC);
        assertEq(state(bob).positionLots, 0, "no fill");
        assertEq(m.bestAsk(), 0, "pruned");
        assertEq(state(alice).reservedMargin, 0, "margin released");
    }

    function test_place_MaxFillsBoundsATake() public {
        address dave = address(0xDA7E);
        fund(carol, 1_000_000e6);
        fund(dave, 1_000_000e6);
        // An account rests at most 32 orders: three accounts make 70 between them.
        for (uint256 i; i < 70; ++i) {
            place(i < 32 ? alice : i < 64 ? carol : dave, ASK, PX, 1, POST);
        }
        uint256 id = place(bob, BID, PX, 70, 0);
        assertEq(state(bob).positionLots, 64, "at most maxFills fills");
        assertEq(id, 0, "a remainder that would still cross does not rest");
        assertEq(m.bestAsk(), PX, "rest of the level stays");
    }

    function test_RevertWhen_TakeWithStaleOracle() public {
        place(alice, ASK, PX, 5, POST);
        vm.warp(block.timestamp + 3601);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.StaleOracle.selector, T0, T0 + 3601));
        m.place(order(BID, PX, 5, IOC));
    }

    function test_RevertWhen_OraclePriceNotPositive() public {
        place(alice, ASK, PX, 5, POST);
        feed.set(0);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidOraclePrice.selector, int256(0)));
        m.place(order(BID, PX, 5, IOC));
        feed.set(-1);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidOraclePrice.selector, int256(-1)));
        m.indexPrice();
    }

    function test_RevertWhen_TakerBelowInitialMargin() public {
        fund(carol, 1_000e6);
        place(alice, ASK, PX, 1000, POST);
        // $1,000 supports $10,000 at 10%: 333 lots; 400 lots is too much.
        vm.prank(carol);
        vm.expectRevert();
        m.place(order(BID, PX, 400, IOC));
        place(carol, BID, PX, 300, IOC);
        assertEq(state(carol).positionLots, 300, "within margin");
    }

    function test_place_RealizesPnlOnReduce() public {
        place(alice, ASK, PX, 10, POST);
        place(bob, BID, PX, 10, IOC);
        place(alice, BID, PX + 3000, 4, POST); // $3030
        place(bob, ASK, PX + 3000, 4, IOC);
        // bob sold 4 lots $30 higher per whole ETH: 4 x 0.01 x $30 = $1.20 realized.
        IPerpMarketTypes.AccountState memory s = state(bob);
        assertEq(s.positionLots, 6, "remaining");
        assertEq(s.entryNotional, 180e6, "cost basis of 6 lots at $3000");
        // collateral = 100,000 - fee(0.15) - fee(0.0606) + 1.20
        int256 expected = 100_000e6 - 150_000 - 60_600 + 1_200_000;
        assertEq(s.collateral, expected, "realized pnl and fees");
    }

    // ------------------------------------------------------------ cancel / batch

    function test_cancel_RemovesOrderAndReleasesMargin() public {
        uint256 id = place(alice, BID, PX, 5, POST);
        vm.expectEmit(true, true, false, true, market);
        emit IPerpMarketTypes.OrderCancelled(alice, id, 7, 5, 0);
        vm.prank(alice);
        assertTrue(m.cancel(id), "cancelled");
        assertEq(m.bestBid(), 0, "level gone");
        assertEq(state(alice).reservedMargin, 0, "released");
    }

    function test_cancel_MiddleOfLevelKeepsFifo() public {
        place(alice, ASK, PX, 1, POST);
        uint256 mid = place(alice, ASK, PX, 1, POST);
        place(alice, ASK, PX, 1, POST);
        vm.prank(alice);
        m.cancel(mid);
        (, uint256[] memory lots) = m.bookLevels(ASK, 1);
        assertEq(lots[0], 2, "two left");
        place(bob, BID, PX, 2, IOC);
        assertEq(m.bestAsk(), 0, "both remaining filled");
    }

    function test_cancel_FilledOrderReturnsFalse() public {
        uint256 id = place(alice, ASK, PX, 5, POST);
        place(bob, BID, PX, 5, IOC);
        vm.prank(alice);
        assertTrue(!m.cancel(id), "already filled");
    }

    function test_RevertWhen_CancelOthersOrder() public {
        uint256 id = place(alice, BID, PX, 5, POST);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.NotOrderOwner.selector, id));
        m.cancel(id);
    }

    function test_cancel_WorksWithStaleOracle() public {
        uint256 id = place(alice, BID, PX, 5, POST);
        vm.warp(block.timestamp + 10 days);
        vm.prank(alice);
        assertTrue(m.cancel(id), "cancel never needs the oracle");
    }

    function test_batch_RefreshesQuotes() public {
        uint256 b = place(alice, BID, PX - 10, 5, POST);
        uint256 a = place(alice, ASK, PX + 10, 5, POST);
        uint256[] memory ids = new uint256[](2);
        ids[0] = b;
        ids[1] = a;
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](2);
        ps[0] = order(BID, PX - 5, 6, POST);
        ps[1] = order(ASK, PX + 5, 6, POST);
        vm.prank(alice);
        uint256[] memory newIds = m.batch(ids, ps);
        assertEq(newIds.length, 2, "two ids");
        assertEq(m.bestBid(), PX - 5, "new bid");
        assertEq(m.bestAsk(), PX + 5, "new ask");
        assertEq(m.openOrders(alice).length, 2, "old ones gone");
        // max(6 x 100 x 299,995, 6 x 100 x 300,005) x 10%: the larger (ask) side only.
        assertEq(state(alice).reservedMargin, 18_000_300, "reserved for the new quotes only");
    }

    function test_batch_SkipsFilledIds() public {
        uint256 a = place(alice, ASK, PX, 5, POST);
        place(bob, BID, PX, 5, IOC);
        uint256[] memory ids = new uint256[](1);
        ids[0] = a;
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](1);
        ps[0] = order(ASK, PX + 1, 5, POST);
        vm.prank(alice);
        uint256[] memory newIds = m.batch(ids, ps);
        assertTrue(newIds[0] != 0, "placed despite the filled cancel");
    }

    function test_batch_CancelsOnly() public {
        uint256 a = place(alice, ASK, PX, 5, POST);
        uint256[] memory ids = new uint256[](1);
        ids[0] = a;
        vm.prank(alice);
        m.batch(ids, new IPerpMarketTypes.Place[](0));
        assertEq(m.bestAsk(), 0, "cancelled");
    }

    function test_RevertWhen_BatchPlacementFails_CancelsRollBack() public {
        uint256 a = place(alice, ASK, PX + 10, 5, POST);
        place(bob, BID, PX, 5, POST);
        uint256[] memory ids = new uint256[](1);
        ids[0] = a;
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](2);
        ps[0] = order(ASK, PX, 5, POST); // would cross bob's bid: skipped, not a failure
        ps[1] = order(ASK, PX + 5, 0, POST); // invalid: fails the batch
        vm.prank(alice);
        vm.expectRevert(IPerpMarketTypes.InvalidLots.selector);
        m.batch(ids, ps);
        assertEq(m.bestAsk(), PX + 10, "the cancel rolled back");
    }

    function test_RevertWhen_BatchPlacementOverMargin_CancelsRollBack() public {
        uint256 a = place(alice, ASK, PX + 10, 5, POST);
        place(bob, BID, PX, 5, POST);
        uint256[] memory ids = new uint256[](1);
        ids[0] = a;
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](2);
        ps[0] = order(ASK, PX, 5, POST); // skipped
        ps[1] = order(ASK, PX + 5, 40_000, POST); // $1.2M notional: $120,000 IM on $100,000
        vm.prank(alice);
        try m.batch(ids, ps) {
            revert("the batch went through");
        } catch (bytes memory err) {
            assertTrue(bytes4(err) == IPerpMarketTypes.InsufficientMargin.selector, "margin failure");
        }
        assertEq(m.bestAsk(), PX + 10, "the cancel rolled back");
    }

    /// @dev The red-team `funding_whiplash` case: a maker's refresh whose post-only order meets
    ///      a live order placed since the maker read the book. The crossing place is skipped;
    ///      the cancels and the other places land, and margin is reserved for what rests only.
    function test_batch_SkipsCrossingPostOnly_CancelsAndOtherPlacesLand() public {
        uint256 b = place(alice, BID, PX - 10, 5, POST);
        uint256 a = place(alice, ASK, PX + 10, 5, POST);
        place(bob, BID, PX, 5, POST); // the book moved: bob bids where alice's new ask goes
        uint256[] memory ids = new uint256[](2);
        ids[0] = b;
        ids[1] = a;
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](3);
        ps[0] = order(BID, PX - 5, 6, POST);
        ps[1] = order(ASK, PX, 6, POST); // crosses bob's live bid
        ps[1].clientId = 42;
        ps[2] = order(ASK, PX + 5, 6, POST);
        vm.expectEmit(true, false, false, true, market);
        emit IPerpMarketTypes.PlaceSkipped(alice, 42, ASK, PX, 6, PX);
        vm.prank(alice);
        uint256[] memory newIds = m.batch(ids, ps);
        assertEq(newIds.length, 3, "one id a place");
        assertTrue(newIds[0] != 0 && newIds[2] != 0, "the other places rest");
        assertEq(newIds[1], 0, "the crossing place does not");
        IPerpMarketTypes.OrderView[] memory open = m.openOrders(alice);
        assertEq(open.length, 2, "the old ladder is cancelled");
        assertEq(open[0].orderId + open[1].orderId, newIds[0] + newIds[2], "only the new orders rest");
        assertEq(m.bestBid(), PX, "bob's bid untouched");
        assertEq(m.bestAsk(), PX + 5, "the new ask");
        assertEq(state(bob).positionLots, 0, "post-only never takes");
        assertEq(state(alice).positionLots, 0, "post-only never takes");
        // The same two resting orders placed by a fresh account reserve exactly as much.
        fund(carol, 100_000e6);
        IPerpMarketTypes.Place[] memory ref = new IPerpMarketTypes.Place[](2);
        ref[0] = ps[0];
        ref[1] = ps[2];
        vm.prank(carol);
        m.batch(new uint256[](0), ref);
        assertEq(state(alice).reservedMargin, state(carol).reservedMargin, "nothing reserved for the skip");
        assertEq(state(alice).reservedMargin, 18_000_300, "max(6 x 100 x 299,995, 6 x 100 x 300,005) x 10%");
        assertEq(state(alice).collateral, state(carol).collateral, "no fee");
        // The single-order entry point still reverts on the same order.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.PostOnlyWouldCross.selector, PX, PX));
        m.place(ps[1]);
    }

    function test_batch_SkipsPostOnlyCrossingOwnOrder() public {
        place(alice, ASK, PX, 5, POST);
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](1);
        ps[0] = order(BID, PX, 5, POST);
        vm.expectEmit(true, false, false, true, market);
        emit IPerpMarketTypes.PlaceSkipped(alice, 7, BID, PX, 5, PX);
        vm.prank(alice);
        uint256[] memory newIds = m.batch(new uint256[](0), ps);
        assertEq(newIds[0], 0, "skipped");
        assertEq(m.openOrders(alice).length, 1, "the ask alone rests");
        assertEq(m.bestBid(), 0, "no bid");
    }

    /// @dev Dead orders in the way are pruned as before (their makers' margin released), and the
    ///      order is skipped at the first live one.
    function test_batch_SkipsAtLiveOrderAfterPruningDeadOnes() public {
        fund(carol, 100_000e6);
        IPerpMarketTypes.Place memory o = order(BID, PX, 10, POST);
        o.expiry = uint32(block.timestamp + 10);
        vm.prank(carol);
        m.place(o);
        place(bob, BID, PX - 1, 5, POST);
        vm.warp(block.timestamp + 10);
        assertTrue(state(carol).reservedMargin != 0, "carol's expired bid still reserves until pruned");
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](2);
        ps[0] = order(ASK, PX - 1, 5, POST); // prunes carol's dead bid, then meets bob's
        ps[1] = order(ASK, PX + 5, 5, POST);
        vm.prank(alice);
        uint256[] memory newIds = m.batch(new uint256[](0), ps);
        assertEq(newIds[0], 0, "skipped at bob's live bid");
        assertTrue(newIds[1] != 0, "the other place rests");
        assertEq(m.bestBid(), PX - 1, "carol's dead bid pruned, bob's left");
        assertEq(state(carol).reservedMargin, 0, "the pruned maker's margin released");
        assertEq(m.openOrders(alice).length, 1, "one order of alice's");
    }

    function test_cancelAll_InvalidatesEveryOrder() public {
        place(alice, ASK, PX, 5, POST);
        place(alice, ASK, PX + 1, 5, POST);
        place(alice, BID, PX - 1, 5, POST);
        vm.prank(alice);
        m.cancelAll();
        assertEq(m.openOrders(alice).length, 0, "no open orders");
        assertEq(state(alice).reservedMargin, 0, "margin released");
        (uint256[] memory ticks,) = m.bookLevels(ASK, 5);
        assertEq(ticks.length, 0, "no live levels");
        place(bob, BID, PX + 1, 10, IOC);
        assertEq(state(bob).positionLots, 0, "dead orders never fill");
        assertEq(m.bestAsk(), 0, "pruned by the take");
    }

    function test_RevertWhen_CancelAllUnknownAccount() public {
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.UnknownAccount.selector, carol));
        m.cancelAll();
    }

    // ------------------------------------------------------------ views

    function test_markPrice_IsMedianOfIndexBandedMidAndPremiumTwap() public {
        assertEq(m.markPrice(), 3000e6, "empty book: index");
        uint256 ask = place(alice, ASK, PX + 2000, 1, POST); // $3020
        place(alice, BID, PX + 1000, 1, POST); // $3010, sampled at once
        warpTo(T0 + 1800, ORACLE_PX);
        // mid $3015 (+0.5%) held for the half interval so far: the TWAP implies $3015 too.
        assertEq(m.markPrice(), 3015e6, "mid held all interval");
        // Far prices are banded: both sides clamp to index + 2%.
        vm.prank(alice);
        m.cancel(ask);
        place(bob, BID, PX + 30_000, 1, POST);
        place(bob, ASK, PX + 40_000, 1, POST);
        assertEq(m.markPrice(), 3015e6, "a fresh far book does not move the TWAP side");
        warpTo(T0 + 3599, ORACLE_PX);
        assertLe(m.markPrice(), 3060e6, "within the band");
        assertTrue(m.markPrice() > 3015e6, "held far, it moves the mark up to the band");
        assertEq(m.indexPrice(), 3000e6, "index");
    }

    function test_openOrders_ListsLiveOrders() public {
        place(alice, BID, PX - 1, 2, POST);
        IPerpMarketTypes.Place memory o = order(ASK, PX + 1, 3, POST);
        o.clientId = 99;
        o.expiry = uint32(block.timestamp + 100);
        vm.prank(alice);
        uint256 id = m.place(o);
        place(bob, BID, PX - 2, 2, POST);
        IPerpMarketTypes.OrderView[] memory os = m.openOrders(alice);
        assertEq(os.length, 2, "alice's only");
        bool found;
        for (uint256 i; i < os.length; ++i) {
            if (os[i].orderId == id) {
                found = true;
                assertEq(os[i].clientId, 99, "client id");
                assertEq(os[i].lots, 3, "lots");
                assertEq(os[i].tick, PX + 1, "tick");
                assertEq(os[i].expiry, block.timestamp + 100, "expiry");
            }
        }
        assertTrue(found, "listed");
        assertEq(m.openOrders(carol).length, 0, "unknown account");
    }

    function test_accountState_ReportsMargin() public {
        place(alice, ASK, PX, 1000, POST);
        place(bob, BID, PX, 1000, IOC);
        feed.set(3030e8); // +1%
        IPerpMarketTypes.AccountState memory s = state(bob);
        assertEq(s.unrealizedPnl, 300e6, "1000 lots x 0.01 x $30");
        assertEq(s.initialMargin, 3030e6, "10% of $30,300");
        assertEq(s.maintenanceMargin, 1515e6, "5%");
        assertEq(s.equity, s.collateral + 300e6, "equity");
    }

    function test_fundingState_Initial() public view {
        (uint256 epoch, uint256 next, int256 twap, int256 lastRate, int256 cum) = m.fundingState();
        assertEq(epoch, 0, "epoch");
        assertEq(next, T0 + 3600, "aligned boundary");
        assertEq(twap, 0, "no premium");
        assertEq(lastRate, 0, "no rate");
        assertEq(cum, 0, "cum");
    }

    function test_bookLevels_OrdersBySide() public {
        place(alice, BID, PX - 1, 1, POST);
        place(alice, BID, PX - 300, 2, POST); // another bitmap word
        place(alice, BID, PX - 70_000, 3, POST); // another mid word
        (uint256[] memory ticks, uint256[] memory lots) = m.bookLevels(BID, 10);
        assertEq(ticks.length, 3, "three levels");
        assertEq(ticks[0], PX - 1, "best first");
        assertEq(ticks[1], PX - 300, "second");
        assertEq(ticks[2], PX - 70_000, "third");
        assertEq(lots[2], 3, "lots");
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidSide.selector, uint8(5)));
        m.bookLevels(5, 1);
    }

    // ------------------------------------------------------------ construction

    function test_RevertWhen_ExtensionCalledDirectly() public {
        IPerpMarket ext = IPerpMarket(IMarketDeployment(market).extension());
        vm.expectRevert(bytes4(keccak256("DirectCall()")));
        ext.deposit(1);
    }

    function test_RevertWhen_ExtensionParamsDiffer() public {
        IPerpMarketTypes.MarketParams memory p = params();
        address ext = deployExtension(p);
        p.takerFeeBps = 6;
        vm.expectRevert(
            abi.encodeWithSelector(IPerpMarketTypes.InvalidParam.selector, IPerpMarketTypes.Param.Extension)
        );
        deployMarket(p, ext);
    }

    function test_RevertWhen_ParamsOutOfBounds() public {
        IPerpMarketTypes.MarketParams memory p = params();
        p.maintenanceMarginBps = 1000;
        vm.expectRevert(
            abi.encodeWithSelector(IPerpMarketTypes.InvalidParam.selector, IPerpMarketTypes.Param.MaintenanceMargin)
        );
        deployMarket(p, address(0xdead));
        p = params();
        p.makerFeeBps = -6;
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidParam.selector, IPerpMarketTypes.Param.MakerFee));
        deployMarket(p, address(0xdead));
        p = params();
        p.lotSize = 3;
        vm.expectRevert(
            abi.encodeWithSelector(IPerpMarketTypes.InvalidParam.selector, IPerpMarketTypes.Param.NotionalUnit)
        );
        deployMarket(p, address(0xdead));
        p = params();
        p.fundingCap = 2e17;
        vm.expectRevert(
            abi.encodeWithSelector(IPerpMarketTypes.InvalidParam.selector, IPerpMarketTypes.Param.FundingCap)
        );
        deployMarket(p, address(0xdead));
    }

    function test_RevertWhen_DeployedWithStaleOracle() public {
        IPerpMarketTypes.MarketParams memory p = params();
        address ext = deployExtension(p);
        feed.setAt(ORACLE_PX, 1);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.StaleOracle.selector, uint256(1), T0));
        deployMarket(p, ext);
    }
}

/// @notice forge's test EVM deploys code of any size; a chain refuses code over EIP-170's
///         24,576 bytes (anvil says `CreateContractSizeLimit`). Both halves must fit.
contract PerpMarketCodeSizeTest is MarketFixture {
    function test_deploy_BothHalvesWithinCodeSizeLimit() public view {
        assertLe(market.code.length, 24_576, "PerpMarket");
        assertLe(IMarketDeployment(market).extension().code.length, 24_576, "PerpMarketExtension");
    }
}
