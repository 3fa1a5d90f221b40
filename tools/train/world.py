"""The synthetic visual world of the bundled model: coloured shapes on backgrounds.

A scene is 1 to 4 objects, each a shape (SHAPES), a colour (COLORS) and a size (SIZES), at
non-overlapping positions, on a plain, gradient or noisy background. Everything is drawn from
one numpy Generator, so `scene(seed, index)` and `render(...)` are pure functions of their
arguments: the same seed and index give the same picture and the same ground truth on any
machine with the same numpy and PIL.

Ground truth (a dict, JSON-serialisable):

    {"size": 160, "style": "photo", "background": "gradient",
     "objects": [{"shape": "star", "color": "blue", "size": "large",
                  "x": 0.31, "y": 0.62, "r": 0.14, "angle": -7.5}, ...]}

x, y are the object's centre as fractions of the image side (x to the right, y down), r its
radius (the circumscribed circle of the shape) as a fraction of the side.

Render styles, so that the model sees more than one renderer:
  flat     filled polygons drawn straight at the output size, no anti-aliasing
  smooth   filled, anti-aliased (drawn 2-4x larger, then downsampled)
  outline  only the outline in the object's colour (thick, anti-aliased, slightly wobbly)
  photo    anti-aliased, then uneven lighting, a colour cast, blur and sensor noise, like a photo
           of shapes printed on paper

Backgrounds keep every object visible: a background colour is never within BG_MIN_DIST (RGB
distance) of the colour of an object in the same image, at any point of a gradient.
"""
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ["circle", "square", "triangle", "star", "cross", "diamond"]
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
           "cross": "crosses", "diamond": "diamonds"}
COLORS = {  # canonical RGB; each object gets a jitter of up to +-JITTER per channel
    "red": (215, 30, 35),
    "green": (35, 165, 60),
    "blue": (35, 75, 215),
    "yellow": (245, 215, 35),
    "orange": (245, 130, 20),
    "purple": (135, 45, 175),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOR_NAMES = list(COLORS)
SIZES = {"small": 0.075, "medium": 0.105, "large": 0.145}   # radius / image side
SIZE_NAMES = list(SIZES)
STYLES = ["flat", "smooth", "outline", "photo"]
BACKGROUNDS = ["plain", "gradient", "noise"]
JITTER = 18
BG_MIN_DIST = 120.0
GAP = 0.035           # smallest distance between two objects' circles, fraction of the side
BORDER = 0.02         # smallest distance from an object's circle to the image edge
MAX_ROTATION = {"circle": 0, "square": 12, "triangle": 15, "star": 15, "cross": 15, "diamond": 10}


def _rng(seed, index):
    return np.random.default_rng([int(seed), int(index)])


def sample_objects(rng, n=None):
    """1..4 objects with shape, colour, size and a non-overlapping position."""
    if n is None:
        n = int(rng.integers(1, 5))
    objs = []
    for i in range(n):
        if objs and rng.random() < 0.3:       # repeats make counting and plural captions common
            src = objs[int(rng.integers(len(objs)))]
            shape, color = src["shape"], src["color"]
            if rng.random() < 0.3:
                color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        else:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            color = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        size = SIZE_NAMES[int(rng.integers(len(SIZE_NAMES)))]
        objs.append({"shape": shape, "color": color, "size": size})
    # positions: rejection sampling; a crowded scene gives up and shrinks its largest object
    for _ in range(50):
        placed = []
        ok = True
        for o in objs:
            r = SIZES[o["size"]]
            for _try in range(100):
                x = rng.uniform(r + BORDER, 1 - r - BORDER)
                y = rng.uniform(r + BORDER, 1 - r - BORDER)
                if all(math.hypot(x - p["x"], y - p["y"]) >= r + p["r"] + GAP for p in placed):
                    placed.append({"x": x, "y": y, "r": r})
                    break
            else:
                ok = False
                break
        if ok:
            for o, p in zip(objs, placed):
                o.update(x=round(p["x"], 4), y=round(p["y"], 4), r=p["r"])
            break
        big = max(range(len(objs)), key=lambda k: SIZES[objs[k]["size"]])
        if objs[big]["size"] == "small":
            objs.pop()                            # cannot happen with 4 small objects; safety
        else:
            objs[big]["size"] = SIZE_NAMES[SIZE_NAMES.index(objs[big]["size"]) - 1]
    for o in objs:
        m = MAX_ROTATION[o["shape"]]
        o["angle"] = round(float(rng.uniform(-m, m)), 2) if m else 0.0
    return objs


def scene(seed, index, style=None):
    """The ground truth of image `index` of the world drawn from `seed`."""
    rng = _rng(seed, index)
    objs = sample_objects(rng)
    st = style or STYLES[int(rng.choice(len(STYLES), p=[0.2, 0.3, 0.2, 0.3]))]
    bg = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    size = int(rng.choice([96, 112, 128, 160, 192, 224, 256]))
    return {"size": size, "style": st, "background": bg, "objects": objs,
            "_render_seed": [int(seed), int(index)]}


# ---------------------------------------------------------------------------------------
# Drawing

def _shape_points(shape, cx, cy, r, angle_deg, n_circle=48):
    """The outline of a shape as a polygon (list of (x, y)), in pixels."""
    if shape == "circle":
        pts = [(math.cos(2 * math.pi * k / n_circle), math.sin(2 * math.pi * k / n_circle)) for k in range(n_circle)]
    elif shape == "square":
        s = 0.74
        pts = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif shape == "triangle":
        pts = [(math.cos(math.radians(a)), math.sin(math.radians(a)) + 0.12) for a in (-90, 30, 150)]
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = 1.0 if k % 2 == 0 else 0.45
            a = math.radians(-90 + 36 * k)
            pts.append((rad * math.cos(a), rad * math.sin(a) + 0.05))
    elif shape == "cross":
        a, b = 0.3, 0.9
        pts = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
               (-a, -a)]
    elif shape == "diamond":
        pts = [(0, -1.0), (0.62, 0), (0, 1.0), (-0.62, 0)]
    else:
        raise ValueError(shape)
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    return [(cx + r * (c * x - s * y), cy + r * (s * x + c * y)) for x, y in pts]


