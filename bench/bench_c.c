/*
 * C-side benchmark: adamcore (stateless call and optimizer object) interleaved with
 *   - a roofline kernel: the same memory traffic as Adam (read p, g, m, v; write p, m, v: 28 B/element in float32)
 *     with trivial arithmetic, so it runs at the machine's memory (or cache) speed;
 *   - a C reference Adam kernel compiled by gcc -O3 -march=native -fno-math-errno (OpenMP for 2 threads).
 * Each contender runs a fixed number of repetitions per round (sized from one timed adamcore call to the budget),
 * rounds alternate between contenders, and the median round is reported with the min, quartiles, max and every
 * round's time (us_rounds=, so ratios can pair rounds up); a 20 ms pause before each contender lets the previous
 * one's spinning threads sleep, then one untimed call refills the caches (the idle VM's were found emptied), and
 * every other round runs the contenders in reverse order, so that none is always first. bytes_per_element is the
 * update's traffic (28 B fp32 Adam/AdamW, 36 AMSGrad), for
 * GB/s. For the many-tensor layouts the roofline runs over the same bytes as one flat buffer. Output: one line per
 * (algorithm, size, threads, contender) in a simple key=value form that bench/report.py turns into tables.
 * Mixed precision (issue 13): Adam over 16-bit layouts through the optimizer object, beside a roofline kernel that
 * moves the same bytes with the same storage types and the float32 object step (algorithm=adam_<layout>).
 * Bandwidth probe (group=bandwidth): this machine's memory limit out of cache, so each report states it: a copy
 * (8 B/element), the roofline loop, the roofline loop with software prefetch (as adamcore's large steps do), and
 * the adamcore step, interleaved (algorithm=bandwidth for the loops, adam for adamcore).
 * Usage: bench_c [quick] [mixed] [bandwidth]   (mixed, bandwidth: only those groups)
 */
#include <stdint.h>
#define _GNU_SOURCE /* madvise, MADV_HUGEPAGE */
#include <adamcore.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void roofline(size_t n, float *restrict p, const float *restrict g, float *restrict m, float *restrict v) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = g[i];
        m[i] = m[i] + x;
        v[i] = v[i] + x;
        p[i] = p[i] + x;
    }
}

/* The roofline loop with a software prefetch of each stream 512 elements (2 KiB) ahead, once per cache line: does
 * running ahead of the hardware prefetcher raise the limit? The tail (n % 16) runs on one thread. */
static void roofline_prefetch(size_t n, float *restrict p, const float *restrict g, float *restrict m,
                              float *restrict v) {
    enum { AHEAD = 512, LINE = 16 };
    size_t lines = n / LINE;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < lines; b++) {
        size_t i = b * LINE;
        if (i + AHEAD < n) { /* no address past the buffers */
            __builtin_prefetch(&p[i + AHEAD], 1, 3);
            __builtin_prefetch(&g[i + AHEAD], 0, 3);
            __builtin_prefetch(&m[i + AHEAD], 1, 3);
            __builtin_prefetch(&v[i + AHEAD], 1, 3);
        }
        /* The outlined OpenMP body loses restrict: without this, each line would pay gcc's alias checks. */
#pragma omp simd
        for (size_t j = i; j < i + LINE; j++) {
            float x = g[j];
            m[j] = m[j] + x;
            v[j] = v[j] + x;
            p[j] = p[j] + x;
        }
    }
    for (size_t j = lines * LINE; j < n; j++) {
        float x = g[j];
        m[j] = m[j] + x;
        v[j] = v[j] + x;
        p[j] = p[j] + x;
    }
}

/* Read 4 B, write 4 B per element: the plainest stream (the write-allocate read of b is not counted). */
static void copy(size_t n, float *restrict b, const float *restrict a) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) b[i] = a[i];
}

static void c_adam(size_t n, float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                   float step_size, float inv_bc2, float b1, float b2, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi * inv_bc2) + eps);
    }
}

