/*
 * jpeg.h - JPEG through libjpeg-turbo, bit-identical to PIL (see jpeg.c).
 * Only img.c calls this; everyone else goes through img_decode.
 */
#ifndef FL_JPEG_H
#define FL_JPEG_H

#include "img.h"

/* Decodes a JPEG; on success *out holds the pixels in PIL's mode (L, RGB or
 * CMYK) and out->orientation the raw EXIF Orientation (0 when absent), not
 * yet applied.  Size caps are checked from the header before allocation. */
int jpg_decode(const uint8_t *buf, size_t len, const struct img_limits *lim, struct img *out,
               struct fl_err *err);

#endif
