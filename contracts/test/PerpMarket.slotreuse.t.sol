// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";

/// @notice A cancel that empties a level leaves the order's storage slot for the next order at
///         that level (see PerpMarketBase.Level). Ids keep their meaning (queue indices only
///         grow), a stale id never reaches the order that took over its slot, and FIFO, views,
///         fills and margin are those of fresh slots.
contract PerpMarketSlotReuseTest is MarketFixture {
    function setUp() public override {
        super.setUp();
        fund(alice, 1_000_000e6);
        fund(bob, 1_000_000e6);
        fund(carol, 1_000_000e6);
    }

    function assertFalse(bool c, string memory s) internal pure {
        assertTrue(!c, s);
    }

    function assertFalse(bool c) internal pure {
        assertTrue(!c, "expected false");
    }

    function assertTrue(bool c) internal pure {
        assertTrue(c, "expected true");
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        assertEq(a, b, "not equal");
    }

    function assertEq(int256 a, int256 b) internal pure {
        assertEq(a, b, "not equal");
    }

    function assertGt(uint256 a, uint256 b, string memory s) internal pure {
        assertLt(b, a, s);
    }

    function idx(uint256 id) internal pure returns (uint256) {
        return uint40(id);
    }

    function cancel(address who, uint256 id) internal returns (bool ok) {
        vm.prank(who);
        ok = m.cancel(id);
    }

    function test_reuse_StaleIdCannotCancelTheNewOrder() public {
        uint256 a = place(alice, BID, PX - 10, 10, POST);
        assertTrue(cancel(alice, a), "a cancelled");
        uint256 b = place(alice, BID, PX - 10, 7, POST);
        assertGt(b, a, "ids increase");
        assertEq(idx(b), idx(a) + 1, "queue index keeps growing");
        (uint8 side, uint24 tick) = m.decodeOrderId(b);
        assertEq(side, BID);
        assertEq(tick, PX - 10);
        assertFalse(cancel(alice, a), "stale id is gone");
        // The same key with another sequence number is still the old order's key.
        assertFalse(cancel(alice, a + (uint256(1) << 65)), "stale key is gone");
        IPerpMarketTypes.OrderView[] memory os = m.openOrders(alice);
        assertEq(os.length, 1, "one open order");
        assertEq(os[0].orderId, b, "the new one");
        assertEq(os[0].lots, 7, "its lots");
        (uint256[] memory ticks, uint256[] memory lots) = m.bookLevels(BID, 1);
        assertEq(ticks[0], PX - 10);
        assertEq(lots[0], 7);
        assertTrue(cancel(alice, b), "b cancelled");
        assertEq(state(alice).reservedMargin, 0, "nothing reserved");
        assertEq(m.bestBid(), 0, "book empty");
        assertFalse(cancel(alice, b), "twice");
    }

    function test_reuse_OtherAccountTakesOverSlot() public {
        uint256 a = place(alice, ASK, PX + 10, 10, POST);
        assertTrue(cancel(alice, a));
        uint256 b = place(bob, ASK, PX + 10, 5, POST);
        // Alice's stale id must neither cancel nor be reported as Bob's order.
        assertFalse(cancel(alice, a), "stale id");
        assertEq(m.openOrders(alice).length, 0);
        assertEq(m.openOrders(bob).length, 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IPerpMarketTypes.NotOrderOwner.selector, b));
        m.cancel(b);
    }

    function test_reuse_FifoAndFillsAfterReuse() public {
        uint256 a = place(alice, ASK, PX + 10, 10, POST);
        assertTrue(cancel(alice, a));
        uint256 b = place(bob, ASK, PX + 10, 5, POST);
        uint256 c = place(alice, ASK, PX + 10, 6, POST);
        uint256 d = place(bob, ASK, PX + 10, 4, POST);
        assertEq(idx(c), idx(b) + 1);
        assertEq(idx(d), idx(c) + 1);
        // Carol buys 8: all of b (5), 3 of c.
        place(carol, BID, PX + 10, 8, IOC);
        assertEq(state(carol).positionLots, 8, "filled");
        assertEq(state(bob).positionLots, -5, "b first");
        assertEq(state(alice).positionLots, -3, "then c");
        assertFalse(cancel(bob, b), "b filled");
        assertTrue(cancel(alice, c), "rest of c");
        (, uint256[] memory lots) = m.bookLevels(ASK, 1);
        assertEq(lots[0], 4, "d left");
        assertTrue(cancel(bob, d), "d empties the level");
        assertEq(m.bestAsk(), 0, "empty");
        // Reuse again after an emptying cancel that followed fills.
        uint256 e = place(alice, ASK, PX + 10, 2, POST);
        assertEq(idx(e), idx(d) + 1);
        assertFalse(cancel(bob, d));
        assertFalse(cancel(alice, c));
        place(carol, BID, PX + 10, 2, IOC);
        assertEq(state(carol).positionLots, 10);
        assertEq(m.bestAsk(), 0, "e filled");
        assertFalse(cancel(alice, e));
    }

    function test_reuse_MiddleCancelThenEmptyingCancel() public {
        uint256 a = place(alice, BID, PX - 5, 1, POST);
        uint256 b = place(alice, BID, PX - 5, 2, POST);
        uint256 c = place(alice, BID, PX - 5, 3, POST);
        assertTrue(cancel(alice, b), "middle");
        assertTrue(cancel(alice, c), "tail");
        assertTrue(cancel(alice, a), "head empties");
        uint256 d = place(alice, BID, PX - 5, 4, POST);
        uint256 e = place(alice, BID, PX - 5, 5, POST);
        assertEq(idx(d), idx(c) + 1);
        assertFalse(cancel(alice, a));
        assertFalse(cancel(alice, b));
        assertFalse(cancel(alice, c));
        IPerpMarketTypes.OrderView[] memory os = m.openOrders(alice);
        assertEq(os.length, 2);
        (, uint256[] memory lots) = m.bookLevels(BID, 1);
        assertEq(lots[0], 9);
        // Bob sells 6: d (4) then 2 of e.
        place(bob, ASK, PX - 5, 6, IOC);
        assertEq(state(alice).positionLots, 6);
        (, lots) = m.bookLevels(BID, 1);
        assertEq(lots[0], 3, "e's rest");
        assertFalse(cancel(alice, d), "d filled");
        assertTrue(cancel(alice, e));
        assertEq(state(alice).reservedMargin, 0);
    }

    function test_reuse_BatchCancelAndReplaceSameLevel() public {
        uint256[] memory ids = new uint256[](1);
        ids[0] = place(alice, BID, PX - 10, 10, POST);
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](1);
        ps[0] = order(BID, PX - 10, 3, POST);
        vm.prank(alice);
        uint256[] memory newIds = m.batch(ids, ps);
        assertEq(idx(newIds[0]), idx(ids[0]) + 1);
        assertFalse(cancel(alice, ids[0]));
        IPerpMarketTypes.OrderView[] memory os = m.openOrders(alice);
        assertEq(os.length, 1);
        assertEq(os[0].lots, 3);
        assertTrue(cancel(alice, newIds[0]));
        assertEq(state(alice).reservedMargin, 0);
    }

    function test_reuse_CancelAllThenReuse() public {
        uint256 a = place(alice, BID, PX - 10, 10, POST);
        vm.prank(alice);
        m.cancelAll();
        // The dead order is unlinked (no margin to release): the level empties.
        assertFalse(cancel(alice, a), "already cancelled by cancelAll");
        assertEq(m.bestBid(), 0, "level left the book");
        uint256 b = place(alice, BID, PX - 10, 4, POST);
        assertFalse(cancel(alice, a));
        assertEq(m.openOrders(alice).length, 1);
        assertTrue(cancel(alice, b));
    }
}
