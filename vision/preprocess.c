/*
 * preprocess.c - see preprocess.h.
 *
 * PIL's two-pass resampler, restricted to an output window:
 *   coefficients  for each output index i: centre = (i + 0.5) * scale,
 *                 taps from (int)(centre - support + 0.5) to
 *                 (int)(centre + support + 0.5) clamped to the input, weights
 *                 bicubic((j - centre + 0.5) / filterscale) divided by their
 *                 sum, then rounded to 22-bit fixed point (away from zero);
 *   a pass        acc = 2^21 + sum(pixel * weight); out = clamp(acc >> 22);
 *   order         horizontal first (only when the width changes), into an
 *                 8-bit intermediate holding just the source rows the
 *                 vertical pass needs, then vertical (only when the height
 *                 changes).
 * Floating-point operations are written in PIL's order and must not be
 * contracted into FMAs: the Makefile builds with -ffp-contract=off.
 */
#include "preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22

/* ---- sizes ---------------------------------------------------------- */

void pre_resize_dims(int w, int h, int size, int *out_w, int *out_h) {
    int is_w_short = w <= h;
    long long shrt = is_w_short ? w : h, lng = is_w_short ? h : w;
    if (shrt == size) {
        *out_w = w;
        *out_h = h;
        return;
    }
    /* Python: int(size * long / short), a correctly rounded true division */
    int new_long = (int)((double)((long long)size * lng) / (double)shrt);
    *out_w = is_w_short ? size : new_long;
    *out_h = is_w_short ? new_long : size;
}

int pre_crop_offset(int len, int size) {
    int d = len - size; /* >= 0 after the resize */
    int half = d / 2;
    if (d % 2 == 0) return half;
    return half % 2 == 0 ? half : half + 1; /* x.5 rounds to the even neighbour */
}

/* ---- PIL's bicubic coefficients --------------------------------------- */

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

struct coeffs {
    int ksize;
    int *start; /* [n] first source index */
    int *count; /* [n] taps */
    int32_t *k; /* [n][ksize] fixed point */
};

static void coeffs_free(struct coeffs *c) {
    free(c->start);
    free(c->count);
    free(c->k);
}

/* Coefficients of output indices first .. first+n-1 of a resize in -> out. */
static int coeffs_init(struct coeffs *c, int in, int out, int first, int n, struct fl_err *err) {
    memset(c, 0, sizeof *c);
    double scale = (double)((float)in - 0.0f) / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->start = malloc((size_t)n * sizeof *c->start);
    c->count = malloc((size_t)n * sizeof *c->count);
    c->k = malloc((size_t)n * (size_t)c->ksize * sizeof *c->k);
    double *w = malloc((size_t)c->ksize * sizeof *w);
    if (!c->start || !c->count || !c->k || !w) {
        free(w);
        coeffs_free(c);
        return fl_err_set(err, FL_ENOMEM, "out of memory for resize coefficients");
    }
    for (int i = 0; i < n; i++) {
        int xx = first + i;
        double center = 0.0 + (xx + 0.5) * scale;
        double ss = 1.0 / filterscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)i * c->ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->start[i] = xmin;
        c->count[i] = xmax;
    }
    free(w);
    return 0;
}

