/*
 * sniff.c - see sniff.h.  The per-format mode rules (Pillow 9.4):
 *
 *   PNG  grey 1-bit "1"; grey 2/4/8 "L" (16-bit: "I", which we reduce to 8
 *        bits instead of clipping); RGB "RGB"; palette "P"; grey+alpha "LA"
 *        (16-bit opens as "RGBA" with R=G=B: the same pixels after
 *        convert("RGB")); RGBA "RGBA".  tRNS keys stay outside the pixels.
 *   GIF  "L" when there is no palette or it is the identity grey ramp, else
 *        "P"; the GCE transparency is an index.
 *   BMP  <= 8 bits: "P", except a 2-entry black/white palette ("1") and an
 *        identity grey ramp ("L"); 16/24 bits "RGB"; 32 bits "RGBA" only with
 *        an alpha bit mask, else "RGB" (the 4th byte is ignored).
 *   TGA  colour-mapped "P"; grey 8 "L", 16 "LA"; colour 15/16/24 "RGB", 32 "RGBA".
 *   PNM  P5 "L" ("I" when maxval > 255), P6 "RGB"; samples rescaled as
 *        min(out, round(v / maxval * out)), out = 255 (65535 for "I").
 *   PSD  3 channels "RGB", exactly 4 "RGBA", 5 or more "RGB" (psd.c decodes).
 *
 * Validity checks that protect stb_image (Debian's stb 2.27):
 *   PNG  an unknown critical chunk is refused here; stb would build its error
 *        text from the raw chunk bytes in a static (shared) buffer.
 *   HDR  the run-length scanlines are walked as stb walks them; a run count
 *        of 0 would loop forever in stb (CVE-2021-42715).
 */
#include <stdio.h>
#include "sniff.h"

#include <stdlib.h>
#include <string.h>

#include "exif.h"

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static unsigned le16(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | (unsigned)p[1]; }

static void set_mode(struct sniff *s, enum img_mode mode, int extra_alpha) {
    static const int own[] = {[IMG_MODE_1] = 1, [IMG_MODE_L] = 1, [IMG_MODE_LA] = 2,
                              [IMG_MODE_RGB] = 3, [IMG_MODE_RGBA] = 4, [IMG_MODE_P] = 3,
                              [IMG_MODE_CMYK] = 4};
    s->mode = mode;
    s->channels = own[mode] + (extra_alpha ? 1 : 0);
}

/* PIL's fallback: tiff:Orientation(="|>)([0-9]) anywhere in the XMP text. */
static int xmp_orientation(const uint8_t *p, size_t n) {
    static const char key[] = "tiff:Orientation";
    const size_t k = sizeof key - 1;
    for (size_t i = 0; i + k + 2 < n; i++) {
        if (memcmp(p + i, key, k) != 0) continue;
        const uint8_t *q = p + i + k;
        if (q[0] == '=' && q[1] == '"' && i + k + 2 < n && q[2] >= '0' && q[2] <= '9') return q[2] - '0';
        if (q[0] == '>' && q[1] >= '0' && q[1] <= '9') return q[1] - '0';
    }
    return 0;
}

