"""Write tests/assets/merkle_vectors.json: RFC 6962/9162 vectors checked by Python and Solidity.

The Certificate Transparency reference entries, roots and proofs are copied from the
public CT test suites; the rest are generated over those entries and mutated into invalid
cases. ``tests/test_merkle.py`` re-derives the generated valid ones with ``pymerkle``, an
independent implementation, so the file is not merely our code agreeing with itself.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.core.merkle import MemoryTree, root_hash

OUT = Path(__file__).resolve().parents[1] / "tests" / "assets" / "merkle_vectors.json"

CT_ENTRIES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = {
    "0": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "1": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "2": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "3": "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "4": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "5": "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "6": "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "7": "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "8": "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
CT_INCLUSION = [
    {"index": 0, "size": 8, "proof": [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]},
    {"index": 5, "size": 8, "proof": [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]},
]
CT_CONSISTENCY = [
    {"size1": 2, "size2": 8, "proof": [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]},
    {"size1": 6, "size2": 8, "proof": [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]},
]
GENERATED_SIZE = 21


def _flip(h: str) -> str:
    b = bytearray.fromhex(h)
    b[0] ^= 0x01
    return b.hex()


def _consistency(tree: MemoryTree) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for c in CT_CONSISTENCY:
        s1, s2 = int(c["size1"]), int(c["size2"])  # type: ignore[call-overload]
        out.append({**c, "root1": CT_ROOTS[str(s1)], "root2": CT_ROOTS[str(s2)], "valid": True,
                    "why": "Certificate Transparency reference proof"})
    for s2 in range(1, GENERATED_SIZE + 1):
        for s1 in range(1, s2):
            proof = [p.hex() for p in tree.consistency_proof(s1, s2)]
            r1, r2 = tree.root(s1).hex(), tree.root(s2).hex()
            base = {"size1": s1, "size2": s2, "root1": r1, "root2": r2}
            out.append({**base, "proof": proof, "valid": True, "why": "generated"})
            if (s1 * 7 + s2) % 5:  # keep the file small: mutate a fifth of the pairs
                continue
            out.append({**base, "proof": [_flip(proof[0]), *proof[1:]], "valid": False,
                        "why": "first proof hash altered"})
            out.append({**base, "proof": proof[:-1], "valid": False, "why": "truncated"})
            out.append({**base, "proof": [*proof, "ab" * 32], "valid": False, "why": "extended"})
            out.append({**base, "root2": _flip(r2), "proof": proof, "valid": False,
                        "why": "new root altered (a rewritten log)"})
            out.append({**base, "root1": _flip(r1), "proof": proof, "valid": False,
                        "why": "old root altered"})
            out.append({"size1": s2, "size2": s1, "root1": r2, "root2": r1, "proof": proof,
                        "valid": False, "why": "sizes swapped (a shrinking log)"})
    return out


def _inclusion(tree: MemoryTree) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for c in CT_INCLUSION:
        out.append({**c, "leaf_hash": tree.read(0, int(c["index"])).hex(),  # type: ignore[call-overload]
                    "root": CT_ROOTS[str(c["size"])], "valid": True,
                    "why": "Certificate Transparency reference proof"})
    for size in range(1, GENERATED_SIZE + 1):
        for index in range(size):
            proof = [p.hex() for p in tree.inclusion_proof(index, size)]
            base = {"index": index, "size": size, "leaf_hash": tree.read(0, index).hex(),
                    "root": tree.root(size).hex()}
            out.append({**base, "proof": proof, "valid": True, "why": "generated"})
            if proof and (index * 3 + size) % 4 == 0:
                out.append({**base, "proof": [_flip(proof[0]), *proof[1:]], "valid": False,
                            "why": "first proof hash altered"})
                out.append({**base, "index": (index + 1) % size, "proof": proof,
                            "valid": (index + 1) % size == index, "why": "wrong index"})
    return out


def main() -> None:
    tree = MemoryTree()
    entries = [bytes.fromhex(e) for e in CT_ENTRIES]
    for i in range(GENERATED_SIZE):
        # beyond the 8 CT entries, extend with deterministic 32-byte "digests"
        tree.append(entries[i] if i < len(entries) else bytes([i]) * 32)
    assert tree.root(8).hex() == CT_ROOTS["8"] == root_hash(entries).hex()
    doc = {
        "description": "RFC 6962/9162 Merkle vectors; entries beyond index 7 are bytes([i])*32",
        "entries": [e.hex() for e in entries] + [(bytes([i]) * 32).hex()
                                                  for i in range(len(entries), GENERATED_SIZE)],
        "roots": {str(n): (tree.root(n).hex() if n else CT_ROOTS["0"])
                  for n in range(GENERATED_SIZE + 1)},
        "inclusion": _inclusion(tree),
        "consistency": _consistency(tree),
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({len(doc['inclusion'])} inclusion, "  # type: ignore[arg-type]
          f"{len(doc['consistency'])} consistency vectors)")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