def _dist(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def _bg_colour(rng, avoid, margin=0.0):
    for _ in range(1000):
        c = rng.integers(0, 256, 3)
        if all(_dist(c, a) >= BG_MIN_DIST + margin for a in avoid):
            return c.astype(np.float64)
    return np.array([128.0, 128.0, 128.0])


def _background(rng, kind, S, avoid):
    if kind == "plain":
        c = _bg_colour(rng, avoid)
        return np.broadcast_to(c, (S, S, 3)).copy()
    if kind == "gradient":
        for _ in range(200):
            c0, c1 = _bg_colour(rng, avoid), _bg_colour(rng, avoid)
            if all(_dist(c0 + (c1 - c0) * t, a) >= BG_MIN_DIST for t in np.linspace(0, 1, 9) for a in avoid):
                break
        else:
            c1 = c0
        ang = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:S, 0:S] / max(S - 1, 1)
        t = (xx - 0.5) * math.cos(ang) + (yy - 0.5) * math.sin(ang)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return c0[None, None, :] + (c1 - c0)[None, None, :] * t[..., None]
    # noise: a base colour, smooth colour blobs and per-pixel grain, all within 40 of the base
    c = _bg_colour(rng, avoid, margin=40.0)
    g = int(rng.integers(3, 9))
    blobs = rng.uniform(-1, 1, (g, g, 3)) * rng.uniform(8, 25)
    blob_img = np.stack([np.asarray(Image.fromarray(blobs[..., k].astype(np.float32), mode="F").resize(
        (S, S), Image.BICUBIC)) for k in range(3)], axis=-1)
    grain = rng.normal(0, rng.uniform(3, 12), (S, S, 3))
    return c[None, None, :] + np.clip(blob_img + grain, -40, 40)


def render(truth):
    """The RGB PIL image of a scene (ground truth from `scene`)."""
    rng = np.random.default_rng(truth["_render_seed"] + [1])
    S, style = truth["size"], truth["style"]
    objs = truth["objects"]
    colours = []
    for o in objs:
        base = np.asarray(COLORS[o["color"]], np.float64)
        colours.append(np.clip(base + rng.integers(-JITTER, JITTER + 1, 3), 0, 255))
    bg = _background(rng, truth["background"], S, colours)
    canvas = Image.fromarray(np.clip(np.round(bg), 0, 255).astype(np.uint8), "RGB")

    # Each object is drawn as a coverage mask over its own bounding box, ss times larger than
    # the output (anti-aliasing by area averaging), then pasted in its colour. "flat" draws at
    # the output size: hard, aliased edges.
    ss = 1 if style == "flat" else 4
    for o, col in zip(objs, colours):
        cx, cy, r = o["x"] * S, o["y"] * S, o["r"] * S
        x0, y0 = max(0, int(math.floor(cx - r)) - 3), max(0, int(math.floor(cy - r)) - 3)
        x1, y1 = min(S, int(math.ceil(cx + r)) + 3), min(S, int(math.ceil(cy + r)) + 3)
        mask = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
        draw = ImageDraw.Draw(mask)
        pts = _shape_points(o["shape"], (cx - x0) * ss, (cy - y0) * ss, r * ss, o["angle"])
        if style == "outline":
            wob = 0.04 * r * ss if o["shape"] != "circle" else 0.0
            pts = [(x + rng.uniform(-wob, wob), y + rng.uniform(-wob, wob)) for x, y in pts]
            width = int(round(max(0.22 * r, 1.6) * ss))
            draw.line(pts + pts[:2], fill=255, width=width, joint="curve")
        else:
            draw.polygon(pts, fill=255)
        if ss > 1:
            mask = mask.resize((x1 - x0, y1 - y0), Image.BOX)
        canvas.paste(tuple(int(v) for v in col), (x0, y0, x1, y1), mask)
    if style == "photo":
        a = np.asarray(canvas).astype(np.float64)
        yy, xx = np.mgrid[0:S, 0:S] / S
        lx, ly = rng.uniform(-0.5, 1.5, 2)
        light = 1.0 + rng.uniform(0.05, 0.18) * (1 - 2 * np.hypot(xx - lx, yy - ly) / 1.6)
        cast = 1.0 + rng.uniform(-0.06, 0.06, 3)
        a = a * light[..., None] * cast[None, None, :]
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "RGB")
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2) * S / 128))
        a = np.asarray(img).astype(np.float64) + rng.normal(0, rng.uniform(2, 8), (S, S, 3))
        canvas = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "RGB")
    return canvas


def encode(img, rng):
    """(bytes, extension): JPEG at a random quality (80%) or PNG."""
    buf = io.BytesIO()
    if rng.random() < 0.8:
        img.save(buf, "JPEG", quality=int(rng.integers(35, 96)))
        return buf.getvalue(), "jpg"
    img.save(buf, "PNG")
    return buf.getvalue(), "png"


def make(seed, index, style=None):
    """-> (truth, file bytes, extension) of image `index` of the world `seed`."""
    truth = scene(seed, index, style)
    img = render(truth)
    data, ext = encode(img, np.random.default_rng(truth["_render_seed"] + [2]))
    return truth, data, ext


def public(truth):
    """The ground truth without the internal render seed."""
    return {k: v for k, v in truth.items() if not k.startswith("_")}
