// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title PriceLib
/// @notice The one place where oracle answers become internal prices and prices become notional.
/// @dev Internal price = collateral units per one whole base unit (1e18 base wei), the scale of
///      `tick * tickSize`. Oracle answers carry `feedDecimals` (8 for Chainlink USD feeds); the
///      collateral carries `collateralDecimals` (6 for the USD token).
library PriceLib {
    /// @dev One whole base unit in base wei.
    uint256 internal constant BASE_UNIT = 1e18;

    /// @notice Convert a positive oracle answer to an internal price (rounds down).
    function fromOracle(uint256 answer, uint8 feedDecimals, uint8 collateralDecimals) internal pure returns (uint256) {
        if (collateralDecimals >= feedDecimals) {
            return answer * 10 ** (collateralDecimals - feedDecimals);
        }
        return answer / 10 ** (feedDecimals - collateralDecimals);
    }

    /// @notice Notional of `lots` at an arbitrary `price`, collateral units (rounds down).
    function notional(uint256 lots, uint256 price, uint256 lotSize) internal pure returns (uint256) {
        return lots * lotSize * price / BASE_UNIT;
    }

    /// @notice Exact notional of `lots` at `tick`, given `unit = tickSize * lotSize / 1e18`.
    function tickNotional(uint256 lots, uint256 tick, uint256 unit) internal pure returns (uint256) {
        return lots * tick * unit;
    }

    /// @notice `bps` of `amount` (rounds down).
    function bpsOf(uint256 amount, uint256 bps) internal pure returns (uint256) {
        return amount * bps / 10_000;
    }

    /// @notice Median of three values.
    function median(uint256 a, uint256 b, uint256 c) internal pure returns (uint256) {
        if (a > b) (a, b) = (b, a);
        if (b > c) b = c;
        return a > b ? a : b;
    }
}
