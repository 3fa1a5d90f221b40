/*
 * test_img.c - image decoding: exact pixels of small real-photo files against
 * PIL's (fixture made by `make golden`), the EXIF transposes, the size caps
 * checked before allocation, and a catalogue of broken inputs (empty,
 * garbage, every truncation of every fixture, hostile headers, random byte
 * flips), each of which must be a clean error or a valid image, never a
 * crash or a leak (the suite also runs under ASan).
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "../core/file.h"
#include "../vision/exif.h"
#include "../vision/img.h"
#include "../weights/st.h"
#include "test.h"

static const char *FILES[] = {"cat.jpg", "cat_progressive.jpg", "cat.png", "cat.gif", "cat.bmp",
                              "cat_rle.tga", "cat.ppm", "cat.psd", "cat_rle.psd", "cat_rgba.psd",
                              "cat.hdr"};
#define N_FILES 11
#define N_WITH_PIL_PIXELS 10 /* PIL cannot open HDR */

static uint8_t *slurp(const char *name, size_t *len) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/img/%s", name);
    uint8_t *buf = NULL;
    struct fl_err err = {0};
    if (fl_read_file(path, 1 << 20, &buf, len, &err) < 0) fprintf(stderr, "%s\n", err.msg);
    return buf;
}

static void check_pixels(void) {
    struct fl_err err = {0};
    struct st_file *ref = NULL;
    CHECK_INT(st_open("tests/fixtures/img/cat_pixels.safetensors", &ref, &err), 0);
    if (!ref) return;
    for (int i = 0; i < N_WITH_PIL_PIXELS; i++) {
        size_t len;
        uint8_t *buf = slurp(FILES[i], &len);
        CHECK(buf != NULL);
        if (!buf) continue;
        struct img img;
        int rc = img_decode(buf, len, NULL, &img, &err);
        CHECK_INT(rc, 0);
        char key[64];
        snprintf(key, sizeof key, "%s", FILES[i]);
        *strrchr(key, '.') = '_';
        const struct st_tensor *t = st_find(ref, key);
        CHECK(t != NULL);
        if (rc == 0 && t) {
            CHECK_INT(img.width, 64);
            CHECK_INT(img.height, 48);
            const uint8_t *want = t->data;
            int bad = 0;
            for (int p = 0; p < 64 * 48; p++) {
                const uint8_t *px = img.px + p * img.channels;
                /* every fixture is RGB, or palette (stored RGB) for the GIF */
                for (int c = 0; c < 3; c++) bad += px[c] != want[p * 3 + c];
            }
            if (bad) fprintf(stderr, "%s: %d channel values differ from PIL\n", FILES[i], bad);
            CHECK_INT(bad, 0);
            CHECK_INT(img.mode, strstr(FILES[i], ".gif")    ? IMG_MODE_P
                                : strstr(FILES[i], "rgba") ? IMG_MODE_RGBA
                                                           : IMG_MODE_RGB);
        }
        img_free(&img);
        free(buf);
    }
    st_close(ref);
}

