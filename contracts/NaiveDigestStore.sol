// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title NaiveDigestStore
/// @notice The baseline claimx is measured against (scripts/bench_anchor.py): one transaction
/// per record, storing its digest with the block time. Not deployed by claimx itself.
contract NaiveDigestStore {
    error NaiveDigestStoreDuplicate(bytes32 digest);

    event Recorded(bytes32 indexed digest, address indexed by);

    mapping(bytes32 => uint64) public recordedAt;

    /// @notice Store one record digest.
    function record(bytes32 digest) external {
        // the same record twice would be a second, conflicting timestamp
        if (recordedAt[digest] != 0) revert NaiveDigestStoreDuplicate(digest);
        recordedAt[digest] = uint64(block.timestamp);
        emit Recorded(digest, msg.sender);
    }
}
