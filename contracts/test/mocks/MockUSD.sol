// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "solady/tokens/ERC20.sol";

/// @notice 6-decimal USD test token with unrestricted minting (tests only).
contract MockUSD is ERC20 {
    function name() public pure override returns (string memory) {
        return "Mock USD";
    }

    function symbol() public pure override returns (string memory) {
        return "mUSD";
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
