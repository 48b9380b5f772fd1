// Byte helpers: hex, base64 (standard and URL-safe), UTF-8, SHA-256 through WebCrypto.

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  const clean = text.startsWith("0x") ? text.slice(2) : text;
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error("not hex");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Base64 as DSSE writes it; the URL-safe alphabet is accepted too, as by the gateway. */
export function fromBase64(text) {
  if (typeof text !== "string" || text === "") throw new Error("not a non-empty base64 string");
  let std = text.replace(/-/g, "+").replace(/_/g, "/");
  if (/[-_]/.test(text)) std += "=".repeat((4 - (std.length % 4)) % 4);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(std) || std.length % 4 !== 0) throw new Error("not valid base64");
  const bin = atob(std);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export const utf8 = (text) => new TextEncoder().encode(text);

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
