// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title NotarAnchor: evidence that a notar checkpoint existed by a block's time (SPEC §4).
/// @notice Anyone may anchor: an event proves only that (origin, size, root) was known when its
/// block was made; what the root means is proven by the log's signature on the checkpoint, which
/// an anchor by a stranger cannot forge. Keeping no state makes an anchor one event (~25k gas).
contract NotarAnchor {
    /// @param originHash SHA-256 of the log's origin string.
    event Anchored(bytes32 indexed originHash, uint64 treeSize, bytes32 root);

    function anchor(bytes32 originHash, uint64 treeSize, bytes32 root) external {
        emit Anchored(originHash, treeSize, root);
    }
}
