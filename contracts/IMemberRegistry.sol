// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Role, KeyAlgorithm, KeyStatus, Member, Key} from "./Common.sol";

/// @title Consortium member and signing-key registry
/// @notice Institutions (hospitals, police, insurers, auditors) with their operator accounts
/// and signing keys. Only the consortium admin changes membership and keys.
interface IMemberRegistry {
    error MemberRegistryUnknownMember(bytes32 memberId);
    error MemberRegistryMemberExists(bytes32 memberId);
    error MemberRegistryInvalidRole(uint8 role);
    error MemberRegistryUnknownKey(bytes32 keyId);
    error MemberRegistryKeyExists(bytes32 keyId);
    error MemberRegistryKeyNotOfMember(bytes32 keyId, bytes32 memberId);
    error MemberRegistryKeyAlreadyRevoked(bytes32 keyId, uint64 revokedAt);
    error MemberRegistryRevocationBeforeValidity(bytes32 keyId, uint64 validFrom, uint64 revokedAt);
    error MemberRegistryBadPublicKey(KeyAlgorithm algorithm, uint256 length);
    error MemberRegistryOperatorTaken(address account, bytes32 memberId);
    error MemberRegistryNotOperator(address account, bytes32 memberId);
    error MemberRegistryAlreadySuspended(bytes32 memberId);
    error MemberRegistryNotSuspended(bytes32 memberId);
    error MemberRegistryMissingProof(bytes32 keyId);
    error MemberRegistryValidFromInPast(bytes32 keyId, uint64 validFrom, uint64 now_);

    event MemberAdmitted(bytes32 indexed memberId, Role role, string name);
    event MemberSuspended(bytes32 indexed memberId, uint64 at);
    event MemberReinstated(bytes32 indexed memberId);
    event OperatorAdded(bytes32 indexed memberId, address indexed account);
    event OperatorRemoved(bytes32 indexed memberId, address indexed account);
    event KeyAdded(bytes32 indexed memberId, bytes32 indexed keyId, KeyAlgorithm algorithm, uint64 validFrom);
    event KeyRevoked(bytes32 indexed memberId, bytes32 indexed keyId, uint64 revokedAt);
    /// @notice Who registered a key and its proof of possession (checked off chain).
    event KeyProofOfPossession(
        bytes32 indexed memberId, bytes32 indexed keyId, address indexed registeredBy, bytes publicKey, bytes proof
    );
    /// @notice Who revoked a key: one of the member's operators or the council.
    event KeyRevokedBy(bytes32 indexed memberId, bytes32 indexed keyId, address indexed revokedBy);

    /// @notice Admit an institution with its operator accounts.
    function admitMember(bytes32 memberId, Role role, string calldata name, address[] calldata operators) external;

    /// @notice Suspend a member from now on: its keys stop being valid for times >= now.
    function suspendMember(bytes32 memberId) external;

    /// @notice Lift a suspension. Suspension is administrative, not evidence of compromise, so
    /// validity during the suspended period is restored; a compromise is handled by revoking the
    /// key with a backdated time instead.
    function reinstateMember(bytes32 memberId) external;

    /// @notice Add an operator account (one that manages the member's keys and revokes its
    /// records). By one of the member's active operators, or by the council to recover a member.
    function addOperator(bytes32 memberId, address account) external;

    /// @notice Remove an operator account; by one of the member's operators or the council.
    function removeOperator(bytes32 memberId, address account) external;

    /// @notice Register a signing key, by one of the member's own active operators only;
    /// validFrom 0 means the current block time and may not lie in the past. `proof` is the new
    /// key's signature over (member id, key id, chain id, registry address), stored and emitted
    /// for off-chain checking (the EVM cannot verify Ed25519).
    function addKey(
        bytes32 memberId,
        bytes32 keyId,
        KeyAlgorithm algorithm,
        bytes calldata publicKey,
        uint64 validFrom,
        bytes calldata proof
    ) external;

    /// @notice Revoke a key from revokedAt on (0 = now); may be backdated to any time not before
    /// validFrom, for a key known to be compromised since then. Only the member's own operators
    /// or the council may revoke, so only they can name a compromise date.
    function revokeKey(bytes32 memberId, bytes32 keyId, uint64 revokedAt) external;

    /// @notice Add a new key valid now and revoke the old one now, in one transaction; by the
    /// member's own active operators, with the new key's proof of possession.
    function rotateKey(
        bytes32 memberId,
        bytes32 oldKeyId,
        bytes32 newKeyId,
        KeyAlgorithm algorithm,
        bytes calldata publicKey,
        bytes calldata proof
    ) external;

    /// @notice The proof of possession stored with a key; reverts for unknown keys.
    function proofOf(bytes32 keyId) external view returns (bytes memory);

    /// @notice The one validity question: was key `keyId` of member `memberId` valid at time `at`?
    /// Covers unknown member or key, key of another member, member suspension, valid-from and
    /// revocation, and returns the key material so a verifier needs no second call.
    function keyStatusAt(bytes32 memberId, bytes32 keyId, uint64 at)
        external
        view
        returns (KeyStatus status, KeyAlgorithm algorithm, bytes memory publicKey);

    /// @notice A member's record; reverts for unknown members.
    function member(bytes32 memberId) external view returns (Member memory);

    /// @notice A key's record; reverts for unknown keys.
    function key(bytes32 keyId) external view returns (Key memory);

    /// @notice Whether `account` is an operator of `memberId`.
    function isOperator(bytes32 memberId, address account) external view returns (bool);

    /// @notice Whether the member exists and is not suspended now.
    function isActive(bytes32 memberId) external view returns (bool);

    /// @notice The member an operator account belongs to (zero if none).
    function memberOfOperator(address account) external view returns (bytes32);

    /// @notice Number of members ever admitted.
    function memberCount() external view returns (uint256);

    /// @notice The id of the i-th admitted member.
    function memberAt(uint256 index) external view returns (bytes32);

    /// @notice The key ids a member has registered, oldest first.
    function keysOf(bytes32 memberId) external view returns (bytes32[] memory);
}
