// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title FundingMath
/// @notice Funding-rate and funding-index arithmetic (pure).
/// @dev Rates are 1e18-scaled fractions. The rate of an interval follows the dYdX/Hyperliquid
///      formula on an 8-hour basis, then is scaled to the interval and capped:
///      `r8h = P + clamp(I - P, -c, +c)`, `r = clamp(r8h * interval / 8h, -cap, +cap)`, with `P` the
///      time-weighted average premium `(mid - index) / index` over the interval and `I` the
///      8-hour interest rate.
library FundingMath {
    uint256 internal constant EIGHT_HOURS = 8 hours;
    /// @dev Premium samples are stored with 1e12 scaling to fit the packed book word.
    int256 internal constant PREMIUM_SCALE = 1e12;
    /// @dev Samples are clamped to +-100%: far beyond any funding cap, so the clamp never
    ///      changes a rate, but it bounds the packed accumulator.
    int256 internal constant PREMIUM_BOUND = 1e12;

    /// @notice The funding rate of one interval from its average premium.
    function rate(int256 avgPremium, int256 interest8h, int256 premiumClamp, int256 cap, uint256 interval)
        internal
        pure
        returns (int256 r)
    {
        int256 r8h = avgPremium + clamp(interest8h - avgPremium, premiumClamp);
        r = clamp(r8h * int256(interval) / int256(EIGHT_HOURS), cap);
    }

    /// @notice Advance a cumulative per-lot index (collateral units) by one interval's rate.
    /// @dev The index is kept in whole collateral units so every account's funding is an exact
    ///      integer and payments are exactly zero-sum; the sub-unit remainder is carried into
    ///      the next interval (1e36-scaled), so no funding is lost over time.
    /// @param r Rate of the interval, 1e18-scaled.
    /// @param index Index price, collateral units per whole base unit.
    /// @param lotSize Base wei per lot.
    /// @param carry Remainder carried from earlier intervals, 1e36-scaled collateral units.
    /// @return delta Whole collateral units per lot to add to the index.
    /// @return newCarry The new remainder.
    function indexDelta(int256 r, uint256 index, uint256 lotSize, int256 carry)
        internal
        pure
        returns (int256 delta, int256 newCarry)
    {
        int256 scaled = r * int256(index) * int256(lotSize) + carry;
        delta = floorDiv(scaled, 1e36);
        newCarry = scaled - delta * 1e36;
    }

    /// @notice Premium sample `(mid - index) / index`, 1e12-scaled and clamped to +-100%.
    function premium(uint256 mid, uint256 index) internal pure returns (int256 p) {
        p = (int256(mid) - int256(index)) * PREMIUM_SCALE / int256(index);
        p = clamp(p, PREMIUM_BOUND);
    }

    /// @notice Clamp `x` to [-bound, +bound].
    function clamp(int256 x, int256 bound) internal pure returns (int256) {
        if (x > bound) return bound;
        if (x < -bound) return -bound;
        return x;
    }

    /// @notice Division rounding toward negative infinity (`b` > 0).
    function floorDiv(int256 a, int256 b) internal pure returns (int256 q) {
        q = a / b;
        if (a % b != 0 && a < 0) q -= 1;
    }
}
