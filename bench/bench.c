/*
 * bench.c - `flamingo bench`: performance figures next to the machine's own
 * limit, measured in the same run (these machines are shared and noisy, so a
 * number means something only as a ratio to a limit measured alongside it).
 *
 *   flamingo bench --synthetic vit-l-14 [-t THREADS] [--json]
 *   flamingo bench --synthetic openflamingo-3b [-t THREADS] [--json]
 *
 * Limit: OpenBLAS sgemm GFLOP/s on the shape of the tower's MLP GEMM (8
 * images x 257 tokens, 1024 -> 4096).  Figure: CLIP ViT-L/14 encode time per
 * image at batch 1 and 8 with random weights, and its FLOP rate
 * (clip_flops_per_image: about 162 GFLOP per image) as a fraction of the
 * sgemm rate.  The machine is shared, so the sgemm rate is measured between
 * the encode runs too and every figure is a best of several runs: the ratio
 * compares best with best, taken minutes apart at most.
 *
 * openflamingo-3b: the language side at OpenFlamingo-3B's shape (MPT-1B with
 * a cross-attention block before each of its 24 layers, 2.2 B parameters,
 * float32) with random weights and one image's random latents.  Prefill of a
 * 1-image 64-token prompt (FLOP rate against sgemm), then single-sequence
 * decode (bytes of weights read per token x tokens/s against the measured
 * memory read bandwidth).
 */
#include "bench.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/args.h"
#include "../core/clock.h"
#include "../core/mat.h"
#include "../core/pool.h"
#include "../model/lm.h"
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