static inline uint8_t clip8(int32_t acc) {
    if (acc < 0) return 0;
    acc >>= PRECISION_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* One row: dst[i][ch] = sum over taps of src[(start+j) * stride + ch] * k. */
static void pass_row(const uint8_t *src, int src_stride, int ch, const struct coeffs *c, int n,
                     uint8_t *dst) {
    for (int i = 0; i < n; i++) {
        const int32_t *k = c->k + (size_t)i * c->ksize;
        const uint8_t *s = src + (size_t)c->start[i] * src_stride;
        for (int q = 0; q < ch; q++) {
            int32_t acc = 1 << (PRECISION_BITS - 1);
            for (int j = 0; j < c->count[i]; j++) acc += s[(size_t)j * src_stride + q] * k[j];
            dst[i * ch + q] = clip8(acc);
        }
    }
}

/*
 * Bicubic resize of src [h][w][stride] (first ch channels) to out_w x out_h,
 * computing only the window [x0, x0+nx) x [y0, y0+ny) into dst [ny][nx][ch].
 */
static int resample_bicubic(const uint8_t *src, int w, int h, int stride, int ch, int out_w,
                            int out_h, int x0, int nx, int y0, int ny, uint8_t *dst,
                            struct fl_err *err) {
    const int need_h = out_w != w, need_v = out_h != h;
    struct coeffs hc = {0}, vc = {0};
    int rc = 0, ry0 = y0, ry1 = y0 + ny;
    uint8_t *tmp = NULL;
    if (need_h && (rc = coeffs_init(&hc, w, out_w, x0, nx, err)) < 0) return rc;
    if (need_v) {
        if ((rc = coeffs_init(&vc, h, out_h, y0, ny, err)) < 0) goto done;
        ry0 = vc.start[0];
        ry1 = vc.start[ny - 1] + vc.count[ny - 1];
    }
    const int rows = ry1 - ry0;
    tmp = malloc((size_t)rows * nx * ch);
    if (!tmp) {
        rc = fl_err_set(err, FL_ENOMEM, "out of memory resizing a %dx%d image", w, h);
        goto done;
    }
    for (int r = 0; r < rows; r++) {
        const uint8_t *srow = src + (size_t)(ry0 + r) * w * stride;
        uint8_t *trow = tmp + (size_t)r * nx * ch;
        if (need_h) {
            pass_row(srow, stride, ch, &hc, nx, trow);
        } else {
            for (int x = 0; x < nx; x++) memcpy(trow + x * ch, srow + (size_t)(x0 + x) * stride, (size_t)ch);
        }
    }
    if (need_v) {
        /* Vertical pass: for each output row, taps are rows of tmp; walk the
         * columns with a stride of one row. */
        const int row_len = nx * ch;
        for (int i = 0; i < ny; i++) {
            const int32_t *k = vc.k + (size_t)i * vc.ksize;
            const uint8_t *base = tmp + (size_t)(vc.start[i] - ry0) * row_len;
            for (int x = 0; x < row_len; x++) {
                int32_t acc = 1 << (PRECISION_BITS - 1);
                for (int j = 0; j < vc.count[i]; j++) acc += base[(size_t)j * row_len + x] * k[j];
                dst[(size_t)i * row_len + x] = clip8(acc);
            }
        }
    } else {
        memcpy(dst, tmp, (size_t)ny * nx * ch);
    }
done:
    free(tmp);
    coeffs_free(&hc);
    coeffs_free(&vc);
    return rc;
}

/* PIL's NEAREST resize (Geometry.c ImagingScaleAffine): the source
 * coordinate is accumulated in a double, starting at scale / 2. */
static void nearest_index(int in, int out, int first, int n, int *idx) {
    double scale = (double)((float)in - 0.0f) / out;
    double pos = 0.0 + scale * 0.5;
    for (int i = 0; i < first + n; i++) {
        if (i >= first) {
            int v = pos < 0.0 ? -1 : (int)pos;
            idx[i - first] = v < 0 ? 0 : (v >= in ? in - 1 : v);
        }
        pos += scale;
    }
}

static int resample_nearest(const uint8_t *src, int w, int h, int stride, int ch, int out_w,
                            int out_h, int x0, int nx, int y0, int ny, uint8_t *dst,
                            struct fl_err *err) {
    int *xi = malloc((size_t)nx * sizeof *xi), *yi = malloc((size_t)ny * sizeof *yi);
    if (!xi || !yi) {
        free(xi);
        free(yi);
        return fl_err_set(err, FL_ENOMEM, "out of memory resizing");
    }
    nearest_index(w, out_w, x0, nx, xi);
    nearest_index(h, out_h, y0, ny, yi);
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++)
            memcpy(dst + ((size_t)y * nx + x) * ch, src + ((size_t)yi[y] * w + xi[x]) * stride, (size_t)ch);
    free(xi);
    free(yi);
    return 0;
}

/* ---- PIL's integer colour arithmetic ---------------------------------- */

static inline uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* Premultiplied copy of the first ch channels (alpha last) of src. */
static uint8_t *premultiply(const uint8_t *src, size_t n_px, int stride, int ch) {
    uint8_t *out = malloc(n_px * ch);
    if (!out) return NULL;
    for (size_t i = 0; i < n_px; i++) {
        const uint8_t *s = src + i * stride;
        uint8_t *d = out + i * ch, a = s[ch - 1];
        for (int q = 0; q < ch - 1; q++) d[q] = muldiv255(s[q], a);
        d[ch - 1] = a;
    }
    return out;
}

