// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SafeTransferLib} from "solady/utils/SafeTransferLib.sol";
import {SafeCastLib} from "solady/utils/SafeCastLib.sol";
import {PerpMarketBase} from "./PerpMarketBase.sol";
import {PriceLib} from "./libraries/PriceLib.sol";
import {TickBitmap} from "./libraries/TickBitmap.sol";

/// @title PerpMarket
/// @notice One perpetual market: a price-time priority order book with internal collateral
///         accounting, hourly funding snapshots and permissionless liquidation. Its ABI is
///         `IPerpMarket`: the quoting hot path (place, cancel, batch, cancelAll) runs here;
///         every other function is served by `extension` through the fallback (delegatecall).
contract PerpMarket is PerpMarketBase {
    using SafeCastLib for uint256;

    /// @notice The contract holding the cold functions, run in this contract's storage.
    address public immutable extension;

    /// @param p Market parameters (bounded; see IPerpMarketTypes.MarketParams).
    /// @param extension_ A PerpMarketExtension deployed with the same `p`.
    constructor(MarketParams memory p, address extension_) PerpMarketBase(p) {
        if (PerpMarketBase(extension_).paramsHash() != paramsHash) revert InvalidParam("extension");
        extension = extension_;
        uint256 index = _readOracle();
        _book.lastTouch = uint40(block.timestamp);
        _funding = FundingSlot({
            epoch: 0,
            nextBoundary: uint40((block.timestamp / p.fundingInterval + 1) * p.fundingInterval),
            lastRate: 0,
            lastIndex: index.toUint96()
        });
        _nextAccountId = uint32(INSURANCE_ID);
        accountIdOf[address(this)] = uint32(INSURANCE_ID);
        _metas[INSURANCE_ID].owner = address(this);
        emit MarketCreated(p);
    }

    // ------------------------------------------------------------------ orders

    /// @notice See IPerpMarket.
    function place(Place calldata order) external returns (uint256 orderId) {
        Acct memory a = _loadAcct(_idOf(msg.sender));
        Ctx memory c = _load();
        _syncHot(c);
        _settleFunding(c, a, msg.sender);
        orderId = _place(c, a, order);
        _finish(c, a);
    }

    /// @notice See IPerpMarket.
    /// @dev Never reads the oracle. The book word is read only if the order's level empties,
    ///      and written, with a premium resample at the cached index, only if a best price moved.
    ///      The same steps as `_cancel` (used by `batch`), on packed words instead of memory
    ///      structs (see the layouts in PerpMarketBase).
    function cancel(uint256 orderId) external returns (bool) {
        uint256 id = _idOf(msg.sender);
        uint256 ow = _removeOrder(orderId, id);
        uint256 lots = uint48(ow >> 64);
        if (lots == 0) return false;
        uint256 ms = _slotOf(_margins[id]);
        uint256 mw = _loadWord(ms);
        // Orders of an old epoch were already cancelled (and their margin released) by cancelAll.
        if (uint32(ow >> 32) != uint32(mw >> 96)) return false;
        uint256 n = PriceLib.tickNotional(lots, uint24(orderId >> 40), notionalUnit);
        uint256 shift = (orderId >> 64) & 1 == BID ? 128 : 192;
        uint256 reserved = uint64(mw >> shift) - n; // checked: the reservation covers the order
        _storeWord(ms, (mw & ~(uint256(type(uint64).max) << shift)) | (reserved << shift));
        uint256 expiry = uint32(ow >> 176);
        emit OrderCancelled(
            msg.sender,
            orderId,
            uint64(ow >> 112),
            uint48(lots),
            expiry != 0 && expiry <= block.timestamp ? CANCEL_EXPIRED : CANCEL_USER
        );
        return true;
    }

    /// @dev `_cancel`'s lookup and `_unlink` for `cancel`: returns the order's packed word, or 0
    ///      if it already left the book; reverts if the order is another account's.
    function _removeOrder(uint256 orderId, uint256 id) internal returns (uint256 ow) {
        uint256 side = (orderId >> 64) & 1;
        uint256 tick = uint24(orderId >> 40);
        uint256 idx = uint40(orderId);
        uint256 ls = _slotOf(_levels[(side << 24) | tick]);
        uint256 lw = _loadWord(ls);
        uint256 tail = uint40(lw >> 40);
        // Every resting order lies in [head, tail) (see Level).
        if (idx < uint40(lw) || idx >= tail) return 0;
        uint256 p = idx - uint40(lw >> 144);
        uint256 os = _slotOf(_orders[(side << 64) | (tick << 40) | p]);
        ow = _loadWord(os);
        uint256 lots = uint48(ow >> 64);
        if (lots == 0) return 0;
        if (uint32(ow) != id) revert NotOrderOwner(orderId);
        uint256 levelLots = uint64(lw >> 80) - lots; // checked: a level holds its orders' lots
        if (levelLots == 0) {
            // Emptied: head = tail, and the order's slot is left for the next order here (see
            // Level): base = tail - p maps index tail to slot p.
            _storeWord(ls, tail | (tail << 40) | ((tail - p) << 144));
            Ctx memory c;
            _clearLevel(c, uint8(side), tick);
            _store(c);
        } else {
            _storeWord(ls, (lw & ~(uint256(type(uint64).max) << 80)) | (levelLots << 80));
            _storeWord(os, 0);
        }
    }

    /// @notice See IPerpMarket.
    function batch(uint256[] calldata cancelIds, Place[] calldata places) external returns (uint256[] memory newIds) {
        uint256 id = _idOf(msg.sender);
        bool placing = places.length != 0;
        Acct memory a;
        Ctx memory c;
        if (placing) {
            a = _loadAcct(id);
            _loadBook(c);
            _syncHot(c);
            _settleFunding(c, a, msg.sender);
        } else {
            a = _loadMargin(id);
        }
        for (uint256 i; i < cancelIds.length; ++i) {
            _cancel(c, a, cancelIds[i]);
        }
        newIds = new uint256[](places.length);
        for (uint256 i; i < places.length; ++i) {
            newIds[i] = _place(c, a, places[i]);
        }
        if (placing) {
            _finish(c, a);
        } else {
            _storeMargin(a);
            _store(c);
        }
    }

    /// @notice See IPerpMarket.
    function cancelAll() external {
        uint256 id = _idOf(msg.sender);
        Margin storage m = _margins[id];
        uint32 epoch = m.orderEpoch + 1;
        m.orderEpoch = epoch;
        m.bidNotional = 0;
        m.askNotional = 0;
        emit AllOrdersCancelled(msg.sender, epoch);
    }

    /// @dev Everything not on the hot path runs in the extension's code over this storage.
    fallback() external {
        address ext = extension;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), ext, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }
}
