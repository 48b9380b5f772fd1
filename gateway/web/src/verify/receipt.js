// The receipt file (gateway/core/receipt.py, claimx.receipt/1), parsed and shape-checked once.

const HEX32 = /^[0-9a-f]{64}$/;

export class Unreadable extends Error {}

function need(ok, where, what) {
  if (!ok) throw new Unreadable(`${where}: ${what}`);
}

function anchorRef(obj, where) {
  need(obj && typeof obj === "object" && !Array.isArray(obj), where, "must be an object");
  for (const f of ["head_index", "size", "block_number", "block_time"]) {
    need(Number.isSafeInteger(obj[f]) && obj[f] >= 0, `${where}.${f}`, "must be a whole number");
  }
  need(obj.size >= 1, `${where}.size`, "must be at least 1");
  need(HEX32.test(obj.root ?? ""), `${where}.root`, "must be 64 lowercase hex digits");
  need(HEX32.test(obj.tx_hash ?? ""), `${where}.tx_hash`, "must be 64 lowercase hex digits");
  return obj;
}

/** Parse receipt text; throws Unreadable saying where it is wrong. */
export function parseReceipt(text) {
  let obj;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new Unreadable(`not JSON (${err.message})`);
  }
  need(obj && typeof obj === "object" && !Array.isArray(obj), "receipt", "must be a JSON object");
  need(obj.version === "claimx.receipt/1", "version", "must be claimx.receipt/1");
  need(HEX32.test(obj.digest ?? ""), "digest", "must be 64 lowercase hex digits");
  need(obj.envelope && typeof obj.envelope === "object", "envelope", "must be an object");
  need(Number.isSafeInteger(obj.leaf_index) && obj.leaf_index >= 0, "leaf_index", "must be a whole number");
  anchorRef(obj.tree_head, "tree_head");
  anchorRef(obj.anchored_in, "anchored_in");
  need(Array.isArray(obj.inclusion_proof) && obj.inclusion_proof.length <= 64, "inclusion_proof",
    "must be a list of at most 64 hashes");
  obj.inclusion_proof.forEach((h, i) => need(HEX32.test(h), `inclusion_proof[${i}]`, "must be 64 hex digits"));
  return obj;
}
