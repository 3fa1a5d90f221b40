/*
 * img.c - image decoding entry point (see img.h).
 *
 * JPEG goes to jpeg.c.  Everything else: stbi_info_from_memory gives the
 * size, which is checked against the caps before stb allocates a pixel;
 * sniff.c says which mode PIL would open the file in and how many channels
 * to ask stb for; then per-format fix-ups make stb's pixels PIL's pixels:
 *   - GIF: PIL paints a transparent pixel in its palette colour and the area
 *     outside the first frame with index 0 (or the transparency index); stb
 *     leaves both transparent black or paints the background.
 *   - PSD is decoded by psd.c, not by stb (whose un-matting of 4-channel
 *     files is undefined behaviour on crafted data and differs from PIL).
 *   - PNM (P5/P6) is decoded here, not by stb (which reads truncated files
 *     into uninitialised memory and does not byte-swap 16-bit samples), with
 *     PIL's rescaling for maxval != 255: min(out, round(v / maxval * out)).
 *   - 16-bit BMP: stb widens 5- and 6-bit channels by bit replication, PIL
 *     by v * 255 / 31 (or 63); the n-bit value is recovered and rescaled.
 *   - 16-bit samples: stb keeps the high byte (v >> 8), which is what PIL
 *     does for RGB/RGBA/grey+alpha; for 16-bit grey PIL would clip to white,
 *     we keep the high byte too (documented divergence, docs/IMAGES.md).
 * Before stb sees a file: caps from our own header read, sniff.c's validity
 * checks (HDR run lengths, unknown critical PNG chunks), truncation, and for
 * PNG an inflate-and-count pass against decompression bombs (pngz.c).
 * Finally the EXIF orientation is applied.
 */
#include "img.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image.h>

#include "jpeg.h"
#include "pngz.h"
#include "psd.h"
#include "sniff.h"

const char *img_mode_name(enum img_mode mode) {
    static const char *names[] = {"1", "L", "LA", "RGB", "RGBA", "P", "CMYK"};
    return names[mode];
}

struct img_limits img_limits_resolve(const struct img_limits *lim) {
    struct img_limits r = {IMG_DEFAULT_MAX_BYTES, IMG_DEFAULT_MAX_SIDE, IMG_DEFAULT_MAX_PIXELS};
    if (lim && lim->max_bytes) r.max_bytes = lim->max_bytes;
    if (lim && lim->max_side) r.max_side = lim->max_side;
    if (lim && lim->max_pixels) r.max_pixels = lim->max_pixels;
    return r;
}

int img_check_size(int width, int height, const struct img_limits *lim, struct fl_err *err) {
    struct img_limits r = img_limits_resolve(lim);
    if (width <= 0 || height <= 0)
        return fl_err_set(err, FL_EFORMAT, "image has no pixels (%dx%d)", width, height);
    if (width > r.max_side || height > r.max_side)
        return fl_err_set(err, FL_ELIMIT, "image is %dx%d; the limit is %d pixels per side", width,
                          height, r.max_side);
    if ((int64_t)width * height > r.max_pixels)
        return fl_err_set(err, FL_ELIMIT, "image is %dx%d = %lld pixels; the limit is %lld", width,
                          height, (long long)width * height, (long long)r.max_pixels);
    return 0;
}

void img_free(struct img *img) {
    if (!img) return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

int img_apply_orientation(struct img *img, int orientation, struct fl_err *err) {
    if (orientation < 2 || orientation > 8) return 0;
    const int w = img->width, h = img->height, c = img->channels;
    const int swap = orientation >= 5; /* 5..8 exchange width and height */
    const int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *out = malloc((size_t)w * h * c);
    if (!out) return fl_err_set(err, FL_ENOMEM, "out of memory rotating a %dx%d image", w, h);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy; /* PIL transpose methods, out[y][x] = in[sy][sx] */
            switch (orientation) {
            case 2: sx = w - 1 - x, sy = y; break;         /* FLIP_LEFT_RIGHT */
            case 3: sx = w - 1 - x, sy = h - 1 - y; break; /* ROTATE_180 */
            case 4: sx = x, sy = h - 1 - y; break;         /* FLIP_TOP_BOTTOM */
            case 5: sx = y, sy = x; break;                 /* TRANSPOSE */
            case 6: sx = y, sy = h - 1 - x; break;         /* ROTATE_270 */
            case 7: sx = w - 1 - y, sy = h - 1 - x; break; /* TRANSVERSE */
            default: sx = w - 1 - y, sy = x; break;        /* 8: ROTATE_90 */
            }
            memcpy(out + ((size_t)y * ow + x) * c, img->px + ((size_t)sy * w + sx) * c, (size_t)c);
        }
    free(img->px);
    img->px = out;
    img->width = ow;
    img->height = oh;
    return 0;
}

