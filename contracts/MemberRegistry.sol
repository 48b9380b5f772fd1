// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IMemberRegistry} from "./IMemberRegistry.sol";
import {Role, KeyAlgorithm, KeyStatus, Member, Key} from "./Common.sol";

/// @title MemberRegistry
/// @notice See {IMemberRegistry}. The consortium council (a k-of-n Safe multisig) holds
/// DEFAULT_ADMIN_ROLE: it admits, suspends and reinstates members and may revoke a key or change
/// operators in an emergency, but it cannot register a key. Each member's own operator accounts
/// register, rotate and revoke its keys and manage its other operators. Nobody else can.
contract MemberRegistry is IMemberRegistry, AccessControl {
    mapping(bytes32 => Member) private _members;
    mapping(bytes32 => Key) private _keys;
    mapping(bytes32 => bytes32[]) private _memberKeys;
    mapping(address => bytes32) private _operatorOf;
    bytes32[] private _memberIds;
    mapping(bytes32 => bytes) private _proofs;

    /// @param council the governing account (a Safe); the deployer keeps no role
    constructor(address council) {
        _grantRole(DEFAULT_ADMIN_ROLE, council);
    }

    /// @dev a member's own operator, acting while the member is active
    modifier onlyActiveOperatorOf(bytes32 memberId) {
        if (memberId == bytes32(0) || _operatorOf[msg.sender] != memberId) {
            revert MemberRegistryNotOperator(msg.sender, memberId);
        }
        if (_members[memberId].suspendedAt != 0) revert MemberRegistryAlreadySuspended(memberId);
        _;
    }

    /// @dev the member's own operator (even while suspended: it may still limit damage) or the council
    modifier onlyMemberOrCouncil(bytes32 memberId) {
        bool own = memberId != bytes32(0) && _operatorOf[msg.sender] == memberId;
        if (!own && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert MemberRegistryNotOperator(msg.sender, memberId);
        }
        _;
    }

    /// @inheritdoc IMemberRegistry
    function admitMember(bytes32 memberId, Role role, string calldata name, address[] calldata operators)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        // ids are permanent: re-admission would rewrite history of who signed what
        if (_members[memberId].role != Role.None) revert MemberRegistryMemberExists(memberId);
        if (role == Role.None) revert MemberRegistryInvalidRole(uint8(role));
        _members[memberId] = Member(role, uint64(block.timestamp), 0, name);
        _memberIds.push(memberId);
        emit MemberAdmitted(memberId, role, name);
        for (uint256 i = 0; i < operators.length; i++) {
            _addOperator(memberId, operators[i]);
        }
    }

    /// @inheritdoc IMemberRegistry
    function suspendMember(bytes32 memberId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Member storage m = _member(memberId);
        if (m.suspendedAt != 0) revert MemberRegistryAlreadySuspended(memberId);
        m.suspendedAt = uint64(block.timestamp);
        emit MemberSuspended(memberId, m.suspendedAt);
    }

    /// @inheritdoc IMemberRegistry
    function reinstateMember(bytes32 memberId) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Member storage m = _member(memberId);
        if (m.suspendedAt == 0) revert MemberRegistryNotSuspended(memberId);
        m.suspendedAt = 0;
        emit MemberReinstated(memberId);
    }

    /// @inheritdoc IMemberRegistry
    function addOperator(bytes32 memberId, address account) external {
        _member(memberId);
        // the council may add one only to recover a member that lost all its operator accounts
        if (!hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) _requireActiveOperator(memberId);
        _addOperator(memberId, account);
    }

    /// @inheritdoc IMemberRegistry
    function removeOperator(bytes32 memberId, address account) external onlyMemberOrCouncil(memberId) {
        if (_operatorOf[account] != memberId) revert MemberRegistryNotOperator(account, memberId);
        delete _operatorOf[account];
        emit OperatorRemoved(memberId, account);
    }

    /// @inheritdoc IMemberRegistry
    function addKey(
        bytes32 memberId,
        bytes32 keyId,
        KeyAlgorithm algorithm,
        bytes calldata publicKey,
        uint64 validFrom,
        bytes calldata proof
    ) external onlyActiveOperatorOf(memberId) {
        // a key may not be made valid for the past: that would bless signatures made before it existed
        if (validFrom != 0 && validFrom < block.timestamp) {
            revert MemberRegistryValidFromInPast(keyId, validFrom, uint64(block.timestamp));
        }
        _addKey(memberId, keyId, algorithm, publicKey, validFrom == 0 ? uint64(block.timestamp) : validFrom, proof);
    }

    /// @inheritdoc IMemberRegistry
    function revokeKey(bytes32 memberId, bytes32 keyId, uint64 revokedAt) external onlyMemberOrCouncil(memberId) {
        _revokeKey(memberId, keyId, revokedAt == 0 ? uint64(block.timestamp) : revokedAt);
    }

    /// @inheritdoc IMemberRegistry
    function rotateKey(
        bytes32 memberId,
        bytes32 oldKeyId,
        bytes32 newKeyId,
        KeyAlgorithm algorithm,
        bytes calldata publicKey,
        bytes calldata proof
    ) external onlyActiveOperatorOf(memberId) {
        _addKey(memberId, newKeyId, algorithm, publicKey, uint64(block.timestamp), proof);
        _revokeKey(memberId, oldKeyId, uint64(block.timestamp));
    }

    /// @inheritdoc IMemberRegistry
    function proofOf(bytes32 keyId) external view returns (bytes memory) {
        if (_keys[keyId].memberId == bytes32(0)) revert MemberRegistryUnknownKey(keyId);
        return _proofs[keyId];
    }

    /// @inheritdoc IMemberRegistry
    function keyStatusAt(bytes32 memberId, bytes32 keyId, uint64 at)
        external
        view
        returns (KeyStatus status, KeyAlgorithm algorithm, bytes memory publicKey)
    {
        Member storage m = _members[memberId];
        if (m.role == Role.None) return (KeyStatus.UnknownMember, KeyAlgorithm.None, "");
        Key storage k = _keys[keyId];
        if (k.memberId != memberId) return (KeyStatus.UnknownKey, KeyAlgorithm.None, "");
        if (m.suspendedAt != 0 && at >= m.suspendedAt) return (KeyStatus.MemberSuspended, k.algorithm, k.publicKey);
        if (at < k.validFrom) return (KeyStatus.NotYetValid, k.algorithm, k.publicKey);
        if (k.revokedAt != 0 && at >= k.revokedAt) return (KeyStatus.Revoked, k.algorithm, k.publicKey);
        return (KeyStatus.Valid, k.algorithm, k.publicKey);
    }

    /// @inheritdoc IMemberRegistry
    function member(bytes32 memberId) external view returns (Member memory) {
        return _member(memberId);
    }

    /// @inheritdoc IMemberRegistry
    function key(bytes32 keyId) external view returns (Key memory) {
        if (_keys[keyId].memberId == bytes32(0)) revert MemberRegistryUnknownKey(keyId);
        return _keys[keyId];
    }

    /// @inheritdoc IMemberRegistry
    function isOperator(bytes32 memberId, address account) external view returns (bool) {
        return memberId != bytes32(0) && _operatorOf[account] == memberId;
    }

    /// @inheritdoc IMemberRegistry
    function isActive(bytes32 memberId) external view returns (bool) {
        Member storage m = _members[memberId];
        return m.role != Role.None && m.suspendedAt == 0;
    }

    /// @inheritdoc IMemberRegistry
    function memberOfOperator(address account) external view returns (bytes32) {
        return _operatorOf[account];
    }

    /// @inheritdoc IMemberRegistry
    function memberCount() external view returns (uint256) {
        return _memberIds.length;
    }

    /// @inheritdoc IMemberRegistry
    function memberAt(uint256 index) external view returns (bytes32) {
        return _memberIds[index];
    }

    /// @inheritdoc IMemberRegistry
    function keysOf(bytes32 memberId) external view returns (bytes32[] memory) {
        return _memberKeys[memberId];
    }

    function _member(bytes32 memberId) private view returns (Member storage m) {
        m = _members[memberId];
        if (m.role == Role.None) revert MemberRegistryUnknownMember(memberId);
    }

    function _requireActiveOperator(bytes32 memberId) private view {
        if (_operatorOf[msg.sender] != memberId) revert MemberRegistryNotOperator(msg.sender, memberId);
        if (_members[memberId].suspendedAt != 0) revert MemberRegistryAlreadySuspended(memberId);
    }

    function _addOperator(bytes32 memberId, address account) private {
        // an account acts for one institution only, so a revocation names its issuer unambiguously
        bytes32 current = _operatorOf[account];
        if (current != bytes32(0)) revert MemberRegistryOperatorTaken(account, current);
        _operatorOf[account] = memberId;
        emit OperatorAdded(memberId, account);
    }

    function _addKey(
        bytes32 memberId,
        bytes32 keyId,
        KeyAlgorithm algorithm,
        bytes calldata publicKey,
        uint64 validFrom,
        bytes calldata proof
    ) private {
        _member(memberId);
        // key ids are global so a signature's keyid names exactly one key, forever
        if (_keys[keyId].memberId != bytes32(0)) revert MemberRegistryKeyExists(keyId);
        // malformed keys would make every later verification fail in confusing ways
        bool okLength = (algorithm == KeyAlgorithm.Ed25519 && publicKey.length == 32)
            || (algorithm == KeyAlgorithm.EcdsaP256 && (publicKey.length == 33 || publicKey.length == 65));
        if (!okLength) revert MemberRegistryBadPublicKey(algorithm, publicKey.length);
        // the EVM has no Ed25519 (nor, before RIP-7212, P-256) check: the proof of possession is
        // stored and emitted here and verified off chain by the gateway, verifiers and monitors
        if (proof.length == 0) revert MemberRegistryMissingProof(keyId);
        _keys[keyId] = Key(memberId, algorithm, validFrom, 0, publicKey);
        _proofs[keyId] = proof;
        _memberKeys[memberId].push(keyId);
        emit KeyAdded(memberId, keyId, algorithm, validFrom);
        emit KeyProofOfPossession(memberId, keyId, msg.sender, publicKey, proof);
    }

    function _revokeKey(bytes32 memberId, bytes32 keyId, uint64 revokedAt) private {
        Key storage k = _keys[keyId];
        if (k.memberId == bytes32(0)) revert MemberRegistryUnknownKey(keyId);
        if (k.memberId != memberId) revert MemberRegistryKeyNotOfMember(keyId, memberId);
        // revocation is final; moving it would silently re-validate or invalidate signatures
        if (k.revokedAt != 0) revert MemberRegistryKeyAlreadyRevoked(keyId, k.revokedAt);
        if (revokedAt < k.validFrom) revert MemberRegistryRevocationBeforeValidity(keyId, k.validFrom, revokedAt);
        k.revokedAt = revokedAt;
        emit KeyRevoked(memberId, keyId, revokedAt);
        emit KeyRevokedBy(memberId, keyId, msg.sender);
    }
}
