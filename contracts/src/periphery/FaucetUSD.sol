// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "solady/tokens/ERC20.sol";

/// @title FaucetUSD
/// @notice A 6-decimal USD test token for local chains and testnets: anyone can mint up to
///         `MAX_DRIP` per call. Never deploy it where it could be mistaken for real money.
contract FaucetUSD is ERC20 {
    /// @notice Largest amount one `drip` mints (1,000,000 tokens).
    uint256 public constant MAX_DRIP = 1_000_000e6;

    /// @notice The drip exceeds `MAX_DRIP`.
    error DripTooLarge(uint256 amount);

    function name() public pure override returns (string memory) {
        return "Faucet USD";
    }

    function symbol() public pure override returns (string memory) {
        return "fUSD";
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mint `amount` to `to`.
    function drip(address to, uint256 amount) external {
        if (amount > MAX_DRIP) revert DripTooLarge(amount);
        _mint(to, amount);
    }
}
