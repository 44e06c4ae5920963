// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./utils/Test.sol";
import {TickBitmap} from "../src/libraries/TickBitmap.sol";

/// @notice The three-level bitmap agrees with a linear scan over a small reference set.
contract TickBitmapTest is Test {
    using TickBitmap for mapping(uint256 => uint256);

    mapping(uint256 => uint256) internal map;
    mapping(uint256 => uint256) internal other;
    uint256[] internal ticks;

    function _has(uint256 t) internal view returns (bool) {
        for (uint256 i; i < ticks.length; ++i) {
            if (ticks[i] == t) return true;
        }
        return false;
    }

    function _refAbove(uint256 t) internal view returns (uint256 best) {
        for (uint256 i; i < ticks.length; ++i) {
            if (ticks[i] > t && (best == 0 || ticks[i] < best)) best = ticks[i];
        }
    }

    function _refBelow(uint256 t) internal view returns (uint256 best) {
        for (uint256 i; i < ticks.length; ++i) {
            if (ticks[i] < t && ticks[i] > best) best = ticks[i];
        }
    }

    function testFuzz_NextMatchesReference(uint256[8] memory raw, uint256 probe, uint8 removeMask) public {
        for (uint256 i; i < raw.length; ++i) {
            // Mix near and far ticks so all three levels are exercised.
            uint256 t = i % 2 == 0 ? bound(raw[i], 1, (1 << 24) - 1) : bound(raw[i], 299_000, 301_000);
            if (_has(t)) continue;
            ticks.push(t);
            map.set(t);
        }
        for (uint256 i; i < ticks.length; ++i) {
            if (removeMask & (1 << i) == 0) continue;
            map.clear(ticks[i]);
            ticks[i] = ticks[ticks.length - 1];
            ticks.pop();
        }
        probe = bound(probe, 0, (1 << 24) - 1);
        assertEq(map.nextAbove(probe), _refAbove(probe), "nextAbove");
        assertEq(map.nextBelow(probe), _refBelow(probe), "nextBelow");
        for (uint256 i; i < ticks.length; ++i) {
            assertEq(map.nextAbove(ticks[i] - 1), ticks[i], "a set tick is found from just below");
            if (ticks[i] < (1 << 24) - 1) assertEq(map.nextBelow(ticks[i] + 1), ticks[i], "and from just above");
        }
    }

    /// @dev The combined clear-and-search equals `clear` then the search, on a copy of the map.
    function testFuzz_ClearNextMatchesClearThenNext(uint256[8] memory raw, uint8 pick) public {
        for (uint256 i; i < raw.length; ++i) {
            uint256 t = i % 2 == 0 ? bound(raw[i], 1, (1 << 24) - 1) : bound(raw[i], 299_000, 301_000);
            if (_has(t)) continue;
            ticks.push(t);
            map.set(t);
            other.set(t);
        }
        uint256 tick = ticks[pick % ticks.length];
        other.clear(tick);
        assertEq(map.clearNextAbove(tick), other.nextAbove(tick), "clearNextAbove");
        for (uint256 i; i < ticks.length; ++i) {
            if (ticks[i] == tick) continue;
            assertEq(map.nextAbove(ticks[i] - 1), ticks[i], "the other ticks stay set");
        }
        assertEq(map.nextAbove(tick - 1), other.nextAbove(tick - 1), "the tick is cleared at every level");
        if (tick < (1 << 24) - 1) assertEq(map.nextBelow(tick + 1), other.nextBelow(tick + 1), "from above as well");
        map.set(tick);
        assertEq(map.clearNextBelow(tick), other.nextBelow(tick), "clearNextBelow");
        assertEq(map.nextAbove(0), other.nextAbove(0), "the lowest tick agrees");
    }
}
