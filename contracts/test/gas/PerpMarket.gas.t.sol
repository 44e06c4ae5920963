// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "../utils/MarketFixture.sol";
import {IPerpMarketTypes} from "../../src/interfaces/IPerpMarketTypes.sol";

/// @notice Dedicated gas scenarios for `forge snapshot` (contracts/.gas-snapshot). Each contract
///         prepares its state in setUp so the measured test function does one market call with
///         cold storage, as a real transaction would. They are benchmarks, not behaviour tests;
///         each still checks that the call did what it is measured for.
/// @dev The maker is a market maker with inventory (a small short), which is the realistic case:
///      placing then needs the oracle for the margin check.
abstract contract GasBase is MarketFixture {
    address internal mm = address(0x3A3A);
    uint256[] internal quotes;

    function setUp() public virtual override {
        super.setUp();
        fund(mm, 1_000_000e6);
        fund(alice, 1_000_000e6);
        fund(bob, 1_000_000e6);
        // Give the maker inventory and keep a quote on each side, like a live market maker.
        place(mm, ASK, PX + 50, 10, POST);
        place(bob, BID, PX + 50, 10, IOC);
        quotes.push(place(mm, BID, PX - 50, 10, POST));
        quotes.push(place(mm, ASK, PX + 50, 10, POST));
        vm.warp(block.timestamp + 12);
    }
}

contract GasPlaceNewLevel is GasBase {
    function test_gas_placePostOnly_NewLevel() public {
        vm.prank(mm);
        uint256 id = m.place(order(BID, PX - 10, 10, POST));
        assertTrue(id != 0, "rested");
    }
}

contract GasPlaceNewLevelFlatMaker is GasBase {
    function test_gas_placePostOnly_NewLevel_FlatMaker() public {
        vm.prank(alice);
        uint256 id = m.place(order(BID, PX - 10, 10, POST));
        assertTrue(id != 0, "rested");
    }
}

contract GasPlaceExistingLevel is GasBase {
    function setUp() public override {
        super.setUp();
        place(alice, BID, PX - 10, 10, POST);
    }

    function test_gas_placePostOnly_ExistingLevel() public {
        vm.prank(mm);
        uint256 id = m.place(order(BID, PX - 10, 10, POST));
        assertTrue(id != 0, "rested");
    }
}

/// @dev Steady-state quoting: the level was used before (its slot and bitmap word are non-zero)
///      but is empty now, which is the common case for a maker requoting around the mid.
contract GasPlaceReusedLevel is GasBase {
    function setUp() public override {
        super.setUp();
        uint256 id = place(mm, BID, PX - 10, 10, POST);
        vm.prank(mm);
        m.cancel(id);
    }

    function test_gas_placePostOnly_ReusedEmptyLevel() public {
        vm.prank(mm);
        uint256 id = m.place(order(BID, PX - 10, 10, POST));
        assertTrue(id != 0, "rested");
    }
}

contract GasCancel is GasBase {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = place(mm, BID, PX - 10, 10, POST);
    }

    function test_gas_cancel() public {
        vm.prank(mm);
        assertTrue(m.cancel(id), "cancelled");
    }
}

/// @dev The cancel of the order measured by GasPlaceExistingLevel: its level keeps another
///      order, so the best prices do not move (GasCancel is the level-emptying worst case).
contract GasCancelSharedLevel is GasBase {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        place(alice, BID, PX - 10, 10, POST);
        id = place(mm, BID, PX - 10, 10, POST);
    }

    function test_gas_cancel_SharedLevel() public {
        vm.prank(mm);
        assertTrue(m.cancel(id), "cancelled");
    }
}

contract GasBatchRefresh is GasBase {
    uint256[] internal ids;

    function setUp() public override {
        super.setUp();
        ids.push(place(mm, BID, PX - 10, 10, POST));
        ids.push(place(mm, ASK, PX + 10, 10, POST));
    }

    function test_gas_batch_Cancel2Place2() public {
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](2);
        ps[0] = order(BID, PX - 9, 10, POST);
        ps[1] = order(ASK, PX + 11, 10, POST);
        vm.prank(mm);
        uint256[] memory newIds = m.batch(ids, ps);
        assertTrue(newIds[0] != 0 && newIds[1] != 0, "both rest");
    }
}

