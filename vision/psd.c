/*
 * psd.c - Photoshop files, decoded here rather than by stb_image.
 *
 * stb 2.27 "un-mattes" 4-channel PSDs against white with a float-to-byte
 * conversion that overflows on crafted files (undefined behaviour found by
 * fuzzing), and PIL does no such thing.  The merged image of a PSD is simple
 * enough to read directly: a 26-byte header, three length-prefixed sections
 * to skip, a compression word, then one plane per channel, raw or PackBits
 * with a table of row byte counts.
 *
 * As PIL (PsdImagePlugin, 9.4): 8-bit RGB files only here (grey, indexed,
 * CMYK and 16-bit files are refused: stb had the same limit); 3 channels
 * give "RGB", exactly 4 "RGBA", 5 or more "RGB" (extra channels ignored).
 */
#include "psd.h"

#include <stdlib.h>
#include <string.h>

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One PackBits row of src[n] into dst[w] with a stride; 0 when it decodes to
 * exactly w bytes. */
static int unpack_row(const uint8_t *src, size_t n, uint8_t *dst, int w, int stride) {
    int x = 0;
    size_t i = 0;
    while (i < n && x < w) {
        int c = (int8_t)src[i++];
        if (c >= 0) { /* c + 1 literal bytes */
            if (i + (size_t)c + 1 > n || x + c + 1 > w) return -1;
            for (int k = 0; k <= c; k++) dst[(size_t)(x++) * stride] = src[i++];
        } else if (c != -128) { /* 1 - c copies of the next byte */
            if (i >= n || x + 1 - c > w) return -1;
            uint8_t v = src[i++];
            for (int k = 0; k < 1 - c; k++) dst[(size_t)(x++) * stride] = v;
        }
    }
    return x == w ? 0 : -1;
}

int psd_decode(const uint8_t *b, size_t n, const struct img_limits *lim, struct img *out,
               struct fl_err *err) {
    if (n < 26 || memcmp(b, "8BPS", 4) || be16(b + 4) != 1)
        return fl_err_set(err, FL_EFORMAT, "invalid PSD header");
    unsigned channels = be16(b + 12), depth = be16(b + 22), mode = be16(b + 24);
    uint32_t h = be32(b + 14), w = be32(b + 18);
    if (w > 0x7fffffff || h > 0x7fffffff) return fl_err_set(err, FL_ELIMIT, "PSD size out of range");
    int rc = img_check_size((int)w, (int)h, lim, err);
    if (rc < 0) return rc;
    if (mode != 3 || depth != 8 || channels < 3 || channels > 56)
        return fl_err_set(err, FL_EUNSUPPORTED,
                          "PSD with colour mode %u, %u bits, %u channels is not supported (8-bit RGB only)",
                          mode, depth, channels);
    uint64_t at = 26;
    for (int sec = 0; sec < 3; sec++) { /* colour mode data, resources, layers */
        if (at + 4 > n) return fl_err_set(err, FL_EFORMAT, "truncated PSD header");
        at += 4 + (uint64_t)be32(b + at);
    }
    if (at + 2 > n) return fl_err_set(err, FL_EFORMAT, "truncated PSD header");
    unsigned compression = be16(b + at);
    at += 2;
    const int ch = channels == 4 ? 4 : 3;
    const size_t plane = (size_t)w * h;
    uint8_t *px = malloc(plane * ch);
    if (!px) return fl_err_set(err, FL_ENOMEM, "out of memory for a %ux%u PSD", w, h);
    if (compression == 0) {
        if (at + (uint64_t)plane * ch > n) {
            free(px);
            return fl_err_set(err, FL_EFORMAT, "truncated PSD image (the pixel data ends early)");
        }
        for (int c = 0; c < ch; c++)
            for (size_t i = 0; i < plane; i++) px[i * ch + c] = b[at + (uint64_t)c * plane + i];
    } else if (compression == 1) {
        /* row byte counts for every channel, then the rows in that order */
        const uint64_t rows = (uint64_t)h * channels;
        uint64_t data = at + 2 * rows;
        if (data > n) {
            free(px);
            return fl_err_set(err, FL_EFORMAT, "truncated PSD image (the pixel data ends early)");
        }
        for (unsigned c = 0; c < (unsigned)ch; c++)
            for (uint32_t y = 0; y < h; y++) {
                size_t count = be16(b + at + 2 * ((uint64_t)c * h + y));
                if (data + count > n) {
                    free(px);
                    return fl_err_set(err, FL_EFORMAT, "truncated PSD image (the pixel data ends early)");
                }
                if (unpack_row(b + data, count, px + (size_t)y * w * ch + c, (int)w, ch) < 0) {
                    free(px);
                    return fl_err_set(err, FL_EFORMAT, "invalid PSD run-length data (channel %u, row %u)", c, y);
                }
                data += count;
            }
    } else {
        free(px);
        return fl_err_set(err, FL_EUNSUPPORTED, "PSD compression %u is not supported", compression);
    }
    out->width = (int)w;
    out->height = (int)h;
    out->channels = ch;
    out->mode = ch == 4 ? IMG_MODE_RGBA : IMG_MODE_RGB;
    out->format = "psd";
    out->px = px;
    return 0;
}
