// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "./Vm.sol";

/// @notice Minimal test base: the cheatcode handle and assertions that revert with a message.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    error AssertionFailed(string message, int256 left, int256 right);

    function assertEq(uint256 a, uint256 b, string memory m) internal pure {
        if (a != b) revert AssertionFailed(m, int256(a), int256(b));
    }

    function assertEq(int256 a, int256 b, string memory m) internal pure {
        if (a != b) revert AssertionFailed(m, a, b);
    }

    function assertEq(address a, address b, string memory m) internal pure {
        if (a != b) revert AssertionFailed(m, int256(uint256(uint160(a))), int256(uint256(uint160(b))));
    }

    function assertTrue(bool c, string memory m) internal pure {
        if (!c) revert AssertionFailed(m, 0, 1);
    }

    function assertLe(uint256 a, uint256 b, string memory m) internal pure {
        if (a > b) revert AssertionFailed(m, int256(a), int256(b));
    }

    function assertLt(uint256 a, uint256 b, string memory m) internal pure {
        if (a >= b) revert AssertionFailed(m, int256(a), int256(b));
    }

    function assertGe(int256 a, int256 b, string memory m) internal pure {
        if (a < b) revert AssertionFailed(m, a, b);
    }

    /// @dev Map `x` into [lo, hi] (inclusive) without rejecting fuzz inputs: values already in
    ///      range are kept (so the fuzzer's edge cases stay edge cases), others wrap into it.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        if (lo > hi) revert AssertionFailed("bound: lo > hi", int256(lo), int256(hi));
        if (x >= lo && x <= hi) return x;
        uint256 span = hi - lo;
        // The full range: every x is in it (handled above); span + 1 would overflow.
        if (span == type(uint256).max) return x;
        return lo + x % (span + 1);
    }
}
