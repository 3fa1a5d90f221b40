"""The world's scenes drawn by another tool: matplotlib, not world.py's PIL code.

The issue asks the bundled model to generalise beyond its own renderer. Training and the main
held-out set both come from world.render; this module draws the same kind of scene (the ground
truth of world.scene: shapes, colour names, sizes, centres, rotations) with matplotlib's Agg
rasteriser and its own idea of every part of the picture, so that `evalset.py --renderer
matplotlib` measures what changes when nothing but the scene's content is shared:

- shapes: matplotlib's marker outlines ('o', 's', '^', '*', 'P', 'd': its circle, square,
  triangle, five-pointed star, filled plus and thin diamond), not world._shape_points; their
  proportions differ (the star's inner radius, the cross's arm width, the diamond's width);
- colours: matplotlib's named colours, half from its CSS table ("green" is (0, 128, 0),
  "purple" (128, 0, 128), "orange" (255, 165, 0)) and half from its xkcd table, not world.COLORS
  and its jitter;
- styles: filled and anti-aliased, filled and aliased (matplotlib's antialiased=False), outlined
  with a line of 1.5-4 px, and "photo": filled, then with skimage, not PIL, a small perspective
  warp (the truth's centres are moved with it), uneven light, a colour cast, Gaussian blur and
  noise;
- backgrounds: plain, a linear gradient and smooth noise, drawn by matplotlib's imshow; each
  keeps the world's rule that no background colour comes within RGB distance 120 of an object's.
"""
import io
import math

import matplotlib
matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.markers import MarkerStyle  # noqa: E402
from matplotlib.patches import PathPatch  # noqa: E402
from matplotlib.transforms import Affine2D  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import filters, transform  # noqa: E402

import world  # noqa: E402

STYLES = ["mpl-filled", "mpl-aliased", "mpl-outline", "mpl-photo"]
MARKERS = {"circle": "o", "square": "s", "triangle": "^", "star": "*", "cross": "P", "diamond": "d"}
# each marker's outline scaled so that its farthest point is this far from the centre, in units
# of the object's radius r (the circle touches r; the others fill a similar area)
REACH = {"circle": 1.0, "square": 1.0, "triangle": 1.05, "star": 1.05, "cross": 1.0, "diamond": 1.0}
TABLES = ("css", "xkcd")


def colour_rgb(name, table):
    """A colour name in one of matplotlib's tables -> RGB 0-255 (float)."""
    key = name if table == "css" else "xkcd:" + name
    return np.asarray(mcolors.to_rgb(key), np.float64) * 255


def _outline(shape):
    """The marker's outline as a path whose farthest vertex is 1 from the centre (y up)."""
    ms = MarkerStyle(MARKERS[shape])
    path = ms.get_path().transformed(ms.get_transform())
    pts = np.concatenate(path.to_polygons(closed_only=False))      # curves as line segments
    reach = np.hypot(pts[:, 0], pts[:, 1]).max()
    return path.transformed(Affine2D().scale(1.0 / reach))


def scene(seed, index):
    """world.scene's ground truth, with this renderer's style and each object's colour table."""
    t = world.scene(seed, index)
    rng = np.random.default_rng([seed, index, 7])
    t["style"] = STYLES[int(rng.integers(len(STYLES)))]
    t["size"] = int(rng.choice([96, 128, 160, 224, 256, 320]))
    for o in t["objects"]:
        o["table"] = TABLES[int(rng.integers(2))]
    return t


