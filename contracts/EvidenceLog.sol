// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IEvidenceLog} from "./IEvidenceLog.sol";
import {IMemberRegistry} from "./IMemberRegistry.sol";
import {TreeHead} from "./Common.sol";

/// @title EvidenceLog
/// @notice See {IEvidenceLog}.
contract EvidenceLog is IEvidenceLog, AccessControl {
    bytes32 public constant ANCHOR_ROLE = keccak256("ANCHOR_ROLE");

    struct Revocation {
        uint64 at;
        uint16 reason;
    }

    IMemberRegistry private immutable _registry;
    // two storage slots per anchor and nothing else: sizes strictly grow, so a head is found by
    // binary search instead of a size => index mapping (saves a 22,100-gas slot per anchor)
    TreeHead[] private _heads;
    mapping(bytes32 => Revocation) private _revocations;

    /// @param admin the governing account (the council's Safe), which may grant ANCHOR_ROLE
    /// @param anchorer the exchange operator's account: anchoring cannot rewrite the log, the
    /// chain checks every new head's consistency proof
    constructor(IMemberRegistry memberRegistry, address admin, address anchorer) {
        _registry = memberRegistry;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHOR_ROLE, anchorer);
    }

    /// @inheritdoc IEvidenceLog
    function anchor(uint64 newSize, bytes32 newRoot, bytes32[] calldata consistencyProof)
        external
        onlyRole(ANCHOR_ROLE)
    {
        uint256 count = _heads.length;
        uint64 oldSize = count == 0 ? 0 : _heads[count - 1].size;
        // a head that does not grow the log adds nothing and could shadow an existing one
        if (newSize <= oldSize) revert EvidenceLogNotGrowing(oldSize, newSize);
        if (count == 0) {
            // the first head has nothing to be consistent with
            if (consistencyProof.length != 0) revert EvidenceLogProofForEmptyLog(consistencyProof.length);
        } else if (!_consistent(oldSize, newSize, _heads[count - 1].root, newRoot, consistencyProof)) {
            // append-only is enforced here, at write time
            revert EvidenceLogNotConsistent(oldSize, newSize);
        }
        _heads.push(TreeHead(newRoot, newSize, uint64(block.timestamp), uint64(block.number)));
        emit Anchored(count, newSize, newRoot, msg.sender);
    }

    /// @inheritdoc IEvidenceLog
    function revokeRecord(bytes32 memberId, bytes32 digest, uint16 reason) external {
        // only the issuer's own operators may withdraw its evidence
        if (!_registry.isOperator(memberId, msg.sender)) revert EvidenceLogNotIssuerOperator(msg.sender, memberId);
        // a suspended member cannot act, including revoking
        if (!_registry.isActive(memberId)) revert EvidenceLogMemberInactive(memberId);
        bytes32 slot = keccak256(abi.encode(digest, memberId));
        // revocation is final and keeps its first time and reason
        if (_revocations[slot].at != 0) revert EvidenceLogAlreadyRevoked(digest, memberId);
        _revocations[slot] = Revocation(uint64(block.timestamp), reason);
        emit RecordRevoked(digest, memberId, reason, msg.sender);
    }

    /// @inheritdoc IEvidenceLog
    function revocationOf(bytes32 digest, bytes32 memberId)
        external
        view
        returns (bool revoked, uint16 reason, uint64 at)
    {
        Revocation storage r = _revocations[keccak256(abi.encode(digest, memberId))];
        return (r.at != 0, r.reason, r.at);
    }

    /// @inheritdoc IEvidenceLog
    function headCount() external view returns (uint256) {
        return _heads.length;
    }

    /// @inheritdoc IEvidenceLog
    function headAt(uint256 index) external view returns (TreeHead memory) {
        if (index >= _heads.length) revert EvidenceLogUnknownHead(index);
        return _heads[index];
    }

    /// @inheritdoc IEvidenceLog
    function latestHead() external view returns (TreeHead memory head) {
        if (_heads.length != 0) head = _heads[_heads.length - 1];
    }

    /// @inheritdoc IEvidenceLog
    function headIndexOfSize(uint64 size) external view returns (uint256) {
        uint256 lo = 0;
        uint256 hi = _heads.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            uint64 midSize = _heads[mid].size;
            if (midSize == size) return mid;
            if (midSize < size) lo = mid + 1;
            else hi = mid;
        }
        // only sizes that were anchored have a head; proofs against others cannot be checked
        revert EvidenceLogUnknownSize(size);
    }

    /// @inheritdoc IEvidenceLog
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IEvidenceLog
    function verifyConsistency(uint64 size1, uint64 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return _consistent(size1, size2, root1, root2, proof);
    }

    function _consistent(uint64 size1, uint64 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        private
        pure
        returns (bool)
    {
        if (size1 > size2) return false;
        if (size1 == size2) return proof.length == 0 && root1 == root2;
        if (size1 == 0) return proof.length == 0 && root1 == sha256("");
        if (proof.length == 0) return false;
        // RFC 9162 2.1.4.2; when size1 is a power of two its root is the implicit first node
        bool pow2 = size1 & (size1 - 1) == 0;
        uint256 i = pow2 ? 0 : 1;
        bytes32 fr = pow2 ? root1 : proof[0];
        bytes32 sr = fr;
        uint64 fn = size1 - 1;
        uint64 sn = size2 - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        for (; i < proof.length; i++) {
            if (sn == 0) return false;
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = _node(c, fr);
                sr = _node(c, sr);
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = _node(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && fr == root1 && sr == root2;
    }

    function _node(bytes32 left, bytes32 right) private pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }
}