/* PIL's transpose methods on a 3x2 image whose pixels are their own index. */
static void check_orientation(void) {
    /* expected[o] = the pixel indices, row-major, after exif_transpose */
    static const int want[9][6] = {
        {0}, {0, 1, 2, 3, 4, 5},
        {2, 1, 0, 5, 4, 3}, /* 2 FLIP_LEFT_RIGHT */
        {5, 4, 3, 2, 1, 0}, /* 3 ROTATE_180 */
        {3, 4, 5, 0, 1, 2}, /* 4 FLIP_TOP_BOTTOM */
        {0, 3, 1, 4, 2, 5}, /* 5 TRANSPOSE (2 wide, 3 high) */
        {3, 0, 4, 1, 5, 2}, /* 6 ROTATE_270 */
        {5, 2, 4, 1, 3, 0}, /* 7 TRANSVERSE */
        {2, 5, 1, 4, 0, 3}, /* 8 ROTATE_90 */
    };
    struct fl_err err = {0};
    for (int o = 1; o <= 8; o++) {
        struct img img = {.width = 3, .height = 2, .channels = 1, .mode = IMG_MODE_L};
        img.px = malloc(6);
        for (int i = 0; i < 6; i++) img.px[i] = (uint8_t)i;
        CHECK_INT(img_apply_orientation(&img, o, &err), 0);
        CHECK_INT(img.width, o >= 5 ? 2 : 3);
        CHECK_INT(img.height, o >= 5 ? 3 : 2);
        int ok = 1;
        for (int i = 0; i < 6; i++) ok &= img.px[i] == want[o][i];
        if (!ok) fprintf(stderr, "orientation %d wrong\n", o);
        CHECK(ok);
        img_free(&img);
    }
    /* EXIF parsing, both byte orders, and garbage. */
    static const uint8_t le[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0};
    static const uint8_t be[] = {'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0};
    CHECK_INT(exif_orientation(le, sizeof le), 6);
    CHECK_INT(exif_orientation(be, sizeof be), 8);
    CHECK_INT(exif_orientation(le, sizeof le - 4), 0); /* entry cut short */
    static const uint8_t loop[] = {'I', 'I', 42, 0, 0xff, 0xff, 0xff, 0x7f};
    CHECK_INT(exif_orientation(loop, sizeof loop), 0);
    CHECK_INT(exif_orientation(NULL, 0), 0);
}

static void expect_error(const char *label, const uint8_t *buf, size_t len, int code) {
    struct img img;
    struct fl_err err = {0};
    int rc = img_decode(buf, len, NULL, &img, &err);
    int ok = rc < 0 && (code == 0 || rc == code) && img.px == NULL && err.msg[0] &&
             strchr(err.msg, '\n') == NULL;
    if (!ok) fprintf(stderr, "case '%s': rc=%d msg='%s'\n", label, rc, err.msg);
    CHECK(ok);
    img_free(&img);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void check_broken(void) {
    expect_error("empty", (const uint8_t *)"", 0, FL_EFORMAT);
    uint8_t garbage[4096];
    uint64_t r = 42;
    for (size_t i = 0; i < sizeof garbage; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        garbage[i] = (uint8_t)r;
    }
    expect_error("garbage", garbage, sizeof garbage, FL_EFORMAT);
    expect_error("text", (const uint8_t *)"hello, world", 12, FL_EFORMAT);
    expect_error("jpeg magic only", (const uint8_t *)"\xff\xd8\xff", 3, FL_EFORMAT);
    expect_error("png magic only", (const uint8_t *)"\x89PNG\r\n\x1a\n", 8, FL_EFORMAT);

    /* A valid PNG header claiming 100000 x 100000: refused before decoding. */
    size_t len;
    uint8_t *png = slurp("cat.png", &len);
    if (png) {
        put_be32(png + 16, 100000);
        put_be32(png + 20, 100000);
        expect_error("png 100000x100000", png, len, FL_ELIMIT);
        put_be32(png + 16, 20000);
        put_be32(png + 20, 1);
        expect_error("png wider than the side cap", png, len, FL_ELIMIT);
        put_be32(png + 16, 0);
        put_be32(png + 20, 0);
        expect_error("png 0x0", png, len, 0);
        free(png);
    }
    /* A JPEG whose SOF claims 60000 x 60000. */
    uint8_t *jpg = slurp("cat.jpg", &len);
    if (jpg) {
        for (size_t i = 2; i + 9 < len; i++)
            if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
                jpg[i + 5] = 0xea, jpg[i + 6] = 0x60; /* height 60000 */
                jpg[i + 7] = 0xea, jpg[i + 8] = 0x60; /* width 60000 */
                break;
            }
        expect_error("jpeg 60000x60000", jpg, len, FL_ELIMIT);
        free(jpg);
    }
    /* A progressive JPEG whose last scan is repeated 300 times: a few KB
     * that would make libjpeg do 300 passes over the image. */
    uint8_t *prog = slurp("cat_progressive.jpg", &len);
    if (prog) {
        size_t last_sos = 0, eoi = 0;
        for (size_t i = 2; i + 1 < len; i++) {
            if (prog[i] == 0xff && prog[i + 1] == 0xda) last_sos = i;
            if (prog[i] == 0xff && prog[i + 1] == 0xd9) eoi = i;
        }
        CHECK(last_sos > 0 && eoi > last_sos);
        size_t scan = eoi - last_sos, big_len = eoi + 300 * scan + 2;
        uint8_t *big = malloc(big_len);
        memcpy(big, prog, eoi);
        for (int k = 0; k < 300; k++) memcpy(big + eoi + k * scan, prog + last_sos, scan);
        memcpy(big + big_len - 2, "\xff\xd9", 2);
        expect_error("jpeg with 300+ scans", big, big_len, FL_ELIMIT);
        free(big);
        free(prog);
    }
    /* Bytes before a JPEG's start marker: PIL refuses it, and stb (which
     * would skip them) must not get a JPEG to decode. */
    uint8_t *cat = slurp("cat.jpg", &len);
    if (cat) {
        uint8_t *ff = malloc(len + 1);
        ff[0] = 0xff;
        memcpy(ff + 1, cat, len);
        expect_error("jpeg after a fill byte", ff, len + 1, FL_EFORMAT);
        free(ff);
        free(cat);
    }
    /* HDR whose run-length count is 0: loops forever in stb (CVE-2021-42715). */
    static const char hdr_hang[] = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 8\n\x02\x02\x00\x08\x00";
    expect_error("hdr zero run", (const uint8_t *)hdr_hang, sizeof hdr_hang - 1, FL_EFORMAT);
    /* A 16x16 grey PNG whose IDAT inflates to 64 MiB: a decompression bomb
     * that the header caps alone do not catch. */
    {
        const size_t raw = 64u << 20;
        uint8_t *zeros = calloc(1, raw);
        uLongf zlen = compressBound(raw);
        uint8_t *z = malloc(zlen);
        CHECK(compress2(z, &zlen, zeros, raw, 9) == Z_OK);
        size_t plen = 8 + 25 + 12 + zlen + 12;
        uint8_t *bomb = malloc(plen), *p = bomb;
        memcpy(p, "\x89PNG\r\n\x1a\n", 8), p += 8;
        put_be32(p, 13), memcpy(p + 4, "IHDR", 4);
        put_be32(p + 8, 16), put_be32(p + 12, 16);
        p[16] = 8, p[17] = 0, p[18] = 0, p[19] = 0, p[20] = 0;
        put_be32(p + 21, (uint32_t)crc32(0, p + 4, 17)), p += 25;
        put_be32(p, (uint32_t)zlen), memcpy(p + 4, "IDAT", 4), memcpy(p + 8, z, zlen);
        put_be32(p + 8 + zlen, (uint32_t)crc32(0, p + 4, (uInt)zlen + 4)), p += 12 + zlen;
        put_be32(p, 0), memcpy(p + 4, "IEND", 4), put_be32(p + 8, (uint32_t)crc32(0, p + 4, 4));
        expect_error("png zlib bomb", bomb, plen, FL_ELIMIT);
        free(zeros), free(z), free(bomb);
    }
    /* A PNG with an unknown critical chunk: a clean error, printable. */
    uint8_t *pngc = slurp("cat.png", &len);
    if (pngc) {
        memcpy(pngc + 8 + 25 + 4, "Z\x1b[m", 4); /* rename the chunk after IHDR */
        struct img img;
        struct fl_err err = {0};
        CHECK(img_decode(pngc, len, NULL, &img, &err) == FL_EFORMAT);
        CHECK(strstr(err.msg, "unknown critical chunk 'Z?[m'") != NULL);
        free(pngc);
    }
    /* Softimage PIC: refused (stb's reader crashed on this fuzzer-found file). */
    {
        uint8_t pic[109] = {0x53, 0x80, 0xf6, 0x34, 0x40, 0x6d, 0x70, 0xa4};
        memcpy(pic + 41, "PICT\x00\x04\x00\x03\x3f\x80\x00\x00\x00\x03\x00\x00\x00\x08\xdd\x93\x4f\x4e\x36\x4a", 24);
        memcpy(pic + 88, "PICT\x00\x04\x00\x03\x3f\x80\x00\x00\x00\x03\x00\x00\x00\x08\xdd\x4f\x36", 21);
        expect_error("softimage pic", pic, sizeof pic, FL_EUNSUPPORTED);
    }
    /* A PNG whose last 8 bytes are a chunk header claiming 2 GiB (stb would
     * realloc to that before noticing): truncated. */
    uint8_t *pngt = slurp("cat.png", &len);
    if (pngt) {
        memcpy(pngt + len - 12, "\x80\x00\x00\x00IDAT", 8); /* over IEND */
        expect_error("png dangling chunk header", pngt, len - 4, FL_EFORMAT);
        free(pngt);
    }
    /* A GIF with a screen but no frame, then one with a frame too big. */
    static const uint8_t gif0[] = {'G', 'I', 'F', '8', '9', 'a', 4, 0, 4, 0, 0, 0, 0, 0x3b};
    expect_error("gif with zero frames", gif0, sizeof gif0, FL_EFORMAT);
    static const uint8_t gif_big[] = {'G', 'I', 'F', '8', '9', 'a', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x3b};
    expect_error("gif 65535x65535", gif_big, sizeof gif_big, FL_ELIMIT);
    /* BMP claiming 30000 x 30000 with no data. */
    uint8_t bmp[54] = {'B', 'M'};
    bmp[14] = 40;
    bmp[18] = 0x30, bmp[19] = 0x75; /* 30000 */
    bmp[22] = 0x30, bmp[23] = 0x75;
    bmp[26] = 1, bmp[28] = 24;
    expect_error("bmp 30000x30000", bmp, sizeof bmp, FL_ELIMIT);
    /* PNM: truncated samples, absurd header. */
    expect_error("pnm truncated", (const uint8_t *)"P6 4 4 255\n\x01\x02\x03", 14, FL_EFORMAT);
    expect_error("pnm 99999x99999", (const uint8_t *)"P5 99999 99999 255\n\x01", 21, 0);
    expect_error("pnm maxval 0", (const uint8_t *)"P5 1 1 0\n\x01", 10, FL_EFORMAT);

    /* Size caps apply to every format, from the header alone. */
    struct img_limits tight = {.max_side = 32};
    for (int i = 0; i < N_FILES; i++) {
        uint8_t *buf = slurp(FILES[i], &len);
        if (!buf) continue;
        struct img img;
        struct fl_err err = {0};
        CHECK_INT(img_decode(buf, len, &tight, &img, &err), FL_ELIMIT);
        struct img_limits small_bytes = {.max_bytes = len - 1};
        CHECK_INT(img_decode(buf, len, &small_bytes, &img, &err), FL_ELIMIT);
        struct img_limits few_pixels = {.max_pixels = 64 * 48 - 1};
        CHECK_INT(img_decode(buf, len, &few_pixels, &img, &err), FL_ELIMIT);
        free(buf);
    }
}

/* Every prefix of every fixture: an error, or (only where the format allows
 * it, e.g. a JPEG missing just its EOI) a complete image. */
static void check_truncations(void) {
    for (int i = 0; i < N_FILES; i++) {
        size_t len;
        uint8_t *buf = slurp(FILES[i], &len);
        if (!buf) continue;
        int decoded = 0;
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *part = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
            memcpy(part, buf, cut);
            struct img img;
            struct fl_err err = {0};
            int rc = img_decode(part, cut, NULL, &img, &err);
            if (rc == 0) {
                decoded++;
                CHECK(img.width == 64 && img.height == 48);
            } else {
                CHECK(err.msg[0] && img.px == NULL);
            }
            img_free(&img);
            free(part);
        }
        /* Only cuts after the pixel data may decode (JPEG EOI, PNG IEND, GIF
         * trailer, the 26-byte TGA footer), never a file that lost pixels. */
        CHECK(decoded <= 32);
        fprintf(stderr, "%s: %zu truncations, %d still decode\n", FILES[i], len, decoded);
        free(buf);
    }
}

static void check_flips(void) {
    uint64_t r = 7;
    for (int i = 0; i < N_FILES; i++) {
        size_t len;
        uint8_t *buf = slurp(FILES[i], &len);
        if (!buf) continue;
        uint8_t *copy = malloc(len);
        int ok = 0;
        for (int trial = 0; trial < 400; trial++) {
            memcpy(copy, buf, len);
            for (int k = 0; k < 1 + trial % 5; k++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                /* bias towards the headers, where the parsers live */
                size_t at = (trial & 1) ? r % (len < 128 ? len : 128) : r % len;
                copy[at] = (uint8_t)(r >> 32);
            }
            struct img img;
            struct fl_err err = {0};
            if (img_decode(copy, len, NULL, &img, &err) == 0) {
                ok++;
                CHECK(img.px && img.width > 0 && img.height > 0 && img.channels >= 1 && img.channels <= 4);
            }
            img_free(&img);
        }
        fprintf(stderr, "%s: %d of 400 corrupted copies still decode\n", FILES[i], ok);
        free(copy);
        free(buf);
    }
}

int main(void) {
    check_pixels();
    check_orientation();
    check_broken();
    check_truncations();
    check_flips();
    return TEST_END();
}
