"""``claimx adapt`` through the real Typer app: batches, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters import adapt_bytes, detect_format
from adapters.pseudonym import pseudonymise
from gateway.cli.main import app
from gateway.core.errors import AdapterError
from gateway.core.types import hex32, member_id

from .conftest import ASSETS, assert_no_raw_ids

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters import _ocr

    monkeypatch.setenv("CLAIMX_OCR", "off")
    _ocr.reset_ocr_cache()


def copy(tmp_path: Path, *parts: str, name: str | None = None) -> Path:
    target = tmp_path / (name or parts[-1])
    shutil.copyfile(ASSETS.joinpath(*parts), target)
    return target


def test_batch_reports_bad_files_and_still_outputs_good_ones(tmp_path: Path) -> None:
    good_csv = copy(tmp_path, "csv", "bill_utf8_bom.csv")
    bad_csv = copy(tmp_path, "csv", "bill_wrong_total.csv")
    good_police = copy(tmp_path, "police", "accident_zh.json")
    bomb = copy(tmp_path, "police", "bomb.xml")
    missing = tmp_path / "missing.csv"
    result = runner.invoke(app, ["adapt", str(good_csv), str(bad_csv), str(good_police),
                                 str(bomb), str(missing)])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [entry["file"] for entry in doc] == [str(p) for p in (good_csv, bad_csv, good_police,
                                                                 bomb, missing)]
    assert doc[0]["format"] == "csv_bill" and doc[0]["packets"][0]["kind"] == "hospital.invoice"
    assert doc[2]["packets"][0]["kind"] == "police.accident_determination"
    assert doc[1]["error"]["code"] == "total_mismatch"
    *lines, note = result.stderr.strip().splitlines()
    assert note.startswith("note: no --issuer: the packets carry the placeholder issuer")
    assert lines == [
        f"{bad_csv}:line 5:row/5/金额: total_mismatch: totals row 金额 differs from the sum "
        "of the items",
        f"{bomb}:/: unsafe_xml: XML with a DTD, entity declarations or external references "
        "is refused",
        f"{missing}: unreadable_file: cannot read file",
    ]
    assert "Traceback" not in result.output
    assert_no_raw_ids(result.output)


def test_explicit_format_and_issuer_id(tmp_path: Path) -> None:
    path = copy(tmp_path, "death", "death_en.json", name="export.dat")
    issuer = hex32(member_id("civil.shenzhen"))
    result = runner.invoke(app, ["adapt", "--format", "death_certificate", "--issuer", issuer,
                                 str(path)])
    assert result.exit_code == 0, result.output
    packet = json.loads(result.stdout)[0]["packets"][0]
    assert packet["issuer"] == issuer
    assert packet["subject"] == pseudonymise("cn_resident_id", "440306199203154569")


def test_issuer_slug_and_out_dir(tmp_path: Path) -> None:
    path = copy(tmp_path, "csv", "bill_gbk.csv")
    out = tmp_path / "out"
    result = runner.invoke(app, ["adapt", "--issuer", "hospital.puh3", "--out", str(out),
                                 str(path)])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "bill_gbk.csv.packets.json").read_text(encoding="utf-8"))
    assert written[0]["issuer"] == hex32(member_id("hospital.puh3"))


def test_wrong_format_for_file_is_a_located_failure(tmp_path: Path) -> None:
    path = copy(tmp_path, "csv", "bill_english.csv")
    result = runner.invoke(app, ["adapt", "--format", "police", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:line 1:/: bad_syntax:")


@pytest.mark.parametrize("args,message", [
    ([], "give one or more FILEs"),
    (["--format", "nope", "x.csv"], "unknown format 'nope'"),
    (["--issuer", "Not A Slug!", "x.csv"], "issuer must be"),
    (["--issuer", "0x1234", "x.csv"], "issuer must be 32 bytes"),
])
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["adapt", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_list_names_formats_and_kinds() -> None:
    result = runner.invoke(app, ["adapt", "--list"])
    assert result.exit_code == 0
    for text in ("csv_bill", "hospital.invoice", "police", "police.incident_report",
                 "death_certificate", "civil.death_certificate", "attachment"):
        assert text in result.stdout


@pytest.mark.parametrize("parts,fmt", [
    (("csv", "bill_gbk.csv"), "csv_bill"), (("csv", "bill_english.csv"), "csv_bill"),
    (("police", "accident_en.xml"), "police"), (("police", "incident_zh.json"), "police"),
    (("death", "death_zh.json"), "death_certificate"),
    (("attachments", "accident_photo.jpg"), "attachment"),
    (("attachments", "invoice_text_layer.pdf"), "attachment"),
])
def test_detect_format(parts: tuple[str, ...], fmt: str) -> None:
    raw = ASSETS.joinpath(*parts).read_bytes()
    assert detect_format(raw) == fmt
    assert adapt_bytes(raw)  # default development context


def test_unknown_content() -> None:
    with pytest.raises(AdapterError) as info:
        adapt_bytes(b"just some words\n")
    assert info.value.code == "unknown_format"


def test_pseudonym_matches_what_the_adapter_publishes(tmp_path: Path) -> None:
    """An insurer gets the claimant's subject from the same HMAC the police adapter used."""
    packets = json.loads(runner.invoke(app, ["adapt", str(ASSETS / "police" / "accident_zh.json")])
                         .stdout)[0]["packets"]
    subjects = set(re.findall(r'"subject": "([0-9a-f]{64})"', json.dumps(packets)))  # parties too
    result = runner.invoke(app, ["pseudonym"], input="110101198507073211\n\n310104198001011239\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.split()
    assert len(lines) == 2 and set(lines) <= subjects and lines[0] != lines[1]


def test_pseudonym_reports_bad_lines_without_their_values() -> None:
    result = runner.invoke(app, ["pseudonym"], input="110101198507073212\n110101198507073211\n")
    assert result.exit_code == 1
    assert "stdin:line 1: invalid_resident_id" in result.stderr
    assert "110101198507073212" not in result.output
    assert len(result.stdout.split()) == 1  # the good line is still answered
    passport = runner.invoke(app, ["pseudonym", "--scheme", "passport:GB"], input="E12 34567\n")
    assert passport.stdout.strip() == pseudonymise("passport:GB", "E1234567")


def test_production_refuses_the_public_dev_pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMX_ENVIRONMENT", "production")
    monkeypatch.delenv("CLAIMX_PSEUDONYM_KEY", raising=False)
    result = runner.invoke(app, ["pseudonym"], input="110101198507073211\n")
    assert result.exit_code == 2 and "CLAIMX_PSEUDONYM_KEY" in result.stderr
    with pytest.raises(AdapterError) as exc:
        adapt_bytes((ASSETS / "police" / "accident_zh.json").read_bytes(), "police",
                    __import__("adapters").registry.AdapterContext(issuer="0x" + "ab" * 32))
    assert exc.value.code == "dev_pseudonym_key"
    monkeypatch.setenv("CLAIMX_PSEUDONYM_KEY", "5a" * 32)
    assert len(pseudonymise("cn_resident_id", "110101198507073211")) == 64


def test_subject_option_is_checked_and_used(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["adapt", "--subject", "110101198507073211",
                              str(ASSETS / "police" / "accident_zh.json")])
    assert bad.exit_code == 2 and "--subject must be a 64-hex-digit pseudonym" in bad.stderr
    assert "110101198507073211" not in bad.stderr
    claimant = pseudonymise("cn_resident_id", "11010519491231002X")
    photo = copy(tmp_path, "attachments", "lab_scan.pdf")  # a scan without a text layer
    result = runner.invoke(app, ["adapt", "--subject", claimant, str(photo)])
    assert result.exit_code == 0, result.output
    packet = json.loads(result.stdout)[0]["packets"][0]
    assert (packet["subject"], packet["body"]["subject_from"]) == (claimant, "publisher")
