// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {LibBit} from "solady/utils/LibBit.sol";

/// @title TickBitmap
/// @notice A three-level bitmap over 24-bit ticks: finding the next non-empty price level costs
///         at most three storage reads in either direction, however sparse the book.
/// @dev Keys in the mapping: leaf words `0 .. 2**16 - 1` (bit b of word w = tick w*256 + b),
///      mid words `2**16 + i` (bit j = leaf word i*256 + j is non-empty) and the root `ROOT`
///      (bit i = mid word i is non-empty). One mapping per book side.
library TickBitmap {
    uint256 private constant MID = 1 << 16;
    uint256 private constant ROOT = MID + 256;

    /// @notice Mark `tick` non-empty.
    function set(mapping(uint256 => uint256) storage map, uint256 tick) internal {
        uint256 w = tick >> 8;
        uint256 leaf = map[w];
        map[w] = leaf | (1 << (tick & 0xff));
        if (leaf != 0) return;
        uint256 i = w >> 8;
        uint256 mid = map[MID + i];
        map[MID + i] = mid | (1 << (w & 0xff));
        if (mid != 0) return;
        map[ROOT] |= 1 << i;
    }

    /// @notice Mark `tick` empty.
    function clear(mapping(uint256 => uint256) storage map, uint256 tick) internal {
        uint256 w = tick >> 8;
        uint256 leaf = map[w] & ~(1 << (tick & 0xff));
        map[w] = leaf;
        if (leaf == 0) _clearUpper(map, w);
    }

    /// @notice `clear(tick)` then `nextAbove(tick)`, for a level that was the best ask: the leaf
    ///         word is read and written once, and the next tick usually lies in it (a sweep
    ///         walks adjacent levels), which then needs no further read.
    function clearNextAbove(mapping(uint256 => uint256) storage map, uint256 tick) internal returns (uint256) {
        uint256 w = tick >> 8;
        uint256 b = tick & 0xff;
        uint256 leaf = map[w] & ~(1 << b);
        map[w] = leaf;
        uint256 bits = b == 255 ? 0 : leaf >> (b + 1) << (b + 1);
        if (bits != 0) return (w << 8) | LibBit.ffs(bits);
        if (leaf == 0) _clearUpper(map, w);
        return nextAbove(map, tick);
    }

    /// @notice `clear(tick)` then `nextBelow(tick)` (see `clearNextAbove`), for the best bid.
    function clearNextBelow(mapping(uint256 => uint256) storage map, uint256 tick) internal returns (uint256) {
        uint256 w = tick >> 8;
        uint256 b = tick & 0xff;
        uint256 leaf = map[w] & ~(1 << b);
        map[w] = leaf;
        uint256 bits = leaf & ((1 << b) - 1);
        if (bits != 0) return (w << 8) | LibBit.fls(bits);
        if (leaf == 0) _clearUpper(map, w);
        return nextBelow(map, tick);
    }

    /// @dev `clear`'s upper levels once leaf word `w` became empty.
    function _clearUpper(mapping(uint256 => uint256) storage map, uint256 w) private {
        uint256 i = w >> 8;
        uint256 mid = map[MID + i] & ~(1 << (w & 0xff));
        map[MID + i] = mid;
        if (mid != 0) return;
        map[ROOT] &= ~(1 << i);
    }

    /// @notice Lowest non-empty tick strictly above `tick`, or 0 if none.
    function nextAbove(mapping(uint256 => uint256) storage map, uint256 tick) internal view returns (uint256) {
        uint256 b = (tick & 0xff) + 1;
        uint256 w = tick >> 8;
        uint256 bits = b == 256 ? 0 : map[w] >> b << b;
        if (bits != 0) return (w << 8) | LibBit.ffs(bits);
        uint256 i = w >> 8;
        uint256 j = (w & 0xff) + 1;
        bits = j == 256 ? 0 : map[MID + i] >> j << j;
        if (bits == 0) {
            uint256 k = i + 1;
            bits = k == 256 ? 0 : map[ROOT] >> k << k;
            if (bits == 0) return 0;
            i = LibBit.ffs(bits);
            bits = map[MID + i];
        }
        w = (i << 8) | LibBit.ffs(bits);
        return (w << 8) | LibBit.ffs(map[w]);
    }

    /// @notice Highest non-empty tick strictly below `tick`, or 0 if none (tick 0 is never used).
    function nextBelow(mapping(uint256 => uint256) storage map, uint256 tick) internal view returns (uint256) {
        uint256 b = tick & 0xff;
        uint256 w = tick >> 8;
        uint256 bits = map[w] & ((1 << b) - 1);
        if (bits != 0) return (w << 8) | LibBit.fls(bits);
        uint256 i = w >> 8;
        uint256 j = w & 0xff;
        bits = map[MID + i] & ((1 << j) - 1);
        if (bits == 0) {
            bits = map[ROOT] & ((1 << i) - 1);
            if (bits == 0) return 0;
            i = LibBit.fls(bits);
            bits = map[MID + i];
        }
        w = (i << 8) | LibBit.fls(bits);
        return (w << 8) | LibBit.fls(map[w]);
    }
}
