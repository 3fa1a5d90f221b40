/* exif.c - see exif.h.  TIFF layout: byte order mark, magic 42, u32 offset of
 * IFD0; an IFD is a u16 count then 12-byte entries {tag u16, type u16,
 * count u32, value-or-offset u32}; values of 4 bytes or less sit inline. */
#include "exif.h"

static uint32_t rd(const uint8_t *p, int n, int big_endian) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint32_t)p[big_endian ? n - 1 - i : i] << (8 * i);
    return v;
}

int exif_orientation(const uint8_t *tiff, size_t len) {
    if (!tiff || len < 8) return 0;
    int be;
    if (tiff[0] == 'I' && tiff[1] == 'I') be = 0;
    else if (tiff[0] == 'M' && tiff[1] == 'M') be = 1;
    else return 0;
    if (rd(tiff + 2, 2, be) != 42) return 0;
    uint32_t ifd = rd(tiff + 4, 4, be);
    if (ifd > len - 2) return 0;
    uint32_t n = rd(tiff + ifd, 2, be);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t at = (uint64_t)ifd + 2 + 12ull * i;
        if (at + 12 > len) return 0;
        const uint8_t *e = tiff + at;
        if (rd(e, 2, be) != 0x0112) continue;
        uint32_t type = rd(e + 2, 2, be), count = rd(e + 4, 4, be);
        if (count != 1) return 0;
        if (type == 3) return (int)rd(e + 8, 2, be);        /* SHORT */
        if (type == 4) {                                     /* LONG */
            uint32_t v = rd(e + 8, 4, be);
            return v <= 8 ? (int)v : 0;
        }
        return 0;
    }
    return 0;
}
