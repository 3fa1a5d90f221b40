/* err.c - see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fl_err_set(struct fl_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void fl_err_prefix(struct fl_err *err, const char *fmt, ...) {
    if (!err) return;
    char head[FL_ERR_MSG_SIZE];
    char old[FL_ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is intended: the message stays one bounded line. */
    size_t n = strlen(head);
    memcpy(err->msg, head, n);
    size_t room = sizeof err->msg - 1 - n;
    if (room >= 2) {
        memcpy(err->msg + n, ": ", 2);
        n += 2;
        size_t m = strnlen(old, sizeof err->msg - 1 - n);
        memcpy(err->msg + n, old, m);
        n += m;
    }
    err->msg[n] = 0;
}

const char *fl_printable(const char *s, char out[64]) {
    size_t i = 0;
    for (; s && s[i] && i < 60; i++) out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (s && s[i]) {
        out[i++] = '.';
        out[i++] = '.';
    }
    out[i] = 0;
    return out;
}

const char *fl_code_str(int code) {
    switch (code) {
    case FL_OK: return "ok";
    case FL_EINVAL: return "invalid input";
    case FL_ENOMEM: return "out of memory";
    case FL_EIO: return "i/o error";
    case FL_EFORMAT: return "bad format";
    case FL_ELIMIT: return "over limit";
    case FL_EUNSUPPORTED: return "unsupported";
    default: return "error";
    }
}

void fl_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "flamingo: internal error: %s:%d: assertion '%s' failed\n", file, line, expr);
    abort();
}