static void c_amsgrad(size_t n, float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                      float *restrict vmax, float step_size, float inv_bc2, float b1, float b2, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        float mx = vmax[i] > vi ? vmax[i] : vi;
        m[i] = mi;
        v[i] = vi;
        vmax[i] = mx;
        p[i] -= step_size * mi / (sqrtf(mx * inv_bc2) + eps);
    }
}

/* Buffers of 4 MiB or more are 2 MiB aligned and advised for transparent huge pages, as numpy does for its arrays
 * (with THP in "madvise" mode, plain malloc'd memory gets none, and from DRAM the roofline was then beaten by the
 * Python contenders that had them). ADAMCORE_BENCH_THP=0 turns the advice off. */
static int use_thp = 1;

static float *buffer(size_t n, float value) {
    size_t bytes = n * sizeof(float), align = bytes >= (4u << 20) ? (2u << 20) : 64;
    bytes = (bytes + align - 1) / align * align;
    float *b = aligned_alloc(align, bytes);
    if (!b) { fprintf(stderr, "out of memory\n"); exit(1); }
    if (use_thp && align > 64) madvise(b, bytes, MADV_HUGEPAGE); /* advice: failure is harmless */
    for (size_t i = 0; i < n; i++) b[i] = value == 0 ? 0 : value * sinf((float)i);
    return b;
}

