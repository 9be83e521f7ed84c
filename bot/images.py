"""Image bytes: sniff the real type, check references before they cost anything, normalise them.

Pure functions over bytes (Pillow only); downloading lives in ``bot.slack``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import AttachmentError

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # larger files are not downloaded at all
MAX_SOURCE_PIXELS = 50_000_000  # above this, a header is treated as a decompression bomb
# References are scaled down to this and re-encoded when larger: Gemini sees no more detail, and the brief's
# references go back with every later request of the thread, so a 12-megapixel photo would make each of
# them tens of megabytes.
MAX_REFERENCE_SIDE = 2048
MAX_REFERENCE_BYTES = 1_500_000  # a smaller side but a heavier file (a PNG photo) is re-encoded too
_EXIF_ORIENTATION = 0x0112
ACCEPTED = {"image/png", "image/jpeg", "image/webp", "image/gif"}
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def sniff_mime(data: bytes) -> str | None:
    """The type the bytes really are (Gemini 3 labels JPEG as PNG at times; Slack can hand us HTML)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
        return "image/heic"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    return None


def extension(mime: str) -> str:
    return _EXTENSIONS.get(mime, "bin")


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    width: int
    height: int


def inspect(data: bytes) -> ImageInfo:
    """Type and size of an image we produced or accepted; raises AttachmentError for anything else."""
    mime = sniff_mime(data)
    if mime not in ACCEPTED:
        raise AttachmentError("that isn't an image I can read")
    with _open(data) as img:
        return ImageInfo(mime_type=mime, width=img.width, height=img.height)


def _open(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise AttachmentError(_too_big()) from err
        except UnidentifiedImageError as err:
            raise AttachmentError("the file is damaged or isn't an image") from err
    if img.width * img.height > MAX_SOURCE_PIXELS:
        img.close()
        raise AttachmentError(_too_big(img.width, img.height))
    return img


def _too_big(width: int | None = None, height: int | None = None) -> str:
    limit = f"the most I accept is {MAX_SOURCE_PIXELS // 1_000_000} megapixels"
    if width and height:
        return f"it is {width:,} × {height:,} pixels; {limit}"
    return f"it claims a size far beyond what I accept ({limit})"


def check_declared(*, name: str, mimetype: str | None, size: int | None) -> None:
    """Refuse before downloading: the file object from Slack already says what it is and how big."""
    if size is not None and size > MAX_DOWNLOAD_BYTES:
        raise AttachmentError(
            f"`{name}` is {size / 1_048_576:.0f} MB; reference images can be at most "
            f"{MAX_DOWNLOAD_BYTES // 1_048_576} MB"
        )
    if mimetype and not mimetype.startswith("image/"):
        raise AttachmentError(
            f"`{name}` isn't an image (Slack says it is {mimetype}). Attach a PNG, JPEG, WebP or GIF"
        )
    if mimetype in ("image/heic", "image/heif"):
        raise AttachmentError(f"`{name}` is a HEIC photo, which I can't read. Export it as JPEG or PNG")


def normalise_reference(data: bytes, *, name: str) -> tuple[bytes, str, ImageInfo]:
    """Verify a downloaded reference and return bytes Gemini accepts (PNG/JPEG/WebP), scaled down if huge.

    GIFs become a PNG of their first frame; everything is decoded fully once, so truncated or corrupt
    files are caught here rather than by Gemini.
    """
    mime = sniff_mime(data)
    if mime == "text/html":
        raise AttachmentError(
            f"Slack sent a login page instead of `{name}`: "
            "the bot needs the `files:read` scope (reinstall it)"
        )
    if mime in ("image/heic",):
        raise AttachmentError(f"`{name}` is a HEIC photo, which I can't read. Export it as JPEG or PNG")
    if mime not in ACCEPTED:
        raise AttachmentError(f"`{name}` isn't a PNG, JPEG, WebP or GIF image")
    try:
        with _open(data) as img:
            img.load()
            rotated = img.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
            if (
                mime == "image/gif"
                or rotated
                or max(img.size) > MAX_REFERENCE_SIDE
                or len(data) > MAX_REFERENCE_BYTES
                or img.mode not in ("RGB", "RGBA", "L")
            ):
                return _reencode(img, mime, heavy=len(data) > MAX_REFERENCE_BYTES)
    except AttachmentError as err:
        raise AttachmentError(f"`{name}`: {err}") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise AttachmentError(f"`{name}` is damaged or truncated") from err
    info = inspect(data)
    return data, mime, info


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit and float images as 8 bits, scaled (Pillow's own conversion clips them: a 16-bit greyscale
    PNG would come out white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return img.convert("I").point(lambda v: v / 256).convert("L")
    if img.mode == "F":
        return img.point(lambda v: v * 255).convert("L")
    return img


def _reencode(img: Image.Image, mime: str, *, heavy: bool = False) -> tuple[bytes, str, ImageInfo]:
    """Upright (EXIF orientation applied), 8-bit, at most ``MAX_REFERENCE_SIDE``: a JPEG when it was one
    or when a heavy file (a photo saved as PNG) has no transparency, else a PNG (logos stay crisp)."""
    upright = ImageOps.exif_transpose(_eight_bit(img))
    transparent = "A" in upright.getbands() or (upright.mode == "P" and "transparency" in upright.info)
    frame = upright.convert("RGBA" if transparent else "RGB")
    frame.thumbnail((MAX_REFERENCE_SIDE, MAX_REFERENCE_SIDE))
    out = io.BytesIO()
    if frame.mode == "RGB" and (mime == "image/jpeg" or heavy):
        frame.save(out, "JPEG", quality=90)
        new_mime = "image/jpeg"
    else:
        frame.save(out, "PNG", compress_level=3)
        new_mime = "image/png"
    data = out.getvalue()
    return data, new_mime, ImageInfo(new_mime, frame.width, frame.height)
