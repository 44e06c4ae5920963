// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "../utils/MarketFixture.sol";
import {Handler} from "./Handler.sol";
import {IPerpMarketTypes} from "../../src/interfaces/IPerpMarketTypes.sol";

/// @notice System invariants under random traffic (see Handler).
/// @dev Accounting identity: a trade at any price leaves `collateral - entryNotional` summed over
///      both sides unchanged (realized PnL moves value between collateral and cost basis), and
///      funding is zero-sum over open interest. So the market's token balance must equal
///      sum(collateral - entryNotional - fundingOwed) over every account, insurance included,
///      plus accrued fees. With no positions open this is the plain "collateral + insurance +
///      fees" identity.
contract PerpMarketInvariantTest is MarketFixture {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new Handler(m, usd, feed, treasury);
        // Seed every actor so trading starts at once.
        for (uint256 i; i < 4; ++i) {
            handler.deposit(i, 10_000e6);
        }
    }

    function targetContracts() public view returns (address[] memory t) {
        t = new address[](1);
        t[0] = address(handler);
    }

    function _value(address a) internal view returns (int256) {
        IPerpMarketTypes.AccountState memory s = m.accountState(a);
        return s.collateral - s.entryNotional - s.fundingOwed;
    }

    function _accounts() internal view returns (address[] memory all) {
        uint256 n = handler.actorCount();
        all = new address[](n + 1);
        for (uint256 i; i < n; ++i) {
            all[i] = handler.actors(i);
        }
        all[n] = market; // the insurance fund's account
    }

    function invariant_TokenBalanceEqualsLedger() public view {
        address[] memory all = _accounts();
        int256 sum;
        for (uint256 i; i < all.length; ++i) {
            sum += _value(all[i]);
        }
        sum += int256(m.accruedFees());
        assertEq(int256(usd.balanceOf(market)), sum, "balance == collateral + insurance + fees (marked)");
    }

    function invariant_TokenBalanceEqualsGhostFlows() public view {
        assertEq(usd.balanceOf(market), handler.ghostIn() - handler.ghostOut(), "every token in and out");
    }

    function invariant_OpenInterestBalanced() public view {
        address[] memory all = _accounts();
        int256 longs;
        int256 shorts;
        for (uint256 i; i < all.length; ++i) {
            int256 p = m.accountState(all[i]).positionLots;
            if (p > 0) longs += p;
            else shorts -= p;
        }
        assertEq(longs, shorts, "long OI == short OI");
    }

    function invariant_BookNeverCrossed() public view {
        uint24 bid = m.bestBid();
        uint24 ask = m.bestAsk();
        assertTrue(bid == 0 || ask == 0 || bid < ask, "crossed book");
    }

    function invariant_NoUnabsorbedNegativeCollateral() public view {
        uint256 n = handler.actorCount();
        for (uint256 i; i < n; ++i) {
            IPerpMarketTypes.AccountState memory s = m.accountState(handler.actors(i));
            if (s.positionLots == 0) assertGe(s.collateral, 0, "flat account below zero");
        }
    }
}
