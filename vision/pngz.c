/*
 * pngz.c - check a PNG's compressed image data before stb_image inflates it.
 *
 * stb_image inflates the whole zlib stream into a buffer that doubles as
 * needed (up to 2 GiB) and only then compares it with the image size, so a
 * 1.5 MB file that claims 16x16 pixels can make it allocate 1.5 GB: the
 * header caps alone do not stop a decompression bomb.  Here zlib inflates
 * the concatenated IDAT data into a small window that is thrown away,
 * counting bytes, and stops as soon as the count passes what IHDR implies
 * (with a little slack: PIL ignores trailing data, so a few encoders' extra
 * bytes must not be fatal).  Too little data is a truncated file, which PIL
 * refuses as well.  Cost: one extra inflate pass, about a millisecond per
 * megabyte of pixels.
 */
#include "pngz.h"

#include <string.h>

#include <zlib.h>

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Bytes of filtered scanlines for an image, Adam7 passes summed when
 * interlaced. */
static uint64_t raw_size(uint64_t w, uint64_t h, unsigned bits_per_pixel, int interlaced) {
    static const int pass[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                   {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    if (!interlaced) return h * ((w * bits_per_pixel + 7) / 8 + 1);
    uint64_t total = 0;
    for (int p = 0; p < 7; p++) {
        uint64_t pw = w > (uint64_t)pass[p][0] ? (w - pass[p][0] + pass[p][2] - 1) / pass[p][2] : 0;
        uint64_t ph = h > (uint64_t)pass[p][1] ? (h - pass[p][1] + pass[p][3] - 1) / pass[p][3] : 0;
        if (pw && ph) total += ph * ((pw * bits_per_pixel + 7) / 8 + 1);
    }
    return total;
}

int pngz_check(const uint8_t *buf, size_t len, struct fl_err *err) {
    uint64_t expected = 0;
    int have_ihdr = 0, raw_deflate = 0, ended = 0, rc = 0;
    uint64_t produced = 0, limit = 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    uint8_t window[65536];
    int z_open = 0;

    for (size_t at = 8; at + 12 <= len && !ended;) {
        uint32_t clen = be32(buf + at);
        const uint8_t *type = buf + at + 4, *data = buf + at + 8;
        if (clen > len - at - 12) { /* stb would first realloc to the claimed length */
            rc = fl_err_set(err, FL_EFORMAT, "truncated PNG (a chunk runs past the end of the file)");
            break;
        }
        if (!memcmp(type, "CgBI", 4)) {
            raw_deflate = 1; /* Apple's PNGs: deflate without the zlib wrapper */
        } else if (!memcmp(type, "IHDR", 4) && clen >= 13) {
            static const unsigned channels[7] = {1, 0, 3, 1, 2, 0, 4};
            unsigned depth = data[8], ctype = data[9];
            if (ctype > 6 || !channels[ctype] || depth == 0 || depth > 16)
                return fl_err_set(err, FL_EFORMAT, "invalid PNG header (depth %u, colour type %u)", depth, ctype);
            expected = raw_size(be32(data), be32(data + 4), channels[ctype] * depth, data[12] != 0);
            limit = expected + expected / 16 + 65536;
            have_ihdr = 1;
        } else if (!memcmp(type, "IDAT", 4) && have_ihdr) {
            if (!z_open) {
                if (inflateInit2(&z, raw_deflate ? -15 : 15) != Z_OK)
                    return fl_err_set(err, FL_ENOMEM, "cannot start zlib");
                z_open = 1;
            }
            z.next_in = (Bytef *)data;
            z.avail_in = clen;
            while (z.avail_in > 0 && !ended) {
                z.next_out = window;
                z.avail_out = sizeof window;
                int zr = inflate(&z, Z_NO_FLUSH);
                produced += sizeof window - z.avail_out;
                if (produced > limit) {
                    rc = fl_err_set(err, FL_ELIMIT,
                                    "PNG image data inflates past the %llu bytes its size needs "
                                    "(decompression bomb?)",
                                    (unsigned long long)expected);
                    ended = 1;
                } else if (zr == Z_STREAM_END) {
                    ended = 1;
                } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
                    rc = fl_err_set(err, FL_EFORMAT, "invalid PNG image data (zlib: %s)",
                                    z.msg ? z.msg : "error");
                    ended = 1;
                } else if (zr == Z_BUF_ERROR && z.avail_out == sizeof window) {
                    break; /* needs the next IDAT */
                }
            }
        } else if (!memcmp(type, "IEND", 4)) {
            break;
        }
        at += 12 + (size_t)clen;
    }
    if (z_open) inflateEnd(&z);
    if (rc == 0 && have_ihdr && produced < expected)
        rc = fl_err_set(err, FL_EFORMAT, "truncated PNG (%llu of %llu bytes of image data)",
                        (unsigned long long)produced, (unsigned long long)expected);
    return rc;
}
