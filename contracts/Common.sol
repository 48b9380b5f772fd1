// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Institution roles in the consortium (values match gateway/types.py Role).
enum Role { None, Hospital, Police, Insurer, Auditor, Operator, Civil }

/// @notice Signature algorithms of registered keys (values match gateway/types.py KeyAlgorithm).
enum KeyAlgorithm { None, Ed25519, EcdsaP256 }

/// @notice The single answer to "was key K of member M valid at time T".
enum KeyStatus { Valid, UnknownMember, MemberSuspended, UnknownKey, NotYetValid, Revoked }

/// @notice A consortium member. Times are unix seconds; suspendedAt 0 means active.
struct Member {
    Role role;
    uint64 admittedAt;
    uint64 suspendedAt;
    string name;
}

/// @notice A member's signing key. revokedAt 0 means not revoked.
struct Key {
    bytes32 memberId;
    KeyAlgorithm algorithm;
    uint64 validFrom;
    uint64 revokedAt;
    bytes publicKey;
}

/// @notice A tree head of the evidence log as anchored on chain.
struct TreeHead {
    bytes32 root;
    uint64 size;
    uint64 timestamp;
    uint64 blockNumber;
}
