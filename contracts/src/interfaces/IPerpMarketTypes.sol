// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPerpMarketTypes
/// @notice Structs, events and errors of the perp market (see IPerpMarket for units and
///         semantics).
interface IPerpMarketTypes {
    // ------------------------------------------------------------------ types

    /// @notice An order to place.
    /// @param side 0 = bid, 1 = ask.
    /// @param flags Bit set of `FLAG_POST_ONLY` (1), `FLAG_IOC` (2), `FLAG_REDUCE_ONLY` (4).
    ///        Post-only never takes: it reverts with `PostOnlyWouldCross` if it would (in `batch`
    ///        it is skipped instead, with `PlaceSkipped`; the batch goes on). IOC takes
    ///        what it can and drops the rest. Reduce-only implies IOC (as on dYdX v4): it is
    ///        clipped to the position and reverts with `ReduceOnlyWouldIncrease` if the account
    ///        has no opposite position. Post-only with IOC or reduce-only is invalid.
    /// @param tick Limit price in ticks.
    /// @param lots Size in lots.
    /// @param clientId Maker-chosen tag, echoed in `OrderPlaced`, `OrderCancelled` and `Fill`.
    /// @param expiry Unix time after which the order never fills (0 = good till cancelled).
    ///        Expired orders are pruned lazily by matching or by a cancel of their id.
    struct Place {
        uint8 side;
        uint8 flags;
        uint24 tick;
        uint48 lots;
        uint64 clientId;
        uint32 expiry;
    }

    /// @notice A resting order as returned by `openOrders`.
    struct OrderView {
        uint256 orderId;
        uint64 clientId;
        uint8 side;
        uint24 tick;
        uint48 lots;
        uint32 expiry;
    }

    /// @notice Margin state of an account, all collateral amounts signed raw token units.
    /// @param collateral Settled collateral (before unrealized PnL and pending funding).
    /// @param positionLots Signed position in lots (long > 0).
    /// @param entryNotional Signed cost basis of the position (long > 0), collateral units.
    /// @param unrealizedPnl Position value at the mark minus `entryNotional`.
    /// @param fundingOwed Funding accrued since the account was last touched, plus any socialised
    ///        loss charged to its side and not yet settled (> 0: it pays).
    /// @param equity collateral + unrealizedPnl - fundingOwed.
    /// @param initialMargin Initial margin of the position plus resting orders.
    /// @param maintenanceMargin Maintenance margin of the position.
    /// @param reservedMargin The part of `initialMargin` reserved by resting orders.
    struct AccountState {
        int256 collateral;
        int256 positionLots;
        int256 entryNotional;
        int256 unrealizedPnl;
        int256 fundingOwed;
        int256 equity;
        uint256 initialMargin;
        uint256 maintenanceMargin;
        uint256 reservedMargin;
    }

    /// @notice The immutable market parameters.
    /// @param collateral The ERC20 collateral token (6 decimals expected, any accepted).
    /// @param oracle Chainlink AggregatorV3Interface feed for the index price.
    /// @param feeRecipient The only address `claimFees` pays; it has no other power.
    /// @param tickSize Collateral units per whole base unit per tick.
    /// @param lotSize Base wei per lot (1e18 = one whole base unit).
    /// @param minNotional Minimum order notional, collateral units.
    /// @param initialMarginBps Initial margin fraction in bps (1000 = 10%).
    /// @param maintenanceMarginBps Maintenance margin fraction in bps (500 = 5%), < initial.
    /// @param makerFeeBps Maker fee in bps; negative is a rebate no larger than the taker fee.
    /// @param takerFeeBps Taker fee in bps.
    /// @param maxFills Most resting orders one take may touch (fills and prunes together).
    /// @param fundingInterval Seconds between funding boundaries (3600); boundaries are aligned
    ///        to multiples of it (on the hour).
    /// @param oracleMaxAge Oldest oracle answer, in seconds, that trades, funding and
    ///        liquidations accept.
    /// @param interestRate8h Interest rate per 8 hours, 1e18-scaled (1e14 = 0.01%).
    /// @param premiumClamp Clamp of (interest - premium) per 8 hours, 1e18-scaled (5e14).
    /// @param fundingCap Largest funding rate per interval, 1e18-scaled (4e16 = 4%).
    /// @param liquidationFeeBps Liquidation penalty in bps of the closed notional, to insurance;
    ///        also the discount at which the insurance fund takes over what the book cannot.
    /// @param liquidationBandBps A liquidation fills against the book only within this band
    ///        around the mark.
    /// @param markBandBps The mark, and each book price it or a premium sample uses, stays
    ///        within this many bps of the index (in (0, 2000]).
    /// @param keeperReward Collateral paid to the caller of a successful `settleFunding` (from
    ///        accrued fees) or `liquidate` (from the insurance fund), capped by what is there.
    struct MarketParams {
        address collateral;
        address oracle;
        address feeRecipient;
        uint256 tickSize;
        uint256 lotSize;
        uint256 minNotional;
        uint16 initialMarginBps;
        uint16 maintenanceMarginBps;
        int16 makerFeeBps;
        uint16 takerFeeBps;
        uint16 maxFills;
        uint32 fundingInterval;
        uint32 oracleMaxAge;
        uint64 interestRate8h;
        uint64 premiumClamp;
        uint64 fundingCap;
        uint16 liquidationFeeBps;
        uint16 liquidationBandBps;
        uint256 keeperReward;
        uint16 markBandBps;
    }