#define CHECK(call)                                                                                                  \
    do {                                                                                                             \
        int s_ = (call);                                                                                             \
        if (s_) { fprintf(stderr, "%s: %s\n", #call, adamcore_status_name(s_)); exit(1); }                           \
    } while (0)

enum { CONTENDERS = 7, MAX_ROUNDS = 32 };
static int rounds = 11;

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted x[0..n-1], linear between order statistics (numpy's default, Python's "inclusive"). */
static double quantile(const double *x, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)pos;
    return i + 1 < n ? x[i] + (pos - i) * (x[i + 1] - x[i]) : x[n - 1];
}
static const char *names[CONTENDERS] = {"adamcore", "adamcore_object", "roofline", "c_gcc", "adamcore_object_stats",
                                        "adamcore_avx2", "adamcore_avx512"};
/* The tier in use (the library's choice for this CPU), and whether the CPU also runs AVX-512: when the choice is
 * AVX2 anyway (Zen 4 splits 512-bit operations in two), adamcore_avx512 is the evidence for it. */
static int best_isa, runs_avx512;

static const char *isa_name(int isa) {
    return isa == ADAMCORE_ISA_AVX512 ? "AVX-512" : isa == ADAMCORE_ISA_AVX2_FMA ? "AVX2+FMA" : "baseline";
}

/* Repetitions per round: about budget/rounds seconds of a call that took `once` (timed after a warm-up: the
 * first call pays the page faults), between 1 and 200000. */
static size_t reps_for(double budget, double once) {
    size_t reps = (size_t)(budget / rounds / (once > 1e-7 ? once : 1e-7));
    return reps < 1 ? 1 : reps > 200000 ? 200000 : reps;
}

/* The j-th contender of round `round` of `count`: every other round backwards, so that none is always first. */
static int contender_at(int round, int j, int count) { return round & 1 ? count - 1 - j : j; }

/* One contender's round: seconds per run of the statement `...`, `reps` times, timed after a 20 ms pause (the
 * previous contender's spinning threads, OpenMP's or the pool's, go to sleep) and one untimed run (it refills the
 * caches the pause let go). A macro, so each group's contenders stay a statement over its own buffers. */
#define TIMED_ROUND(reps, ...)                                                                                       \
    ({                                                                                                               \
        nanosleep(&(struct timespec){0, 20000000}, NULL);                                                            \
        double t0_ = now();                                                                                          \
        for (size_t r_ = 0; r_ <= (reps); r_++) {                                                                    \
            if (r_ == 1) t0_ = now();                                                                                \
            __VA_ARGS__;                                                                                             \
        }                                                                                                            \
        (now() - t0_) / (reps);                                                                                      \
    })

/* One result line: the median of `r` rounds' times (seconds per call) with its spread, and every round's time. */
static void report(const char *algorithm, const char *group, const char *contender, size_t tensors, size_t n,
                   int threads, const double *times, int r, size_t reps, int bytes) {
    double sorted[MAX_ROUNDS];
    memcpy(sorted, times, sizeof(double) * r);
    qsort(sorted, r, sizeof(double), compare_double);
    double median = quantile(sorted, r, 0.5), scale = 1e9 / n;
    printf("side=c algorithm=%s group=%s contender=%s tensors=%zu elements=%zu threads=%d ns_per_element=%.4f "
           "us_per_call=%.3f ns_min=%.4f ns_q1=%.4f ns_q3=%.4f ns_max=%.4f rounds=%d reps=%zu bytes_per_element=%d "
           "us_rounds=",
           algorithm, group, contender, tensors, n, threads, median * scale, median * 1e6, sorted[0] * scale,
           quantile(sorted, r, 0.25) * scale, quantile(sorted, r, 0.75) * scale, sorted[r - 1] * scale, r, reps, bytes);
    for (int i = 0; i < r; i++) printf("%s%.3f", i ? "," : "", times[i] * 1e6);
    printf("\n");
}

/* One size: `tensors` tensors of `per` elements each (tensors > 1 only for the object, the layout case). */
static void bench(const char *algorithm, size_t tensors, size_t per, int threads, double budget) {
    size_t n = tensors * per;
    int ams = strcmp(algorithm, "amsgrad") == 0, adamw = strcmp(algorithm, "adamw") == 0;
    float *p = buffer(n, 1), *g = buffer(n, 0.1f), *m = buffer(n, 0), *v = buffer(n, 0), *vmax = buffer(n, 0);
    /* The roofline's own p, m, v: its m += g, v += g would make v negative and p NaN in the Adam buffers. */
    float *rp = buffer(n, 1), *rm = buffer(n, 0), *rv = buffer(n, 0);
    adamcore_config c;
    CHECK(adamcore_config_init(&c, ADAMCORE_ADAM));
    if (ams) c.flags |= ADAMCORE_FLAG_AMSGRAD;
    if (adamw) { c.flags |= ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY; c.weight_decay = 1e-2; }
    adamcore_optimizer *opt;
    CHECK(adamcore_optimizer_create(&c, &opt));
    float *op = buffer(n, 1), *og = buffer(n, 0.1f);
    for (size_t t = 0; t < tensors; t++)
        CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, op + t * per, og + t * per, per, NULL, 0, NULL));
    /* The same optimizer with in-pass statistics on (issue 7's overhead figure). */
    adamcore_optimizer *measured;
    CHECK(adamcore_optimizer_create(&c, &measured));
    float *sp = buffer(n, 1), *sg = buffer(n, 0.1f);
    for (size_t t = 0; t < tensors; t++)
        CHECK(adamcore_optimizer_add_tensor(measured, 0, ADAMCORE_FLOAT32, sp + t * per, sg + t * per, per, NULL, 0, NULL));
    CHECK(adamcore_optimizer_set_stats(measured, 1));
    CHECK(adamcore_set_num_threads(threads));
    omp_set_num_threads(threads);

    int64_t step = 0;
    double once = 0;
    for (int w = 0; w < 2; w++) {
        double t0 = now();
        step++;
        if (tensors > 1) CHECK(adamcore_optimizer_step(opt, NULL, tensors));
        else CHECK(adamcore_adam_step_f32(&c, step, n, p, g, m, v, ams ? vmax : NULL));
        once = now() - t0;
    }
    size_t reps = reps_for(budget, once);
    double times[CONTENDERS][MAX_ROUNDS];
    int done[CONTENDERS] = {0};
    for (int round = 0; round < rounds; round++) {
        for (int j = 0; j < CONTENDERS; j++) {
            int k = contender_at(round, j, CONTENDERS);
            /* The many-tensor layout is the object's case (and the roofline's, over the same bytes flat). */
            if (tensors > 1 && k != 1 && k != 4 && k != 2) continue;
            /* The stateless step again on the AVX2 tier, when a higher one is in use: does that tier pay? */
            if (k == 5 && (tensors > 1 || best_isa != ADAMCORE_ISA_AVX512)) continue;
            if (k == 5) CHECK(adamcore_select_isa(ADAMCORE_ISA_AVX2_FMA));
            /* And on the AVX-512 tier when the CPU runs it but AVX2 was chosen: would it have paid? */
            if (k == 6 && (tensors > 1 || best_isa != ADAMCORE_ISA_AVX2_FMA || !runs_avx512)) continue;
            if (k == 6) CHECK(adamcore_select_isa(ADAMCORE_ISA_AVX512));
            times[k][done[k]++] = TIMED_ROUND(reps, step++; switch (k) {
                case 0: /* the stateless step; 5 and 6: the same on the AVX2 / AVX-512 tier */
                case 5:
                case 6: CHECK(adamcore_adam_step_f32(&c, step, n, p, g, m, v, ams ? vmax : NULL)); break;
                case 1: CHECK(adamcore_optimizer_step(opt, NULL, tensors)); break;
                case 4: CHECK(adamcore_optimizer_step(measured, NULL, tensors)); break;
                case 2: roofline(n, rp, g, rm, rv); break;
                case 3:
                    if (ams) c_amsgrad(n, p, g, m, v, vmax, 1e-3f / 0.1f, 1000.0f, 0.9f, 0.999f, 1e-8f);
                    else c_adam(n, p, g, m, v, 1e-3f / 0.1f, 1000.0f, 0.9f, 0.999f, 1e-8f);
                    break;
            });
            if (k == 5 || k == 6) CHECK(adamcore_select_isa(ADAMCORE_ISA_DEFAULT));
        }
    }
    for (int k = 0; k < CONTENDERS; k++)
        if (done[k]) report(algorithm, "sizes", names[k], tensors, n, threads, times[k], done[k], reps, ams ? 36 : 28);
    fflush(stdout);
    adamcore_optimizer_destroy(opt);
    adamcore_optimizer_destroy(measured);
    free(p); free(g); free(m); free(v); free(vmax); free(op); free(og); free(sp); free(sg); free(rp); free(rm); free(rv);
}

