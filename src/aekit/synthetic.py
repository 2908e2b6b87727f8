"""Built-in synthetic face data set, drawn procedurally with Pillow.

Every face is a cartoon portrait drawn at 4x the requested size and
downsampled with Lanczos filtering, so edges are anti-aliased; a soft lighting
gradient and a little pixel noise keep images from being perfectly flat.
Each face carries CelebA-style binary attributes (see ``ATTRIBUTE_NAMES``)
that are clearly visible in the pixels, so the whole toolkit (training,
reconstruction, latent arithmetic, attribute probes) can be demonstrated and
tested offline in minutes without downloading any data.

Faces are deterministic: face ``index`` depends only on ``(seed, index)``, via
``np.random.default_rng([seed, index])``, so it is identical whether drawn
alone or as part of any batch.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Male", "Smiling", "Eyeglasses", "Blond_Hair", "Black_Hair", "Bangs",
    "Wearing_Hat", "Mouth_Slightly_Open", "Pale_Skin", "Young",
)

_HAIR = {  # name -> RGB
    "black": (30, 24, 22), "brown": (108, 68, 38), "blond": (232, 196, 112),
    "grey": (172, 170, 166), "red": (176, 74, 34),
}
_HAIR_NAMES = ("black", "brown", "blond", "grey", "red")
_HAIR_P_YOUNG = (0.36, 0.18, 0.36, 0.00, 0.10)
_HAIR_P_OLD = (0.25, 0.10, 0.24, 0.36, 0.05)
# Skin palette from palest to darkest; Pale_Skin faces use only its first part.
_SKIN = np.array([(253, 232, 220), (240, 204, 178), (218, 168, 128),
                  (178, 122, 82), (122, 80, 52), (78, 52, 36)], float)
_IRIS = ((92, 56, 30), (58, 108, 180), (70, 128, 78), (112, 122, 132), (44, 28, 18))


def _mix(c1, c2, t: float) -> tuple[int, int, int]:
    """Blend two RGB colours: t=0 gives c1, t=1 gives c2."""
    return tuple(int(round(a + (b - a) * t)) for a, b in zip(c1, c2))


def _jitter(r, c, amount: float) -> tuple[int, int, int]:
    """Perturb an RGB colour by up to +-amount per channel, using uniforms from r()."""
    return tuple(min(255, max(0, int(v + amount * (2 * r() - 1)))) for v in c)


def _random_colour(r, lo: int = 20, hi: int = 236) -> tuple[int, int, int]:
    """A random RGB colour with channels in [lo, hi), using uniforms from r()."""
    return tuple(int(lo + (hi - lo) * r()) for _ in range(3))


def _skin_colour(u: float) -> tuple[int, int, int]:
    """Interpolate the skin palette at position u in [0, 1] (pale to dark)."""
    x = u * (len(_SKIN) - 1)
    i = min(int(x), len(_SKIN) - 2)
    return _mix(_SKIN[i], _SKIN[i + 1], x - i)


def _sample_attributes(r) -> tuple[dict[str, int], str]:
    """Draw one face's binary attributes (marginals 0.3-0.5) and its hair colour name."""
    male, young = r() < 0.45, r() < 0.5
    x = r()
    for hair, p in zip(_HAIR_NAMES, _HAIR_P_YOUNG if young else _HAIR_P_OLD):
        x -= p
        if x < 0:
            break
    return {
        "Male": int(male), "Smiling": int(r() < 0.45), "Eyeglasses": int(r() < 0.35),
        "Blond_Hair": int(hair == "blond"), "Black_Hair": int(hair == "black"),
        "Bangs": int(r() < 0.35), "Wearing_Hat": int(r() < 0.3),
        "Mouth_Slightly_Open": int(r() < 0.4), "Pale_Skin": int(r() < 0.3), "Young": int(young),
    }, hair


def face_attributes(index: int, seed: int = 0) -> dict[str, int]:
    """The attributes of face `index` without drawing it (the same random draws as `draw_face`)."""
    rng = np.random.default_rng([seed, index])
    return _sample_attributes(iter(rng.random(64).tolist()).__next__)[0]