    // ------------------------------------------------------------------ events

    /// @notice The market was created with these immutable parameters.
    event MarketCreated(MarketParams params);

    /// @notice `account` deposited `amount` collateral.
    event Deposit(address indexed account, uint256 amount);

    /// @notice `account` withdrew `amount` collateral.
    event Withdraw(address indexed account, uint256 amount);

    /// @notice `from` added `amount` to the insurance fund.
    event InsuranceDeposit(address indexed from, uint256 amount);

    /// @notice An order came to rest on the book. Orders that never rest (fully filled on
    ///         arrival, IOC, reduce-only) emit only `Fill`s.
    event OrderPlaced(
        address indexed account,
        uint256 indexed orderId,
        uint64 clientId,
        uint8 side,
        uint24 tick,
        uint48 lots,
        uint8 flags,
        uint32 expiry
    );

    /// @notice A resting order left the book without filling `remainingLots`.
    /// @param reason `CANCEL_USER` (0), `CANCEL_EXPIRED` (1), `CANCEL_SELF_TRADE` (2): the
    ///        resting order of the taker's own account is cancelled instead of filled,
    ///        `CANCEL_MARGIN` (3): filling it would have left its maker under maintenance margin.
    event OrderCancelled(
        address indexed account, uint256 indexed orderId, uint64 clientId, uint48 remainingLots, uint8 reason
    );

    /// @notice A post-only place of `account`'s `batch` was not placed: at `tick` it would have
    ///         crossed a live order at `bestOpposite`. Nothing rests and nothing is reserved;
    ///         the batch's other cancels and places went through. (`place` reverts instead.)
    event PlaceSkipped(
        address indexed account, uint64 clientId, uint8 side, uint24 tick, uint48 lots, uint24 bestOpposite
    );

    /// @notice Every resting order of `account` was cancelled at once (by `cancelAll` or a
    ///         liquidation). No per-order `OrderCancelled` follows; the orders leave the book
    ///         lazily and never fill.
    event AllOrdersCancelled(address indexed account, uint32 orderEpoch);

    /// @notice A taker matched a resting order, at the order's tick.
    /// @dev The maker order's side and tick are not repeated here: they are part of
    ///      `makerOrderId` (tick = bits [40,64), side = bit 64; `decodeOrderId`), and the taker's
    ///      side is the other one. Two data words fewer save 512 gas a fill.
    /// @param makerFee Signed (a negative fee is a rebate), collateral units.
    event Fill(
        address indexed maker,
        address indexed taker,
        uint256 indexed makerOrderId,
        uint64 makerClientId,
        uint48 lots,
        int256 makerFee,
        uint256 takerFee
    );

    /// @notice A funding interval closed.
    /// @param epoch The number of the interval that closed (the first is 0).
    /// @param rate Funding rate for the interval, 1e18-scaled; > 0: longs pay shorts.
    /// @param indexPrice Index price used, collateral units per whole base unit.
    /// @param cumulativeIndex Cumulative funding per lot, collateral units, after this interval.
    event FundingSettled(uint256 indexed epoch, int256 rate, uint256 indexPrice, int256 cumulativeIndex);

    /// @notice Lazy funding was applied to `account`; `amount` > 0 means the account paid.
    event FundingPaid(address indexed account, int256 amount);

