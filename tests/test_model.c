/*
 * test_model.c - the whole Flamingo model against the independent PyTorch
 * reference (tests/reference/flamingo_ref.py, fixtures by `make golden`):
 * four tiny models (MosaicGPT with q/k LayerNorm and cross-attention in
 * every layer, MPT-7B-style every 2nd, GPT-NeoX every 2nd, GPT-NeoX with
 * partial rotary and parallel residual every 4th), each with prompts of one,
 * two and three images, text before the first image and no image at all.
 *
 *   logits at every position: max |diff| <= 1e-4 x (max - min of the ref)
 *   the KV-cached decode gives the logits of a full recomputation
 *   greedy and 3-beam (length_penalty 1 and 0) generations: identical ids
 *   batched forward passes over several sequences equal each run alone
 *   the C tokenizer gives the reference's ids for every prompt
 */
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "../core/mat.h"
#include "../model/flamingo.h"
#include "../model/generate.h"
#include "test.h"

static const struct st_tensor *find(const struct st_file *f, int k, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "case%d.%s", k, what);
    return st_find(f, name);
}

static double logit_error(const float *got, const float *want, size_t n) {
    float lo = want[0], hi = want[0];
    double md = 0;
    for (size_t i = 0; i < n; i++) {
        lo = fminf(lo, want[i]), hi = fmaxf(hi, want[i]);
        double d = fabs((double)got[i] - want[i]);
        md = isnan(d) ? INFINITY : fmax(md, d);
    }
    return md / (hi - lo);
}

static int same_ids(const struct st_tensor *t, const int *ids, int n) {
    if (!t || t->n_elems != n) return 0;
    return n == 0 || memcmp(t->data, ids, (size_t)n * sizeof(int)) == 0;
}

