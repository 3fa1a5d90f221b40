/* log.c - see log.h.  One fprintf per line so that lines from several
 * threads never interleave within a line (stdio locks the stream per call). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static enum fl_log_level g_level = FL_LOG_WARN;

void fl_log_set_level(enum fl_log_level level) { g_level = level; }

enum fl_log_level fl_log_get_level(void) { return g_level; }

void fl_log(enum fl_log_level level, const char *fmt, ...) {
    if (level > g_level) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "flamingo: %s: %s\n", names[level], line);
}