    /// @notice `account` was liquidated by `keeper`.
    /// @param positionLots The signed position that was closed.
    /// @param bookLots Lots closed against the book.
    /// @param insuranceLots Lots taken over by the insurance fund.
    /// @param markPrice Mark price used.
    /// @param penalty Liquidation fee charged to the account (to the insurance fund).
    /// @param keeperReward Paid to `keeper`.
    event Liquidation(
        address indexed account,
        address indexed keeper,
        int256 positionLots,
        uint256 bookLots,
        uint256 insuranceLots,
        uint256 markPrice,
        uint256 penalty,
        uint256 keeperReward
    );

    /// @notice The insurance fund absorbed `amount` of negative collateral of `account`.
    ///         `insuranceAfter` < 0 means uncovered bad debt.
    event BadDebtCovered(address indexed account, uint256 amount, int256 insuranceAfter);

    /// @notice The insurance fund could not cover `deficit` of bad debt: it is shared among the
    ///         positions on `side` (0 = longs, 1 = shorts), `perLot` collateral units per lot,
    ///         charged lazily (`SocialisedLossPaid`). `perLot` = 0: no open interest was left to
    ///         share it over, and the fund stays `deficit` below zero.
    event LossSocialised(uint8 side, uint256 deficit, uint256 perLot);

    /// @notice `account` paid `amount` of a socialised loss (see `LossSocialised`).
    event SocialisedLossPaid(address indexed account, uint256 amount);

    /// @notice A keeper reward was paid.
    event KeeperRewardPaid(address indexed keeper, uint256 amount);

    /// @notice Accrued fees were sent to the fee recipient.
    event FeesClaimed(address indexed recipient, uint256 amount);

    // ------------------------------------------------------------------ errors

    /// @notice The market parameters a deployment can get wrong (see MarketParams); `Extension`
    ///         is an extension built with other parameters. ABI-encoded as uint8.
    enum Param {
        Collateral,
        Oracle,
        FeeRecipient,
        TickSize,
        NotionalUnit,
        MaintenanceMargin,
        InitialMargin,
        TakerFee,
        MakerFee,
        MaxFills,
        FundingInterval,
        OracleMaxAge,
        InterestRate,
        PremiumClamp,
        FundingCap,
        LiquidationFee,
        LiquidationBand,
        KeeperReward,
        MarkBand,
        Extension
    }

    /// @notice A market parameter is out of its bound.
    error InvalidParam(Param param);
    /// @notice The oracle's answer is older than `oracleMaxAge`.
    error StaleOracle(uint256 updatedAt, uint256 nowTs);
    /// @notice The oracle's answer is zero or negative.
    error InvalidOraclePrice(int256 answer);
    /// @notice A zero amount was given.
    error ZeroAmount();
    /// @notice The caller has never deposited.
    error UnknownAccount(address account);
    /// @notice Side must be 0 or 1.
    error InvalidSide(uint8 side);
    /// @notice Tick must be in [1, 2**24 - 1]; also raised by a level that has queued 2**39 orders
    ///         (see the order index in PerpMarketBase; about 1.2e16 gas of placements at one price).
    error InvalidTick(uint256 tick);
    /// @notice Lots must be > 0.
    error InvalidLots();
    /// @notice Flags are unknown or contradictory.
    error InvalidFlags(uint8 flags);
    /// @notice The order's expiry is not in the future.
    error InvalidExpiry(uint32 expiry);
    /// @notice Order notional below `minNotional`.
    error BelowMinNotional(uint256 notional, uint256 minNotional);
    /// @notice A post-only order would take.
    error PostOnlyWouldCross(uint24 tick, uint24 bestOpposite);
    /// @notice A reduce-only order would not reduce the position.
    error ReduceOnlyWouldIncrease();
    /// @notice Equity would be below the required margin.
    error InsufficientMargin(int256 equity, uint256 required);
    /// @notice The order belongs to another account.
    error NotOrderOwner(uint256 orderId);
    /// @notice The account already has `maxOrders` resting orders (expired ones are reclaimed
    ///         first): cancel some before placing more.
    error TooManyOrders(uint256 maxOrders);
    /// @notice The account is not below maintenance margin.
    error NotLiquidatable(int256 equity, uint256 maintenanceMargin);
    /// @notice No funding boundary has passed yet.
    error FundingNotDue(uint256 nextBoundary);
}
