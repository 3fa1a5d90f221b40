/*
 * img.h - image bytes in, pixels out, exactly as PIL would open them.
 *
 * Users send JPEGs from phone cameras, PNG screenshots, GIFs, BMPs...; the
 * model must see the pixels that the reference pipeline (PIL inside
 * open_clip's transform) would see.  So decoding records not only pixels but
 * the *mode* PIL opens the file in, because PIL's resize and convert("RGB")
 * behave differently per mode (palette images resize with NEAREST, RGBA
 * resizes in premultiplied space, CMYK converts after resizing, ...).  The
 * preprocessor (preprocess.h) reproduces those rules; docs/IMAGES.md lists
 * them with their evidence.
 *
 * Decoders: JPEG through libjpeg-turbo (jpeg.c; the library PIL uses, hence
 * identical pixels), everything else through stb_image.  The EXIF
 * orientation is applied (like PIL's ImageOps.exif_transpose).  Width,
 * height, pixel count and byte length are checked against caps before any
 * pixel memory is allocated.
 */
#ifndef FL_IMG_H
#define FL_IMG_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

/* PIL's mode for the decoded image; see docs/IMAGES.md. */
enum img_mode {
    IMG_MODE_1,    /* bilevel: 1 channel, 0 or 255; resized with NEAREST */
    IMG_MODE_L,    /* grey: 1 channel */
    IMG_MODE_LA,   /* grey + alpha: 2 channels, resized premultiplied */
    IMG_MODE_RGB,  /* 3 channels */
    IMG_MODE_RGBA, /* 4 channels, resized premultiplied */
    IMG_MODE_P,    /* palette, stored expanded to RGB; resized with NEAREST */
    IMG_MODE_CMYK, /* 4 channels in PIL's polarity; converted to RGB after resize */
};

/*
 * Pixels are [height][width][channels] u8.  channels is the mode's own count,
 * or one more for L, RGB and P when the file carries a transparency that PIL
 * keeps outside the pixels (a PNG tRNS key, a palette's alpha): that last
 * channel is 0 where transparent.  PIL's convert("RGB") ignores it;
 * convert("RGBA") (the IDEFICS path) uses it.
 */
struct img {
    int width, height, channels;
    enum img_mode mode;
    int orientation; /* EXIF orientation found (1..8; 1 when none) and applied */
    const char *format; /* "jpeg", "png", "gif", "bmp", ... (static string) */
    uint8_t *px;
};

/* Caps checked before any pixel is allocated.  Zero fields mean "default". */
struct img_limits {
    size_t max_bytes;    /* encoded size; default 32 MiB */
    int max_side;        /* width and height; default 16384 */
    int64_t max_pixels;  /* width x height; default 50 million (48 MP phones) */
};

#define IMG_DEFAULT_MAX_BYTES ((size_t)32 << 20)
#define IMG_DEFAULT_MAX_SIDE 16384
#define IMG_DEFAULT_MAX_PIXELS ((int64_t)50000000)

/* Decodes buf[len] into *out (out->px owned by the caller: img_free).
 * Errors (FL_EFORMAT for undecodable data, FL_ELIMIT over a cap,
 * FL_EUNSUPPORTED for e.g. 12-bit JPEG) leave *out empty.  lim may be NULL.
 * Thread-safe. */
int img_decode(const uint8_t *buf, size_t len, const struct img_limits *lim, struct img *out,
               struct fl_err *err);

/* Frees out->px and zeroes *img; safe on a zeroed or freed img. */
void img_free(struct img *img);

const char *img_mode_name(enum img_mode mode);

/* Applies an EXIF orientation (2..8) in place, as PIL's exif_transpose does
 * (e.g. 6 = ROTATE_270, the usual portrait phone photo).  Values outside 2..8
 * do nothing.  Returns FL_ENOMEM on allocation failure. */
int img_apply_orientation(struct img *img, int orientation, struct fl_err *err);

/* The resolved caps (defaults filled in). */
struct img_limits img_limits_resolve(const struct img_limits *lim);

/* Checks width x height against lim; names the offending dimension. */
int img_check_size(int width, int height, const struct img_limits *lim, struct fl_err *err);

#endif