def _background(ax, rng, kind, S, avoid):
    if kind == "plain":
        ax.imshow(np.broadcast_to(world._bg_colour(rng, avoid) / 255, (2, 2, 3)), extent=(0, S, S, 0), zorder=0)
        return
    if kind == "gradient":
        c0, c1 = world._bg_colour(rng, avoid), world._bg_colour(rng, avoid)
        for _ in range(200):
            if all(world._dist(c0 + (c1 - c0) * s, a) >= world.BG_MIN_DIST
                   for s in np.linspace(0, 1, 9) for a in avoid):
                break
            c1 = world._bg_colour(rng, avoid)
        else:
            c1 = c0
        ang = rng.uniform(0, 2 * math.pi)
        s = np.linspace(0, 1, 64)
        img = (np.cos(ang) * s[None, :] + np.sin(ang) * s[:, None])
        img = (img - img.min()) / max(np.ptp(img), 1e-6)
        rgb = c0[None, None] + (c1 - c0)[None, None] * img[..., None]
        ax.imshow(rgb / 255, extent=(0, S, S, 0), interpolation="bilinear", zorder=0)
        return
    c = world._bg_colour(rng, avoid, margin=40.0)
    g = int(rng.integers(4, 10))
    blobs = c[None, None] + rng.uniform(-1, 1, (g, g, 3)) * rng.uniform(10, 30)
    ax.imshow(np.clip(blobs, 0, 255) / 255, extent=(0, S, S, 0), interpolation="bicubic", zorder=0)


def _photo(img, rng, truth):
    """Perspective warp (centres moved with it), light, cast, blur and noise, with skimage."""
    S = img.shape[0]
    src = np.array([[0, 0], [S, 0], [S, S], [0, S]], np.float64)
    dst = src + rng.uniform(-0.04, 0.04, (4, 2)) * S
    tf = transform.ProjectiveTransform()
    tf.estimate(src, dst)
    a = transform.warp(img / 255.0, tf.inverse, mode="edge")
    for o in truth["objects"]:
        (x, y), = tf(np.array([[o["x"] * S, o["y"] * S]]))
        o["x"], o["y"] = round(float(x / S), 4), round(float(y / S), 4)
    yy, xx = np.mgrid[0:S, 0:S] / S
    lx, ly = rng.uniform(-0.3, 1.3, 2)
    light = 1.0 + rng.uniform(0.05, 0.2) * (1 - 2 * np.hypot(xx - lx, yy - ly) / 1.6)
    a = a * light[..., None] * (1.0 + rng.uniform(-0.07, 0.07, 3))[None, None]
    a = filters.gaussian(np.clip(a, 0, 1), sigma=rng.uniform(0.4, 1.4) * S / 128, channel_axis=-1)
    a = a + rng.normal(0, rng.uniform(0.01, 0.035), a.shape)
    return np.clip(np.round(a * 255), 0, 255).astype(np.uint8)


def render(truth, seed, index):
    """-> RGB uint8 [S, S, 3]; for "mpl-photo" the truth's centres are moved with the warp."""
    rng = np.random.default_rng([seed, index, 8])
    S, style, objs = truth["size"], truth["style"], truth["objects"]
    colours = [colour_rgb(o["color"], o["table"]) for o in objs]
    fig = plt.figure(figsize=(S / 100, S / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_axis_off()
    _background(ax, rng, truth["background"], S, colours)
    ax.set_xlim(0, S)               # after the background: imshow sets the limits to its extent
    ax.set_ylim(S, 0)               # y down, as the truth's coordinates
    for o, col in zip(objs, colours):
        r = o["r"] * S * REACH[o["shape"]]
        # y down on screen: flip the marker (drawn y up) so that triangles and stars point up
        tr = Affine2D().scale(r, -r).rotate_deg(o["angle"]).translate(o["x"] * S, o["y"] * S)
        path = _outline(o["shape"]).transformed(tr)
        if style == "mpl-outline":
            lw_px = float(rng.uniform(1.5, 4.0)) * S / 128
            patch = PathPatch(path, facecolor="none", edgecolor=col / 255, linewidth=lw_px * 0.72, zorder=2)
        else:
            patch = PathPatch(path, facecolor=col / 255, edgecolor="none", zorder=2,
                              antialiased=style != "mpl-aliased")
        ax.add_patch(patch)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert img.shape[:2] == (S, S), img.shape
    if style == "mpl-photo":
        img = _photo(img.astype(np.float64), rng, truth)
    return img


def make(seed, index):
    """-> (truth, file bytes, extension): JPEG (quality 40-95) or PNG, as world.encode chooses."""
    truth = scene(seed, index)
    img = render(truth, seed, index)
    data, ext = world.encode(Image.fromarray(img), np.random.default_rng([seed, index, 9]))
    return truth, data, ext
