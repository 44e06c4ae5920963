// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SafeTransferLib} from "solady/utils/SafeTransferLib.sol";
import {SafeCastLib} from "solady/utils/SafeCastLib.sol";
import {IPerpMarketTypes} from "./interfaces/IPerpMarketTypes.sol";
import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {PriceLib} from "./libraries/PriceLib.sol";
import {TickBitmap} from "./libraries/TickBitmap.sol";
import {FundingMath} from "./libraries/FundingMath.sol";
import {LibBit} from "solady/utils/LibBit.sol";

interface IERC20Decimals {
    function decimals() external view returns (uint8);
}

/// @title PerpMarketBase
/// @notice Storage, parameters and internal logic shared by `PerpMarket` (the hot path:
///         place, cancel, batch) and `PerpMarketExtension` (everything else, reached through
///         `PerpMarket`'s fallback by delegatecall). The split keeps the hot contract under the
///         24 KiB code-size limit with the optimizer tuned for runtime gas; both contracts share
///         this storage layout and verify they were built with identical parameters.
/// @dev Storage is laid out for the quoting hot path (see IPerpMarket for units):
///      - one packed `Book` word holds best bid/ask, the premium accumulator and the order
///        sequence, so a place or cancel reads and writes it once;
///      - an order is one slot, keyed by (side, tick, queue index - the level's base), which its
///        id and the level slot give, so a cancel needs no id lookup; a cancel that empties a level
///        leaves the slot for the level's next order (see Level);
///      - a price level is one slot (FIFO head/tail and total lots); levels are found through a
///        three-level bitmap per side;
///      - an account is three slots split by access pattern (margin, position, funding).
///      Cancelling all orders bumps a per-account epoch: O(1) for `cancelAll` and liquidation;
///      orders of an old epoch are pruned lazily and never fill.
abstract contract PerpMarketBase is IPerpMarketTypes {
    using SafeTransferLib for address;
    using SafeCastLib for uint256;
    using SafeCastLib for int256;
    using TickBitmap for mapping(uint256 => uint256);

    // ------------------------------------------------------------------ constants

    uint8 public constant FLAG_POST_ONLY = 1;
    uint8 public constant FLAG_IOC = 2;
    uint8 public constant FLAG_REDUCE_ONLY = 4;
    uint8 public constant CANCEL_USER = 0;
    uint8 public constant CANCEL_EXPIRED = 1;
    uint8 public constant CANCEL_SELF_TRADE = 2;
    /// @dev A fill that would leave its maker under maintenance margin cancels the order instead.
    uint8 public constant CANCEL_MARGIN = 3;

    uint8 internal constant BID = 0;
    uint8 internal constant ASK = 1;
    uint256 internal constant MAX_TICK = (1 << 24) - 1;
    /// @dev The insurance fund is an account (it can hold positions taken over in liquidations).
    uint256 internal constant INSURANCE_ID = 1;
    uint256 internal constant BPS = 10_000;
    /// @dev Resting orders one account may hold at once: the bits of `Margin.orderSlots`.
    uint256 internal constant MAX_ORDERS = 32;
    /// @dev Dead (expired or mass-cancelled) orders one call may prune. They do not count
    ///      against `maxFills`, so they cannot stop a taker or a post-only maker from reaching
    ///      live orders; this bound only keeps one call's gas finite. Each dead order cost its
    ///      owner a fresh storage slot (20k+) to create and costs about 5k (less the refund for
    ///      clearing it) to prune, so pruning is paid for by whoever made the mess.
    uint256 internal constant MAX_PRUNES = 1024;

    // Bit offsets of the packed words (Solidity's own layout of the structs below: members from
    // the low-order bits, in declaration order). The hot path reads and writes whole words.
    uint256 internal constant BOOK_ASK = 24;
    uint256 internal constant BOOK_TOUCH = 48;
    uint256 internal constant BOOK_PREMIUM = 88;
    uint256 internal constant BOOK_ACCUM = 136;
    uint256 internal constant BOOK_SEQ = 200;
    uint256 internal constant BOOK_LOSS = 240;
    uint256 internal constant M_EPOCH = 96;
    uint256 internal constant M_BID = 128;
    uint256 internal constant M_ASK = 176;
    uint256 internal constant M_SLOTS = 224;
    uint256 internal constant P_OPEN = 64;
    uint256 internal constant P_FMARK = 160;
    uint256 internal constant P_LOSS = 192;
    uint256 internal constant META_SNAPSHOT = 160;
    uint256 internal constant CUM_LONG = 128; // _lossLong in the funding index's word
    uint256 internal constant CUM_SHORT = 192;
    uint256 internal constant FEES_ACCOUNTS = 128; // _nextAccountId in the fees' word
    uint256 internal constant FEES_OI = 160; // _openInterest
    uint256 internal constant L_TAIL = 40;
    uint256 internal constant L_LOTS = 80;
    uint256 internal constant L_BASE = 144;
    uint256 internal constant O_EPOCH = 32;
    uint256 internal constant O_LOTS = 64;
    uint256 internal constant O_CLIENT = 112;
    uint256 internal constant O_EXPIRY = 176;
    uint256 internal constant O_SEQ = 208;
    uint256 internal constant O_SLOT = 248;
    // Order ids and order keys: [0,40) queue index (key: index - level base), [40,64) tick,
    // bit 64 side, and in ids [65,105) the sequence number. Level keys: side << 24 | tick.
    uint256 internal constant ID_TICK = 40;
    uint256 internal constant ID_SIDE = 64;
    uint256 internal constant ID_SEQ = 65;
    uint256 internal constant LEVEL_SIDE = 24;
    /// @dev Width of one entry of the per-account order index: four per word, so the orders one
    ///      batch refreshes usually share one index word (a cold read and a write fewer than with
    ///      three). An entry is the order key with its queue position in INDEX_POS_BITS bits
    ///      instead of 40 (see `_indexEntry`).
    uint256 internal constant INDEX_BITS = 64;
    uint256 internal constant INDEX_POS_BITS = 39;

    // ------------------------------------------------------------------ immutables

    address internal immutable _collateral;
    address internal immutable _oracle;
    address internal immutable _feeRecipient;
    uint256 internal immutable _tickSize;
    uint256 internal immutable _lotSize;
    uint256 internal immutable _minNotional;
    uint256 internal immutable _initialMarginBps;
    uint256 internal immutable _maintenanceMarginBps;
    int256 internal immutable _makerFeeBps;
    uint256 internal immutable _takerFeeBps;
    uint256 internal immutable _maxFills;
    uint256 internal immutable _fundingInterval;
    uint256 internal immutable _oracleMaxAge;
    int256 internal immutable _interestRate8h;
    int256 internal immutable _premiumClamp;
    int256 internal immutable _fundingCap;
    uint256 internal immutable _liquidationFeeBps;
    uint256 internal immutable _liquidationBandBps;
    uint256 internal immutable _keeperReward;
    uint256 internal immutable _markBandBps;
    /// @notice Collateral units per (tick x lot): the exact notional of one lot at tick 1.
    uint256 internal immutable _notionalUnit;
    uint8 internal immutable _feedDecimals;
    uint8 internal immutable _collateralDecimals;
    /// @notice keccak256 of the ABI-encoded MarketParams this code was built with.
    bytes32 internal immutable _paramsHash;

    // ------------------------------------------------------------------ storage

    struct Book {
        uint24 bestBid;
        uint24 bestAsk;
        uint40 lastTouch;
        int48 premium; // last premium sample, 1e12-scaled
        int64 premiumAccum; // premium x seconds over the open interval, 1e12-scaled
        uint40 orderSeq;
        // Set once a loss was ever socialised (see `_socialise`): only then do accounts with a
        // position need the loss indices read when they are touched.
        bool lossful;
    }

    struct FundingSlot {
        uint32 epoch;
        uint40 nextBoundary;
        int64 lastRate;
        uint96 lastIndex; // last fresh oracle price, used only for premium samples
    }

    /// @dev Queue indices `[head, tail)` only ever grow: they are part of order ids. An order's
    ///      slot is keyed by `idx - base` instead of `idx`, so that when a cancel empties a level
    ///      the next order there can take over the cancelled order's slot (a non-zero slot costs
    ///      2,900 to rewrite instead of 20,000 to fill): the cancel leaves that slot as it is and
    ///      moves `base` so the next index maps onto it. `base` changes only while the level is
    ///      empty, so the indices in `[head, tail)` always map to their own slots; slots outside
    ///      that range are never read as orders.
    struct Level {
        uint40 head;
        uint40 tail;
        uint64 lots;
        uint40 base;
    }

    struct Order {
        uint32 accountId;
        uint32 epoch;
        uint48 lots;
        uint64 clientId;
        uint32 expiry;
        uint40 seq;
        uint8 slot; // the order's bit in its account's Margin.orderSlots (see _orderIndex)
    }

    /// @dev Everything a place or cancel touches for its account, in one slot.
    struct Margin {
        int96 collateral;
        uint32 orderEpoch; // bumped by cancelAll: orders of older epochs are dead
        uint48 bidNotional; // notional of resting bids (reserved margin = IMF x max side)
        uint48 askNotional;
        // One bit per resting order of the current epoch (see _orderIndex); cleared whenever
        // the order leaves the book, reset with the epoch.
        uint32 orderSlots;
    }

    struct Position {
        int64 lots;
        int96 openNotional;
        // `block.timestamp / fundingInterval` when the funding snapshot was last taken: while it
        // equals the open interval's number no interval has closed since, so nothing is owed and
        // neither the snapshot nor the cumulative index needs reading.
        uint32 fundingMark;
        // The loss index of the position's side (`_lossLong` or `_lossShort`) when the account
        // last settled it; 0 while flat.
        uint64 lossSnap;
    }

    struct Meta {
        address owner;
        int96 fundingSnapshot;
    }

    Book internal _book;
    FundingSlot internal _funding;
    int128 internal _cumFunding;
    /// @dev Socialised loss per lot charged to longs / shorts so far, collateral units (see
    ///      `_socialise`); in the funding index's slot, which every trade reads anyway.
    uint64 internal _lossLong;
    uint64 internal _lossShort;
    uint128 internal _fees;
    uint32 internal _nextAccountId;
    /// @dev Lots held long (= lots held short), insurance fund included: the base a socialised
    ///      loss is shared over. In the fees' slot, which every trade writes anyway.
    uint64 internal _openInterest;

    /// @notice Account id of an address (0 = never deposited; 1 is the insurance fund).
    mapping(address => uint32) public accountIdOf;
    mapping(uint256 => Margin) internal _margins;
    mapping(uint256 => Position) internal _positions;
    mapping(uint256 => Meta) internal _metas;
    mapping(uint256 => Level) internal _levels;
    mapping(uint256 => Order) internal _orders;
    mapping(uint256 => uint256) internal _bidBits;
    mapping(uint256 => uint256) internal _askBits;
    /// @dev Per-account order index, so `openOrders` reads an account's own orders only: the
    ///      order key (see ID_*, packed by `_indexEntry`) of the order holding bit `slot` of
    ///      `Margin.orderSlots` is field `slot % 4` (INDEX_BITS wide) of word
    ///      `accountId << 8 | slot / 4`. A field is valid
    ///      only while its bit is set. Placements pick the lowest free bit, so a maker re-quoting
    ///      the same level usually rewrites a field with the value it already holds.
    mapping(uint256 => uint256) internal _orderIndex;
    /// @dev Rounding carry of the funding index (read and written only when an interval closes).
    int128 internal _fundingCarry;

    // ------------------------------------------------------------------ memory frames

    /// @dev Per-transaction view of the market, written back once. The book word is read only
    ///      when needed (a cancel that leaves its level non-empty never reads it) and written
    ///      back only if it changed; the cached index only if the premium must be resampled.
    struct Ctx {
        Book book;
        bool bookLoaded;
        uint24 bid0; // best prices as loaded: the premium is resampled only if they move
        uint24 ask0;
        bool seqBumped;
        uint256 index;
        bool indexLoaded;
        bool fresh;
        int256 cum;
        bool cumLoaded;
        uint256 lossLong; // loaded with `cum`
        uint256 lossShort;
        int256 feeDelta;
        int256 oiDelta; // change of `_openInterest`, written back by `_store`
        uint256 mark; // the mark makers are checked at (first fill of the transaction), 0 = unset
    }

    /// @dev The acting account, loaded once per transaction and written back once.
    struct Acct {
        uint256 id;
        Margin m;
        Position ps;
        int256 snapshot; // read lazily by _settleFunding (see Position.fundingMark)
        bool snapshotLoaded;
        bool snapshotDirty;
        int256 startLots;
        bool psDirty; // the position slot needs writing
        bool rested;
        bool traded;
    }

    /// @dev Running totals of one take.
    struct Take {
        uint8 side;
        uint256 limit;
        uint256 remaining;
        uint256 touched;
        uint256 pruned;
        int256 lots;
        int256 notional;
        uint256 fee;
        address taker;
        // the level being walked
        uint8 makerSide;
        uint256 tick;
        bool pruneOnly;
        // The maker of the last order visited, kept across its consecutive orders (a sweep often
        // meets one maker at several levels) and written back once (`_flushMaker`). `maker.id` is
        // 0 while none is held; `makerFull`: its position and funding snapshot are loaded and
        // settled (it filled); `makerDirty`: its margin word changed (an expired order pruned).
        Acct maker;
        // The order being visited, decoded in place (see `_matchLevel`).
        Order order;
        bool makerFull;
        bool makerDirty;
        address makerOwner;
    }

    constructor(MarketParams memory p) {
        if (p.collateral == address(0)) revert InvalidParam(Param.Collateral);
        if (p.oracle == address(0)) revert InvalidParam(Param.Oracle);
        if (p.feeRecipient == address(0)) revert InvalidParam(Param.FeeRecipient);
        if (p.tickSize == 0 || p.lotSize == 0 || p.tickSize > type(uint96).max) {
            revert InvalidParam(Param.TickSize);
        }
        if ((p.tickSize * p.lotSize) % PriceLib.BASE_UNIT != 0) revert InvalidParam(Param.NotionalUnit);
        if (p.maintenanceMarginBps == 0 || p.maintenanceMarginBps >= p.initialMarginBps) {
            revert InvalidParam(Param.MaintenanceMargin);
        }
        if (p.initialMarginBps > BPS) revert InvalidParam(Param.InitialMargin);
        if (p.takerFeeBps > 100) revert InvalidParam(Param.TakerFee);
        int256 makerFee = p.makerFeeBps;
        if (makerFee > int256(uint256(p.takerFeeBps)) || -makerFee > int256(uint256(p.takerFeeBps))) {
            revert InvalidParam(Param.MakerFee);
        }
        if (p.maxFills == 0 || p.maxFills > 256) revert InvalidParam(Param.MaxFills);
        if (p.fundingInterval < 60 || p.fundingInterval > 1 days) revert InvalidParam(Param.FundingInterval);
        if (p.oracleMaxAge == 0 || p.oracleMaxAge > 1 days) revert InvalidParam(Param.OracleMaxAge);
        if (p.interestRate8h > 1e16) revert InvalidParam(Param.InterestRate);
        if (p.premiumClamp > 1e16) revert InvalidParam(Param.PremiumClamp);
        if (p.fundingCap == 0 || p.fundingCap > 1e17) revert InvalidParam(Param.FundingCap);
        if (p.liquidationFeeBps >= p.maintenanceMarginBps) revert InvalidParam(Param.LiquidationFee);
        if (p.liquidationBandBps == 0 || p.liquidationBandBps > 2000) {
            revert InvalidParam(Param.LiquidationBand);
        }
        if (p.keeperReward > 1e12) revert InvalidParam(Param.KeeperReward);
        if (p.markBandBps == 0 || p.markBandBps > 2000) revert InvalidParam(Param.MarkBand);

        _collateral = p.collateral;
        _oracle = p.oracle;
        _feeRecipient = p.feeRecipient;
        _tickSize = p.tickSize;
        _lotSize = p.lotSize;
        _minNotional = p.minNotional;
        _initialMarginBps = p.initialMarginBps;
        _maintenanceMarginBps = p.maintenanceMarginBps;
        _makerFeeBps = p.makerFeeBps;
        _takerFeeBps = p.takerFeeBps;
        _maxFills = p.maxFills;
        _fundingInterval = p.fundingInterval;
        _oracleMaxAge = p.oracleMaxAge;
        _interestRate8h = int256(uint256(p.interestRate8h));
        _premiumClamp = int256(uint256(p.premiumClamp));
        _fundingCap = int256(uint256(p.fundingCap));
        _liquidationFeeBps = p.liquidationFeeBps;
        _liquidationBandBps = p.liquidationBandBps;
        _keeperReward = p.keeperReward;
        _markBandBps = p.markBandBps;
        _notionalUnit = p.tickSize * p.lotSize / PriceLib.BASE_UNIT;
        _feedDecimals = AggregatorV3Interface(p.oracle).decimals();
        _collateralDecimals = IERC20Decimals(p.collateral).decimals();

        _paramsHash = keccak256(abi.encode(p));
    }

    // ------------------------------------------------------------------ placement

    /// @dev `skipCrossing` (batch): a post-only order that meets a live opposite order is
    ///      skipped (`PlaceSkipped`, nothing rests, returns 0) instead of reverting.
    function _place(Ctx memory c, Acct memory a, Place calldata p, bool skipCrossing)
        internal
        returns (uint256 orderId)
    {
        _validate(p);
        uint40 seq = ++c.book.orderSeq;
        c.seqBumped = true;
        uint256 remaining = p.lots;
        bool reduceOnly = p.flags & FLAG_REDUCE_ONLY != 0;
        if (reduceOnly) remaining = _clipReduceOnly(a, p.side, remaining);
        if (_crosses(c, p.side, p.tick)) {
            if (p.flags & FLAG_POST_ONLY != 0) {
                _pruneCrossing(c, a, p, skipCrossing);
            } else {
                if (!c.fresh) _ensureFresh(c);
                Take memory t = _newTake(p.side, p.tick, remaining, msg.sender);
                _match(c, a, t);
                _applyTake(c, a, t);
                remaining = t.remaining;
            }
        }
        // A remainder that still crosses (maxFills reached, or a post-only order skipped at a live
        // order) is dropped: the book never rests crossed.
        if (remaining == 0 || p.flags & (FLAG_IOC | FLAG_REDUCE_ONLY) != 0 || _crosses(c, p.side, p.tick)) {
            return 0;
        }
        orderId = _rest(c, a, p, seq, remaining);
    }

    /// @dev Returns the order's notional at its tick.
    function _validate(Place calldata p) internal view returns (uint256 n) {
        if (p.side > ASK) revert InvalidSide(p.side);
        if (p.tick == 0) revert InvalidTick(p.tick);
        if (p.lots == 0) revert InvalidLots();
        uint8 f = p.flags;
        if (f > 7 || (f & FLAG_POST_ONLY != 0 && f & (FLAG_IOC | FLAG_REDUCE_ONLY) != 0)) {
            revert InvalidFlags(f);
        }
        if (p.expiry != 0 && p.expiry <= block.timestamp) revert InvalidExpiry(p.expiry);
        n = PriceLib.tickNotional(p.lots, p.tick, _notionalUnit);
        if (n < _minNotional) revert BelowMinNotional(n, _minNotional);
    }

    function _clipReduceOnly(Acct memory a, uint8 side, uint256 lots) internal pure returns (uint256) {
        int256 pos = a.ps.lots;
        if (side == BID ? pos >= 0 : pos <= 0) revert ReduceOnlyWouldIncrease();
        uint256 absPos = uint256(pos < 0 ? -pos : pos);
        return lots < absPos ? lots : absPos;
    }

    function _crosses(Ctx memory c, uint8 side, uint256 tick) internal pure returns (bool) {
        if (side == BID) return c.book.bestAsk != 0 && tick >= c.book.bestAsk;
        return c.book.bestBid != 0 && tick <= c.book.bestBid;
    }

    function _rest(Ctx memory c, Acct memory a, Place calldata p, uint40 seq, uint256 lots)
        internal
        returns (uint256 orderId)
    {
        uint256 side = p.side;
        uint256 tick = p.tick;
        uint256 levelKey = (side << LEVEL_SIDE) | tick;
        Level memory lv = _levels[levelKey];
        uint256 idx = lv.tail;
        if (lv.lots == 0) {
            lv.head = uint40(idx);
            if (side == BID) _bidBits.set(tick);
            else _askBits.set(tick);
        }
        lv.tail = uint40(idx + 1);
        lv.lots = (uint256(lv.lots) + lots).toUint64();
        _writeLevel(levelKey, lv);
        _restOrder(a, p, (side << ID_SIDE) | (tick << ID_TICK) | (idx - lv.base), seq, lots);
        uint256 n = PriceLib.tickNotional(lots, tick, _notionalUnit);
        if (side == BID) {
            a.m.bidNotional = (uint256(a.m.bidNotional) + n).toUint48();
            if (tick > c.book.bestBid) c.book.bestBid = uint24(tick);
        } else {
            a.m.askNotional = (uint256(a.m.askNotional) + n).toUint48();
            if (c.book.bestAsk == 0 || tick < c.book.bestAsk) c.book.bestAsk = uint24(tick);
        }
        a.rested = true;
        orderId = (uint256(seq) << ID_SEQ) | (side << ID_SIDE) | (tick << ID_TICK) | idx;
        _emitPlaced(orderId, p, lots);
    }

    /// @dev `_rest`'s order write: the order word under `key` and its index slot.
    function _restOrder(Acct memory a, Place calldata p, uint256 key, uint256 seq, uint256 lots) internal {
        (uint256 slots, uint256 slot) = _takeSlot(a.id, a.m.orderSlots, key);
        a.m.orderSlots = uint32(slots);
        _storeWord(
            _slotOf(_orders[key]),
            a.id | (uint256(a.m.orderEpoch) << O_EPOCH) | (lots << O_LOTS) | (uint256(p.clientId) << O_CLIENT)
                | (uint256(p.expiry) << O_EXPIRY) | (seq << O_SEQ) | (slot << O_SLOT)
        );
    }

    /// @dev Take the lowest free bit of `slots` for the order at `key` and record the key in the
    ///      account's index; returns the new bits and the slot. Reverts if all are taken. The
    ///      index word is rewritten only if the field changes (a re-quote at the same level
    ///      usually finds its own old key there).
    function _takeSlot(uint256 id, uint256 slots, uint256 key) internal returns (uint256, uint256 slot) {
        unchecked {
            // slots < 2**32, slot < 32, entries < 2**64, account ids < 2**32: nothing overflows.
            // The lowest free bit: an account's live orders stay packed in its first index words
            // (a level-derived slot was tried: it spreads them over more words, each a fresh
            // 22.1k slot to create and one more read for openOrders).
            uint256 free = ~slots & (slots + 1);
            if (free > type(uint32).max) revert TooManyOrders(MAX_ORDERS);
            slot = LibBit.fls(free);
            uint256 ws = _slotOf(_orderIndex, (id << 8) | (slot >> 2));
            uint256 w = _loadWord(ws);
            uint256 shift = (slot & 3) * INDEX_BITS;
            uint256 nw = (w & ~(uint256(type(uint64).max) << shift)) | (_indexEntry(key) << shift);
            if (nw != w) _storeWord(ws, nw);
            return (slots | free, slot);
        }
    }

    /// @dev The order key in bit `slot`'s field of account `id`'s index.
    function _indexKey(uint256 id, uint256 slot) internal view returns (uint256) {
        return _keyOfEntry(_orderIndex[(id << 8) | (slot >> 2)] >> ((slot & 3) * INDEX_BITS));
    }

    /// @dev An order key (side, tick and 40-bit queue position, see ID_*) as a 64-bit index
    ///      entry: the position must fit INDEX_POS_BITS. A level's position grows by one per order
    ///      placed there (a fresh 22.1k slot each) and never wraps before 2**40 (ids hold 40 bits),
    ///      so 2**39 orders at one price, about 1.2e16 gas of placements, would be needed to reach
    ///      it; such a level then refuses new orders with `InvalidTick` rather than corrupt the
    ///      index.
    function _indexEntry(uint256 key) internal pure returns (uint256) {
        uint256 pos = uint40(key);
        if (pos >> INDEX_POS_BITS != 0) revert InvalidTick(uint24(key >> ID_TICK));
        return ((key >> ID_TICK) << INDEX_POS_BITS) | pos;
    }

    /// @dev The order key of an index entry (`_indexEntry` inverted); only the low 64 bits of
    ///      `e` are read.
    function _keyOfEntry(uint256 e) internal pure returns (uint256) {
        return ((uint256(uint64(e)) >> INDEX_POS_BITS) << ID_TICK) | (e & ((uint256(1) << INDEX_POS_BITS) - 1));
    }

    /// @dev The id of the order resting under `key` (its level's base turns the key into the
    ///      queue index).
    function _orderIdOf(uint256 key, Order memory o) internal view returns (uint256) {
        Level memory lv = _levels[((key >> ID_SIDE) << LEVEL_SIDE) | uint24(key >> ID_TICK)];
        return (uint256(o.seq) << ID_SEQ) | ((key >> ID_TICK) << ID_TICK) | (uint40(key) + lv.base);
    }

    function _emitPlaced(uint256 orderId, Place calldata p, uint256 lots) internal {
        emit OrderPlaced(msg.sender, orderId, p.clientId, p.side, p.tick, uint48(lots), p.flags, p.expiry);
    }

    function _cancel(Ctx memory c, Acct memory a, uint256 orderId) internal returns (bool) {
        uint8 side = uint8((orderId >> ID_SIDE) & 1);
        uint256 tick = uint24(orderId >> ID_TICK);
        uint256 idx = uint40(orderId);
        uint256 levelKey = (uint256(side) << LEVEL_SIDE) | tick;
        Level memory lv = _levels[levelKey];
        // Every resting order lies in [head, tail); the slots of indices outside it are not orders.
        if (idx < lv.head || idx >= lv.tail) return false;
        uint256 key = (uint256(side) << ID_SIDE) | (tick << ID_TICK) | (idx - lv.base);
        Order memory o = _orders[key];
        if (o.lots == 0) return false;
        if (o.accountId != a.id) revert NotOrderOwner(orderId);
        _unlink(c, side, tick, levelKey, lv, key, o.lots);
        // Orders of an old epoch were already cancelled (and their margin released) by cancelAll.
        if (o.epoch != a.m.orderEpoch) return false;
        _release(a.m, side, PriceLib.tickNotional(o.lots, tick, _notionalUnit));
        a.m.orderSlots &= ~uint32(1 << o.slot);
        bool expired = o.expiry != 0 && o.expiry <= block.timestamp;
        emit OrderCancelled(msg.sender, orderId, o.clientId, o.lots, expired ? CANCEL_EXPIRED : CANCEL_USER);
        return true;
    }

    /// @dev Remove one resting order by its key; an emptied level leaves the bitmap and, if it was
    ///      the best, the best price moves to the next level.
    function _unlink(
        Ctx memory c,
        uint8 side,
        uint256 tick,
        uint256 levelKey,
        Level memory lv,
        uint256 key,
        uint256 lots
    ) internal {
        lv.lots -= uint64(lots);
        if (lv.lots == 0) {
            // The level is empty: its queue range becomes empty, so the order's slot is out of
            // range and left as it is; the next order at this level (index `tail`) reuses it.
            // With p = idx - base its slot (p = the key's low 40 bits), the new base is
            // tail - p: it lies in [old base, tail] since idx < tail, and maps index tail to p.
            lv.head = lv.tail;
            lv.base = uint40(uint256(lv.tail) - uint40(key));
            _clearLevel(c, side, tick);
        } else {
            delete _orders[key];
        }
        _writeLevel(levelKey, lv);
    }

    function _clearLevel(Ctx memory c, uint8 side, uint256 tick) internal {
        if (!c.bookLoaded) _loadBook(c);
        if (side == BID) {
            if (c.book.bestBid == tick) c.book.bestBid = uint24(_bidBits.clearNextBelow(tick));
            else _bidBits.clear(tick);
        } else {
            if (c.book.bestAsk == tick) c.book.bestAsk = uint24(_askBits.clearNextAbove(tick));
            else _askBits.clear(tick);
        }
    }

    function _release(Margin memory m, uint8 side, uint256 notional) internal pure {
        if (side == BID) m.bidNotional -= uint48(notional);
        else m.askNotional -= uint48(notional);
    }

    /// @dev A post-only order may cross only dead (expired or mass-cancelled) orders: prune them,
    ///      and reject the order at the first live one: revert, or with `skip` (batch) emit
    ///      `PlaceSkipped` and stop, leaving the order crossing (`_place` then drops it). What
    ///      was pruned before the live order stays pruned (their makers' margin is released).
    function _pruneCrossing(Ctx memory c, Acct memory a, Place calldata p, bool skip) internal {
        uint8 side = p.side;
        uint256 tick = p.tick;
        Take memory t = _newTake(side, tick, 0, msg.sender);
        while (_crosses(c, side, tick)) {
            uint256 best = side == ASK ? c.book.bestBid : c.book.bestAsk;
            if (!_matchLevel(c, a, t, best)) {
                if (!skip) revert PostOnlyWouldCross(uint24(tick), uint24(best));
                emit PlaceSkipped(msg.sender, p.clientId, side, uint24(tick), p.lots, uint24(best));
                break;
            }
        }
        _flushMaker(t);
    }

    // ------------------------------------------------------------------ matching

    function _newTake(uint8 side, uint256 limit, uint256 lots, address taker) internal pure returns (Take memory t) {
        t.side = side;
        t.makerSide = side ^ 1;
        t.limit = limit;
        t.remaining = lots;
        t.taker = taker;
    }

    function _match(Ctx memory c, Acct memory a, Take memory t) internal {
        _ensureCum(c);
        while (t.remaining != 0 && t.touched < _maxFills && t.pruned < MAX_PRUNES) {
            uint256 best = t.side == ASK ? c.book.bestBid : c.book.bestAsk;
            if (best == 0 || (t.side == BID ? best > t.limit : best < t.limit)) break;
            if (!_matchLevel(c, a, t, best)) break;
        }
        _flushMaker(t);
    }

    /// @dev Make `t.maker` the account `id` of an order met by a walk: if it holds another one,
    ///      that is written back and this one's margin word loaded. Returns nothing (the caller
    ///      reads `t.maker`): a function returning a memory struct allocates and zeroes a fresh
    ///      one on every call, about 500 gas a fill here.
    function _holdMaker(Take memory t, uint256 id) internal {
        Acct memory m = t.maker;
        if (m.id == id) return;
        _flushMaker(t);
        // Reused in place: a walk allocates no memory per maker.
        m.id = id;
        _readMargin(id, m.m);
        m.snapshotDirty = false;
        m.psDirty = false;
    }

    /// @dev Write back the maker held by a walk (see Take.maker), once: every walk ends with it.
    function _flushMaker(Take memory t) internal {
        Acct memory m = t.maker;
        if (t.makerFull) _storeAcct(m);
        else if (t.makerDirty) _writeMargin(m.id, m.m);
        m.id = 0;
        t.makerFull = false;
        t.makerDirty = false;
    }

    /// @dev Walk one level in FIFO order. Returns true if the level was emptied. With
    ///      `t.remaining == 0` it only prunes dead orders and stops at the first live one. Works
    ///      on the level's packed word (see Level) and decodes each order into `t.order`: a
    ///      memory struct declared here would be allocated and zeroed for every level walked.
    function _matchLevel(Ctx memory c, Acct memory a, Take memory t, uint256 tick) internal returns (bool emptied) {
        uint8 makerSide = t.makerSide;
        t.tick = tick;
        t.pruneOnly = t.remaining == 0;
        uint256 ls = _slotOf(_levels[(uint256(makerSide) << LEVEL_SIDE) | tick]);
        uint256 lw = _loadWord(ls);
        uint256 idx = uint40(lw); // head
        uint256 tail = uint40(lw >> L_TAIL);
        uint256 levelLots = uint64(lw >> L_LOTS);
        uint256 base = (uint256(makerSide) << ID_SIDE) | (tick << ID_TICK);
        uint256 slotBase = base - uint40(lw >> L_BASE); // slot key of index idx: slotBase + idx (see Level)
        Order memory o = t.order;
        while (idx < tail && t.touched < _maxFills && t.pruned < MAX_PRUNES) {
            (uint256 removed, bool next, bool stop) = _step(c, a, t, o, _slotOf(_orders[slotBase + idx]), base | idx);
            levelLots -= removed; // checked: a level holds its orders' lots
            if (next) ++idx;
            if (stop) break;
        }
        if (levelLots == 0) {
            idx = tail;
            _clearLevel(c, makerSide, tick);
            emptied = true;
        }
        // head, tail, lots and base (unchanged), as `_writeLevel`.
        _storeWord(ls, idx | (tail << L_TAIL) | (levelLots << L_LOTS) | ((lw >> L_BASE) << L_BASE));
    }

    /// @dev One queue position of `_matchLevel`'s walk, the order's slot `os` and its id
    ///      without the sequence `key`: returns the lots it removed from the level, whether the
    ///      walk moves past it (it was empty or left the book) and whether the walk stops here
    ///      (a live order met by a prune-only walk, a partial fill, or the take is complete).
    function _step(Ctx memory c, Acct memory a, Take memory t, Order memory o, uint256 os, uint256 key)
        internal
        returns (uint256 removed, bool next, bool stop)
    {
        uint256 w = _loadWord(os);
        uint256 lots = uint48(w >> O_LOTS);
        if (lots == 0) return (0, true, false);
        _decodeOrder(w, o);
        removed = _visit(c, a, t, o, key);
        if (removed == type(uint256).max) return (0, false, true);
        if (removed < lots) {
            _storeWord(os, (w & ~(uint256(type(uint48).max) << O_LOTS)) | ((lots - removed) << O_LOTS));
            return (removed, false, true);
        }
        _storeWord(os, 0);
        return (removed, true, !t.pruneOnly && t.remaining == 0);
    }

    /// @dev Handle one non-empty resting order; returns the lots it leaves the book with (all of
    ///      them if pruned), or type(uint256).max if it is live and this is a prune-only walk.
    function _visit(Ctx memory c, Acct memory a, Take memory t, Order memory o, uint256 key)
        internal
        returns (uint256)
    {
        uint8 makerSide = t.makerSide;
        uint256 tick = t.tick;
        uint256 orderId = (uint256(o.seq) << ID_SEQ) | key;
        if (o.accountId == a.id) {
            bool live = o.epoch == a.m.orderEpoch;
            bool expired = o.expiry != 0 && o.expiry <= block.timestamp;
            // A post-only order is rejected by a live order of its own account like any other.
            if (t.pruneOnly && live && !expired) return type(uint256).max;
            if (live && !expired) t.touched += 1;
            else t.pruned += 1;
            // Self-trade prevention (expire maker): the resting order of the taker is cancelled.
            if (live) {
                _release(a.m, makerSide, PriceLib.tickNotional(o.lots, tick, _notionalUnit));
                a.m.orderSlots &= ~uint32(1 << o.slot);
                emit OrderCancelled(t.taker, orderId, o.clientId, o.lots, expired ? CANCEL_EXPIRED : CANCEL_SELF_TRADE);
            }
            return o.lots;
        }
        _holdMaker(t, o.accountId);
        Acct memory m = t.maker;
        if (o.epoch != m.m.orderEpoch) {
            t.pruned += 1;
            return o.lots;
        }
        if (o.expiry != 0 && o.expiry <= block.timestamp) {
            t.pruned += 1;
            _release(m.m, makerSide, PriceLib.tickNotional(o.lots, tick, _notionalUnit));
            m.m.orderSlots &= ~uint32(1 << o.slot);
            t.makerDirty = true;
            emit OrderCancelled(_metas[o.accountId].owner, orderId, o.clientId, o.lots, CANCEL_EXPIRED);
            return o.lots;
        }
        if (t.pruneOnly) return type(uint256).max;
        uint256 q = t.remaining < o.lots ? t.remaining : o.lots;
        unchecked {
            // Counted against maxFills even if the maker fails its check: it cost a fill's reads.
            // The walk stops at maxFills (at most 256).
            t.touched += 1;
        }
        if (!_fill(c, t, m, o, q, orderId)) return o.lots; // cancelled instead (CANCEL_MARGIN)
        unchecked {
            t.remaining -= q; // q <= t.remaining
        }
        return q;
    }

    /// @dev Fill `q` lots of the maker order `o`; returns false, filling nothing, if the fill
    ///      would leave the maker under maintenance margin (the order is cancelled instead).
    ///      The arithmetic here is unchecked: a resting order reserved its notional in a uint48
    ///      (`_rest`, `_reserveMargin`: `(reserved + n).toUint48()`), so the notional `n` of any
    ///      part of it is below 2**48, each fee at most 100 bps of it (constructor), and a take
    ///      makes at most maxFills (<= 256) fills: every sum below stays under 2**57.
    function _fill(Ctx memory c, Take memory t, Acct memory m, Order memory o, uint256 q, uint256 orderId)
        internal
        returns (bool)
    {
        uint256 n;
        int256 makerFee;
        unchecked {
            n = q * t.tick * _notionalUnit;
            makerFee = int256(n) * _makerFeeBps / int256(BPS);
        }
        if (!_settleMaker(c, m, o, t, q, n, makerFee)) {
            emit OrderCancelled(t.makerOwner, orderId, o.clientId, o.lots, CANCEL_MARGIN);
            return false;
        }
        uint256 takerFee;
        unchecked {
            takerFee = n * _takerFeeBps / BPS;
            // The taker's side: it sells to a resting bid.
            if (t.makerSide == BID) {
                t.lots -= int256(q);
                t.notional -= int256(n);
            } else {
                t.lots += int256(q);
                t.notional += int256(n);
            }
            t.fee += takerFee;
            c.feeDelta += int256(takerFee) + makerFee;
        }
        _emitFill(t.makerOwner, t, orderId, o.clientId, q, makerFee, takerFee);
        return true;
    }

    function _emitFill(
        address maker,
        Take memory t,
        uint256 orderId,
        uint64 clientId,
        uint256 q,
        int256 makerFee,
        uint256 takerFee
    ) internal {
        emit Fill(maker, t.taker, orderId, clientId, uint48(q), makerFee, takerFee);
    }

    /// @dev The maker's side of a fill. The maker is re-checked at the fill: if the fill would
    ///      leave it under maintenance margin at the mark (for a flat maker: below zero
    ///      collateral), nothing is filled and the whole order is cancelled instead, its reserved
    ///      margin released (funding and loss settled on the way are kept). So every fill leaves
    ///      each account it touches at or above maintenance margin (the taker's `_finish` demands
    ///      initial margin, or for a reducing trade non-negative equity): bad debt can only come
    ///      from the price moving through the maintenance buffer before a liquidation.
    function _settleMaker(
        Ctx memory c,
        Acct memory m,
        Order memory o,
        Take memory t,
        uint256 q,
        uint256 n,
        int256 makerFee
    ) internal returns (bool ok) {
        if (!t.makerFull) {
            // First fill of this maker in the walk: load the rest of its account and settle its
            // funding and loss (idempotent afterwards: its marks are then current).
            uint256 id = m.id;
            _readPosition(id, m.ps);
            uint256 w = _loadWord(_slotOf(_metas[id]));
            address owner = address(uint160(w));
            t.makerOwner = owner;
            m.snapshot = int96(uint96(w >> META_SNAPSHOT));
            m.snapshotLoaded = true;
            _settleFunding(c, m, owner);
            t.makerFull = true;
        }
        // Signed from the maker's point of view: a resting bid buys. q and n are below 2**48
        // (see `_fill`): the negations cannot overflow.
        int256 dLots;
        int256 dNotional;
        unchecked {
            dLots = t.makerSide == BID ? int256(q) : -int256(q);
            dNotional = t.makerSide == BID ? int256(n) : -int256(n);
        }
        ok = _makerHolds(c, m, dLots, dNotional, makerFee);
        if (ok) {
            _applyTrade(m, dLots, dNotional, c);
            m.m.collateral = (int256(m.m.collateral) - makerFee).toInt96();
            _release(m.m, t.makerSide, n);
            // A filled order leaves the book: its index slot is freed.
            if (q == o.lots) m.m.orderSlots &= ~uint32(1 << o.slot);
        } else {
            _release(m.m, t.makerSide, PriceLib.tickNotional(o.lots, t.tick, _notionalUnit));
            m.m.orderSlots &= ~uint32(1 << o.slot);
        }
    }

    /// @dev Whether the maker would keep maintenance margin at the transaction's mark (fixed at
    ///      its first fill) after trading `dLots` for `dNotional` and paying `makerFee`; for a
    ///      trade that leaves it flat, whether its collateral stays non-negative. Computed before
    ///      the trade is applied, so a failing fill changes nothing: `_applyTrade` moves the
    ///      realized PnL between collateral and open notional, so collateral minus open notional
    ///      changes by exactly -dNotional (open, reduce, close or flip alike) and the equity at
    ///      the mark afterwards is that plus the new position's signed notional, the value
    ///      `_equity` computes on the applied state. The notional is computed once and signed
    ///      (`_signedNotional` truncates toward zero, so it is the negated `_absNotional`).
    function _makerHolds(Ctx memory c, Acct memory m, int256 dLots, int256 dNotional, int256 makerFee)
        internal
        view
        returns (bool)
    {
        int256 next;
        int256 rest;
        unchecked {
            // An int64 position and int96 collateral and open notional (their stored types)
            // moved by a fill's lots, notional and fee, each below 2**56 (see `_fill`).
            next = m.ps.lots + dLots;
            rest = int256(m.m.collateral) - m.ps.openNotional - dNotional - makerFee;
        }
        if (next == 0) return rest >= 0;
        if (c.mark == 0) c.mark = _mark(c);
        uint256 n = _absNotional(next, c.mark);
        int256 equity = next > 0 ? rest + int256(n) : rest - int256(n);
        return equity >= int256(PriceLib.bpsOf(n, _maintenanceMarginBps));
    }

    /// @dev Apply a finished take to the taker.
    function _applyTake(Ctx memory c, Acct memory a, Take memory t) internal view {
        if (t.lots == 0) return;
        _applyTrade(a, t.lots, t.notional, c);
        a.m.collateral = (int256(a.m.collateral) - int256(t.fee)).toInt96();
        a.traded = true;
    }

    /// @dev Trade `dLots` for `dNotional` (same sign; buying is positive). Realized PnL is the
    ///      closing notional against the pro-rata cost basis, so the account's value at the trade
    ///      price is unchanged and the sum over accounts is exactly conserved.
    function _applyTrade(Acct memory a, int256 dLots, int256 dNotional, Ctx memory c) internal view {
        int256 pos = a.ps.lots;
        int256 open = a.ps.openNotional;
        if (pos == 0) {
            _ensureCum(c);
            a.snapshot = c.cum;
            a.snapshotLoaded = true;
            a.snapshotDirty = true;
            a.ps.fundingMark = _fundingMark();
        }
        int256 next = pos + dLots;
        // A position that opens or flips joins its new side's loss index (the old side's loss
        // was settled before the trade, see _settleFunding).
        if (next != 0 && (pos == 0 || (pos > 0) != (next > 0))) {
            _ensureCum(c);
            a.ps.lossSnap = uint64(next > 0 ? c.lossLong : c.lossShort);
        }
        c.oiDelta += (next > 0 ? next : int256(0)) - (pos > 0 ? pos : int256(0));
        a.psDirty = true;
        if (pos == 0 || (pos > 0) == (dLots > 0)) {
            open += dNotional;
        } else {
            int256 absPos = pos < 0 ? -pos : pos;
            int256 absD = dLots < 0 ? -dLots : dLots;
            int256 realized;
            if (absD <= absPos) {
                int256 portion = open * absD / absPos;
                realized = -dNotional - portion;
                open -= portion;
            } else {
                int256 closeN = dNotional * absPos / absD;
                realized = -closeN - open;
                open = dNotional - closeN;
            }
            a.m.collateral = (int256(a.m.collateral) + realized).toInt96();
        }
        pos = next;
        if (pos == 0) {
            // A flat account's slot clears to zero (a refund); the marks are set again on reopening.
            open = 0;
            a.ps.fundingMark = 0;
            a.ps.lossSnap = 0;
        }
        a.ps.lots = pos.toInt64();
        a.ps.openNotional = open.toInt96();
    }

    // ------------------------------------------------------------------ liquidation helpers

    function _liquidationTake(uint256 mark, int256 pos, address account) internal view returns (Take memory t) {
        t = _newTake(pos > 0 ? ASK : BID, 0, uint256(pos > 0 ? pos : -pos), account);
        if (pos > 0) {
            uint256 floorPrice = mark * (BPS - _liquidationBandBps) / BPS;
            t.limit = (floorPrice + _tickSize - 1) / _tickSize;
            if (t.limit == 0) t.limit = 1;
        } else {
            t.limit = mark * (BPS + _liquidationBandBps) / BPS / _tickSize;
            if (t.limit > MAX_TICK) t.limit = MAX_TICK;
        }
    }

    function _insuranceTakeover(
        Ctx memory c,
        Acct memory a,
        Acct memory ins,
        bool closingLong,
        uint256 lots,
        uint256 mark
    ) internal view {
        // The fund buys a long below the mark and sells a short above it: the discount is the
        // liquidation penalty on this part.
        uint256 price = closingLong ? mark * (BPS - _liquidationFeeBps) / BPS : mark * (BPS + _liquidationFeeBps) / BPS;
        int256 n = int256(PriceLib.notional(lots, price, _lotSize));
        int256 l = int256(lots);
        if (closingLong) {
            _applyTrade(a, -l, -n, c);
            _applyTrade(ins, l, n, c);
        } else {
            _applyTrade(a, l, n, c);
            _applyTrade(ins, -l, -n, c);
        }
    }

    function _coverBadDebt(Acct memory a, Acct memory ins, address account) internal {
        if (a.m.collateral >= 0) return;
        int256 debt = -int256(a.m.collateral);
        a.m.collateral = 0;
        ins.m.collateral = (int256(ins.m.collateral) - debt).toInt96();
        emit BadDebtCovered(account, uint256(debt), ins.m.collateral);
    }

    /// @dev Share what the insurance fund cannot cover among the side that gained: after a
    ///      liquidation left the fund below zero, every position on the side opposite the
    ///      liquidated one (`chargeLongs`: the liquidated account was short) owes `perLot` per lot,
    ///      rounded up so the fund ends at or above zero. The charge is lazy, like funding:
    ///      `_settleFunding` applies it the next time the account is touched, and `accountState`
    ///      counts it in `fundingOwed`, so the sum of all accounts' equity plus fees still equals
    ///      the token balance while no account's claim leaves the fund negative. With no open
    ///      interest left there is nobody to charge and the fund stays negative (the event says
    ///      so): the gain was realised by then, and clawing back collateral is not done.
    function _socialise(Ctx memory c, Acct memory ins, bool chargeLongs) internal {
        if (ins.m.collateral >= 0) return;
        uint256 oi = uint256(int256(uint256(_openInterest)) + c.oiDelta);
        uint256 deficit = uint256(-int256(ins.m.collateral));
        if (oi == 0) {
            emit LossSocialised(chargeLongs ? BID : ASK, deficit, 0);
            return;
        }
        uint256 perLot = (deficit + oi - 1) / oi;
        _ensureCum(c);
        if (chargeLongs) {
            c.lossLong += perLot;
            _lossLong = c.lossLong.toUint64();
        } else {
            c.lossShort += perLot;
            _lossShort = c.lossShort.toUint64();
        }
        ins.m.collateral = (perLot * oi - deficit).toInt256().toInt96();
        c.book.lossful = true;
        emit LossSocialised(chargeLongs ? BID : ASK, deficit, perLot);
    }

    // ------------------------------------------------------------------ funding

    /// @dev Bring the market to `block.timestamp`: read the oracle if needed or if a boundary is
    ///      due, close due intervals, accumulate the premium.
    function _sync(Ctx memory c, bool needFresh) internal {
        FundingSlot memory f = _funding;
        bool due = block.timestamp >= f.nextBoundary;
        if (needFresh || due) {
            c.index = _readOracle();
            c.fresh = true;
            f.lastIndex = c.index.toUint96();
        } else {
            c.index = f.lastIndex;
        }
        c.indexLoaded = true;
        if (due) {
            _ensureCum(c);
            _closeIntervals(c, f);
        }
        _accumulate(c);
        if (c.fresh) _funding = f;
    }

    /// @dev The hot-path sync (place, batch): a full `_sync` only if a boundary is due. Otherwise
    ///      nothing is read here: the premium accumulator is linear in time, so accumulating the
    ///      unchanged sample later (in `_store`, if the best prices move) gives the same total, and
    ///      the cached index is read only then.
    function _syncHot(Ctx memory c) internal {
        if (_due(c.book.lastTouch)) _sync(c, false);
    }

    /// @dev A boundary is due iff the clock left the interval of the last touch. Exact because
    ///      `lastTouch` always lies in the open interval `[nextBoundary - interval, nextBoundary)`
    ///      (the constructor, `_closeIntervals` and `_accumulate` keep it there) and boundaries
    ///      are multiples of `fundingInterval`; so the hot path needs no read of `_funding`.
    function _due(uint256 lastTouch) internal view returns (bool) {
        return block.timestamp / _fundingInterval != lastTouch / _fundingInterval;
    }

    /// @dev Number of the open funding interval once the market is synced (see Position.fundingMark).
    function _fundingMark() internal view returns (uint32) {
        return uint32(block.timestamp / _fundingInterval);
    }

    function _ensureFresh(Ctx memory c) internal {
        c.index = _readOracle();
        c.fresh = true;
        c.indexLoaded = true;
        _funding.lastIndex = c.index.toUint96();
    }

    function _accumulate(Ctx memory c) internal view {
        Book memory b = c.book;
        if (block.timestamp > b.lastTouch) {
            b.premiumAccum = int64(int256(b.premiumAccum) + int256(b.premium) * int256(block.timestamp - b.lastTouch));
            b.lastTouch = uint40(block.timestamp);
        }
    }

    /// @dev Close every interval whose boundary has passed. The first one averages the premium
    ///      accumulated up to its boundary; any later ones saw no touch, so their premium was
    ///      constant at the last sample. All use the current (fresh) index.
    function _closeIntervals(Ctx memory c, FundingSlot memory f) internal {
        Book memory b = c.book;
        uint256 interval = _fundingInterval;
        int256 accum = int256(b.premiumAccum) + int256(b.premium) * int256(uint256(f.nextBoundary) - b.lastTouch);
        int256 r = _rate(accum * 1e6 / int256(interval));
        int256 cum = c.cum;
        int256 carry = _fundingCarry;
        int256 delta;
        while (true) {
            (delta, carry) = FundingMath.indexDelta(r, c.index, _lotSize, carry);
            cum += delta;
            emit FundingSettled(f.epoch, r, c.index, cum);
            f.epoch += 1;
            f.nextBoundary += uint40(interval);
            f.lastRate = int64(r);
            if (block.timestamp < f.nextBoundary) break;
            r = _rate(int256(b.premium) * 1e6);
        }
        b.premiumAccum = 0;
        b.lastTouch = uint40(f.nextBoundary - interval);
        c.cum = cum;
        _cumFunding = cum.toInt128();
        _fundingCarry = carry.toInt128();
    }

    /// @dev The cumulative funding index is read only when a position or a fill needs it.
    function _ensureCum(Ctx memory c) internal view {
        if (!c.cumLoaded) {
            uint256 slot;
            assembly ("memory-safe") {
                slot := _cumFunding.slot
            }
            uint256 w = _loadWord(slot);
            (c.cum, c.lossLong, c.lossShort) = (int128(uint128(w)), uint64(w >> CUM_LONG), uint64(w >> CUM_SHORT));
            c.cumLoaded = true;
        }
    }

    function _rate(int256 avgPremium) internal view returns (int256) {
        return FundingMath.rate(avgPremium, _interestRate8h, _premiumClamp, _fundingCap, _fundingInterval);
    }

    /// @dev Apply lazy funding: size x (cumulative index now - index at last touch). Call only
    ///      once the market is synced. The index changes only when an interval closes, so an
    ///      account touched earlier in the open interval owes nothing and costs no read.
    function _settleFunding(Ctx memory c, Acct memory a, address owner) internal {
        if (a.ps.lots == 0) return;
        if (c.book.lossful) _settleLoss(c, a, owner);
        uint32 mark = _fundingMark();
        if (a.ps.fundingMark == mark) return;
        a.ps.fundingMark = mark;
        a.psDirty = true;
        _ensureCum(c);
        if (!a.snapshotLoaded) {
            a.snapshot = _metas[a.id].fundingSnapshot;
            a.snapshotLoaded = true;
        }
        if (a.snapshot == c.cum) return;
        int256 owed = int256(a.ps.lots) * (c.cum - a.snapshot);
        a.m.collateral = (int256(a.m.collateral) - owed).toInt96();
        a.snapshot = c.cum;
        a.snapshotDirty = true;
        emit FundingPaid(owner, owed);
    }

    /// @dev Apply the socialised loss charged to the account's side since it last settled.
    function _settleLoss(Ctx memory c, Acct memory a, address owner) internal {
        _ensureCum(c);
        int256 lots = a.ps.lots;
        uint256 idx = lots > 0 ? c.lossLong : c.lossShort;
        if (idx == a.ps.lossSnap) return;
        uint256 owed = uint256(lots < 0 ? -lots : lots) * (idx - a.ps.lossSnap);
        a.m.collateral = (int256(a.m.collateral) - owed.toInt256()).toInt96();
        a.ps.lossSnap = uint64(idx);
        a.psDirty = true;
        emit SocialisedLossPaid(owner, owed);
    }

    // ------------------------------------------------------------------ margin

    /// @dev End of a place/batch: margin check, then write the account and the book.
    function _finish(Ctx memory c, Acct memory a) internal {
        int256 pos = a.ps.lots;
        int256 start = a.startLots;
        uint256 absPos = uint256(pos < 0 ? -pos : pos);
        uint256 absStart = uint256(start < 0 ? -start : start);
        bool increased = a.rested || absPos > absStart || (pos != 0 && start != 0 && (pos > 0) != (start > 0));
        // A trade has read the oracle already; a placement by an account with a position skips
        // the oracle call when the check provably passes at any index (see _holdsAtAnyIndex).
        if ((increased || a.traded) && !(pos != 0 && !c.fresh && _holdsAtAnyIndex(c, a))) {
            if (pos != 0 && !c.fresh) _ensureFresh(c);
            (int256 equity, uint256 im) = _equityAndInitial(c, a);
            // Reducing trades need only keep equity non-negative: they must never be blocked by
            // the initial margin, but must not create bad debt either.
            if (!increased) im = 0;
            if (equity < int256(im)) revert InsufficientMargin(equity, im);
        }
        _storeAcct(a);
        _store(c);
    }

    /// @dev True if the initial-margin check passes at every price between the best bid and
    ///      ask, so a resting placement may skip the oracle call (~9k gas). This is the check a
    ///      resting order gets: the banded mark (`_markOf`) can lie outside that range when the
    ///      index does, so here the book's own prices stand in for it. A resting order moves no
    ///      funds and opens no position; every trade, withdrawal and liquidation checks the
    ///      banded mark at a fresh index. Within `[lo, hi] = [min(bidPx, askPx), max(bidPx,
    ///      askPx)]` equity is monotone in the price (non-decreasing for a long, non-increasing for
    ///      a short; the rounding keeps this) and the initial margin is non-decreasing, so
    ///      `equity(worst end) >= IM(hi)` implies the check at every price in between. If it fails, the caller runs the exact check at a fresh index. The oracle's own
    ///      validity is not checked on this path: like a flat account's placement, a placement
    ///      that cannot fail the margin check at any price needs no price. Not reading the oracle
    ///      also leaves the cached index (used only for premium samples) as it was.
    function _holdsAtAnyIndex(Ctx memory c, Acct memory a) internal view returns (bool) {
        return _holds(
            c.book.bestBid,
            c.book.bestAsk,
            a.m.collateral,
            a.ps.lots,
            a.ps.openNotional,
            _max(a.m.bidNotional, a.m.askNotional)
        );
    }

    /// @dev `_holdsAtAnyIndex` on plain values (also used by `place`'s resting fast path):
    ///      best ticks, the account's collateral, position, open notional and larger side's
    ///      reserved notional.
    function _holds(uint24 bestBid, uint24 bestAsk, int256 collat, int256 pos, int256 open, uint256 reserved)
        internal
        view
        returns (bool)
    {
        uint256 lo;
        uint256 hi;
        unchecked {
            // Ticks are below 2**24 and tickSize at most 2**96 (see the constructor).
            lo = uint256(bestBid) * _tickSize;
            hi = uint256(bestAsk) * _tickSize;
        }
        if (lo == 0 || hi == 0) return false;
        if (lo > hi) (lo, hi) = (hi, lo);
        int256 equity = collat + _signedNotional(pos, pos > 0 ? lo : hi) - open;
        uint256 im =
            PriceLib.bpsOf(reserved, _initialMarginBps) + PriceLib.bpsOf(_absNotional(pos, hi), _initialMarginBps);
        return equity >= int256(im);
    }

    function _equityAndInitial(Ctx memory c, Acct memory a) internal view returns (int256 equity, uint256 im) {
        im = PriceLib.bpsOf(_max(a.m.bidNotional, a.m.askNotional), _initialMarginBps);
        if (a.ps.lots == 0) return (a.m.collateral, im);
        uint256 mark = _mark(c);
        equity = _equity(a, mark);
        im += PriceLib.bpsOf(_absNotional(a.ps.lots, mark), _initialMarginBps);
    }

    function _equity(Acct memory a, uint256 mark) internal view returns (int256) {
        return int256(a.m.collateral) + _signedNotional(a.ps.lots, mark) - a.ps.openNotional;
    }

    function _signedNotional(int256 lots, uint256 price) internal view returns (int256) {
        return lots * int256(_lotSize) * int256(price) / int256(PriceLib.BASE_UNIT);
    }

    function _absNotional(int256 lots, uint256 price) internal view returns (uint256) {
        return PriceLib.notional(uint256(lots < 0 ? -lots : lots), price, _lotSize);
    }

    function _mark(Ctx memory c) internal view returns (uint256) {
        return _markOf(c.book, c.index);
    }

    function _markView() internal view returns (uint256) {
        return _markOf(_book, _readOracle());
    }

    /// @dev The mark: the median of the index, the banded book mid (`_bandedMid`) and the
    ///      funding-implied mark (the index moved by the open interval's premium TWAP so far, the
    ///      same premium funding will charge). All three lie within `markBandBps` of the index, so
    ///      the mark does too; and a book that only just moved (one dead or far order placed a
    ///      moment ago) moves the mid but not the TWAP, so the median stays at the index side of
    ///      it. Only a book mid held away from the index for much of the interval moves the mark.
    function _markOf(Book memory b, uint256 index) internal view returns (uint256) {
        uint256 mid = _bandedMid(b.bestBid, b.bestAsk, index);
        int256 twap = b.premium;
        uint256 start = block.timestamp / _fundingInterval * _fundingInterval;
        // While a boundary is due the accumulator belongs to a closed interval: use the sample.
        if (block.timestamp > start && b.lastTouch >= start) {
            int256 accum = int256(b.premiumAccum) + int256(b.premium) * int256(block.timestamp - b.lastTouch);
            twap = accum / int256(block.timestamp - start);
        }
        uint256 implied = _band(uint256(int256(index) + int256(index) * twap / FundingMath.PREMIUM_SCALE), index);
        return PriceLib.median(index, mid, implied);
    }

    /// @dev The mid of the best prices, each clamped to `markBandBps` around the index (an empty
    ///      side counts as the index): the price premium samples use and the book's input to the
    ///      mark. No order, dead or alive, can move it further from the index than the band.
    function _bandedMid(uint256 bid, uint256 ask, uint256 index) internal view returns (uint256) {
        unchecked {
            // The index is below 2**96 (`_readOracle`), ticks below 2**24 and tickSize at most
            // 2**96 (the constructor): nothing here overflows, and d < index (band <= 20%).
            uint256 d = index * _markBandBps / BPS;
            uint256 bidPx = bid == 0 ? index : bid * _tickSize;
            uint256 askPx = ask == 0 ? index : ask * _tickSize;
            if (bidPx + d < index) bidPx = index - d;
            else if (bidPx > index + d) bidPx = index + d;
            if (askPx + d < index) askPx = index - d;
            else if (askPx > index + d) askPx = index + d;
            return (bidPx + askPx) / 2;
        }
    }

    function _band(uint256 px, uint256 index) internal view returns (uint256) {
        uint256 d = index * _markBandBps / BPS; // < index: the band is at most 20%
        if (px + d < index) return index - d;
        return px > index + d ? index + d : px;
    }

    function _readOracle() internal view returns (uint256) {
        (, int256 answer,, uint256 updatedAt,) = AggregatorV3Interface(_oracle).latestRoundData();
        if (answer <= 0) revert InvalidOraclePrice(answer);
        if (updatedAt == 0 || block.timestamp > updatedAt + _oracleMaxAge) {
            revert StaleOracle(updatedAt, block.timestamp);
        }
        uint256 price = PriceLib.fromOracle(uint256(answer), _feedDecimals, _collateralDecimals);
        // Prices are stored as uint96 (FundingSlot.lastIndex) and the mark math relies on it.
        if (price == 0 || price > type(uint96).max) revert InvalidOraclePrice(answer);
        return price;
    }

    // ------------------------------------------------------------------ state io

    function _load() internal view returns (Ctx memory c) {
        _loadBook(c);
    }

    function _loadBook(Ctx memory c) internal view {
        // One read of the packed word (see Book) into the context's own struct.
        uint256 w = _loadWord(_slotOf(_book));
        Book memory b = c.book;
        b.bestBid = uint24(w);
        b.bestAsk = uint24(w >> BOOK_ASK);
        b.lastTouch = uint40(w >> BOOK_TOUCH);
        b.premium = int48(uint48(w >> BOOK_PREMIUM));
        b.premiumAccum = int64(uint64(w >> BOOK_ACCUM));
        b.orderSeq = uint40(w >> BOOK_SEQ);
        b.lossful = w >> BOOK_LOSS & 1 != 0;
        c.bookLoaded = true;
        c.bid0 = c.book.bestBid;
        c.ask0 = c.book.bestAsk;
    }

    /// @dev Write the book word and fees once. The stored premium sample is always the premium of
    ///      the stored best prices at the cached index (every write that changes either
    ///      resamples), except after a cancel while a boundary is due, which leaves the sample for
    ///      the next full sync to close the interval with; that sync always resamples. So the
    ///      sample is recomputed only if the best prices moved or the index was refreshed.
    function _store(Ctx memory c) internal {
        if (c.bookLoaded) {
            Book memory b = c.book;
            if (c.fresh || b.bestBid != c.bid0 || b.bestAsk != c.ask0) {
                // A fresh index implies a full sync, so only a cancel-only call can find the
                // boundary due here: it must work without the oracle and leaves the sample.
                if (c.fresh || !_due(b.lastTouch)) {
                    if (!c.indexLoaded) {
                        c.index = _funding.lastIndex;
                        c.indexLoaded = true;
                    }
                    _accumulate(c);
                    b.premium = int48(FundingMath.premium(_bandedMid(b.bestBid, b.bestAsk, c.index), c.index));
                }
                _writeBook(b);
            } else if (c.seqBumped) {
                _writeBook(b);
            }
        }
        if (c.feeDelta != 0 || c.oiDelta != 0) {
            // One read and one write of the word holding both (see FEES_*).
            uint256 slot;
            assembly ("memory-safe") {
                slot := _fees.slot
            }
            uint256 w = _loadWord(slot);
            uint256 fees = (uint256(uint128(w)) + uint256(c.feeDelta)).toUint128();
            uint256 oi = uint256(int256(uint256(uint64(w >> FEES_OI))) + c.oiDelta).toUint64();
            _storeWord(slot, (w & (uint256(type(uint32).max) << FEES_ACCOUNTS)) | fees | (oi << FEES_OI));
        }
    }

    /// @dev `_store`'s premium resample on the packed book word (see Book): accumulate the stored
    ///      sample up to now (`_accumulate`), then sample the premium of the word's best prices at
    ///      the cached index. Call only when the best prices moved and no boundary is due.
    function _resampleWord(uint256 bw) internal view returns (uint256) {
        uint256 lastTouch = uint40(bw >> BOOK_TOUCH);
        int256 accum = int64(uint64(bw >> BOOK_ACCUM));
        if (block.timestamp > lastTouch) {
            unchecked {
                // `_accumulate`. No boundary is due, so lastTouch lies in the open interval and
                // the elapsed time is below fundingInterval (at most a day, 2**17 s): a 48-bit
                // sample times it plus a 64-bit accumulator cannot overflow 256 bits.
                accum = int64(accum + int256(int48(uint48(bw >> BOOK_PREMIUM))) * int256(block.timestamp - lastTouch));
            }
            lastTouch = block.timestamp;
        }
        uint256 index = _funding.lastIndex;
        int256 premium;
        unchecked {
            // FundingMath.premium, without overflow checks that cannot fail here: ticks are below
            // 2**24 and tickSize at most 2**96 (see the constructor), so prices are below 2**120,
            // and the index is a uint96. Division by zero still reverts.
            premium = (int256(_bandedMid(uint24(bw), uint24(bw >> BOOK_ASK), index)) - int256(index))
                * FundingMath.PREMIUM_SCALE / int256(index);
        }
        premium = int48(FundingMath.clamp(premium, FundingMath.PREMIUM_BOUND));
        // Bits BOOK_TOUCH..BOOK_SEQ hold lastTouch (40), premium (48) and premiumAccum (64).
        return (bw & ~(((uint256(1) << (BOOK_SEQ - BOOK_TOUCH)) - 1) << BOOK_TOUCH)) | (lastTouch << BOOK_TOUCH)
            | (uint256(uint48(int48(premium))) << BOOK_PREMIUM) | (uint256(uint64(int64(accum))) << BOOK_ACCUM);
    }

    function _idOf(address account) internal view returns (uint256 id) {
        id = accountIdOf[account];
        if (id == 0) revert UnknownAccount(account);
    }

    function _register(address account) internal returns (uint256 id) {
        id = ++_nextAccountId;
        accountIdOf[account] = uint32(id);
        _metas[id].owner = account;
    }

    function _loadAcct(uint256 id) internal view returns (Acct memory a) {
        a.id = id;
        _readMargin(id, a.m);
        _readPosition(id, a.ps);
        a.startLots = a.ps.lots;
    }

    function _storeAcct(Acct memory a) internal {
        _writeMargin(a.id, a.m);
        if (a.psDirty) _writePosition(a.id, a.ps);
        if (a.snapshotDirty) _metas[a.id].fundingSnapshot = a.snapshot.toInt96();
    }

    /// @dev Cancels touch only the margin slot.
    function _loadMargin(uint256 id) internal view returns (Acct memory a) {
        a.id = id;
        _readMargin(id, a.m);
    }

    function _storeMargin(Acct memory a) internal {
        _writeMargin(a.id, a.m);
    }

    // ------------------------------------------------------------------ packed reads

    /// @dev Decode account `id`'s margin word into `m` (no memory allocated).
    function _readMargin(uint256 id, Margin memory m) internal view {
        uint256 w = _loadWord(_slotOf(_margins[id]));
        m.collateral = int96(uint96(w));
        m.orderEpoch = uint32(w >> M_EPOCH);
        m.bidNotional = uint48(w >> M_BID);
        m.askNotional = uint48(w >> M_ASK);
        m.orderSlots = uint32(w >> M_SLOTS);
    }

    /// @dev Decode account `id`'s position word into `ps` (no memory allocated).
    function _readPosition(uint256 id, Position memory ps) internal view {
        uint256 w = _loadWord(_slotOf(_positions[id]));
        ps.lots = int64(uint64(w));
        ps.openNotional = int96(uint96(w >> P_OPEN));
        ps.fundingMark = uint32(w >> P_FMARK);
        ps.lossSnap = uint64(w >> P_LOSS);
    }

    /// @dev Decode an order word into `o`.
    function _decodeOrder(uint256 w, Order memory o) internal pure {
        o.accountId = uint32(w);
        o.epoch = uint32(w >> O_EPOCH);
        o.lots = uint48(w >> O_LOTS);
        o.clientId = uint64(w >> O_CLIENT);
        o.expiry = uint32(w >> O_EXPIRY);
        o.seq = uint40(w >> O_SEQ);
        o.slot = uint8(w >> O_SLOT);
    }

    // ------------------------------------------------------------------ packed writes

    // Solidity stores a memory struct member by member, re-reading the slot to keep the other
    // members; these write the whole word once. The layout is Solidity's own (members from the
    // low-order bits, in declaration order), so reads through the structs see the same values;
    // the casts below only reinterpret signed members as their two's-complement bits.

    function _writeBook(Book memory b) internal {
        uint256 w = uint256(b.bestBid) | (uint256(b.bestAsk) << BOOK_ASK) | (uint256(b.lastTouch) << BOOK_TOUCH)
            | (uint256(uint48(b.premium)) << BOOK_PREMIUM) | (uint256(uint64(b.premiumAccum)) << BOOK_ACCUM)
            | (uint256(b.orderSeq) << BOOK_SEQ) | (b.lossful ? uint256(1) << BOOK_LOSS : 0);
        assembly ("memory-safe") {
            sstore(_book.slot, w)
        }
    }

    function _writeMargin(uint256 id, Margin memory m) internal {
        Margin storage s = _margins[id];
        uint256 w = uint256(uint96(m.collateral)) | (uint256(m.orderEpoch) << M_EPOCH)
            | (uint256(m.bidNotional) << M_BID) | (uint256(m.askNotional) << M_ASK) | (uint256(m.orderSlots) << M_SLOTS);
        assembly ("memory-safe") {
            sstore(s.slot, w)
        }
    }

    function _writePosition(uint256 id, Position memory ps) internal {
        Position storage s = _positions[id];
        uint256 w = uint256(uint64(ps.lots)) | (uint256(uint96(ps.openNotional)) << P_OPEN)
            | (uint256(ps.fundingMark) << P_FMARK) | (uint256(ps.lossSnap) << P_LOSS);
        assembly ("memory-safe") {
            sstore(s.slot, w)
        }
    }

    function _writeLevel(uint256 key, Level memory lv) internal {
        Level storage s = _levels[key];
        uint256 w = uint256(lv.head) | (uint256(lv.tail) << L_TAIL) | (uint256(lv.lots) << L_LOTS)
            | (uint256(lv.base) << L_BASE);
        assembly ("memory-safe") {
            sstore(s.slot, w)
        }
    }

    // The storage slot of a struct, for the whole-word reads and writes above. Solidity has no
    // generics over storage types and `.slot` is reachable only in assembly, so this is one
    // overload per struct type, each the same one-line read; the alternative (hard-coded slot
    // numbers of each mapping, hashed by hand) would break silently when the layout changes.
    function _slotOf(Book storage s) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := s.slot
        }
    }

    function _slotOf(Position storage s) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := s.slot
        }
    }

    function _slotOf(Level storage s) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := s.slot
        }
    }

    function _slotOf(Order storage s) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := s.slot
        }
    }

    function _slotOf(Meta storage s) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := s.slot
        }
    }

    function _slotOf(Margin storage s) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            slot := s.slot
        }
    }

    function _slotOf(mapping(uint256 => uint256) storage map, uint256 key) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0x00, key)
            mstore(0x20, map.slot)
            slot := keccak256(0x00, 0x40)
        }
    }

    function _loadWord(uint256 slot) internal view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(slot)
        }
    }

    function _storeWord(uint256 slot, uint256 w) internal {
        assembly ("memory-safe") {
            sstore(slot, w)
        }
    }

    // ------------------------------------------------------------------ view helpers

    function _liveLots(uint8 side, uint256 tick) internal view returns (uint256 live) {
        Level memory lv = _levels[(uint256(side) << LEVEL_SIDE) | tick];
        uint256 slotBase = ((uint256(side) << ID_SIDE) | (tick << ID_TICK)) - lv.base;
        for (uint256 i = lv.head; i < lv.tail; ++i) {
            Order memory o = _orders[slotBase + i];
            if (_isLive(o)) live += o.lots;
        }
    }

    function _isLive(Order memory o) internal view returns (bool) {
        if (o.lots == 0) return false;
        if (o.expiry != 0 && o.expiry <= block.timestamp) return false;
        return o.epoch == _margins[o.accountId].orderEpoch;
    }

    function _max(uint256 a, uint256 b) internal pure returns (uint256) {
        return a > b ? a : b;
    }
}
