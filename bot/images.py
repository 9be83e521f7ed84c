"""Image bytes: sniff the real type, check references before they cost anything, normalise them.

Pure functions over bytes (Pillow only); downloading lives in ``bot.slack``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from bot.errors import AttachmentError

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # larger files are not downloaded at all
MAX_SOURCE_PIXELS = 50_000_000  # above this, a header is treated as a decompression bomb
MAX_REFERENCE_SIDE = 3072  # references are scaled down to this; Gemini sees no more detail anyway
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
            if (
                mime == "image/gif"
                or max(img.size) > MAX_REFERENCE_SIDE
                or img.mode not in ("RGB", "RGBA", "L")
            ):
                return _reencode(img, mime)
    except AttachmentError as err:
        raise AttachmentError(f"`{name}`: {err}") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise AttachmentError(f"`{name}` is damaged or truncated") from err
    info = inspect(data)
    return data, mime, info


def _reencode(img: Image.Image, mime: str) -> tuple[bytes, str, ImageInfo]:
    frame = img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB")
    frame.thumbnail((MAX_REFERENCE_SIDE, MAX_REFERENCE_SIDE))
    out = io.BytesIO()
    if mime == "image/jpeg" and frame.mode == "RGB":
        frame.save(out, "JPEG", quality=92)
        new_mime = "image/jpeg"
    else:
        frame.save(out, "PNG", compress_level=3)
        new_mime = "image/png"
    data = out.getvalue()
    return data, new_mime, ImageInfo(new_mime, frame.width, frame.height)
