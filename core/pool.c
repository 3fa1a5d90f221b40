/*
 * pool.c - see pool.h.
 *
 * A loop is published as a generation number; workers take task indices
 * from an atomic counter until it runs past n_tasks, and the last one to
 * finish tells the caller.  The caller takes tasks too, so a pool of n
 * threads has n - 1 workers.
 *
 * Between loops a worker first spins on the generation for up to SPIN_NS,
 * then sleeps on a condition variable; the caller, once its own tasks are
 * done, spins on the count of workers still busy the same way before it
 * sleeps.  Decode runs a few hundred short loops per token (every product,
 * norm and attention of every layer), and a futex wake-up per loop and side
 * cost 8% of a one-sequence step at the 3B shape (perf: the scheduler's
 * wake-up and switch); a spinning thread starts the next loop at once.
 * Who sleeps is announced (sleepers, waiting) before the last check of the
 * condition, and the other side reads it after changing the condition,
 * both sequentially consistent, so a wake-up is never lost; the broadcast
 * and the signal are sent under the mutex the sleeper checks under.
 */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* How long a thread spins before it sleeps: longer than the gap between
 * two loops of a decode step, short enough that an idle pool sleeps at once
 * for anything else that wants the cores (OpenBLAS's own threads). */
#define SPIN_NS 50000

struct pool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_ulong generation;
    atomic_int stopping;
    atomic_int sleepers; /* workers asleep or about to be */
    atomic_int waiting;  /* the caller asleep or about to be */
    /* the current loop */
    void (*fn)(void *, int, int);
    void *ctx;
    int n_tasks;
    atomic_int next;
    atomic_int active; /* workers still inside the current loop */
};

struct worker_arg {
    struct pool *p;
    int index;
};

static void run_tasks(struct pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

/* Spins until cond(p, arg) or SPIN_NS have passed; returns cond's value. */
static int spin_until(struct pool *p, int (*cond)(struct pool *, unsigned long), unsigned long arg) {
    double t0 = 0;
    for (int i = 0;; i++) {
        if (cond(p, arg)) return 1;
        if ((i & 63) == 0) {
            double t = fl_now();
            if (i == 0)
                t0 = t;
            else if (t - t0 > SPIN_NS * 1e-9)
                return 0;
        }
        CPU_RELAX();
    }
}

static int new_loop(struct pool *p, unsigned long seen) {
    return atomic_load(&p->generation) != seen || atomic_load(&p->stopping);
}

static int all_done(struct pool *p, unsigned long unused) {
    (void)unused;
    return atomic_load(&p->active) == 0;
}

static void *worker_main(void *arg) {
    struct worker_arg *wa = arg;
    struct pool *p = wa->p;
    int index = wa->index;
    free(wa);
    unsigned long seen = 0;
    for (;;) {
        if (!spin_until(p, new_loop, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (!new_loop(p, seen))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stopping)) break;
        seen = atomic_load(&p->generation);
        run_tasks(p, index);
        if (atomic_fetch_sub(&p->active, 1) == 1 && atomic_load(&p->waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

struct pool *pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    struct pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        p->n_threads = 1; /* no worker to join */
        pool_free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->p = p, wa->index = i, pthread_create(&p->workers[i], NULL, worker_main, wa)) != 0) {
            free(wa);
            p->n_threads = i; /* pool_free joins the ones that started */
            pool_free(p);
            return NULL;
        }
    }
    return p;
}

void pool_free(struct pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int pool_size(const struct pool *p) { return p ? p->n_threads : 1; }

void pool_for(struct pool *p, int n_tasks, void (*fn)(void *ctx, int task, int thread), void *ctx) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    /* every worker finished the last loop (active was 0): nobody reads these */
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->active, p->n_threads - 1);
    atomic_fetch_add(&p->generation, 1);
    if (atomic_load(&p->sleepers)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, 0);
    if (!spin_until(p, all_done, 0)) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->waiting, 1);
        while (!all_done(p, 0))
            pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->waiting, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
