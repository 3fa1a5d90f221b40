/*
 * sniff.h - what PIL would make of a non-JPEG file, read from its headers.
 *
 * stb_image decodes pixels but forgets what the file was (a palette PNG and
 * an RGB PNG both come back as RGB), and PIL's resize depends on exactly
 * that.  So before stb decodes, we read the few header fields that decide
 * PIL's mode: PNG IHDR/tRNS/eXIf, GIF screen/palettes/first frame, BMP
 * bit depth and palette, TGA image type, PNM maxval, PSD channels.  Every
 * read is bounds-checked; a header we cannot read just leaves defaults and
 * stb gets the final word on validity.  docs/IMAGES.md has the mode table
 * with its evidence (Pillow 9.4 plugins).
 */
#ifndef FL_SNIFF_H
#define FL_SNIFF_H

#include <stddef.h>
#include <stdint.h>

#include "img.h"

enum sniff_format {
    SNIFF_UNKNOWN, SNIFF_PNG, SNIFF_GIF, SNIFF_BMP, SNIFF_TGA, SNIFF_PNM, SNIFF_PSD, SNIFF_HDR,
    SNIFF_PIC,
};

struct sniff {
    enum sniff_format format;
    enum img_mode mode; /* PIL's mode */
    int channels;       /* channels to request from stb (mode's own, +1 for a transparency) */
    int orientation;    /* EXIF Orientation (PNG eXIf or XMP), 0 when none */
    int width, height;  /* from the header, 0 when unknown: caps are checked on them first */
    int truncated;      /* the pixel data ends before the header says it should */
    char invalid[96];   /* non-empty: why the data is unusable (checked before stb runs) */

    /* PNM (P5/P6), decoded by img.c itself: stb's reader neither checks for
     * truncation nor byte-swaps 16-bit samples. */
    int pnm_width, pnm_height, pnm_maxval;
    size_t pnm_data; /* offset of the first sample; 0 when the header is bad */

    /* BMP with 16-bit pixels: bits per channel (5-5-5 or 5-6-5), 0 otherwise.
     * stb widens n-bit values by bit replication, PIL by v * 255 / (2^n - 1). */
    int bmp16_bits[3];

    /* GIF: PIL fills pixels outside the first frame with index 0 (or the
     * transparency index) and shows a transparent pixel as its palette colour;
     * stb leaves both transparent or paints the background colour. */
    int gif_transparent;      /* -1 when none */
    int gif_x, gif_y, gif_w, gif_h; /* first frame rectangle */
    uint8_t gif_palette[256][3];    /* the first frame's palette, grey-ramp padded */
};

/* Fills *s from the headers of buf.  Never fails: unknown formats get
 * SNIFF_UNKNOWN with mode RGB. */
void sniff_image(const uint8_t *buf, size_t len, struct sniff *s);

const char *sniff_format_name(enum sniff_format f);

#endif
