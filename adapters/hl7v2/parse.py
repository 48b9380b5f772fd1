"""HL7 v2 ER7 ("pipe") encoding: character sets, segments, separators and escape sequences.

Implements HL7 v2.3-2.8 chapter 2 encoding rules: MSH-1/MSH-2 declare the separators (custom
ones included), segments end in ``\\r`` (``\\n`` and ``\\r\\n`` are accepted, as interfaces
written to files use them), MSH-18 names the character set, and escape sequences (section
2.7) are decoded per leaf value. python-hl7 splits each message into its
field/repetition/component tree; this module turns its ragged tree into a uniform one, decodes
escapes itself (python-hl7's ``unescape`` logs whole field values, i.e. patient data, and reads
``\\X..\\`` bytes as Latin-1 code points) and locates every problem by segment number.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import hl7

from gateway.core.errors import AdapterError

Tree = list[list[list[str]]]
"""One field: repetitions -> components -> subcomponents, each leaf still escaped."""

_CHARSETS = {
    "ASCII": "utf-8", "UNICODEUTF-8": "utf-8", "UTF-8": "utf-8", "UTF8": "utf-8",
    "UNICODE": "utf-8", "GB18030-2000": "gb18030", "GB18030": "gb18030", "GBK": "gbk",
    "GB2312": "gbk", "CNS11643-1992": "big5", "BIG-5": "big5", "BIG5": "big5",
    "KSX1001": "euc_kr", "ISOIR87": "iso2022_jp", "ISOIR6": "ascii",
    "CP1252": "cp1252", "WINDOWS1252": "cp1252", "LATIN1": "iso8859_1", "8859": "iso8859_1",
    **{f"8859/{n}": f"iso8859_{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
    **{f"ISO8859{n}": f"iso8859_{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
}
"""MSH-18 values (HL7 table 0211 plus common vendor spellings such as ``CP1252`` and
``ISO-8859-1``) -> Python codecs. ASCII is read as UTF-8, its superset, because senders that
declare ASCII often send UTF-8 text."""

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_ENVELOPE = ("FHS", "BHS", "BTS", "FTS")
_FORMATTING = {".br": "\n", ".sp": "\n", ".ce": "\n", ".fi": "", ".nf": "", ".in": "",
               ".ti": "", ".sk": " "}
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


@dataclass(frozen=True)
class Encoding:
    """The separators and character set a message declared."""

    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str
    truncation: str
    codec: str


@dataclass(frozen=True)
class Segment:
    """One segment, fields numbered as in the standard (MSH-1 is the field separator)."""

    name: str
    line: int
    fields: tuple[Tree, ...]
    enc: Encoding

    def tree(self, field: int) -> Tree:
        return self.fields[field] if 0 < field < len(self.fields) else []

    def repetitions(self, field: int) -> int:
        """How many repetitions carry data (HL7 ``""`` nulls count as empty)."""
        tree = self.tree(field)
        return 0 if all(not _has_data(rep) for rep in tree) else len(tree)

    def raw(self, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        tree = self.tree(field)
        try:
            value = tree[rep - 1][comp - 1][sub - 1]
        except IndexError:
            return ""
        return "" if value == '""' else value

    def text(self, field: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """The unescaped, trimmed value at that position ('' when absent)."""
        value = self.raw(field, rep, comp, sub)
        if self.enc.escape in value:
            value = unescape(value, self.enc, self.where(field, rep, comp), self.line)
        return value.strip()

    def components(self, field: int, rep: int = 1) -> int:
        tree = self.tree(field)
        return len(tree[rep - 1]) if 0 < rep <= len(tree) else 0

    def where(self, field: int, rep: int | None = None,
              comp: int | None = None) -> tuple[str | int, ...]:
        """Location (segment, field[, repetition[, component]]) for errors."""
        loc: tuple[str | int, ...] = (self.name, field)
        if rep is not None:
            loc += (rep,)
            if comp is not None:
                loc += (comp,)
        return loc

    def error(self, msg: str, code: str, field: int, rep: int | None = None,
              comp: int | None = None) -> AdapterError:
        return AdapterError(msg, code=code, loc=self.where(field, rep, comp), line=self.line)


def _has_data(rep: list[list[str]]) -> bool:
    return any(leaf not in ("", '""') for comp in rep for leaf in comp)


def decode(raw: bytes) -> tuple[str, str]:
    """Text of the input and the codec used: strips MLLP framing and a UTF-8 BOM, honours MSH-18."""
    data = raw.lstrip(b"\x0b")
    bom = data.startswith(codecs.BOM_UTF8)
    if bom:
        data = data[len(codecs.BOM_UTF8):]
    data = data.lstrip(b" \t\r\n\x0b").rstrip(b" \t\r\n\x1c")
    if not data.startswith((b"MSH", b"FHS", b"BHS")):
        raise AdapterError("input does not start with an MSH segment", code="not_hl7",
                           loc=("MSH",), line=1)
    codec = "utf-8" if bom else _declared_codec(data)
    try:
        return data.decode(codec), codec
    except UnicodeDecodeError as exc:
        line = 1 + len(re.findall(rb"\r\n|\r|\n", data[: exc.start]))
        raise AdapterError(f"bytes are not valid {codec} as MSH-18 declares (or UTF-8 if absent)",
                           code="bad_encoding", loc=("MSH", 18), line=line) from exc


def _declared_codec(data: bytes) -> str:
    """MSH-18 of the first message, read before decoding (separators are ASCII in every codec)."""
    found = re.search(rb"(?:^|[\r\n])(MSH[^\r\n]{5,})", data)
    if found is None:
        return "utf-8"
    header = found.group(1).decode("latin-1")
    sep = header[3]
    fields = header.split(sep)
    if len(fields) < 18:
        return "utf-8"
    rep_sep = fields[1][1:2] or "~"
    declared = fields[17].split(rep_sep)[0].strip().upper().replace(" ", "").replace("_", "")
    if not declared:
        return "utf-8"
    codec = _CHARSETS.get(declared) or _CHARSETS.get(declared.replace("-", ""))
    if codec is None:
        raise AdapterError("MSH-18 names a character set this adapter does not read",
                           code="unsupported_charset", loc=("MSH", 18),
                           line=1 + len(re.findall(rb"\r\n|\r|\n", data[: found.start(1)])))
    return codec


def split_messages(text: str, codec: str) -> list[list[Segment]]:
    """Every message in the input (batch and file envelopes skipped), as located segments."""
    groups: list[list[tuple[int, str]]] = []
    for number, seg in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        seg = seg.strip("\t\x0b\x1c ") if not seg.startswith("MSH") else seg.rstrip()
        if not seg or seg[:3] in _ENVELOPE:
            continue
        if seg.startswith("MSH"):
            groups.append([])
        elif not groups:
            raise AdapterError("segment before the first MSH", code="missing_msh",
                               loc=(seg[:3],), line=number)
        groups[-1].append((number, seg))
    if not groups:
        raise AdapterError("no MSH segment", code="missing_msh", loc=("MSH",), line=1)
    return [_parse_message(group, codec) for group in groups]


def _parse_message(group: list[tuple[int, str]], codec: str) -> list[Segment]:
    group[0] = (group[0][0], _undouble_escape(group[0][1]))
    enc = _encoding(group[0][1], group[0][0], codec)
    for number, seg in group[1:]:
        if not _SEGMENT_ID.match(seg[:3]) or (len(seg) > 3 and seg[3] != enc.field):
            raise AdapterError("segment does not start with a 3-character segment ID",
                               code="bad_segment", loc=(f"#{number}",), line=number)
    try:
        message = hl7.parse("\r".join(seg for _, seg in group))
    except Exception as exc:  # python-hl7 raises bare IndexError/ValueError on broken headers
        raise AdapterError("message structure cannot be parsed", code="malformed_message",
                           loc=("MSH",), line=group[0][0]) from exc
    segments = []
    for (number, _), seg in zip(group, message, strict=True):
        fields = tuple(_uniform(f) for f in seg)
        segments.append(Segment(name=str(seg[0][0]), line=number, fields=fields, enc=enc))
    return segments


def _undouble_escape(header: str) -> str:
    """``MSH|^~\\\\&|``: the standard encoding characters with the escape doubled, as samples
    copied out of Java, C# or JSON string literals carry them; read as ``^~\\&``."""
    sep = header[3:4]
    return header[:7] + header[8:] if header[4:10] == "^~\\\\&" + sep else header