static void print_ids(const char *label, const int *ids, int n) {
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

static void check_model(const char *name) {
    char path[128], io_path[128];
    snprintf(path, sizeof path, "tests/fixtures/%s.safetensors", name);
    snprintf(io_path, sizeof io_path, "tests/fixtures/%s.io.safetensors", name);
    struct fl_err err = {0};
    struct fm_model *m = NULL;
    struct st_file *io = NULL;
    CHECK_INT(fm_open(path, &m, &err), 0);
    if (!m) fprintf(stderr, "%s\n", err.msg);
    CHECK_INT(st_open(io_path, &io, &err), 0);
    if (!m || !io) {
        fm_close(m);
        st_close(io);
        return;
    }
    cJSON *cases = cJSON_Parse(st_metadata(io, "cases"));
    CHECK(cJSON_GetArraySize(cases) >= 6);
    const int V = m->cfg.lm.vocab_size, S = m->cfg.vision.image_size;
    struct fm_ctx *ctx = NULL;
    /* max_tokens 8: prompts go through the chunked path */
    CHECK_INT(fm_ctx_init(m, 4, 8, m->cfg.lm.max_seq_len, &ctx, &err), 0);
    int k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const struct st_tensor *tid = find(io, k, "ids"), *tpx = find(io, k, "pixels"),
                               *tlg = find(io, k, "logits");
        CHECK(tid && tpx && tlg);
        if (!tid || !tpx || !tlg) break;
        const int *ids = tid->data, T = (int)tid->n_elems, n_img = (int)tpx->shape[0];
        CHECK_INT(tlg->shape[0], T);
        CHECK_INT(tlg->shape[1], V);
        /* the tokenizer */
        const char *prompt = cJSON_GetObjectItemCaseSensitive(c, "prompt")->valuestring;
        int tok_ids[256], n_tok = 0;
        CHECK_INT(tok_encode(m->tok, prompt, strlen(prompt), tok_ids, 256, &n_tok, &err), 0);
        CHECK(n_tok == T && memcmp(tok_ids, ids, (size_t)T * sizeof(int)) == 0);
        /* all logits in one pass */
        lm_media_clear(ctx->media);
        CHECK_INT(fm_add_images(ctx, st_f32_view(tpx), n_img, &err), 0);
        CHECK_INT(n_img * 3 * S * S, (int)tpx->n_elems);
        struct lm_seq *seq = NULL;
        CHECK_INT(lm_seq_init(m->lm, 0, &seq, &err), 0);
        float *logits = malloc((size_t)T * V * sizeof *logits);
        CHECK_INT(lm_forward(m->lm, seq, ctx->media, ctx->scratch, ids, T, logits, 1, &err), 0);
        double e = logit_error(logits, st_f32_view(tlg), (size_t)T * V);
        fprintf(stderr, "%s case %d (%d tokens, %d images): logits error %.2g of the range\n", name, k, T,
                n_img, e);
        CHECK(e <= 1e-4);
        /* the KV cache: the first T-3 tokens at once, then one at a time */
        if (T > 4) {
            float *step = malloc((size_t)T * V * sizeof *step);
            lm_seq_reset(seq);
            CHECK_INT(lm_forward(m->lm, seq, ctx->media, ctx->scratch, ids, T - 3, step, 1, &err), 0);
            for (int t = T - 3; t < T; t++)
                CHECK_INT(lm_forward(m->lm, seq, ctx->media, ctx->scratch, ids + t, 1, step + (size_t)t * V,
                                     0, &err),
                          0);
            double ek = logit_error(step, logits, (size_t)T * V);
            CHECK(ek <= 1e-5);
            free(step);
        }
        lm_seq_free(seq);
        free(logits);
        /* generation */
        const int max_new = cJSON_GetObjectItemCaseSensitive(c, "max_new_tokens")->valueint;
        const struct {
            const char *key;
            int beams;
            float lp;
        } modes[] = {{"greedy", 1, 1.0f}, {"beam3", 3, 1.0f}, {"beam3_lp0", 3, 0.0f}};
        for (int md = 0; md < 3; md++) {
            struct gen_params gp;
            gen_defaults(&gp);
            gp.max_new_tokens = max_new;
            gp.num_beams = modes[md].beams;
            gp.length_penalty = modes[md].lp;
            int out[64];
            struct gen_result res;
            CHECK_INT(gen_run(ctx, ids, T, &gp, NULL, NULL, out, 64, &res, &err), 0);
            const struct st_tensor *want = find(io, k, modes[md].key);
            int ok = same_ids(want, out, res.n_generated);
            if (!ok) {
                fprintf(stderr, "%s case %d %s differs (%s)\n", name, k, modes[md].key, err.msg);
                if (want) print_ids("want", want->data, (int)want->n_elems);
                print_ids("got ", out, res.n_generated);
            }
            CHECK(ok);
        }
        k++;
    }
    cJSON_Delete(cases);
    fm_ctx_free(ctx);
    fm_close(m);
    st_close(io);
}

struct collect {
    char text[4096];
    size_t len;
    int steps, cancel_after;
};

static int collect_cb(void *ctx, const struct gen_step *st) {
    struct collect *c = ctx;
    if (c->len + st->text_len < sizeof c->text) {
        memcpy(c->text + c->len, st->text, st->text_len);
        c->len += st->text_len;
    }
    c->steps++;
    return c->cancel_after && c->steps >= c->cancel_after;
}

