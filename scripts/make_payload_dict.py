"""Make a preset dictionary for payload compression at rest (gateway/store/payload_codec.py).

Packets are small (about 1 KB) and share most of their structure (field names, kinds, code
systems), which plain deflate cannot exploit within one record; a preset dictionary of
typical packets lets each record be compressed on its own (so erasing one stays possible)
at about a third of its size. The dictionary is made from the canonical packets the
adapters produce from the public examples in tests/assets, never from the benchmark's
invoices. A committed dictionary is frozen: records compressed with it name its version,
so a new one is written as the next version (``--version 2``) and the old one kept.

    python scripts/make_payload_dict.py --version 1 --size 4096
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters import adapt_bytes  # noqa: E402
from adapters.registry import AdapterContext  # noqa: E402
from gateway.core.canonical import canonical_bytes  # noqa: E402
from gateway.core.errors import ClaimxError  # noqa: E402


def corpus() -> list[bytes]:
    """Canonical packets of every adaptable public example, in path order."""
    ctx = AdapterContext(issuer="0x" + "11" * 32, subject="22" * 32)
    packets: list[bytes] = []
    for f in sorted((ROOT / "tests" / "assets").rglob("*")):
        if not f.is_file() or f.name.lower().startswith("readme"):
            continue
        try:
            found = adapt_bytes(f.read_bytes(), "auto", ctx)
        except ClaimxError:
            continue  # refused examples (unsafe or unmappable) teach nothing here
        packets += [canonical_bytes(p.model_dump(mode="json", exclude_none=True))
                    for p in found]
    return packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--size", type=int, default=4096, help="dictionary bytes (max 32768)")
    a = parser.parse_args()
    packets = corpus()[::2]  # every second packet trains; the others measure (see the test)
    # One packet of each kind, each cut to an equal share: measured on the held-out half,
    # this beats the last SIZE bytes of all of them (which favour whichever kind came last).
    by_kind: dict[str, bytes] = {}
    for p in packets:
        by_kind.setdefault(json.loads(p)["kind"], p)
    share = a.size // len(by_kind)
    data = b"".join(p[:share] for p in by_kind.values())[-a.size:]
    out = ROOT / "gateway" / "store" / "payload_dicts" / f"v{a.version}.bin"
    if out.exists():
        raise SystemExit(f"{out} exists and is frozen: records depend on it; use another --version")
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(data)
    print(f"{out}: {len(data)} bytes from {len(packets[::2])} packets, "
          f"sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
