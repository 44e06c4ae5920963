// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Getters of `PerpMarket` outside `IPerpMarket` that tests read. The tests deploy the
///         market from its artifact (see `MarketFixture.deployMarket`) and never import it.
interface IMarketDeployment {
    function extension() external view returns (address);
    function accountIdOf(address account) external view returns (uint32);
}
