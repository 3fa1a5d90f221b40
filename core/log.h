/*
 * log.h - the one place that prints diagnostics.
 *
 * Library code reports errors through struct fl_err; this module is for what
 * an operator wants to see (timings, progress, warnings).  The level is the
 * only mutable global: set once in main before threads start.
 */
#ifndef FL_LOG_H
#define FL_LOG_H

enum fl_log_level { FL_LOG_ERROR = 0, FL_LOG_WARN = 1, FL_LOG_INFO = 2, FL_LOG_DEBUG = 3 };

void fl_log_set_level(enum fl_log_level level);
enum fl_log_level fl_log_get_level(void);

/* Writes one line to stderr when level <= the current level. */
void fl_log(enum fl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
