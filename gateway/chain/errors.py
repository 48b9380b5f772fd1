"""Decoding revert data into readable :class:`ChainError`s.

web3.py and eth-tester hand back only the raw revert bytes of a custom error (and
eth-tester only inside its message text), so the selector is looked up in our ABIs here.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from gateway.core.errors import ChainError

_TESTER_REVERT = re.compile(r"execution reverted: (b'.*'|b\".*\")$", re.S)
_HEX = re.compile(r"0x[0-9a-fA-F]{8,}")
_BUILTIN = {
    bytes.fromhex("08c379a0"): ("Error", ["string"], ["message"]),
    bytes.fromhex("4e487b71"): ("Panic", ["uint256"], ["code"]),
}


class ErrorDecoder:
    def __init__(self, abis: list[list[dict[str, Any]]]) -> None:
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = dict(_BUILTIN)
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in item["inputs"]]
                sig = f"{item['name']}({','.join(types)})"
                self.errors[keccak(text=sig)[:4]] = (item["name"], types,
                                                     [i["name"] for i in item["inputs"]])

    def decode(self, data: bytes) -> ChainError | None:
        entry = self.errors.get(data[:4])
        if entry is None:
            return None
        name, types, names = entry
        try:
            values = decode(types, data[4:])
        except Exception:  # noqa: BLE001 - malformed revert data: report the selector
            return ChainError(f"{name}(undecodable arguments)", name=name)
        shown = ", ".join(f"{n}={_show(v)}" for n, v in zip(names, values, strict=True))
        return ChainError(f"{name}({shown})", name=name, args=tuple(values),
                          code="contract_error")


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in inp["components"])
        return f"({inner}){inp['type'][5:]}"
    return str(inp["type"])


def _show(v: Any) -> str:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    return str(v)


def revert_data(exc: BaseException) -> bytes | None:
    """Dig the raw revert bytes out of whatever web3 / eth-tester raised."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, str) and inner.startswith("0x"):
            return bytes.fromhex(inner[2:])
    text = str(exc.args[0]) if exc.args else str(exc)
    m = _TESTER_REVERT.search(text)
    if m:
        try:
            value = ast.literal_eval(m.group(1))
            return value if isinstance(value, bytes) else None
        except (ValueError, SyntaxError):
            return None
    m = _HEX.search(text)
    return bytes.fromhex(m.group(0)[2:]) if m and len(m.group(0)) % 2 == 0 else None


def as_chain_error(exc: BaseException, decoder: ErrorDecoder,
                   hint: str | None = None) -> ChainError:
    """Turn any exception from the chain stack into a ChainError with a decoded name."""
    if isinstance(exc, ChainError):
        return exc
    data = revert_data(exc)
    if data:
        decoded = decoder.decode(data)
        if decoded is not None:
            return decoded
    text = str(exc)
    if hint or "Connection" in type(exc).__name__ or "connect" in text.lower():
        return ChainError(hint or f"chain unreachable: {text}", code="chain_unreachable")
    return ChainError(f"chain call failed: {type(exc).__name__}: {text[:300]}")
