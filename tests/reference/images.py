"""The image corpus for the preprocessing tests, made at test time with PIL
and numpy from a fixed seed, plus the real photographs that Debian's
python3-skimage ships.

make_corpus(dir) -> list of Case(path, name, reduce16, exif).  reduce16 marks
16-bit grey files, for which the reference first reduces PIL's 0..65535
values to 8 bits (v >> 8), as flamingo.c does (PIL itself would clip them to
white).  exif marks files whose reference must apply ImageOps.exif_transpose.
"""
import io
import os
from collections import namedtuple

import numpy as np
from PIL import Image

Case = namedtuple("Case", "path name reduce16 exif")

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
PHOTOS = [  # real photographs and scans of real things
    "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg",
    "retina.jpg", "hubble_deep_field.jpg", "camera.png", "brick.png", "grass.png",
    "gravel.png", "coins.png", "moon.png", "page.png", "ihc.png", "cell.png",
]
OTHER_SKIMAGE = [  # real files of other kinds: RGBA logo, palettes, a GIF
    "logo.png", "palette_color.png", "green_palette.png", "no_time_for_that_tiny.gif",
    "color.png", "horse.png", "text.png", "foo3x5x4indexed.png",
]


def _smooth_rgb(rng, w, h):
    """A photo-like image: low-frequency colour fields plus mild noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 6) / max(w, 1), rng.uniform(0.5, 6) / max(h, 1)
            ph = rng.uniform(0, 2 * np.pi)
            out[..., c] += np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    out = (out - out.min()) / (np.ptp(out) + 1e-9) * 255
    out += rng.normal(0, 6, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_corpus(d):
    rng = np.random.default_rng(20261128)
    cases = []

    def add(name, img_or_bytes, reduce16=False, transpose=False, **save):
        path = os.path.join(d, name)
        if isinstance(img_or_bytes, (bytes, bytearray)):
            with open(path, "wb") as f:
                f.write(img_or_bytes)
        else:
            img_or_bytes.save(path, **save)
        cases.append(Case(path, name, reduce16, transpose))

    for n in PHOTOS + OTHER_SKIMAGE:
        p = os.path.join(SKIMAGE, n)
        if not os.path.exists(p):  # the test promises these photographs: no silent skips
            raise FileNotFoundError(f"{p} is missing: install python3-skimage (make deps)")
        cases.append(Case(p, "skimage/" + n, False, False))

    photo = Image.open(os.path.join(SKIMAGE, "chelsea.png")).convert("RGB")     # 451x300
    astro = Image.open(os.path.join(SKIMAGE, "astronaut.png")).convert("RGB")   # 512x512
    coffee = Image.open(os.path.join(SKIMAGE, "coffee.png")).convert("RGB")     # 600x400
    moto = Image.open(os.path.join(SKIMAGE, "motorcycle_left.png")).convert("RGB")

    # JPEG encodings of real photographs: qualities, subsamplings, progressive.
    add("chelsea_q75_420.jpg", photo, quality=75, subsampling=2)
    add("chelsea_q95_444.jpg", photo, quality=95, subsampling=0)
    add("astronaut_q85_422.jpg", astro, quality=85, subsampling=1)
    add("coffee_q60_420_progressive.jpg", coffee, quality=60, subsampling=2, progressive=True)
    add("moto_q90_progressive.jpg", moto, quality=90, progressive=True, optimize=True)
    add("astronaut_grey.jpg", astro.convert("L"), quality=80)
    add("coffee_cmyk.jpg", coffee.convert("CMYK"), quality=85)
    # Phone-style EXIF orientations, on an odd-sized crop so that every
    # transpose is visible.
    crop = photo.crop((10, 5, 10 + 333, 5 + 250))
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        add(f"exif_orientation_{o}.jpg", crop, transpose=True, quality=90, exif=ex.tobytes())

    # Synthetic edge cases.
    add("rgb_1x1.png", Image.fromarray(np.array([[[200, 30, 90]]], np.uint8)))
    add("rgb_1x5000.png", Image.fromarray(_smooth_rgb(rng, 1, 5000)))
    add("rgb_5000x1.png", Image.fromarray(_smooth_rgb(rng, 5000, 1)))
    add("rgb_3x7.png", Image.fromarray(_smooth_rgb(rng, 3, 7)))
    for w, h in [(225, 301), (399, 223), (224, 224), (224, 300), (300, 224), (227, 1000),
                 (1001, 673), (640, 480), (97, 131), (2000, 1500)]:
        add(f"rgb_{w}x{h}.png", Image.fromarray(_smooth_rgb(rng, w, h)))
    add("rgb_640x427.jpg", Image.fromarray(_smooth_rgb(rng, 640, 427)), quality=88)
    add("grey_517x389.png", Image.fromarray(_smooth_rgb(rng, 517, 389)[..., 0], "L"))
    add("grey_1bit_300x200.png", Image.fromarray(_smooth_rgb(rng, 300, 200)[..., 1] > 128).convert("1"))
    pal = photo.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    add("palette_451x300.png", pal)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 5
    add("palette_trns_451x300.png", pal_t, transparency=5)
    pal_small = Image.fromarray(_smooth_rgb(rng, 640, 480)).quantize(colors=16)
    add("palette16_640x480.png", pal_small, bits=4)
    add("palette_640x480.gif", Image.fromarray(_smooth_rgb(rng, 640, 480)).quantize(colors=200))
    gif_t = photo.quantize(colors=100)
    add("palette_trns_451x300.gif", gif_t, transparency=7)
    rgba = np.dstack([np.asarray(coffee), rng.integers(0, 256, coffee.size[::-1], dtype=np.uint8)])
    rgba[:40, :, 3] = 0
    rgba[-40:, :, 3] = 255
    add("rgba_600x400.png", Image.fromarray(rgba, "RGBA"))
    la = np.dstack([np.asarray(astro.convert("L")), np.tile(np.arange(512, dtype=np.uint8)[None, :] // 2, (512, 1))])
    add("la_512x512.png", Image.fromarray(la, "LA"))
    grey16 = (np.asarray(coffee.convert("L")).astype(np.uint16) * 257 + rng.integers(0, 257, coffee.size[::-1])).astype(np.uint16)
    add("grey16_600x400.png", Image.fromarray(grey16), reduce16=True)
    # 16-bit RGB, RGBA and grey+alpha PNGs: PIL keeps the high byte, as
    # flamingo.c does (PIL opens grey+alpha 16 as RGBA; same pixels).
    rgb16 = np.asarray(moto).astype(np.uint16) * 257 + rng.integers(0, 257, (500, 741, 3)).astype(np.uint16)
    add("rgb16_741x500.png", _png16(rgb16, 2))
    a16 = (np.linspace(0, 65535, 741)[None, :, None] * np.ones((500, 1, 1))).astype(np.uint16)
    add("rgba16_741x500.png", _png16(np.concatenate([rgb16, a16], axis=2), 6))
    add("greyalpha16_741x500.png", _png16(np.concatenate([rgb16[..., :1], a16], axis=2), 4))
    # Transparency keys, an interlaced PNG, an EXIF orientation inside a PNG.
    grey_t = crop.convert("L")
    add("grey_trns_333x250.png", grey_t, transparency=int(np.asarray(grey_t)[100, 100]))
    add("rgb_trns_333x250.png", crop, transparency=tuple(int(v) for v in np.asarray(crop)[50, 60]))
    ex6 = Image.Exif()
    ex6[0x0112] = 6
    add("png_exif6_333x250.png", crop, transpose=True, exif=ex6.tobytes())
    # A GIF whose first frame is smaller than the screen, and a grey-ramp GIF.
    add("gif_subframe.gif", _gif_subframe(rng))
    add("gif_greyramp_200x150.gif", Image.fromarray(_smooth_rgb(rng, 200, 150)[..., 2], "L"))
    add("bmp_1bit_333x250.bmp", crop.convert("1"))
    add("bmp16_555_301x227.bmp", _bmp16(rng, 301, 227, None))
    add("bmp16_565_301x227.bmp", _bmp16(rng, 301, 227, (0xF800, 0x07E0, 0x001F)))
    add("tga16_301x227.tga", _tga16(rng, 301, 227))
    add("grey16_333x250.pgm", _pnm(b"P5", np.asarray(crop.convert("L")).astype(np.uint32) * 257, 65535), reduce16=True)
    add("rgb16_333x250.ppm", _pnm(b"P6", np.asarray(crop).astype(np.uint32) * 257 + 3, 65535))
    add("rgb_bmp_333x250.bmp", crop)
    add("palette_bmp_333x250.bmp", crop.quantize(colors=256))
    add("grey_bmp_333x250.bmp", crop.convert("L"))
    add("rgb_333x250.tga", crop)
    add("rgba_333x250.tga", crop.convert("RGBA"))
    add("grey_333x250.pgm", crop.convert("L"))
    add("rgb_333x250.ppm", crop)
    add("grey_maxval100.pgm", _pnm(b"P5", np.asarray(crop.convert("L")) * 100 // 255, 100))
    add("rgb_maxval1000.ppm", _pnm(b"P6", np.asarray(crop).astype(np.uint32) * 1000 // 255, 1000))
    return cases


def _png16(a, color_type):
    """PIL cannot write 16-bit colour PNGs; write one with zlib by hand."""
    import struct
    import zlib

    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _bmp16(rng, w, h, masks):
    """A 16-bit BMP (BI_RGB 5-5-5, or BI_BITFIELDS with masks), bottom-up;
    PIL cannot write these."""
    import struct

    v = rng.integers(0, 1 << 16, (h, w)).astype("<u2")
    row = ((w * 16 + 31) // 32) * 4
    data = b"".join(v[y].tobytes() + b"\0" * (row - 2 * w) for y in range(h - 1, -1, -1))
    extra = struct.pack("<III", *masks) if masks else b""
    off = 54 + len(extra)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3 if masks else 0, len(data), 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off) + info + extra + data


def _tga16(rng, w, h):
    """An uncompressed 16-bit true-colour TGA, top-down."""
    import struct

    v = rng.integers(0, 1 << 15, (h, w)).astype("<u2")
    return struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 16, 0x20) + v.tobytes()


def _gif_subframe(rng):
    """GIF89a, 40x30 screen, background index 3, a transparent index 2, and a
    first frame covering only x 5..24, y 4..19 (PIL fills the rest with the
    transparency index; stb would leave it empty)."""
    import struct

    w, h, fx, fy, fw, fh = 40, 30, 5, 4, 20, 16
    palette = bytes(rng.integers(0, 256, 3 * 8, dtype=np.uint8))
    idx = rng.integers(0, 8, fw * fh).astype(np.uint8)
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80 | 2, 3, 0) + palette)
    out += b"\x21\xf9\x04\x01\x00\x00\x02\x00"           # GCE: transparent index 2
    out += b"\x2c" + struct.pack("<HHHHB", fx, fy, fw, fh, 0)
    out += bytes([3]) + _lzw(idx, 3) + b"\x00\x3b"
    return bytes(out)


def _lzw(indices, min_size):
    """GIF LZW with a clear code before every code so that codes stay
    min_size + 1 bits wide (valid, just not compact)."""
    clear, end, width = 1 << min_size, (1 << min_size) + 1, min_size + 1
    codes = []
    for v in indices:
        codes += [clear, int(v)]
    codes.append(end)
    bits, nbits, data = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += width
        while nbits >= 8:
            data.append(bits & 255)
            bits >>= 8
            nbits -= 8
    if nbits:
        data.append(bits & 255)
    blocks = bytearray()
    for i in range(0, len(data), 255):
        chunk = data[i:i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks)


def _pnm(magic, a, maxval):
    h, w = a.shape[:2]
    dt = ">u2" if maxval > 255 else "u1"
    return magic + b"\n%d %d\n%d\n" % (w, h, maxval) + np.ascontiguousarray(a).astype(dt).tobytes()


def open_reference(case):
    """The PIL image the reference pipeline starts from."""
    from PIL import ImageOps

    im = Image.open(case.path)
    im.load()
    if case.exif:
        im = ImageOps.exif_transpose(im)
    if case.reduce16 or im.mode in ("I", "I;16", "I;16B"):
        a = np.asarray(im).astype(np.int64)
        im = Image.fromarray((np.clip(a, 0, 65535) >> 8).astype(np.uint8), "L")
    return im
