// Registry keys in WebCrypto: Ed25519 (32 raw bytes) and ECDSA P-256 (33-byte compressed
// SEC1 point on chain), key ids (SHA-256 of the SubjectPublicKeyInfo DER, as gateway/core/keys.py),
// and DSSE's pre-authentication encoding.
import { concat, sha256, utf8 } from "./bytes.js";

export const ED25519 = 1;
export const ECDSA_P256 = 2;
export const ALGORITHM_NAMES = { [ED25519]: "ED25519", [ECDSA_P256]: "ECDSA_P256" };

const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

function modPow(base, exp, mod) {
  let result = 1n;
  base %= mod;
  while (exp > 0n) {
    if (exp & 1n) result = (result * base) % mod;
    base = (base * base) % mod;
    exp >>= 1n;
  }
  return result;
}

const toBig = (bytes) => bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
function toBytes(n, len) {
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

/** The uncompressed point (0x04 || x || y) of a compressed P-256 key: y = sqrt(x^3 - 3x + b). */
export function decompressP256(raw) {
  if (raw.length === 65 && raw[0] === 4) return raw;
  if (raw.length !== 33 || (raw[0] !== 2 && raw[0] !== 3)) throw new Error("malformed ECDSA_P256 public key");
  const x = toBig(raw.slice(1));
  const rhs = (((x * x * x - 3n * x + B) % P) + P) % P;
  let y = modPow(rhs, (P + 1n) / 4n, P);
  if ((y * y) % P !== rhs) throw new Error("malformed ECDSA_P256 public key: not on the curve");
  if ((y & 1n) !== BigInt(raw[0] & 1)) y = P - y;
  return concat(Uint8Array.of(4), raw.slice(1), toBytes(y, 32));
}

/** Import a key as the registry holds it; returns {key, keyId, name}. */
export async function importRegistryKey(algorithm, raw) {
  let params;
  let bytes = raw;
  if (algorithm === ED25519) {
    if (raw.length !== 32) throw new Error("malformed ED25519 public key");
    params = { name: "Ed25519" };
  } else if (algorithm === ECDSA_P256) {
    bytes = decompressP256(raw);
    params = { name: "ECDSA", namedCurve: "P-256" };
  } else {
    throw new Error(`unsupported key algorithm ${algorithm}`);
  }
  const key = await crypto.subtle.importKey("raw", bytes, params, true, ["verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", key));
  return { key, keyId: await sha256(spki), name: ALGORITHM_NAMES[algorithm] };
}

/** DSSE v1 pre-authentication encoding. */
export function pae(payloadType, payload) {
  const t = utf8(payloadType);
  return concat(utf8(`DSSEv1 ${t.length} `), t, utf8(` ${payload.length} `), payload);
}

/** An ECDSA signature as WebCrypto takes it (r || s, 64 bytes) from DER or from r || s. */
export function ecdsaRaw(sig) {
  try {
    return derToRaw(sig);
  } catch (err) {
    if (sig.length === 64) return sig;
    throw err;
  }
}

function derToRaw(sig) {
  if (sig[0] !== 0x30 || sig[1] !== sig.length - 2) throw new Error("signature is not DER");
  let at = 2;
  const ints = [];
  for (let i = 0; i < 2; i++) {
    if (sig[at] !== 0x02) throw new Error("signature is not DER");
    const len = sig[at + 1];
    let value = sig.slice(at + 2, at + 2 + len);
    at += 2 + len;
    while (value.length > 32 && value[0] === 0) value = value.slice(1);
    if (value.length > 32) throw new Error("signature is not DER");
    ints.push(concat(new Uint8Array(32 - value.length), value));
  }
  if (at !== sig.length) throw new Error("signature is not DER");
  return concat(...ints);
}

/** True when ``sig`` is a valid signature by ``imported`` over ``message``. */
export async function verifySignature(imported, sig, message) {
  if (imported.name === "ED25519") {
    return crypto.subtle.verify({ name: "Ed25519" }, imported.key, sig, message);
  }
  return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, imported.key, ecdsaRaw(sig), message);
}