static void sniff_png(const uint8_t *b, size_t n, struct sniff *s) {
    int depth = 8, ctype = 2, trns = 0, exif = 0, xmp = 0, end = 0;
    size_t at = 8;
    while (at + 12 <= n && !end) {
        uint32_t len = be32(b + at);
        const uint8_t *type = b + at + 4, *data = b + at + 8;
        if (len > n - at - 12) { /* a chunk cut short: PIL calls the file truncated */
            s->truncated = 1;
            break;
        }
        if (!memcmp(type, "IHDR", 4) && len >= 13) {
            s->width = (int)(be32(data) > 0x7fffffff ? 0x7fffffff : be32(data));
            s->height = (int)(be32(data + 4) > 0x7fffffff ? 0x7fffffff : be32(data + 4));
            depth = data[8];
            ctype = data[9];
        } else if (!memcmp(type, "tRNS", 4)) {
            trns = 1;
        } else if (!memcmp(type, "eXIf", 4)) {
            if (!exif) exif = exif_orientation(data, len);
        } else if (!memcmp(type, "iTXt", 4) && len > 18 && !memcmp(data, "XML:com.adobe.xmp", 18)) {
            /* keyword NUL, compression flag, method, language NUL, translated NUL, text */
            size_t p = 18;
            if (p + 2 <= len && data[p] == 0) { /* uncompressed only */
                p += 2;
                while (p < len && data[p]) p++; /* language */
                p++;
                while (p < len && data[p]) p++; /* translated keyword */
                p++;
                if (p < len && !xmp) xmp = xmp_orientation(data + p, len - p);
            }
        } else if (!memcmp(type, "IEND", 4)) {
            end = 1;
            continue;
        } else if (!(type[0] & 0x20) && memcmp(type, "PLTE", 4) && memcmp(type, "IDAT", 4) &&
                   memcmp(type, "CgBI", 4)) {
            char name[5] = {0}, pn[64];
            memcpy(name, type, 4);
            snprintf(s->invalid, sizeof s->invalid, "PNG has an unknown critical chunk '%s'",
                     fl_printable(name, pn));
            break;
        }
        at += 12 + (size_t)len;
    }
    /* Bytes left over that cannot hold a whole chunk: stb would read a chunk
     * header from them (and realloc to whatever length it claims). */
    if (!end && at < n && at + 12 > n) s->truncated = 1;
    s->orientation = exif ? exif : xmp;
    switch (ctype) {
    case 0: set_mode(s, depth == 1 ? IMG_MODE_1 : IMG_MODE_L, trns); break;
    case 3: set_mode(s, IMG_MODE_P, trns); break;
    case 4: set_mode(s, IMG_MODE_LA, 0); break;
    case 6: set_mode(s, IMG_MODE_RGBA, 0); break;
    default: set_mode(s, IMG_MODE_RGB, trns); break;
    }
}

static void sniff_gif(const uint8_t *b, size_t n, struct sniff *s) {
    s->gif_transparent = -1;
    for (int i = 0; i < 256; i++) s->gif_palette[i][0] = s->gif_palette[i][1] = s->gif_palette[i][2] = (uint8_t)i;
    set_mode(s, IMG_MODE_P, 0);
    if (n < 13) return;
    int sw = (int)le16(b + 6), sh = (int)le16(b + 8);
    s->width = sw;
    s->height = sh;
    s->gif_x = 0, s->gif_y = 0, s->gif_w = sw, s->gif_h = sh;
    unsigned flags = b[10];
    size_t at = 13;
    const uint8_t *pal = NULL;
    int pal_n = 0;
    if (flags & 0x80) {
        pal_n = 2 << (flags & 7);
        if (at + 3 * (size_t)pal_n > n) return;
        pal = b + at;
        at += 3 * (size_t)pal_n;
    }
    int trans = -1;
    while (at < n) {
        uint8_t tag = b[at++];
        if (tag == 0x21) { /* extension: label, then sub-blocks */
            if (at >= n) return;
            uint8_t label = b[at++];
            if (label == 0xf9 && at + 5 <= n && b[at] == 4) trans = (b[at + 1] & 1) ? b[at + 4] : -1;
            while (at < n && b[at]) at += 1 + (size_t)b[at];
            at++;
        } else if (tag == 0x2c) { /* the first image descriptor */
            if (at + 9 > n) {
                s->truncated = 1;
                return;
            }
            s->gif_x = (int)le16(b + at), s->gif_y = (int)le16(b + at + 2);
            s->gif_w = (int)le16(b + at + 4), s->gif_h = (int)le16(b + at + 6);
            unsigned lf = b[at + 8];
            at += 9;
            if (lf & 0x80) {
                pal_n = 2 << (lf & 7);
                if (at + 3 * (size_t)pal_n > n) return;
                pal = b + at;
                at += 3 * (size_t)pal_n;
            }
            /* PIL refuses a first frame whose data sub-blocks run past the
             * end of the file (stb would return it half drawn). */
            at++; /* LZW minimum code size */
            while (at < n && b[at]) at += 1 + (size_t)b[at];
            if (at >= n) s->truncated = 1;
            break;
        } else {
            return;
        }
    }
    int ramp = 1;
    for (int i = 0; pal && i < pal_n; i++) {
        memcpy(s->gif_palette[i], pal + 3 * i, 3);
        if (pal[3 * i] != i || pal[3 * i + 1] != i || pal[3 * i + 2] != i) ramp = 0;
    }
    s->gif_transparent = trans;
    set_mode(s, ramp ? IMG_MODE_L : IMG_MODE_P, trans >= 0);
}