def _encoding(header: str, line: int, codec: str) -> Encoding:
    """Validate MSH-1/MSH-2 before python-hl7 reads them (it indexes blindly)."""
    if len(header) < 8:
        raise AdapterError("MSH segment too short to declare its separators",
                           code="bad_separators", loc=("MSH", 2), line=line)
    sep = header[3]
    end = header.find(sep, 4)
    chars = header[4:end] if end > 0 else ""
    specials = sep + chars
    if (end < 0 or not 4 <= len(chars) <= 5 or len(set(specials)) != len(specials)
            or any(c.isalnum() or c.isspace() for c in specials)):
        raise AdapterError("MSH-1/MSH-2 must be distinct non-alphanumeric separator characters",
                           code="bad_separators", loc=("MSH", 2), line=line)
    return Encoding(field=sep, component=chars[0], repetition=chars[1], escape=chars[2],
                    subcomponent=chars[3], truncation=chars[4:5] or "#", codec=codec)


def _uniform(node: object) -> Tree:
    """python-hl7 leaves a level unsplit when it has no separator; make every depth explicit."""
    if isinstance(node, str):
        return [[[node]]]
    items = list(node)  # type: ignore[call-overload]
    if len(items) == 1 and isinstance(items[0], str):
        return [[[items[0]]]]
    return [_components(rep) for rep in items]


