"""tools/train/foreign.py, the second renderer (matplotlib) of the evaluation set that measures
whether the bundled model generalises beyond its training renderer (`evalset.py --renderer
matplotlib`, `make eval-foreign`): its ground truth must be what the picture shows. On 48
scenes, every object's stated centre holds the object's named colour (matplotlib's CSS or xkcd
value) in the filled styles, exactly up to rounding, and after the photo effects within RGB
distance 80; in the outlined style the centre is the background (at least 100 away); the photo
style's perspective warp moved the stated centres (by under 6% of the side), and all four
styles occur."""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools", "train"))
import foreign  # noqa: E402
import world  # noqa: E402

SEED = 4321     # not a seed of training (1) or of either evaluation set (777, 778)


def main():
    bad = checked = 0
    styles = set()
    for i in range(48):
        t = foreign.scene(SEED, i)
        plain = world.scene(SEED, i)["objects"]
        img = foreign.render(t, SEED, i).astype(np.float64)
        S, style = t["size"], t["style"]
        styles.add(style)
        for o, p in zip(t["objects"], plain):
            col = foreign.colour_rgb(o["color"], o["table"])
            x, y = min(S - 1, int(o["x"] * S)), min(S - 1, int(o["y"] * S))
            d = float(np.linalg.norm(img[y, x] - col))
            moved = max(abs(o["x"] - p["x"]), abs(o["y"] - p["y"]))
            ok = {"mpl-filled": d <= 2, "mpl-aliased": d <= 2, "mpl-outline": d >= 100,
                  "mpl-photo": d <= 80 and 0 < moved < 0.06}[style]
            if style != "mpl-photo":
                ok = ok and moved == 0
            checked += 1
            if not ok:
                bad += 1
                print(f"FAIL scene {i} ({style}): {o['color']} {o['shape']} ({o['table']}) at "
                      f"({o['x']}, {o['y']}): centre pixel {img[y, x]} is {d:.0f} from {col}; moved {moved:.4f}")
    print(f"{checked} objects in 48 scenes, styles {sorted(styles)}")
    if styles != set(foreign.STYLES):
        print("FAIL not every style was drawn")
        bad += 1
    print(f"{checked + 1 - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
