"""Safe decoding of one untrusted image file into an RGB picture or a uint8 array.

`open_image` is the only way `cnn_core` turns bytes into pixels: dataset folders and archives go
through it, and so do the pictures a user uploads for prediction. It decides the format by content
(never by file name), accepts only the formats it is given (uploads: JPEG, PNG, GIF, BMP and WebP;
dataset files also TIFF, AVIF and HEIC), refuses decompression bombs before any pixel is decoded,
and turns every Pillow failure into an `ImageError` whose one-line message names the file.
`to_array` resizes a decoded picture to a model's input size.

AVIF is read by Pillow itself (its wheels include libavif since 11.3); HEIC, the iPhone default,
through the optional `pillow-heif` plugin, registered only when a HEIC file is met, so a missing
plugin is a clear message for those files and nothing else.

This module does not know about datasets, labels, caching or Keras; it handles one image at a time.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from cnn_core.errors import ImageError
from cnn_core.files import FileTooLargeError, NotRegularFileError, read_bounded

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")  # compare lower-cased
ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")  # Pillow format names, checked by content
DATASET_FORMATS = (*ACCEPTED_FORMATS, "TIFF", "AVIF", "HEIF")  # dataset files may also be these
DATASET_SUFFIXES = (*IMAGE_SUFFIXES, ".jfif", ".jpe", ".tif", ".tiff", ".avif", ".heic", ".heif")
DEFAULT_MAX_PIXELS = 40_000_000  # about a 7700x5200 photo; far above any CNN input
DEFAULT_MAX_BYTES = 50 * 2**20

_FORMAT_NAMES = {"WEBP": "WebP", "HEIF": "HEIC"}  # as people call them
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_MAGIC = (  # how JPEG, PNG, GIF, BMP and TIFF (and BigTIFF) files start
    *(b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM"),
    *(b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
)
_WHITE = (255, 255, 255, 255)


def has_image_suffix(name: str | os.PathLike[str]) -> bool:
    """Whether a file name ends in one of `IMAGE_SUFFIXES`, ignoring case."""
    return os.fspath(name).lower().endswith(IMAGE_SUFFIXES)


def has_dataset_suffix(name: str | os.PathLike[str]) -> bool:
    """Whether a file name ends in one of `DATASET_SUFFIXES` (.tif, .heic, ...), ignoring case."""
    return os.fspath(name).lower().endswith(DATASET_SUFFIXES)


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first bytes (16 or more) could start an image in `DATASET_FORMATS`.

    A cheap sniff to decide whether a file is worth holding for decoding; `open_image` decides.
    """
    return (
        head.startswith(_MAGIC)
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head[4:8] == b"ftyp"  # ISO media: AVIF and HEIC
    )


def format_names(formats: Sequence[str]) -> str:
    """ "JPEG, PNG, GIF, BMP or WebP": the formats as people call them, for messages."""
    names = [_FORMAT_NAMES.get(f, f) for f in formats]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def open_image(
    data: bytes | str | os.PathLike[str],
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    formats: Sequence[str] = ACCEPTED_FORMATS,
) -> Image.Image:
    """Decode an image given as bytes or a path into a fully loaded RGB `Image`.

    Animated images and multi-page TIFFs give their first frame; EXIF orientation is applied;
    transparency is composited onto white. `name` is how messages refer to the file (default: the
    path, or "the image"); `formats` are the Pillow format names accepted (`DATASET_FORMATS` for
    dataset files). Raises `ImageError` for anything that is not a safe, complete image in one.
    """
    accepted = format_names(formats)
    if isinstance(data, bytes | bytearray | memoryview):
        label = name or "the image"
        raw = bytes(data)
    else:
        label = name or os.fspath(data)
        raw = _read_limited(Path(data), label=label, max_bytes=max_bytes)
    if len(raw) > max_bytes:
        raise _too_big(label, len(raw), max_bytes)
    if not raw:
        raise ImageError(f"{label} is empty (0 bytes); use a {accepted} image.")
    try:
        # Why locally: Pillow only warns between its two bomb limits; here that is an error too,
        # without changing Pillow's global settings for the rest of the program.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(raw, label=label, max_pixels=max_pixels, formats=formats)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{label} is too large to decode safely ({exc}); resize it to under "
            f"{max_pixels:,} pixels."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{label} is not a {accepted} image (its content was checked, not its name); "
            "convert it to one of those formats."
        ) from None
    except MemoryError:
        raise ImageError(f"{label} needs too much memory to decode; use a smaller image.") from None
    except Exception as exc:  # why: untrusted bytes can make any decoder step fail
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(
            f"{label} is truncated or corrupt ({reason}); re-export or re-download it."
        ) from None


