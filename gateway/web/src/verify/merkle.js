// RFC 9162 Merkle hashing and inclusion proofs, as gateway/core/merkle.py checks them.
import { concat, equal, hex, sha256 } from "./bytes.js";

export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

/** Resolves when ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``; throws why not. */
export async function verifyInclusion(leaf, index, size, proof, root) {
  if (!(index >= 0 && index < size)) throw new Error(`leaf index ${index} is outside a tree of size ${size}`);
  let fn = BigInt(index), sn = BigInt(size - 1), r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error(`inclusion proof too long: expected fewer than ${proof.length} hashes`);
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error(`inclusion proof too short: ${proof.length} hashes`);
  if (!equal(r, root)) throw new Error(`root mismatch: expected ${hex(root)}, got ${hex(r)}`);
}