static void sniff_bmp(const uint8_t *b, size_t n, struct sniff *s) {
    set_mode(s, IMG_MODE_RGB, 0);
    if (n < 30) return;
    uint32_t dib = le32(b + 14);
    unsigned bpp;
    uint32_t compression = 0, colors = 0;
    size_t pal_at = 14 + (size_t)dib, entry = 4;
    int64_t w, h;
    if (dib == 12) {
        w = le16(b + 18);
        h = le16(b + 20);
        bpp = le16(b + 24);
        entry = 3;
    } else {
        if (n < 54) return;
        w = (int32_t)le32(b + 18);
        h = (int32_t)le32(b + 22);
        bpp = le16(b + 28);
        compression = le32(b + 30);
        colors = le32(b + 46);
        if (dib == 40 && (compression == 3 || compression == 6)) pal_at += compression == 3 ? 12 : 16;
    }
    if (h < 0) h = -h;
    s->width = w < 0 ? 0 : (w > 0x7fffffff ? 0x7fffffff : (int)w);
    s->height = h > 0x7fffffff ? 0x7fffffff : (int)h;
    /* Uncompressed rows are padded to 4 bytes; all of them must be present
     * (stb would read zeros past the end, PIL reports a truncated file). */
    if (compression == 0 || compression == 3 || compression == 6) {
        uint64_t stride = (((uint64_t)s->width * bpp + 31) / 32) * 4;
        if ((uint64_t)le32(b + 10) + stride * (uint64_t)s->height > n) s->truncated = 1;
    }
    if (bpp == 16) {
        uint32_t rm = 0x7c00, gm = 0x03e0, bm = 0x001f; /* BI_RGB is 5-5-5 */
        if (compression == 3 && n >= 14 + 40 + 12) rm = le32(b + 54), gm = le32(b + 58), bm = le32(b + 62);
        if (rm == 0x7c00 && gm == 0x03e0 && bm == 0x001f) s->bmp16_bits[0] = s->bmp16_bits[1] = s->bmp16_bits[2] = 5;
        if (rm == 0xf800 && gm == 0x07e0 && bm == 0x001f) s->bmp16_bits[0] = s->bmp16_bits[2] = 5, s->bmp16_bits[1] = 6;
        return;
    }
    if (bpp == 32) {
        int alpha = dib >= 56 && n >= 70 && le32(b + 66) != 0 && (compression == 3 || compression == 6);
        set_mode(s, alpha ? IMG_MODE_RGBA : IMG_MODE_RGB, 0);
        return;
    }
    if (bpp > 8 || bpp == 0) return;
    if (colors == 0 || colors > (1u << bpp)) colors = 1u << bpp;
    if (pal_at + entry * colors > n) {
        set_mode(s, IMG_MODE_P, 0);
        return;
    }
    /* PIL: indices (0, 255) for 2 colours, else 0..colors-1, each (v, v, v) */
    int grey = 1;
    for (uint32_t i = 0; i < colors && grey; i++) {
        unsigned want = colors == 2 ? (i ? 255 : 0) : i;
        const uint8_t *e = b + pal_at + entry * i;
        grey = e[0] == want && e[1] == want && e[2] == want;
    }
    set_mode(s, grey ? (colors == 2 ? IMG_MODE_1 : IMG_MODE_L) : IMG_MODE_P, 0);
}