static int bench_vit(int json) {
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
    if ((rc = synth_vision(&v, 1, &buf, &len, &err)) < 0 ||
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
        printf("{\"model\": \"vit-l-14\", \"threads\": %d, \"kernels\": \"%s\", \"sgemm_gflops\": %.1f, "
               "\"gflop_per_image\": %.1f, \"vision_ms_b1\": %.1f, \"vision_ms_b8\": %.1f, "
               "\"vision_gflops_b1\": %.1f, \"vision_gflops_b8\": %.1f, "
               "\"vision_ratio_b1\": %.3f, \"vision_ratio_b8\": %.3f}\n",
               mat_threads(), mat_kernels(), gemm, flops * 1e-9, t1 * 1e3, t8 * 1e3, g1, g8, g1 / gemm, g8 / gemm);
    } else {
        printf("machine    sgemm %.1f GFLOP/s (OpenBLAS, %d threads, %dx%dx%d; kernels %s)\n", gemm,
               mat_threads(), gm, gn, gk, mat_kernels());
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

static int bench_of3b(int json) {
    struct fl_err err = {0};
    struct fl_config cfg;
    cfg_parse("{\"vision\": {}, \"lm\": {}}", &cfg, &err); /* all defaults: OpenFlamingo-3B */
    uint8_t *buf = NULL;
    size_t len = 0;
    struct st_file *f = NULL;
    struct lm_model *lm = NULL;
    struct lm_media *media = NULL;
    struct lm_seq *seq = NULL;
    struct lm_scratch *sc = NULL;
    float *latents = NULL, *logits = NULL;
    const int n_prompt = 64, n_decode = 16;
    int rc;

    if (!json) fprintf(stderr, "bench: measuring sgemm and memory bandwidth...\n");
    double gemm = sgemm_gflops(8 * 257, 4096, 1024, 5);
    double bw = mem_bandwidth(mat_threads());
    if (!json) fprintf(stderr, "bench: building the OpenFlamingo-3B language side with random weights (8.8 GB)...\n");
    if ((rc = synth_lm(&cfg, 3, &buf, &len, &err)) < 0 ||
        (rc = st_open_memory(buf, len, "synthetic-openflamingo-3b", &f, &err)) < 0 ||
        (rc = cfg_parse(st_metadata(f, "config"), &cfg, &err)) < 0 || (rc = lm_load(f, &cfg, &lm, &err)) < 0 ||
        (rc = lm_media_init(lm, 1, &media, &err)) < 0 || (rc = lm_seq_init(lm, n_prompt + n_decode, &seq, &err)) < 0 ||
        (rc = lm_scratch_init(lm, n_prompt, n_prompt + n_decode, &sc, &err)) < 0)
        goto done;
    const int L = cfg.perceiver.num_latents, Wv = cfg.vision.width, V = cfg.lm.vocab_size;
    latents = malloc((size_t)L * Wv * sizeof *latents);
    logits = malloc((size_t)V * sizeof *logits);
    if (!latents || !logits) {
        rc = fl_err_set(&err, FL_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < L * Wv; i++) latents[i] = (float)((i * 7919) % 2001) / 1000.0f - 1.0f;
    if ((rc = lm_media_add(lm, media, latents, &err)) < 0) goto done;
    int ids[64];
    ids[0] = cfg.tokens.media;
    for (int i = 1; i < n_prompt; i++) ids[i] = (i * 7919) % 50000;
    if (!json) fprintf(stderr, "bench: prefill and decode...\n");
    /* warm-up pass: page the weights in */
    if ((rc = lm_forward(lm, seq, media, sc, ids, n_prompt, logits, 0, &err)) < 0) goto done;
    double prefill = 1e30, decode = 0;
    for (int r = 0; r < 2; r++) {
        lm_seq_reset(seq);
        double t0 = fl_now();
        if ((rc = lm_forward(lm, seq, media, sc, ids, n_prompt, logits, 0, &err)) < 0) goto done;
        double dt = fl_now() - t0;
        if (dt < prefill) prefill = dt;
    }
    double t0 = fl_now();
    for (int i = 0; i < n_decode; i++) {
        int next = (i * 31) % 50000;
        if ((rc = lm_forward(lm, seq, media, sc, &next, 1, logits, 0, &err)) < 0) goto done;
    }
    decode = (fl_now() - t0) / n_decode;
    gemm = max2(gemm, sgemm_gflops(8 * 257, 4096, 1024, 3));
    /* every weight but the embedding rows is read once per decoded token */
    double bytes = (double)len - (double)V * cfg.lm.d_model * 4 * 0; /* tied: wte is read for the logits */
    double params = bytes / 4.0;
    double prefill_tps = n_prompt / prefill, decode_tps = 1.0 / decode;
    double prefill_gflops = 2.0 * params * n_prompt / prefill * 1e-9;
    double decode_ratio = bytes * decode_tps * 1e-9 / bw;
    if (json) {
        printf("{\"model\": \"openflamingo-3b\", \"dtype\": \"f32\", \"threads\": %d, \"kernels\": \"%s\", "
               "\"sgemm_gflops\": %.1f, \"mem_bw_gbs\": %.1f, \"lm_params\": %.0f, \"prefill_tps_64\": %.2f, "
               "\"prefill_gflops_64\": %.1f, \"prefill_ratio_64\": %.3f, \"decode_tps_1\": %.3f, "
               "\"decode_ratio_1\": %.3f}\n",
               mat_threads(), mat_kernels(), gemm, bw, params, prefill_tps, prefill_gflops, prefill_gflops / gemm,
               decode_tps, decode_ratio);
    } else {
        printf("machine    sgemm %.1f GFLOP/s, memory read %.1f GB/s (%d threads; kernels %s)\n", gemm, bw,
               mat_threads(), mat_kernels());
        printf("model      OpenFlamingo-3B language side: %.2f B parameters, %.1f GB float32\n", params * 1e-9,
               bytes * 1e-9);
        printf("prefill    %6.2f tokens/s  (1 image, %d tokens: %.1f GFLOP/s, %4.1f%% of sgemm)\n", prefill_tps,
               n_prompt, prefill_gflops, 100 * prefill_gflops / gemm);
        printf("decode     %6.3f tokens/s  (1 sequence: %.1f GB/s of weights, %4.1f%% of the read bandwidth)\n",
               decode_tps, bytes * decode_tps * 1e-9, 100 * decode_ratio);
    }
done:
    free(latents);
    free(logits);
    lm_scratch_free(sc);
    lm_seq_free(seq);
    lm_media_free(media);
    lm_free(lm);
    st_close(f);
    free(buf);
    if (rc < 0) fprintf(stderr, "flamingo: bench: %s\n", err.msg);
    return rc < 0 ? 1 : 0;
}

int bench_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"synthetic", required_argument, 0, 's'}, {"threads", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *synthetic = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:t:jh", opts, NULL)) != -1) {
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
        case 'h':
            printf("usage: flamingo bench --synthetic vit-l-14|openflamingo-3b [-t THREADS] [--json]\n");
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
    if (!strcmp(synthetic, "openflamingo-3b")) return bench_of3b(json);
    if (strcmp(synthetic, "vit-l-14") != 0) {
        fprintf(stderr, "flamingo: bench: unknown synthetic model '%s' (known: vit-l-14, openflamingo-3b)\n",
                synthetic);
        return 2;
    }
    return bench_vit(json);
}
