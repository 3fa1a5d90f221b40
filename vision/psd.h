/*
 * psd.h - the merged image of 8-bit RGB Photoshop files (see psd.c for why
 * not stb_image).  Only img.c calls this.
 */
#ifndef FL_PSD_H
#define FL_PSD_H

#include "img.h"

/* Decodes buf[len] (starting "8BPS") into *out: RGB, or RGBA for exactly
 * four channels.  Caps are checked from the header before allocation. */
int psd_decode(const uint8_t *buf, size_t len, const struct img_limits *lim, struct img *out,
               struct fl_err *err);

#endif
