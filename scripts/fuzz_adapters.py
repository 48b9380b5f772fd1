"""Long mutation fuzzing of every adapter on every test fixture: only AdapterError may escape.

The hypothesis property tests (tests/adapters/test_properties.py) run a few hundred cases in
the suite; this runs hundreds of thousands for as long as you give it, with byte-level
mutations (deletions, format tokens such as ``|^~&{}<>``, random bytes, duplicated slices).
Each distinct crash (exception type and place) is saved for a regression test:

    python scripts/fuzz_adapters.py --seconds 300 --seed 7 --out /tmp/claimx-fuzz

Exits 1 if anything but AdapterError escaped. OCR is switched off (it is slow, not fuzzed here).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import traceback
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "tests" / "assets"
SUFFIXES = (".hl7", ".json", ".xml", ".csv")
TOKENS = [b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"{", b"}", b"[", b"]", b'"', b",", b":",
          b"<", b">", b"/", b"0", b"-1", b"1e999", b"null", b"true", b"\xff", b"\x00",
          "中".encode(), b"<!--", b"]]>", b"&amp;", b"9" * 30]


def mutate(raw: bytes, rng: random.Random) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.randint(1, 6)):
        op, i = rng.random(), rng.randrange(len(b) + 1)
        if op < 0.3 and b:
            del b[i:i + rng.randint(1, 20)]
        elif op < 0.6:
            b[i:i] = rng.choice(TOKENS)
        elif op < 0.8 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        else:
            j, k = sorted((rng.randrange(len(b) + 1), rng.randrange(len(b) + 1)))
            b[i:i] = b[j:k][:200]
    return bytes(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long to run")
    parser.add_argument("--seed", type=int, default=1, help="random seed (runs are repeatable)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"),
                        help="folder for the inputs that crashed")
    args = parser.parse_args()
    os.environ.setdefault("CLAIMX_OCR", "off")
    from adapters import adapt_bytes, detect_format
    from adapters.registry import AdapterContext
    from gateway.core.errors import AdapterError

    ctx = AdapterContext(issuer="0x" + "ab" * 32, file="fuzz", pseudonym_key=bytes(32))
    seeds = []
    for path in sorted(p for p in ASSETS.rglob("*") if p.suffix in SUFFIXES):
        try:
            seeds.append((path, path.read_bytes(), detect_format(path.read_bytes())))
        except AdapterError:
            continue  # a fixture that is meant to be refused
    rng = random.Random(args.seed)
    seen: set[tuple[str, str, int]] = set()
    runs, deadline = 0, time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        path, original, fmt = rng.choice(seeds)
        raw = mutate(original, rng)
        runs += 1
        try:
            adapt_bytes(raw, fmt if rng.random() < 0.8 else "auto", ctx)
        except AdapterError:
            pass
        except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            key = (type(exc).__name__, frame.filename, frame.lineno or 0)
            if key not in seen:
                seen.add(key)
                args.out.mkdir(parents=True, exist_ok=True)
                saved = args.out / f"crash_{len(seen)}{path.suffix}"
                saved.write_bytes(raw)
                print(f"CRASH from {path.name}: {type(exc).__name__} at "
                      f"{Path(frame.filename).name}:{frame.lineno}, input {saved}", flush=True)
        if runs % 50000 == 0:
            print(f"{runs} runs, {len(seen)} distinct crashes", flush=True)
    print(f"{runs} runs over {len(seeds)} fixtures, {len(seen)} distinct crashes")
    return 1 if seen else 0


if __name__ == "__main__":
    sys.exit(main())
