// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TreeHead} from "./Common.sol";

/// @title Evidence log anchor
/// @notice Tree heads of claimx's append-only Merkle log (RFC 9162 hashing). A new head is
/// accepted only with a valid consistency proof from the current one, so the chain itself
/// enforces that the log is never rewritten. Also holds record revocations by their issuers.
interface IEvidenceLog {
    error EvidenceLogNotGrowing(uint64 currentSize, uint64 newSize);
    error EvidenceLogNotConsistent(uint64 oldSize, uint64 newSize);
    error EvidenceLogProofForEmptyLog(uint256 proofLength);
    error EvidenceLogUnknownHead(uint256 index);
    error EvidenceLogUnknownSize(uint64 size);
    error EvidenceLogNotIssuerOperator(address account, bytes32 memberId);
    error EvidenceLogMemberInactive(bytes32 memberId);
    error EvidenceLogAlreadyRevoked(bytes32 digest, bytes32 memberId);

    event Anchored(uint256 indexed index, uint64 size, bytes32 root, address indexed by);
    event RecordRevoked(bytes32 indexed digest, bytes32 indexed memberId, uint16 reason, address by);

    /// @notice Append a tree head. Only accounts with ANCHOR_ROLE; `newSize` must exceed the
    /// current size and `consistencyProof` must prove the current head is a prefix of the new one.
    function anchor(uint64 newSize, bytes32 newRoot, bytes32[] calldata consistencyProof) external;

    /// @notice Revoke a record digest on behalf of its issuer `memberId`; only that member's
    /// operator accounts, while the member is active. Reason codes are the issuer's own.
    function revokeRecord(bytes32 memberId, bytes32 digest, uint16 reason) external;

    /// @notice Whether `memberId` revoked `digest`, why and when.
    function revocationOf(bytes32 digest, bytes32 memberId)
        external
        view
        returns (bool revoked, uint16 reason, uint64 at);

    /// @notice Number of tree heads anchored.
    function headCount() external view returns (uint256);

    /// @notice The `index`-th anchored tree head (0 = first).
    function headAt(uint256 index) external view returns (TreeHead memory);

    /// @notice The latest head; a zero head (size 0) before the first anchor.
    function latestHead() external view returns (TreeHead memory);

    /// @notice Index of the head with exactly `size` leaves; reverts when none.
    function headIndexOfSize(uint64 size) external view returns (uint256);

    /// @notice The member registry this log checks operators against.
    function registry() external view returns (address);

    /// @notice RFC 9162 section 2.1.4.2 consistency verification, exposed so shared test vectors
    /// run through the exact code that guards {anchor}.
    function verifyConsistency(uint64 size1, uint64 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        external
        pure
        returns (bool);
}