/* Streaming, stop strings and cancelling, on a case with a long greedy text. */
static void check_streaming(void) {
    struct fl_err err = {0};
    struct fm_model *m = NULL;
    struct st_file *io = NULL;
    CHECK_INT(fm_open("tests/fixtures/of_neox.safetensors", &m, &err), 0);
    CHECK_INT(st_open("tests/fixtures/of_neox.io.safetensors", &io, &err), 0);
    if (!m || !io) {
        fm_close(m);
        st_close(io);
        return;
    }
    struct fm_ctx *ctx = NULL;
    CHECK_INT(fm_ctx_init(m, 2, 16, m->cfg.lm.max_seq_len, &ctx, &err), 0);
    const struct st_tensor *tid = find(io, 1, "ids"), *tpx = find(io, 1, "pixels");
    CHECK_INT(fm_add_images(ctx, st_f32_view(tpx), (int)tpx->shape[0], &err), 0);
    struct gen_params gp;
    gen_defaults(&gp);
    gp.max_new_tokens = 16;
    struct gen_result res;
    int ids[64];
    struct collect all = {0};
    CHECK_INT(gen_run(ctx, tid->data, (int)tid->n_elems, &gp, collect_cb, &all, ids, 64, &res, &err), 0);
    /* the streamed pieces add up to the decode of the ids */
    char whole[4096];
    size_t w = 0;
    struct tok_stream ts = {0};
    for (int i = 0; i < res.n_generated; i++)
        w += tok_decode_next(m->tok, &ts, ids[i], whole + w, sizeof whole - w);
    w += tok_decode_end(&ts, whole + w);
    CHECK(all.len == w && memcmp(all.text, whole, w) == 0);
    CHECK(res.n_generated == 16 && res.finish == GEN_FINISH_LENGTH);
    /* a stop string from the middle of that text: the output ends just before it */
    CHECK(all.len > 12);
    char stop[4];
    memcpy(stop, all.text + all.len / 2, 3);
    stop[3] = 0;
    const char *first = strstr(all.text, stop);
    gp.stop[0] = stop;
    gp.n_stop = 1;
    struct collect cut = {0};
    lm_media_clear(ctx->media);
    CHECK_INT(fm_add_images(ctx, st_f32_view(tpx), (int)tpx->shape[0], &err), 0);
    CHECK_INT(gen_run(ctx, tid->data, (int)tid->n_elems, &gp, collect_cb, &cut, NULL, 0, &res, &err), 0);
    CHECK(first && cut.len == (size_t)(first - all.text) && memcmp(cut.text, all.text, cut.len) == 0);
    CHECK_INT(res.finish, GEN_FINISH_STOP);
    CHECK(res.n_generated < 16);
    /* a callback that asks to stop after 3 tokens */
    gp.n_stop = 0;
    struct collect three = {.cancel_after = 3};
    lm_media_clear(ctx->media);
    CHECK_INT(fm_add_images(ctx, st_f32_view(tpx), (int)tpx->shape[0], &err), 0);
    CHECK_INT(gen_run(ctx, tid->data, (int)tid->n_elems, &gp, collect_cb, &three, NULL, 0, &res, &err), 0);
    CHECK(res.finish == GEN_FINISH_CANCEL && res.n_generated == 3);
    /* sampling with a seed is reproducible */
    gp.smp.temperature = 0.9f;
    gp.smp.seed = 5;
    int s1[64], s2[64];
    struct gen_result r1, r2;
    CHECK_INT(gen_run(ctx, tid->data, (int)tid->n_elems, &gp, NULL, NULL, s1, 64, &r1, &err), 0);
    CHECK_INT(gen_run(ctx, tid->data, (int)tid->n_elems, &gp, NULL, NULL, s2, 64, &r2, &err), 0);
    CHECK(r1.n_generated == r2.n_generated && memcmp(s1, s2, (size_t)r1.n_generated * sizeof(int)) == 0);
    fm_ctx_free(ctx);
    fm_close(m);
    st_close(io);
}

/* Batched forward passes (continuous batching): every case of a model as its
 * own sequence with its own images; prefills of several sequences in one
 * pass, a prefill riding along with other sequences' decode steps, then
 * decode steps of all sequences in one pass.  Each sequence's logits must be
 * those of running it alone (teacher-forced with its own greedy tokens):
 * within 1e-5 of the range, same argmax. */
/* The greedy choice: never <image> or <PAD>. */
static int argmax_allowed(const struct fm_model *m, const float *l) {
    int best = -1;
    for (int v = 0; v < m->cfg.lm.vocab_size; v++)
        if (v != m->cfg.tokens.media && v != m->cfg.tokens.pad && (best < 0 || l[v] > l[best])) best = v;
    return best;
}

