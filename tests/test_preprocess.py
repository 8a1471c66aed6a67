"""engines.preprocess: any drawing or upload becomes an MNIST-like 28x28, or None without ink."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engines.data import load_mnist
from engines.preprocess import MAX_SIDE, NoDigit, find_digit, load_image_file, to_mnist

HUGE = 6000  # side of the "huge upload" tests: 36 M pixels, under PIL's bomb limit
PEAK_BYTES = 96 * 2**20  # traced (NumPy) memory a huge image may cost; was GBs (float64 copies)


# --- drawing helpers -------------------------------------------------------------------------
def draw_seven(
    canvas: tuple[int, int] = (280, 280),
    box: tuple[int, int, int, int] = (70, 40, 200, 240),
    width: int = 18,
    ink: int = 255,
    paper: int = 0,
) -> Image.Image:
    """A "7" (top bar + diagonal) inside ``box`` = (left, top, right, bottom), mode L."""
    img = Image.new("L", canvas, paper)
    left, top, right, bottom = box
    pen = ImageDraw.Draw(img)
    pen.line([(left, top), (right, top), (left + (right - left) // 3, bottom)], ink, width)
    return img


def draw_zero(
    canvas: tuple[int, int] = (280, 280),
    box: tuple[int, int, int, int] = (90, 40, 190, 240),
    width: int = 18,
) -> Image.Image:
    """A "0" (an upright ellipse) inside ``box``, white on black, mode L."""
    img = Image.new("L", canvas, 0)
    ImageDraw.Draw(img).ellipse(box, outline=255, width=width)
    return img


def ink_box_longer_side(digit: np.ndarray) -> int:
    rows = np.flatnonzero((digit > 64).any(axis=1))
    cols = np.flatnonzero((digit > 64).any(axis=0))
    return max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(digit.shape)
    mass = digit.astype(np.float64).sum()
    return (rows * digit).sum() / mass, (cols * digit).sum() / mass


def as_rgba_canvas(gray: Image.Image, opaque_background: bool) -> np.ndarray:
    """What a drawing canvas returns: white strokes, transparent (or black) elsewhere."""
    strokes = np.asarray(gray)
    rgba = np.zeros((*strokes.shape, 4), dtype=np.uint8)
    rgba[..., :3] = 255 if not opaque_background else strokes[..., None]
    rgba[..., 3] = 255 if opaque_background else strokes
    return rgba


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def huge_seven(mode: str = "L", side: int = HUGE) -> Image.Image:
    """``draw_seven()`` drawn at ``side`` x ``side``: a dark 7 on white paper, in ``mode``."""
    k = side / 280
    box = (round(70 * k), round(40 * k), round(200 * k), round(240 * k))
    return draw_seven((side, side), box, width=round(18 * k), ink=0, paper=255).convert(mode)


def traced_peak(action) -> tuple[object, int]:
    """``action()``'s result and the peak traced memory (NumPy allocations count) it took."""
    tracemalloc.start()
    try:
        return action(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def assert_mnist_like(digit: np.ndarray | None) -> None:
    assert digit is not None
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() == 255
    assert abs(ink_box_longer_side(digit) - 20) <= 1
    row, col = centre_of_mass(digit)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1, (row, col)


# --- geometry --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "drawing",
    [
        pytest.param(draw_seven(), id="centred"),
        pytest.param(draw_seven(box=(5, 5, 80, 100), width=10), id="off-centre-corner"),
        pytest.param(draw_seven(box=(250, 230, 270, 270), width=3), id="off-centre-edge"),
        pytest.param(draw_seven((200, 200), box=(100, 90, 112, 112), width=2), id="tiny"),
        pytest.param(draw_seven((1000, 1000), box=(50, 40, 950, 960), width=70), id="huge"),
        pytest.param(draw_seven(width=40), id="thick"),
        pytest.param(draw_seven(width=2), id="thin"),
        pytest.param(draw_zero(), id="zero"),
        pytest.param(draw_zero(box=(20, 130, 270, 200), width=12), id="wide-zero"),
        pytest.param(draw_seven((213, 97), box=(10, 20, 60, 90), width=7), id="odd-size"),
    ],
)
def test_any_drawing_becomes_a_centred_20px_digit(drawing: Image.Image) -> None:
    assert_mnist_like(to_mnist(drawing))


def test_wide_digit_keeps_its_aspect_ratio() -> None:
    digit = to_mnist(draw_zero(box=(20, 130, 270, 200), width=12))
    rows = np.flatnonzero((digit > 64).any(axis=1))
    height = rows[-1] - rows[0] + 1
    assert 4 <= height <= 8  # 70/250 of 20 px is about 6


def test_position_on_the_canvas_does_not_matter() -> None:
    here = to_mnist(draw_seven(box=(10, 10, 140, 210)))
    there = to_mnist(draw_seven(box=(140, 70, 270, 270)))
    assert np.array_equal(here, there)


