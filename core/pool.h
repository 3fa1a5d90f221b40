/*
 * pool.h - a fixed set of worker threads for data-parallel loops.
 *
 * The compute-bound parts that OpenBLAS does not cover (attention heads,
 * LayerNorm rows, activations) are split into independent tasks and run on
 * these threads plus the calling thread.  Between loops workers spin for a
 * moment (50 us), then sleep on a condition variable (pool.c says why).
 *
 * One pool serves one compute thread at a time: pool_for is not reentrant
 * and must not be called concurrently on the same pool (in the server, only
 * the engine thread computes).  OpenBLAS keeps its own threads; the two never
 * run at the same moment, because a GEMM returns before the next loop starts.
 */
#ifndef FL_POOL_H
#define FL_POOL_H

struct pool;

/* n_threads counts the caller: 1 means no workers, everything inline.
 * Returns NULL when threads cannot be created. */
struct pool *pool_new(int n_threads);
void pool_free(struct pool *p);
int pool_size(const struct pool *p);

/* Calls fn(ctx, task, thread) for every task in [0, n_tasks), spread over
 * the pool (thread in [0, pool_size)), and returns when all have finished.
 * Tasks are handed out dynamically, so uneven tasks balance. */
void pool_for(struct pool *p, int n_tasks, void (*fn)(void *ctx, int task, int thread), void *ctx);

#endif