/* Mixed-precision layouts: the storage types of (param, grad, state, copy), and the bytes a step moves. */
typedef struct {
    const char *name;
    int param, grad, state, copy;
    int bytes; /* per element: reads + writes */
} mixed_layout;

static const mixed_layout layouts[] = {
    /* read p2 g2 m4 v4, write p2 m4 v4 */
    {"adam_bf16_fp32_state", ADAMCORE_BFLOAT16, ADAMCORE_BFLOAT16, ADAMCORE_FLOAT32, 0, 22},
    /* read p2 g2 m2 v2, write p2 m2 v2: torch fused's own layout */
    {"adam_bf16", ADAMCORE_BFLOAT16, ADAMCORE_BFLOAT16, ADAMCORE_BFLOAT16, 0, 14},
    /* ZeRO-Offload: fp32 master p, bf16 gradients, fp32 state, bf16 copy; read p4 g2 m4 v4, write p4 m4 v4 c2 */
    {"adam_offload_bf16", ADAMCORE_FLOAT32, ADAMCORE_BFLOAT16, ADAMCORE_FLOAT32, ADAMCORE_BFLOAT16, 28},
    {"adam_offload_fp16", ADAMCORE_FLOAT32, ADAMCORE_FLOAT16, ADAMCORE_FLOAT32, ADAMCORE_FLOAT16, 28},
};

static size_t size_of(int dtype) { return dtype == ADAMCORE_FLOAT32 ? 4 : 2; }

