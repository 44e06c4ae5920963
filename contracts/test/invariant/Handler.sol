// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "../utils/Test.sol";
import {MockUSD} from "../mocks/MockUSD.sol";
import {MockAggregator} from "../mocks/MockAggregator.sol";
import {IPerpMarket} from "../../src/interfaces/IPerpMarket.sol";
import {IPerpMarketTypes} from "../../src/interfaces/IPerpMarketTypes.sol";

/// @notice Drives a market with random but well-formed traffic from a few actors and keeps
///         ghost totals of every token flow in and out of it.
contract Handler is Test {
    IPerpMarket public immutable m;
    MockUSD public immutable usd;
    MockAggregator public immutable feed;
    address public immutable keeper = address(0x4EE9E2);
    address public immutable treasury;

    address[] public actors;
    mapping(address => uint256[]) internal _ids;

    uint256 public ghostIn;
    uint256 public ghostOut;
    uint256 public ghostWithdrawalsIntoBadDebt;
    uint256 public fills;
    uint256 public liquidations;
    uint256 public fundingSettles;
    int256 public priceE8 = 3000e8;

    constructor(IPerpMarket m_, MockUSD usd_, MockAggregator feed_, address treasury_) {
        m = m_;
        usd = usd_;
        feed = feed_;
        treasury = treasury_;
        for (uint256 i; i < 4; ++i) {
            actors.push(address(uint160(0x1000 + i)));
        }
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function _pxTick() internal view returns (uint256) {
        return uint256(priceE8) / 1e6; // $ with 8 decimals -> ticks of $0.01
    }

    function deposit(uint256 who, uint256 amount) external {
        address a = _actor(who);
        amount = bound(amount, 1e6, 50_000e6);
        usd.mint(a, amount);
        vm.startPrank(a);
        usd.approve(address(m), amount);
        m.deposit(amount);
        vm.stopPrank();
        ghostIn += amount;
    }

    function withdraw(uint256 who, uint256 amount) external {
        address a = _actor(who);
        amount = bound(amount, 1, 20_000e6);
        vm.prank(a);
        try m.withdraw(amount) {
            ghostOut += amount;
            // A withdrawal never leaves the account in bad debt at the mark it was checked at.
            if (m.accountState(a).equity < 0) ++ghostWithdrawalsIntoBadDebt;
        } catch {}
    }

    function placeOrder(uint256 who, uint256 side, uint256 off, uint256 lots, uint256 flags) external {
        address a = _actor(who);
        uint8 s = uint8(side % 2);
        uint256 center = _pxTick();
        uint256 delta = bound(off, 0, center / 50); // within 2% of the index
        uint256 tick = s == 0 ? center - delta + center / 200 : center + delta - center / 200;
        uint8 f = [uint8(0), 1, 2, 4][flags % 4];
        IPerpMarketTypes.Place memory p = IPerpMarketTypes.Place({
            side: s,
            flags: f,
            tick: uint24(tick),
            lots: uint48(bound(lots, 1, 400)),
            clientId: uint64(flags),
            expiry: flags % 5 == 0 ? uint32(block.timestamp + 600) : 0
        });
        int256 before = m.accountState(a).positionLots;
        vm.prank(a);
        try m.place(p) returns (uint256 id) {
            if (id != 0) _ids[a].push(id);
            if (m.accountState(a).positionLots != before) ++fills;
        } catch {}
    }

    /// @dev A maker quotes at the index and a taker lifts it: builds leveraged positions fast.
    function trade(uint256 makerSeed, uint256 takerSeed, uint256 side, uint256 lots) external {
        address maker = _actor(makerSeed);
        address taker = _actor(takerSeed);
        if (maker == taker) return;
        uint8 s = uint8(side % 2);
        uint24 tick = uint24(_pxTick());
        uint48 q = uint48(bound(lots, 1, 2500));
        vm.prank(maker);
        try m.place(IPerpMarketTypes.Place(s, 1, tick, q, 9, 0)) returns (uint256 id) {
            if (id != 0) _ids[maker].push(id);
        } catch {
            return;
        }
        int256 before = m.accountState(taker).positionLots;
        vm.prank(taker);
        try m.place(IPerpMarketTypes.Place(1 - s, 2, tick, q, 9, 0)) {
            if (m.accountState(taker).positionLots != before) ++fills;
        } catch {}
    }

    function cancel(uint256 who, uint256 pick) external {
        address a = _actor(who);
        uint256[] storage ids = _ids[a];
        if (ids.length == 0) return;
        uint256 i = pick % ids.length;
        vm.prank(a);
        m.cancel(ids[i]);
        ids[i] = ids[ids.length - 1];
        ids.pop();
    }

    function refresh(uint256 who, uint256 off) external {
        address a = _actor(who);
        uint256[] storage ids = _ids[a];
        uint256 n = ids.length < 2 ? ids.length : 2;
        uint256[] memory cancels = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            cancels[i] = ids[ids.length - 1];
            ids.pop();
        }
        uint256 center = _pxTick();
        uint256 half = 1 + off % (center / 100);
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](2);
        ps[0] = IPerpMarketTypes.Place(0, 1, uint24(center - half), 20, 1, 0);
        ps[1] = IPerpMarketTypes.Place(1, 1, uint24(center + half), 20, 2, 0);
        vm.prank(a);
        try m.batch(cancels, ps) returns (uint256[] memory newIds) {
            for (uint256 i; i < newIds.length; ++i) {
                if (newIds[i] != 0) ids.push(newIds[i]);
            }
        } catch {}
    }

    function cancelAll(uint256 who) external {
        address a = _actor(who);
        vm.prank(a);
        try m.cancelAll() {
            delete _ids[a];
        } catch {}
    }

    function movePrice(uint256 bps) external {
        int256 move = int256(bound(bps, 0, 1000)) - 500; // -5% .. +5%
        int256 next = priceE8 * (10_000 + move) / 10_000;
        if (next < 2000e8 || next > 4500e8) return;
        priceE8 = next;
        feed.set(next);
    }

    function warp(uint256 dt) external {
        vm.warp(block.timestamp + bound(dt, 1, 5400));
        feed.set(priceE8);
    }

    function settleFunding() external {
        uint256 before = usd.balanceOf(keeper);
        vm.prank(keeper);
        try m.settleFunding() {
            ghostOut += usd.balanceOf(keeper) - before;
            ++fundingSettles;
        } catch {}
    }

    function liquidate(uint256 who) external {
        uint256 before = usd.balanceOf(keeper);
        vm.prank(keeper);
        try m.liquidate(_actor(who)) {
            ghostOut += usd.balanceOf(keeper) - before;
            ++liquidations;
        } catch {}
    }

    function claimFees() external {
        try m.claimFees() returns (uint256 amount) {
            ghostOut += amount;
        } catch {}
    }
}
