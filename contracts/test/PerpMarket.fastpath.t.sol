// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {IPerpMarket, IPerpMarketHot} from "../src/interfaces/IPerpMarket.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";
import {Vm} from "./utils/Vm.sol";

/// @notice `place`'s resting fast path (PerpMarket._placeResting) against the general path.
///         Differential: the same actions run on market A as plain GTC/post-only orders (fast
///         path) and on market B, where each one is sent inside `batch` (always the general path);
///         events, return values and every observable state must match. Plus the fallbacks.
contract PerpMarketFastPathTest is MarketFixture {
    IPerpMarket internal b; // second market, same params and oracle
    address internal marketB;

    function setUp() public override {
        super.setUp();
        IPerpMarketTypes.MarketParams memory p = params();
        marketB = deployMarket(p, deployExtension(p));
        b = IPerpMarket(marketB);
        address[3] memory who = [alice, bob, carol];
        for (uint256 i; i < 3; ++i) {
            fund(who[i], 1_000_000e6);
            usd.mint(who[i], 1_000_000e6);
            vm.startPrank(who[i]);
            usd.approve(marketB, 1_000_000e6);
            b.deposit(1_000_000e6);
            vm.stopPrank();
        }
    }

    function placeA(address who, IPerpMarketTypes.Place memory o) internal returns (uint256 id) {
        vm.prank(who);
        id = m.place(o);
    }

    /// @dev The general path on market B: a batch with no cancels and one placement.
    function placeB(address who, IPerpMarketTypes.Place memory o) internal returns (uint256 id) {
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](1);
        ps[0] = o;
        vm.prank(who);
        id = b.batch(new uint256[](0), ps)[0];
    }

    function both(address who, uint8 side, uint24 tick, uint48 lots, uint8 flags) internal returns (uint256 id) {
        IPerpMarketTypes.Place memory o = order(side, tick, lots, flags);
        vm.recordLogs();
        id = placeA(who, o);
        bytes32 la = logsHash(market);
        uint256 idB = placeB(who, o);
        bytes32 lb = logsHash(marketB);
        assertEq(id, idB, "order id");
        assertTrue(la == lb, "events");
    }

    function logsHash(address emitter) internal returns (bytes32 h) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter != emitter) continue;
            h = keccak256(abi.encode(h, logs[i].topics, logs[i].data));
        }
        vm.recordLogs();
    }

    function assertSame() internal view {
        assertEq(m.bestBid(), b.bestBid(), "best bid");
        assertEq(m.bestAsk(), b.bestAsk(), "best ask");
        (uint256 e1, uint256 n1, int256 p1, int256 r1, int256 c1) = m.fundingState();
        (uint256 e2, uint256 n2, int256 p2, int256 r2, int256 c2) = b.fundingState();
        assertEq(e1, e2, "epoch");
        assertEq(n1, n2, "next");
        assertEq(p1, p2, "premium");
        assertEq(r1, r2, "rate");
        assertEq(c1, c2, "cum");
        address[3] memory who = [alice, bob, carol];
        for (uint256 i; i < 3; ++i) {
            assertTrue(
                keccak256(abi.encode(m.accountState(who[i]))) == keccak256(abi.encode(b.accountState(who[i]))), "acct"
            );
            assertTrue(
                keccak256(abi.encode(m.openOrders(who[i]))) == keccak256(abi.encode(b.openOrders(who[i]))), "orders"
            );
        }
        for (uint8 s; s < 2; ++s) {
            (uint256[] memory t1, uint256[] memory l1) = m.bookLevels(s, 50);
            (uint256[] memory t2, uint256[] memory l2) = b.bookLevels(s, 50);
            assertTrue(keccak256(abi.encode(t1, l1)) == keccak256(abi.encode(t2, l2)), "levels");
        }
        for (uint256 slot; slot < 8; ++slot) {
            assertTrue(vm.load(market, bytes32(slot)) == vm.load(marketB, bytes32(slot)), "global slot");
        }
    }

    function cancelBoth(address who, uint256 id) internal {
        vm.prank(who);
        bool x = m.cancel(id);
        vm.prank(who);
        bool y = b.cancel(id);
        assertEq(x ? 1 : 0, y ? 1 : 0, "cancel result");
    }

    function test_fastpath_MatchesGeneralPath_Sequence() public {
        // Flat makers quoting, time passing within the interval.
        uint256 a1 = both(alice, BID, PX - 10, 10, POST);
        both(alice, ASK, PX + 10, 10, 0);
        vm.warp(block.timestamp + 100);
        both(bob, BID, PX - 10, 5, 0); // existing level
        both(bob, BID, PX - 5, 5, POST); // new best: premium resample
        assertSame();
        // Alice gets a short position (a take: general path on both).
        both(carol, BID, PX + 10, 10, IOC);
        vm.warp(block.timestamp + 200);
        // An inventory maker (both sides quoted): fast path without the oracle.
        uint256 a2 = both(alice, ASK, PX + 8, 7, POST);
        both(alice, BID, PX - 3, 7, 0);
        assertSame();
        cancelBoth(alice, a1);
        cancelBoth(alice, a2);
        vm.warp(block.timestamp + 50);
        both(alice, ASK, PX + 8, 9, POST); // reused empty level
        both(carol, ASK, PX + 20, 3, POST); // long maker
        assertSame();
        // Expiring order and mass cancel.
        IPerpMarketTypes.Place memory o = order(BID, PX - 1, 4, POST);
        o.expiry = uint32(block.timestamp + 30);
        vm.recordLogs();
        uint256 ia = placeA(bob, o);
        bytes32 la = logsHash(market);
        assertEq(ia, placeB(bob, o), "expiring id");
        assertTrue(la == logsHash(marketB), "expiring events");
        vm.prank(bob);
        m.cancelAll();
        vm.prank(bob);
        b.cancelAll();
        vm.warp(block.timestamp + 60);
        both(bob, BID, PX - 2, 4, 0);
        assertSame();
    }

    function testFuzz_fastpath_MatchesGeneralPath(uint256 seed) public {
        address[3] memory who = [alice, bob, carol];
        for (uint256 i; i < 24; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            address w = who[r % 3];
            uint8 side = uint8((r >> 8) & 1);
            uint24 tick = uint24(PX - 40 + ((r >> 16) % 80));
            uint48 lots = uint48(1 + (r >> 32) % 50);
            uint256 kind = (r >> 64) % 6;
            if (kind == 5) {
                vm.warp(block.timestamp + (r >> 72) % 900);
                feed.set(ORACLE_PX + int256((r >> 96) % 100e8) - 50e8);
                continue;
            }
            uint8 flags = kind == 0 ? IOC : kind == 1 ? 0 : POST;
            IPerpMarketTypes.Place memory o = order(side, tick, lots, flags);
            vm.recordLogs();
            vm.prank(w);
            (bool okA, bytes memory retA) = market.call(abi.encodeCall(IPerpMarketHot.place, (o)));
            bytes32 la = logsHash(market);
            IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](1);
            ps[0] = o;
            vm.prank(w);
            (bool okB, bytes memory retB) = marketB.call(abi.encodeCall(IPerpMarketHot.batch, (new uint256[](0), ps)));
            bytes32 lb = logsHash(marketB);
            if (!okA && bytes4(retA) == IPerpMarketTypes.PostOnlyWouldCross.selector) {
                // The one difference by design: `batch` skips a crossing post-only place
                // (`PlaceSkipped`, id 0) where `place` reverts. A's own batch of it must do
                // exactly what B's did (it also keeps the two order sequences in step).
                assertTrue(okB, "batch skips a crossing post-only place");
                assertEq(abi.decode(retB, (uint256[]))[0], 0, "skipped: no id");
                assertTrue(lb != bytes32(0), "PlaceSkipped emitted");
                vm.recordLogs();
                vm.prank(w);
                (okA, retA) = market.call(abi.encodeCall(IPerpMarketHot.batch, (new uint256[](0), ps)));
                assertTrue(okA && keccak256(retA) == keccak256(retB), "same batch outcome");
                assertTrue(logsHash(market) == lb, "same PlaceSkipped event");
                continue;
            }
            assertEq(okA ? 1 : 0, okB ? 1 : 0, "same outcome");
            if (okA) {
                assertEq(abi.decode(retA, (uint256)), abi.decode(retB, (uint256[]))[0], "id");
                assertTrue(la == lb, "events");
            } else {
                assertTrue(keccak256(retA) == keccak256(retB), "same revert");
            }
        }
        assertSame();
    }

    // ------------------------------------------------------------------ fallbacks and reverts

    function test_fastpath_RevertsInsufficientMarginLikeGeneralPath() public {
        fund(address(0xD00D), 1_000e6);
        IPerpMarketTypes.Place memory o = order(BID, PX, 400, POST); // $12,000: needs $1,200
        vm.prank(address(0xD00D));
        vm.expectRevert(
            abi.encodeWithSelector(IPerpMarketTypes.InsufficientMargin.selector, int256(1_000e6), uint256(1_200e6))
        );
        m.place(o);
    }

    function test_fastpath_PostOnlyCrossingRevertsViaGeneralPath() public {
        place(bob, ASK, PX, 10, POST);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.PostOnlyWouldCross.selector, PX, PX));
        m.place(order(BID, PX, 10, POST));
        // A GTC order crossing trades (general path).
        place(alice, BID, PX, 4, 0);
        assertEq(state(alice).positionLots, int256(4), "filled");
    }

    function test_fastpath_DeadCrossingOrdersArePrunedViaGeneralPath() public {
        IPerpMarketTypes.Place memory o = order(ASK, PX, 10, POST);
        o.expiry = uint32(block.timestamp + 10);
        vm.prank(bob);
        m.place(o);
        place(carol, ASK, PX + 1, 10, POST);
        vm.prank(carol);
        m.cancelAll();
        vm.warp(block.timestamp + 10);
        // Bob's expired order is cancelled (its id, topic 2, is not checked).
        vm.expectEmit(true, false, false, true, market);
        emit IPerpMarketTypes.OrderCancelled(bob, 0, 7, 10, 1);
        uint256 id = place(alice, BID, PX + 1, 10, POST);
        assertTrue(id != 0, "rests after pruning");
        assertEq(m.bestAsk(), 0, "pruned");
    }

    function test_fastpath_FundingDueFallsBackAndSettles() public {
        place(alice, ASK, PX + 50, 10, POST);
        place(bob, BID, PX + 50, 10, IOC);
        place(alice, BID, PX - 50, 10, POST);
        place(alice, ASK, PX + 50, 10, POST);
        warpTo(T0 + 3600, ORACLE_PX);
        // Boundary due: the general path closes the interval (reads the oracle).
        feed.set(0);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidOraclePrice.selector, int256(0)));
        m.place(order(BID, PX - 10, 10, POST));
        feed.set(ORACLE_PX);
        place(carol, BID, PX - 10, 10, POST);
        (uint256 epoch,,,,) = m.fundingState();
        assertEq(epoch, 1, "closed");
        // Alice's funding is settled on her next placement (fallback: mark is stale).
        vm.expectEmit(true, false, false, false, market);
        emit IPerpMarketTypes.FundingPaid(alice, 0);
        place(alice, BID, PX - 11, 10, POST);
        assertEq(state(alice).fundingOwed, int256(0), "settled");
    }

    function test_fastpath_InvalidOrdersRevertAsBefore() public {
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidSide.selector, uint8(2)));
        m.place(order(2, PX, 1, POST));
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidTick.selector, uint256(0)));
        m.place(order(BID, 0, 1, 0));
        vm.expectRevert(IPerpMarketTypes.InvalidLots.selector);
        m.place(order(BID, PX, 0, POST));
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.BelowMinNotional.selector, uint256(100), uint256(1e6)));
        m.place(order(BID, 1, 1, POST));
        IPerpMarketTypes.Place memory o = order(BID, PX, 1, POST);
        o.expiry = uint32(block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.InvalidExpiry.selector, uint32(block.timestamp)));
        m.place(o);
        vm.stopPrank();
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.UnknownAccount.selector, address(0xBAD)));
        m.place(order(BID, PX, 1, POST));
    }

    function test_params_ServedThroughExtension() public view {
        (bool ok, bytes memory ret) = market.staticcall(abi.encodeWithSignature("lotSize()"));
        assertTrue(ok, "lotSize");
        assertEq(abi.decode(ret, (uint256)), 1e16, "lotSize value");
        (ok, ret) = market.staticcall(abi.encodeWithSignature("makerFeeBps()"));
        assertTrue(ok, "makerFeeBps");
        assertEq(abi.decode(ret, (int256)), int256(-1), "maker fee");
        (ok, ret) = market.staticcall(abi.encodeWithSignature("collateral()"));
        assertEq(abi.decode(ret, (address)), address(usd), "collateral");
        (ok, ret) = market.staticcall(abi.encodeWithSignature("notionalUnit()"));
        assertEq(abi.decode(ret, (uint256)), 100, "unit");
        (ok, ret) = market.staticcall(abi.encodeWithSignature("paramsHash()"));
        assertTrue(abi.decode(ret, (bytes32)) == keccak256(abi.encode(params())), "hash");
    }
}