static void sniff_tga(const uint8_t *b, size_t n, struct sniff *s) {
    set_mode(s, IMG_MODE_RGB, 0);
    if (n < 18) return;
    unsigned type = b[2] & ~8u, bpp = b[16];
    s->width = (int)le16(b + 12);
    s->height = (int)le16(b + 14);
    /* The pixel data must all be there (stb would pad with zeros). */
    uint64_t cmap = b[1] == 1 ? (uint64_t)le16(b + 5) * ((b[7] + 7u) / 8) : 0;
    uint64_t at = 18 + (uint64_t)b[0] + cmap, pixel = (bpp + 7) / 8;
    uint64_t total = (uint64_t)s->width * s->height;
    if (!(b[2] & 8)) {
        if (at + total * pixel > n) s->truncated = 1;
    } else { /* run-length packets: 1 header byte, then 1 pixel (run) or count pixels (raw) */
        for (uint64_t done = 0; done < total;) {
            if (at >= n) {
                s->truncated = 1;
                break;
            }
            unsigned h = b[at++], count = (h & 127) + 1;
            at += (h & 128) ? pixel : count * pixel;
            done += count;
        }
        if (at > n) s->truncated = 1;
    }
    if (type == 1) set_mode(s, IMG_MODE_P, 0);
    else if (type == 3) set_mode(s, bpp == 16 ? IMG_MODE_LA : IMG_MODE_L, 0);
    else if (type == 2 && bpp == 32) set_mode(s, IMG_MODE_RGBA, 0);
}

/* Skips whitespace and '#' comments, then reads a decimal number. */
static int pnm_number(const uint8_t *b, size_t n, size_t *at, unsigned long *v) {
    for (;;) {
        while (*at < n && (b[*at] == ' ' || (b[*at] >= '\t' && b[*at] <= '\r'))) (*at)++;
        if (*at < n && b[*at] == '#') {
            while (*at < n && b[*at] != '\n' && b[*at] != '\r') (*at)++;
            continue;
        }
        break;
    }
    if (*at >= n || b[*at] < '0' || b[*at] > '9') return 0;
    *v = 0;
    while (*at < n && b[*at] >= '0' && b[*at] <= '9' && *v < 1000000) *v = *v * 10 + (b[(*at)++] - '0');
    return 1;
}

static void sniff_pnm(const uint8_t *b, size_t n, struct sniff *s) {
    set_mode(s, b[1] == '5' ? IMG_MODE_L : IMG_MODE_RGB, 0);
    size_t at = 2;
    unsigned long w, h, maxval;
    /* exactly one whitespace byte separates maxval from the samples */
    if (pnm_number(b, n, &at, &w) && pnm_number(b, n, &at, &h) && pnm_number(b, n, &at, &maxval) &&
        at < n && (b[at] == ' ' || (b[at] >= '\t' && b[at] <= '\r'))) {
        s->pnm_width = (int)w;
        s->pnm_height = (int)h;
        s->pnm_maxval = (int)maxval;
        s->pnm_data = at + 1;
    }
}

/* One header line as stb reads it: up to '\n', at most 1023 characters
 * kept.  Returns 0 at the end of the data. */
static int hdr_line(const uint8_t *b, size_t n, size_t *at, char line[1024]) {
    if (*at >= n) return 0;
    size_t k = 0;
    while (*at < n && b[*at] != '\n') {
        if (k < 1023) line[k++] = (char)b[*at];
        (*at)++;
    }
    (*at)++; /* the newline */
    line[k] = 0;
    return 1;
}

