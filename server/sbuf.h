/*
 * sbuf.h - a growable byte buffer for building HTTP bodies: JSON responses,
 * SSE events, the metrics page.
 *
 * Responses are written by hand rather than through cJSON because generated
 * text is arbitrary bytes with a length (it may hold NUL, which cJSON's
 * C strings cannot), because the key order of OpenAI's shapes is kept, and
 * because a stream writes hundreds of small events.  An allocation failure
 * makes the buffer "failed" (sb.failed): writes become no-ops and the caller
 * checks once at the end.
 */
#ifndef FL_SBUF_H
#define FL_SBUF_H

#include <stddef.h>

struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
};

void sb_free(struct sbuf *b);
void sb_put(struct sbuf *b, const void *data, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (with the quotes) of s[n]: ", \ and control
 * characters escaped; bytes >= 0x80 are copied (the text is UTF-8). */
void sb_json_str(struct sbuf *b, const char *s, size_t n);
/* A JSON number: finite floats as %.9g; NaN and infinities as null. */
void sb_json_float(struct sbuf *b, double v);

#endif