#define BATCH_MAX   8
#define BATCH_STEPS 6
static void check_batch(const char *name) {
    char path[128], io_path[128];
    snprintf(path, sizeof path, "tests/fixtures/%s.safetensors", name);
    snprintf(io_path, sizeof io_path, "tests/fixtures/%s.io.safetensors", name);
    struct fl_err err = {0};
    struct fm_model *m = NULL;
    struct st_file *io = NULL;
    CHECK_INT(fm_open(path, &m, &err), 0);
    CHECK_INT(st_open(io_path, &io, &err), 0);
    if (!m || !io) {
        fm_close(m);
        st_close(io);
        return;
    }
    const int V = m->cfg.lm.vocab_size;
    struct fm_ctx *ctx[BATCH_MAX] = {0};
    struct lm_seq *alone[BATCH_MAX] = {0}, *batched[BATCH_MAX] = {0};
    const int *ids[BATCH_MAX];
    int T[BATCH_MAX], n = 0;
    /* the reference: each sequence alone, greedy, logits of every step */
    float *want = malloc((size_t)BATCH_MAX * (BATCH_STEPS + 1) * V * sizeof *want);
    int tok[BATCH_MAX][BATCH_STEPS + 1];
    for (; n < BATCH_MAX; n++) {
        const struct st_tensor *tid = find(io, n, "ids"), *tpx = find(io, n, "pixels");
        if (!tid || !tpx) break;
        ids[n] = tid->data, T[n] = (int)tid->n_elems;
        CHECK_INT(fm_ctx_init(m, 4, 64, m->cfg.lm.max_seq_len, &ctx[n], &err), 0);
        CHECK_INT(fm_add_images(ctx[n], st_f32_view(tpx), (int)tpx->shape[0], &err), 0);
        CHECK_INT(lm_seq_init(m->lm, 0, &alone[n], &err), 0);
        CHECK_INT(lm_seq_init(m->lm, 0, &batched[n], &err), 0);
        float *w = want + (size_t)n * (BATCH_STEPS + 1) * V;
        CHECK_INT(lm_forward(m->lm, alone[n], ctx[n]->media, ctx[n]->scratch, ids[n], T[n], w, 0, &err), 0);
        for (int st = 0; st <= BATCH_STEPS; st++) {
            const float *lw = w + (size_t)st * V;
            int best = argmax_allowed(m, lw);
            tok[n][st] = best;
            if (st < BATCH_STEPS)
                CHECK_INT(lm_forward(m->lm, alone[n], ctx[n]->media, ctx[n]->scratch, &best, 1,
                                     w + (size_t)(st + 1) * V, 0, &err),
                          0);
        }
    }
    CHECK(n >= 6);
    struct lm_scratch *sc = NULL;
    CHECK_INT(lm_scratch_init(m->lm, 256, m->cfg.lm.max_seq_len, &sc, &err), 0);
    float *got = malloc((size_t)BATCH_MAX * V * sizeof *got);
    int step[BATCH_MAX]; /* how many logits rows each sequence has produced */
    memset(step, 0, sizeof step);
    double worst = 0;
    int argmax_ok = 1;
    for (int round = 0; round <= BATCH_STEPS + 1; round++) {
        struct lm_group g[BATCH_MAX];
        int who[BATCH_MAX], k = 0;
        for (int i = 0; i < n; i++) {
            int late = i == n - 1; /* the last sequence joins one round late */
            if (round < late || step[i] > BATCH_STEPS) continue;
            if (step[i] == 0)
                g[k] = (struct lm_group){batched[i], ctx[i]->media, ids[i], T[i], LM_LOGITS_LAST};
            else
                g[k] = (struct lm_group){batched[i], ctx[i]->media, &tok[i][step[i] - 1], 1, LM_LOGITS_LAST};
            who[k++] = i;
        }
        if (!k) break;
        CHECK_INT(lm_forward_batch(m->lm, g, k, sc, got, &err), 0);
        for (int j = 0; j < k; j++) {
            const int i = who[j];
            const float *w = want + ((size_t)i * (BATCH_STEPS + 1) + step[i]) * V, *gl = got + (size_t)j * V;
            worst = fmax(worst, logit_error(gl, w, (size_t)V));
            argmax_ok &= argmax_allowed(m, gl) == tok[i][step[i]];
            step[i]++;
        }
    }
    fprintf(stderr, "%s: %d sequences batched, worst logits error %.2g of the range against each alone\n",
            name, n, worst);
    CHECK(worst <= 1e-5);
    CHECK(argmax_ok);
    for (int i = 0; i < n; i++)
        CHECK_INT(lm_seq_len(batched[i]), lm_seq_len(alone[i]));
    /* one sequence twice in a pass, and more rows than the scratch holds: refused, nothing run */
    struct lm_group twice[2] = {{batched[0], ctx[0]->media, &tok[0][0], 1, LM_LOGITS_NONE},
                                {batched[0], ctx[0]->media, &tok[0][0], 1, LM_LOGITS_NONE}};
    int len0 = lm_seq_len(batched[0]);
    CHECK_INT(lm_forward_batch(m->lm, twice, 2, sc, NULL, &err), FL_EINVAL);
    int many[300] = {0};
    struct lm_seq *fresh = NULL;
    CHECK_INT(lm_seq_init(m->lm, 0, &fresh, &err), 0);
    struct lm_group big[2] = {{batched[0], ctx[0]->media, &tok[0][0], 1, LM_LOGITS_NONE},
                              {fresh, NULL, many, 90, LM_LOGITS_NONE}};
    struct lm_scratch *small = NULL;
    CHECK_INT(lm_scratch_init(m->lm, 64, m->cfg.lm.max_seq_len, &small, &err), 0);
    CHECK_INT(lm_forward_batch(m->lm, big, 2, small, NULL, &err), FL_ELIMIT);
    CHECK_INT(lm_seq_len(batched[0]), len0);
    CHECK_INT(lm_seq_len(fresh), 0);
    lm_scratch_free(small);
    lm_seq_free(fresh);
    for (int i = 0; i < n; i++) {
        lm_seq_free(alone[i]);
        lm_seq_free(batched[i]);
        fm_ctx_free(ctx[i]);
    }
    lm_scratch_free(sc);
    free(want);
    free(got);
    fm_close(m);
    st_close(io);
}