def _components(rep: object) -> list[list[str]]:
    if isinstance(rep, str):
        return [[rep]]
    items = list(rep)  # type: ignore[call-overload]
    if len(items) == 1 and isinstance(items[0], str):
        return [[items[0]]]
    return [[comp] if isinstance(comp, str) else [str(s) for s in comp] for comp in items]


def unescape(value: str, enc: Encoding, loc: tuple[str | int, ...], line: int) -> str:
    """Decode HL7 escape sequences (v2 section 2.7); unknown or unterminated ones stay literal."""
    esc = enc.escape
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        end = value.find(esc, i + 1) if ch == esc else -1
        if end < 0:
            out.append(ch)
            i += 1
            continue
        out.append(_sequence(value[i + 1:end], enc, loc, line))
        i = end + 1
    return "".join(out)


def _sequence(seq: str, enc: Encoding, loc: tuple[str | int, ...], line: int) -> str:
    simple = {"F": enc.field, "S": enc.component, "T": enc.subcomponent, "R": enc.repetition,
              "E": enc.escape, "P": enc.truncation, "H": "", "N": ""}
    if seq in simple:
        return simple[seq]
    if seq.startswith("X"):
        if not _HEX.match(seq[1:]):
            raise AdapterError("\\X escape needs pairs of hexadecimal digits", code="bad_escape",
                               loc=loc, line=line)
        try:
            return bytes.fromhex(seq[1:]).decode(enc.codec)
        except UnicodeDecodeError as exc:
            raise AdapterError(f"\\X escape bytes are not valid {enc.codec}", code="bad_escape",
                               loc=loc, line=line) from exc
    if seq[:1] in ("C", "M") and _HEX.match(seq[1:]):
        raise AdapterError("ISO 2022 character set switching (\\C and \\M escapes) is not "
                           "supported; send UTF-8 and declare it in MSH-18",
                           code="unsupported_escape", loc=loc, line=line)
    if seq.startswith("Z"):
        return ""  # locally defined escape: meaningless outside the sender
    if seq[:3] in _FORMATTING:
        count = seq[3:].lstrip("+-")
        repeat = int(count) if count.isdigit() and len(count) < 3 else 1
        return _FORMATTING[seq[:3]] * (repeat if seq[:3] in (".sp", ".sk") else 1)
    return enc.escape + seq + enc.escape