static void unpremultiply(uint8_t *px, size_t n_px, int ch) {
    for (size_t i = 0; i < n_px; i++) {
        uint8_t *p = px + i * ch, a = p[ch - 1];
        if (a == 0 || a == 255) continue;
        for (int q = 0; q < ch - 1; q++) {
            int v = 255 * p[q] / a;
            p[q] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

/* Pixels of mode with ch channels -> RGB (PIL's convert("RGB")). */
static void to_rgb(const uint8_t *src, int ch, enum img_mode mode, size_t n_px, uint8_t *rgb) {
    for (size_t i = 0; i < n_px; i++) {
        const uint8_t *s = src + i * ch;
        uint8_t *d = rgb + i * 3;
        switch (mode) {
        case IMG_MODE_1:
        case IMG_MODE_L:
        case IMG_MODE_LA: d[0] = d[1] = d[2] = s[0]; break;
        case IMG_MODE_CMYK: {
            int nk = 255 - s[3];
            for (int q = 0; q < 3; q++) d[q] = (uint8_t)(nk - muldiv255(s[q], nk));
            break;
        }
        default: memcpy(d, s, 3); break; /* RGB, RGBA, P (expanded) */
        }
    }
}

static int own_channels(enum img_mode mode) {
    switch (mode) {
    case IMG_MODE_1:
    case IMG_MODE_L: return 1;
    case IMG_MODE_LA: return 2;
    case IMG_MODE_RGBA:
    case IMG_MODE_CMYK: return 4;
    default: return 3;
    }
}

/* ---- the two pipelines ------------------------------------------------ */

static int open_clip_rgb8(const struct img *img, int S, uint8_t *rgb, struct fl_err *err) {
    const int w = img->width, h = img->height, stride = img->channels;
    const enum img_mode mode = img->mode;
    const int ch = own_channels(mode);
    int ow, oh;
    pre_resize_dims(w, h, S, &ow, &oh);
    const int x0 = pre_crop_offset(ow, S), y0 = pre_crop_offset(oh, S);
    const int resized = ow != w || oh != h;
    uint8_t *win = malloc((size_t)S * S * ch);
    if (!win) return fl_err_set(err, FL_ENOMEM, "out of memory preprocessing");
    int rc;
    if (mode == IMG_MODE_P || mode == IMG_MODE_1) {
        rc = resample_nearest(img->px, w, h, stride, ch, ow, oh, x0, S, y0, S, win, err);
    } else if ((mode == IMG_MODE_RGBA || mode == IMG_MODE_LA) && resized) {
        /* Image.resize converts RGBA -> RGBa and back around the resample */
        uint8_t *pm = premultiply(img->px, (size_t)w * h, stride, ch);
        rc = pm ? resample_bicubic(pm, w, h, ch, ch, ow, oh, x0, S, y0, S, win, err)
                : fl_err_set(err, FL_ENOMEM, "out of memory preprocessing");
        free(pm);
        if (rc == 0) unpremultiply(win, (size_t)S * S, ch);
    } else {
        rc = resample_bicubic(img->px, w, h, stride, ch, ow, oh, x0, S, y0, S, win, err);
    }
    if (rc == 0) to_rgb(win, ch, mode, (size_t)S * S, rgb);
    free(win);
    return rc;
}

static int idefics_rgb8(const struct img *img, int S, uint8_t *rgb, struct fl_err *err) {
    const int w = img->width, h = img->height, c = img->channels;
    const size_t n_px = (size_t)w * h;
    uint8_t *flat = malloc(n_px * 3);
    if (!flat) return fl_err_set(err, FL_ENOMEM, "out of memory preprocessing");
    const int own = own_channels(img->mode);
    /* convert("RGBA") carries an alpha when the mode has one or the file had
     * a transparency; an "RGB" image is returned untouched. */
    const int has_alpha = img->mode != IMG_MODE_RGB && (own == 2 || own == 4 || c > own) &&
                          img->mode != IMG_MODE_CMYK;
    for (size_t i = 0; i < n_px; i++) {
        const uint8_t *s = img->px + i * c;
        uint8_t px[3];
        to_rgb(s, c, img->mode, 1, px);
        if (has_alpha) {
            /* alpha_composite over opaque white, PIL's integer form */
            int a = s[c - 1];
            for (int q = 0; q < 3; q++) px[q] = (uint8_t)(255 - a + muldiv255(px[q], a));
        }
        memcpy(flat + i * 3, px, 3);
    }
    int rc = resample_bicubic(flat, w, h, 3, 3, S, S, 0, S, 0, S, rgb, err);
    free(flat);
    return rc;
}

int pre_rgb8(const struct img *img, const struct cfg_preprocess *cfg, uint8_t *rgb,
             struct fl_err *err) {
    if (!img->px || img->width < 1 || img->height < 1)
        return fl_err_set(err, FL_EINVAL, "no image to preprocess");
    if (cfg->kind == CFG_PRE_IDEFICS) return idefics_rgb8(img, cfg->image_size, rgb, err);
    return open_clip_rgb8(img, cfg->image_size, rgb, err);
}

void pre_normalize(const uint8_t *rgb, const struct cfg_preprocess *cfg, float *out) {
    const int S = cfg->image_size;
    const size_t plane = (size_t)S * S;
    for (int q = 0; q < 3; q++) {
        const float mean = cfg->mean[q], std = cfg->std[q];
        for (size_t i = 0; i < plane; i++) {
            float x = cfg->kind == CFG_PRE_IDEFICS
                          ? (float)((double)rgb[i * 3 + q] * (1.0 / 255.0)) /* numpy rescale */
                          : (float)rgb[i * 3 + q] / 255.0f;                 /* ToTensor */
            out[q * plane + i] = (x - mean) / std;
        }
    }
}

int pre_image(const struct img *img, const struct cfg_preprocess *cfg, float *out,
              struct fl_err *err) {
    const int S = cfg->image_size;
    uint8_t *rgb = malloc((size_t)S * S * 3);
    if (!rgb) return fl_err_set(err, FL_ENOMEM, "out of memory preprocessing");
    int rc = pre_rgb8(img, cfg, rgb, err);
    if (rc == 0) pre_normalize(rgb, cfg, out);
    free(rgb);
    return rc;
}
