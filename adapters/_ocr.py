"""Text out of attachments: PDF text layers (pypdf) and OCR of images (Tesseract).

Tesseract is optional at run time: without the binary (or with ``CLAIMX_OCR=off``) images
yield no text and the caller records ``ocr: "unavailable"``. Simplified Chinese comes from
Debian's ``tesseract-ocr-chi-sim``; English is always tried alongside it. pypdf was chosen
over pdfminer.six: both read CJK text layers (CID fonts with predefined CMaps), pypdf is
about eight times faster on small documents and also hands out a scanned page's embedded
images, which is what OCR needs when a PDF has no text layer.
"""

from __future__ import annotations

import io
import os
import shutil
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gateway.core.errors import AdapterError

MAX_PDF_PAGES = 20
"""Text is read from at most this many pages; the page count still covers them all."""
MAX_OCR_IMAGES = 3
MAX_OCR_SIDE = 2500
"""Images are scaled down to this long side before OCR: slower past it, no more accurate."""
MAX_PIXELS = 64_000_000
"""Decompression-bomb guard for images (Pillow's own limit is about 89 million)."""
OCR_TIMEOUT = 30


@dataclass
class Extracted:
    """Text found in a document and how it was found."""

    text: str = ""
    pages: int | None = None
    ocr: str = "not_needed"
    """``used``, ``not_needed``, ``unavailable`` (no Tesseract), ``unsupported`` (format
    Pillow cannot open here, e.g. HEIC without pillow-heif) or ``failed``."""
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _tesseract_langs() -> str | None:
    if os.environ.get("CLAIMX_OCR", "").lower() in ("0", "off", "false", "no"):
        return None
    if shutil.which("tesseract") is None:
        return None
    try:
        import pytesseract

        langs = set(pytesseract.get_languages(config=""))
    except Exception:  # noqa: BLE001 - any failure to run tesseract means "no OCR"
        return None
    chosen = [lang for lang in ("chi_sim", "eng") if lang in langs]
    return "+".join(chosen) if chosen else None


def ocr_available() -> bool:
    """Whether OCR can run here (binary present, a usable language, not switched off)."""
    return _tesseract_langs() is not None


def reset_ocr_cache() -> None:
    """Forget the OCR probe (tests switch ``CLAIMX_OCR``)."""
    _tesseract_langs.cache_clear()


def ocr_image(image: Any) -> str:
    """OCR one Pillow image; raises AdapterError(code="ocr_failed") on a Tesseract error."""
    import pytesseract
    from PIL import Image, ImageOps

    langs = _tesseract_langs()
    if langs is None:
        raise AdapterError("OCR is unavailable", code="ocr_unavailable")
    picture = ImageOps.exif_transpose(image).convert("L")
    if max(picture.size) > MAX_OCR_SIDE:
        picture.thumbnail((MAX_OCR_SIDE, MAX_OCR_SIDE), Image.Resampling.LANCZOS)
    try:
        return str(pytesseract.image_to_string(picture, lang=langs, timeout=OCR_TIMEOUT))
    except (RuntimeError, pytesseract.TesseractError) as exc:
        raise AdapterError("Tesseract could not read the image", code="ocr_failed") from exc


def open_image(raw: bytes) -> Any:
    """Open and fully decode an image with a pixel-count guard."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AdapterError(f"image has more than {MAX_PIXELS} pixels", code="image_too_large",
                           loc=("image",)) from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt data
        raise AdapterError("image data cannot be decoded", code="unreadable_image",
                           loc=("image",)) from exc
    return image


def heif_supported() -> bool:
    """Whether pillow-heif is installed, registering its opener with Pillow if so."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def from_image(raw: bytes, media_type: str) -> Extracted:
    """Decode a JPEG/PNG/HEIC image (a corrupt one is an error) and OCR it when possible."""
    if media_type == "image/heic" and not heif_supported():
        return Extracted(ocr="unsupported", notes=["heic decoder not installed"])
    image = open_image(raw)
    if not ocr_available():
        return Extracted(ocr="unavailable")
    try:
        return Extracted(text=ocr_image(image), ocr="used")
    except AdapterError:
        return Extracted(ocr="failed")


def from_pdf(raw: bytes) -> Extracted:
    """Text layer of the first pages; OCR of embedded page images when there is none."""
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(raw), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return Extracted(pages=None, ocr="not_needed", notes=["encrypted"])
        pages = list(reader.pages)
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on corrupt files
        raise AdapterError("PDF structure cannot be read", code="unreadable_pdf",
                           loc=("pdf",)) from exc
    texts = []
    for page in pages[:MAX_PDF_PAGES]:
        try:
            texts.append(page.extract_text() or "")
        except Exception:  # noqa: BLE001,S112 - one bad page must not lose the others
            continue
    result = Extracted(text="\n".join(texts), pages=len(pages))
    if len(result.text.strip()) >= 20:
        return result
    return _ocr_pdf_images(pages, result)


def _ocr_pdf_images(pages: list[Any], result: Extracted) -> Extracted:
    if not ocr_available():
        result.ocr = "unavailable"
        return result
    texts, seen = [result.text], 0
    for page in pages[:MAX_OCR_IMAGES]:
        try:
            images = list(page.images)
        except Exception:  # noqa: BLE001,S112
            continue
        for embedded in images[:1]:
            try:
                texts.append(ocr_image(embedded.image))
                seen += 1
            except Exception:  # noqa: BLE001,S112 - undecodable image: keep going
                continue
    result.text = "\n".join(t for t in texts if t)
    result.ocr = "used" if seen else "not_needed"
    return result