static void *raw_buffer(size_t n, int dtype, float value) {
    size_t bytes = n * size_of(dtype), align = bytes >= (4u << 20) ? (2u << 20) : 64;
    bytes = (bytes + align - 1) / align * align;
    unsigned char *b = aligned_alloc(align, bytes);
    if (!b) { fprintf(stderr, "out of memory\n"); exit(1); }
    if (use_thp && align > 64) madvise(b, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < n; i++) {
        float x = value == 0 ? 0 : value * sinf((float)i);
        if (dtype == ADAMCORE_FLOAT32) memcpy(b + 4 * i, &x, 4);
        else {
            uint32_t bits;
            memcpy(&bits, &x, 4);
            uint16_t h = dtype == ADAMCORE_BFLOAT16 ? (uint16_t)(bits >> 16) : (uint16_t)0x3c00; /* fp16: 1.0 */
            memcpy(b + 2 * i, &h, 2);
        }
    }
    return b;
}

/* The roofline of a layout: each buffer read and written at its storage width, integer adds only. */
#define ROOF_LOOP(P, S, C)                                                                                    \
    _Pragma("omp parallel for schedule(static)") for (size_t i = 0; i < n; i++) {                           \
        uint16_t x = g[i];                                                                                    \
        ((S *)m)[i] += x;                                                                                     \
        ((S *)v)[i] += x;                                                                                     \
        ((P *)p)[i] += x;                                                                                     \
        if (C) ((uint16_t *)copy)[i] = (uint16_t)((P *)p)[i];                                                 \
    }
static void mixed_roofline(const mixed_layout *l, size_t n, void *p, const uint16_t *restrict g, void *m, void *v,
                           void *copy) {
    if (l->param == ADAMCORE_FLOAT32 && l->copy) { ROOF_LOOP(uint32_t, uint32_t, 1) }
    else if (l->state == ADAMCORE_FLOAT32) { ROOF_LOOP(uint16_t, uint32_t, 0) }
    else { ROOF_LOOP(uint16_t, uint16_t, 0) }
}

static void bench_mixed(const mixed_layout *l, size_t n, int threads, double budget) {
    enum { K = 3 };
    static const char *mixed_names[K] = {"adamcore_object", "roofline", "adamcore_object_fp32"};
    adamcore_config c;
    CHECK(adamcore_config_init(&c, ADAMCORE_ADAM));
    adamcore_optimizer *opt, *fp32;
    CHECK(adamcore_optimizer_create(&c, &opt));
    CHECK(adamcore_optimizer_create(&c, &fp32));
    void *p = raw_buffer(n, l->param, 1), *g = raw_buffer(n, l->grad, 0.1f);
    void *copy = l->copy ? raw_buffer(n, l->copy, 0) : NULL;
    adamcore_tensor_desc d;
    ADAMCORE_TENSOR_DESC_INIT(&d);
    d.param_dtype = l->param; d.grad_dtype = l->grad; d.state_dtype = l->state; d.copy_dtype = l->copy;
    d.param = p; d.grad = g; d.copy = copy; d.count = n;
    CHECK(adamcore_optimizer_add_tensor_desc(opt, 0, &d, NULL));
    float *fp = buffer(n, 1), *fg = buffer(n, 0.1f);
    CHECK(adamcore_optimizer_add_tensor(fp32, 0, ADAMCORE_FLOAT32, fp, fg, n, NULL, 0, NULL));
    /* The roofline's buffers, of the layout's types. */
    void *rp = raw_buffer(n, l->param, 0), *rm = raw_buffer(n, l->state, 0), *rv = raw_buffer(n, l->state, 0);
    void *rg = raw_buffer(n, ADAMCORE_BFLOAT16, 0.1f), *rc = l->copy ? raw_buffer(n, l->copy, 0) : NULL;
    CHECK(adamcore_set_num_threads(threads));
    omp_set_num_threads(threads);
    double once = 0;
    for (int w = 0; w < 2; w++) {
        double t0 = now();
        CHECK(adamcore_optimizer_step(opt, NULL, 1));
        once = now() - t0;
    }
    CHECK(adamcore_optimizer_step(fp32, NULL, 1));
    size_t reps = reps_for(budget, once);
    double times[K][MAX_ROUNDS];
    for (int round = 0; round < rounds; round++) {
        for (int j = 0; j < K; j++) {
            int k = contender_at(round, j, K);
            times[k][round] = TIMED_ROUND(reps, if (k == 0) CHECK(adamcore_optimizer_step(opt, NULL, 1));
                                                else if (k == 1) mixed_roofline(l, n, rp, rg, rm, rv, rc);
                                                else CHECK(adamcore_optimizer_step(fp32, NULL, 1)));
        }
    }
    for (int k = 0; k < K; k++)
        report(l->name, "mixed", mixed_names[k], 1, n, threads, times[k], rounds, reps, k == 2 ? 28 : l->bytes);
    fflush(stdout);
    adamcore_optimizer_destroy(opt);
    adamcore_optimizer_destroy(fp32);
    free(p); free(g); free(copy); free(fp); free(fg); free(rp); free(rm); free(rv); free(rg); free(rc);
}

