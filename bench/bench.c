/*
 * bench.c - `flamingo bench`: performance figures next to the machine's own
 * limit, measured in the same run (these machines are shared and noisy, so a
 * number means something only as a ratio to a limit measured alongside it).
 *
 *   flamingo bench --synthetic vit-l-14|openflamingo-3b|gemm [--dtype f32|bf16|q8_0] [-t THREADS] [--json]
 *
 * Limit: OpenBLAS sgemm GFLOP/s on the shape of the tower's MLP GEMM (8
 * images x 257 tokens, 1024 -> 4096).  Figure: CLIP ViT-L/14 encode time per
 * image at batch 1 and 8 with random weights, and its FLOP rate
 * (clip_flops_per_image: about 162 GFLOP per image) as a fraction of the
 * sgemm rate.  The machine is shared, so the sgemm rate is measured between
 * the encode runs too and every figure is a best of several runs: the ratio
 * compares best with best, taken minutes apart at most.
 *
 * openflamingo-3b: the whole model at OpenFlamingo-3B's shape (ViT-L/14, a
 * 6-layer Perceiver, MPT-1B with a cross-attention block before each of its
 * 24 layers; 2.2 B parameters on the language side), float32, random
 * weights, in one run: vision encode at batch 1 and 8 (FLOP rate against
 * sgemm), the Perceiver (ms per image), prefill of a 1-image 64-token and a 4-image
 * 512-token prompt (against sgemm), decode of 1 sequence (bytes of weights
 * read per token x tokens/s against the measured read bandwidth) and of 4,
 * 8 and 16 sequences batched (lm_forward_batch: one GEMM per Linear),
 * time to first token for a new image (encode, resample, the image's keys
 * and values, prefill) and for one whose keys and values are cached, as the
 * server's image cache holds them, and the peak RSS.  --dtype stores the
 * weights of two or more dimensions as weights/convert.py --dtype does
 * (f32, bf16, or q8_0 for the weight matrices); bytes per decoded token
 * count the stored bytes.
 */
#include "bench.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../core/args.h"
#include "../core/blas_core.h"
#include "../core/clock.h"
#include "../core/mat.h"
#include "../core/pool.h"
#include "../model/lm.h"
#include "../model/perceiver.h"
#include "../vision/clip.h"
#include "../weights/st.h"
#include "synth.h"

/* Best GFLOP/s of sgemm at m x n x k over `reps` runs after one warm-up,
 * the better of two ways to use the cores: OpenBLAS's own threads, and
 * mat_gemm's (single-threaded OpenBLAS on slices, over the pool). */
