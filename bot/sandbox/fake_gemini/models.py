"""The stand-in's model catalogue: model ids, aspect ratios, image sizes, token counts and pixel tables."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

STANDARD_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXTRA_RATIOS = ("1:4", "4:1", "1:8", "8:1")


@dataclass(frozen=True)
class FakeModel:
    """What one fake model accepts and returns.

    ``sizes == ()`` means the model has no imageSize option (2.5 Flash Image: any imageSize is a 400) and
    uses the 2.5 pixel table; otherwise the Pro / 3.1 table is used. ``image_tokens`` maps imageSize to the
    output image's token count (``""`` is the key for models without sizes); missing entries fall back to
    1290 (no sizes) or 1120.
    """

    model_id: str
    aspect_ratios: tuple[str, ...]
    sizes: tuple[str, ...]
    thinks: bool
    output_mime: str
    image_tokens: tuple[tuple[str, int], ...] = ()

    def tokens_for(self, image_size: str | None) -> int:
        table = dict(self.image_tokens)
        fallback = 1120 if self.sizes else 1290
        return table.get(image_size or "", fallback)

    @property
    def input_image_tokens(self) -> int:
        return 560 if self.thinks else 258


DEFAULT_MODELS: dict[str, FakeModel] = {
    m.model_id: m
    for m in (
        FakeModel("gemini-2.5-flash-image", STANDARD_RATIOS, (), False, "image/png", (("", 1290),)),
        FakeModel(
            "gemini-3-pro-image",
            STANDARD_RATIOS,
            ("1K", "2K", "4K"),
            True,
            "image/jpeg",
            (("1K", 1120), ("2K", 1120), ("4K", 2000)),
        ),
        FakeModel(
            "gemini-3.1-flash-image",
            STANDARD_RATIOS + EXTRA_RATIOS,
            ("512", "1K", "2K", "4K"),
            True,
            "image/jpeg",
            (("512", 747), ("1K", 1120), ("2K", 1680), ("4K", 2520)),
        ),
        FakeModel(
            "gemini-3.1-flash-lite-image",
            STANDARD_RATIOS + EXTRA_RATIOS,
            ("1K",),
            True,
            "image/jpeg",
            (("1K", 1120),),
        ),
        FakeModel(
            "gemini-nano-banana-2.1",
            STANDARD_RATIOS + EXTRA_RATIOS,
            ("1K", "2K", "4K"),
            True,
            "image/jpeg",
            (("1K", 1120), ("2K", 1680), ("4K", 2520)),
        ),
    )
}

# ----------------------------------------------------------------------------------------------------
# Pixel sizes (Google's image-generation guide)
# ----------------------------------------------------------------------------------------------------

Size = tuple[int, int]

SIZES_25: dict[str, Size] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}

# imageSize -> aspect ratio -> (width, height), for Pro, 3.1 Flash, 3.1 Flash Lite and Nano Banana 2.1.
# The 512 row is only documented for 16:9 (688x384) and the extra ratios; the rest is half of 1K rounded to a
# multiple of 16, ties rounded down (which keeps 2:3 and 21:9 exact).
SIZES_G3: dict[str, dict[str, Size]] = {
    "512": {
        "1:1": (512, 512),
        "2:3": (416, 624),
        "3:2": (624, 416),
        "3:4": (448, 592),
        "4:3": (592, 448),
        "4:5": (464, 576),
        "5:4": (576, 464),
        "9:16": (384, 688),
        "16:9": (688, 384),
        "21:9": (784, 336),
        "1:4": (256, 1024),
        "4:1": (1024, 256),
        "1:8": (192, 1536),
        "8:1": (1536, 192),
    },
    "1K": {
        "1:1": (1024, 1024),
        "2:3": (848, 1264),
        "3:2": (1264, 848),
        "3:4": (896, 1200),
        "4:3": (1200, 896),
        "4:5": (928, 1152),
        "5:4": (1152, 928),
        "9:16": (768, 1376),
        "16:9": (1376, 768),
        "21:9": (1584, 672),
        "1:4": (512, 2048),
        "4:1": (2048, 512),
        "1:8": (384, 3072),
        "8:1": (3072, 384),
    },
    "2K": {
        "1:1": (2048, 2048),
        "2:3": (1696, 2528),
        "3:2": (2528, 1696),
        "3:4": (1792, 2400),
        "4:3": (2400, 1792),
        "4:5": (1856, 2304),
        "5:4": (2304, 1856),
        "9:16": (1536, 2752),
        "16:9": (2752, 1536),
        "21:9": (3168, 1344),
        "1:4": (1024, 4096),
        "4:1": (4096, 1024),
        "1:8": (768, 6144),
        "8:1": (6144, 768),
    },
    "4K": {
        "1:1": (4096, 4096),
        "2:3": (3392, 5056),
        "3:2": (5056, 3392),
        "3:4": (3584, 4800),
        "4:3": (4800, 3584),
        "4:5": (3712, 4608),
        "5:4": (4608, 3712),
        "9:16": (3072, 5504),
        "16:9": (5504, 3072),
        "21:9": (6336, 2688),
        "1:4": (2048, 8192),
        "4:1": (8192, 2048),
        "1:8": (1536, 12288),
        "8:1": (12288, 1536),
    },
}


def pixel_size(model: FakeModel, aspect_ratio: str, image_size: str | None) -> Size:
    """The documented output size for (model, aspectRatio, imageSize); imageSize None means 1K."""
    if not model.sizes:
        return SIZES_25[aspect_ratio]
    return SIZES_G3[image_size or "1K"][aspect_ratio]


def ratio_value(aspect_ratio: str) -> float:
    w, h = aspect_ratio.split(":")
    return int(w) / int(h)


def closest_ratio(width: int, height: int, ratios: Collection[str]) -> str:
    """The supported ratio nearest to width:height (compared on a log scale, so 1:2 and 2:1 are symmetric)."""
    target = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_value(r)) - target))