static void sniff_hdr(const uint8_t *b, size_t n, struct sniff *s) {
    char line[1024];
    size_t at = 0;
    if (!hdr_line(b, n, &at, line)) return;
    while (hdr_line(b, n, &at, line) && line[0]) {
    }
    if (!hdr_line(b, n, &at, line) || strncmp(line, "-Y ", 3)) return; /* stb reports it */
    char *p = line + 3;
    long h = strtol(p, &p, 10);
    while (*p == ' ') p++;
    if (strncmp(p, "+X ", 3)) return;
    long w = strtol(p + 3, NULL, 10);
    if (w <= 0 || h <= 0 || w > 1 << 24 || h > 1 << 24) return;
    s->width = (int)w;
    s->height = (int)h;
    uint64_t flat = (uint64_t)w * (uint64_t)h * 4;
    if (w < 8 || w >= 32768) {
        if (at + flat > n) s->truncated = 1;
        return;
    }
    for (long y = 0; y < h; y++) {
        if (at + 4 > n) {
            s->truncated = 1;
            return;
        }
        if (b[at] != 2 || b[at + 1] != 2 || (b[at + 2] & 0x80)) {
            /* not run-length encoded: stb reads the whole image flat from here */
            if (at + flat > n) s->truncated = 1;
            return;
        }
        if (((long)b[at + 2] << 8 | b[at + 3]) != w) return; /* stb: "invalid decoded scanline length" */
        at += 4;
        for (int k = 0; k < 4; k++) {
            long left = w;
            while (left > 0) {
                if (at >= n) {
                    s->truncated = 1;
                    return;
                }
                unsigned count = b[at++];
                if (count > 128) {
                    count -= 128;
                    at++;
                } else {
                    at += count;
                }
                if (count == 0 || (long)count > left) {
                    snprintf(s->invalid, sizeof s->invalid, "bad run-length data in HDR scanline %ld", y);
                    return;
                }
                left -= (long)count;
            }
        }
    }
    if (at > n) s->truncated = 1;
}

static void sniff_psd(const uint8_t *b, size_t n, struct sniff *s) {
    set_mode(s, IMG_MODE_RGB, 0); /* psd.c decodes it and checks everything */
    if (n >= 26 && be16(b + 12) == 4) set_mode(s, IMG_MODE_RGBA, 0);
}

void sniff_image(const uint8_t *b, size_t n, struct sniff *s) {
    memset(s, 0, sizeof *s);
    s->gif_transparent = -1;
    s->pnm_maxval = 255;
    set_mode(s, IMG_MODE_RGB, 0);
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) {
        s->format = SNIFF_PNG;
        sniff_png(b, n, s);
    } else if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) {
        s->format = SNIFF_GIF;
        sniff_gif(b, n, s);
    } else if (n >= 2 && b[0] == 'B' && b[1] == 'M') {
        s->format = SNIFF_BMP;
        sniff_bmp(b, n, s);
    } else if (n >= 4 && !memcmp(b, "8BPS", 4)) {
        s->format = SNIFF_PSD;
        sniff_psd(b, n, s);
    } else if (n >= 4 && !memcmp(b, "\x53\x80\xf6\x34", 4)) {
        s->format = SNIFF_PIC;
    } else if (n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) {
        s->format = SNIFF_PNM;
        sniff_pnm(b, n, s);
    } else if (n >= 6 && (!memcmp(b, "#?RADIANCE", n < 10 ? n : 10) || !memcmp(b, "#?RGBE", 6))) {
        s->format = SNIFF_HDR;
        sniff_hdr(b, n, s);
    } else {
        s->format = SNIFF_TGA; /* stb tries TGA last: it has no magic */
        sniff_tga(b, n, s);
    }
}

const char *sniff_format_name(enum sniff_format f) {
    static const char *names[] = {"unknown", "png", "gif", "bmp", "tga", "pnm", "psd", "hdr", "pic"};
    return names[f];
}
