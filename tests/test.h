/*
 * test.h - the tiny assertion header every C test includes.
 *
 * A test binary is one process (the runner gives it a timeout); each CHECK
 * counts, a failing one prints file:line and the values, and the binary exits
 * non-zero if any check failed.  Checks compare real values: exact integers,
 * strings, or floats within a stated tolerance.
 */
#ifndef FL_TEST_H
#define FL_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int test_failed_;
static int test_passed_;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) test_passed_++;                                                    \
        else {                                                                       \
            test_failed_++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_INT(a, b)                                                                    \
    do {                                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                                \
        if (a_ == b_) test_passed_++;                                                      \
        else {                                                                             \
            test_failed_++;                                                                \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
                    #a, a_, #b, b_);                                                       \
        }                                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                                \
    do {                                                                               \
        const char *a_ = (a), *b_ = (b);                                               \
        if (a_ && b_ && strcmp(a_, b_) == 0) test_passed_++;                           \
        else {                                                                         \
            test_failed_++;                                                            \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
                    #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                       \
        }                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                              \
    do {                                                                                   \
        double a_ = (a), b_ = (b);                                                         \
        if (fabs(a_ - b_) <= (tol)) test_passed_++;                                        \
        else {                                                                             \
            test_failed_++;                                                                \
            fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__, \
                    #a, a_, b_, (double)(tol));                                            \
        }                                                                                  \
    } while (0)

/* The largest |got - want| over the largest |want| (NaN counts as infinitely
 * far): how kernel tests compare float results with double references. */
static inline double max_rel(const float *got, const double *want, size_t n) {
    double mx = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(want[i]));
        double d = fabs(got[i] - want[i]);
        md = isnan(d) ? INFINITY : fmax(md, d);
    }
    return md / (mx > 0 ? mx : 1);
}

/* Print the summary and return the process exit status. */
#define TEST_END()                                                                         \
    (fprintf(stderr, "%s: %d checks passed, %d failed\n", __FILE__, test_passed_, test_failed_), \
     test_failed_ ? 1 : 0)

#endif