/* Bad input to the model: clean errors, nothing run. */
static void check_errors(void) {
    struct fl_err err = {0};
    struct fm_model *m = NULL;
    CHECK(fm_open("tests/fixtures/clip_gelu.safetensors", &m, &err) < 0 && m == NULL);
    CHECK(strstr(err.msg, "not a Flamingo model") != NULL);
    CHECK_INT(fm_open("tests/fixtures/of_mosaic.safetensors", &m, &err), 0);
    if (!m) return;
    struct fm_ctx *ctx = NULL;
    CHECK_INT(fm_ctx_init(m, 2, 16, m->cfg.lm.max_seq_len, &ctx, &err), 0);
    struct gen_params gp;
    gen_defaults(&gp);
    struct gen_result res;
    const int media = m->cfg.tokens.media;
    int two_images[] = {media, 5, media, 6};
    CHECK_INT(gen_run(ctx, two_images, 4, &gp, NULL, NULL, NULL, 0, &res, &err), FL_EINVAL);
    CHECK(strstr(err.msg, "2 <image> markers but 0 images") != NULL);
    int long_prompt[200] = {0};
    gp.max_new_tokens = 10;
    CHECK_INT(gen_run(ctx, long_prompt, 90, &gp, NULL, NULL, NULL, 0, &res, &err), FL_ELIMIT);
    CHECK(strstr(err.msg, "exceed the context of 96") != NULL);
    gp.max_new_tokens = 0;
    CHECK_INT(gen_run(ctx, long_prompt, 5, &gp, NULL, NULL, NULL, 0, &res, &err), FL_EINVAL);
    CHECK(strstr(err.msg, "max_new_tokens") != NULL);
    struct lm_seq *seq = NULL;
    CHECK_INT(lm_seq_init(m->lm, 0, &seq, &err), 0);
    int bad_id[] = {100000};
    CHECK_INT(lm_forward(m->lm, seq, ctx->media, ctx->scratch, bad_id, 1, NULL, 0, &err), FL_EINVAL);
    CHECK_INT(lm_seq_len(seq), 0); /* nothing appended */
    lm_seq_free(seq);
    fm_ctx_free(ctx);
    fm_close(m);
}

int main(void) {
    mat_init(2);
    check_model("of_mosaic");
    check_model("of_mpt");
    check_model("of_neox");
    check_model("of_neox4");
    check_batch("of_mosaic");
    check_batch("of_mpt");
    check_batch("of_neox");
    check_batch("of_neox4");
    check_streaming();
    check_errors();
    mat_shutdown();
    return TEST_END();
}
