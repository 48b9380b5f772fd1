"""Compile contracts/*.sol with the pinned npm solc through py-solc-x and write artifacts.

The EVM target is Paris: solc >= 0.8.20 would otherwise emit PUSH0 (Shanghai) and MCOPY
(Cancun), which a Hyperledger Besu QBFT network runs only if those forks were enabled in
its genesis. Artifacts are committed, so running claimx needs no compiler; ``--check``
recompiles and fails when the committed artifacts differ (CI and tests run it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import solcx

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
BUILD = CONTRACTS / "build"
SHIM = ROOT / "scripts" / "solc-shim"
EVM_VERSION = "paris"
DEPLOYABLE = ("MemberRegistry", "EvidenceLog", "NaiveDigestStore")
SAFE_PACKAGE = ROOT / "node_modules" / "@safe-global" / "safe-contracts"
SAFE_ARTIFACTS = {  # the council's multisig: Safe's own audited build (solc 0.7.6, no PUSH0)
    "SafeL2": "SafeL2.sol/SafeL2.json",
    "SafeProxyFactory": "proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
    "CompatibilityFallbackHandler":
        "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json",
}


def compile_all() -> dict[str, dict[str, Any]]:
    sources = {p.name: {"content": p.read_text()} for p in sorted(CONTRACTS.glob("*.sol"))}
    standard = {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": 200},
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object",
                                            "evm.deployedBytecode.object", "metadata"]}},
        },
    }
    out = solcx.compile_standard(standard, solc_binary=str(SHIM), allow_paths=[str(ROOT)])
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SystemExit("\n".join(e["formattedMessage"] for e in errors))
    version = _shim_version()
    artifacts = {}
    for source, contracts in out["contracts"].items():
        for name, c in contracts.items():
            if name not in DEPLOYABLE:
                continue
            artifacts[name] = {
                "contractName": name, "sourceName": source, "compiler": version,
                "evmVersion": EVM_VERSION, "abi": c["abi"],
                "bytecode": "0x" + c["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
                "metadata": json.loads(c["metadata"]),
            }
    return artifacts


def safe_artifacts() -> dict[str, dict[str, Any]]:
    """Copy Safe's published artifacts (ABI and bytecode, not recompiled) into contracts/build."""
    version = json.loads((SAFE_PACKAGE / "package.json").read_text())["version"]
    out = {}
    for name, rel in SAFE_ARTIFACTS.items():
        art = json.loads((SAFE_PACKAGE / "build" / "artifacts" / "contracts" / rel).read_text())
        out[name] = {"contractName": name, "sourceName": art["sourceName"],
                     "package": f"@safe-global/safe-contracts@{version}", "abi": art["abi"],
                     "bytecode": art["bytecode"], "deployedBytecode": art["deployedBytecode"]}
    return out


def _shim_version() -> str:
    import subprocess

    line = subprocess.run([str(SHIM), "--version"], capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    return line.removeprefix("Version: ")


def _render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if committed artifacts differ from a fresh compile")
    args = parser.parse_args()
    if not (ROOT / "node_modules" / "solc").exists():
        print("node_modules/solc missing: run `npm ci` first", file=sys.stderr)
        return 2
    artifacts = {**compile_all(), **safe_artifacts()}
    differing = []
    BUILD.mkdir(exist_ok=True)
    for name, artifact in artifacts.items():
        path = BUILD / f"{name}.json"
        text = _render(artifact)
        if args.check:
            if not path.exists() or path.read_text() != text:
                differing.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)} ({len(artifact['bytecode']) // 2 - 1} bytes)")
    if differing:
        print(f"committed artifacts differ from a fresh compile: {', '.join(differing)}; run "
              "`python scripts/compile_contracts.py` and commit contracts/build/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
