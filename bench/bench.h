/* bench.h - `flamingo bench` (see bench.c). */
#ifndef FL_BENCH_H
#define FL_BENCH_H

/* argv[0] is "bench".  Returns the process exit status. */
int bench_main(int argc, char **argv);

#endif