/* stb's RGBA first frame -> PIL's P or L pixels (+ alpha when the GIF has a
 * transparency index), in a new buffer. */
static uint8_t *gif_pixels(const uint8_t *rgba, int w, int h, const struct sniff *s, int *channels) {
    const int trans = s->gif_transparent;
    const int grey = s->mode == IMG_MODE_L, c = (grey ? 1 : 3) + (trans >= 0);
    uint8_t *out = malloc((size_t)w * h * c);
    if (!out) return NULL;
    const int fill = trans >= 0 ? trans : 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *src = rgba + ((size_t)y * w + x) * 4;
            uint8_t *dst = out + ((size_t)y * w + x) * c;
            int inside = x >= s->gif_x && x < s->gif_x + s->gif_w && y >= s->gif_y && y < s->gif_y + s->gif_h;
            const uint8_t *rgb = src;
            int transparent = 0;
            if (!inside || src[3] == 0) {
                rgb = s->gif_palette[fill];
                transparent = trans >= 0;
            }
            if (grey) dst[0] = rgb[0];
            else memcpy(dst, rgb, 3);
            if (trans >= 0) dst[c - 1] = transparent ? 0 : 255;
        }
    *channels = c;
    return out;
}

/* PIL's PpmImagePlugin: min(out_max, round(v / maxval * out_max)); for the
 * "I" mode of 16-bit greys (out_max 65535) we keep the high byte. */
static uint8_t pnm_scale(unsigned v, unsigned maxval, unsigned out_max) {
    double r = nearbyint((double)v / (double)maxval * (double)out_max); /* Python round() */
    unsigned u = r > out_max ? out_max : (unsigned)r;
    return (uint8_t)(out_max == 255 ? u : u >> 8);
}

static int decode_pnm(const uint8_t *buf, size_t len, const struct sniff *s,
                      const struct img_limits *lim, struct img *out, struct fl_err *err) {
    if (!s->pnm_data || s->pnm_maxval < 1 || s->pnm_maxval > 65535)
        return fl_err_set(err, FL_EFORMAT, "invalid PNM header");
    int rc = img_check_size(s->pnm_width, s->pnm_height, lim, err);
    if (rc < 0) return rc;
    const int ch = s->mode == IMG_MODE_L ? 1 : 3, wide = s->pnm_maxval > 255;
    const size_t n = (size_t)s->pnm_width * (size_t)s->pnm_height * (size_t)ch;
    if (s->pnm_data + n * (wide ? 2 : 1) > len)
        return fl_err_set(err, FL_EFORMAT, "truncated PNM (%zu sample bytes expected, %zu present)",
                          n * (wide ? 2 : 1), len - s->pnm_data);
    const unsigned out_max = (wide && ch == 1) ? 65535 : 255;
    const uint8_t *p = buf + s->pnm_data;
    out->px = malloc(n);
    if (!out->px) return fl_err_set(err, FL_ENOMEM, "out of memory for a PNM image");
    for (size_t i = 0; i < n; i++) {
        unsigned v = wide ? (unsigned)p[2 * i] << 8 | p[2 * i + 1] : p[i];
        out->px[i] = s->pnm_maxval == 255 ? (uint8_t)v : pnm_scale(v, (unsigned)s->pnm_maxval, out_max);
    }
    out->width = s->pnm_width;
    out->height = s->pnm_height;
    out->channels = ch;
    out->mode = s->mode;
    out->format = "pnm";
    return 0;
}

/* stb's failure text, made safe for a one-line error (stb can build it from
 * file bytes). */
static const char *stb_reason(char out[64]) {
    const char *r = stbi_failure_reason();
    return r ? fl_printable(r, out) : "unknown error";
}

