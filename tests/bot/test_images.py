from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.errors import AttachmentError
from bot.images import MAX_REFERENCE_SIDE, check_declared, normalise_reference, sniff_mime
from tests.images import encode as shared_encode
from tests.images import png_header_only


def encode(fmt: str, size: tuple[int, int] = (20, 10), mode: str = "RGB") -> bytes:
    return shared_encode(fmt, size, "blue", mode)


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_sniff(fmt: str, mime: str) -> None:
    assert sniff_mime(encode(fmt)) == mime


def test_sniff_recognises_html_pdf_heic() -> None:
    assert sniff_mime(b"<!DOCTYPE html><html>login</html>") == "text/html"
    assert sniff_mime(b"%PDF-1.7 ...") == "application/pdf"
    assert sniff_mime(b"\x00\x00\x00\x18ftypheic\x00\x00") == "image/heic"


def test_png_jpeg_webp_pass_through_and_gif_becomes_png() -> None:
    png = encode("PNG")
    assert normalise_reference(png, name="a.png")[:2] == (png, "image/png")
    data, mime, info = normalise_reference(encode("GIF"), name="a.gif")
    assert mime == "image/png" and sniff_mime(data) == "image/png" and (info.width, info.height) == (20, 10)
    assert normalise_reference(encode("WEBP"), name="a.webp")[1] == "image/webp"


def test_huge_reference_is_scaled_down() -> None:
    data, _mime, info = normalise_reference(encode("JPEG", (MAX_REFERENCE_SIDE * 2, 100)), name="wide.jpg")
    assert info.width == MAX_REFERENCE_SIDE
    assert Image.open(io.BytesIO(data)).width == MAX_REFERENCE_SIDE


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"%PDF-1.4 not an image", "isn't a PNG"),
        (b"<html>Sign in to Slack</html>", "login page"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20, "HEIC"),
        (encode("PNG")[:40], "damaged"),
        (png_header_only(60_000, 60_000), "50 megapixels"),
        (png_header_only(8_000, 8_000), "8,000 × 8,000"),
    ],
)
def test_unusable_files_get_a_clear_reason(data: bytes, needle: str) -> None:
    with pytest.raises(AttachmentError, match=needle):
        normalise_reference(data, name="f")


def test_declared_size_and_type_are_checked_before_download() -> None:
    with pytest.raises(AttachmentError, match="200 MB"):
        check_declared(name="big.png", mimetype="image/png", size=200 * 1024 * 1024)
    with pytest.raises(AttachmentError, match="application/pdf"):
        check_declared(name="doc.pdf", mimetype="application/pdf", size=10)
    check_declared(name="ok.png", mimetype="image/png", size=10)
