"""Build attachment fixtures: PDFs with CJK text layers, scans, and photos of text.

``python -m tests.adapters.fixtures`` rewrites tests/assets/attachments/ from these
builders; the tests also call them directly, so nothing depends on a checked-in binary.
"""

from __future__ import annotations

import io
from pathlib import Path

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "attachments"

INVOICE_LINES = ("上海市医疗住院收费票据", "票据号码 31000026", "收费项目 金额",
                 "床位费 420.00", "检查费 1280.50", "合计 2488.30", "医保统筹支付 1956.59",
                 "个人自付 531.71")
DISCHARGE_LINES = ("出院小结", "入院日期 2026-03-14", "出院日期 2026-03-21",
                   "出院诊断 右胫骨骨折", "诊疗经过 手术复位内固定", "出院医嘱 定期复查")
ACCIDENT_LINES = ("道路交通事故认定书", "当事人 驾驶人", "号牌号码 沪A12345",
                  "主要责任 次要责任")
LAB_LINES = ("Laboratory Report", "Specimen: venous blood", "Test  Result  Reference range",
             "WBC  11.2  3.5-9.5", "HGB  128  130-175")


def cjk_font_path() -> str | None:
    """A CJK TrueType font installed from Debian (fonts-wqy-zenhei or fonts-noto-cjk)."""
    for path in FONT_CANDIDATES:
        if Path(path).exists():
            return path
    return None


def pdf_with_text(lines: tuple[str, ...], pages: int = 1) -> bytes:
    """A PDF whose text layer holds ``lines`` (reportlab's built-in STSong-Light CID font)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, invariant=1)
    for _ in range(pages):
        pdf.setFont("STSong-Light", 14)
        for i, line in enumerate(lines):
            pdf.drawString(72, 760 - 24 * i, line)
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def image_with_text(lines: tuple[str, ...], fmt: str = "PNG", size: int = 40) -> bytes:
    """A white page photo with ``lines`` in black, large enough for Tesseract."""
    from PIL import Image, ImageDraw, ImageFont

    font_path = cjk_font_path()
    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default()
    image = Image.new("RGB", (1000, 80 + len(lines) * (size + 24)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((40, 40 + i * (size + 24)), line, font=font, fill="black")
    buf = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    image.save(buf, fmt, quality=90) if fmt in ("JPEG", "HEIF") else image.save(buf, fmt)
    return buf.getvalue()


def scanned_pdf(lines: tuple[str, ...]) -> bytes:
    """A PDF with no text layer, one page image: what a scanner produces."""
    from PIL import Image

    image = Image.open(io.BytesIO(image_with_text(lines, "PNG")))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "PDF", resolution=150)
    return buf.getvalue()


def write_assets() -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    (ASSETS / "invoice_text_layer.pdf").write_bytes(pdf_with_text(INVOICE_LINES))
    (ASSETS / "discharge_photo.png").write_bytes(image_with_text(DISCHARGE_LINES))
    (ASSETS / "accident_photo.jpg").write_bytes(image_with_text(ACCIDENT_LINES, "JPEG"))
    (ASSETS / "lab_scan.pdf").write_bytes(scanned_pdf(LAB_LINES))
    (ASSETS / "not_a_document.bin").write_bytes(b"MZ\x90\x00" + bytes(range(256)) * 4)


if __name__ == "__main__":
    write_assets()
