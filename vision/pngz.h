/*
 * pngz.h - inflate-and-count check of a PNG's image data (see pngz.c):
 * refuses decompression bombs and truncated data before stb_image runs.
 */
#ifndef FL_PNGZ_H
#define FL_PNGZ_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

/* buf is a whole PNG file.  Returns 0 when its IDAT stream inflates to about
 * the size IHDR implies; FL_ELIMIT when it inflates to more (stopping right
 * there), FL_EFORMAT when it is corrupt or short.  A file without IHDR or
 * IDAT passes (stb reports those). */
int pngz_check(const uint8_t *buf, size_t len, struct fl_err *err);

#endif
