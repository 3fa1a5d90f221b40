/*
 * err.h - errors are values.
 *
 * Every fallible function in flamingo.c returns 0 on success or a negative
 * FL_E* code, and fills a caller-owned struct fl_err with a one-line message
 * that says what went wrong and where (file, field, tensor).  Library code
 * never prints and never exits; the CLI and the server decide what to do with
 * the message.  The fixed-size buffer follows curl's CURL_ERROR_SIZE: no
 * allocation is needed to report an out-of-memory condition.
 */
#ifndef FL_ERR_H
#define FL_ERR_H

#define FL_ERR_MSG_SIZE 256

enum fl_code {
    FL_OK = 0,
    FL_EINVAL = -1,       /* bad argument or malformed input */
    FL_ENOMEM = -2,       /* allocation failed */
    FL_EIO = -3,          /* open/read/mmap failed */
    FL_EFORMAT = -4,      /* corrupt or unsupported file contents */
    FL_ELIMIT = -5,       /* input exceeds a configured cap */
    FL_EUNSUPPORTED = -6, /* valid input we do not handle */
};

struct fl_err {
    int code;
    char msg[FL_ERR_MSG_SIZE];
};

/* Records code and a printf-style message in err (which may be NULL) and
 * returns code, so that callers can write `return fl_err_set(err, ...)`. */
int fl_err_set(struct fl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (used to add a file name). */
void fl_err_prefix(struct fl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short name for a code: "invalid input", "out of memory", ... */
const char *fl_code_str(int code);

/* Copies at most 60 characters of s into out (64 bytes) with every byte
 * outside printable ASCII replaced by '?' and ".." appended when cut, so
 * that text from a file or a library cannot break a one-line error or
 * reach a terminal as escape sequences.  Returns out. */
const char *fl_printable(const char *s, char out[64]);

/* Always-on check of an internal invariant (a shape, a buffer size): a
 * failure is a bug in flamingo.c, never bad input, and aborts with the
 * expression and its place.  Input is validated with error returns. */
#define FL_ASSERT(cond) \
    do { \
        if (!(cond)) fl_assert_fail(#cond, __FILE__, __LINE__); \
    } while (0)
_Noreturn void fl_assert_fail(const char *expr, const char *file, int line);

#endif
