// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./Test.sol";
import {MockUSD} from "../mocks/MockUSD.sol";
import {MockAggregator} from "../mocks/MockAggregator.sol";
import {IPerpMarket} from "../../src/interfaces/IPerpMarket.sol";
import {IPerpMarketTypes} from "../../src/interfaces/IPerpMarketTypes.sol";

/// @notice A deployed market at a known state: ETH-like instrument at $3000, aligned funding
///         clock. tick = $0.01, lot = 0.01 ETH, so one lot at tick t is worth 100 * t units and
///         one interval of pure interest funding costs exactly 375 units per lot at $3000.
abstract contract MarketFixture is Test {
    uint256 internal constant T0 = 1_700_002_800; // a multiple of 3600
    uint24 internal constant PX = 300_000; // $3000.00
    int256 internal constant ORACLE_PX = 3000e8;
    uint8 internal constant BID = 0;
    uint8 internal constant ASK = 1;
    uint8 internal constant POST = 1;
    uint8 internal constant IOC = 2;
    uint8 internal constant REDUCE = 4;
    /// @dev The mark stays within 2% of the index.
    uint256 internal constant MARK_BAND_BPS = 200;

    MockUSD internal usd;
    MockAggregator internal feed;
    IPerpMarket internal m;
    address internal market;

    address internal alice = address(0xA11CE);
    address internal bob = address(0xB0B);
    address internal carol = address(0xCA201);
    address internal keeper = address(0x4EE9E2);
    address internal treasury = address(0x7E5);

    function setUp() public virtual {
        vm.warp(T0);
        usd = new MockUSD();
        feed = new MockAggregator(8, ORACLE_PX);
        IPerpMarketTypes.MarketParams memory p = params();
        market = deployMarket(p, deployExtension(p));
        assertTrue(market != address(0), "market deployment failed");
        m = IPerpMarket(market);
        vm.label(market, "market");
    }

    /// @dev Deploy the market from its artifact, as `deployExtension`: both halves are built
    ///      through the IR pipeline (see foundry.toml), and importing either here would pull the
    ///      whole test build into that pipeline (minutes instead of seconds). The tests run the
    ///      bytecode that ships. Returns address(0) if the constructor reverted.
    function deployMarket(IPerpMarketTypes.MarketParams memory p, address ext) internal returns (address mkt) {
        bytes memory code = abi.encodePacked(vm.getCode("PerpMarket.sol:PerpMarket"), abi.encode(p, ext));
        assembly ("memory-safe") {
            mkt := create(0, add(code, 0x20), mload(code))
        }
    }

    /// @dev Deploy the extension from its artifact (see `deployMarket`).
    function deployExtension(IPerpMarketTypes.MarketParams memory p) internal returns (address ext) {
        bytes memory code = abi.encodePacked(vm.getCode("PerpMarketExtension.sol:PerpMarketExtension"), abi.encode(p));
        assembly ("memory-safe") {
            ext := create(0, add(code, 0x20), mload(code))
        }
        assertTrue(ext != address(0), "extension deployment failed");
    }

    function params() internal view virtual returns (IPerpMarketTypes.MarketParams memory p) {
        p.collateral = address(usd);
        p.oracle = address(feed);
        p.feeRecipient = treasury;
        p.tickSize = 1e4;
        p.lotSize = 1e16;
        p.minNotional = 1e6;
        p.initialMarginBps = 1000;
        p.maintenanceMarginBps = 500;
        p.makerFeeBps = -1;
        p.takerFeeBps = 5;
        p.maxFills = 64;
        p.fundingInterval = 3600;
        p.oracleMaxAge = 3600;
        p.interestRate8h = 1e14;
        p.premiumClamp = 5e14;
        p.fundingCap = 4e16;
        p.liquidationFeeBps = 100;
        p.liquidationBandBps = 500;
        p.keeperReward = 1e6;
        p.markBandBps = uint16(MARK_BAND_BPS);
    }

    function fund(address who, uint256 amount) internal {
        usd.mint(who, amount);
        vm.startPrank(who);
        usd.approve(market, amount);
        m.deposit(amount);
        vm.stopPrank();
    }

    function order(uint8 side, uint24 tick, uint48 lots, uint8 flags)
        internal
        pure
        returns (IPerpMarketTypes.Place memory)
    {
        return IPerpMarketTypes.Place({side: side, flags: flags, tick: tick, lots: lots, clientId: 7, expiry: 0});
    }

    function place(address who, uint8 side, uint24 tick, uint48 lots, uint8 flags) internal returns (uint256 id) {
        vm.prank(who);
        id = m.place(order(side, tick, lots, flags));
    }

    function state(address who) internal view returns (IPerpMarketTypes.AccountState memory) {
        return m.accountState(who);
    }

    /// @dev Move the clock and keep the oracle fresh at `answer`.
    function warpTo(uint256 t, int256 answer) internal {
        vm.warp(t);
        feed.set(answer);
    }
}