def draw_face(index: int, seed: int = 0, size: int = 64) -> tuple[np.ndarray, dict[str, int]]:
    """Draw face number `index` of the set with this seed: (size, size, 3) uint8 RGB and its attributes (0/1 ints)."""
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    rng = np.random.default_rng([seed, index])
    # One batch of uniforms, consumed in order: far cheaper than many small rng calls.
    r = iter(rng.random(64).tolist()).__next__
    at, hair_name = _sample_attributes(r)
    S = 4 * size

    def P(x: float, y: float) -> tuple[float, float]:
        return (x * S, y * S)

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [min(x0, x1) * S, min(y0, y1) * S, max(x0, x1) * S, max(y0, y1) * S]

    def W(w: float) -> int:
        return max(1, int(round(w * S)))

    def U(lo: float, hi: float) -> float:
        return lo + (hi - lo) * r()

    # --- colours -------------------------------------------------------------
    u = U(0.0, 0.1) if at["Pale_Skin"] else U(0.22, 1.0)
    skin = _jitter(r, _skin_colour(u), 6)
    shade = _mix(skin, (40, 20, 10), 0.28)
    hair = _jitter(r, _HAIR[hair_name], 14)
    brow = _mix(hair, (20, 14, 10), 0.55 if hair_name in ("blond", "grey") else 0.3)
    iris = _jitter(r, _IRIS[int(r() * len(_IRIS))], 10)
    lips = _mix(_mix(skin, (170, 40, 50), 0.45 if at["Male"] else 0.65), (0, 0, 0), 0.1)
    cloth, hat_colour = _random_colour(r), _random_colour(r)
    bg1, bg2 = _random_colour(r, 30), _random_colour(r, 30)
    if r() < 0.6:  # flat background, otherwise a vertical gradient
        bg2 = bg1

    # --- geometry (fractions of the canvas) ----------------------------------
    jit = rng.standard_normal(5).tolist()
    cx, cy = 0.5 + 0.018 * jit[0], 0.53 + 0.018 * jit[1]
    a = 0.23 * (1 + 0.05 * jit[2]) * (1.04 if at["Male"] else 1.0)
    b = 0.30 * (1 + 0.04 * jit[3])
    tilt = min(10.0, max(-10.0, 4.0 * jit[4]))  # degrees
    long_hair = r() < (0.12 if at["Male"] else 0.75)
    beard = at["Male"] and r() < 0.6
    beard_t = U(0.35, 0.5) if r() < 0.6 else U(0.7, 0.9)  # stubble or full beard
    ey, ex = cy - 0.1 * b, 0.4 * a
    ew, eh = 0.16 * a * U(0.9, 1.1), 0.085 * b * U(0.85, 1.15) * (1.0 if at["Young"] else 0.85)
    my, mw = cy + 0.52 * b, (0.36 + (0.06 if at["Smiling"] else 0)) * a

    # Opaque fills on a transparent "RGBa" layer are already premultiplied, so
    # Pillow can resize it directly (no RGBA<->RGBa conversions).
    layer = Image.new("RGBa", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    # Shoulders, long hair behind the head, neck, ears.
    d.ellipse(box(cx - 0.46, cy + 0.9 * b, cx + 0.46, cy + 0.9 * b + 0.55), fill=cloth)
    if long_hair:
        hl = U(1.1, 1.6)
        d.rounded_rectangle(box(cx - 1.32 * a, cy - 0.7 * b, cx + 1.32 * a, cy + hl * b),
                            radius=int(0.5 * a * S), fill=hair)
    d.rectangle(box(cx - 0.42 * a, cy + 0.5 * b, cx + 0.42 * a, cy + 1.15 * b), fill=shade)
    for s in (-1, 1):
        d.ellipse(box(cx + s * 0.9 * a, ey - 0.12 * b, cx + s * 1.12 * a, ey + 0.28 * b),
                  fill=shade)
    # Hair cap behind the face top (short and tight for most men).
    cap = 1.03 if at["Male"] and not long_hair else 1.1
    d.ellipse(box(cx - cap * a, cy - (cap + 0.04) * b, cx + cap * a, cy + 0.25 * b), fill=hair)
    d.ellipse(box(cx - a, cy - b, cx + a, cy + b), fill=skin)
    # Beard / stubble over the lower face (the mouth is drawn on top later).
    if beard:
        bc = _mix(skin, _mix(hair, (40, 30, 25), 0.3), beard_t)
        d.chord(box(cx - a, cy - b, cx + a, cy + b), 0, 180, fill=bc)
        d.ellipse(box(cx - 0.8 * a, cy - 0.6 * b, cx + 0.8 * a, cy + 0.36 * b), fill=skin)
        d.ellipse(box(cx - 0.55 * a, my - 0.2 * b, cx + 0.55 * a, my + 0.03 * b), fill=bc)
    # Hairline (upper-half chord) and optional fringe with jagged strands.
    hair_bot = -0.66 if at["Male"] and not long_hair else -0.6
    d.chord(box(cx - 1.02 * a, cy - 1.1 * b, cx + 1.02 * a, cy + (2 * hair_bot + 1.1) * b),
            180, 360, fill=hair)
    if at["Bangs"]:
        fy = cy - U(0.34, 0.42) * b
        d.chord(box(cx - 1.0 * a, cy - 1.05 * b, cx + 1.0 * a, 2 * fy - cy + 1.05 * b),
                180, 360, fill=hair)
        n = 7
        for k in range(n):
            x0 = cx - 0.85 * a + 1.7 * a * k / n
            d.polygon([P(x0, fy - 0.02), P(x0 + 1.7 * a / n, fy - 0.02),
                       P(x0 + 0.85 * a / n, fy + 0.09 * b)], fill=hair)
    # Eyebrows: thicker and flatter for men; raised a bit when smiling.
    bw = W(0.024 if at["Male"] else 0.013)
    by = ey - 0.2 * b - (0.02 * b if at["Smiling"] else 0)
    for s in (-1, 1):
        arch = 0.015 if at["Male"] else 0.035
        d.line([P(cx + s * (ex - 0.2 * a), by + 0.01), P(cx + s * ex, by - arch),
                P(cx + s * (ex + 0.22 * a), by + 0.005)], fill=brow, width=bw, joint="curve")
    # Eyes: white, iris, pupil, highlight.
    for s in (-1, 1):
        x = cx + s * ex
        d.ellipse(box(x - ew, ey - eh, x + ew, ey + eh), fill=(248, 246, 242),
                  outline=_mix(shade, (0, 0, 0), 0.4), width=W(0.005))
        ir = 0.62 * ew
        d.ellipse(box(x - ir, ey - ir, x + ir, ey + ir), fill=iris)
        pr = 0.45 * ir
        d.ellipse(box(x - pr, ey - pr, x + pr, ey + pr), fill=(12, 10, 10))
        d.ellipse(box(x + 0.15 * ir, ey - 0.5 * ir, x + pr, ey - 0.2 * ir), fill=(255, 255, 255))
    # Nose: a side line and nostril shadow.
    ny = cy + 0.27 * b
    d.line([P(cx - 0.02 * a, ey + 0.05 * b), P(cx - 0.1 * a, ny)], fill=shade, width=W(0.008))
    d.chord(box(cx - 0.14 * a, ny - 0.07 * b, cx + 0.14 * a, ny + 0.04 * b), 0, 180, fill=shade)
    # Age lines for older faces.
    if not at["Young"]:
        wl, wc = W(0.007), _mix(skin, (30, 15, 5), 0.4)
        for k in range(0 if at["Bangs"] else 2):
            yy = cy - (0.4 + 0.1 * k) * b
            d.arc(box(cx - 0.35 * a, yy - 0.03, cx + 0.35 * a, yy + 0.03), 200, 340,
                  fill=wc, width=wl)
        for s in (-1, 1):
            d.line([P(cx + s * 0.2 * a, ny), P(cx + s * (mw + 0.06 * a), my + 0.08 * b)],
                   fill=wc, width=wl)
            d.arc(box(cx + s * ex - ew, ey, cx + s * ex + ew, ey + 2.6 * eh), 20, 160,
                  fill=wc, width=wl)
    # Mouth: smiling arc vs neutral line; open shows the dark inside.
    dark, lw = (70, 20, 28), W(0.014)
    if at["Smiling"]:
        mb = box(cx - mw, my - 0.14 * b, cx + mw, my + 0.12 * b)
        if at["Mouth_Slightly_Open"]:
            d.chord(mb, 0, 180, fill=dark, outline=lips, width=lw)
            d.rectangle(box(cx - 0.6 * mw, my - 0.01 * b, cx + 0.6 * mw, my + 0.03 * b),
                        fill=(240, 236, 226))
        else:
            d.arc(mb, 10, 170, fill=lips, width=int(lw * 1.4))
    else:
        if at["Mouth_Slightly_Open"]:
            d.ellipse(box(cx - 0.75 * mw, my - 0.05 * b, cx + 0.75 * mw, my + 0.07 * b),
                      fill=dark, outline=lips, width=lw)
        else:
            d.line([P(cx - mw, my + 0.04 * b), P(cx + mw, my + 0.04 * b)], fill=lips, width=lw)
    # Eyeglasses: two frames, a bridge and the arms.
    if at["Eyeglasses"]:
        gc = _jitter(r, (25, 22, 22) if r() < 0.7 else (120, 40, 30), 15)
        gw, gx, gh = W(0.012), 0.27 * a, 0.16 * b
        for s in (-1, 1):
            x = cx + s * ex
            d.rounded_rectangle(box(x - gx, ey - gh, x + gx, ey + gh), radius=int(0.06 * a * S),
                                outline=gc, width=gw)
            d.line([P(x + s * gx, ey - 0.5 * gh), P(cx + s * a, ey - 0.6 * gh)],
                   fill=gc, width=gw)
        d.line([P(cx - ex + gx, ey - 0.3 * gh), P(cx + ex - gx, ey - 0.3 * gh)], fill=gc, width=gw)
    # Hat over the hair: brimmed hat or beanie.
    if at["Wearing_Hat"]:
        hc, hy = hat_colour, cy - U(0.62, 0.7) * b
        if r() < 0.5:
            d.rounded_rectangle(box(cx - 0.95 * a, hy - 0.68 * b, cx + 0.95 * a, hy),
                                radius=int(0.2 * a * S), fill=hc)
            d.rectangle(box(cx - 0.95 * a, hy - 0.2 * b, cx + 0.95 * a, hy - 0.06 * b),
                        fill=_mix(hc, (0, 0, 0), 0.45))  # hat band
            d.ellipse(box(cx - 1.6 * a, hy - 0.1 * b, cx + 1.6 * a, hy + 0.1 * b), fill=hc)
        else:
            d.chord(box(cx - 1.1 * a, hy - 0.55 * b, cx + 1.1 * a, hy + 0.5 * b), 180, 360, fill=hc)
            d.rounded_rectangle(box(cx - 1.1 * a, hy - 0.08 * b, cx + 1.1 * a, hy + 0.06 * b),
                                radius=int(0.03 * S), fill=_mix(hc, (255, 255, 255), 0.3))

    # Tilt the portrait, downsample it, then put it over the background.
    if abs(tilt) > 0.5:  # nearest is enough: the 4x Lanczos downsample smooths it
        layer = layer.rotate(tilt, resample=Image.NEAREST, center=P(cx, cy))
    small = np.asarray(layer.resize((size, size), Image.LANCZOS, reducing_gap=2.0), np.float32)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    c1, c2 = np.array(bg1, np.float32), np.array(bg2, np.float32)
    bg = (c1 + c2) / 2 + ((c2 - c1) / 2) * ramp[:, None, None]
    img = small[:, :, :3] + bg * (1.0 - small[:, :, 3:] * (1 / 255.0))  # premultiplied "over"
    # Soft lighting gradient in a random direction, then uniform noise with std 2
    # (uniform noise is ~3x cheaper to draw than Gaussian; +0.5 rounds on cast).
    ang, amp = U(0.0, 2 * np.pi), U(0.0, 0.12)
    img *= (1.0 + amp * np.sin(ang) * ramp)[:, None, None] + (amp * np.cos(ang) * ramp)[None, :, None]
    half = np.float32(12 ** 0.5)  # U(-half, half) has std 2
    img += rng.random(img.shape, dtype=np.float32) * (2 * half) + (0.5 - half)
    return np.clip(img, 0, 255, out=img).astype(np.uint8), at


def make_faces(n: int, seed: int = 0, size: int = 64,
               start: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Faces start..start+n-1: (n, size, size, 3) uint8 and {attribute: (n,) int8 array of 0/1}."""
    images = np.empty((n, size, size, 3), np.uint8)
    attrs = {name: np.empty(n, np.int8) for name in ATTRIBUTE_NAMES}
    for i in range(n):
        images[i], at = draw_face(start + i, seed=seed, size=size)
        for name in ATTRIBUTE_NAMES:
            attrs[name][i] = at[name]
    return images, attrs