static double sgemm_gflops(int m, int n, int k, int reps) {
    float *a = malloc((size_t)m * k * sizeof *a), *b = malloc((size_t)n * k * sizeof *b);
    float *c = malloc((size_t)m * n * sizeof *c);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.01f;
        for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.01f;
        for (int way = 0; way < 2; way++) {
            if (way == 0) mat_blas_threads(mat_threads());
            for (int r = 0; r <= reps; r++) {
                double t0 = fl_now();
                if (way == 0) mat_gemm_blas(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
                else mat_gemm(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
                double dt = fl_now() - t0;
                double g = 2.0 * m * n * k / dt * 1e-9;
                if (r > 0 && g > best) best = g;
            }
            if (way == 0) mat_blas_threads(1);
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* Best seconds per call of clip_encode on n images over iters runs. */
static double time_encode(const struct clip_model *m, struct clip_state *s, const float *px, int n,
                          float *out, int iters) {
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        double t0 = fl_now();
        clip_encode(m, s, px, n, out);
        double dt = fl_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

static double max2(double a, double b) { return a > b ? a : b; }

static int bench_vit(int json, enum wmat_type type) {
    struct cfg_vision v;
    cfg_vision_default(&v);
    struct fl_err err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    struct st_file *f = NULL;
    struct clip_model *m = NULL;
    struct clip_state *s = NULL;
    float *px = NULL, *out = NULL;
    int rc;
    const int B = 8;

    const int gm = 8 * 257, gn = 4096, gk = 1024;
    if (!json) fprintf(stderr, "bench: measuring sgemm (%d x %d x %d)...\n", gm, gn, gk);
    double gemm = sgemm_gflops(gm, gn, gk, 5);

    if (!json) fprintf(stderr, "bench: building ViT-L/14 with random weights...\n");
    if ((rc = synth_vision(&v, 1, type, &buf, &len, &err)) < 0 ||
        (rc = st_open_memory(buf, len, "synthetic-vit-l-14", &f, &err)) < 0 ||
        (rc = clip_load(f, &v, "vision_encoder.", &m, &err)) < 0 ||
        (rc = clip_state_init(m, B, &s, &err)) < 0)
        goto done;
    size_t in_floats = (size_t)3 * v.image_size * v.image_size;
    size_t out_floats = (size_t)clip_out_tokens(m) * v.width;
    px = malloc(B * in_floats * sizeof *px);
    out = malloc(B * out_floats * sizeof *out);
    if (!px || !out) {
        rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < B * in_floats; i++) px[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;

    if (!json) fprintf(stderr, "bench: encoding...\n");
    clip_encode(m, s, px, 1, out); /* warm-up: page in weights and scratch */
    double t1 = time_encode(m, s, px, 1, out, 3);
    gemm = max2(gemm, sgemm_gflops(gm, gn, gk, 3));
    double t8 = time_encode(m, s, px, B, out, 2) / B;
    gemm = max2(gemm, sgemm_gflops(gm, gn, gk, 3));
    double flops = clip_flops_per_image(&v);
    double g1 = flops / t1 * 1e-9, g8 = flops / t8 * 1e-9;
    if (json) {
        printf("{\"model\": \"vit-l-14\", \"threads\": %d, \"kernels\": \"%s\", \"blas_core\": \"%s\", "
               "\"sgemm_gflops\": %.1f, "
               "\"gflop_per_image\": %.1f, \"vision_ms_b1\": %.1f, \"vision_ms_b8\": %.1f, "
               "\"vision_gflops_b1\": %.1f, \"vision_gflops_b8\": %.1f, "
               "\"vision_ratio_b1\": %.3f, \"vision_ratio_b8\": %.3f}\n",
               mat_threads(), mat_kernels(), blas_core_name(), gemm, flops * 1e-9, t1 * 1e3, t8 * 1e3, g1, g8,
               g1 / gemm, g8 / gemm);
    } else {
        printf("machine    sgemm %.1f GFLOP/s (OpenBLAS %s, %d threads, %dx%dx%d; kernels %s)\n", gemm,
               blas_core_name(), mat_threads(), gm, gn, gk, mat_kernels());
        printf("vit-l-14   %.1f GFLOP per image (224x224, 257 tokens, 24 layers)\n", flops * 1e-9);
        printf("batch 1    %8.1f ms/image  %6.1f GFLOP/s  %5.1f%% of sgemm\n", t1 * 1e3, g1, 100 * g1 / gemm);
        printf("batch 8    %8.1f ms/image  %6.1f GFLOP/s  %5.1f%% of sgemm\n", t8 * 1e3, g8, 100 * g8 / gemm);
    }
done:
    free(px);
    free(out);
    clip_state_free(s);
    clip_free(m);
    st_close(f);
    free(buf);
    if (rc < 0) fprintf(stderr, "flamingo: bench: %s\n", err.msg);
    return rc < 0 ? 1 : 0;
}

/* Memory read bandwidth, all threads: each sums its share of a 1 GiB buffer. */
struct bw_job {
    const float *buf;
    size_t n, chunk;
    double sums[64];
};

static void bw_task(void *ctx, int task, int thread) {
    struct bw_job *j = ctx;
    const float *p = j->buf + (size_t)task * j->chunk;
    size_t n = (size_t)task * j->chunk + j->chunk > j->n ? j->n - (size_t)task * j->chunk : j->chunk;
    float a[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) a[l] += p[i + l];
    j->sums[thread & 63] += a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

static double mem_bandwidth(int threads) {
    const size_t n = (size_t)1 << 28; /* 1 GiB of floats */
    float *buf = malloc(n * sizeof *buf);
    struct pool *p = pool_new(threads);
    double best = 0;
    if (buf && p) {
        for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023);
        struct bw_job j = {.buf = buf, .n = n, .chunk = n / (size_t)(threads * 16)};
        for (int r = 0; r < 4; r++) {
            double t0 = fl_now();
            pool_for(p, (int)((n + j.chunk - 1) / j.chunk), bw_task, &j);
            double gbs = (double)n * sizeof *buf / (fl_now() - t0) * 1e-9;
            if (r > 0 && gbs > best) best = gbs;
        }
    }
    pool_free(p);
    free(buf);
    return best;
}

/* The stages of a request at OpenFlamingo-3B's shape, random weights, one
 * run.  Timings are best-of-a-few where a stage is short; each figure comes
 * with its limit (see the header). */
struct of3b {
    struct fl_config cfg;
    uint8_t *vbuf, *lbuf;
    size_t vlen, llen;
    struct st_file *vf, *lf;
    struct clip_model *clip;
    struct clip_state *cs;
    struct perc_model *perc;
    struct perc_state *ps;
    struct lm_model *lm;
    struct lm_media *media;
    struct lm_seq *seq[16];
    struct lm_scratch *sc;
    float *px, *tokens, *latents, *kv, *logits;
};

static void of3b_free(struct of3b *b) {
    free(b->px);
    free(b->tokens);
    free(b->latents);
    free(b->kv);
    free(b->logits);
    lm_scratch_free(b->sc);
    for (int i = 0; i < 16; i++) lm_seq_free(b->seq[i]);
    lm_media_free(b->media);
    lm_free(b->lm);
    perc_state_free(b->ps);
    perc_free(b->perc);
    clip_state_free(b->cs);
    clip_free(b->clip);
    st_close(b->lf);
    st_close(b->vf);
    free(b->lbuf);
    free(b->vbuf);
}

/* n prompt ids: <image> at every (n / images)-th position from 0, the rest
 * arbitrary words. */
static void of3b_prompt(const struct fl_config *c, int *ids, int n, int images) {
    for (int i = 0; i < n; i++) ids[i] = 1 + (i * 7919) % (c->lm.vocab_size - 1000);
    for (int k = 0; k < images; k++) ids[k * (n / images)] = c->tokens.media;
}

/* One image's keys and values, from pixels: encode, resample, project (what
 * the server does for an image it has not seen). */
static void of3b_image(struct of3b *b, float *kv) {
    clip_encode(b->clip, b->cs, b->px, 1, b->tokens);
    perc_forward(b->perc, b->ps, b->tokens, 1, b->latents);
    lm_media_kv(b->lm, b->latents, kv);
}

static int bench_of3b(int json, enum wmat_type type) {
    const char *dtype = wmat_type_name(type);
    struct fl_err err = {0};
    struct of3b b = {0};
    struct fl_config *c = &b.cfg;
    enum { B8 = 8, NSEQ = 16, N64 = 64, N512 = 512, NDEC = 16, NBATCH = 8, NQ = 16 };
    static int ids[N512];
    int rc;
    cfg_parse("{\"vision\": {}, \"lm\": {}}", c, &err); /* all defaults: OpenFlamingo-3B */

    if (!json) fprintf(stderr, "bench: measuring sgemm and memory bandwidth...\n");
    const int gm = 8 * 257, gn = 4096, gk = 1024;
    double gemm = sgemm_gflops(gm, gn, gk, 5);
    double bw = mem_bandwidth(mat_threads());

    if (!json) fprintf(stderr, "bench: building OpenFlamingo-3B with random weights (about 10 GB)...\n");
    if ((rc = synth_vision_perceiver(c, 1, type, &b.vbuf, &b.vlen, &err)) < 0 ||
        (rc = st_open_memory(b.vbuf, b.vlen, "synthetic-vit-perceiver", &b.vf, &err)) < 0 ||
        (rc = clip_load(b.vf, &c->vision, "vision_encoder.", &b.clip, &err)) < 0 ||
        (rc = clip_state_init(b.clip, B8, &b.cs, &err)) < 0 ||
        (rc = perc_load(b.vf, &c->perceiver, c->vision.width, clip_out_tokens(b.clip), &b.perc, &err)) < 0 ||
        (rc = perc_state_init(b.perc, B8, &b.ps, &err)) < 0 || (rc = synth_lm(c, 3, type, &b.lbuf, &b.llen, &err)) < 0 ||
        (rc = st_open_memory(b.lbuf, b.llen, "synthetic-openflamingo-3b", &b.lf, &err)) < 0 ||
        (rc = cfg_parse(st_metadata(b.lf, "config"), c, &err)) < 0 || (rc = lm_load(b.lf, c, &b.lm, &err)) < 0 ||
        (rc = lm_media_init_ref(b.lm, 4, &b.media, &err)) < 0 ||
        (rc = lm_scratch_init(b.lm, N512, N512 + NDEC, &b.sc, &err)) < 0)
        goto done;
    for (int i = 0; i < NSEQ; i++)
        if ((rc = lm_seq_init(b.lm, N512 + NDEC, &b.seq[i], &err)) < 0) goto done;
    const size_t S = (size_t)c->vision.image_size, px1 = 3 * S * S;
    const size_t tok1 = (size_t)clip_out_tokens(b.clip) * c->vision.width;
    const size_t lat1 = (size_t)c->perceiver.num_latents * c->vision.width, kv1 = lm_media_kv_floats(b.lm);
    const int V = c->lm.vocab_size;
    b.px = malloc(B8 * px1 * sizeof *b.px);
    b.tokens = malloc(B8 * tok1 * sizeof *b.tokens);
    b.latents = malloc(B8 * lat1 * sizeof *b.latents);
    b.kv = malloc(4 * kv1 * sizeof *b.kv);
    b.logits = malloc((size_t)NSEQ * V * sizeof *b.logits);
    if (!b.px || !b.tokens || !b.latents || !b.kv || !b.logits) {
        rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < B8 * px1; i++) b.px[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;

    /* vision and Perceiver */
    if (!json) fprintf(stderr, "bench: vision encoder and Perceiver...\n");
    clip_encode(b.clip, b.cs, b.px, 1, b.tokens); /* warm-up: page in weights and scratch */
    double vis1 = time_encode(b.clip, b.cs, b.px, 1, b.tokens, 3);
    gemm = max2(gemm, sgemm_gflops(gm, gn, gk, 3));
    double vis8 = time_encode(b.clip, b.cs, b.px, B8, b.tokens, 2) / B8;
    gemm = max2(gemm, sgemm_gflops(gm, gn, gk, 3));
    double perc = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = fl_now();
        perc_forward(b.perc, b.ps, b.tokens, 1, b.latents);
        double dt = fl_now() - t0;
        if (r > 0 && dt < perc) perc = dt;
    }
    for (int k = 0; k < 4; k++) lm_media_kv(b.lm, b.latents, b.kv + k * kv1);
    for (int k = 0; k < 4; k++)
        if ((rc = lm_media_add_ref(b.lm, b.media, b.kv + k * kv1, &err)) < 0) goto done;

    /* prefill: 1 image + 64 tokens, 4 images + 512 tokens */
    if (!json) fprintf(stderr, "bench: prefill...\n");
    double pre64 = 1e30, pre512 = 1e30;
    of3b_prompt(c, ids, N64, 1);
    for (int r = 0; r < 3; r++) { /* the first pass pages the weights in */
        lm_seq_reset(b.seq[0]);
        double t0 = fl_now();
        if ((rc = lm_forward(b.lm, b.seq[0], b.media, b.sc, ids, N64, b.logits, 0, &err)) < 0) goto done;
        double dt = fl_now() - t0;
        if (r > 0 && dt < pre64) pre64 = dt;
    }
    of3b_prompt(c, ids, N512, 4);
    for (int r = 0; r < 2; r++) {
        lm_seq_reset(b.seq[1]);
        double t0 = fl_now();
        if ((rc = lm_forward(b.lm, b.seq[1], b.media, b.sc, ids, N512, b.logits, 0, &err)) < 0) goto done;
        double dt = fl_now() - t0;
        if (dt < pre512) pre512 = dt;
    }

    /* time to first token: a new image (encode, resample, keys and values,
     * prefill); an image whose keys and values are cached (prefill); and
     * what the server does for a follow-up question about a cached image:
     * the image cache has the image, the prefix cache the prompt's first
     * N64 - NQ positions, and only the NQ tokens of the new question run */
    double ttft_new = 1e30, ttft_image = 1e30, ttft_cached = 1e30;
    of3b_prompt(c, ids, N64, 1);
    for (int r = 0; r < 2; r++) {
        lm_media_clear(b.media);
        lm_seq_reset(b.seq[0]);
        double t0 = fl_now();
        of3b_image(&b, b.kv);
        if ((rc = lm_media_add_ref(b.lm, b.media, b.kv, &err)) < 0 ||
            (rc = lm_forward(b.lm, b.seq[0], b.media, b.sc, ids, N64, b.logits, 0, &err)) < 0)
            goto done;
        double dt = fl_now() - t0;
        if (dt < ttft_new) ttft_new = dt;
        lm_seq_reset(b.seq[0]);
        t0 = fl_now();
        if ((rc = lm_forward(b.lm, b.seq[0], b.media, b.sc, ids, N64, b.logits, 0, &err)) < 0) goto done;
        dt = fl_now() - t0;
        if (dt < ttft_image) ttft_image = dt;
        int question[NQ];
        for (int i = 0; i < NQ; i++)
            question[i] = 1 + (ids[N64 - NQ + i] + 101 * (r + 1)) % (c->lm.vocab_size - 1000);
        t0 = fl_now();
        lm_seq_copy_prefix(b.seq[1], b.seq[0], N64 - NQ, 1);
        if ((rc = lm_forward(b.lm, b.seq[1], b.media, b.sc, question, NQ, b.logits, 0, &err)) < 0) goto done;
        dt = fl_now() - t0;
        if (dt < ttft_cached) ttft_cached = dt;
    }

    /* decode: one sequence, then batches of 4, 8 and 16 sequences that each
     * hold the 64-token prompt */
    if (!json) fprintf(stderr, "bench: decode...\n");
    double t0 = fl_now();
    for (int i = 0; i < NDEC; i++) {
        int next = 1 + (i * 31) % 50000;
        if ((rc = lm_forward(b.lm, b.seq[0], b.media, b.sc, &next, 1, b.logits, 0, &err)) < 0) goto done;
    }
    double dec1 = NDEC / (fl_now() - t0);
    double dec_n[3] = {0};
    const int widths[3] = {4, 8, 16};
    int next[NSEQ];
    struct lm_group g[NSEQ];
    for (int w = 0; w < 3; w++) {
        const int n = widths[w];
        for (int i = 0; i < n; i++) {
            lm_seq_reset(b.seq[i]);
            if ((rc = lm_forward(b.lm, b.seq[i], b.media, b.sc, ids, N64, NULL, 0, &err)) < 0) goto done;
        }
        t0 = fl_now();
        for (int step = 0; step < NBATCH; step++) {
            for (int i = 0; i < n; i++) {
                next[i] = 1 + (step * 31 + i * 17) % 50000;
                g[i] = (struct lm_group){b.seq[i], b.media, &next[i], 1, LM_LOGITS_LAST};
            }
            if ((rc = lm_forward_batch(b.lm, g, n, b.sc, b.logits, &err)) < 0) goto done;
        }
        dec_n[w] = (double)n * NBATCH / (fl_now() - t0);
    }
    gemm = max2(gemm, sgemm_gflops(gm, gn, gk, 3));

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0;
    /* every weight of the language side is read once per decoded token, in
     * the type it is stored in (q8_0: its scales too) */
    double lm_bytes = 0, lm_params = 0;
    for (int i = 0; i < st_n_tensors(b.lf); i++) {
        const struct st_tensor *t = st_tensor_at(b.lf, i);
        size_t nl = strlen(t->name);
        lm_bytes += (double)t->n_bytes;
        if (nl < 6 || strcmp(t->name + nl - 6, "_scale") != 0) lm_params += (double)t->n_elems;
    }
    double vflops = clip_flops_per_image(&c->vision);
    double vis_ratio1 = vflops / vis1 * 1e-9 / gemm, vis_ratio8 = vflops / vis8 * 1e-9 / gemm;
    double pre64_ratio = 2.0 * lm_params * N64 / pre64 * 1e-9 / gemm;
    double pre512_ratio = 2.0 * lm_params * N512 / pre512 * 1e-9 / gemm;
    double dec_ratio = lm_bytes * dec1 * 1e-9 / bw;
    if (json) {
        printf("{\"model\": \"openflamingo-3b\", \"dtype\": \"%s\", \"threads\": %d, \"kernels\": \"%s\", "
               "\"q8_act\": \"%s\", \"blas_core\": \"%s\", \"sgemm_gflops\": %.1f, \"mem_bw_gbs\": %.1f, "
               "\"lm_params\": %.0f, "
               "\"vision_ms_b1\": %.1f, \"vision_ms_b8\": %.1f, \"vision_ratio_b1\": %.3f, "
               "\"vision_ratio_b8\": %.3f, "
               "\"perceiver_ms\": %.2f, \"prefill_tps_64\": %.2f, \"prefill_ratio_64\": %.3f, "
               "\"prefill_tps_512\": %.2f, \"prefill_ratio_512\": %.3f, \"decode_tps_1\": %.3f, "
               "\"decode_ratio_1\": %.3f, \"decode_tps_4\": %.3f, \"decode_tps_8\": %.3f, \"decode_tps_16\": "
               "%.3f, "
               "\"ttft_new_ms\": %.1f, \"ttft_cached_image_ms\": %.1f, \"ttft_cached_ms\": %.1f, "
               "\"peak_rss_mb\": %.0f}\n",
               dtype, mat_threads(), mat_kernels(), mat_q8_act(), blas_core_name(), gemm, bw, lm_params,
               vis1 * 1e3, vis8 * 1e3, vis_ratio1, vis_ratio8, perc * 1e3, N64 / pre64, pre64_ratio,
               N512 / pre512, pre512_ratio, dec1, dec_ratio, dec_n[0], dec_n[1], dec_n[2], ttft_new * 1e3,
               ttft_image * 1e3, ttft_cached * 1e3, rss_mb);
    } else {
        printf("machine    sgemm %.1f GFLOP/s (OpenBLAS %s), memory read %.1f GB/s (%d threads; kernels %s, "
               "q8_0 rows "
               "%s)\n",
               gemm, blas_core_name(), bw, mat_threads(), mat_kernels(), mat_q8_act());
        printf("model      OpenFlamingo-3B, %s: language side %.2f B parameters (%.1f GB)\n", dtype,
               lm_params * 1e-9, lm_bytes * 1e-9);
        printf("vision     %8.1f ms/image at batch 1 (%4.1f%% of sgemm), %8.1f at batch 8 (%4.1f%%)\n", vis1 * 1e3,
               100 * vis_ratio1, vis8 * 1e3, 100 * vis_ratio8);
        printf("perceiver  %8.2f ms/image\n", perc * 1e3);
        printf("prefill    %8.2f tokens/s, 1 image + %d tokens (%4.1f%% of sgemm)\n", N64 / pre64, N64,
               100 * pre64_ratio);
        printf("prefill    %8.2f tokens/s, 4 images + %d tokens (%4.1f%% of sgemm)\n", N512 / pre512, N512,
               100 * pre512_ratio);
        printf("decode     %8.3f tokens/s, 1 sequence (%.1f GB/s of weights, %4.1f%% of the read bandwidth)\n",
               dec1, lm_bytes * dec1 * 1e-9, 100 * dec_ratio);
        for (int w = 0; w < 3; w++)
            printf("decode     %8.3f tokens/s in all, %d sequences (%.1fx one)\n", dec_n[w], widths[w],
                   dec_n[w] / dec1);
        printf("ttft       %8.1f ms with a new image and %d tokens, %.1f ms with a cached image (%.1f%%)\n",
               ttft_new * 1e3, N64, ttft_image * 1e3, 100 * ttft_image / ttft_new);
        printf("ttft       %8.1f ms for a %d-token follow-up on a cached image and prefix (%.1f%%)\n",
               ttft_cached * 1e3, NQ, 100 * ttft_cached / ttft_new);
        printf("memory     peak RSS %.0f MB\n", rss_mb);
    }
done:
    of3b_free(&b);
    if (rc < 0) fprintf(stderr, "flamingo: bench: %s\n", err.msg);
    return rc < 0 ? 1 : 0;
}

/*
 * --quality: the language side at OpenFlamingo-3B's shape, random weights,
 * stored as `type` and as f32 (the same values before rounding), on the same
 * 4 prompts of 512 tokens with 4 images each (random latents): how often the
 * two pick the same next token, and how far their logits are apart.  A third
 * copy, f32 holding the values `type` holds (synth_lm_rounded), separates
 * what the storage costs from what the kernels add: on random weights the
 * top two logits are often close, so rounding the weights alone moves some
 * of those positions whatever kernel reads them.
 */
static int bench_quality(int json, enum wmat_type type) {
    enum { NS = 4, NT = 512, NIMG = 4 };
    enum { NM = 3 }; /* f32 (the reference), type, f32 holding type's values */
    /* rows per forward pass: 16 (a follow-up question, a batch of decoded
     * sequences) takes the kernels decode takes (q8_0: the int16 or int8
     * rows, mat_q8_act; BF16: the bf16 dot product where the CPU has it),
     * not the f32 panels of long prompts */
    enum { QROWS = 16 };
    struct fl_err err = {0};
    struct fl_config cfg;
    const struct fl_config *c = &cfg;
    float *ref = NULL, *cur = NULL, *lat = NULL;
    static int ids[NT];
    long agree[NM] = {0}, total = NS * NT;
    double worst[NM] = {0};
    int rc;
    cfg_parse("{\"vision\": {}, \"lm\": {}}", &cfg, &err);
    const int V = c->lm.vocab_size;
    const size_t lat1 = (size_t)c->perceiver.num_latents * c->vision.width;
    /* the reference's logits of every prompt, then one prompt's of the others:
     * one model in memory at a time (three f32-sized ones would not fit in 24 GB) */
    lat = malloc(NIMG * lat1 * sizeof *lat);
    ref = malloc((size_t)NS * NT * V * sizeof *ref);
    cur = malloc((size_t)NT * V * sizeof *cur);
    if (!lat || !ref || !cur) {
        rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
        goto done;
    }
    uint64_t st = 12345;
    for (size_t i = 0; i < NIMG * lat1; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        lat[i] = (float)(st >> 40) / 8388608.0f - 1.0f;
    }
    for (int k = 0; k < NM; k++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        struct st_file *f = NULL;
        struct lm_model *lm = NULL;
        struct lm_media *md = NULL;
        struct lm_scratch *sc = NULL;
        struct lm_seq *seq = NULL;
        struct fl_config lc;
        if (!json)
            fprintf(stderr, "bench: the language side in %s...\n",
                    k == 0   ? "f32"
                    : k == 1 ? wmat_type_name(type)
                             : "f32 holding those values");
        if ((rc = synth_lm_rounded(c, 3, k == 1 ? type : WMAT_F32, k == 2 ? type : WMAT_F32, &buf, &len,
                                   &err)) < 0 ||
            (rc = st_open_memory(buf, len, "synthetic-openflamingo-3b", &f, &err)) < 0 ||
            (rc = cfg_parse(st_metadata(f, "config"), &lc, &err)) < 0 ||
            (rc = lm_load(f, &lc, &lm, &err)) < 0 || (rc = lm_media_init(lm, NIMG, &md, &err)) < 0 ||
            (rc = lm_scratch_init(lm, QROWS, NT, &sc, &err)) < 0 ||
            (rc = lm_seq_init(lm, NT, &seq, &err)) < 0)
            goto next;
        for (int i = 0; i < NIMG && rc >= 0; i++)
            rc = lm_media_add(lm, md, lat + i * lat1, &err);
        for (int sq = 0; sq < NS && rc >= 0; sq++) {
            for (int i = 0; i < NT; i++)
                ids[i] = 1 + (int)(((long)i + (long)NT * sq) * 7919 % (V - 1000));
            for (int i = 0; i < NIMG; i++)
                ids[i * (NT / NIMG)] = c->tokens.media;
            float *out = k == 0 ? ref + (size_t)sq * NT * V : cur;
            lm_seq_reset(seq);
            if ((rc = lm_forward(lm, seq, md, sc, ids, NT, out, 1, &err)) < 0) break;
            for (int t = 0; t < NT && k > 0; t++) {
                const float *a = ref + ((size_t)sq * NT + t) * V, *b = cur + (size_t)t * V;
                int ia = 0, ib = 0;
                float lo = a[0], hi = a[0], d = 0;
                for (int j = 0; j < V; j++) {
                    ia = a[j] > a[ia] ? j : ia;
                    ib = b[j] > b[ib] ? j : ib;
                    lo = a[j] < lo ? a[j] : lo;
                    hi = a[j] > hi ? a[j] : hi;
                    d = fabsf(a[j] - b[j]) > d ? fabsf(a[j] - b[j]) : d;
                }
                agree[k] += ia == ib;
                worst[k] = d / (hi - lo) > worst[k] ? d / (hi - lo) : worst[k];
            }
            if (!json) fprintf(stderr, "bench: %d of %d prompts\n", sq + 1, NS);
        }
    next:
        lm_seq_free(seq);
        lm_scratch_free(sc);
        lm_media_free(md);
        lm_free(lm);
        st_close(f);
        free(buf);
        if (rc < 0) goto done;
    }
    if (json)
        printf("{\"model\": \"openflamingo-3b\", \"dtype\": \"%s\", \"q8_act\": \"%s\", \"positions\": %ld, "
               "\"top1_agreement\": %.4f, \"max_logit_diff_of_range\": %.2e, "
               "\"storage_top1_agreement\": %.4f, \"storage_max_logit_diff_of_range\": %.2e}\n",
               wmat_type_name(type), mat_q8_act(), total, (double)agree[1] / total, worst[1],
               (double)agree[2] / total, worst[2]);
    else {
        printf(
            "quality    %s (q8_0 rows %s) against f32: the same next token at %ld of %ld positions (%.2f%%); "
            "max |logit difference| %.2e of the logit range\n",
            wmat_type_name(type), mat_q8_act(), agree[1], total, 100.0 * agree[1] / total, worst[1]);
        printf("quality    f32 kernels on the values %s stores: %ld of %ld (%.2f%%), max %.2e of the range "
               "(the storage's own cost)\n",
               wmat_type_name(type), agree[2], total, 100.0 * agree[2] / total, worst[2]);
    }
done:
    free(ref);
    free(cur);
    free(lat);
    if (rc < 0) fprintf(stderr, "flamingo: bench: %s\n", err.msg);
    return rc < 0 ? 1 : 0;
}

/*
 * gemm: the language model's two MLP products at OpenFlamingo-3B's shape
 * (8192 x 2048 and 2048 x 8192), stored as `type`, against 1 to 512 rows
 * of x (512: a prefill, or two images' tokens in the vision tower): ms per product (best of 5, after a
 * warm-up), GFLOP/s, the stored weights' read rate against the measured bandwidth, and the kernel mat_gemm_w
 * picks.  Eight copies of each matrix are cycled, so that the weights come from memory as in decode.  What
 * the thresholds in core/mat.c were set from; rerun it to set them for another machine.
 */
static int bench_gemm(int json, enum wmat_type type) {
    enum { COPIES = 8, MAX_M = 512 };
    static const int shapes[2][2] = {{8192, 2048}, {2048, 8192}};
    static const int ms[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512};
    const int n_ms = (int)(sizeof ms / sizeof *ms);
    const double bw = mem_bandwidth(mat_threads());
    int rc = 0;
    if (json)
        printf("{\"model\": \"gemm\", \"dtype\": \"%s\", \"threads\": %d, \"kernels\": \"%s\", \"q8_act\": "
               "\"%s\", "
               "\"mem_bw_gbs\": %.1f, "
               "\"results\": [",
               wmat_type_name(type), mat_threads(), mat_kernels(), mat_q8_act(), bw);
    else
        printf("machine    memory read %.1f GB/s (%d threads; kernels %s, q8_0 rows %s); weights %s, %d "
               "copies\n",
               bw, mat_threads(), mat_kernels(), mat_q8_act(), wmat_type_name(type), COPIES);
    for (int s = 0; s < 2 && rc == 0; s++) {
        const int n = shapes[s][0], k = shapes[s][1];
        struct wmat w[COPIES] = {{0}};
        float *wf = malloc((size_t)n * k * sizeof *wf), *x = malloc((size_t)MAX_M * k * sizeof *x);
        float *y = malloc((size_t)MAX_M * n * sizeof *y);
        int made = 0;
        if (wf && x && y) {
            uint64_t r = 12345;
            for (size_t i = 0; i < (size_t)n * k; i++) {
                r = r * 6364136223846793005ull + 1442695040888963407ull;
                wf[i] = (float)((r >> 40) & 0xffff) / 32768.0f - 1.0f;
            }
            for (size_t i = 0; i < (size_t)MAX_M * k; i++)
                x[i] = (float)(i % 13) / 13.0f - 0.5f;
            while (made < COPIES && wmat_convert(wf, n, k, type, &w[made]) == 0)
                made++;
        }
        if (made < COPIES) {
            fprintf(stderr, "flamingo: bench: out of memory\n");
            rc = -1;
        }
        for (int mi = 0; mi < n_ms && rc == 0; mi++) {
            const int m = ms[mi];
            double best = 1e30;
            for (int rep = 0; rep <= 5; rep++) { /* the first pass is the warm-up */
                double t0 = fl_now();
                for (int c = 0; c < COPIES; c++)
                    mat_gemm_w(m, 1.0f, x, k, &w[c], 0, y, n);
                double dt = (fl_now() - t0) / COPIES;
                if (rep > 0 && dt < best) best = dt;
            }
            const double gflops = 2.0 * m * n * k / best * 1e-9,
                         gbs = (double)wmat_bytes(&w[0]) / best * 1e-9;
            if (json)
                printf("%s{\"n\": %d, \"k\": %d, \"m\": %d, \"ms\": %.3f, \"gflops\": %.1f, \"weights_gbs\": "
                       "%.2f, "
                       "\"kernel\": \"%s\"}",
                       s || mi ? ", " : "", n, k, m, best * 1e3, gflops, gbs, mat_gemm_w_kernel(m, &w[0]));
            else
                printf(
                    "%5d x %-5d %3d rows %8.3f ms %7.1f GFLOP/s %6.2f GB/s of weights (%3.0f%% of the read "
                    "rate)  %s\n",
                    n, k, m, best * 1e3, gflops, gbs, 100 * gbs / bw, mat_gemm_w_kernel(m, &w[0]));
        }
        for (int c = 0; c < made; c++)
            wmat_free_owned(&w[c]);
        free(wf);
        free(x);
        free(y);
    }
    if (json && rc == 0) printf("]}\n");
    return rc < 0 ? 1 : 0;
}

int bench_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"synthetic", required_argument, 0, 's'}, {"threads", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {"dtype", required_argument, 0, 'd'},    {"quality", no_argument, 0, 'q'},
        {0, 0, 0, 0},
    };
    const char *synthetic = NULL, *dtype = "f32";
    enum wmat_type type = WMAT_F32;
    int json = 0, quality = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:t:d:jhq", opts, NULL)) != -1) {
        switch (c) {
        case 's': synthetic = optarg; break;
        case 't': {
            long n;
            if (args_int(optarg, 1, 1024, &n) < 0) {
                fprintf(stderr, "flamingo: bench: --threads must be an integer in [1, 1024]\n");
                return 2;
            }
            mat_init((int)n);
            break;
        }
        case 'j': json = 1; break;
        case 'q': quality = 1; break;
        case 'd': dtype = optarg; break;
        case 'h':
            printf("usage: flamingo bench --synthetic vit-l-14|openflamingo-3b|gemm [--dtype f32|bf16|q8_0] "
                   "[-t THREADS] "
                   "[--json]\n       flamingo bench --synthetic openflamingo-3b --dtype bf16|q8_0 --quality "
                   "[--json]\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flamingo: bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!synthetic) {
        fprintf(stderr, "flamingo: bench: --synthetic vit-l-14 or openflamingo-3b is required\n");
        return 2;
    }
    if (!strcmp(dtype, "bf16")) type = WMAT_BF16;
    else if (!strcmp(dtype, "q8_0")) type = WMAT_Q8_0;
    else if (strcmp(dtype, "f32") != 0) {
        fprintf(stderr, "flamingo: bench: --dtype must be f32, bf16 or q8_0, not '%s'\n", dtype);
        return 2;
    }
    if (quality) {
        if (strcmp(synthetic, "openflamingo-3b") != 0 || type == WMAT_F32) {
            fprintf(stderr, "flamingo: bench: --quality compares --dtype bf16 or q8_0 with f32 on openflamingo-3b\n");
            return 2;
        }
        return bench_quality(json, type);
    }
    if (!strcmp(synthetic, "openflamingo-3b")) return bench_of3b(json, type);
    if (!strcmp(synthetic, "gemm")) return bench_gemm(json, type);
    if (strcmp(synthetic, "vit-l-14") != 0) {
        fprintf(stderr,
                "flamingo: bench: unknown synthetic model '%s' (known: vit-l-14, openflamingo-3b, gemm)\n",
                synthetic);
        return 2;
    }
    return bench_vit(json, type);
}
