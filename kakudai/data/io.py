"""Image files in and out. The only module that touches files, uint8, 16-bit and modes.

Reading (:func:`read_image`) turns any supported file into an :class:`ImageData`:
colour samples (H, W, 1) gray or (H, W, 3) RGB as uint8 or uint16, an optional
alpha plane, and the metadata that must survive into the output (ICC profile,
EXIF with the orientation reset). Modes are normalised on the way in:

* ``1``/``L`` -> gray; ``P``/``PA`` -> RGB(A) (palette expanded); ``La``/``RGBa`` ->
  straight alpha; ``YCbCr``/``RGBX`` -> RGB;
* ``CMYK`` -> RGB through the file's ICC profile (to sRGB, and the output then
  carries an sRGB profile), or Pillow's naive conversion when there is none;
* 16-bit gray (``I;16*``, ``I``) and 16-bit RGB/RGBA PNG and TIFF stay 16-bit.
  Pillow decodes 16-bit colour to 8 bits, so the low bytes are decoded in a
  second pass with the byte order swapped (see :func:`_read_low_bytes`);
* the EXIF orientation is applied to the pixels.

The pixel count is checked from the header before anything is decoded
(``max_pixels``: the decompression-bomb guard).

Writing (:func:`write_image`) is atomic: a temporary file in the destination
folder, renamed into place, removed on any failure or interrupt.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import sys
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
from PIL import Image, ImageFile

from .formats import DEFAULT_MAX_PIXELS, FORMAT_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

if TYPE_CHECKING:
    import torch

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "FORMAT_EXTENSIONS", "DEFAULT_MAX_PIXELS", "ImageData",
           "ImageReadError", "ImageWriteError", "read_image", "write_image", "from_pil", "to_pil",
           "format_for_path", "read_image_uint8", "srgb_profile", "atomic_output", "uint8_to_tensor",
           "tensor_to_uint8"]

_ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}
_EXIF_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF", "GIF"}
_16BIT_FORMATS = {"PNG", "TIFF"}
_ORIENTATION = 0x0112


class ImageReadError(Exception):
    """An image file could not be read. ``str(e)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class ImageWriteError(Exception):
    """An image file could not be written. ``str(e)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass
class ImageData:
    """A decoded image and the metadata an output must carry.

    ``pixels``: (H, W, 1) gray or (H, W, 3) RGB; uint8, uint16, or float32 in [0, 1].
    ``alpha``: (H, W) of the same dtype, or None. ``icc``: ICC profile bytes.
    ``exif``: EXIF block (orientation already applied and reset to 1).
    ``mode``: the source's Pillow mode, for messages. ``jpeg_quality``: see below.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    icc: bytes | None = None
    exif: bytes | None = None
    mode: str = ""
    # The IJG quality of a JPEG source, read from its luminance quantisation table
    # (None for other formats); what the automatic denoising trusts first.
    jpeg_quality: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def bits(self) -> int:
        return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(self.pixels.dtype, 32)

    def with_pixels(self, pixels: np.ndarray, alpha: np.ndarray | None) -> "ImageData":
        """A copy with new samples and the same metadata."""
        return replace(self, pixels=pixels, alpha=alpha)


