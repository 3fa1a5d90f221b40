/* cli.c - see cli.h. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

#include "../core/args.h"
#include "../core/file.h"
#include "../core/mat.h"
#include "../vision/preprocess.h"

const char *cli_cmd = "flamingo";

int cli_fail(const char *msg) {
    fprintf(stderr, "flamingo: %s: %s\n", cli_cmd, msg);
    return 1;
}

int cli_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "flamingo: %s: ", cli_cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see flamingo %s --help)\n", cli_cmd);
    return 2;
}

int cli_threads(const char *arg) {
    long n;
    if (args_int(arg, 1, 1024, &n) < 0) return cli_usage("--threads must be an integer in [1, 1024], not '%s'", arg);
    if (mat_init((int)n) < 0) return cli_fail("cannot start worker threads");
    return 0;
}

int cli_long(const char *name, const char *arg, long lo, long hi, long *out) {
    if (args_int(arg, lo, hi, out) == 0) return 0;
    fprintf(stderr, "flamingo: %s: %s must be an integer in [%ld, %ld], not '%s' (see flamingo %s --help)\n",
            cli_cmd, name, lo, hi, arg, cli_cmd);
    return 2;
}

int cli_float(const char *name, const char *arg, double lo, double hi, float *out) {
    char *end;
    double v = arg && *arg ? strtod(arg, &end) : 0;
    if (arg && *arg && !*end && v >= lo && v <= hi) {
        *out = (float)v;
        return 0;
    }
    fprintf(stderr, "flamingo: %s: %s must be a number in [%g, %g], not '%s' (see flamingo %s --help)\n", cli_cmd,
            name, lo, hi, arg ? arg : "", cli_cmd);
    return 2;
}

int cli_open_model(const char *path, struct st_file **f, struct fl_config *cfg, struct fl_err *err) {
    int rc = st_open(path, f, err);
    if (rc < 0) return rc;
    rc = cfg_parse(st_metadata(*f, "config"), cfg, err);
    if (rc < 0) {
        fl_err_prefix(err, "%s", path);
        st_close(*f);
        *f = NULL;
    }
    return rc;
}

int cli_load_image(const char *path, struct img *img, struct fl_err *err) {
    uint8_t *buf;
    size_t len;
    int rc = fl_read_file(path, IMG_DEFAULT_MAX_BYTES, &buf, &len, err);
    if (rc < 0) return rc;
    rc = img_decode(buf, len, NULL, img, err);
    free(buf);
    if (rc < 0) fl_err_prefix(err, "%s", path);
    return rc;
}

int cli_load_pixels(const char *const *paths, int n, const struct cfg_preprocess *pre, float **pixels,
                    struct fl_err *err) {
    const size_t per = (size_t)3 * pre->image_size * pre->image_size;
    *pixels = malloc((n ? (size_t)n : 1) * per * sizeof(float));
    if (!*pixels) return fl_err_set(err, FL_ENOMEM, "out of memory for %d images", n);
    for (int i = 0; i < n; i++) {
        struct img img;
        int rc = cli_load_image(paths[i], &img, err);
        if (rc == 0) {
            rc = pre_image(&img, pre, *pixels + i * per, err);
            if (rc < 0) fl_err_prefix(err, "%s", paths[i]);
            img_free(&img);
        }
        if (rc < 0) {
            free(*pixels);
            *pixels = NULL;
            return rc;
        }
    }
    return 0;
}
