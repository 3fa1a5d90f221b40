/* file.c - see file.h. */
#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int fl_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, struct fl_err *err) {
    *out = NULL;
    *len = 0;
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return fl_err_set(err, FL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (!is_stdin && (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))) {
        fclose(f);
        return fl_err_set(err, FL_EIO, "%s: not a regular file", path);
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (n == cap) {
            if (cap > max_bytes) break;
            uint8_t *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (!buf) rc = fl_err_set(err, FL_ENOMEM, "%s: out of memory reading", path);
    else if (n > max_bytes) rc = fl_err_set(err, FL_ELIMIT, "%s: larger than the %zu-byte limit", path, max_bytes);
    else if (ferror(f)) rc = fl_err_set(err, FL_EIO, "%s: read error", path);
    if (!is_stdin) fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

int fl_write_file(const char *path, const void *data, size_t len, struct fl_err *err) {
    int is_stdout = strcmp(path, "-") == 0;
    FILE *f = is_stdout ? stdout : fopen(path, "wb");
    if (!f) return fl_err_set(err, FL_EIO, "%s: cannot create: %s", path, strerror(errno));
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int bad = put != len || fflush(f) != 0;
    if (!is_stdout) bad |= fclose(f) != 0;
    if (bad) return fl_err_set(err, FL_EIO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}
