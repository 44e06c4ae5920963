// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./utils/Test.sol";
import {FundingMath} from "../src/libraries/FundingMath.sol";
import {PriceLib} from "../src/libraries/PriceLib.sol";

/// @notice Direct tests of the pure libraries (and of the test helper `bound`), each against
///         worked numbers or a reference formula.
contract LibrariesTest is Test {
    // ------------------------------------------------------------------ FundingMath

    function test_rate_InterestWithinClampPassesThrough() public pure {
        // Premium 0: r8h = 0 + clamp(0.0001, 0.0005) = 0.0001; hourly 0.0000125.
        assertEq(FundingMath.rate(0, 1e14, 5e14, 4e16, 3600), int256(1.25e13), "hourly interest");
    }

    function test_rate_PremiumBeyondClampDominates() public pure {
        // r8h = 0.01 + clamp(0.0001 - 0.01, 0.0005) = 0.0095; over 8 h intervals no scaling.
        assertEq(FundingMath.rate(1e16, 1e14, 5e14, 4e16, 8 hours), int256(95e14), "8h rate");
        assertEq(FundingMath.rate(-1e16, 1e14, 5e14, 4e16, 8 hours), int256(-95e14), "negative");
    }

    function test_rate_IsCapped() public pure {
        assertEq(FundingMath.rate(1e18, 0, 0, 4e16, 8 hours), int256(4e16), "capped up");
        assertEq(FundingMath.rate(-1e18, 0, 0, 4e16, 8 hours), int256(-4e16), "capped down");
    }

    function test_indexDelta_CarriesRemainder() public pure {
        // 0.0000125 x $3000 x 0.01 ETH = $0.000375 = 375 units (6 decimals) exactly.
        (int256 d, int256 carry) = FundingMath.indexDelta(1.25e13, 3000e6, 1e16, 0);
        assertEq(d, 375, "exact");
        assertEq(carry, 0, "no remainder");
        // A third of a unit per interval: nothing paid twice, then one unit.
        int256 third = int256(1e36) / 3;
        (d, carry) = FundingMath.indexDelta(0, 1, 1, third);
        assertEq(d, 0, "below a unit");
        assertEq(carry, third, "carried");
    }

    function testFuzz_indexDelta_ConservesValue(int64 r, uint64 index, int128 carry) public pure {
        vm.assume(carry > -1e36 && carry < 1e36);
        (int256 d, int256 c2) = FundingMath.indexDelta(r, index, 1e16, carry);
        assertEq(d * 1e36 + c2, int256(r) * int256(uint256(index)) * 1e16 + carry, "delta + carry == value");
        assertTrue(c2 >= 0 && c2 < 1e36, "carry in [0, 1e36)");
    }

    function test_premium_ScaledAndClamped() public pure {
        assertEq(FundingMath.premium(3030e6, 3000e6), int256(1e10), "+1% = 1e10 at 1e12 scale");
        assertEq(FundingMath.premium(2970e6, 3000e6), int256(-1e10), "-1%");
        assertEq(FundingMath.premium(9000e6, 3000e6), FundingMath.PREMIUM_BOUND, "clamped at +100%");
    }

    function testFuzz_floorDiv_RoundsDown(int128 a, uint64 b) public pure {
        vm.assume(b != 0);
        int256 q = FundingMath.floorDiv(a, int256(uint256(b)));
        assertTrue(q * int256(uint256(b)) <= a && (q + 1) * int256(uint256(b)) > a, "floor");
    }

    // ------------------------------------------------------------------ PriceLib

    function test_fromOracle_ScalesDecimals() public pure {
        assertEq(PriceLib.fromOracle(3000e8, 8, 6), 3000e6, "8 -> 6 decimals");
        assertEq(PriceLib.fromOracle(3000e8, 8, 18), 3000e18, "8 -> 18 decimals");
        assertEq(PriceLib.fromOracle(123_456_789, 8, 6), 1_234_567, "rounds down");
    }

    function test_notional_Values() public pure {
        assertEq(PriceLib.notional(300, 3000e6, 1e16), 9000e6, "3 ETH at $3000");
        assertEq(PriceLib.tickNotional(300, 300_000, 100), 9000e6, "same at tick 300000");
        assertEq(PriceLib.bpsOf(9000e6, 500), 450e6, "5%");
    }

    function testFuzz_median_IsTheMiddleValue(uint256 a, uint256 b, uint256 c) public pure {
        uint256 m = PriceLib.median(a, b, c);
        uint256 below = (a <= m ? 1 : 0) + (b <= m ? 1 : 0) + (c <= m ? 1 : 0);
        uint256 above = (a >= m ? 1 : 0) + (b >= m ? 1 : 0) + (c >= m ? 1 : 0);
        assertTrue(m == a || m == b || m == c, "one of the three");
        assertTrue(below >= 2 && above >= 2, "middle");
    }

    // ------------------------------------------------------------------ bound (test helper)

    function test_bound_KeepsInRangeValues() public pure {
        assertEq(bound(5, 1, 10), 5, "in range kept");
        assertEq(bound(1, 1, 10), 1, "low edge kept");
        assertEq(bound(10, 1, 10), 10, "high edge kept");
        assertEq(bound(type(uint256).max, 0, type(uint256).max), type(uint256).max, "full range");
        assertEq(bound(0, 0, type(uint256).max), 0, "full range, zero");
    }

    function testFuzz_bound_StaysInRange(uint256 x, uint256 lo, uint256 hi) public pure {
        if (lo > hi) (lo, hi) = (hi, lo);
        uint256 y = bound(x, lo, hi);
        assertTrue(y >= lo && y <= hi, "in range");
        if (x >= lo && x <= hi) assertEq(y, x, "identity in range");
    }
}
