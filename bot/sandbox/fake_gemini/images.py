"""Colours and rendering: real images at the documented pixel size, coloured and captioned from the prompt."""

from __future__ import annotations

import hashlib
import io
import re
import textwrap
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from bot.sandbox.fake_gemini.models import Size
from bot.sandbox.fake_gemini.validation import ParsedRequest

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (220, 40, 40),
    "orange": (245, 135, 20),
    "yellow": (250, 215, 40),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "purple": (130, 60, 190),
    "violet": (130, 60, 190),
    "pink": (240, 120, 175),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "brown": (120, 75, 40),
    "teal": (0, 128, 128),
    "cyan": (0, 200, 220),
    "magenta": (210, 40, 160),
    "gold": (212, 175, 55),
    "silver": (192, 192, 192),
    "navy": (20, 30, 110),
}
_COLOUR_WORD = re.compile(r"\b(" + "|".join(COLOURS) + r")\b", re.IGNORECASE)


def colour_word(text: str) -> str | None:
    """The last colour word in ``text`` ("paint the red car matte blue" -> "blue")."""
    matches = _COLOUR_WORD.findall(text)
    return matches[-1].lower() if matches else None


def hashed_colour(text: str) -> RGB:
    digest = hashlib.sha256(text.encode()).digest()
    return (60 + digest[0] % 140, 60 + digest[1] % 140, 60 + digest[2] % 140)


def background_colour(request: ParsedRequest) -> RGB:
    """The newest colour word in the user turns (latest turn first), else a colour hashed from the first user
    text, so "make it blue" visibly changes the picture and "make it bigger" keeps it."""
    for text in reversed(request.user_texts):
        word = colour_word(text)
        if word is not None:
            return COLOURS[word]
    texts = request.user_texts
    return hashed_colour(texts[0] if texts else "")


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _ink(background: RGB) -> RGB:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    background: RGB
    caption: str
    footer: str = ""
    thumbnail: bytes | None = None  # the last input image, pasted small in the bottom-right corner
    grain: bool = False  # photographic noise, so images weigh what real photos weigh (benchmarks)


def _draw(picture: Picture) -> Image.Image:
    """Background colour, caption at the top left, footer at the bottom left, thumbnail bottom right.
    The top-right corner is always plain background."""
    w, h = picture.width, picture.height
    img = Image.new("RGB", (w, h), picture.background)
    draw = ImageDraw.Draw(img)
    ink = _ink(picture.background)
    margin = max(4, min(w, h) // 24)
    font_px = max(10, min(w, h) // 14)
    footer_px = max(8, font_px // 3)
    if picture.caption:
        chars = max(8, int((w - 2 * margin) / (font_px * 0.55)))
        max_lines = max(1, int((h - 3 * margin - footer_px) / (font_px * 1.25)))
        lines = textwrap.wrap(picture.caption[:600], chars)[:max_lines]
        draw.multiline_text(
            (margin, margin), "\n".join(lines), fill=ink, font=_font(font_px), spacing=font_px // 4
        )
    if picture.footer:
        draw.text((margin, h - margin - footer_px), picture.footer, fill=ink, font=_font(footer_px))
    if picture.thumbnail is not None:
        _paste_thumbnail(img, picture.thumbnail, margin)
    if picture.grain:
        img = Image.blend(img, _noise(w, h), 0.3)
    return img


@lru_cache(maxsize=8)
def _noise(width: int, height: int) -> Image.Image:
    """One grain layer per size: making it costs more than the rest of a 4K picture, and the stand-in
    shares a process with what a benchmark measures."""
    return Image.effect_noise((width, height), 64).convert("RGB")


def _paste_thumbnail(img: Image.Image, data: bytes, margin: int) -> None:
    box = (max(16, img.width // 5), max(16, img.height // 5))
    try:
        with Image.open(io.BytesIO(data)) as src:
            src.draft("RGB", box)
            thumb = src.convert("RGB")
            thumb.thumbnail(box)
    except (OSError, ValueError, Image.DecompressionBombError):
        return  # e.g. HEIC, which Pillow can't read: no thumbnail
    img.paste(thumb, (img.width - thumb.width - margin, img.height - thumb.height - margin))


def encode(img: Image.Image, mime: str) -> bytes:
    buf = io.BytesIO()
    if mime == "image/png":
        img.save(buf, "PNG", compress_level=1)
    else:
        img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def render(picture: Picture, mime: str) -> bytes:
    return encode(_draw(picture), mime)


def render_draft(picture: Picture) -> bytes:
    """The low-res interim "thought" image: the same composition inside a 256px box, as JPEG."""
    scale = 256 / max(picture.width, picture.height)
    small = Picture(
        width=max(1, round(picture.width * scale)),
        height=max(1, round(picture.height * scale)),
        background=picture.background,
        caption="draft",
    )
    buf = io.BytesIO()
    _draw(small).save(buf, "JPEG", quality=60)
    return buf.getvalue()


def image_dimensions(data: bytes) -> Size | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
