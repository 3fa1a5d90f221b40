/*
 * exif.h - the one EXIF tag we need: Orientation (0x0112).
 *
 * Phone cameras store pixels in sensor order and say in EXIF how to rotate
 * them; PIL's ImageOps.exif_transpose applies that, and so do we.  The parser
 * reads only IFD0 of the TIFF structure, bounds-checking every offset, so a
 * hostile EXIF block can at worst be ignored.
 */
#ifndef FL_EXIF_H
#define FL_EXIF_H

#include <stddef.h>
#include <stdint.h>

/* tiff points at the TIFF header ("II*\0" or "MM\0*"), i.e. just after the
 * "Exif\0\0" prefix of a JPEG APP1 segment or at the start of a PNG eXIf
 * chunk.  Returns the Orientation value (SHORT or LONG, count 1), or 0 when
 * absent or unreadable. */
int exif_orientation(const uint8_t *tiff, size_t len);

#endif
