/*
 * jpeg.c - JPEG decoding through libjpeg-turbo, configured as PIL configures
 * it, so that the pixels are bit-identical to the reference pipeline.
 *
 * PIL (JpegImagePlugin + JpegDecode.c, 9.4) maps the component count to a
 * mode: 1 -> "L" (out_color_space GRAYSCALE), 3 -> "RGB" (RGB), 4 -> "CMYK"
 * (CMYK, and the values are inverted: rawmode "CMYK;I", Adobe polarity,
 * whatever the markers say).  Everything else is libjpeg's default
 * decompression: ISLOW DCT, fancy upsampling, no scaling.  We do the same.
 *
 * Truncation: PIL raises "image file is truncated" when the data ends before
 * the last scanline; a file that only lacks its final EOI marker still
 * decodes.  libjpeg's memory source instead pads with a fake EOI and warns
 * (JWRN_JPEG_EOF), so we treat that warning as an error exactly when it
 * arrives before the last scanline.  libjpeg reports fatal errors through a
 * longjmp out of error_exit (the default one calls exit()).
 *
 * Work cap: a progressive JPEG may hold any number of scans, each of which
 * libjpeg applies to the whole image (a known denial of service: a tiny file
 * that takes minutes).  A progress monitor stops decoding past a scan budget
 * that shrinks with the image: 256 scans for small images, down to 32 for
 * the largest allowed, so that the total work stays within ~30 full passes
 * over a 50-megapixel image.  Real encoders write about 10 scans.
 */
#include "jpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "exif.h"

struct jpg_errmgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int hit_eof;
    int too_many_scans;
    int max_scans;
};

/* The scan budget: (2^30 samples) / (samples per scan), within [32, 256]. */
static int scan_budget(const struct jpeg_decompress_struct *c) {
    uint64_t samples = (uint64_t)c->image_width * c->image_height * (uint64_t)c->num_components;
    uint64_t budget = samples ? (1ull << 30) / samples : 256;
    return budget < 32 ? 32 : budget > 256 ? 256 : (int)budget;
}

static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    struct jpg_errmgr *em = (struct jpg_errmgr *)cinfo->err;
    if (d->input_scan_number > em->max_scans) {
        em->too_many_scans = 1;
        longjmp(em->jump, 1);
    }
}

static void on_error_exit(j_common_ptr cinfo) {
    struct jpg_errmgr *em = (struct jpg_errmgr *)cinfo->err;
    longjmp(em->jump, 1);
}

static void on_emit_message(j_common_ptr cinfo, int level) {
    struct jpg_errmgr *em = (struct jpg_errmgr *)cinfo->err;
    if (level < 0 && em->pub.msg_code == JWRN_JPEG_EOF) em->hit_eof = 1;
    /* Other warnings (corrupt data that libjpeg can skip) are ignored, as PIL
     * ignores them. */
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

int jpg_decode(const uint8_t *buf, size_t len, const struct img_limits *lim, struct img *out,
               struct fl_err *err) {
    struct jpeg_decompress_struct cinfo;
    struct jpg_errmgr em;
    struct jpeg_progress_mgr progress = {.progress_monitor = on_progress};
    uint8_t *volatile px = NULL;
    memset(out, 0, sizeof *out);
    memset(&cinfo, 0, sizeof cinfo);

    cinfo.err = jpeg_std_error(&em.pub);
    em.pub.error_exit = on_error_exit;
    em.pub.emit_message = on_emit_message;
    em.pub.output_message = on_output_message;
    em.hit_eof = 0;
    em.too_many_scans = 0;
    em.max_scans = 256;
    if (setjmp(em.jump)) {
        char msg[JMSG_LENGTH_MAX];
        em.pub.format_message((j_common_ptr)&cinfo, msg);
        jpeg_destroy_decompress(&cinfo);
        free(px);
        if (em.too_many_scans)
            return fl_err_set(err, FL_ELIMIT, "JPEG has more than %d scans for its size", em.max_scans);
        return fl_err_set(err, FL_EFORMAT, "invalid JPEG: %s", msg);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);

    int rc = 0;
    enum img_mode mode;
    switch (cinfo.num_components) {
    case 1:
        mode = IMG_MODE_L;
        cinfo.out_color_space = JCS_GRAYSCALE;
        break;
    case 3:
        mode = IMG_MODE_RGB;
        cinfo.out_color_space = JCS_RGB;
        break;
    case 4:
        mode = IMG_MODE_CMYK;
        cinfo.out_color_space = JCS_CMYK;
        break;
    default:
        rc = fl_err_set(err, FL_EUNSUPPORTED, "JPEG with %d components is not supported",
                        cinfo.num_components);
        goto done;
    }
    if ((rc = img_check_size((int)cinfo.image_width, (int)cinfo.image_height, lim, err)) < 0)
        goto done;
    em.max_scans = scan_budget(&cinfo);

    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    int ch = cinfo.output_components;
    px = malloc((size_t)w * (size_t)h * (size_t)ch);
    if (!px) {
        rc = fl_err_set(err, FL_ENOMEM, "out of memory for a %dx%d JPEG", w, h);
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * (size_t)w * (size_t)ch;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    if (em.hit_eof) {
        rc = fl_err_set(err, FL_EFORMAT, "truncated JPEG (data ends before the last scanline)");
        goto done;
    }
    if (mode == IMG_MODE_CMYK) /* PIL's "CMYK;I": Adobe polarity, always */
        for (size_t i = 0, n = (size_t)w * (size_t)h * 4; i < n; i++) px[i] = (uint8_t)(255 - px[i]);

    int orientation = 0;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        /* PIL keeps the first APP1 that starts with "Exif\0". */
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif", 5) == 0) {
            orientation = exif_orientation(m->data + 6, m->data_length - 6);
            break;
        }
    }
    /* Reads up to EOI; a corrupt trailing marker is an error, as in PIL. */
    jpeg_finish_decompress(&cinfo);
    out->width = w;
    out->height = h;
    out->channels = ch;
    out->mode = mode;
    out->format = "jpeg";
    out->orientation = orientation;
    out->px = px;
    px = NULL;

done:
    jpeg_destroy_decompress(&cinfo);
    free(px);
    return rc;
}
