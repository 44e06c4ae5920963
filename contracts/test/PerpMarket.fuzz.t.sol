// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IPerpMarketTypes} from "../src/interfaces/IPerpMarketTypes.sol";

/// @notice Matching fuzz: a random ladder of asks from three makers (the taker among them) is
///         swept by a random IOC bid and compared with a reference price-time matcher.
contract PerpMarketFuzzTest is MarketFixture {
    struct Ref {
        address owner;
        uint24 tick;
        uint48 lots;
    }

    address[3] internal makers;

    function setUp() public override {
        super.setUp();
        makers = [alice, carol, bob];
        fund(alice, 10_000_000e6);
        fund(bob, 10_000_000e6);
        fund(carol, 10_000_000e6);
    }

    function testFuzz_SweepMatchesReference(uint256 seed, uint48 takerLots, uint8 limitOff) public {
        uint256 n = bound(seed, 1, 12);
        Ref[] memory refs = new Ref[](n);
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            refs[i] = Ref(makers[r % 3], uint24(PX + (r >> 8) % 8), uint48(1 + (r >> 16) % 50));
            place(refs[i].owner, ASK, refs[i].tick, refs[i].lots, POST);
        }
        takerLots = uint48(bound(takerLots, 1, 400));
        uint24 limit = uint24(PX + bound(limitOff, 0, 10));

        // Reference: stable sort by tick keeps time priority within a level.
        for (uint256 i = 1; i < n; ++i) {
            Ref memory x = refs[i];
            uint256 j = i;
            while (j > 0 && refs[j - 1].tick > x.tick) {
                refs[j] = refs[j - 1];
                --j;
            }
            refs[j] = x;
        }
        int256[3] memory expected;
        uint256 remaining = takerLots;
        for (uint256 i; i < n && remaining != 0; ++i) {
            if (refs[i].tick > limit) break;
            if (refs[i].owner == bob) continue; // self-trade: cancelled, never filled
            uint256 q = remaining < refs[i].lots ? remaining : refs[i].lots;
            remaining -= q;
            expected[refs[i].owner == alice ? 0 : 1] -= int256(q);
        }

        vm.recordLogs();
        place(bob, BID, limit, takerLots, IOC);
        Vm.Log[] memory logs = vm.getRecordedLogs();

        int256 filled = int256(uint256(takerLots - remaining));
        assertEq(state(bob).positionLots, filled, "taker fill equals the reference");
        assertEq(state(alice).positionLots, expected[0], "alice per reference");
        assertEq(state(carol).positionLots, expected[1], "carol per reference");
        assertEq(state(alice).positionLots + state(carol).positionLots + state(bob).positionLots, 0, "lots conserved");

        uint24 lastTick;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] != IPerpMarketTypes.Fill.selector) continue;
            assertTrue(logs[i].topics[1] != logs[i].topics[2], "no self-fill");
            // The maker order's side and tick are in its id (see IPerpMarket).
            uint256 makerOrderId = uint256(logs[i].topics[3]);
            uint24 tick = uint24(makerOrderId >> 40);
            assertEq((makerOrderId >> 64) & 1, ASK, "the taker bought from an ask");
            assertTrue(tick >= lastTick, "fills walk the book from the best price");
            assertLe(tick, limit, "never beyond the limit");
            lastTick = tick;
        }
        uint24 bid = m.bestBid();
        uint24 ask = m.bestAsk();
        assertTrue(bid == 0 || ask == 0 || bid < ask, "book not crossed");
    }

    function testFuzz_PlaceCancelKeepsLevelsConsistent(uint256 seed) public {
        uint256[] memory ids = new uint256[](16);
        uint256 live;
        for (uint256 i; i < 16; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            address who = makers[r % 3];
            if ((r >> 8) % 3 == 0 && i > 0) {
                uint256 victim = ids[(r >> 16) % i];
                // Only the owner can cancel: try each maker, exactly one succeeds or none (gone).
                for (uint256 k; k < 3; ++k) {
                    vm.prank(makers[k]);
                    try m.cancel(victim) returns (bool ok) {
                        if (ok) --live;
                    } catch {}
                }
            } else {
                uint8 side = uint8((r >> 24) % 2);
                uint24 tick = side == BID ? uint24(PX - 1 - (r >> 32) % 5) : uint24(PX + 1 + (r >> 32) % 5);
                ids[i] = place(who, side, tick, uint48(1 + (r >> 40) % 9), POST);
                ++live;
            }
        }
        uint256 listed = m.openOrders(alice).length + m.openOrders(bob).length + m.openOrders(carol).length;
        assertEq(listed, live, "open orders match placements minus cancels");
        uint256 levelLots;
        uint256 orderLots;
        for (uint8 side; side < 2; ++side) {
            (, uint256[] memory lots) = m.bookLevels(side, 20);
            for (uint256 i; i < lots.length; ++i) {
                levelLots += lots[i];
            }
        }
        for (uint256 k; k < 3; ++k) {
            IPerpMarketTypes.OrderView[] memory os = m.openOrders(makers[k]);
            for (uint256 i; i < os.length; ++i) {
                orderLots += os[i].lots;
            }
        }
        assertEq(levelLots, orderLots, "level totals equal the sum of their orders");
    }
}