def _read_limited(path: Path, *, label: str, max_bytes: int) -> bytes:
    """The bytes of a file, refusing one bigger than `max_bytes` before reading it all."""
    try:
        return read_bounded(path, max_bytes, follow_links=True)
    except NotRegularFileError:  # a folder, fifo or device: reading could block
        raise ImageError(f"{label} is not a regular file.") from None
    except FileTooLargeError as exc:
        raise _too_big(label, exc.size, max_bytes) from None
    except OSError as exc:
        raise ImageError(f"{label} cannot be read ({exc.strerror or exc}).") from None


def _too_big(label: str, size: int, max_bytes: int) -> ImageError:
    return ImageError(
        f"{label} is {_human_bytes(size)}, more than the {_human_bytes(max_bytes)} limit for an "
        "image; use a smaller file."
    )


def _human_bytes(n: int) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    return f"{n / 2**10:.1f} KB" if n >= 2**10 else f"{n} bytes"


def _decode(raw: bytes, *, label: str, max_pixels: int, formats: Sequence[str]) -> Image.Image:
    """Open (header only), check the declared size, then decode and convert to RGB."""
    brands = _iso_brands(raw)
    heic = "HEIF" in formats and brands & _HEIF_BRANDS and not brands & _AVIF_BRANDS
    if heic and not _heif_plugin():  # registered only now: files without HEIC never need it
        raise ImageError(
            f"{label} is a HEIC photo, which needs the pillow-heif package; install it "
            "(pip install pillow-heif) or convert the photo to JPEG."
        )
    if "AVIF" in formats and brands & _AVIF_BRANDS and not _avif_support():
        raise ImageError(
            f"{label} is an AVIF image, which this Pillow cannot read; upgrade Pillow "
            "(pip install -U pillow) or convert the image to JPEG."
        )
    Image.init()  # once: every plugin's opener, so that the next line can look them up
    readable = [f for f in formats if f in Image.OPEN]  # HEIF: only once pillow-heif registered
    with Image.open(io.BytesIO(raw), formats=readable) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                f"{label} declares {width}x{height} pixels ({width * height:,}), more than the "
                f"limit of {max_pixels:,}; resize it to a smaller image."
            )
        if width <= 0 or height <= 0:
            raise ImageError(f"{label} declares an empty {width}x{height} picture.")
        image.seek(0)  # animations: the first frame
        image.load()
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception:  # why: a broken EXIF block should not reject good pixels
            upright = image.copy()
        return to_rgb(upright)  # exif_transpose made a copy, so nothing refers to the file


def _iso_brands(raw: bytes) -> set[bytes]:
    """The brands an ISO media file (AVIF, HEIC) declares in its first box; empty for others."""
    if raw[4:8] != b"ftyp":
        return set()
    end = min(int.from_bytes(raw[:4], "big"), len(raw), 256)  # the box: major, minor, compatible
    return {raw[8:12]} | {raw[i : i + 4] for i in range(16, end - 3, 4)}


@functools.cache
def _heif_plugin() -> bool:
    """Register pillow-heif's HEIC opener with Pillow, once; False when it is not installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


@functools.cache
def _avif_support() -> bool:
    return bool(features.check("avif"))


def to_rgb(image: Image.Image) -> Image.Image:
    """The picture in mode RGB: transparency onto white, 16-bit and float greys scaled to 8 bits."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _scale_to_uint8(np.asarray(image), sixteen_bit=mode.startswith("I;16"))
        return Image.fromarray(grey).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on palette transparency given as bytes
            rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, _WHITE)
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr


def _scale_to_uint8(values: np.ndarray, *, sixteen_bit: bool) -> np.ndarray:
    """Grey levels of any depth as uint8, keeping relative brightness rather than clipping."""
    if sixteen_bit:
        return (values.astype(np.uint16) >> 8).astype(np.uint8)  # 0..65535 -> 0..255
    if values.dtype.kind == "f":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:  # a [0, 1] float picture
            return np.round(values * 255.0).astype(np.uint8)
    else:
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 65535:
            # Why: 8-bit data stored as 32-bit stays as is; 16-bit data loses its low byte.
            return values.astype(np.uint8) if high <= 255 else (values >> 8).astype(np.uint8)
    if low >= 0 and high <= 255:
        return np.round(values).astype(np.uint8)
    span = (high - low) or 1
    return np.round((values.astype(np.float64) - low) * (255.0 / span)).astype(np.uint8)


def to_array(image: Image.Image, *, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """The picture resized to `size` = (height, width), as a uint8 array (height, width, channels).

    Resizing uses bilinear filtering, the interpolation Keras' own image loaders default to, with
    Pillow's `reducing_gap`: a big downscale (a photo to 32x32) first box-averages by an integer
    factor, which is fast and avoids aliasing, then finishes bilinearly.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    height, width = size
    picture = image if image.mode in ("RGB", "L") else to_rgb(image)
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    target = "L" if channels == 1 else "RGB"
    if picture.mode != target:
        picture = picture.convert(target)
    array = np.asarray(picture, dtype=np.uint8)
    return array[:, :, np.newaxis] if channels == 1 else array
