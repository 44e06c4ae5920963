// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;
interface Vm { function warp(uint256) external; function prank(address) external; function expectRevert(bytes4) external; }
