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


def test_an_exif_rotated_portrait_is_sent_upright() -> None:
    # A phone stores a portrait as a landscape sensor image plus "rotate 90°" (EXIF orientation 6).
    sensor = Image.new("RGB", (400, 300), "white")
    sensor.paste((255, 0, 0), (0, 0, 400, 30))  # the top of the scene, along the sensor's top edge
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sensor.save(out, "JPEG", exif=exif)
    data, mime, info = normalise_reference(out.getvalue(), name="portrait.jpg")
    assert (mime, info.width, info.height) == ("image/jpeg", 300, 400)  # upright: taller than wide
    with Image.open(io.BytesIO(data)) as upright:
        assert upright.getexif().get(0x0112) in (None, 1)
        red, green, _blue = upright.convert("RGB").getpixel((295, 200))  # the red band is on the right
        assert red > 200 and green < 80


def test_a_16_bit_greyscale_png_keeps_its_tones() -> None:
    img = Image.new("I;16", (64, 1))
    img.putdata([v * 1024 for v in range(64)])  # a ramp from black to (almost) white
    out = io.BytesIO()
    img.save(out, "PNG")
    data, _mime, _ = normalise_reference(out.getvalue(), name="scan.png")
    with Image.open(io.BytesIO(data)) as converted:
        tones = [converted.convert("L").getpixel((x, 0)) for x in (0, 32, 63)]
    assert tones[0] < 10 and 100 < tones[1] < 160 and tones[2] > 240  # not clipped to white


def test_a_heavy_photo_is_scaled_down_and_sent_as_jpeg() -> None:
    photo = Image.effect_noise((4000, 3000), 64).convert("RGB")  # 12 megapixels that don't compress
    out = io.BytesIO()
    photo.save(out, "PNG")
    assert len(out.getvalue()) > 10_000_000
    data, mime, info = normalise_reference(out.getvalue(), name="photo.png")
    assert mime == "image/jpeg" and max(info.width, info.height) == MAX_REFERENCE_SIDE
    assert len(data) < 3_000_000
