/*
 * test_engine.c - the server's engine (continuous batching) on the golden
 * models: every case of a model submitted at once, so that sequences with
 * different images and prompt lengths start, decode together and finish at
 * different steps; each result must equal the reference's greedy or 3-beam
 * generation (tests/fixtures/of_*.io.safetensors).  Also: the second and
 * third rounds find every image in the image cache and all but the last
 * prompt token in the prefix cache (beam search starting from a greedy
 * run's keys and values), and still equal the reference; another image
 * under the same tokens reuses nothing past its <image>; several choices; cancelling a job frees
 * it; a full queue refuses; stopping drains.
 */
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "../core/mat.h"
#include "../server/engine.h"
#include "test.h"

static const struct st_tensor *find(const struct st_file *f, int k, const char *what) {
    char name[64];
    snprintf(name, sizeof name, "case%d.%s", k, what);
    return st_find(f, name);
}

static struct eng_job *make_job(const struct st_file *io, int k, int S, int max_new, int beams) {
    const struct st_tensor *tid = find(io, k, "ids"), *tpx = find(io, k, "pixels");
    if (!tid || !tpx) return NULL;
    const int n_img = (int)tpx->shape[0];
    struct eng_job *j = eng_job_new((int)tid->n_elems, n_img, 1);
    memcpy(j->prompt, tid->data, (size_t)tid->n_elems * sizeof(int));
    const size_t px = (size_t)3 * S * S;
    for (int i = 0; i < n_img; i++) {
        j->images[i].pixels = malloc(px * sizeof(float));
        memcpy(j->images[i].pixels, st_f32_view(tpx) + i * px, px * sizeof(float));
        ic_hash(j->images[i].pixels, px * sizeof(float), j->images[i].key);
    }
    j->gp.max_new_tokens = max_new;
    j->gp.num_beams = beams;
    return j;
}

/* (the runner's timeout catches a job that never ends) */
static void wait_done(struct eng_job *j) { eng_job_wait_over(j); }

static int same(const struct st_tensor *want, const struct eng_choice *c) {
    if (!want || want->n_elems != c->n_toks) return 0;
    for (int i = 0; i < c->n_toks; i++)
        if (((const int *)want->data)[i] != c->toks[i].id) return 0;
    return 1;
}

