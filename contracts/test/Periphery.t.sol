// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./utils/Test.sol";
import {FaucetUSD} from "../src/periphery/FaucetUSD.sol";
import {ManualPriceFeed} from "../src/periphery/ManualPriceFeed.sol";

/// @notice The local-chain helpers that deploy.py ships: faucet token and manual feed.
contract PeripheryTest is Test {
    function test_faucet_DripsSixDecimalUsd() public {
        FaucetUSD usd = new FaucetUSD();
        usd.drip(address(0xA), 5e6);
        assertEq(usd.balanceOf(address(0xA)), 5e6, "minted");
        assertEq(usd.decimals(), 6, "decimals");
    }

    function test_RevertWhen_DripTooLarge() public {
        FaucetUSD usd = new FaucetUSD();
        vm.expectRevert(abi.encodeWithSelector(FaucetUSD.DripTooLarge.selector, 1_000_000e6 + 1));
        usd.drip(address(0xA), 1_000_000e6 + 1);
    }

    function test_feed_PushUpdatesRound() public {
        vm.warp(1000);
        ManualPriceFeed feed = new ManualPriceFeed(8, 3000e8);
        vm.warp(2000);
        feed.push(3100e8);
        (uint80 round, int256 answer,, uint256 updatedAt,) = feed.latestRoundData();
        assertEq(round, 2, "round");
        assertEq(answer, 3100e8, "answer");
        assertEq(updatedAt, 2000, "updatedAt");
    }

    function test_RevertWhen_FeedPushedByStranger() public {
        ManualPriceFeed feed = new ManualPriceFeed(8, 3000e8);
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(ManualPriceFeed.NotUpdater.selector, address(0xBAD)));
        feed.push(1);
    }
}