contract GasBatchRefreshReusedLevels is GasBase {
    uint256[] internal ids;

    function setUp() public override {
        super.setUp();
        ids.push(place(mm, BID, PX - 9, 10, POST));
        ids.push(place(mm, ASK, PX + 11, 10, POST));
        vm.startPrank(mm);
        m.batch(ids, new IPerpMarketTypes.Place[](0));
        vm.stopPrank();
        delete ids;
        ids.push(place(mm, BID, PX - 10, 10, POST));
        ids.push(place(mm, ASK, PX + 10, 10, POST));
    }

    function test_gas_batch_Cancel2Place2_ReusedLevels() public {
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](2);
        ps[0] = order(BID, PX - 9, 10, POST);
        ps[1] = order(ASK, PX + 11, 10, POST);
        vm.prank(mm);
        uint256[] memory newIds = m.batch(ids, ps);
        assertTrue(newIds[0] != 0 && newIds[1] != 0, "both rest");
    }
}

/// @dev The market-making agent's quote refresh: a maker with a position (GasBase) cancels six
///      resting quotes and places six at price levels never used before, in one batch.
contract GasBatchRefresh6 is GasBase {
    uint256[] internal ids;

    function setUp() public override {
        super.setUp();
        for (uint24 i; i < 3; ++i) {
            ids.push(place(mm, BID, PX - 10 - i, 10, POST));
            ids.push(place(mm, ASK, PX + 10 + i, 10, POST));
        }
    }

    function test_gas_batch_Cancel6Place6() public {
        IPerpMarketTypes.Place[] memory ps = new IPerpMarketTypes.Place[](6);
        for (uint24 i; i < 3; ++i) {
            ps[2 * i] = order(BID, PX - 20 - i, 10, POST);
            ps[2 * i + 1] = order(ASK, PX + 20 + i, 10, POST);
        }
        vm.prank(mm);
        uint256[] memory newIds = m.batch(ids, ps);
        for (uint256 i; i < 6; ++i) {
            assertTrue(newIds[i] != 0, "rests");
        }
        assertEq(m.openOrders(mm).length, 8, "six new quotes and the two old ones");
    }
}

contract GasSweep1 is GasBase {
    function setUp() public override {
        super.setUp();
        place(alice, ASK, PX + 1, 10, POST);
    }

    function test_gas_take_Sweep1Order() public {
        vm.prank(bob);
        m.place(order(BID, PX + 1, 10, IOC));
        assertEq(m.accountState(bob).positionLots, 20, "filled");
    }
}

contract GasSweep10 is GasBase {
    function setUp() public override {
        super.setUp();
        for (uint24 i; i < 10; ++i) {
            place(alice, ASK, PX + 1 + i, 10, POST);
        }
    }

    function test_gas_take_Sweep10Orders10Levels() public {
        vm.prank(bob);
        m.place(order(BID, PX + 10, 100, IOC));
        assertEq(m.accountState(bob).positionLots, 110, "filled");
    }
}

contract GasSweep10Makers is GasBase {
    function setUp() public override {
        super.setUp();
        for (uint160 i; i < 10; ++i) {
            address maker = address(0x9000 + i);
            fund(maker, 100_000e6);
            place(maker, ASK, PX + 1, 10, POST);
        }
    }

    function test_gas_take_Sweep10Makers1Level() public {
        vm.prank(bob);
        m.place(order(BID, PX + 1, 100, IOC));
        assertEq(m.accountState(bob).positionLots, 110, "filled");
    }
}

contract GasSettleFunding is GasBase {
    function setUp() public override {
        super.setUp();
        // Fees seeded above pay the keeper reward.
        place(alice, ASK, PX + 40, 100_000, POST);
        place(bob, BID, PX + 40, 100_000, IOC);
        warpTo(T0 + 3600, ORACLE_PX);
    }

    function test_gas_settleFunding() public {
        vm.prank(keeper);
        m.settleFunding();
        (uint256 epoch,,,,) = m.fundingState();
        assertEq(epoch, 1, "closed");
    }
}

contract GasLiquidate is GasBase {
    function setUp() public override {
        super.setUp();
        fund(carol, 1_000e6);
        place(alice, ASK, PX + 1, 300, POST);
        place(carol, BID, PX + 1, 300, IOC);
        place(alice, BID, 279_000, 300, POST);
        // The maker pulls its quotes so the mark follows the index down.
        vm.prank(mm);
        m.batch(quotes, new IPerpMarketTypes.Place[](0));
        feed.set(2800e8);
    }

    function test_gas_liquidate() public {
        vm.prank(keeper);
        m.liquidate(carol);
        assertEq(m.accountState(carol).positionLots, 0, "closed");
    }
}