def test_same_drawing_on_odd_size_canvas_gives_the_same_digit() -> None:
    big = draw_seven((280, 280), box=(20, 30, 80, 190), width=9)
    odd = Image.new("L", (97, 213), 0)
    odd.paste(big.crop((0, 0, 97, 213)), (0, 0))
    assert np.array_equal(to_mnist(big), to_mnist(odd))


# --- input kinds -----------------------------------------------------------------------------
def test_l_rgb_rgba_float_and_pil_inputs_give_the_same_digit() -> None:
    drawing = draw_seven((213, 97), box=(20, 10, 190, 85), width=9)
    reference = to_mnist(np.asarray(drawing))
    variants = {
        "PIL L": drawing,
        "PIL RGB": drawing.convert("RGB"),
        "RGB array": np.asarray(drawing.convert("RGB")),
        "canvas RGBA, transparent background": as_rgba_canvas(drawing, opaque_background=False),
        "canvas RGBA, black background": as_rgba_canvas(drawing, opaque_background=True),
        "float 0..1": np.asarray(drawing) / 255.0,
        "float 0..255": np.asarray(drawing).astype(np.float32),
    }
    for name, image in variants.items():
        result = to_mnist(image)
        assert result is not None, name
        assert np.abs(result.astype(int) - reference.astype(int)).max() <= 1, name


def test_dark_digit_on_light_paper_is_inverted() -> None:
    white_on_black = to_mnist(draw_seven())
    upload = draw_seven(ink=30, paper=225)  # a pen on paper
    result = to_mnist(load_image_file(png_bytes(upload.convert("RGB"))))
    assert result is not None
    assert result[0, 0] == 0  # background black
    assert correlation(result, white_on_black) > 0.98


def test_jpeg_photo_of_a_digit_gives_the_same_digit() -> None:
    white_on_black = to_mnist(draw_seven())
    photo = draw_seven(ink=40, paper=210).convert("RGB")
    result = to_mnist(load_image_file(png_bytes(photo, "JPEG")))
    assert correlation(result, white_on_black) > 0.95


@pytest.mark.parametrize("grain", [6, 12, 20])
def test_grainy_photo_is_cropped_to_the_digit_not_the_whole_picture(grain: int) -> None:
    """Camera grain (Gaussian noise, in grey levels) on the paper is not ink."""
    white_on_black = to_mnist(draw_seven())
    photo = np.asarray(draw_seven(ink=40, paper=200), dtype=np.float64)
    photo += np.random.default_rng(0).normal(0.0, grain, photo.shape)
    jpeg = png_bytes(
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).convert("RGB"), "JPEG"
    )
    result = to_mnist(load_image_file(jpeg))
    assert_mnist_like(result)
    assert correlation(result, white_on_black) > 0.95


def test_unevenly_lit_photo_is_still_cropped_to_the_digit() -> None:
    """Paper from 240 on the left to 190 on the right: a smooth change, not grain."""
    white_on_black = to_mnist(draw_seven())
    photo = np.asarray(draw_seven(ink=40, paper=255), dtype=np.float64)
    photo = np.minimum(photo, np.linspace(240, 190, photo.shape[1])[np.newaxis, :])
    result = to_mnist(Image.fromarray(photo.astype(np.uint8)))
    assert_mnist_like(result)
    assert correlation(result, white_on_black) > 0.95


def test_dark_digit_on_transparent_png_is_found() -> None:
    strokes = np.asarray(draw_seven())
    rgba = np.zeros((*strokes.shape, 4), dtype=np.uint8)  # black ink, alpha = the strokes
    rgba[..., 3] = strokes
    result = to_mnist(load_image_file(png_bytes(Image.fromarray(rgba, "RGBA"))))
    assert correlation(result, to_mnist(draw_seven())) > 0.98


# --- no ink ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "blank",
    [
        pytest.param(np.zeros((280, 280, 4), np.uint8), id="empty canvas"),
        pytest.param(np.zeros((280, 280), np.float32), id="black float"),
        pytest.param(np.full((120, 90, 3), 255, np.uint8), id="white paper"),
        pytest.param(np.full((64, 64), 137, np.uint8), id="uniform gray"),
        pytest.param(np.random.default_rng(0).uniform(0, 0.05, (280, 280)), id="faint noise"),
    ],
)
def test_blank_or_uniform_image_has_no_digit(blank: np.ndarray) -> None:
    assert to_mnist(blank) is None


def test_a_few_stray_pixels_are_not_a_digit() -> None:
    speck = np.zeros((280, 280, 4), np.uint8)
    speck[100:102, 50:52] = 255
    speck[200, 240] = 255
    assert to_mnist(speck) is None


