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
    function cancel(uint256 orderId) external returns (bool cancelled) {
        Acct memory a = _loadMargin(_idOf(msg.sender));
        Ctx memory c;
        cancelled = _cancel(c, a, orderId);
        if (cancelled) _storeMargin(a);
        _store(c);
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
