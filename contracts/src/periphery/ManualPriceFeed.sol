// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AggregatorV3Interface} from "../interfaces/AggregatorV3Interface.sol";

/// @title ManualPriceFeed
/// @notice A Chainlink-compatible feed whose answer its updater pushes: for local chains,
///         testnets and stress scenarios. It goes stale like a real feed when nobody pushes.
contract ManualPriceFeed is AggregatorV3Interface {
    /// @notice The only address allowed to push answers.
    address public immutable updater;
    uint8 public immutable override decimals;

    uint80 internal _round;
    int256 internal _answer;
    uint256 internal _updatedAt;

    /// @notice A new answer was pushed.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    /// @notice The caller is not the updater.
    error NotUpdater(address caller);

    constructor(uint8 decimals_, int256 initialAnswer) {
        updater = msg.sender;
        decimals = decimals_;
        _push(initialAnswer, block.timestamp);
    }

    /// @notice Publish `answer` as of now.
    function push(int256 answer) external {
        if (msg.sender != updater) revert NotUpdater(msg.sender);
        _push(answer, block.timestamp);
    }

    function description() external pure returns (string memory) {
        return "manual feed (local/test chains only)";
    }

    function version() external pure returns (uint256) {
        return 1;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (_round, _answer, _updatedAt, _updatedAt, _round);
    }

    function _push(int256 answer, uint256 at) internal {
        _round += 1;
        _answer = answer;
        _updatedAt = at;
        emit AnswerUpdated(answer, _round, at);
    }
}
