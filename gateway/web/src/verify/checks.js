// The checks of `claimx verify` (gateway/verify/receipt.py), in its order and with its names,
// run against the chain alone. Each returns a detail string or throws why it failed.
import canonicalize from "canonicalize";
import { equal, fromBase64, fromHex, hex, sha256 } from "./bytes.js";
import { ALGORITHM_NAMES, importRegistryKey, pae, verifySignature } from "./keys.js";
import { leafHash, verifyInclusion } from "./merkle.js";

export const PAYLOAD_TYPE = "application/vnd.claimx.packet+json";
const KEY_STATUS = ["valid", "unknown_member", "member_suspended", "unknown_key", "not_yet_valid", "revoked"];
const HEX32 = /^(0x)?[0-9a-fA-F]{64}$/;

async function envelopeAndDigest(ctx) {
  const env = ctx.receipt.envelope;
  if (env.payloadType !== PAYLOAD_TYPE) throw new Error(`payloadType must be ${PAYLOAD_TYPE}`);
  const payload = fromBase64(env.payload);
  if (!Array.isArray(env.signatures) || env.signatures.length < 1 || env.signatures.length > 4) {
    throw new Error("signatures must be a list of 1 to 4");
  }
  ctx.signatures = env.signatures.map((s, i) => {
    if (!s || typeof s.keyid !== "string" || !HEX32.test(s.keyid)) throw new Error(`signature ${i}: keyid must be 32 bytes of hex`);
    return { keyid: fromHex(s.keyid), sig: fromBase64(s.sig) };
  });
  const digest = hex(await sha256(payload));
  if (digest !== ctx.receipt.digest) {
    throw new Error(`digest mismatch: receipt says ${ctx.receipt.digest}, payload hashes to ${digest}`);
  }
  let text, packet;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
    packet = JSON.parse(text);
  } catch (err) {
    throw new Error(`payload is not JSON: ${err.message}`);
  }
  if (canonicalize(packet) !== text) throw new Error("payload is not in RFC 8785 canonical form");
  if (!packet || typeof packet.kind !== "string" || !HEX32.test(packet.issuer ?? "")) {
    throw new Error("payload is not a claim packet (kind and issuer)");
  }
  Object.assign(ctx, { payload, packet, issuer: `0x${packet.issuer.replace(/^0x/, "")}` });
  return `payload is canonical; SHA-256 = ${digest} (${packet.kind})`;
}

async function treeHead(ctx) {
  const claimed = ctx.receipt.tree_head;
  const head = await ctx.chain.headOfSize(claimed.size, claimed.root);
  ctx.head = head;
  const moved = head.index === claimed.head_index ? "" : ` (the receipt says #${claimed.head_index})`;
  return `head #${head.index} on chain${moved}: size ${head.size}, root ${head.root.slice(0, 16)}…`;
}

async function inclusion(ctx) {
  const r = ctx.receipt;
  const proof = r.inclusion_proof.map(fromHex);
  await verifyInclusion(await leafHash(fromHex(r.digest)), r.leaf_index, ctx.head.size, proof, fromHex(ctx.head.root));
  return `leaf ${r.leaf_index} of ${ctx.head.size} (${proof.length} hashes) reaches the chain's root`;
}

async function anchoringTransaction(ctx) {
  const r = ctx.receipt;
  const first = await ctx.chain.headOfSize(r.anchored_in.size, r.anchored_in.root);
  if (first.size <= r.leaf_index) throw new Error(`head #${first.index} has size ${first.size}: it cannot hold leaf ${r.leaf_index}`);
  if (first.index > 0 && (await ctx.chain.headAt(first.index - 1)).size > r.leaf_index) {
    throw new Error("an earlier head already held the leaf: receipt names the wrong first head");
  }
  const tx = await ctx.chain.anchorTx(first); // the chain's, never the receipt's
  const stale = tx === r.anchored_in.tx_hash ? "" :
    ` (the receipt's tx ${r.anchored_in.tx_hash.slice(0, 16)}… is not on this chain: the head was anchored again)`;
  ctx.anchoredAt = first.timestamp;
  return `first anchored in head #${first.index}, block ${first.block}, time ${first.timestamp}, tx ${tx.slice(0, 16)}…${stale}`;
}

async function issuerSignature(ctx) {
  const reasons = [];
  const message = pae(PAYLOAD_TYPE, ctx.payload);
  for (const s of ctx.signatures) {
    const kid = `0x${hex(s.keyid)}`;
    const state = await ctx.chain.keyStatusAt(ctx.issuer, kid, ctx.anchoredAt);
    if (state.status !== 0) {
      reasons.push(`key ${hex(s.keyid).slice(0, 16)}…: ${KEY_STATUS[state.status] ?? state.status}`);
      continue;
    }
    const key = await importRegistryKey(state.algorithm, fromHex(state.publicKey));
    if (!equal(key.keyId, s.keyid)) {
      reasons.push("registered key does not hash to its key id");
      continue;
    }
    if (!(await verifySignature(key, s.sig, message))) {
      throw new Error("signature does not verify with the registered key");
    }
    return `signed by key ${hex(s.keyid).slice(0, 16)}… (${ALGORITHM_NAMES[state.algorithm]}), valid for the issuer at anchoring time`;
  }
  throw new Error(`no valid signature: ${reasons.join("; ")}`);
}

async function notRevoked(ctx) {
  const rev = await ctx.chain.revocationOf(`0x${ctx.receipt.digest}`, ctx.issuer);
  if (rev) throw new Error(`revoked by its issuer at ${rev.at}, reason code ${rev.reason}`);
  return "no revocation by the issuer on chain";
}

export const CHECKS = [
  ["envelope and digest", envelopeAndDigest],
  ["tree head on chain", treeHead],
  ["inclusion proof", inclusion],
  ["anchoring transaction", anchoringTransaction],
  ["issuer signature", issuerSignature],
  ["not revoked", notRevoked],
];