# --------------------------------------------------------------------------- reading
def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """Decode an image file, EXIF-upright, modes normalised (see the module docstring).

    Raises :class:`ImageReadError` (never anything else for a bad file) when the
    file is missing, empty, unreadable, corrupt, truncated, of an unsupported
    kind, or has more than ``max_pixels`` pixels according to its header.
    Multi-frame files (animated GIF/PNG/WebP, multi-page TIFF) give their first frame.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise ImageReadError(path, "is a folder, not an image file")
        if path.stat().st_size == 0:
            raise ImageReadError(path, "empty file (0 bytes)")
        with _pillow_pixel_limit(max_pixels), Image.open(path) as im:
            _check_size(path, im.size, max_pixels)
            sixteen = _is_16bit_colour(im)
            gray_alpha = sixteen and _tile_rawmode(im.tile[0]).startswith("LA;")  # type: ignore[union-attr]
            im.load()
            orientation = _orientation(im)
            data = _normalise(im)
            if sixteen:
                data = _with_low_bytes(path, data, im)
            if gray_alpha:  # Pillow expands 16-bit gray+alpha to RGBA
                data = data.with_pixels(np.ascontiguousarray(data.pixels[:, :, :1]), data.alpha)
        return _apply_orientation(data, orientation)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(path, "not an image file, or a format kakudai cannot read") from None
    except Image.DecompressionBombError:
        raise ImageReadError(path, f"more than {max_pixels} pixels (--max-pixels)") from None
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this image") from None
    except Exception as e:  # noqa: BLE001  Pillow raises many kinds on corrupt data
        _reraise_interrupt(e)
        raise ImageReadError(path, f"corrupt or truncated image ({_describe(e)})") from None


def from_pil(im: Image.Image) -> ImageData:
    """An in-memory PIL image as :class:`ImageData` (EXIF orientation applied)."""
    im.load()
    return _apply_orientation(_normalise(im), _orientation(im))


def _describe(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return msg or type(e).__name__


class _pillow_pixel_limit:
    """Our pixel limit instead of Pillow's global default, and Pillow's warnings silenced.

    Pillow keeps its limit in a module global, so this is not thread-safe across
    concurrent reads with different limits; the CLI reads one file at a time.
    """

    def __init__(self, max_pixels: int | None):
        self.max_pixels = max_pixels

    def __enter__(self) -> None:
        self.saved = Image.MAX_IMAGE_PIXELS
        self.warn = warnings.catch_warnings()
        self.warn.__enter__()
        # Pillow warns about oddities of damaged files (EXIF, TIFF tags, bomb size) on
        # stderr; the outcome is what counts: an image, or one ImageReadError.
        warnings.simplefilter("ignore")
        # Pillow raises above 2x its limit; ours is checked exactly in _check_size.
        Image.MAX_IMAGE_PIXELS = None if self.max_pixels is None else self.max_pixels // 2 + 1

    def __exit__(self, *exc: object) -> None:
        Image.MAX_IMAGE_PIXELS = self.saved
        self.warn.__exit__(*exc)


def _check_size(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageReadError(path, f"invalid size {w}x{h} in the header")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageReadError(path, f"{w}x{h} is {w * h / 1e6:.1f} megapixels, over the limit of "
                                   f"{max_pixels / 1e6:g} (--max-pixels)")


def _orientation(im: Image.Image) -> int:
    try:
        o = int(im.getexif().get(_ORIENTATION, 1))
    except Exception:  # noqa: BLE001  a corrupt EXIF block must not lose the image
        return 1
    return o if 1 <= o <= 8 else 1


# A TIFF's getexif() is its first IFD: these tags describe that file's pixel
# layout (size, samples, strips, tiles, compression, ICC) and must not be
# copied onto an output with another size and layout.
_LAYOUT_TAGS = {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 290,
                291, 317, 318, 319, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347, 529, 530, 531,
                532, 34675}


def _exif_bytes(im: Image.Image) -> bytes | None:
    """The EXIF block with the orientation reset to 1 (the pixels are made upright)."""
    try:
        exif = im.getexif()
        for tag in _LAYOUT_TAGS & set(exif):
            del exif[tag]
        if not len(exif):
            return None
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        return exif.tobytes()
    except Exception:  # noqa: BLE001  unparsable EXIF is dropped, the image is kept
        return None


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """An sRGB ICC profile (LittleCMS's built-in), for images converted to sRGB.

    Built once per process: LittleCMS stamps the creation time into the header,
    so building it per image would give the same profile different bytes.
    """
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """CMYK -> sRGB through the embedded profile; naive inversion when there is none."""
    if icc:
        from PIL import ImageCms

        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                return out, srgb_profile()
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: fall back to the naive conversion below
    return im.convert("RGB"), None


def _normalise(im: Image.Image) -> ImageData:
    """Pixels as (H, W, 1|3) uint8/uint16 plus alpha; metadata from ``im.info``."""
    icc = im.info.get("icc_profile") or None
    exif = _exif_bytes(im)
    mode = im.mode
    quality = _jpeg_quality(im)  # before any conversion drops the tables
    alpha = None
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if (mode == "PA" or im.has_transparency_data) else "RGB")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "CMYK":
        im, icc = _cmyk_to_rgb(im, icc)
    elif mode in ("YCbCr", "RGBX", "HSV"):
        im = im.convert("RGB")
    elif mode == "LAB":
        raise ValueError("Lab images are not supported")
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im)
        if im.mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError("32-bit integer samples outside 0..65535 are not supported")
        pixels = a.astype(np.uint16)[:, :, None]
    elif im.mode == "F":
        raise ValueError("32-bit float images are not supported")
    elif im.mode in ("L", "LA"):
        a = np.asarray(im)
        pixels = a[:, :, :1] if a.ndim == 3 else a[:, :, None]
        alpha = a[:, :, 1] if im.mode == "LA" else None
    elif im.mode in ("RGB", "RGBA"):
        a = np.asarray(im)
        pixels, alpha = a[:, :, :3], (a[:, :, 3] if im.mode == "RGBA" else None)
    else:
        raise ValueError(f"unsupported image mode {im.mode}")
    return ImageData(np.ascontiguousarray(pixels),
                     None if alpha is None else np.ascontiguousarray(alpha), icc, exif, mode,
                     quality)


def _jpeg_quality(im: Image.Image) -> int | None:
    """The IJG quality of a JPEG image from its luminance table, else None."""
    tables = getattr(im, "quantization", None)
    if not tables or 0 not in tables:
        return None
    from ..ops.estimate import jpeg_quality
    try:
        return jpeg_quality(tables[0])
    except ValueError:  # a malformed table tells nothing
        return None


# 16-bit colour: Pillow's unpackers keep the high byte of each sample. The same
# data unpacked as if it had the other byte order keeps the low byte instead.
_SWAP = {"16B": "16L", "16L": "16B", "16N": "16B" if sys.byteorder == "little" else "16L"}
_SIXTEEN = {"RGB", "RGBA", "RGBX", "LA"}


def _tile_rawmode(tile: ImageFile._Tile) -> str | None:
    args = tile.args
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else None


def _is_16bit_colour(im: Image.Image) -> bool:
    if im.format not in ("PNG", "TIFF") or im.mode not in ("RGB", "RGBA") or not im.tile:
        return False
    for t in im.tile:
        raw = _tile_rawmode(t)
        if raw is None or ";" not in raw:
            return False
        base, depth = raw.split(";", 1)
        if base not in _SIXTEEN or depth not in _SWAP:
            return False
    return True


def _read_low_bytes(path: Path) -> np.ndarray:
    """Decode ``path`` again keeping the low byte of every 16-bit sample."""
    with Image.open(path) as im:
        tiles = []
        for t in im.tile:
            raw = _tile_rawmode(t)
            assert raw is not None
            base, depth = raw.split(";", 1)
            swapped = f"{base};{_SWAP[depth]}"
            args = (swapped, *t.args[1:]) if isinstance(t.args, tuple) else swapped
            tiles.append(t._replace(args=args))
        im.tile = tiles
        im.load()
        return np.asarray(im.convert("RGBA" if im.mode in ("RGBA", "LA") else "RGB"))


def _with_low_bytes(path: Path, data: ImageData, im: Image.Image) -> ImageData:
    """Rebuild 16-bit samples from the high bytes in ``data`` and a second decode."""
    try:
        lo = _read_low_bytes(path)
    except Exception:  # noqa: BLE001  no unpacker for this layout: keep the 8-bit decode
        return data
    hi_rgb = np.asarray(im.convert("RGBA") if im.mode == "RGBA" else im.convert("RGB"))
    if lo.shape != hi_rgb.shape:
        return data
    full = (hi_rgb.astype(np.uint16) << 8) | lo
    pixels = np.ascontiguousarray(full[:, :, :3])
    alpha = np.ascontiguousarray(full[:, :, 3]) if data.alpha is not None else None
    return data.with_pixels(pixels, alpha)


def _orient(a: np.ndarray, o: int) -> np.ndarray:
    """Apply EXIF orientation ``o`` to an (H, W[, C]) array (as ImageOps.exif_transpose)."""
    if o == 2:
        a = a[:, ::-1]
    elif o == 3:
        a = a[::-1, ::-1]
    elif o == 4:
        a = a[::-1]
    elif o == 5:
        a = a.swapaxes(0, 1)
    elif o == 6:
        a = a.swapaxes(0, 1)[:, ::-1]
    elif o == 7:
        a = a.swapaxes(0, 1)[::-1, ::-1]
    elif o == 8:
        a = a.swapaxes(0, 1)[::-1]
    return np.ascontiguousarray(a)


def _apply_orientation(data: ImageData, o: int) -> ImageData:
    if o == 1:
        return data
    alpha = None if data.alpha is None else _orient(data.alpha, o)
    return data.with_pixels(_orient(data.pixels, o), alpha)


def read_image_uint8(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Read an 8-bit image as (H, W) for gray or (H, W, 3) for colour, EXIF-upright.

    ``mode="RGB"`` forces three channels. Used for benchmark and training data.
    Alpha is composited over white (dropping it would leave the colour stored under
    transparent pixels, often black, and hard edges).
    """
    data = read_image(path, max_pixels=None)
    px = data.pixels
    if data.alpha is not None:
        px = _flatten_on_white(px, data.alpha)
    if px.dtype == np.uint16:
        px = _to_uint8(px)
    if mode == "RGB" and px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    elif mode == "L" and px.shape[2] == 3:
        px = np.asarray(Image.fromarray(px).convert("L"))[:, :, None]
    elif mode not in (None, "RGB", "L"):
        raise ValueError(f"mode must be None, 'RGB' or 'L', not {mode!r}")
    return px[:, :, 0] if px.shape[2] == 1 else px


# --------------------------------------------------------------------------- writing
def format_for_path(path: str | os.PathLike) -> str:
    """The Pillow format name for an output path's extension."""
    ext = Path(path).suffix.lower()
    if ext not in FORMAT_EXTENSIONS:
        raise ValueError(f"cannot write {ext or 'files without an extension'}; "
                         f"use one of {', '.join(sorted(FORMAT_EXTENSIONS))}")
    return FORMAT_EXTENSIONS[ext]


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def uint8_to_tensor(a: np.ndarray) -> "torch.Tensor":
    """uint8 samples -> float32 in [0, 1] (x / 255): an image (H, W) or (H, W, C)
    becomes a contiguous (1, C, H, W); a batch (B, H, W, C) becomes (B, C, H, W)
    that keeps the array's memory order (channels-last strides)."""
    import torch

    if a.ndim == 4:
        return torch.from_numpy(a).permute(0, 3, 1, 2).float().div_(255.0)
    a = a[:, :, None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0).unsqueeze(0)


def tensor_to_uint8(t: "torch.Tensor") -> np.ndarray:
    """Float (1, C, H, W) -> uint8 (H, W, C): clipped to [0, 1], x 255, rounded half to even."""
    import torch

    return torch.round(t.clamp(0, 1)[0] * 255.0).to(torch.uint8).permute(1, 2, 0).numpy().copy()


def _to_uint16(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint16:
        return a
    if a.dtype == np.uint8:
        return a.astype(np.uint16) * 257
    return (np.clip(a, 0, 1) * 65535 + 0.5).astype(np.uint16)


def _flatten_on_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite over white, for formats without transparency (JPEG, BMP, PPM)."""
    peak = 255 if pixels.dtype == np.uint8 else 65535
    a = alpha.astype(np.float32)[:, :, None] / peak
    out = pixels.astype(np.float32) * a + peak * (1.0 - a)
    return np.clip(out + 0.5, 0, peak).astype(pixels.dtype)


def to_pil(data: ImageData) -> Image.Image:
    """A PIL image of ``data`` with ``info['icc_profile']`` / ``info['exif']`` set.

    Modes: L, LA, RGB, RGBA; 16-bit gray without alpha stays ``I;16``. PIL has no
    16-bit colour or 16-bit-with-alpha mode, so those are rounded to 8 bits.
    """
    px, alpha = data.pixels, data.alpha
    if px.dtype == np.uint16 and px.shape[2] == 1 and alpha is None:
        im = Image.fromarray(np.ascontiguousarray(px[:, :, 0]))  # -> mode I;16
    else:
        px = _to_uint8(px)
        if alpha is not None:
            px = np.concatenate([px, _to_uint8(alpha)[:, :, None]], axis=2)
        if px.shape[2] in (1, 2):
            im = Image.fromarray(np.ascontiguousarray(px[:, :, 0]) if px.shape[2] == 1 else px)
        else:
            im = Image.fromarray(px)  # (H, W, 3) -> RGB, (H, W, 4) -> RGBA
    if data.icc:
        im.info["icc_profile"] = data.icc
    if data.exif:
        im.info["exif"] = data.exif
    return im


def write_image(path: str | os.PathLike, data: ImageData, format: str | None = None,
                quality: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``.

    ``format`` is a Pillow format name (default: from the extension). PNG and
    TIFF keep 16-bit samples; other formats get 8 bits. Alpha is kept where the
    format has it, otherwise the image is composited over white. ICC and EXIF
    are written where the format carries them. ``quality`` (1-100) applies to
    JPEG and WebP (default 95). The data goes to a temporary file in the same
    folder that is renamed over ``path`` only when complete and removed on any
    error or interrupt (KeyboardInterrupt, SystemExit), so ``path`` never holds
    a partial image. Raises :class:`ImageWriteError`.
    """
    path = Path(path)
    fmt = (format or format_for_path(path)).upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt == "TIF":
        fmt = "TIFF"
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ImageWriteError(path, f"output folder {folder} does not exist")
    try:
        with atomic_output(path) as tmp:
            _encode(tmp, data, fmt, quality)
    except (ImageWriteError, KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001  encoder and file-system errors alike
        _reraise_interrupt(e)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else _describe(e)
        raise ImageWriteError(path, f"cannot write ({reason})") from None
    return path


def _reraise_interrupt(e: BaseException) -> None:
    """Raise the KeyboardInterrupt / SystemExit hidden in ``e``'s chain, if any.

    Python wraps some exceptions: a Ctrl-C that lands while Pillow lazily imports
    a format plugin surfaces as ``RuntimeError("Error calling __set_name__ ...")``
    caused by the KeyboardInterrupt. That is an interrupt, not a write error.
    """
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, (KeyboardInterrupt, SystemExit)):
            raise cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary file (hidden, same extension, so encoders that pick a
    container by extension still work) is removed if the block raises anything,
    including KeyboardInterrupt, so ``path`` never holds a partial file.
    """
    path = Path(path)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.part{path.suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _unlink_quietly(tmp)


def _unlink_quietly(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass


def _encode(dst: Path, data: ImageData, fmt: str, quality: int | None) -> None:
    px, alpha = data.pixels, data.alpha
    if fmt not in _ALPHA_FORMATS and alpha is not None:
        px, alpha = _flatten_on_white(px, alpha), None
    icc = data.icc if fmt in _ICC_FORMATS else None
    exif = data.exif if fmt in _EXIF_FORMATS else None
    high = px.dtype != np.uint8 and fmt in _16BIT_FORMATS
    if high:
        px = _to_uint16(px)
        alpha = None if alpha is None else _to_uint16(alpha)
        if fmt == "PNG":
            _write_png16(dst, px, alpha, icc, exif)
            return
        if px.shape[2] == 3 or alpha is not None:
            _write_tiff16(dst, px, alpha, icc)
            return
    else:
        px = _to_uint8(px)
        alpha = None if alpha is None else _to_uint8(alpha)
    im = to_pil(ImageData(px, alpha))
    kw: dict[str, object] = {}
    if icc:
        kw["icc_profile"] = icc
    if exif:
        kw["exif"] = exif
    if fmt in ("JPEG", "WEBP"):
        kw["quality"] = 95 if quality is None else int(quality)
    if fmt == "TIFF":
        kw["compression"] = "tiff_adobe_deflate"
    if fmt == "GIF" and im.mode == "LA":
        im = im.convert("RGBA")
    with open(dst, "wb") as f:
        im.save(f, format=fmt, **kw)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _write_png16(dst: Path, px: np.ndarray, alpha: np.ndarray | None, icc: bytes | None,
                 exif: bytes | None) -> None:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA), rows compressed in blocks.

    Pillow cannot write 16-bit colour PNGs. Every row uses the "Up" filter,
    which numpy computes for a whole block at once.
    """
    h, w, c = px.shape
    planes = [px] if alpha is None else [px, alpha[:, :, None]]
    samples = np.concatenate(planes, axis=2) if len(planes) > 1 else px
    channels = samples.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    with open(dst, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)))
        if icc:
            f.write(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
        if exif:
            body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
            f.write(_png_chunk(b"eXIf", body))
        comp = zlib.compressobj(6)
        prev = np.zeros((1, w * channels * 2), np.uint8)
        block = max(1, (1 << 22) // (w * channels * 2))
        for y0 in range(0, h, block):
            rows = np.ascontiguousarray(samples[y0:y0 + block], dtype=">u2").reshape(-1, w * channels).view(np.uint8)
            up = rows - np.concatenate([prev, rows[:-1]])  # uint8 arithmetic wraps mod 256
            prev = rows[-1:]
            filtered = np.concatenate([np.full((len(rows), 1), 2, np.uint8), up], axis=1)
            out = comp.compress(filtered.tobytes())
            if out:
                f.write(_png_chunk(b"IDAT", out))
        f.write(_png_chunk(b"IDAT", comp.flush()))
        f.write(_png_chunk(b"IEND", b""))


def _write_tiff16(dst: Path, px: np.ndarray, alpha: np.ndarray | None, icc: bytes | None) -> None:
    """A 16-bit RGB(A) / gray+alpha TIFF (deflate), which Pillow cannot write."""
    import tifffile

    samples = px if alpha is None else np.concatenate([px, alpha[:, :, None]], axis=2)
    photometric = "rgb" if px.shape[2] == 3 else "minisblack"
    tifffile.imwrite(dst, samples, photometric=photometric, compression="adobe_deflate",
                     predictor=True, extrasamples=[2] if alpha is not None else None,
                     iccprofile=icc, metadata=None)
