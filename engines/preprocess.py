"""Turn a drawn or uploaded image into an MNIST-like 28x28, the way the MNIST authors did.

MNIST digits are white on black, their ink's bounding box is scaled (keeping the aspect
ratio, with anti-aliasing) so that its longer side is 20 px, and the result sits in a 28x28
field with its centre of mass at the centre. A model trained on MNIST only recognises
digits prepared the same way, so every input goes through :func:`find_digit` (or
:func:`to_mnist`, the same without the reason):

1. to grayscale in 0..1 with the digit bright: a canvas's RGBA stroke pixels, or a photo of
   a dark digit on light paper, inverted when its border (the paper) is light;
2. the background subtracted: the paper's level (a plane fitted to the border, for a photo
   lit from one side) plus its grain, so plain, unevenly lit or grainy paper has no ink;
3. cropped to the ink's bounding box (pixels above a small fraction of the brightest one);
4. longer side scaled to 20 px, contrast stretched to 0..255;
5. pasted in 28x28 with the centre of mass at (14, 14) (row, column).

Images (uploads, PIL images, arrays) larger than :data:`MAX_SIDE` are box-averaged down
before step 1 (the output is 28x28 anyway), so a huge photo costs megabytes, not gigabytes
of float copies.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = 28  # output side
BOX = 20  # longer side of the digit's bounding box in the output
CENTRE = 14.0  # where the centre of mass goes, in pixel-index coordinates (as in MNIST)
INK_FRACTION = 0.2  # ink = brighter than this fraction of the brightest pixel
MIN_PEAK = 0.1  # brightest pixel (0..1, above background) below this: nothing drawn
MIN_INK_PIXELS = 6  # fewer ink pixels than this (or 1e-4 of the image): stray specks
MIN_INK_SHARE = 1e-4
GRAIN_SIGMAS = 5  # paper above its fitted level by less than this many sigmas is not ink
MIN_DIGIT_SHARE = 0.1  # ink box's longer side below this share of the image's: a speck
MAX_SIDE = 1024  # longer side of an upload or PIL image after the first shrink
NOT_AN_IMAGE = "not an image (expected a PNG or JPEG picture)"


class NoDigit(ValueError):
    """An image with nothing to read: blank, or only a speck; the message says which."""


BLANK = "no digit found: the picture is blank"
SPECK = (
    "only a small speck of ink: a digit should span at least a tenth of the picture "
    "(draw it larger, or crop the photo closer)"
)
DOT_WIDTHS = 2  # drawn ink spanning no more than this many pen widths is a dot
DOT = "only a dot: a digit should span more than twice the stroke width (draw it larger)"


def to_mnist(image: Any) -> np.ndarray | None:
    """An MNIST-like uint8 (28, 28) image of the digit in ``image``, or None without ink.

    ``image`` is a 2-D grayscale array, an RGB/RGBA (H, W, 3|4) array (uint8, or float in
    0..1 or 0..255), or a PIL image: a drawing canvas's RGBA ``image_data`` (white strokes,
    transparent or black background) or a photo/scan of a dark digit on light paper.
    A lone speck (see :func:`find_digit`) counts as no ink.
    """
    try:
        return find_digit(image)
    except NoDigit:
        return None


def find_digit(image: Any, pen_width: float = 0) -> np.ndarray:
    """:func:`to_mnist`, but raising :class:`NoDigit` with the reason instead of returning None.

    A speck is refused because scaling it up to 20 px turns a dot into a filled disc that
    models read as a confident "0" or "8"; no real digit is that small next to its picture.
    On a canvas, one click draws a disc as wide as the pen: so ink drawn with ``pen_width``
    must also span more than twice that width.
    """
    ink = ink_map(image)
    box = ink_bounding_box(ink)
    if box is None:
        raise NoDigit(BLANK)
    top, bottom, left, right = box
    extent = max(bottom - top, right - left)
    if extent < MIN_DIGIT_SHARE * max(ink.shape):
        raise NoDigit(SPECK)
    if extent <= DOT_WIDTHS * pen_width:
        raise NoDigit(DOT)
    digit = scale_longer_side(ink[top:bottom, left:right], BOX)
    return paste_centred_by_mass(digit, SIZE)


def load_image_file(data: bytes) -> np.ndarray:
    """Decode an uploaded PNG/JPEG (or any image PIL reads) into an L, RGB or RGBA array.

    Longer side at most :data:`MAX_SIDE`. Raises ``ValueError("not an image …")`` for
    anything PIL does not recognise, ``ValueError("a damaged or incomplete PNG picture …")``
    for a picture whose data does not decode, and :class:`ImageTooLarge` (also a
    ``ValueError``) for more pixels than PIL's decompression-bomb limit, judged from the
    header alone.
    """
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as err:  # PIL's own refusal, above twice its limit
        raise ImageTooLarge(_too_large_message(None)) from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(NOT_AN_IMAGE) from err
    with img:
        _refuse_too_large(img.size)
        kind = img.format or "image"  # before exif_transpose, whose copy has no format
        try:
            factor = _shrink_factor(img.size)
            img.draft(None, (img.width // factor, img.height // factor))  # JPEG: decode smaller
            img.load()
            img = ImageOps.exif_transpose(img)  # phone photos: apply the stored rotation
            return np.asarray(_plain_and_small(img))
        except (OSError, ValueError, SyntaxError) as err:  # a cut-off download, say
            raise ValueError(f"a damaged or incomplete {kind} picture ({err})") from err


class ImageTooLarge(ValueError):
    """An upload with more pixels than PIL's decompression-bomb limit."""