/* The memory limit out of cache: copy, the 28-byte roofline loop with and without software prefetch, and the
 * adamcore step over the same sizes, interleaved round by round like the other groups. */
static void bench_bandwidth(size_t n, int threads, double budget) {
    enum { K = 4 };
    static const char *bw_names[K] = {"copy", "roofline", "roofline_prefetch", "adamcore"};
    static const int bw_bytes[K] = {8, 28, 28, 28};
    /* g is read by all; copy writes cb; both roofline loops share rp, rm, rv (adds only, values stay finite);
     * adamcore has its own p, m, v (the loops' v would go negative). */
    float *g = buffer(n, 0.1f), *cb = buffer(n, 0), *rp = buffer(n, 1), *rm = buffer(n, 0), *rv = buffer(n, 0);
    float *p = buffer(n, 1), *m = buffer(n, 0), *v = buffer(n, 0);
    adamcore_config c;
    CHECK(adamcore_config_init(&c, ADAMCORE_ADAM));
    CHECK(adamcore_set_num_threads(threads));
    omp_set_num_threads(threads);
    int64_t step = 0;
    double once = 0;
    for (int w = 0; w < 2; w++) {
        double t0 = now();
        CHECK(adamcore_adam_step_f32(&c, ++step, n, p, g, m, v, NULL));
        once = now() - t0;
    }
    /* Each loop once too, so no contender's first round starts its OpenMP threads. */
    copy(n, cb, g);
    roofline(n, rp, g, rm, rv);
    roofline_prefetch(n, rp, g, rm, rv);
    size_t reps = reps_for(budget, once);
    double times[K][MAX_ROUNDS];
    for (int round = 0; round < rounds; round++) {
        for (int j = 0; j < K; j++) {
            int k = contender_at(round, j, K);
            times[k][round] = TIMED_ROUND(reps, switch (k) {
                case 0: copy(n, cb, g); break;
                case 1: roofline(n, rp, g, rm, rv); break;
                case 2: roofline_prefetch(n, rp, g, rm, rv); break;
                case 3: CHECK(adamcore_adam_step_f32(&c, ++step, n, p, g, m, v, NULL)); break;
            });
        }
    }
    for (int k = 0; k < K; k++)
        report(k == 3 ? "adam" : "bandwidth", "bandwidth", bw_names[k], 1, n, threads, times[k], rounds, reps,
               bw_bytes[k]);
    fflush(stdout);
    free(g); free(cb); free(rp); free(rm); free(rv); free(p); free(m); free(v);
}

/* "# cpu: <model name>, <vendor> family F model M (0xF/0xM)[ = core]" from the first processor in /proc/cpuinfo,
 * so every table of the report can say which machine it measured. */
static void print_cpu(void) {
    char name[256] = "unknown", vendor[64] = "?", line[1024];
    int family = -1, model = -1;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '\n') break; /* the first processor only */
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *value = colon + 1 + (colon[1] == ' '), *key_end = colon;
        value[strcspn(value, "\n")] = 0;
        while (key_end > line && (key_end[-1] == ' ' || key_end[-1] == '\t')) key_end--;
        *key_end = 0;
        if (strcmp(line, "model name") == 0) snprintf(name, sizeof name, "%s", value);
        else if (strcmp(line, "vendor_id") == 0) snprintf(vendor, sizeof vendor, "%s", value);
        else if (strcmp(line, "cpu family") == 0) family = atoi(value);
        else if (strcmp(line, "model") == 0) model = atoi(value);
    }
    if (f) fclose(f);
    printf("# cpu: %s, %s", name, vendor);
    if (family >= 0 && model >= 0) printf(" family %d model %d (0x%x/0x%x)", family, model, family, model);
    printf("\n");
}