static int decode_stb(const uint8_t *buf, size_t len, const struct img_limits *lim, struct img *out,
                      struct fl_err *err) {
    int w, h, comp, rc;
    char why[64];
    if (len > (size_t)0x7fffffff) return fl_err_set(err, FL_ELIMIT, "image data over 2 GiB");
    /* stb's JPEG test skips 0xFF fill bytes before the SOI marker; PIL does
     * not, and JPEG belongs to libjpeg: refuse rather than let stb decode. */
    if (buf[0] == 0xff && len > 1 && (buf[1] == 0xff || buf[1] == 0xd8))
        return fl_err_set(err, FL_EFORMAT, "not a decodable image (bytes before the JPEG start marker)");
    /* Our own header read first: stb refuses some large sizes with a vague
     * message, and the caps deserve a precise one. */
    struct sniff s;
    sniff_image(buf, len, &s);
    if (s.format == SNIFF_PIC) /* stb's Softimage PIC reader crashes on crafted files */
        return fl_err_set(err, FL_EUNSUPPORTED, "Softimage PIC images are not supported");
    /* (TGA has no magic number: any bytes "are" a TGA until stb agrees.) */
    if (s.format != SNIFF_TGA && s.width && s.height &&
        (rc = img_check_size(s.width, s.height, lim, err)) < 0)
        return rc;
    if (s.format == SNIFF_PNM) return decode_pnm(buf, len, &s, lim, out, err);
    if (s.format == SNIFF_PSD) return psd_decode(buf, len, lim, out, err);
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &comp))
        return fl_err_set(err, FL_EFORMAT, "not a decodable image (%s)", stb_reason(why));
    if ((rc = img_check_size(w, h, lim, err)) < 0) return rc;
    if (s.invalid[0]) return fl_err_set(err, FL_EFORMAT, "%s", s.invalid);
    if (s.truncated)
        return fl_err_set(err, FL_EFORMAT, "truncated %s image (the pixel data ends early)",
                          sniff_format_name(s.format));
    if (s.format == SNIFF_PNG && (rc = pngz_check(buf, len, err)) < 0) return rc;
    int want = s.format == SNIFF_GIF ? 4 : s.channels;
    stbi_uc *px = stbi_load_from_memory(buf, (int)len, &w, &h, &comp, want);
    if (!px)
        return fl_err_set(err, FL_EFORMAT, "invalid %s image (%s)", sniff_format_name(s.format),
                          stb_reason(why));
    out->width = w;
    out->height = h;
    out->channels = want;
    out->mode = s.mode;
    out->format = sniff_format_name(s.format);
    out->orientation = s.orientation;

    size_t n = (size_t)w * h * (size_t)want;
    if (s.format == SNIFF_GIF) {
        out->px = gif_pixels(px, w, h, &s, &out->channels);
    } else {
        /* A copy, so that img_free deals with one allocator only. */
        out->px = malloc(n);
        if (out->px) memcpy(out->px, px, n);
    }
    stbi_image_free(px);
    if (!out->px) return fl_err_set(err, FL_ENOMEM, "out of memory for a %dx%d image", w, h);
    if (s.bmp16_bits[0]) /* PIL's widening of 16-bit BMP channels */
        for (size_t i = 0; i < n; i++) {
            int bits = s.bmp16_bits[i % 3], v = out->px[i] >> (8 - bits);
            out->px[i] = (uint8_t)(v * 255 / ((1 << bits) - 1));
        }
    return 0;
}

int img_decode(const uint8_t *buf, size_t len, const struct img_limits *lim, struct img *out,
               struct fl_err *err) {
    memset(out, 0, sizeof *out);
    struct img_limits r = img_limits_resolve(lim);
    if (len == 0) return fl_err_set(err, FL_EFORMAT, "empty image data");
    if (len > r.max_bytes)
        return fl_err_set(err, FL_ELIMIT, "image data is %zu bytes; the limit is %zu", len, r.max_bytes);
    int rc;
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        rc = jpg_decode(buf, len, &r, out, err);
    else
        rc = decode_stb(buf, len, &r, out, err);
    if (rc == 0) rc = img_apply_orientation(out, out->orientation, err);
    if (rc < 0) {
        img_free(out);
        return rc;
    }
    if (out->orientation < 1 || out->orientation > 8) out->orientation = 1;
    return 0;
}
