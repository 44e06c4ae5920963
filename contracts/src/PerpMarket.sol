// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SafeTransferLib} from "solady/utils/SafeTransferLib.sol";
import {SafeCastLib} from "solady/utils/SafeCastLib.sol";
import {PerpMarketBase} from "./PerpMarketBase.sol";
import {PriceLib} from "./libraries/PriceLib.sol";
import {TickBitmap} from "./libraries/TickBitmap.sol";
import {IPerpMarketHot, IPerpMarketCold} from "./interfaces/IPerpMarket.sol";
import {LibBit} from "solady/utils/LibBit.sol";

/// @dev The extension's parameter hash, checked at deployment.
interface IParamsHash {
    function paramsHash() external view returns (bytes32);
}

/// @title PerpMarket
/// @notice One perpetual market: a price-time priority order book with internal collateral
///         accounting, hourly funding snapshots and permissionless liquidation. Its ABI is
///         `IPerpMarket`: the quoting hot path (`IPerpMarketHot`: place, cancel, batch) runs
///         here; every other function (`IPerpMarketCold`) is served by `extension` through the
///         fallback (delegatecall).
contract PerpMarket is PerpMarketBase, IPerpMarketHot {
    using SafeCastLib for uint256;
    using TickBitmap for mapping(uint256 => uint256);

    /// @notice The contract holding the cold functions, run in this contract's storage.
    address public immutable extension;

    /// @param p Market parameters (bounded; see IPerpMarketTypes.MarketParams).
    /// @param extension_ A PerpMarketExtension deployed with the same `p`.
    constructor(MarketParams memory p, address extension_) PerpMarketBase(p) {
        if (IParamsHash(extension_).paramsHash() != _paramsHash) revert InvalidParam(Param.Extension);
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

    /// @inheritdoc IPerpMarketHot
    function place(Place calldata order) external returns (uint256 orderId) {
        uint256 id = _idOf(msg.sender);
        orderId = _placeResting(id, order);
        if (orderId != 0) return orderId;
        _reclaimIfFull(id);
        Acct memory a = _loadAcct(id);
        Ctx memory c = _load();
        _syncHot(c);
        _settleFunding(c, a, msg.sender);
        orderId = _place(c, a, order, false);
        _finish(c, a);
    }

    /// @dev `place`'s fast path, on packed words (see the layouts in PerpMarketBase): the same
    ///      checks and writes as `_syncHot`, `_settleFunding`, `_place`, `_rest` and `_finish` in
    ///      the one case a quoting maker hits most: a GTC or post-only order that rests at once,
    ///      while no funding boundary is due and the account owes no funding settlement, whose
    ///      margin check needs no oracle (a flat account, or `_holdsAtAnyIndex` passes). It writes
    ///      nothing and returns 0 (never a valid id of a resting order) in every other case - other
    ///      flags, boundary due, funding to settle, an order that crosses, a bound that fails -
    ///      and `place` then runs the general path from scratch. Invalid orders revert in
    ///      `_validate` with the general path's errors (nothing before it can revert there).
    function _placeResting(uint256 id, Place calldata p) internal returns (uint256 orderId) {
        if (p.flags > FLAG_POST_ONLY) return 0;
        uint256 psw;
        uint256 nbw;
        uint256 n;
        {
            uint256 bw = _loadWord(_slotOf(_book));
            if (_due(uint40(bw >> BOOK_TOUCH))) return 0;
            psw = _loadWord(_slotOf(_positions[id]));
            // An account with a position may owe funding or a socialised loss: the general path
            // settles them first.
            if (int64(uint64(psw)) != 0 && (uint32(psw >> P_FMARK) != _fundingMark() || bw >> BOOK_LOSS != 0)) {
                return 0;
            }
            n = _validate(p);
            nbw = _bookAfterRest(bw, p.side, p.tick);
            if (nbw == 0) return 0; // crosses
        }
        // `_rest`'s level and margin updates, then `_finish`'s margin check, before any write.
        (uint256 ls, uint256 lw, uint256 idx) = _levelAfterRest(p);
        uint256 key = (uint256(p.side) << ID_SIDE) | (uint256(p.tick) << ID_TICK) | (idx - uint40(lw >> L_BASE));
        uint256 owner = _reserveMargin(id, psw, nbw, p.side, n, key);
        if (owner == 0) return 0; // the exact margin check needs the oracle, or no slot is free
        orderId = _restWrites(p, ls, lw, idx, key, owner, nbw);
    }

    /// @dev The writes of `_placeResting` once every check passed: `lw` and `nbw` are the new
    ///      level and book words, `idx` the order's queue index, `key` its slot key, `owner` the
    ///      order word's account, epoch and index-slot fields.
    function _restWrites(Place calldata p, uint256 ls, uint256 lw, uint256 idx, uint256 key, uint256 owner, uint256 nbw)
        internal
        returns (uint256 orderId)
    {
        uint256 lots = p.lots;
        if (uint64(lw >> L_LOTS) == lots) {
            // The level was empty.
            if (p.side == BID) _bidBits.set(p.tick);
            else _askBits.set(p.tick);
        }
        _storeWord(ls, lw);
        uint256 seq = uint40(nbw >> BOOK_SEQ);
        _storeWord(
            _slotOf(_orders[key]),
            owner | (lots << O_LOTS) | (uint256(p.clientId) << O_CLIENT) | (uint256(p.expiry) << O_EXPIRY)
                | (seq << O_SEQ)
        );
        _storeWord(_slotOf(_book), nbw);
        orderId = (seq << ID_SEQ) | ((key >> ID_TICK) << ID_TICK) | idx;
        _emitPlaced(orderId, p, lots);
    }

    /// @dev The book word after a valid order rests: the sequence bumped (checked, as
    ///      `++c.book.orderSeq`), the best price of its side updated and, if it moved, the premium
    ///      resampled (as `_store`; no boundary is due here); 0 if the order crosses.
    function _bookAfterRest(uint256 bw, uint256 side, uint256 tick) internal view returns (uint256 nbw) {
        uint40 seq = uint40(bw >> BOOK_SEQ) + 1;
        uint256 bid = uint24(bw);
        uint256 ask = uint24(bw >> BOOK_ASK);
        if (side == BID) {
            if (ask != 0 && tick >= ask) return 0;
            if (tick > bid) bid = tick;
        } else {
            if (bid != 0 && tick <= bid) return 0;
            if (ask == 0 || tick < ask) ask = tick;
        }
        nbw = (bw & ~((uint256(type(uint40).max) << BOOK_SEQ) | type(uint48).max)) | bid | (ask << BOOK_ASK)
            | (uint256(seq) << BOOK_SEQ);
        if (uint48(nbw) != uint48(bw)) nbw = _resampleWord(nbw);
    }

    /// @dev `_rest`'s level update: the level's slot, its word after the order joins it (checked,
    ///      as `_rest`) and the order's queue index.
    function _levelAfterRest(Place calldata p) internal view returns (uint256 ls, uint256 lw, uint256 idx) {
        ls = _slotOf(_levels[(uint256(p.side) << LEVEL_SIDE) | p.tick]);
        lw = _loadWord(ls);
        idx = uint40(lw >> L_TAIL);
        uint256 levelLots = uint64(lw >> L_LOTS);
        uint256 head = levelLots == 0 ? idx : uint40(lw);
        lw = head | (uint256(uint40(idx + 1)) << L_TAIL) | (uint256((levelLots + p.lots).toUint64()) << L_LOTS)
            | (uint256(uint40(lw >> L_BASE)) << L_BASE);
    }

    /// @dev The account's margin word with the order's notional `n` reserved on `side` (checked,
    ///      as `_rest`), and `_finish`'s initial-margin check with the book word `nbw`: reverts as
    ///      `_finish` for a flat account; for one with a position, returns 0 unless
    ///      `_holdsAtAnyIndex` passes; then `_rest`'s index update (`_takeSlot`; 0 if no slot is
    ///      free: the general path reclaims expired orders first). The last check of
    ///      `_placeResting`: the margin word is written only if it passes; returns the order
    ///      word's owner fields (account, epoch, index slot), never 0 as account ids start at 1.
    function _reserveMargin(uint256 id, uint256 psw, uint256 nbw, uint256 side, uint256 n, uint256 key)
        internal
        returns (uint256 owner)
    {
        uint256 ms = _slotOf(_margins[id]);
        uint256 mw = _loadWord(ms);
        {
            uint256 shift = side == BID ? M_BID : M_ASK;
            uint256 reserved = (uint256(uint48(mw >> shift)) + n).toUint48();
            mw = (mw & ~(uint256(type(uint48).max) << shift)) | (reserved << shift);
        }
        uint256 maxReserved = _max(uint48(mw >> M_BID), uint48(mw >> M_ASK));
        if (int64(uint64(psw)) == 0) {
            int256 collat = int96(uint96(mw));
            uint256 im = PriceLib.bpsOf(maxReserved, _initialMarginBps);
            if (collat < int256(im)) revert InsufficientMargin(collat, im);
        } else if (!_holds(
                uint24(nbw),
                uint24(nbw >> 24),
                int96(uint96(mw)),
                int64(uint64(psw)),
                int96(uint96(psw >> P_OPEN)),
                maxReserved
            )) {
            return 0;
        }
        uint256 slots = mw >> M_SLOTS;
        if (slots == type(uint32).max) return 0;
        uint256 slot;
        (slots, slot) = _takeSlot(id, slots, key);
        _storeWord(ms, (mw & ~(uint256(type(uint32).max) << M_SLOTS)) | (slots << M_SLOTS));
        owner = id | (uint256(uint32(mw >> M_EPOCH)) << O_EPOCH) | (slot << O_SLOT);
    }

    /// @inheritdoc IPerpMarketHot
    /// @dev Never reads the oracle. The book word is read only if the order's level empties,
    ///      and written, with a premium resample at the cached index, only if a best price moved.
    ///      The same steps as `_cancel` (used by `batch`), on packed words instead of memory
    ///      structs (see the layouts in PerpMarketBase).
    function cancel(uint256 orderId) external returns (bool) {
        uint256 id = _idOf(msg.sender);
        uint256 ow = _removeOrder(orderId, id);
        uint256 lots = uint48(ow >> O_LOTS);
        if (lots == 0) return false;
        uint256 ms = _slotOf(_margins[id]);
        uint256 mw = _loadWord(ms);
        // Orders of an old epoch were already cancelled (and their margin released) by cancelAll.
        if (uint32(ow >> O_EPOCH) != uint32(mw >> M_EPOCH)) return false;
        uint256 n = PriceLib.tickNotional(lots, uint24(orderId >> ID_TICK), _notionalUnit);
        uint256 shift = (orderId >> ID_SIDE) & 1 == BID ? M_BID : M_ASK;
        uint256 reserved = uint48(mw >> shift) - n; // checked: the reservation covers the order
        // Release the reservation and the order's index slot.
        _storeWord(
            ms,
            (mw & ~((uint256(type(uint48).max) << shift) | (uint256(1) << (M_SLOTS + (ow >> O_SLOT)))))
                | (reserved << shift)
        );
        uint256 expiry = uint32(ow >> O_EXPIRY);
        emit OrderCancelled(
            msg.sender,
            orderId,
            uint64(ow >> O_CLIENT),
            uint48(lots),
            expiry != 0 && expiry <= block.timestamp ? CANCEL_EXPIRED : CANCEL_USER
        );
        return true;
    }

    /// @dev `_cancel`'s lookup and `_unlink` for `cancel`: returns the order's packed word, or 0
    ///      if it already left the book; reverts if the order is another account's.
    function _removeOrder(uint256 orderId, uint256 id) internal returns (uint256 ow) {
        uint256 side = (orderId >> ID_SIDE) & 1;
        uint256 tick = uint24(orderId >> ID_TICK);
        uint256 idx = uint40(orderId);
        uint256 ls = _slotOf(_levels[(side << LEVEL_SIDE) | tick]);
        uint256 lw = _loadWord(ls);
        uint256 tail = uint40(lw >> L_TAIL);
        // Every resting order lies in [head, tail) (see Level).
        if (idx < uint40(lw) || idx >= tail) return 0;
        uint256 p = idx - uint40(lw >> L_BASE);
        uint256 os = _slotOf(_orders[(side << ID_SIDE) | (tick << ID_TICK) | p]);
        ow = _loadWord(os);
        uint256 lots = uint48(ow >> O_LOTS);
        if (lots == 0) return 0;
        if (uint32(ow) != id) revert NotOrderOwner(orderId);
        uint256 levelLots = uint64(lw >> L_LOTS) - lots; // checked: a level holds its orders' lots
        if (levelLots == 0) {
            // Emptied: head = tail, and the order's slot is left for the next order here (see
            // Level): base = tail - p maps index tail to slot p.
            _storeWord(ls, tail | (tail << L_TAIL) | ((tail - p) << L_BASE));
            // `_clearLevel` and `_store` on the book word: it is written only if a best price
            // moved, with a premium resample unless a boundary is due (see `_store`).
            uint256 bs = _slotOf(_book);
            uint256 bw = _loadWord(bs);
            uint256 nbw = bw;
            if (side == BID) {
                if (uint24(bw) == tick) {
                    nbw = (bw & ~uint256(type(uint24).max)) | uint24(_bidBits.clearNextBelow(tick));
                } else {
                    _bidBits.clear(tick);
                }
            } else if (uint24(bw >> BOOK_ASK) == tick) {
                nbw = (bw & ~(uint256(type(uint24).max) << BOOK_ASK))
                    | (uint256(uint24(_askBits.clearNextAbove(tick))) << BOOK_ASK);
            } else {
                _askBits.clear(tick);
            }
            if (nbw != bw) {
                if (!_due(uint40(bw >> BOOK_TOUCH))) nbw = _resampleWord(nbw);
                _storeWord(bs, nbw);
            }
        } else {
            _storeWord(ls, (lw & ~(uint256(type(uint64).max) << L_LOTS)) | (levelLots << L_LOTS));
            _storeWord(os, 0);
        }
    }

    /// @inheritdoc IPerpMarketHot
    function batch(uint256[] calldata cancelIds, Place[] calldata places) external returns (uint256[] memory newIds) {
        uint256 id = _idOf(msg.sender);
        bool placing = places.length != 0;
        Acct memory a;
        Ctx memory c;
        if (placing) {
            a = _loadAcct(id);
            // `_reclaimIfFull` on the margin word just read (reloaded if it reclaimed).
            if (a.m.orderSlots == type(uint32).max) {
                _reclaimIfFull(id);
                a = _loadAcct(id);
            }
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
            newIds[i] = _place(c, a, places[i], true);
        }
        if (placing) {
            _finish(c, a);
        } else {
            _storeMargin(a);
            _store(c);
        }
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IPerpMarketHot
    /// @dev Reads the account's own index (see `_orderIndex`): O(its resting orders), whatever
    ///      else is on the book. Served here rather than by the extension: the agent calls it
    ///      every cycle, and this saves the delegatecall.
    function openOrders(address account) external view returns (OrderView[] memory out) {
        uint256 id = accountIdOf[account];
        uint256 slots = id == 0 ? 0 : _loadWord(_slotOf(_margins[id])) >> M_SLOTS;
        out = new OrderView[](LibBit.popCount(slots));
        uint256 n;
        uint256 w;
        uint256 loaded = type(uint256).max; // the index word in `w`
        for (uint256 slot; slots >> slot != 0; ++slot) {
            if (slots >> slot & 1 == 0) continue;
            if (slot >> 2 != loaded) {
                loaded = slot >> 2;
                w = _loadWord(_slotOf(_orderIndex, (id << 8) | loaded));
            }
            uint256 key = _keyOfEntry(w >> ((slot & 3) * INDEX_BITS));
            uint256 ow = _loadWord(_slotOf(_orders[key]));
            // A set bit always names a resting order of this epoch; it may have expired.
            uint256 expiry = uint32(ow >> O_EXPIRY);
            if (expiry != 0 && expiry <= block.timestamp) continue;
            // The level's base is fixed while the order rests: it turns the key into the id.
            uint256 base =
                uint40(_loadWord(_slotOf(_levels[(key >> ID_SIDE << LEVEL_SIDE) | uint24(key >> ID_TICK)])) >> L_BASE);
            OrderView memory v = out[n++];
            v.orderId = (uint256(uint40(ow >> O_SEQ)) << ID_SEQ) | (key >> ID_TICK << ID_TICK) | (uint40(key) + base);
            v.clientId = uint64(ow >> O_CLIENT);
            v.side = uint8(key >> ID_SIDE);
            v.tick = uint24(key >> ID_TICK);
            v.lots = uint48(ow >> O_LOTS);
            v.expiry = uint32(expiry);
        }
        assembly ("memory-safe") {
            mstore(out, n)
        }
    }

    /// @dev An account whose index slots are all taken may hold expired orders, which it never
    ///      needs to cancel itself: the extension's `cancelExpired` frees their slots (cold code,
    ///      run only then).
    function _reclaimIfFull(uint256 id) internal {
        if (_loadWord(_slotOf(_margins[id])) >> M_SLOTS != type(uint32).max) return;
        (bool ok,) = extension.delegatecall(abi.encodeWithSelector(IPerpMarketCold.cancelExpired.selector));
        if (!ok) revert TooManyOrders(MAX_ORDERS);
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
