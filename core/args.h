/* args.h - strict parsing of command-line numbers (atoi accepts "12abc"). */
#ifndef FL_ARGS_H
#define FL_ARGS_H

/* Parses all of s as a base-10 integer in [lo, hi]; returns 0 or -1. */
int args_int(const char *s, long lo, long hi, long *out);

#endif
