"""Attachments: content sniffing, PDF text layers, OCR (when Tesseract is here), classes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from adapters import _classify, _ocr, attachment
from adapters.pseudonym import pseudonymise
from adapters.registry import AdapterContext
from gateway.core.errors import AdapterError

from . import fixtures
from .conftest import asset, dumped

needs_ocr = pytest.mark.skipif(not _ocr.ocr_available(),
                               reason="tesseract with chi_sim not installed (apt-get install "
                               "tesseract-ocr tesseract-ocr-chi-sim)")
needs_font = pytest.mark.skipif(fixtures.cjk_font_path() is None,
                                reason="no CJK font (apt-get install fonts-wqy-zenhei)")


@pytest.fixture()
def no_ocr(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CLAIMX_OCR", "off")
    _ocr.reset_ocr_cache()
    yield
    monkeypatch.delenv("CLAIMX_OCR")
    _ocr.reset_ocr_cache()


def test_sniff_by_content_not_name() -> None:
    assert attachment.sniff(fixtures.pdf_with_text(("x",))) == "application/pdf"
    assert attachment.sniff(fixtures.image_with_text(("x",), "JPEG")) == "image/jpeg"
    assert attachment.sniff(fixtures.image_with_text(("x",), "PNG")) == "image/png"
    assert attachment.sniff(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic") == "image/heic"
    assert attachment.sniff(b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1") is None
    assert attachment.sniff(b"GIF89a") is None


def test_text_layer_pdf_is_classified_without_ocr(ctx: AdapterContext, no_ocr: None) -> None:
    raw = asset("attachments", "invoice_text_layer.pdf")
    packet = attachment.adapt(raw, ctx)[0].to_obj()
    body = packet["body"]
    assert packet["kind"] == "attachment"
    assert (body["doc_type"], body["media_type"], body["pages"]) == ("invoice",
                                                                     "application/pdf", 1)
    assert float(body["confidence"]) >= 0.7
    assert body["ocr"] == "not_needed"
    assert packet["attachments"] == [{"sha256": hashlib.sha256(raw).hexdigest(),
                                      "media_type": "application/pdf", "doc_type": "invoice",
                                      "size": len(raw)}]
    assert "2488.30" not in dumped(packet)  # the extracted text stays out of the packet


def test_image_without_ocr_is_other_and_says_so(ctx: AdapterContext, no_ocr: None) -> None:
    body = attachment.adapt(asset("attachments", "discharge_photo.png"), ctx)[0].body
    assert (body["doc_type"], body["confidence"], body["ocr"]) == ("other", "0.00",
                                                                   "unavailable")
    assert "text_sha256" not in body


def test_pdf_scan_without_ocr(ctx: AdapterContext, no_ocr: None) -> None:
    body = attachment.adapt(asset("attachments", "lab_scan.pdf"), ctx)[0].body
    assert (body["doc_type"], body["ocr"], body["pages"]) == ("other", "unavailable", 1)


def test_single_resident_id_in_text_links_the_subject(ctx: AdapterContext,
                                                      no_ocr: None) -> None:
    one = fixtures.pdf_with_text(("出院小结", "身份证号 11010519491231002X", "出院诊断 骨折"))
    packet = attachment.adapt(one, ctx)[0]
    assert packet.subject == pseudonymise("cn_resident_id", "11010519491231002X")
    assert packet.body["subject_from"] == "document_text"
    assert "11010519491231002X" not in dumped(packet.to_obj())
    two = fixtures.pdf_with_text(("当事人 110101198507073211", "当事人 310104198001011239"))
    packet = attachment.adapt(two, ctx)[0]
    assert (packet.subject, packet.body["subject_from"]) == (attachment.UNLINKED_SUBJECT, "none")


def test_publisher_given_subject_links_documents_that_name_nobody(ctx: AdapterContext,
                                                                 no_ocr: None) -> None:
    claimant = pseudonymise("cn_resident_id", "11010519491231002X")
    given = AdapterContext(issuer=ctx.issuer, subject=claimant)
    anonymous = fixtures.pdf_with_text(("发票", "金额 120.00"))
    packet = attachment.adapt(anonymous, given)[0]
    assert (packet.subject, packet.body["subject_from"]) == (claimant, "publisher")
    same = fixtures.pdf_with_text(("出院小结", "身份证号 11010519491231002X"))
    assert attachment.adapt(same, given)[0].body["subject_from"] == "document_text"
    other = fixtures.pdf_with_text(("出院小结", "身份证号 110101198507073211"))
    with pytest.raises(AdapterError) as exc:
        attachment.adapt(other, given)
    assert (exc.value.code, exc.value.loc) == ("subject_mismatch", ("text",))
    assert "110101198507073211" not in str(exc.value)


@needs_ocr
@needs_font
@pytest.mark.parametrize("name,doc_type", [("discharge_photo.png", "discharge_summary"),
                                           ("accident_photo.jpg", "accident_determination"),
                                           ("lab_scan.pdf", "lab_report")])
def test_ocr_classifies_photos_and_scans(ctx: AdapterContext, name: str, doc_type: str) -> None:
    body = attachment.adapt(asset("attachments", name), ctx)[0].body
    assert (body["doc_type"], body["ocr"]) == (doc_type, "used")
    assert float(body["confidence"]) >= 0.6


@needs_ocr
@needs_font
def test_heic_photo_of_id_card(ctx: AdapterContext) -> None:
    pytest.importorskip("pillow_heif", reason="pillow-heif not installed")
    raw = fixtures.image_with_text(("居民身份证", "公民身份号码 11010519491231002X"), "HEIF")
    packet = attachment.adapt(raw, ctx)[0]
    assert (packet.body["media_type"], packet.body["doc_type"]) == ("image/heic", "id_card")
    assert packet.subject == pseudonymise("cn_resident_id", "11010519491231002X")


def test_heic_without_decoder_is_reported_not_crashed(ctx: AdapterContext,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ocr, "heif_supported", lambda: False)
    raw = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    body = attachment.adapt(raw, ctx)[0].body
    assert (body["media_type"], body["ocr"], body["doc_type"]) == ("image/heic", "unsupported",
                                                                   "other")


def test_unsupported_and_corrupt_files(ctx: AdapterContext) -> None:
    with pytest.raises(AdapterError) as info:
        attachment.adapt(asset("attachments", "not_a_document.bin"), ctx)
    assert info.value.code == "unsupported_media_type"
    with pytest.raises(AdapterError) as info:
        attachment.adapt(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10, ctx)
    assert info.value.code == "unreadable_image"


def test_decompression_bomb_is_refused(ctx: AdapterContext) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, "PNG")  # 81 Mpx, a few kilobytes
    with pytest.raises(AdapterError) as info:
        attachment.adapt(buf.getvalue(), ctx)
    assert info.value.code == "image_too_large"


@pytest.mark.parametrize("text,doc_type", [
    ("医疗住院收费票据 票据号码 合计", "invoice"),
    ("出 院 小 结\n入院日期 出院日期 出院诊断", "discharge_summary"),
    ("诊断证明书 建议休息两周 特此证明", "diagnosis_certificate"),
    ("Laboratory Report\nReference range  Specimen", "lab_report"),
    ("中华人民共和国 居民身份证 签发机关 有效期限", "id_card"),
    ("中国银联 借记卡 6222020200112233446", "bank_card"),
    ("居民死亡医学证明（推断）书 直接死因 根本死因", "death_certificate"),
    ("Meeting notes about the quarterly roadmap", "other"),
])
def test_classifier(text: str, doc_type: str) -> None:
    assert _classify.classify(text).doc_type == doc_type


def test_classifier_confidence_orders_evidence() -> None:
    strong = _classify.classify("道路交通事故认定书 当事人 主要责任 次要责任 号牌号码")
    weak = _classify.classify("当事人 责任 发票")
    assert 0 <= weak.confidence < strong.confidence <= 1
    assert _classify.classify("").confidence == 0.0