int main(int argc, char **argv) {
    int quick = 0, mixed_only = 0, bandwidth_only = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "quick") == 0) quick = 1;
        if (strcmp(argv[a], "mixed") == 0) mixed_only = 1;
        if (strcmp(argv[a], "bandwidth") == 0) bandwidth_only = 1;
    }
    double budget = quick ? 0.02 : 0.25;
    rounds = quick ? 5 : 11;
    const char *thp = getenv("ADAMCORE_BENCH_THP");
    use_thp = !(thp && strcmp(thp, "0") == 0);
    size_t sizes[] = {4096, 65536, 1 << 20, 1 << 24, 1 << 26};
    int nsizes = quick ? 3 : 5;
    best_isa = adamcore_active_isa();
    /* Does the CPU (and build) run AVX-512 though the library chose less? Try it, then put the choice back. */
    runs_avx512 = adamcore_select_isa(ADAMCORE_ISA_AVX512) == 0;
    CHECK(adamcore_select_isa(ADAMCORE_ISA_DEFAULT)); /* not best_isa: the default may mix tiers by layout */
    print_cpu();
    printf("# adamcore %s, kernels %s, %d CPUs available\n", adamcore_version_string(), isa_name(best_isa),
           omp_get_num_procs());
    if (runs_avx512 && best_isa == ADAMCORE_ISA_AVX2_FMA)
        printf("# C kernels: AVX2+FMA for float32 (16-bit layouts: AVX-512) though this CPU runs AVX-512; "
               "adamcore_avx512 is the stateless step on the AVX-512 tier\n");
    printf("# C rounds: %d interleaved per figure, median reported (spread: min, quartiles, max); budget %g s per "
           "contender and size\n", rounds, budget);
    char mode[128] = "unknown";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (fgets(mode, sizeof mode, f)) mode[strcspn(mode, "\n")] = 0;
        fclose(f);
    }
    printf("# C buffers >= 4 MiB: %s (transparent huge pages: %s)\n",
           use_thp ? "MADV_HUGEPAGE, as numpy's" : "no huge-page advice (ADAMCORE_BENCH_THP=0)", mode);
    /* The machine's limit first, so the report can state it before the groups it bounds. */
    size_t bandwidth_sizes[] = {1 << 24, 1 << 26}, quick_bandwidth_sizes[] = {1 << 20};
    if (!mixed_only || bandwidth_only)
        for (int threads = 1; threads <= 2; threads++)
            for (int s = 0; s < (quick ? 1 : 2); s++)
                bench_bandwidth(quick ? quick_bandwidth_sizes[s] : bandwidth_sizes[s], threads, budget);
    size_t mixed_sizes[] = {65536, 1 << 24, 1 << 26};
    if (!bandwidth_only || mixed_only)
        for (size_t l = 0; l < sizeof layouts / sizeof layouts[0]; l++)
            for (int threads = 1; threads <= 2; threads++)
                for (int s = 0; s < (quick ? 1 : 3); s++) bench_mixed(&layouts[l], mixed_sizes[s], threads, budget);
    if (mixed_only || bandwidth_only) return 0;
    const char *algorithms[] = {"adam", "amsgrad", "adamw"};
    for (int a = 0; a < (quick ? 1 : 3); a++) {
        for (int threads = 1; threads <= 2; threads++) {
            for (int s = 0; s < nsizes; s++) {
                if (a > 0 && sizes[s] > (1u << 24)) continue; /* 64M once, for Adam */
                bench(algorithms[a], 1, sizes[s], threads, budget);
            }
            bench(algorithms[a], 1000, 64, threads, budget);
            if (!quick) bench(algorithms[a], 200, 65536, threads, budget);
        }
    }
    return 0;
}
