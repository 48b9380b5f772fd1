"""How deeply a JSON document nests, measured before anyone parses it.

py_ecc (imported under web3 and py-evm) raises the interpreter's recursion limit to 100,000,
so ``json.loads``' C scanner no longer stops a hostile document at depth ~1,000: it recurses
until the C stack overflows and the process dies (one 200 KB request of ``[`` was enough to
kill a gateway, and a file to kill ``claimx adapt``). Every untrusted JSON input is measured
with :func:`json_depth` first and refused when too deep. Written here because the standard
library offers no depth limit and the limit must hold before the recursive parser starts.
"""

from __future__ import annotations

from itertools import accumulate

_KEEP = b'[]{}"'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def json_depth(raw: bytes | str) -> int:
    """The deepest bracket nesting outside strings (0 for a scalar). Linear and in C-speed
    steps: escaped backslashes and quotes go first, then everything but brackets and quotes,
    then the quoted stretches. Malformed input gets a number too; the parser then reports
    what is wrong with it."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    marks = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    return depth_of(b"".join(marks.split(b'"')[::2]))


def outside_strings(data: bytes) -> bytes:
    """The JSON text outside its string literals (structure, numbers, literals), in C-speed
    steps: escaped backslashes and quotes go first, then the quoted stretches."""
    return b"".join(data.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])


def depth_of(outside: bytes) -> int:
    """The deepest bracket nesting of text already outside strings (see outside_strings)."""
    brackets = outside.translate(None, _DROP)
    if not brackets:
        return 0
    return max(accumulate(map(_STEP.__getitem__, brackets)))