def _refuse_too_large(size: tuple[int, int]) -> None:
    """PIL only warns between its limit and twice that; refuse those too, before decoding."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise ImageTooLarge(_too_large_message(size))


def _too_large_message(size: tuple[int, int] | None) -> str:
    limit = f"more than the {Image.MAX_IMAGE_PIXELS or 0:,} pixels allowed"
    found = f"{size[0]}x{size[1]} pixels, {limit}" if size else limit
    return f"too large ({found}): please upload a smaller picture"


def _shrink_factor(size: tuple[int, int]) -> int:
    """The whole-number factor that brings the longer side down to :data:`MAX_SIDE`."""
    return max(1, -(-max(size) // MAX_SIDE))


def _plain_and_small(img: Image.Image) -> Image.Image:
    """``img`` in mode L, RGB or RGBA, box-averaged down if longer than :data:`MAX_SIDE`."""
    img = _plain_mode(img)
    factor = _shrink_factor(img.size)
    return img.reduce(factor) if factor > 1 else img


def _plain_mode(img: Image.Image) -> Image.Image:
    if img.mode in ("L", "RGB", "RGBA"):
        return img
    if img.mode in ("LA", "PA") or "transparency" in img.info:
        return img.convert("RGBA")
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return _scaled_to_l(img)
    return img.convert("RGB")


def _scaled_to_l(img: Image.Image) -> Image.Image:
    """16-bit or float grayscale to 8-bit by its own range (PIL's convert would clip)."""
    values = np.asarray(img, dtype=np.float64)
    peak = values.max()
    scaled = values / peak * 255 if peak > 0 else values
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


# --- 1-2: grayscale, digit bright, background removed --------------------------------------
def ink_map(image: Any) -> np.ndarray:
    """float32 (H, W) in 0..1: how much ink each pixel holds (digit bright, background 0)."""
    pixels = _as_float_array(image)
    if pixels.ndim == 2:
        gray = pixels
    elif pixels.ndim == 3 and pixels.shape[2] in (1, 3, 4):
        gray = _gray_from_channels(pixels)
    else:
        raise ValueError(f"expected a 2-D or (H, W, 1|3|4) image, got shape {pixels.shape}")
    border = _border_pixels(gray)
    if np.median(border) > 0.5:  # light paper with a dark digit: make it white on black
        gray, border = 1.0 - gray, 1.0 - border
    background = _lighting(gray.shape, border) + GRAIN_SIGMAS * _grain(border)
    return np.clip(gray - background, 0.0, 1.0).astype(np.float32)


def _as_float_array(image: Any) -> np.ndarray:
    """Any supported input as float64 in 0..1, a large image shrunk first (see module doc)."""
    if isinstance(image, Image.Image):
        image = np.asarray(_plain_and_small(image))
    pixels = np.asarray(image)
    return np.nan_to_num(_box_averaged(pixels)) / _full_scale(pixels)


def _full_scale(pixels: np.ndarray) -> float:
    """The value that means full intensity: 1 (bool, float 0..1), 255 or 65535."""
    if pixels.dtype == np.bool_:
        return 1.0
    if np.issubdtype(pixels.dtype, np.integer):
        return 255.0 if pixels.dtype.itemsize == 1 or pixels.max(initial=0) <= 255 else 65535.0
    if np.issubdtype(pixels.dtype, np.floating):
        return 255.0 if np.fmax.reduce(pixels, axis=None, initial=0.0) > 1.0 else 1.0
    raise ValueError(f"unsupported image data type {pixels.dtype}")


def _box_averaged(pixels: np.ndarray) -> np.ndarray:
    """float64 ``pixels``, box-averaged down when the longer side exceeds :data:`MAX_SIDE`.

    The mean reduces blocks of the array in place, so a huge array never gets a full-size
    float64 copy (8x a uint8 image).
    """
    factor = _shrink_factor(pixels.shape[:2]) if pixels.ndim >= 2 else 1
    if factor == 1:
        return pixels.astype(np.float64)
    height, width = (side // factor * factor for side in pixels.shape[:2])
    blocks = pixels[:height, :width].reshape(
        height // factor, factor, width // factor, factor, *pixels.shape[2:]
    )
    return blocks.mean(axis=(1, 3), dtype=np.float64)


def _gray_from_channels(pixels: np.ndarray) -> np.ndarray:
    """Luminance; for RGBA, transparent pixels count as background.

    A canvas gives white strokes on transparent (or black) pixels: luminance x alpha. A PNG
    with a *dark* digit on a transparent background has its ink in the alpha channel only,
    so there the alpha channel is the ink.
    """
    if pixels.shape[2] == 1:
        return pixels[:, :, 0]
    luminance = pixels[:, :, :3] @ np.array([0.299, 0.587, 0.114])
    if pixels.shape[2] == 3:
        return luminance
    alpha = pixels[:, :, 3]
    visible = alpha > 0
    if visible.any() and not visible.all() and np.median(luminance[visible]) < 0.5:
        return alpha
    return luminance * alpha


def _border_pixels(gray: np.ndarray) -> np.ndarray:
    """The outermost rows and columns: paper (or canvas background) in any sensible picture.
    Their order (top, bottom, left, right) is the one :func:`_border_positions` gives."""
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _border_positions(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each pixel :func:`_border_pixels` returns."""
    height, width = shape
    across, down = np.arange(width), np.arange(height)
    rows = np.concatenate([np.zeros(width), np.full(width, height - 1), down, down])
    cols = np.concatenate([across, across, np.zeros(height), np.full(height, width - 1)])
    return rows, cols


def _lighting(shape: tuple[int, int], border: np.ndarray) -> np.ndarray:
    """The paper's level at every pixel: a plane fitted to the border.

    A photo is often lit more on one side; a single level would leave the darker side of the
    paper as a haze of ink. The plane is fitted twice, the second time without the border
    pixels far from the first fit (a digit touching the edge). A canvas's plane is flat zero.
    """
    rows, cols = _border_positions(shape)
    height, width = shape
    terms = np.column_stack([np.ones_like(rows), rows / height, cols / width])
    keep = np.ones(len(border), dtype=bool)
    for _ in range(2):
        coefficients = np.linalg.lstsq(terms[keep], border[keep], rcond=None)[0]
        misfit = np.abs(border - terms @ coefficients)
        keep = misfit <= 3 * np.median(misfit) + 1e-6
    grid_rows, grid_cols = np.indices(shape, dtype=np.float64)
    plane = coefficients[0] + coefficients[1] * grid_rows / height
    return plane + coefficients[2] * grid_cols / width


def _grain(border: np.ndarray) -> float:
    """The noise (camera grain) of the paper, as a standard deviation: zero for a canvas or
    a clean scan.

    Estimated robustly from neighbouring border pixels' differences, so that uneven lighting,
    a smooth change, does not count as grain. On a grainy photo, treating :data:`GRAIN_SIGMAS`
    of it as background keeps noise pixels scattered over the paper from counting as ink,
    which would stretch the crop to the whole picture.
    """
    steps = np.abs(np.diff(border))
    return 1.4826 * float(np.median(steps)) / np.sqrt(2.0)  # differences: sigma x sqrt 2


# --- 3: crop ---------------------------------------------------------------------------------
def ink_bounding_box(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), exclusive ends, of the ink; None when there is none.

    Faint pixels (below :data:`INK_FRACTION` of the brightest) do not count, so noise and
    anti-aliasing fringes do not widen the box; a few stray pixels are not a digit.
    """
    peak = float(ink.max(initial=0.0))
    if peak < MIN_PEAK:
        return None
    mask = ink > INK_FRACTION * peak
    if mask.sum() < max(MIN_INK_PIXELS, MIN_INK_SHARE * mask.size):
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


# --- 4: scale --------------------------------------------------------------------------------
def scale_longer_side(crop: np.ndarray, longer: int) -> np.ndarray:
    """Resize so the longer side is ``longer`` px, keeping aspect; float 0..255 out."""
    height, width = crop.shape
    factor = longer / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))  # PIL: (w, h)
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(
        size, Image.Resampling.LANCZOS
    )
    scaled = np.clip(np.asarray(resized, dtype=np.float64), 0.0, None)
    peak = scaled.max(initial=0.0)
    return scaled * (255.0 / peak) if peak > 0 else scaled


# --- 5: centre -------------------------------------------------------------------------------
def paste_centred_by_mass(digit: np.ndarray, size: int) -> np.ndarray:
    """Place ``digit`` in a ``size`` x ``size`` field with its centre of mass at the centre.

    The shift is the rounded centre-of-mass offset, as for MNIST; it is limited so that no
    ink falls off the field (for lopsided shapes the centre of mass then stays a little off).
    """
    height, width = digit.shape
    rows, cols = np.indices(digit.shape)
    mass = digit.sum()
    centre_row = (rows * digit).sum() / mass
    centre_col = (cols * digit).sum() / mass
    top = _clamp(_round_half_up(CENTRE - centre_row), 0, size - height)
    left = _clamp(_round_half_up(CENTRE - centre_col), 0, size - width)
    field = np.zeros((size, size), dtype=np.float64)
    field[top : top + height, left : left + width] = digit
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