static void check_model(const char *name) {
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
    cJSON *cases = cJSON_Parse(st_metadata(io, "cases"));
    const int n_cases = cJSON_GetArraySize(cases), S = m->cfg.vision.image_size;
    struct eng_config cfg;
    eng_config_defaults(&cfg);
    cfg.max_seqs = 12;
    cfg.image_batch = 3; /* several image steps interleave with decode steps */
    cfg.step_rows = 24;  /* prompts run in chunks beside the decoding sequences */
    struct eng *e = NULL;
    CHECK_INT(eng_start(m, &cfg, &e, &err), 0);
    for (int round = 0; round < 3 && e; round++) {
        const char *mode = round == 1 ? "beam3" : "greedy";
        struct eng_job *jobs[16] = {0};
        for (int k = 0; k < n_cases && k < 16; k++) {
            int max_new =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cases, k), "max_new_tokens")->valueint;
            jobs[k] = make_job(io, k, S, max_new, round == 1 ? 3 : 1);
            CHECK_INT(eng_submit(e, jobs[k], &err), 0);
        }
        int ok = 0, cached = 0, images = 0, reused = 0, reusable = 0;
        for (int k = 0; k < n_cases && k < 16; k++) {
            wait_done(jobs[k]);
            CHECK_INT(jobs[k]->state, ENG_DONE);
            int s = same(find(io, k, mode), &jobs[k]->choices[0]);
            if (!s) fprintf(stderr, "%s case %d %s differs (%s)\n", name, k, mode, jobs[k]->error);
            ok += s;
            cached += jobs[k]->cached_images;
            images += jobs[k]->n_images;
            reused += jobs[k]->cached_tokens;
            reusable += jobs[k]->n_prompt - 1;
            eng_job_release(jobs[k]);
        }
        fprintf(stderr,
                "%s %s: %d/%d batched generations equal the reference; %d of %d images from the cache; "
                "%d of %d prompt positions from the prefix cache\n",
                name, mode, ok, n_cases, cached, images, reused, reusable);
        CHECK_INT(ok, n_cases);
        if (round > 0) CHECK_INT(cached, images);   /* the later rounds encode nothing */
        if (round > 0) CHECK_INT(reused, reusable); /* ... and run only the last prompt token */
    }
    /* case 0's tokens with another picture: nothing after its first <image> comes from the cache */
    struct eng_job *other = make_job(io, 0, S, 4, 1);
    if (other && other->n_images) {
        other->images[0].pixels[0] += 0.5f;
        ic_hash(other->images[0].pixels, (size_t)3 * S * S * sizeof(float), other->images[0].key);
        int first = 0;
        while (first < other->n_prompt && other->prompt[first] != m->cfg.tokens.media)
            first++;
        CHECK_INT(eng_submit(e, other, &err), 0);
        wait_done(other);
        CHECK_INT(other->state, ENG_DONE);
        CHECK(other->cached_tokens <= first);
    }
    eng_job_release(other);
    /* two sampled choices of one request, and a cancelled job */
    struct eng_job *two = make_job(io, 1, S, 8, 1);
    eng_job_release(two);
    two = eng_job_new(3, 0, 2);
    int text_ids[3] = {5, 6, 7};
    memcpy(two->prompt, text_ids, sizeof text_ids);
    two->gp.max_new_tokens = 6;
    two->gp.smp.temperature = 1.0f;
    two->gp.smp.seed = 3;
    struct eng_job *gone = make_job(io, 2, S, 40, 1);
    CHECK_INT(eng_submit(e, two, &err), 0);
    /* cancelled before the engine sees it (a client gone while its request
     * waits): cancelling just after submitting raced with a job that can
     * end at its first token, and under ThreadSanitizer it sometimes lost;
     * clients that leave mid-stream are test_server.py's */
    eng_job_cancel(gone);
    CHECK_INT(eng_submit(e, gone, &err), 0);
    wait_done(two);
    wait_done(gone);
    CHECK_INT(two->state, ENG_DONE);
    CHECK(two->choices[0].done && two->choices[1].done);
    CHECK(two->choices[0].n_toks >= 1 && two->choices[1].n_toks >= 1);
    CHECK_INT(gone->state, ENG_FAILED);
    CHECK_STR(gone->error, "cancelled");
    eng_job_release(two);
    eng_job_release(gone);
    struct eng_stats st;
    eng_stats(e, &st);
    CHECK_INT(st.active_seqs, 0);
    CHECK_INT(st.queued, 0);
    CHECK(st.cache.hits > 0 && st.generated_tokens > 0);
    CHECK(st.prefix.hits > 0 && st.prefix.entries > 0 && st.cached_tokens > 0);
    eng_stop(e, 1000);
    /* a full queue, a job too wide for the server, and stopping with work left */
    cfg.max_seqs = 1;
    cfg.queue_len = 2;
    CHECK_INT(eng_start(m, &cfg, &e, &err), 0);
    struct eng_job *q[4];
    int refused = 0;
    for (int i = 0; i < 4; i++) {
        q[i] = make_job(io, 0, S, 16, 1);
        if (eng_submit(e, q[i], &err) == FL_ELIMIT) refused++;
    }
    CHECK(refused >= 1);
    struct eng_job *wide = make_job(io, 0, S, 4, 3);
    CHECK_INT(eng_submit(e, wide, &err), FL_EINVAL);
    CHECK(strstr(err.msg, "at most 1 at once") != NULL);
    eng_job_release(wide);
    eng_stop(e, 0); /* no drain: what is in flight fails */
    int failed_or_done = 0;
    for (int i = 0; i < 4; i++) {
        failed_or_done += q[i]->state == ENG_DONE || (q[i]->state == ENG_FAILED && q[i]->error[0]) ||
                          q[i]->state == ENG_QUEUED;
        eng_job_release(q[i]);
    }
    CHECK_INT(failed_or_done, 4);
    cJSON_Delete(cases);
    fm_close(m);
    st_close(io);
}

int main(void) {
    mat_init(2);
    check_model("of_mosaic");
    check_model("of_neox");
    check_model("of_mpt");
    check_model("of_neox4");
    mat_shutdown();
    return TEST_END();
}