def test_a_single_dot_is_a_speck_not_a_confident_digit() -> None:
    dot = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(dot).ellipse((131, 131, 149, 149), fill=255)  # one click, stroke 18
    assert to_mnist(dot) is None
    with pytest.raises(NoDigit, match="small speck"):
        find_digit(dot)
    with pytest.raises(NoDigit, match="blank"):
        find_digit(np.zeros((280, 280, 4), np.uint8))
    assert_mnist_like(find_digit(draw_seven(box=(120, 110, 150, 150), width=4)))  # small is fine


def test_a_click_with_a_wide_pen_is_a_dot_but_a_digit_drawn_with_it_is_read() -> None:
    click = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(click).ellipse((120, 120, 160, 160), fill=255)  # one click, stroke 40
    find_digit(click)  # wider than a tenth of the canvas: only the pen width tells
    with pytest.raises(NoDigit, match="only a dot"):
        find_digit(click, pen_width=40)
    assert_mnist_like(find_digit(draw_seven(width=40), pen_width=40))


def test_unsupported_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        to_mnist(np.zeros((10, 10, 2)))


# --- real MNIST ------------------------------------------------------------------------------
def test_real_mnist_digits_pass_through_nearly_unchanged() -> None:
    """MNIST digits are already prepared this way: to_mnist must (almost) leave them alone."""
    digits = load_mnist(allow_download=False).x_test[:200]
    scores = np.array([correlation(digit, to_mnist(digit)) for digit in digits])
    assert np.median(scores) > 0.99
    assert (scores > 0.9).mean() > 0.95


# --- uploads ---------------------------------------------------------------------------------
def test_uploaded_png_decodes_to_an_array() -> None:
    image = load_image_file(png_bytes(draw_seven((97, 213))))
    assert image.shape == (213, 97) and image.dtype == np.uint8


@pytest.mark.parametrize(
    "garbage",
    [b"", b"hello, not a picture", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
    ids=["empty", "text", "truncated png"],
)
def test_garbage_upload_raises_value_error(garbage: bytes) -> None:
    with pytest.raises(ValueError, match="not an image"):
        load_image_file(garbage)


def test_a_picture_cut_short_is_called_damaged_not_a_non_image() -> None:
    whole = png_bytes(draw_seven())
    with pytest.raises(ValueError, match="^a damaged or incomplete PNG picture"):
        load_image_file(whole[: len(whole) // 2])


# --- huge images -----------------------------------------------------------------------------
def test_huge_upload_gives_the_same_digit_with_bounded_memory() -> None:
    upload = png_bytes(huge_seven("L"))
    pixels, peak = traced_peak(lambda: load_image_file(upload))
    assert max(pixels.shape) <= MAX_SIDE  # shrunk while decoding
    digit, peak_mnist = traced_peak(lambda: to_mnist(pixels))
    assert_mnist_like(digit)
    assert correlation(digit, to_mnist(draw_seven())) > 0.98
    assert max(peak, peak_mnist) < PEAK_BYTES, (peak, peak_mnist)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_huge_pil_image_gives_the_same_digit_with_bounded_memory(mode: str) -> None:
    image = huge_seven(mode, 4000)
    digit, peak = traced_peak(lambda: to_mnist(image))
    assert_mnist_like(digit)
    assert correlation(digit, to_mnist(draw_seven())) > 0.98
    assert peak < PEAK_BYTES, peak


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_huge_numpy_array_gives_the_same_digit_with_bounded_memory(mode: str) -> None:
    pixels = np.asarray(huge_seven(mode, 4000))  # uint8; a float64 copy alone: 128-512 MB
    digit, peak = traced_peak(lambda: to_mnist(pixels))
    assert_mnist_like(digit)
    assert correlation(digit, to_mnist(draw_seven())) > 0.98
    assert peak < PEAK_BYTES, peak


def test_large_phone_photo_keeps_its_exif_rotation() -> None:
    photo = huge_seven("RGB", 2400)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    photo.crop((0, 0, 2400, 1600)).save(buffer, "JPEG", exif=exif)
    pixels = load_image_file(buffer.getvalue())
    assert pixels.shape[0] > pixels.shape[1]  # stored 2400 wide x 1600 high, shown upright
    assert max(pixels.shape) <= MAX_SIDE


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "size",
    [
        pytest.param((120, 100), id="above the limit (PIL only warns)"),
        pytest.param((300, 300), id="above twice the limit (PIL refuses)"),
    ],
)
def test_upload_above_the_decompression_bomb_limit_is_refused_as_too_large(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)  # the real one is ~89 M pixels
    upload = png_bytes(Image.new("L", size, 255))
    message = r"too large \(.*more than the 10,000 pixels allowed\): please upload a smaller"
    with pytest.raises(ValueError, match=message):
        load_image_file(upload)
