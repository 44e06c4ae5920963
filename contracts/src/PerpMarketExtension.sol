// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SafeTransferLib} from "solady/utils/SafeTransferLib.sol";
import {SafeCastLib} from "solady/utils/SafeCastLib.sol";
import {PerpMarketBase} from "./PerpMarketBase.sol";
import {PriceLib} from "./libraries/PriceLib.sol";
import {TickBitmap} from "./libraries/TickBitmap.sol";
import {FundingMath} from "./libraries/FundingMath.sol";
import {IPerpMarketCold} from "./interfaces/IPerpMarket.sol";

/// @title PerpMarketExtension
/// @notice The cold half of a PerpMarket: collateral, keepers and views. Only meaningful when
///         reached by delegatecall from `PerpMarket`'s fallback; calling it directly acts on its
///         own empty storage, so its state-changing functions refuse direct calls.
contract PerpMarketExtension is PerpMarketBase, IPerpMarketCold {
    using SafeTransferLib for address;
    using SafeCastLib for uint256;
    using SafeCastLib for int256;
    using TickBitmap for mapping(uint256 => uint256);

    address private immutable _self;

    /// @notice A state-changing function was called on the extension itself.
    error DirectCall();

    constructor(MarketParams memory p) PerpMarketBase(p) {
        _self = address(this);
    }

    modifier delegated() {
        if (address(this) == _self) revert DirectCall();
        _;
    }

    // ------------------------------------------------------------------ collateral

    /// @inheritdoc IPerpMarketCold
    function deposit(uint256 amount) external delegated {
        if (amount == 0) revert ZeroAmount();
        _collateral.safeTransferFrom(msg.sender, address(this), amount);
        uint256 id = accountIdOf[msg.sender];
        if (id == 0) id = _register(msg.sender);
        Margin storage m = _margins[id];
        m.collateral = (int256(m.collateral) + amount.toInt256()).toInt96();
        emit Deposit(msg.sender, amount);
    }

    /// @inheritdoc IPerpMarketCold
    function withdraw(uint256 amount) external delegated {
        if (amount == 0) revert ZeroAmount();
        Acct memory a = _loadAcct(_idOf(msg.sender));
        Ctx memory c;
        if (a.ps.lots != 0) {
            c = _load();
            _sync(c, true);
            // As in liquidation: dead orders at the top must not set the mark checked here.
            _pruneTop(c, BID);
            _pruneTop(c, ASK);
            // Pruning may have released this account's own expired orders: reload its margin.
            a.m = _margins[a.id];
            _settleFunding(c, a, msg.sender);
        }
        a.m.collateral = (int256(a.m.collateral) - amount.toInt256()).toInt96();
        (int256 equity, uint256 im) = _equityAndInitial(c, a);
        if (equity < int256(im)) revert InsufficientMargin(equity, im);
        _storeAcct(a);
        if (a.ps.lots != 0) _store(c);
        _collateral.safeTransfer(msg.sender, amount);
        emit Withdraw(msg.sender, amount);
    }

    /// @inheritdoc IPerpMarketCold
    function depositInsurance(uint256 amount) external delegated {
        if (amount == 0) revert ZeroAmount();
        _collateral.safeTransferFrom(msg.sender, address(this), amount);
        Margin storage m = _margins[INSURANCE_ID];
        m.collateral = (int256(m.collateral) + amount.toInt256()).toInt96();
        emit InsuranceDeposit(msg.sender, amount);
    }

    /// @inheritdoc IPerpMarketCold
    function claimFees() external delegated returns (uint256 amount) {
        amount = _fees;
        if (amount == 0) revert ZeroAmount();
        _fees = 0;
        _collateral.safeTransfer(_feeRecipient, amount);
        emit FeesClaimed(_feeRecipient, amount);
    }

    /// @inheritdoc IPerpMarketCold
    function cancelAll() external delegated {
        uint256 id = _idOf(msg.sender);
        Margin storage m = _margins[id];
        uint32 epoch = m.orderEpoch + 1;
        m.orderEpoch = epoch;
        m.bidNotional = 0;
        m.askNotional = 0;
        m.orderSlots = 0;
        emit AllOrdersCancelled(msg.sender, epoch);
    }

    /// @inheritdoc IPerpMarketCold
    function cancelExpired() external delegated returns (uint256 cancelled) {
        Acct memory a = _loadMargin(_idOf(msg.sender));
        Ctx memory c;
        uint256 slots = a.m.orderSlots;
        for (uint256 slot; slot < MAX_ORDERS; ++slot) {
            if (slots >> slot & 1 == 0) continue;
            uint256 key = _indexKey(a.id, slot);
            Order memory o = _orders[key];
            if (o.expiry != 0 && o.expiry <= block.timestamp && _cancel(c, a, _orderIdOf(key, o))) ++cancelled;
        }
        _storeMargin(a);
        _store(c);
    }

    // ------------------------------------------------------------------ keepers

    /// @inheritdoc IPerpMarketCold
    function settleFunding() external delegated {
        uint256 boundary = _funding.nextBoundary;
        if (block.timestamp < boundary) revert FundingNotDue(boundary);
        Ctx memory c = _load();
        _sync(c, true);
        _store(c);
        uint256 reward = _keeperReward < _fees ? _keeperReward : _fees;
        if (reward != 0) {
            _fees -= uint128(reward);
            _collateral.safeTransfer(msg.sender, reward);
            emit KeeperRewardPaid(msg.sender, reward);
        }
    }

    /// @inheritdoc IPerpMarketCold
    function liquidate(address account) external delegated {
        Acct memory a = _loadAcct(_idOf(account));
        Ctx memory c = _load();
        _sync(c, true);
        _settleFunding(c, a, account);
        // Orders invalidated by cancelAll or expired still mark the best prices until pruned;
        // prune them at the top of both sides so only live orders set the mark used here.
        _pruneTop(c, BID);
        _pruneTop(c, ASK);
        uint256 mark = _mark(c);
        int256 equity = _equity(a, mark);
        uint256 mm = PriceLib.bpsOf(_absNotional(a.ps.lots, mark), _maintenanceMarginBps);
        // The insurance fund's own position is never liquidated against itself.
        if (a.ps.lots == 0 || a.id == INSURANCE_ID || equity >= int256(mm)) {
            revert NotLiquidatable(equity, mm);
        }

        // Orders go first: they must not fill against the closing trade or keep reserving margin.
        a.m.orderEpoch += 1;
        a.m.bidNotional = 0;
        a.m.askNotional = 0;
        a.m.orderSlots = 0;
        emit AllOrdersCancelled(account, a.m.orderEpoch);

        int256 pos = a.ps.lots;
        Take memory t = _liquidationTake(mark, pos, account);
        _match(c, a, t);
        _applyTake(c, a, t);
        uint256 penalty = PriceLib.bpsOf(uint256(t.notional < 0 ? -t.notional : t.notional), _liquidationFeeBps);
        uint256 insuranceLots = t.remaining;
        Acct memory ins = _loadAcct(INSURANCE_ID);
        _settleFunding(c, ins, address(this));
        if (insuranceLots != 0) _insuranceTakeover(c, a, ins, pos > 0, insuranceLots, mark);
        a.m.collateral = (int256(a.m.collateral) - int256(penalty)).toInt96();
        ins.m.collateral = (int256(ins.m.collateral) + int256(penalty)).toInt96();
        _coverBadDebt(a, ins, account);
        _socialise(c, ins, pos < 0);
        // The reward never exceeds the penalty the position was worth, so liquidating one's own
        // tiny accounts cannot drain the fund.
        uint256 reward = ins.m.collateral > 0 ? uint256(int256(ins.m.collateral)) : 0;
        uint256 cap = PriceLib.bpsOf(_absNotional(pos, mark), _liquidationFeeBps);
        if (cap > _keeperReward) cap = _keeperReward;
        if (reward > cap) reward = cap;
        ins.m.collateral -= int96(int256(reward));
        _storeAcct(a);
        _storeAcct(ins);
        _store(c);
        if (reward != 0) {
            _collateral.safeTransfer(msg.sender, reward);
            emit KeeperRewardPaid(msg.sender, reward);
        }
        emit Liquidation(
            account,
            msg.sender,
            pos,
            uint256(pos < 0 ? -pos : pos) - insuranceLots,
            insuranceLots,
            mark,
            penalty,
            reward
        );
    }

    function _pruneTop(Ctx memory c, uint8 makerSide) internal {
        Acct memory nobody;
        Take memory t = _newTake(makerSide ^ 1, 0, 0, address(0));
        while (true) {
            uint256 best = makerSide == BID ? c.book.bestBid : c.book.bestAsk;
            if (best == 0 || !_matchLevel(c, nobody, t, best)) break;
        }
        _flushMaker(t);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IPerpMarketCold
    function bookLevels(uint8 side, uint256 depth)
        external
        view
        returns (uint256[] memory ticks, uint256[] memory lots)
    {
        if (side > ASK) revert InvalidSide(side);
        ticks = new uint256[](depth);
        lots = new uint256[](depth);
        uint256 tick = side == BID ? _book.bestBid : _book.bestAsk;
        uint256 n;
        while (tick != 0 && n < depth) {
            uint256 live = _liveLots(side, tick);
            if (live != 0) {
                ticks[n] = tick;
                lots[n] = live;
                ++n;
            }
            tick = side == BID ? _bidBits.nextBelow(tick) : _askBits.nextAbove(tick);
        }
        assembly ("memory-safe") {
            mstore(ticks, n)
            mstore(lots, n)
        }
    }

    /// @inheritdoc IPerpMarketCold
    function accountState(address account) external view returns (AccountState memory s) {
        uint256 id = accountIdOf[account];
        if (id == 0) return s;
        Margin memory m = _margins[id];
        Position memory ps = _positions[id];
        uint256 mark = ps.lots == 0 ? 0 : _markView();
        s.collateral = m.collateral;
        s.positionLots = ps.lots;
        s.entryNotional = ps.openNotional;
        s.unrealizedPnl = _signedNotional(ps.lots, mark) - ps.openNotional;
        s.fundingOwed = int256(ps.lots) * (int256(_cumFunding) - int256(_metas[id].fundingSnapshot));
        if (ps.lots != 0) {
            // Socialised loss charged to the position's side and not yet settled (see _socialise).
            uint256 idx = ps.lots > 0 ? _lossLong : _lossShort;
            s.fundingOwed += int256(uint256(int256(ps.lots > 0 ? ps.lots : -ps.lots)) * (idx - ps.lossSnap));
        }
        s.equity = s.collateral + s.unrealizedPnl - s.fundingOwed;
        uint256 posNotional = _absNotional(ps.lots, mark);
        s.reservedMargin = PriceLib.bpsOf(_max(m.bidNotional, m.askNotional), _initialMarginBps);
        s.initialMargin = PriceLib.bpsOf(posNotional, _initialMarginBps) + s.reservedMargin;
        s.maintenanceMargin = PriceLib.bpsOf(posNotional, _maintenanceMarginBps);
    }

    /// @inheritdoc IPerpMarketCold
    function fundingState()
        external
        view
        returns (uint256 epoch, uint256 nextBoundary, int256 premiumTwap, int256 lastRate, int256 cumulativeIndex)
    {
        FundingSlot memory f = _funding;
        Book memory b = _book;
        uint256 start = f.nextBoundary - _fundingInterval;
        uint256 end = block.timestamp < f.nextBoundary ? block.timestamp : f.nextBoundary;
        int256 accum = int256(b.premiumAccum);
        if (end > b.lastTouch) accum += int256(b.premium) * int256(end - b.lastTouch);
        uint256 elapsed = end > start ? end - start : 0;
        premiumTwap = elapsed == 0 ? int256(0) : accum * 1e6 / int256(elapsed);
        return (f.epoch, f.nextBoundary, premiumTwap, f.lastRate, _cumFunding);
    }

    /// @inheritdoc IPerpMarketCold
    function markPrice() external view returns (uint256) {
        return _markView();
    }

    /// @inheritdoc IPerpMarketCold
    function indexPrice() external view returns (uint256) {
        return _readOracle();
    }

    /// @inheritdoc IPerpMarketCold
    function bestBid() external view returns (uint24) {
        return _book.bestBid;
    }

    /// @inheritdoc IPerpMarketCold
    function bestAsk() external view returns (uint24) {
        return _book.bestAsk;
    }

    /// @inheritdoc IPerpMarketCold
    function decodeOrderId(uint256 orderId) external pure returns (uint8 side, uint24 tick) {
        return (uint8((orderId >> 64) & 1), uint24(orderId >> 40));
    }

    /// @inheritdoc IPerpMarketCold
    function insuranceFund() external view returns (int256) {
        return _margins[INSURANCE_ID].collateral;
    }

    /// @inheritdoc IPerpMarketCold
    function accruedFees() external view returns (uint256) {
        return _fees;
    }

    // ------------------------------------------------------------------ parameters

    // The market's parameters (see IPerpMarketTypes.MarketParams). Served here, through
    // PerpMarket's fallback, to keep the hot contract's code small; `paramsHash` is also read
    // from the extension itself when a market is deployed.

    function collateral() external view returns (address) {
        return _collateral;
    }

    function oracle() external view returns (address) {
        return _oracle;
    }

    function feeRecipient() external view returns (address) {
        return _feeRecipient;
    }

    function tickSize() external view returns (uint256) {
        return _tickSize;
    }

    function lotSize() external view returns (uint256) {
        return _lotSize;
    }

    function minNotional() external view returns (uint256) {
        return _minNotional;
    }

    function initialMarginBps() external view returns (uint256) {
        return _initialMarginBps;
    }

    function maintenanceMarginBps() external view returns (uint256) {
        return _maintenanceMarginBps;
    }

    function makerFeeBps() external view returns (int256) {
        return _makerFeeBps;
    }

    function takerFeeBps() external view returns (uint256) {
        return _takerFeeBps;
    }

    function maxFills() external view returns (uint256) {
        return _maxFills;
    }

    function fundingInterval() external view returns (uint256) {
        return _fundingInterval;
    }

    function oracleMaxAge() external view returns (uint256) {
        return _oracleMaxAge;
    }

    function interestRate8h() external view returns (int256) {
        return _interestRate8h;
    }

    function premiumClamp() external view returns (int256) {
        return _premiumClamp;
    }

    function fundingCap() external view returns (int256) {
        return _fundingCap;
    }

    function liquidationFeeBps() external view returns (uint256) {
        return _liquidationFeeBps;
    }

    function liquidationBandBps() external view returns (uint256) {
        return _liquidationBandBps;
    }

    function keeperReward() external view returns (uint256) {
        return _keeperReward;
    }

    function markBandBps() external view returns (uint256) {
        return _markBandBps;
    }

    /// @notice Collateral units per (tick x lot): the exact notional of one lot at tick 1.
    function notionalUnit() external view returns (uint256) {
        return _notionalUnit;
    }

    /// @notice keccak256 of the ABI-encoded MarketParams this code was built with.
    function paramsHash() external view returns (bytes32) {
        return _paramsHash;
    }
}
