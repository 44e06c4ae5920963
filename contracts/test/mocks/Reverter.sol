// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Reverter
/// @notice Test-only contract for the transaction pipeline: reverts with custom errors (with and
///         without arguments), a string reason or a panic, so revert decoding can be checked
///         against a real node.
contract Reverter {
    /// @notice Raised by `failWithArgs` with the caller-supplied values.
    error InsufficientMargin(address account, uint256 requiredWei, uint256 availableWei);
    /// @notice Raised by `failPlain`.
    error MarketHalted();

    /// @notice Counts successful `poke` calls, so a test can see a state change.
    uint256 public pokes;

    /// @notice Succeed and bump `pokes`.
    function poke() external {
        pokes += 1;
    }

    /// @notice Revert with `InsufficientMargin(msg.sender, requiredWei, availableWei)`.
    function failWithArgs(uint256 requiredWei, uint256 availableWei) external view {
        revert InsufficientMargin(msg.sender, requiredWei, availableWei);
    }

    /// @notice Revert with `MarketHalted()`.
    function failPlain() external pure {
        revert MarketHalted();
    }

    /// @notice Revert with a string reason (`Error(string)`).
    function failReason() external pure {
        revert("reverter: reason");
    }

    /// @notice Revert with a division-by-zero panic (`Panic(uint256)` code 0x12).
    function failPanic(uint256 divisor) external pure returns (uint256) {
        return 1 / divisor;
    }
}
