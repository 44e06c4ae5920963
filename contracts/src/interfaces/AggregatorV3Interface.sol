// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title AggregatorV3Interface
/// @notice The read surface of a Chainlink price feed, as the market consumes it.
interface AggregatorV3Interface {
    /// @notice Number of decimals of `answer` (8 for Chainlink USD feeds).
    function decimals() external view returns (uint8);

    /// @notice Human-readable feed name, e.g. "ETH / USD".
    function description() external view returns (string memory);

    /// @notice Feed implementation version.
    function version() external view returns (uint256);

    /// @notice The latest round.
    /// @return roundId Round identifier.
    /// @return answer Price, scaled by `10**decimals()`.
    /// @return startedAt Timestamp the round started.
    /// @return updatedAt Timestamp the answer was last updated; the market's staleness check uses it.
    /// @return answeredInRound Deprecated; kept for ABI compatibility.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
