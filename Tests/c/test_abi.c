/*
 * The C ABI, exercised through the installed header: every function, every status code, and for every rejected
 * call a proof that no caller byte changed (all caller buffers live in one arena, snapshotted before each call).
 * Numbers: each algorithm's stateless step equals the optimizer object bit for bit, and Adam matches a float64
 * reference written here. Prints "N passed, M failed".
 */
#define _GNU_SOURCE
#include <adamcore.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed, rejected; /* rejected: EXPECT_STATUS calls made */
/* -(the last error): the list holds OK, STEP_SKIPPED and the errors -1 ... -LAST_ERROR (checked below). */
#define COUNT_STATUS_(name, value, message) +1
#define LAST_ERROR ((0 ADAMCORE_STATUS_MAP(COUNT_STATUS_)) - 2)
static int seen[LAST_ERROR + 1]; /* seen[-code]: an EXPECT_STATUS produced that status */

#define CHECK(cond, ...)                                                                                 \
    do {                                                                                                 \
        if (cond) {                                                                                      \
            passed++;                                                                                    \
        } else {                                                                                         \
            failed++;                                                                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
            printf(__VA_ARGS__);                                                                         \
            printf("\n");                                                                                \
        }                                                                                                \
    } while (0)

/* Every caller buffer of the error tests lives here, so one snapshot covers them all. */
enum { N = 37 };
static struct {
    float p[N], g[N], m[N], v[N], vmax[N], other[N];
    double pd[N], gd[N], md[N], vd[N];
    float misaligned_base[N + 1];
    adamcore_config config;
    adamcore_adafix_result result;
    size_t size_out;
    double double_out;
    int64_t step_out;
    /* test_tensor_subsets: a second tensor's buffers, a spare parameter, and the calls' index and gradient lists */
    float q[N], qg[N], qm[N], qv[N], fresh[N];
    size_t list[4];
    const void *grads[4];
    /* test_mixed_precision: 16-bit parameter, gradient and copy buffers, a master, a description */
    uint16_t h[N + 1], hg[N], hcopy[N];
    float master[N];
    adamcore_tensor_desc desc;
} arena;
static unsigned char snapshot[sizeof arena];

static void fill_arena(void) {
    for (int i = 0; i < N; i++) {
        arena.p[i] = 0.5f + i; arena.g[i] = 0.25f * (i % 7) - 0.5f; arena.m[i] = 0.01f * i; arena.v[i] = 0.001f * i;
        arena.vmax[i] = 0.002f * i; arena.other[i] = -1.0f;
        arena.pd[i] = 1.5 + i; arena.gd[i] = -0.125 * (i % 5); arena.md[i] = 0.02 * i; arena.vd[i] = 0.003 * i;
    }
}

/* The call must return `expected` and leave the arena byte-identical. */
#define EXPECT_STATUS(expected, call)                                                                    \
    do {                                                                                                 \
        memcpy(snapshot, &arena, sizeof arena);                                                          \
        int got_ = (call);                                                                               \
        rejected++;                                                                                      \
        if (got_ <= 0 && got_ >= -LAST_ERROR) seen[-got_] = 1;                                          \
        CHECK(got_ == (expected), "%s returned %s, expected %s", #call, adamcore_status_name(got_),      \
              adamcore_status_name(expected));                                                           \
        CHECK(memcmp(snapshot, &arena, sizeof arena) == 0, "%s modified a caller buffer", #call);        \
    } while (0)

static adamcore_config config_of(int algorithm) {
    adamcore_config c;
    int s = adamcore_config_init(&c, algorithm);
    CHECK(s == ADAMCORE_OK, "config_init(%d)", algorithm);
    return c;
}

static void test_version_and_statuses(void) {
    CHECK(adamcore_version_number() == ADAMCORE_VERSION_NUMBER, "runtime version number %u", adamcore_version_number());
    CHECK(strcmp(adamcore_version_string(), ADAMCORE_VERSION_STRING) == 0, "runtime version string %s",
          adamcore_version_string());
    /* Every code from 1 to -LAST_ERROR has its own name and a message; anything else is unknown. */
    for (int code = 1; code >= -LAST_ERROR; code--) {
        const char *name = adamcore_status_name(code);
        CHECK(strncmp(name, "ADAMCORE_", 9) == 0 && strcmp(name, "ADAMCORE_E_UNKNOWN") != 0, "name of %d: %s", code, name);
        CHECK(strlen(adamcore_strerror(code)) > 5, "message of %d", code);
        for (int other = code + 1; other <= 1; other++)
            CHECK(strcmp(name, adamcore_status_name(other)) != 0, "codes %d and %d share a name", code, other);
    }
    /* The library's names and messages are the header's list, entry by entry, and the list is contiguous. */
    int listed = 0;
#define CHECK_STATUS_ROW(name, value, message)                                                               \
    CHECK(strcmp(adamcore_status_name(value), "ADAMCORE_" #name) == 0, "name of %d", value);                \
    CHECK(strcmp(adamcore_strerror(value), message) == 0, "message of %d", value);                          \
    CHECK(value == (listed < 2 ? listed : 1 - listed), "%s is listed in order", #name);                     \
    listed++;
    ADAMCORE_STATUS_MAP(CHECK_STATUS_ROW)
#undef CHECK_STATUS_ROW
    CHECK(strcmp(adamcore_status_name(-LAST_ERROR - 1), "ADAMCORE_E_UNKNOWN") == 0, "unknown negative code");
    int threads = 0;
    CHECK(adamcore_get_num_threads(&threads) == ADAMCORE_OK && threads >= 1, "thread count %d", threads);
    EXPECT_STATUS(ADAMCORE_E_THREADS, adamcore_set_num_threads(-1));
    EXPECT_STATUS(ADAMCORE_E_THREADS, adamcore_set_num_threads(100000));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_get_num_threads(NULL));
    CHECK(adamcore_set_num_threads(2) == ADAMCORE_OK && adamcore_get_num_threads(&threads) == ADAMCORE_OK && threads == 2, "set 2");
    CHECK(adamcore_set_num_threads(0) == ADAMCORE_OK, "back to the default");
    CHECK(strcmp(adamcore_status_name(2), "ADAMCORE_E_UNKNOWN") == 0, "unknown positive code");
    int isa = adamcore_active_isa();
    const char *forced = getenv("ADAMCORE_ISA");
    CHECK(isa == ADAMCORE_ISA_BASELINE || isa == ADAMCORE_ISA_AVX2_FMA || isa == ADAMCORE_ISA_AVX512, "isa %d", isa);
    if (forced && strcmp(forced, "baseline") == 0) CHECK(isa == ADAMCORE_ISA_BASELINE, "ADAMCORE_ISA=baseline honoured");
    if (forced && strcmp(forced, "avx2_fma") == 0) /* a cap: the baseline on a CPU without AVX2 */
        CHECK(isa == ADAMCORE_ISA_AVX2_FMA || (isa == ADAMCORE_ISA_BASELINE && adamcore_select_isa(ADAMCORE_ISA_AVX2_FMA) != 0),
              "ADAMCORE_ISA=avx2_fma honoured");
    /* Whether this CPU runs the AVX-512 tier (selecting it, then restoring the first choice). */
    int runs_avx512 = adamcore_select_isa(ADAMCORE_ISA_AVX512) == ADAMCORE_OK;
    CHECK(adamcore_select_isa(ADAMCORE_ISA_DEFAULT) == ADAMCORE_OK && adamcore_active_isa() == isa, "first choice restored");
    if (forced && strcmp(forced, "avx512") == 0) /* a choice over the CPU's preferred tier, capped at what it runs */
        CHECK(isa == ADAMCORE_ISA_AVX512 || !runs_avx512, "ADAMCORE_ISA=avx512 honoured");
    if (!forced) /* the preferred tier: the widest, or AVX2 where 512-bit operations are double-pumped */
        CHECK(isa == ADAMCORE_ISA_AVX512 || !runs_avx512 || isa == ADAMCORE_ISA_AVX2_FMA, "default tier");
    printf("kernels: %s\n", isa == ADAMCORE_ISA_AVX512 ? "AVX-512" : isa == ADAMCORE_ISA_AVX2_FMA ? "AVX2+FMA" : "baseline");
    EXPECT_STATUS(ADAMCORE_E_ISA, adamcore_select_isa(4));
    EXPECT_STATUS(ADAMCORE_E_ISA, adamcore_select_isa(-1));
    CHECK(adamcore_active_isa() == isa, "a refused selection changes nothing");
    CHECK(adamcore_select_isa(ADAMCORE_ISA_BASELINE) == ADAMCORE_OK && adamcore_active_isa() == ADAMCORE_ISA_BASELINE,
          "the baseline can always be selected");
    CHECK(adamcore_select_isa(isa) == ADAMCORE_OK && adamcore_active_isa() == isa, "and the first choice again");
    CHECK(adamcore_select_isa(ADAMCORE_ISA_BASELINE) == ADAMCORE_OK &&
              adamcore_select_isa(ADAMCORE_ISA_DEFAULT) == ADAMCORE_OK && adamcore_active_isa() == isa,
          "ADAMCORE_ISA_DEFAULT restores the first choice");
}

/* Every tier this CPU runs, through the C face: 200 Adam (AMSGrad, AdamW) steps over 37 floats (tails included).
 * AVX2 and AVX-512 round alike, so their results are bitwise equal; the baseline (unfused) stays within a few
 * ulps per step of them. Leaves the tier as it found it. */
static void test_isa_tiers(void) {
    enum { N = 37, STEPS = 200 };
    int first = adamcore_active_isa(), ran = 0;
    float result[3][3][N];
    int have[3] = {0};
    for (int isa = ADAMCORE_ISA_BASELINE; isa <= ADAMCORE_ISA_AVX512; isa++) {
        if (adamcore_select_isa(isa) != ADAMCORE_OK) continue;
        ran++;
        have[isa] = 1;
        for (int variant = 0; variant < 3; variant++) {
            adamcore_config c = config_of(ADAMCORE_ADAM);
            c.lr = 1e-2;
            if (variant == 1) c.flags |= ADAMCORE_FLAG_AMSGRAD;
            if (variant == 2) { c.flags |= ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY; c.weight_decay = 0.1; }
            float p[N], g[N], m[N] = {0}, v[N] = {0}, vmax[N] = {0};
            for (int i = 0; i < N; i++) p[i] = (float)sin(i + 1.0);
            int ok = 1;
            for (int t = 1; t <= STEPS; t++) {
                for (int i = 0; i < N; i++) g[i] = (float)(cos(0.37 * t * (i + 1)) * pow(10, -(i % 5)));
                ok &= adamcore_adam_step_f32(&c, t, N, p, g, m, v, variant == 1 ? vmax : NULL) == ADAMCORE_OK;
            }
            CHECK(ok, "isa %d variant %d steps", isa, variant);
            memcpy(result[isa][variant], p, sizeof p);
        }
    }
    CHECK(adamcore_select_isa(first) == ADAMCORE_OK, "tier restored");
    CHECK(ran >= 1 && have[ADAMCORE_ISA_BASELINE], "the baseline tier runs");
    for (int variant = 0; variant < 3; variant++) {
        if (have[ADAMCORE_ISA_AVX2_FMA] && have[ADAMCORE_ISA_AVX512])
            CHECK(memcmp(result[ADAMCORE_ISA_AVX2_FMA][variant], result[ADAMCORE_ISA_AVX512][variant], N * sizeof(float)) == 0,
                  "variant %d: AVX-512 and AVX2 give bitwise the same parameters", variant);
        for (int isa = ADAMCORE_ISA_AVX2_FMA; isa <= ADAMCORE_ISA_AVX512; isa++) {
            if (!have[isa]) continue;
            double worst = 0;
            for (int i = 0; i < N; i++) {
                double d = fabs((double)result[isa][variant][i] - result[ADAMCORE_ISA_BASELINE][variant][i]);
                double ulp = nextafterf(fabsf(result[ADAMCORE_ISA_BASELINE][variant][i]), INFINITY) -
                             fabsf(result[ADAMCORE_ISA_BASELINE][variant][i]);
                if (d / ulp > worst) worst = d / ulp;
            }
            /* ~ lr / ulp(1) per step at most; in practice a few dozen ulps over the whole run. */
            CHECK(worst <= 4.0 * STEPS, "variant %d: tier %d within %g ulps of the baseline", variant, isa, worst);
        }
    }
    printf("kernel tiers compared: %d\n", ran);
}

static void test_config(void) {
    const int algorithms[] = {ADAMCORE_ADAM, ADAMCORE_ADAFIX, ADAMCORE_SGD, ADAMCORE_RMSPROP, ADAMCORE_ADAGRAD};
    const size_t states[] = {2, 2, 0, 1, 1};
    for (int i = 0; i < 5; i++) {
        adamcore_config c = config_of(algorithms[i]);
        CHECK(c.struct_size == sizeof c, "struct_size");
        CHECK(adamcore_config_validate(&c) == ADAMCORE_OK, "defaults validate");
        size_t n = 99;
        CHECK(adamcore_config_state_count(&c, &n) == ADAMCORE_OK && n == states[i], "state count %zu", n);
    }
    adamcore_config adam = config_of(ADAMCORE_ADAM);
    CHECK(adam.lr == 1e-3 && adam.beta1 == 0.9 && adam.beta2 == 0.999 && adam.eps == 1e-8, "torch's Adam defaults");
    adam.flags = ADAMCORE_FLAG_AMSGRAD;
    const char *name = NULL;
    CHECK(adamcore_config_state_name(&adam, 2, &name) == ADAMCORE_OK && name && strcmp(name, "max_exp_avg_sq") == 0,
          "slot 2 of AMSGrad");
    adamcore_config rms = config_of(ADAMCORE_RMSPROP);
    rms.flags = ADAMCORE_FLAG_CENTERED;
    rms.momentum = 0.9;
    size_t count = 0;
    CHECK(adamcore_config_state_count(&rms, &count) == ADAMCORE_OK && count == 3, "centered momentum RMSprop: 3 slots");
    CHECK(adamcore_config_state_name(&rms, 1, &name) == ADAMCORE_OK && strcmp(name, "grad_avg") == 0, "slot 1");
    CHECK(adamcore_config_state_name(&rms, 2, &name) == ADAMCORE_OK && strcmp(name, "momentum_buffer") == 0, "slot 2");
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_config_state_name(&rms, 3, &name));

    /* Every config status, through adamcore_config_validate and a stateless step. */
    struct { int algorithm; int expected; int field; double value; } cases[] = {
        {ADAMCORE_ADAM, ADAMCORE_E_LR, 0, -1}, {ADAMCORE_ADAM, ADAMCORE_E_LR, 0, NAN},
        {ADAMCORE_ADAM, ADAMCORE_E_BETA1, 1, 1}, {ADAMCORE_ADAM, ADAMCORE_E_BETA2, 2, INFINITY},
        {ADAMCORE_ADAM, ADAMCORE_E_EPS, 3, -1e-8}, {ADAMCORE_ADAM, ADAMCORE_E_EPS_ROOT, 4, NAN},
        {ADAMCORE_ADAM, ADAMCORE_E_WEIGHT_DECAY, 5, -0.1}, {ADAMCORE_ADAM, ADAMCORE_E_MOMENTUM, 6, 0.9},
        {ADAMCORE_ADAM, ADAMCORE_E_DAMPENING, 7, 0.1}, {ADAMCORE_ADAM, ADAMCORE_E_ALPHA, 8, 0.99},
        {ADAMCORE_ADAM, ADAMCORE_E_LR_DECAY, 9, 0.1}, {ADAMCORE_ADAM, ADAMCORE_E_INITIAL_ACCUMULATOR, 10, 0.1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        arena.config = config_of(cases[i].algorithm);
        double *fields[] = {&arena.config.lr, &arena.config.beta1, &arena.config.beta2, &arena.config.eps,
                            &arena.config.eps_root, &arena.config.weight_decay, &arena.config.momentum,
                            &arena.config.dampening, &arena.config.alpha, &arena.config.lr_decay,
                            &arena.config.initial_accumulator_value};
        *fields[cases[i].field] = cases[i].value;
        EXPECT_STATUS(cases[i].expected, adamcore_config_validate(&arena.config));
        EXPECT_STATUS(cases[i].expected, adamcore_adam_step_f32(&arena.config, 1, N, arena.p, arena.g, arena.m,
                                                                arena.v, NULL));
    }
    arena.config = config_of(ADAMCORE_SGD);
    arena.config.flags = ADAMCORE_FLAG_NESTEROV;
    EXPECT_STATUS(ADAMCORE_E_NESTEROV, adamcore_config_validate(&arena.config));
    arena.config = config_of(ADAMCORE_ADAM);
    arena.config.flags = 1u << 30;
    EXPECT_STATUS(ADAMCORE_E_FLAGS, adamcore_config_validate(&arena.config));
    arena.config = config_of(ADAMCORE_ADAM);
    arena.config.reserved = 7;
    EXPECT_STATUS(ADAMCORE_E_RESERVED, adamcore_config_validate(&arena.config));
    arena.config = config_of(ADAMCORE_ADAM);
    arena.config.struct_size = 16;
    EXPECT_STATUS(ADAMCORE_E_STRUCT_SIZE, adamcore_config_validate(&arena.config));
    arena.config = config_of(ADAMCORE_ADAM);
    arena.config.algorithm = 42;
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_config_validate(&arena.config));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_config_init(&arena.config, 0));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_config_init(NULL, ADAMCORE_ADAM));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_config_validate(NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_config_state_count(&adam, NULL));
}

static void test_stateless_errors(void) {
    adamcore_config adam = config_of(ADAMCORE_ADAM), ams = adam, sgd = config_of(ADAMCORE_SGD);
    adamcore_config adafix = config_of(ADAMCORE_ADAFIX), rms = config_of(ADAMCORE_RMSPROP), ada = config_of(ADAMCORE_ADAGRAD);
    ams.flags = ADAMCORE_FLAG_AMSGRAD;
    float *misaligned = (float *)((char *)arena.misaligned_base + 2);
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_adam_step_f32(NULL, 1, N, arena.p, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_adam_step_f32(&adam, 1, N, NULL, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_adam_step_f32(&adam, 1, N, arena.p, NULL, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_adam_step_f32(&ams, 1, N, arena.p, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_STATE, adamcore_adam_step_f32(&adam, 1, N, arena.p, arena.g, arena.m, arena.v, arena.vmax));
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_adam_step_f32(&adam, 0, N, arena.p, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_adam_step_f64(&adam, INT64_MIN, N, arena.pd, arena.gd, arena.md, arena.vd, NULL));
    EXPECT_STATUS(ADAMCORE_E_MISALIGNED, adamcore_adam_step_f32(&adam, 1, N, arena.p, arena.g, misaligned, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_adam_step_f32(&adam, 1, N, arena.p, arena.g, arena.m, arena.m + 3, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_adam_step_f32(&adam, 1, N, arena.p, arena.p, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_adam_step_f64(&adam, 1, N, arena.pd, arena.gd, arena.md, arena.pd + N - 1, NULL));
    EXPECT_STATUS(ADAMCORE_E_LENGTH, adamcore_adam_step_f32(&adam, 1, SIZE_MAX, arena.p, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_LENGTH, adamcore_adam_step_f32(&adam, 1, SIZE_MAX / 8, arena.p, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_adam_step_f32(&sgd, 1, N, arena.p, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_sgd_step_f32(&adam, 1, N, arena.p, arena.g, NULL));
    EXPECT_STATUS(ADAMCORE_E_STATE, adamcore_sgd_step_f64(&sgd, 1, N, arena.pd, arena.gd, arena.md));
    EXPECT_STATUS(ADAMCORE_E_STATE, adamcore_rmsprop_step_f32(&rms, 1, N, arena.p, arena.g, arena.m, arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_rmsprop_step_f64(&rms, 1, N, arena.pd, arena.gd, NULL, NULL, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_adagrad_step_f32(&ada, 1, N, arena.p, arena.g, arena.g));
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_adagrad_step_f64(&ada, -1, N, arena.pd, arena.gd, arena.md));
    EXPECT_STATUS(ADAMCORE_E_LIPSCHITZ, adamcore_adafix_step_f32(&adafix, 1, N, arena.p, arena.g, arena.m, arena.v, -1, &arena.result));
    EXPECT_STATUS(ADAMCORE_E_LIPSCHITZ, adamcore_adafix_step_f64(&adafix, 1, N, arena.pd, arena.gd, arena.md, arena.vd, INFINITY, NULL));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_adafix_step_f32(&adam, 1, N, arena.p, arena.g, arena.m, arena.v, 0, NULL));
    arena.double_out = 1.0;
    EXPECT_STATUS(ADAMCORE_E_NONFINITE, adamcore_adafix_lipschitz_f32(N, arena.g, arena.other, 1e-320, &arena.double_out));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_adafix_lipschitz_f64(N, arena.gd, NULL, 1, &arena.double_out));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_adafix_lipschitz_f64(N, arena.gd, arena.md, 1, NULL));
    arena.double_out = -2.0;
    EXPECT_STATUS(ADAMCORE_E_LIPSCHITZ, adamcore_adafix_lipschitz_f64(N, arena.gd, arena.md, 1, &arena.double_out));
    /* count 0 is a valid no-op */
    EXPECT_STATUS(ADAMCORE_OK, adamcore_adam_step_f32(&adam, 1, 0, arena.p, arena.g, arena.m, arena.v, NULL));
}

/* Adam on float64 against a reference written out here: 300 steps, tolerance 4 * steps * eps * scale. */
static void test_adam_reference(void) {
    enum { M = 19, STEPS = 300 };
    double p[M], m[M] = {0}, v[M] = {0}, rp[M], rm[M] = {0}, rv[M] = {0}, g[M];
    adamcore_config c = config_of(ADAMCORE_ADAM);
    c.lr = 0.01; c.weight_decay = 0.05; c.eps = 1e-4;
    for (int i = 0; i < M; i++) p[i] = rp[i] = sin(i + 1.0);
    double worst = 0;
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < M; i++) g[i] = cos(0.1 * t * (i + 1)) * (i % 3 + 1);
        int s = adamcore_adam_step_f64(&c, t, M, p, g, m, v, NULL);
        if (s != ADAMCORE_OK) { CHECK(0, "adam step %d: %s", t, adamcore_status_name(s)); return; }
        double bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.999, t);
        for (int i = 0; i < M; i++) {
            double gi = g[i] + 0.05 * rp[i];
            rm[i] = 0.9 * rm[i] + 0.1 * gi;
            rv[i] = 0.999 * rv[i] + 0.001 * gi * gi;
            rp[i] -= 0.01 * (rm[i] / bc1) / (sqrt(rv[i] / bc2) + 1e-4);
        }
    }
    for (int i = 0; i < M; i++) worst = fmax(worst, fabs(p[i] - rp[i]));
    CHECK(worst <= 4.0 * STEPS * 2.220446049250313e-16 * 2, "Adam f64 vs reference: max error %g", worst);
}

/* The object and the stateless functions give the same bits, for every algorithm, with two tensors. */
static void test_object_matches_stateless(void) {
    adamcore_config configs[6];
    configs[0] = config_of(ADAMCORE_ADAM); configs[0].flags = ADAMCORE_FLAG_AMSGRAD; configs[0].weight_decay = 0.1;
    configs[1] = config_of(ADAMCORE_ADAM); configs[1].flags = ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY; configs[1].weight_decay = 0.1;
    configs[2] = config_of(ADAMCORE_SGD); configs[2].momentum = 0.9; configs[2].flags = ADAMCORE_FLAG_NESTEROV;
    configs[3] = config_of(ADAMCORE_RMSPROP); configs[3].momentum = 0.5; configs[3].flags = ADAMCORE_FLAG_CENTERED;
    configs[4] = config_of(ADAMCORE_ADAGRAD); configs[4].initial_accumulator_value = 0.1; configs[4].lr_decay = 0.01;
    configs[5] = config_of(ADAMCORE_ADAFIX);
    for (int k = 0; k < 6; k++) {
        adamcore_config *c = &configs[k];
        enum { A = 41, B = 9 };
        float pa[A], ga[A], sa[3][A];
        double pb[B], gb[B], sb[3][B];
        float qa[A];
        double qb[B];
        for (int i = 0; i < A; i++) pa[i] = qa[i] = (float)sin(i);
        for (int i = 0; i < B; i++) pb[i] = qb[i] = cos(i);
        for (int s = 0; s < 3; s++) {
            for (int i = 0; i < A; i++) sa[s][i] = (float)c->initial_accumulator_value;
            for (int i = 0; i < B; i++) sb[s][i] = c->initial_accumulator_value;
        }
        adamcore_optimizer *opt = NULL;
        CHECK(adamcore_optimizer_create(c, &opt) == ADAMCORE_OK, "create %d", k);
        size_t index = 99;
        CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, qa, ga, A, NULL, 0, &index) == ADAMCORE_OK && index == 0, "add a");
        CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT64, qb, gb, B, NULL, 0, &index) == ADAMCORE_OK && index == 1, "add b");
        double lipschitz = 0;
        for (int t = 1; t <= 30; t++) {
            for (int i = 0; i < A; i++) ga[i] = (float)(sin(0.3 * t + i) * 0.5);
            for (int i = 0; i < B; i++) gb[i] = cos(0.7 * t - i) * 0.25;
            CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "object step");
            int s0 = ADAMCORE_OK, s1 = ADAMCORE_OK;
            switch (c->algorithm) {
            case ADAMCORE_ADAM:
                s0 = adamcore_adam_step_f32(c, t, A, pa, ga, sa[0], sa[1], c->flags & ADAMCORE_FLAG_AMSGRAD ? sa[2] : NULL);
                s1 = adamcore_adam_step_f64(c, t, B, pb, gb, sb[0], sb[1], c->flags & ADAMCORE_FLAG_AMSGRAD ? sb[2] : NULL);
                break;
            case ADAMCORE_SGD:
                s0 = adamcore_sgd_step_f32(c, t, A, pa, ga, sa[0]);
                s1 = adamcore_sgd_step_f64(c, t, B, pb, gb, sb[0]);
                break;
            case ADAMCORE_RMSPROP:
                s0 = adamcore_rmsprop_step_f32(c, t, A, pa, ga, sa[0], sa[1], sa[2]);
                s1 = adamcore_rmsprop_step_f64(c, t, B, pb, gb, sb[0], sb[1], sb[2]);
                break;
            case ADAMCORE_ADAGRAD:
                s0 = adamcore_adagrad_step_f32(c, t, A, pa, ga, sa[0]);
                s1 = adamcore_adagrad_step_f64(c, t, B, pb, gb, sb[0]);
                break;
            }
            CHECK(s0 == ADAMCORE_OK && s1 == ADAMCORE_OK, "stateless steps of config %d: %s %s", k,
                  adamcore_status_name(s0), adamcore_status_name(s1));
            if (c->algorithm == ADAMCORE_ADAFIX) {
                /* g' = g (a linear loss): every ratio is 0, so L stays 0 and the gate stays open. */
                float na[A];
                double nb[B];
                for (int i = 0; i < A; i++) na[i] = ga[i];
                for (int i = 0; i < B; i++) nb[i] = gb[i];
                const void *fresh[2] = {na, nb};
                CHECK(adamcore_optimizer_adafix_observe(opt, NULL, fresh, 2) == ADAMCORE_OK, "observe");
                (void)lipschitz;
            }
        }
        if (c->algorithm != ADAMCORE_ADAFIX) {
            CHECK(memcmp(pa, qa, sizeof pa) == 0 && memcmp(pb, qb, sizeof pb) == 0, "config %d: object and stateless differ", k);
            size_t slots = 0;
            adamcore_config_state_count(c, &slots);
            for (size_t s = 0; s < slots; s++) {
                void *buffer = NULL;
                CHECK(adamcore_optimizer_state_buffer(opt, 0, s, &buffer) == ADAMCORE_OK, "state buffer");
                CHECK(buffer && memcmp(buffer, sa[s], sizeof sa[s]) == 0, "config %d slot %zu differs", k, s);
            }
        } else {
            int updated = -1;
            CHECK(adamcore_optimizer_adafix_v_updated(opt, &updated) == ADAMCORE_OK && updated == 1, "v_updated with L = 0");
            CHECK(adamcore_optimizer_get_lipschitz(opt, &lipschitz) == ADAMCORE_OK, "get L");
            CHECK(lipschitz == 0, "g' equal to g gives L = 0, got %g", lipschitz);
        }
        int64_t step = -1;
        CHECK(adamcore_optimizer_get_step(opt, &step) == ADAMCORE_OK && step == 30, "step count %lld", (long long)step);
        CHECK(adamcore_optimizer_destroy(opt) == ADAMCORE_OK, "destroy");
    }
}

static void test_optimizer_errors(void) {
    adamcore_config adam = config_of(ADAMCORE_ADAM), sgd = config_of(ADAMCORE_SGD), adafix = config_of(ADAMCORE_ADAFIX);
    adamcore_optimizer *opt = NULL, *fix = NULL;
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_create(&adam, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_create(NULL, &opt));
    CHECK(opt == NULL, "no handle on failure");
    CHECK(adamcore_optimizer_create(&adam, &opt) == ADAMCORE_OK && opt, "create");
    CHECK(adamcore_optimizer_create(&adafix, &fix) == ADAMCORE_OK && fix, "create adafix");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.p, arena.g, N, NULL, 0, NULL) == ADAMCORE_OK, "add");
    void *state[2] = {arena.md, arena.vd};
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT64, arena.pd, NULL, N, state, 2, NULL) == ADAMCORE_OK, "add caller state");
    const void *grads[2] = {arena.g, arena.gd};
    const void *bad_grads[2] = {arena.g, arena.pd};
    void *state_bad[2] = {arena.m, arena.m};

    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_step(NULL, grads, 2));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_add_tensor(NULL, 0, ADAMCORE_FLOAT32, arena.other, NULL, N, NULL, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_step(opt, NULL, 2)); /* tensor 1 has no registered grad */
    EXPECT_STATUS(ADAMCORE_E_COUNT, adamcore_optimizer_step(opt, grads, 1));
    EXPECT_STATUS(ADAMCORE_E_COUNT, adamcore_optimizer_step(opt, grads, SIZE_MAX));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step(opt, bad_grads, 2));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.p + 5, NULL, 3, NULL, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.other, NULL, N, (void *const *)state_bad, 2, NULL));
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor(opt, 0, 7, arena.other, NULL, N, NULL, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_add_tensor(opt, 1, ADAMCORE_FLOAT32, arena.other, NULL, N, NULL, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_STATE, adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.other, NULL, N, (void *const *)state_bad, 1, NULL));
    EXPECT_STATUS(ADAMCORE_E_MISALIGNED, adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT64, (char *)arena.vmax + 4, NULL, 1, NULL, 0, NULL));
    /* 16 PiB of state cannot be allocated. The claimed param starts at 2^48, above every real buffer (user space
     * ends at 2^47 unless a mapping asks for more) and ends below 2^57, so only the allocation can fail; the library
     * never touches the claimed memory. */
    float *far_away = (float *)((uintptr_t)1 << 48);
    EXPECT_STATUS(ADAMCORE_E_NO_MEMORY, adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, far_away, NULL, (size_t)1 << 52, NULL, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_LENGTH, adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.other, NULL, SIZE_MAX / 2, NULL, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_add_group(opt, &sgd, &arena.size_out));
    arena.config = adam;
    arena.config.flags = ADAMCORE_FLAG_AMSGRAD;
    EXPECT_STATUS(ADAMCORE_E_STATE, adamcore_optimizer_set_config(opt, 0, &arena.config));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_set_config(opt, 3, &adam));
    arena.config.struct_size = 4;
    EXPECT_STATUS(ADAMCORE_E_STRUCT_SIZE, adamcore_optimizer_get_config(opt, 0, &arena.config));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_state_buffer(opt, 0, 2, (void **)&arena.size_out));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_tensor_info(opt, 2, &arena.size_out, NULL));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_get_lipschitz(opt, &arena.double_out));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_adafix_observe(opt, NULL, grads, 2));
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_optimizer_set_step(opt, -1));
    EXPECT_STATUS(ADAMCORE_E_SEQUENCE, adamcore_optimizer_adafix_observe(fix, NULL, grads, 0));
    EXPECT_STATUS(ADAMCORE_E_LIPSCHITZ, adamcore_optimizer_set_lipschitz(fix, NAN));
    EXPECT_STATUS(ADAMCORE_E_NONFINITE, adamcore_optimizer_set_adafix_step_norm_sq(fix, -0.5));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_get_adafix_step_norm_sq(opt, &arena.double_out));
    double norm = 0;
    CHECK(adamcore_optimizer_get_adafix_step_norm_sq(fix, &norm) == ADAMCORE_OK && norm == -1, "no step yet: -1");
    CHECK(adamcore_optimizer_set_adafix_step_norm_sq(fix, 2.5) == ADAMCORE_OK, "restore");
    CHECK(adamcore_optimizer_get_adafix_step_norm_sq(fix, &norm) == ADAMCORE_OK && norm == 2.5, "restored %g", norm);
    CHECK(adamcore_optimizer_set_adafix_step_norm_sq(fix, -1) == ADAMCORE_OK, "clear");
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_get_step(opt, NULL));

    /* The step count cannot overflow: at INT64_MAX the step is refused and nothing moves. */
    CHECK(adamcore_optimizer_set_step(opt, INT64_MAX) == ADAMCORE_OK, "set step");
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_optimizer_step(opt, grads, 2));
    CHECK(adamcore_optimizer_set_step(opt, 0) == ADAMCORE_OK, "reset step");

    /* A valid step does write, and the library-owned state follows the caller-owned one's rules. */
    memcpy(snapshot, &arena, sizeof arena);
    CHECK(adamcore_optimizer_step(opt, grads, 2) == ADAMCORE_OK, "valid step");
    CHECK(memcmp(snapshot, &arena, sizeof arena) != 0, "a valid step writes");
    size_t count = 0, groups = 0;
    int dtype = 0;
    CHECK(adamcore_optimizer_tensor_count(opt, &count) == ADAMCORE_OK && count == 2, "tensor count");
    CHECK(adamcore_optimizer_tensor_info(opt, 1, &count, &dtype) == ADAMCORE_OK && count == N && dtype == ADAMCORE_FLOAT64, "info");
    CHECK(adamcore_optimizer_group_count(opt, &groups) == ADAMCORE_OK && groups == 1, "groups");
    void *buffer = NULL;
    CHECK(adamcore_optimizer_state_buffer(opt, 1, 1, &buffer) == ADAMCORE_OK && buffer == arena.vd, "caller state returned");
    adamcore_config got = config_of(ADAMCORE_SGD);
    CHECK(adamcore_optimizer_get_config(opt, 0, &got) == ADAMCORE_OK && got.algorithm == ADAMCORE_ADAM, "get config");
    got.lr = 0.5;
    CHECK(adamcore_optimizer_set_config(opt, 0, &got) == ADAMCORE_OK, "scheduler changes lr");
    size_t group = 0;
    CHECK(adamcore_optimizer_add_group(opt, &adam, &group) == ADAMCORE_OK && group == 1, "add group");
    CHECK(adamcore_optimizer_destroy(opt) == ADAMCORE_OK, "destroy");
    CHECK(adamcore_optimizer_destroy(fix) == ADAMCORE_OK, "destroy adafix");
    CHECK(adamcore_optimizer_destroy(NULL) == ADAMCORE_OK, "destroy NULL");

    /* Freed and stray handles are refused, never dereferenced. */
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_destroy(opt));                    /* double free */
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_step(opt, grads, 2));              /* use after free */
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_get_step(fix, &arena.step_out));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.other, NULL, N, NULL, 0, NULL));
    adamcore_optimizer *stray = (adamcore_optimizer *)(void *)arena.other;                   /* not a handle at all */
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_step(stray, NULL, 0));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_destroy(stray));
    adamcore_optimizer *wild = (adamcore_optimizer *)(uintptr_t)0x10;                        /* unmapped memory */
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_set_step(wild, 1));
}

/* A guarded step with a NaN or Inf anywhere writes nothing and keeps the step count; found_inf skips the same way;
 * without the guard a NaN reaches its own element only. */
static void test_nonfinite_guard(void) {
    adamcore_config adam = config_of(ADAMCORE_ADAM);
    adam.weight_decay = 0.01;
    adamcore_optimizer *opt = NULL, *plain = NULL, *twin = NULL;
    CHECK(adamcore_optimizer_create(&adam, &opt) == ADAMCORE_OK, "create");
    void *state32[2] = {arena.m, arena.v}, *state64[2] = {arena.md, arena.vd};
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.p, arena.g, N, state32, 2, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT64, arena.pd, arena.gd, N, state64, 2, NULL) == ADAMCORE_OK, "add");
    int on = -1;
    CHECK(adamcore_optimizer_get_nonfinite_guard(opt, &on) == ADAMCORE_OK && on == 0, "guard off by default");
    CHECK(adamcore_optimizer_set_nonfinite_guard(opt, 1) == ADAMCORE_OK, "guard on");
    CHECK(adamcore_optimizer_get_nonfinite_guard(opt, &on) == ADAMCORE_OK && on == 1, "guard reads back");
    CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "finite step");

    int64_t step = 0, skipped = -1;
    uint64_t nonfinite = 99;
    arena.g[N - 1] = NAN;                     /* in the SIMD tail */
    arena.gd[3] = INFINITY;
    arena.gd[4] = -INFINITY;
    memcpy(snapshot, &arena, sizeof arena);
    CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_STEP_SKIPPED, "guarded step with NaN and Inf is skipped");
    CHECK(memcmp(snapshot, &arena, sizeof arena) == 0, "a skipped step wrote nothing");
    CHECK(adamcore_optimizer_get_step(opt, &step) == ADAMCORE_OK && step == 1, "step count kept: %lld", (long long)step);
    CHECK(adamcore_optimizer_get_skipped_steps(opt, &skipped, &nonfinite) == ADAMCORE_OK && skipped == 1 && nonfinite == 3,
          "skipped %lld, counted %llu", (long long)skipped, (unsigned long long)nonfinite);

    adamcore_step_options options;
    CHECK(adamcore_step_options_init(&options) == ADAMCORE_OK && options.grad_scale == 1 && options.found_inf == 0, "options init");
    fill_arena();
    options.found_inf = 1;
    memcpy(snapshot, &arena, sizeof arena);
    CHECK(adamcore_optimizer_step_with_options(opt, NULL, 2, &options) == ADAMCORE_STEP_SKIPPED, "found_inf skips");
    CHECK(memcmp(snapshot, &arena, sizeof arena) == 0, "found_inf wrote nothing");
    CHECK(adamcore_optimizer_get_skipped_steps(opt, &skipped, NULL) == ADAMCORE_OK && skipped == 2, "two skipped");
    CHECK(adamcore_optimizer_step_with_options(opt, NULL, 2, NULL) == ADAMCORE_OK, "NULL options: a plain step");
    CHECK(adamcore_optimizer_get_skipped_steps(opt, NULL, &nonfinite) == ADAMCORE_OK && nonfinite == 0, "clean step counts 0");

    /* Option errors. */
    options.found_inf = 0;
    const double bad_scales[] = {0, -1, NAN, INFINITY, -0.0};
    for (int k = 0; k < 5; k++) {
        options.grad_scale = bad_scales[k];
        EXPECT_STATUS(ADAMCORE_E_GRAD_SCALE, adamcore_optimizer_step_with_options(opt, NULL, 2, &options));
    }
    options.grad_scale = 1;
    options.struct_size = 8;
    EXPECT_STATUS(ADAMCORE_E_STRUCT_SIZE, adamcore_optimizer_step_with_options(opt, NULL, 2, &options));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_step_options_init(NULL));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_set_nonfinite_guard(NULL, 1));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_get_nonfinite_guard(opt, NULL));
    adamcore_config fix = config_of(ADAMCORE_ADAFIX);
    adamcore_optimizer *adafix = NULL;
    CHECK(adamcore_optimizer_create(&fix, &adafix) == ADAMCORE_OK, "adafix");
    CHECK(adamcore_optimizer_add_tensor(adafix, 0, ADAMCORE_FLOAT32, arena.other, arena.g, N, NULL, 0, NULL) == ADAMCORE_OK, "add");
    adamcore_step_options_init(&options);
    options.grad_scale = 2;
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_step_with_options(adafix, NULL, 1, &options));
    adamcore_optimizer_destroy(adafix);
    adamcore_optimizer_destroy(opt);

    /* Guard off: a NaN in element 7 of one step poisons element 7 only; every other element equals a twin run
     * whose element 7 stayed finite. */
    float pa[N], pb[N], ga[N], gb[N];
    for (int i = 0; i < N; i++) pa[i] = pb[i] = (float)cos(i);
    CHECK(adamcore_optimizer_create(&adam, &plain) == ADAMCORE_OK && adamcore_optimizer_create(&adam, &twin) == ADAMCORE_OK, "create");
    CHECK(adamcore_optimizer_add_tensor(plain, 0, ADAMCORE_FLOAT32, pa, ga, N, NULL, 0, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_add_tensor(twin, 0, ADAMCORE_FLOAT32, pb, gb, N, NULL, 0, NULL) == ADAMCORE_OK, "add");
    for (int t = 1; t <= 5; t++) {
        for (int i = 0; i < N; i++) ga[i] = gb[i] = (float)sin(t + i);
        if (t == 3) ga[7] = NAN;
        CHECK(adamcore_optimizer_step(plain, NULL, 1) == ADAMCORE_OK && adamcore_optimizer_step(twin, NULL, 1) == ADAMCORE_OK, "steps");
    }
    int others_equal = 1;
    for (int i = 0; i < N; i++) if (i != 7 && memcmp(&pa[i], &pb[i], sizeof(float)) != 0) others_equal = 0;
    CHECK(isnan(pa[7]) && others_equal, "unguarded NaN: element 7 is %g, the others equal the twin: %d", pa[7], others_equal);
    adamcore_optimizer_destroy(plain);
    adamcore_optimizer_destroy(twin);
}

/* AMP: gradients scaled by a power of two with grad_scale set step exactly as the unscaled gradients, for every
 * algorithm and both weight-decay forms. */
static void test_grad_scale(void) {
    adamcore_config configs[7];
    configs[0] = config_of(ADAMCORE_ADAM); configs[0].weight_decay = 0.1;
    configs[1] = config_of(ADAMCORE_ADAM); configs[1].flags = ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY | ADAMCORE_FLAG_AMSGRAD; configs[1].weight_decay = 0.1;
    configs[2] = config_of(ADAMCORE_ADAM); configs[2].flags = ADAMCORE_FLAG_AMSGRAD | ADAMCORE_FLAG_MAXIMIZE; configs[2].weight_decay = 0.01;
    configs[3] = config_of(ADAMCORE_SGD); configs[3].momentum = 0.9; configs[3].flags = ADAMCORE_FLAG_NESTEROV; configs[3].weight_decay = 0.1;
    configs[4] = config_of(ADAMCORE_RMSPROP); configs[4].momentum = 0.5; configs[4].flags = ADAMCORE_FLAG_CENTERED; configs[4].weight_decay = 0.01;
    configs[5] = config_of(ADAMCORE_ADAGRAD); configs[5].weight_decay = 0.1; configs[5].lr_decay = 0.01;
    configs[6] = config_of(ADAMCORE_ADAM); configs[6].eps_root = 1e-8;
    const double scales[] = {65536.0, 0.125, 1099511627776.0 /* 2^40 */};
    for (int k = 0; k < 7; k++) {
        for (int s = 0; s < 3; s++) {
            enum { A = 45 };
            float ref[A], amp[A], g[A], gs[A];
            double refd[A], ampd[A], gd[A], gsd[A];
            for (int i = 0; i < A; i++) { ref[i] = amp[i] = (float)sin(2 * i); refd[i] = ampd[i] = cos(3 * i); }
            adamcore_optimizer *a = NULL, *b = NULL;
            CHECK(adamcore_optimizer_create(&configs[k], &a) == ADAMCORE_OK && adamcore_optimizer_create(&configs[k], &b) == ADAMCORE_OK, "create");
            adamcore_optimizer_add_tensor(a, 0, ADAMCORE_FLOAT32, ref, NULL, A, NULL, 0, NULL);
            adamcore_optimizer_add_tensor(a, 0, ADAMCORE_FLOAT64, refd, NULL, A, NULL, 0, NULL);
            adamcore_optimizer_add_tensor(b, 0, ADAMCORE_FLOAT32, amp, NULL, A, NULL, 0, NULL);
            adamcore_optimizer_add_tensor(b, 0, ADAMCORE_FLOAT64, ampd, NULL, A, NULL, 0, NULL);
            adamcore_step_options options;
            adamcore_step_options_init(&options);
            options.grad_scale = scales[s];
            int ok = 1;
            for (int t = 1; t <= 20; t++) {
                for (int i = 0; i < A; i++) {
                    g[i] = (float)(sin(0.37 * t * i) * 0.01); gs[i] = (float)(g[i] * scales[s]);
                    gd[i] = cos(0.29 * t + i) * 0.02; gsd[i] = gd[i] * scales[s];
                }
                const void *plain[2] = {g, gd}, *scaled[2] = {gs, gsd};
                ok &= adamcore_optimizer_step(a, plain, 2) == ADAMCORE_OK;
                ok &= adamcore_optimizer_step_with_options(b, scaled, 2, &options) == ADAMCORE_OK;
            }
            CHECK(ok, "steps of config %d", k);
            CHECK(memcmp(ref, amp, sizeof ref) == 0 && memcmp(refd, ampd, sizeof refd) == 0,
                  "config %d, scale %g: scaled steps differ from unscaled ones", k, scales[s]);
            adamcore_optimizer_destroy(a);
            adamcore_optimizer_destroy(b);
        }
    }
}

/* Checkpoints: a run saved, loaded into a fresh optimizer and continued is bit-identical to one that never stopped,
 * for every algorithm, both dtypes, two groups, through a file and through memory. */
enum { CK_A = 45, CK_B = 1000 };
typedef struct {
    float p32[CK_A];
    double p64[CK_B];
    float g32[CK_A];
    double g64[CK_B];
} ck_model;

static void ck_gradients(ck_model *m, int t) {
    for (int i = 0; i < CK_A; i++) m->g32[i] = (float)(sin(0.37 * t + 0.1 * i) * (1 + i % 3)) + 0.01f * m->p32[i];
    for (int i = 0; i < CK_B; i++) m->g64[i] = cos(0.23 * t - 0.01 * i) * 0.5 + 0.02 * m->p64[i];
}

static adamcore_optimizer *ck_optimizer(const adamcore_config *c, const adamcore_config *second, ck_model *m) {
    adamcore_optimizer *opt = NULL;
    size_t group = 0;
    CHECK(adamcore_optimizer_create(c, &opt) == ADAMCORE_OK, "create");
    CHECK(adamcore_optimizer_add_group(opt, second, &group) == ADAMCORE_OK && group == 1, "second group");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, m->p32, m->g32, CK_A, NULL, 0, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_add_tensor(opt, 1, ADAMCORE_FLOAT64, m->p64, m->g64, CK_B, NULL, 0, NULL) == ADAMCORE_OK, "add");
    return opt;
}

static void ck_steps(adamcore_optimizer *opt, ck_model *m, int from, int to) {
    for (int t = from; t <= to; t++) {
        ck_gradients(m, t);
        CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "step %d", t);
    }
}

/* Every state buffer, the step count and L of two optimizers are equal bit for bit. */
static int ck_same_state(adamcore_optimizer *a, adamcore_optimizer *b, const adamcore_config *c) {
    size_t slots = 0;
    adamcore_config_state_count(c, &slots);
    int same = 1;
    for (size_t tensor = 0; tensor < 2; tensor++)
        for (size_t s = 0; s < slots; s++) {
            void *x = NULL, *y = NULL;
            adamcore_optimizer_state_buffer(a, tensor, s, &x);
            adamcore_optimizer_state_buffer(b, tensor, s, &y);
            same &= x && y && memcmp(x, y, tensor == 0 ? CK_A * sizeof(float) : CK_B * sizeof(double)) == 0;
        }
    int64_t sa = 0, sb = 0;
    adamcore_optimizer_get_step(a, &sa);
    adamcore_optimizer_get_step(b, &sb);
    double la = 0, lb = 0;
    if (c->algorithm == ADAMCORE_ADAFIX) {
        adamcore_optimizer_get_lipschitz(a, &la);
        adamcore_optimizer_get_lipschitz(b, &lb);
    }
    return same && sa == sb && la == lb;
}

static void test_checkpoint_continuation(const char *dir) {
    adamcore_config configs[6], seconds[6];
    configs[0] = config_of(ADAMCORE_ADAM); configs[0].flags = ADAMCORE_FLAG_AMSGRAD; configs[0].weight_decay = 0.01;
    configs[1] = config_of(ADAMCORE_ADAFIX); configs[1].flags = ADAMCORE_FLAG_ADAFIX_NEXT_GRADIENT; configs[1].lr = 0.05;
    configs[2] = config_of(ADAMCORE_SGD); configs[2].momentum = 0.9; configs[2].dampening = 0.1;
    configs[3] = config_of(ADAMCORE_RMSPROP); configs[3].momentum = 0.5; configs[3].flags = ADAMCORE_FLAG_CENTERED;
    configs[4] = config_of(ADAMCORE_ADAGRAD); configs[4].initial_accumulator_value = 0.1; configs[4].lr_decay = 0.01;
    configs[5] = config_of(ADAMCORE_ADAM); configs[5].flags = ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY; configs[5].weight_decay = 0.1;
    char path[512];
    snprintf(path, sizeof path, "%s/run.safetensors", dir);
    for (int k = 0; k < 6; k++) {
        seconds[k] = configs[k];
        seconds[k].lr *= 0.5;
        for (int via_memory = 0; via_memory < 2; via_memory++) {
            static ck_model straight, resumed;
            for (int i = 0; i < CK_A; i++) straight.p32[i] = resumed.p32[i] = (float)sin(i);
            for (int i = 0; i < CK_B; i++) straight.p64[i] = resumed.p64[i] = cos(i);
            adamcore_optimizer *a = ck_optimizer(&configs[k], &seconds[k], &straight);
            adamcore_optimizer *b = ck_optimizer(&configs[k], &seconds[k], &resumed);
            ck_steps(a, &straight, 1, 40);
            ck_steps(b, &resumed, 1, 20);
            void *bytes = NULL;
            size_t size = 0, written = 0;
            if (via_memory) {
                CHECK(adamcore_optimizer_checkpoint_size(b, &size) == ADAMCORE_OK && size > 8, "size");
                bytes = malloc(size);
                CHECK(adamcore_optimizer_save_to_memory(b, bytes, size, &written) == ADAMCORE_OK && written == size, "save to memory");
            } else {
                CHECK(adamcore_optimizer_save(b, path) == ADAMCORE_OK, "save %s", path);
            }
            CHECK(adamcore_optimizer_destroy(b) == ADAMCORE_OK, "destroy");
            /* A fresh optimizer over the same parameters: state zero until loaded. */
            adamcore_optimizer *c = ck_optimizer(&configs[k], &configs[k], &resumed);
            int status = via_memory ? adamcore_optimizer_load_from_memory(c, bytes, size) : adamcore_optimizer_load(c, path);
            CHECK(status == ADAMCORE_OK, "config %d: load returned %s", k, adamcore_status_name(status));
            adamcore_config restored;
            adamcore_config_init(&restored, ADAMCORE_SGD);
            CHECK(adamcore_optimizer_get_config(c, 1, &restored) == ADAMCORE_OK && restored.lr == seconds[k].lr,
                  "group 1's lr restored: %g", restored.lr);
            ck_steps(c, &resumed, 21, 40);
            CHECK(memcmp(straight.p32, resumed.p32, sizeof straight.p32) == 0 &&
                  memcmp(straight.p64, resumed.p64, sizeof straight.p64) == 0 && ck_same_state(a, c, &configs[k]),
                  "config %d (%s): resumed run differs from the straight one", k, via_memory ? "memory" : "file");
            if (configs[k].algorithm == ADAMCORE_ADAFIX) {
                double l = 0;
                adamcore_optimizer_get_lipschitz(a, &l);
                CHECK(l > 0, "AdaFix's L was estimated (%g), so the checkpoint carried a real value", l);
            }
            free(bytes);
            adamcore_optimizer_destroy(a);
            adamcore_optimizer_destroy(c);
        }
    }
}

/* Every malformed or mismatched checkpoint is refused with the optimizer and the arena untouched. */
static void test_checkpoint_errors(const char *dir) {
    adamcore_config adam = config_of(ADAMCORE_ADAM), sgd = config_of(ADAMCORE_SGD);
    adamcore_optimizer *opt = NULL, *other = NULL;
    void *state32[2] = {arena.m, arena.v}, *state64[2] = {arena.md, arena.vd};
    CHECK(adamcore_optimizer_create(&adam, &opt) == ADAMCORE_OK, "create");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.p, arena.g, N, state32, 2, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT64, arena.pd, arena.gd, N, state64, 2, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "a step, so the state is not all zero");
    size_t size = 0;
    CHECK(adamcore_optimizer_checkpoint_size(opt, &size) == ADAMCORE_OK, "size");
    unsigned char *good = malloc(size), *bad = malloc(size + 16);
    CHECK(adamcore_optimizer_save_to_memory(opt, good, size, NULL) == ADAMCORE_OK, "save");
    /* The header is JSON after an 8-byte length; its first bytes are fixed. */
    uint64_t header = 0;
    memcpy(&header, good, 8);
    CHECK(header % 8 == 0 && header < size && good[8] == '{', "header length %llu", (unsigned long long)header);
    CHECK(strstr((const char *)good + 8, "\"tensor.1.exp_avg_sq\":{\"dtype\":\"F64\",\"shape\":[37]") != NULL, "entry layout");

    char path[512], missing[512];
    snprintf(path, sizeof path, "%s/errors.safetensors", dir);
    snprintf(missing, sizeof missing, "%s/no-such-dir/x.safetensors", dir);
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_load(opt, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_save(opt, NULL));
    EXPECT_STATUS(ADAMCORE_E_IO, adamcore_optimizer_load(opt, missing));
    EXPECT_STATUS(ADAMCORE_E_IO, adamcore_optimizer_load(opt, dir));                       /* a directory */
    EXPECT_STATUS(ADAMCORE_E_IO, adamcore_optimizer_save(opt, missing));
    EXPECT_STATUS(ADAMCORE_E_IO, adamcore_optimizer_save(opt, dir));                       /* rename onto a directory */
    EXPECT_STATUS(ADAMCORE_E_IO, adamcore_optimizer_load(opt, ""));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_save(NULL, path));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_checkpoint_size(opt, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_load_from_memory(opt, NULL, 10));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_save_to_memory(opt, NULL, 10, NULL));
    EXPECT_STATUS(ADAMCORE_E_LENGTH, adamcore_optimizer_save_to_memory(opt, bad, size - 1, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_save_to_memory(opt, arena.v, sizeof arena.v, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_load_from_memory(opt, arena.m, sizeof arena.m));

    /* Bytes: each mutation of a valid checkpoint. */
    EXPECT_STATUS(ADAMCORE_E_FORMAT, adamcore_optimizer_load_from_memory(opt, good, 0));
    EXPECT_STATUS(ADAMCORE_E_FORMAT, adamcore_optimizer_load_from_memory(opt, good, 7));
    EXPECT_STATUS(ADAMCORE_E_FORMAT, adamcore_optimizer_load_from_memory(opt, good, size - 1));   /* truncated data */
    EXPECT_STATUS(ADAMCORE_E_FORMAT, adamcore_optimizer_load_from_memory(opt, good, 8 + header)); /* no data */
    memcpy(bad, good, size);
    memset(bad + size, 0, 16);
    EXPECT_STATUS(ADAMCORE_E_FORMAT, adamcore_optimizer_load_from_memory(opt, bad, size + 4));    /* trailing bytes */
    bad[0] ^= 0x40;                                                                                 /* length past the end */
    EXPECT_STATUS(ADAMCORE_E_FORMAT, adamcore_optimizer_load_from_memory(opt, bad, size));
    memcpy(bad, good, size);
    bad[8] = '[';                                                                                   /* not an object */
    EXPECT_STATUS(ADAMCORE_E_FORMAT, adamcore_optimizer_load_from_memory(opt, bad, size));
    const char *edits[][2] = {
        {"\"format\":\"adamcore-optimizer\"", "\"format\":\"adamcore-optimizes\""},
        {"\"version\":\"3\"", "\"version\":\"9\""},  /* a version this library never wrote */
        {"\"tensor.0.step\":\"1\"", "\"tensor.0.step\":\"-\""},
        {"\"step\":\"1\"", "\"step\":\"x\""},
        {"\"dtype\":\"F32\"", "\"dtype\":\"F31\""},
        {"lr=0.001", "lr=-0.01"},                   /* an invalid hyperparameter */
        {"\"shape\":[37]", "\"shape\":[38]"},       /* disagrees with its byte range */
        {"\"data_offsets\":[0,", "\"data_offsets\":[4,"},
        {"\"groups\":\"1\"", "\"groups\":\"2\""},    /* group.1 missing */
        {"\"rounding_seed\":\"0\"", "\"rounding_seed\":\"-\""},
        {"state=F32", "state=BF1"},                 /* another tensor layout */
    };
    const int edit_status[] = {ADAMCORE_E_FORMAT, ADAMCORE_E_FORMAT, ADAMCORE_E_FORMAT, ADAMCORE_E_FORMAT, ADAMCORE_E_FORMAT,
                               ADAMCORE_E_FORMAT, ADAMCORE_E_FORMAT, ADAMCORE_E_FORMAT, ADAMCORE_E_MISMATCH,
                               ADAMCORE_E_FORMAT, ADAMCORE_E_MISMATCH};
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(bad, good, size);
        char *at = strstr((char *)bad + 8, edits[e][0]);
        CHECK(at != NULL && strlen(edits[e][0]) == strlen(edits[e][1]), "edit %zu applies", e);
        if (!at) continue;
        memcpy(at, edits[e][1], strlen(edits[e][1]));
        EXPECT_STATUS(edit_status[e], adamcore_optimizer_load_from_memory(opt, bad, size));
    }
    /* Well formed, other optimizer: another algorithm, another tensor count, another dtype. */
    float p2[N] = {0}, g2[N] = {0};
    CHECK(adamcore_optimizer_create(&sgd, &other) == ADAMCORE_OK, "sgd");
    CHECK(adamcore_optimizer_add_tensor(other, 0, ADAMCORE_FLOAT32, p2, g2, N, NULL, 0, NULL) == ADAMCORE_OK, "add");
    EXPECT_STATUS(ADAMCORE_E_MISMATCH, adamcore_optimizer_load_from_memory(other, good, size));
    adamcore_optimizer_destroy(other);
    CHECK(adamcore_optimizer_create(&adam, &other) == ADAMCORE_OK, "adam");
    CHECK(adamcore_optimizer_add_tensor(other, 0, ADAMCORE_FLOAT32, p2, g2, N, NULL, 0, NULL) == ADAMCORE_OK, "add");
    EXPECT_STATUS(ADAMCORE_E_MISMATCH, adamcore_optimizer_load_from_memory(other, good, size));
    double d2[N] = {0};
    CHECK(adamcore_optimizer_add_tensor(other, 0, ADAMCORE_FLOAT64, d2, NULL, N - 1, NULL, 0, NULL) == ADAMCORE_OK, "add");
    EXPECT_STATUS(ADAMCORE_E_MISMATCH, adamcore_optimizer_load_from_memory(other, good, size));
    adamcore_optimizer_destroy(other);

    /* Nothing above changed the optimizer: its checkpoint is still byte for byte the first one. */
    memset(bad, 0, size);
    CHECK(adamcore_optimizer_save_to_memory(opt, bad, size, NULL) == ADAMCORE_OK && memcmp(bad, good, size) == 0,
          "refused loads left the optimizer as it was");
    /* And no temporary file survived the failed saves. */
    CHECK(adamcore_optimizer_save(opt, path) == ADAMCORE_OK, "save");
    char command[1200];
    snprintf(command, sizeof command, "test $(ls -A '%s' | grep -c tmp) -eq 0", dir);
    CHECK(system(command) == 0, "temporary files left in %s", dir);
    free(good);
    free(bad);
    adamcore_optimizer_destroy(opt);
}

/* A saver killed at a random moment leaves a loadable checkpoint at the path: the previous one or the new one. */
static void test_checkpoint_crash(const char *dir) {
    enum { BIG = 1 << 22 };
    char path[512];
    snprintf(path, sizeof path, "%s/crash.safetensors", dir);
    float *p = calloc(BIG, sizeof(float)), *g = calloc(BIG, sizeof(float));
    adamcore_config adam = config_of(ADAMCORE_ADAM);
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(&adam, &opt) == ADAMCORE_OK, "create");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, p, g, BIG, NULL, 0, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_save(opt, path) == ADAMCORE_OK, "first save");
    int loadable = 0, rounds = 5;
    for (int round = 0; round < rounds; round++) {
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            for (int t = 0;; t++) {
                for (int i = 0; i < BIG; i += 4096) g[i] = (float)t;
                adamcore_optimizer_step(opt, NULL, 1);
                adamcore_optimizer_save(opt, path);
            }
        }
        struct timespec pause = {0, 20000000L + 7000000L * round};
        nanosleep(&pause, NULL);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        loadable += adamcore_optimizer_load(opt, path) == ADAMCORE_OK;
    }
    CHECK(loadable == rounds, "after killing the saver mid-write the checkpoint loaded %d of %d times", loadable, rounds);
    char command[1200];
    snprintf(command, sizeof command, "rm -f '%s'/*.tmp.*", dir);
    CHECK(system(command) == 0, "remove the killed savers' temporaries");
    adamcore_optimizer_destroy(opt);
    free(p);
    free(g);
}

/* The header's thread-safety rules under load: distinct optimizers stepped from 8 threads at once (some large
 * enough to use the pool, which then runs concurrent callers alone), stateless steps beside them, and another
 * thread changing the thread count throughout, give exactly the single-threaded results. */
enum { STRESS_THREADS = 8, STRESS_STEPS = 40 };
typedef struct {
    int id;
    size_t n;
    float *p, *g;
    double *pd, *gd, *m, *v;
    int ok;
} stress_job;

static void *stress_run(void *arg) {
    stress_job *job = arg;
    adamcore_config c = config_of(job->id % 2 ? ADAMCORE_ADAM : ADAMCORE_RMSPROP);
    if (job->id % 2) c.flags = ADAMCORE_FLAG_AMSGRAD;
    else c.momentum = 0.5;
    adamcore_config stateless = config_of(ADAMCORE_ADAM);
    adamcore_optimizer *opt = NULL;
    job->ok = adamcore_optimizer_create(&c, &opt) == ADAMCORE_OK &&
              adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, job->p, job->g, job->n, NULL, 0, NULL) == ADAMCORE_OK;
    for (int t = 1; t <= STRESS_STEPS && job->ok; t++) {
        for (size_t i = 0; i < job->n; i += 97) job->g[i] = (float)sin(t + (double)i + job->id);
        job->ok &= adamcore_optimizer_step(opt, NULL, 1) == ADAMCORE_OK;
        for (size_t i = 0; i < 64; i++) job->gd[i] = cos(t * 0.1 + (double)i);
        job->ok &= adamcore_adam_step_f64(&stateless, t, 64, job->pd, job->gd, job->m, job->v, NULL) == ADAMCORE_OK;
    }
    adamcore_optimizer_destroy(opt);
    return NULL;
}

static stress_job stress_new(int id) {
    stress_job job = {.id = id, .n = id % 3 == 0 ? 200000 : 5000 + 1000 * (size_t)id};
    job.p = malloc(job.n * sizeof(float)); job.g = calloc(job.n, sizeof(float));
    job.pd = malloc(64 * sizeof(double)); job.gd = malloc(64 * sizeof(double));
    job.m = calloc(64, sizeof(double)); job.v = calloc(64, sizeof(double));
    for (size_t i = 0; i < job.n; i++) job.p[i] = (float)cos((double)i);
    for (size_t i = 0; i < 64; i++) job.pd[i] = sin((double)i);
    return job;
}

static void stress_free(stress_job *job) {
    free(job->p); free(job->g); free(job->pd); free(job->gd); free(job->m); free(job->v);
}

static volatile int stress_done;
static void *stress_thread_counts(void *arg) {
    (void)arg;
    for (int k = 0; !stress_done; k++) adamcore_set_num_threads(1 + k % 3);
    return NULL;
}

static void test_thread_stress(void) {
    stress_job alone[STRESS_THREADS], together[STRESS_THREADS];
    for (int id = 0; id < STRESS_THREADS; id++) {
        alone[id] = stress_new(id);
        together[id] = stress_new(id);
        stress_run(&alone[id]);       /* one after another on this thread */
    }
    pthread_t threads[STRESS_THREADS], changer;
    stress_done = 0;
    CHECK(pthread_create(&changer, NULL, stress_thread_counts, NULL) == 0, "thread");
    for (int id = 0; id < STRESS_THREADS; id++) CHECK(pthread_create(&threads[id], NULL, stress_run, &together[id]) == 0, "thread");
    for (int id = 0; id < STRESS_THREADS; id++) pthread_join(threads[id], NULL);
    stress_done = 1;
    pthread_join(changer, NULL);
    adamcore_set_num_threads(0);
    for (int id = 0; id < STRESS_THREADS; id++) {
        CHECK(alone[id].ok && together[id].ok, "job %d's calls succeeded", id);
        CHECK(memcmp(alone[id].p, together[id].p, alone[id].n * sizeof(float)) == 0 &&
              memcmp(alone[id].pd, together[id].pd, 64 * sizeof(double)) == 0,
              "job %d (%zu elements): concurrent results differ from the sequential ones", id, alone[id].n);
        stress_free(&alone[id]);
        stress_free(&together[id]);
    }
}

/* Statistics through the C API: the same bits with them on, figures equal to a computation from the state here,
 * and the advice for the defaults and a broken setting. */
static void test_stats_and_advice(void) {
    enum { S = 203 };
    float a[S], b[S], g[S], before[S];
    for (int i = 0; i < S; i++) a[i] = b[i] = (float)sin(i);
    adamcore_config c = config_of(ADAMCORE_ADAM);
    c.lr = 0.01;
    adamcore_optimizer *plain = NULL, *measured = NULL;
    CHECK(adamcore_optimizer_create(&c, &plain) == ADAMCORE_OK && adamcore_optimizer_create(&c, &measured) == ADAMCORE_OK, "create");
    adamcore_optimizer_add_tensor(plain, 0, ADAMCORE_FLOAT32, a, g, S, NULL, 0, NULL);
    adamcore_optimizer_add_tensor(measured, 0, ADAMCORE_FLOAT32, b, g, S, NULL, 0, NULL);
    CHECK(adamcore_optimizer_set_stats(measured, 1) == ADAMCORE_OK, "stats on");
    adamcore_step_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    for (int t = 1; t <= 12; t++) {
        for (int i = 0; i < S; i++) g[i] = (float)(cos(0.7 * t * i) * (1 + i % 4));
        memcpy(before, b, sizeof b);
        adamcore_optimizer_step(plain, NULL, 1);
        adamcore_optimizer_step(measured, NULL, 1);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "statistics changed the update");
    CHECK(adamcore_optimizer_get_stats(measured, &st) == ADAMCORE_OK && st.step == 12 && st.count == S, "stats");
    float *m = NULL, *v = NULL;
    adamcore_optimizer_state_buffer(measured, 0, 0, (void **)&m);
    adamcore_optimizer_state_buffer(measured, 0, 1, (void **)&v);
    double bc1 = 1 - pow(0.9, 12), bc2 = 1 - pow(0.999, 12), m2 = 0, v2 = 0, d2 = 0, ratio = 0, lo = INFINITY, hi = 0, sum = 0;
    for (int i = 0; i < S; i++) {
        double denom = sqrt(v[i] / bc2) + 1e-8, d = (double)b[i] - before[i];
        m2 += (double)m[i] * m[i]; v2 += (double)v[i] * v[i]; d2 += d * d;
        ratio = fmax(ratio, fabs(m[i] / bc1 / denom));
        lo = fmin(lo, 0.01 / denom); hi = fmax(hi, 0.01 / denom); sum += 0.01 / denom;
    }
    const double tol = 1e-5;   /* float32 rounding of each element's figure and of the blocked sums */
    CHECK(fabs(st.m_norm - sqrt(m2)) <= tol * sqrt(m2) && fabs(st.v_norm - sqrt(v2)) <= tol * sqrt(v2) &&
          fabs(st.step_norm - sqrt(d2)) <= tol * sqrt(d2), "norms %g %g %g", st.m_norm, st.v_norm, st.step_norm);
    CHECK(fabs(st.max_step_over_lr - ratio) <= tol * ratio && fabs(st.min_effective_lr - lo) <= tol * lo &&
          fabs(st.max_effective_lr - hi) <= tol * hi &&
          fabs(st.mean_effective_lr - sum / S) <= 4e-4 * sum / S, /* float: a sum of reciprocal estimates (1.5*2^-12) */
          "ratio %g vs %g, lr %g..%g mean %g", st.max_step_over_lr, ratio, st.min_effective_lr, st.max_effective_lr,
          st.mean_effective_lr);
    CHECK(fabs(st.step_bound - 7.2703) < 1e-4 && st.max_step_over_lr <= st.step_bound, "bound %g", st.step_bound);
    adamcore_step_stats one = st;
    CHECK(adamcore_optimizer_get_tensor_stats(measured, 0, &one) == ADAMCORE_OK && one.m_norm == st.m_norm, "tensor 0");
    st.struct_size = 3;
    EXPECT_STATUS(ADAMCORE_E_STRUCT_SIZE, adamcore_optimizer_get_stats(measured, &st));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_get_tensor_stats(measured, 1, &one));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_set_stats(measured, -1));
    adamcore_optimizer_destroy(plain);
    adamcore_optimizer_destroy(measured);
    adamcore_config sgd = config_of(ADAMCORE_SGD);
    adamcore_optimizer *s = NULL;
    adamcore_optimizer_create(&sgd, &s);
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_set_stats(s, 1));
    adamcore_optimizer_destroy(s);

    adamcore_advice advice[16];
    size_t count = 0;
    CHECK(adamcore_advise(&c, ADAMCORE_FLOAT32, NULL, 0, &count) == ADAMCORE_OK && count == 3, "defaults: %zu", count);
    CHECK(adamcore_advise(&c, ADAMCORE_FLOAT32, advice, 16, &count) == ADAMCORE_OK, "advise");
    CHECK(advice[0].code == ADAMCORE_ADVICE_MAX_STEP && fabs(advice[0].value - 7.2703) < 1e-4 &&
          advice[1].code == ADAMCORE_ADVICE_FLAT_CROSSING && fabs(advice[1].value - 73.032) < 1e-3 &&
          advice[2].code == ADAMCORE_ADVICE_SPIKE_REGIME && advice[2].value > 99 && strlen(advice[2].message) > 20,
          "default advice: b/a = 100, seed 003's spike regime");
    c.beta1 = 0.99; c.beta2 = 0.9;
    CHECK(adamcore_advise(&c, ADAMCORE_FLOAT16, advice, 16, &count) == ADAMCORE_OK, "advise broken");
    int above = 0, small = 0, eps = 0;
    for (size_t k = 0; k < count; k++) {
        above |= advice[k].code == ADAMCORE_ADVICE_BETA1_ABOVE_SQRT_BETA2 && advice[k].severity == ADAMCORE_ADVICE_WARNING;
        small |= advice[k].code == ADAMCORE_ADVICE_SMALL_BETA2;
        eps |= advice[k].code == ADAMCORE_ADVICE_EPS_UNDERFLOW && advice[k].severity == ADAMCORE_ADVICE_WARNING;
    }
    CHECK(above && small && eps, "beta1 >= sqrt(beta2), small beta2, fp16 eps: %d %d %d", above, small, eps);
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_advise(&c, 9, advice, 16, &arena.size_out));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_advise(&c, ADAMCORE_FLOAT32, NULL, 4, &arena.size_out));
    c.beta1 = 1.5;
    EXPECT_STATUS(ADAMCORE_E_BETA1, adamcore_advise(&c, ADAMCORE_FLOAT32, advice, 16, &arena.size_out));
}

/* ---------------------------------------------------------------------------------------------------------------
 * Subsets of tensors, per-tensor step counts and rebinding a parameter's memory: the object against stateless
 * steps on copies, bit for bit, each tensor at its own step count.
 * ------------------------------------------------------------------------------------------------------------- */

/* Every algorithm but AdaFix (which must step all its tensors), with the options whose rules depend on the step:
 * bias correction (Adam), the first-step rule (SGD momentum with dampening), lr_decay (AdaGrad). */
enum { SUB_CONFIGS = 6 };
static void sub_configs(adamcore_config *c) {
    c[0] = config_of(ADAMCORE_ADAM); c[0].lr = 0.01; c[0].weight_decay = 0.05;
    c[1] = config_of(ADAMCORE_ADAM); c[1].lr = 0.01; c[1].weight_decay = 0.1;
    c[1].flags = ADAMCORE_FLAG_AMSGRAD | ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY;
    c[2] = config_of(ADAMCORE_SGD); c[2].lr = 0.01; c[2].momentum = 0.9; c[2].dampening = 0.3; c[2].weight_decay = 0.01;
    c[3] = config_of(ADAMCORE_SGD); c[3].lr = 0.01; c[3].momentum = 0.8; c[3].flags = ADAMCORE_FLAG_NESTEROV;
    c[4] = config_of(ADAMCORE_RMSPROP); c[4].momentum = 0.5; c[4].flags = ADAMCORE_FLAG_CENTERED;
    c[5] = config_of(ADAMCORE_ADAGRAD); c[5].lr_decay = 0.05; c[5].initial_accumulator_value = 0.1;
}

/* Whether an update of this config at step 4 differs from one at step 1 from the same (fresh) state. */
static int sub_step_matters(const adamcore_config *c) {
    return c->algorithm == ADAMCORE_ADAM || (c->algorithm == ADAMCORE_SGD && c->dampening > 0) ||
           (c->algorithm == ADAMCORE_ADAGRAD && c->lr_decay > 0);
}

/* One tensor: the object's parameter p, the stateless copy r with its state s, and a gradient g. */
typedef struct {
    size_t n;
    int dtype;
    size_t bytes;
    void *p, *r, *g, *s[3];
    double fill;   /* a fresh state's value */
} sub_tensor;

static sub_tensor sub_new(size_t n, int dtype, int seed, const adamcore_config *c) {
    sub_tensor x = {.n = n, .dtype = dtype, .bytes = n * (dtype == ADAMCORE_FLOAT64 ? 8 : 4)};
    x.fill = c->algorithm == ADAMCORE_ADAGRAD ? c->initial_accumulator_value : 0;
    x.p = malloc(x.bytes); x.r = malloc(x.bytes); x.g = calloc(n, 8);
    for (int k = 0; k < 3; k++) x.s[k] = malloc(x.bytes);
    for (size_t i = 0; i < n; i++) {
        double v = sin(seed + 0.77 * (double)i) * (1 + (double)(i % 4));
        if (dtype == ADAMCORE_FLOAT64) ((double *)x.p)[i] = ((double *)x.r)[i] = v;
        else ((float *)x.p)[i] = ((float *)x.r)[i] = (float)v;
        for (int k = 0; k < 3; k++) {
            if (dtype == ADAMCORE_FLOAT64) ((double *)x.s[k])[i] = x.fill;
            else ((float *)x.s[k])[i] = (float)x.fill;
        }
    }
    return x;
}

static void sub_free(sub_tensor *x) {
    free(x->p); free(x->r); free(x->g);
    for (int k = 0; k < 3; k++) free(x->s[k]);
}

/* The gradient at step t (a function of t, the tensor and the element, not of any count). */
static void sub_grad(sub_tensor *x, int t, int seed) {
    for (size_t i = 0; i < x->n; i++) {
        double v = cos(0.31 * t + 0.53 * (double)i + seed) * (0.25 + 0.25 * (double)(i % 3)) + 0.01 * seed;
        if (x->dtype == ADAMCORE_FLOAT64) ((double *)x->g)[i] = v;
        else ((float *)x->g)[i] = (float)v;
    }
}

/* Fill a buffer of x's dtype with a fresh state's value. */
static void sub_fill(const sub_tensor *x, void *buffer) {
    for (size_t i = 0; i < x->n; i++) {
        if (x->dtype == ADAMCORE_FLOAT64) ((double *)buffer)[i] = x->fill;
        else ((float *)buffer)[i] = (float)x->fill;
    }
}

/* One stateless step of `c` at step t on the buffers param/state (state in the object's slot order). */
static int sub_stateless_on(const adamcore_config *c, int64_t t, const sub_tensor *x, void *p, void *const *s) {
    int f64 = x->dtype == ADAMCORE_FLOAT64;
    size_t n = x->n;
    switch (c->algorithm) {
    case ADAMCORE_ADAM: {
        void *vmax = c->flags & ADAMCORE_FLAG_AMSGRAD ? s[2] : NULL;
        return f64 ? adamcore_adam_step_f64(c, t, n, p, x->g, s[0], s[1], vmax)
                   : adamcore_adam_step_f32(c, t, n, p, x->g, s[0], s[1], vmax);
    }
    case ADAMCORE_SGD: {
        void *buffer = c->momentum > 0 ? s[0] : NULL;
        return f64 ? adamcore_sgd_step_f64(c, t, n, p, x->g, buffer) : adamcore_sgd_step_f32(c, t, n, p, x->g, buffer);
    }
    case ADAMCORE_RMSPROP: {
        int centered = (c->flags & ADAMCORE_FLAG_CENTERED) != 0;
        void *avg = centered ? s[1] : NULL, *momentum = c->momentum > 0 ? s[centered ? 2 : 1] : NULL;
        return f64 ? adamcore_rmsprop_step_f64(c, t, n, p, x->g, s[0], avg, momentum)
                   : adamcore_rmsprop_step_f32(c, t, n, p, x->g, s[0], avg, momentum);
    }
    case ADAMCORE_ADAGRAD:
        return f64 ? adamcore_adagrad_step_f64(c, t, n, p, x->g, s[0]) : adamcore_adagrad_step_f32(c, t, n, p, x->g, s[0]);
    }
    return ADAMCORE_E_ALGORITHM;
}

static void sub_stateless(const adamcore_config *c, int64_t t, sub_tensor *x) {
    int s = sub_stateless_on(c, t, x, x->r, x->s);
    CHECK(s == ADAMCORE_OK, "stateless step %lld: %s", (long long)t, adamcore_status_name(s));
}

/* Whether the stateless copy's step t from x's current stateless values would give other bytes than `got`. */
static int sub_differs_at(const adamcore_config *c, int64_t t, const sub_tensor *x, const void *got) {
    void *p = malloc(x->bytes), *s[3];
    memcpy(p, x->r, x->bytes);
    for (int k = 0; k < 3; k++) { s[k] = malloc(x->bytes); memcpy(s[k], x->s[k], x->bytes); }
    sub_stateless_on(c, t, x, p, s);
    int differs = memcmp(p, got, x->bytes) != 0;
    free(p);
    for (int k = 0; k < 3; k++) free(s[k]);
    return differs;
}

static size_t sub_add(adamcore_optimizer *opt, size_t group, sub_tensor *x) {
    size_t index = 99;
    int s = adamcore_optimizer_add_tensor(opt, group, x->dtype, x->p, x->g, x->n, NULL, 0, &index);
    CHECK(s == ADAMCORE_OK, "add_tensor: %s", adamcore_status_name(s));
    return index;
}

/* The object's tensor equals the stateless copy bit for bit: parameter and every state slot. */
static int sub_same(adamcore_optimizer *opt, size_t tensor, const sub_tensor *x, const adamcore_config *c) {
    size_t slots = 0;
    adamcore_config_state_count(c, &slots);
    int same = memcmp(x->p, x->r, x->bytes) == 0;
    for (size_t k = 0; k < slots; k++) {
        void *buffer = NULL;
        same &= adamcore_optimizer_state_buffer(opt, tensor, k, &buffer) == ADAMCORE_OK && buffer &&
                memcmp(buffer, x->s[k], x->bytes) == 0;
    }
    return same;
}

static int64_t sub_tensor_step(adamcore_optimizer *opt, size_t tensor) {
    int64_t step = -7;
    int s = adamcore_optimizer_get_tensor_step(opt, tensor, &step);
    CHECK(s == ADAMCORE_OK, "get_tensor_step(%zu): %s", tensor, adamcore_status_name(s));
    return step;
}

static int64_t sub_step(adamcore_optimizer *opt) {
    int64_t step = -7;
    CHECK(adamcore_optimizer_get_step(opt, &step) == ADAMCORE_OK, "get_step");
    return step;
}

/* (a) Stepping only A leaves B untouched; then a step of both uses each one's own count. */
static void test_subset_own_counts(const adamcore_config *c, int k) {
    enum { A = 41, B = 19 };
    sub_tensor a = sub_new(A, ADAMCORE_FLOAT32, 1, c), b = sub_new(B, ADAMCORE_FLOAT64, 2, c);
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(c, &opt) == ADAMCORE_OK, "create");
    CHECK(sub_add(opt, 0, &a) == 0 && sub_add(opt, 0, &b) == 1, "indices");
    /* B's registered gradient is NaN while A alone steps: were it read, NaN would reach B. */
    for (size_t i = 0; i < B; i++) ((double *)b.g)[i] = NAN;
    for (int t = 1; t <= 3; t++) {
        sub_grad(&a, t, 1);
        size_t list[1] = {0};
        const void *grads[1] = {a.g};
        int s = adamcore_optimizer_step_tensors(opt, list, grads, 1, NULL);
        CHECK(s == ADAMCORE_OK, "config %d: step of A alone: %s", k, adamcore_status_name(s));
        sub_stateless(c, t, &a);
    }
    CHECK(sub_same(opt, 0, &a, c), "config %d: A after 3 steps of A alone differs from 3 stateless steps", k);
    CHECK(sub_same(opt, 1, &b, c), "config %d: B's parameter or state changed while only A stepped", k);
    CHECK(sub_tensor_step(opt, 0) == 3 && sub_tensor_step(opt, 1) == 0 && sub_step(opt) == 3,
          "config %d: counts after A alone: %lld %lld, step %lld", k, (long long)sub_tensor_step(opt, 0),
          (long long)sub_tensor_step(opt, 1), (long long)sub_step(opt));

    /* Both, listed in reverse order, with their registered gradients: A at its step 4, B at its step 1. */
    sub_grad(&a, 4, 1);
    sub_grad(&b, 4, 2);
    size_t both[2] = {1, 0};
    int s = adamcore_optimizer_step_tensors(opt, both, NULL, 2, NULL);
    CHECK(s == ADAMCORE_OK, "config %d: step of both: %s", k, adamcore_status_name(s));
    if (sub_step_matters(c))
        CHECK(sub_differs_at(c, 4, &b, b.p), "config %d: B's step 1 and step 4 would agree: the check has no teeth", k);
    sub_stateless(c, 4, &a);
    sub_stateless(c, 1, &b);
    CHECK(sub_same(opt, 0, &a, c), "config %d: A's 4th step differs from the stateless step t=4", k);
    CHECK(sub_same(opt, 1, &b, c), "config %d: B's first step differs from the stateless step t=1 (its own count)", k);
    CHECK(sub_tensor_step(opt, 0) == 4 && sub_tensor_step(opt, 1) == 1 && sub_step(opt) == 4,
          "config %d: counts after both: %lld %lld, step %lld", k, (long long)sub_tensor_step(opt, 0),
          (long long)sub_tensor_step(opt, 1), (long long)sub_step(opt));

    /* A mixed schedule: A on even t, B when t % 3 != 0, neither on t = 9 (a step of nothing still counts as a call). */
    int64_t ta = 4, tb = 1, calls = 4;
    for (int t = 5; t <= 16; t++) {
        size_t list[2];
        const void *grads[2];
        size_t n = 0;
        sub_grad(&a, t, 1);
        sub_grad(&b, t, 2);
        if (t % 3 != 0 && t != 9) { list[n] = 1; grads[n++] = b.g; }
        if (t % 2 == 0 && t != 9) { list[n] = 0; grads[n++] = a.g; }
        s = adamcore_optimizer_step_tensors(opt, n ? list : NULL, n ? grads : NULL, n, NULL);
        CHECK(s == ADAMCORE_OK, "config %d: t=%d: %s", k, t, adamcore_status_name(s));
        calls++;
        for (size_t j = 0; j < n; j++) {
            if (list[j] == 0) sub_stateless(c, ++ta, &a);
            else sub_stateless(c, ++tb, &b);
        }
    }
    CHECK(sub_same(opt, 0, &a, c) && sub_same(opt, 1, &b, c), "config %d: mixed schedule differs", k);
    CHECK(sub_tensor_step(opt, 0) == ta && sub_tensor_step(opt, 1) == tb && sub_step(opt) == calls,
          "config %d: mixed schedule counts %lld %lld %lld, expected %lld %lld %lld", k,
          (long long)sub_tensor_step(opt, 0), (long long)sub_tensor_step(opt, 1), (long long)sub_step(opt),
          (long long)ta, (long long)tb, (long long)calls);
    /* set_step sets the call count and every tensor's. */
    CHECK(adamcore_optimizer_set_step(opt, 2) == ADAMCORE_OK && sub_tensor_step(opt, 0) == 2 &&
          sub_tensor_step(opt, 1) == 2 && sub_step(opt) == 2, "config %d: set_step sets every tensor's count", k);
    adamcore_optimizer_destroy(opt);
    sub_free(&a);
    sub_free(&b);
}

/* Sixteen tensors in two groups at four different counts, stepped in one call in a scrambled order: every
 * tensor's update uses its own (group, count), also where equal keys are not adjacent. */
static void test_subset_many_counts(const adamcore_config *c, int k) {
    enum { T = 16 };
    adamcore_config second = *c;
    second.lr *= 0.5;
    sub_tensor x[T];
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(c, &opt) == ADAMCORE_OK, "create");
    size_t group = 0;
    CHECK(adamcore_optimizer_add_group(opt, &second, &group) == ADAMCORE_OK && group == 1, "group");
    int64_t count[T];
    for (int i = 0; i < T; i++) {
        x[i] = sub_new(3 + (size_t)i * 5, i % 3 ? ADAMCORE_FLOAT32 : ADAMCORE_FLOAT64, 10 + i, c);
        CHECK(sub_add(opt, (size_t)(i % 2), &x[i]) == (size_t)i, "index %d", i);
        count[i] = 0;
    }
    /* Round r steps the tensors whose target count i / 4 exceeds r. */
    for (int r = 0; r < 3; r++) {
        size_t list[T], n = 0;
        for (int i = T - 1; i >= 0; i--)
            if (i / 4 > r) {
                sub_grad(&x[i], r + 1, i);
                list[n++] = (size_t)i;
                sub_stateless(i % 2 ? &second : c, ++count[i], &x[i]);
            }
        CHECK(adamcore_optimizer_step_tensors(opt, list, NULL, n, NULL) == ADAMCORE_OK, "round %d", r);
    }
    size_t list[T];
    for (int j = 0; j < T; j++) list[j] = (size_t)(7 * j % T);   /* a permutation */
    for (int i = 0; i < T; i++) sub_grad(&x[i], 9, i);
    CHECK(adamcore_optimizer_step_tensors(opt, list, NULL, T, NULL) == ADAMCORE_OK, "the step of all");
    int same = 1, counts = 1;
    for (int i = 0; i < T; i++) {
        sub_stateless(i % 2 ? &second : c, ++count[i], &x[i]);
        int ok = sub_same(opt, (size_t)i, &x[i], i % 2 ? &second : c);
        if (!ok) printf("  config %d: tensor %d (group %d, count %lld) differs\n", k, i, i % 2, (long long)count[i]);
        same &= ok;
        counts &= sub_tensor_step(opt, (size_t)i) == count[i];
    }
    CHECK(same && counts, "config %d: one step over tensors at 4 counts in 2 groups: values %d, counts %d", k, same, counts);
    CHECK(sub_step(opt) == 4, "config %d: 4 step calls", k);
    adamcore_optimizer_destroy(opt);
    for (int i = 0; i < T; i++) sub_free(&x[i]);
}

/* (b) set_tensor_step(A, 0) with A's state made fresh restarts A like a new tensor; B keeps counting. */
static void test_subset_restart(const adamcore_config *c, int k) {
    enum { A = 23, B = 50 };
    sub_tensor a = sub_new(A, ADAMCORE_FLOAT32, 3, c), b = sub_new(B, ADAMCORE_FLOAT64, 4, c);
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(c, &opt) == ADAMCORE_OK, "create");
    sub_add(opt, 0, &a);
    sub_add(opt, 0, &b);
    for (int t = 1; t <= 3; t++) {
        sub_grad(&a, t, 3);
        sub_grad(&b, t, 4);
        CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "step %d", t);
        sub_stateless(c, t, &a);
        sub_stateless(c, t, &b);
    }
    CHECK(adamcore_optimizer_set_tensor_step(opt, 0, 0) == ADAMCORE_OK, "set_tensor_step(A, 0)");
    size_t slots = 0;
    adamcore_config_state_count(c, &slots);
    for (size_t s = 0; s < slots; s++) {
        void *buffer = NULL;
        CHECK(adamcore_optimizer_state_buffer(opt, 0, s, &buffer) == ADAMCORE_OK && buffer, "state buffer");
        if (buffer) sub_fill(&a, buffer);
        sub_fill(&a, a.s[s]);
    }
    CHECK(sub_tensor_step(opt, 0) == 0 && sub_tensor_step(opt, 1) == 3 && sub_step(opt) == 3,
          "config %d: after the restart: %lld %lld, step %lld", k, (long long)sub_tensor_step(opt, 0),
          (long long)sub_tensor_step(opt, 1), (long long)sub_step(opt));
    for (int t = 4; t <= 6; t++) {
        sub_grad(&a, t, 3);
        sub_grad(&b, t, 4);
        CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "step %d", t);
        if (t == 4 && sub_step_matters(c))
            CHECK(sub_differs_at(c, 4, &a, a.p), "config %d: A's step 1 and step 4 would agree: the check has no teeth", k);
        sub_stateless(c, t - 3, &a);
        sub_stateless(c, t, &b);
        if (t == 4)
            CHECK(sub_same(opt, 0, &a, c), "config %d: A's first step after the restart is not a fresh tensor's step 1", k);
    }
    CHECK(sub_same(opt, 0, &a, c) && sub_same(opt, 1, &b, c), "config %d: steps after the restart differ", k);
    CHECK(sub_tensor_step(opt, 0) == 3 && sub_tensor_step(opt, 1) == 6 && sub_step(opt) == 6, "config %d: counts", k);
    adamcore_optimizer_destroy(opt);
    sub_free(&a);
    sub_free(&b);
}

/* (c) A tensor added after 5 steps starts at count 0: its first step is step 1 while the first tensor's is 6. */
static void test_subset_late_tensor(const adamcore_config *c, int k) {
    enum { A = 33, B = 12 };
    sub_tensor a = sub_new(A, ADAMCORE_FLOAT64, 5, c), b = sub_new(B, ADAMCORE_FLOAT32, 6, c);
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(c, &opt) == ADAMCORE_OK, "create");
    sub_add(opt, 0, &a);
    for (int t = 1; t <= 5; t++) {
        sub_grad(&a, t, 5);
        CHECK(adamcore_optimizer_step(opt, NULL, 1) == ADAMCORE_OK, "step %d", t);
        sub_stateless(c, t, &a);
    }
    CHECK(sub_add(opt, 0, &b) == 1, "late tensor's index");
    CHECK(sub_tensor_step(opt, 1) == 0 && sub_tensor_step(opt, 0) == 5 && sub_step(opt) == 5,
          "config %d: a tensor added later starts at 0: %lld", k, (long long)sub_tensor_step(opt, 1));
    for (int t = 6; t <= 7; t++) {
        sub_grad(&a, t, 5);
        sub_grad(&b, t, 6);
        CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "step %d", t);
        if (t == 6 && sub_step_matters(c))
            CHECK(sub_differs_at(c, 6, &b, b.p), "config %d: the late tensor's step 1 and step 6 would agree", k);
        sub_stateless(c, t, &a);
        sub_stateless(c, t - 5, &b);
    }
    CHECK(sub_same(opt, 0, &a, c), "config %d: the first tensor differs", k);
    CHECK(sub_same(opt, 1, &b, c), "config %d: the late tensor's steps are not steps 1 and 2", k);
    CHECK(sub_tensor_step(opt, 0) == 7 && sub_tensor_step(opt, 1) == 2 && sub_step(opt) == 7, "config %d: counts", k);
    adamcore_optimizer_destroy(opt);
    sub_free(&a);
    sub_free(&b);
}

/* (d) set_tensor_param: the updates continue from the new memory (with other values in it), the old memory is
 * left alone, state and count are kept. */
static void test_subset_rebind(const adamcore_config *c, int k) {
    enum { A = 29, B = 8 };
    sub_tensor a = sub_new(A, ADAMCORE_FLOAT32, 7, c), b = sub_new(B, ADAMCORE_FLOAT64, 8, c);
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(c, &opt) == ADAMCORE_OK, "create");
    sub_add(opt, 0, &a);
    sub_add(opt, 0, &b);
    for (int t = 1; t <= 2; t++) {
        sub_grad(&a, t, 7);
        sub_grad(&b, t, 8);
        CHECK(adamcore_optimizer_step(opt, NULL, 2) == ADAMCORE_OK, "step %d", t);
        sub_stateless(c, t, &a);
        sub_stateless(c, t, &b);
    }
    float *moved = malloc(a.bytes), *old = a.p, *old_copy = malloc(a.bytes);
    for (size_t i = 0; i < A; i++) moved[i] = ((float *)a.r)[i] = 2.0f * ((float *)a.p)[i] - 0.25f;
    memcpy(old_copy, old, a.bytes);
    int s = adamcore_optimizer_set_tensor_param(opt, 0, moved);
    CHECK(s == ADAMCORE_OK, "config %d: set_tensor_param: %s", k, adamcore_status_name(s));
    CHECK(sub_tensor_step(opt, 0) == 2, "config %d: the count is kept", k);
    a.p = moved;
    for (int t = 3; t <= 5; t++) {
        sub_grad(&a, t, 7);
        sub_grad(&b, t, 8);
        size_t list[1] = {0};
        CHECK((t == 4 ? adamcore_optimizer_step_tensors(opt, list, NULL, 1, NULL)
                      : adamcore_optimizer_step(opt, NULL, 2)) == ADAMCORE_OK, "step %d", t);
        sub_stateless(c, t, &a);
        if (t != 4) sub_stateless(c, t == 3 ? 3 : 4, &b);
    }
    CHECK(sub_same(opt, 0, &a, c), "config %d: the updates after set_tensor_param are not in the new memory", k);
    CHECK(sub_same(opt, 1, &b, c), "config %d: the other tensor differs", k);
    CHECK(memcmp(old, old_copy, a.bytes) == 0, "config %d: the old parameter memory was written", k);
    CHECK(sub_tensor_step(opt, 0) == 5 && sub_tensor_step(opt, 1) == 4 && sub_step(opt) == 5, "config %d: counts", k);
    adamcore_optimizer_destroy(opt);
    free(old);
    free(old_copy);
    sub_free(&a);   /* frees `moved` as a.p */
    sub_free(&b);
}

/* Whether the checkpoint header holds `"key":"value"`. */
static int sub_header_has(const unsigned char *bytes, size_t size, const char *key, long long value) {
    uint64_t header = 0;
    if (size < 8) return 0;
    memcpy(&header, bytes, 8);
    if (header > size - 8) return 0;
    char *text = malloc(header + 1), wanted[128];
    memcpy(text, bytes + 8, header);
    text[header] = 0;
    snprintf(wanted, sizeof wanted, "\"%s\":\"%lld\"", key, value);
    int found = strstr(text, wanted) != NULL;
    free(text);
    return found;
}

/* A checkpoint taken after subset steps restores every tensor's own count: a loaded copy continued on the same
 * schedule stays bit-identical to the original (file and memory). */
static void test_subset_checkpoint(const adamcore_config *c, int k, const char *dir) {
    enum { A = 45, B = 300 };
    sub_tensor a = sub_new(A, ADAMCORE_FLOAT32, 9, c), b = sub_new(B, ADAMCORE_FLOAT64, 10, c);
    adamcore_optimizer *x = NULL, *y = NULL;
    CHECK(adamcore_optimizer_create(c, &x) == ADAMCORE_OK, "create");
    sub_add(x, 0, &a);
    sub_add(x, 0, &b);
    /* t = 1..9: A when t % 3 != 0 (6 steps), B when t is even (4 steps). */
    for (int t = 1; t <= 9; t++) {
        sub_grad(&a, t, 9);
        sub_grad(&b, t, 10);
        size_t list[2], n = 0;
        if (t % 3 != 0) list[n++] = 0;
        if (t % 2 == 0) list[n++] = 1;
        CHECK(adamcore_optimizer_step_tensors(x, list, NULL, n, NULL) == ADAMCORE_OK, "step %d", t);
    }
    CHECK(sub_tensor_step(x, 0) == 6 && sub_tensor_step(x, 1) == 4 && sub_step(x) == 9, "config %d: counts", k);
    size_t size = 0;
    CHECK(adamcore_optimizer_checkpoint_size(x, &size) == ADAMCORE_OK, "size");
    unsigned char *bytes = malloc(size), *again = malloc(size), *other = malloc(size);
    CHECK(adamcore_optimizer_save_to_memory(x, bytes, size, NULL) == ADAMCORE_OK, "save");
    CHECK(sub_header_has(bytes, size, "version", 3) && sub_header_has(bytes, size, "step", 9) &&
          sub_header_has(bytes, size, "tensor.0.step", 6) && sub_header_has(bytes, size, "tensor.1.step", 4),
          "config %d: the header has version 3 and the per-tensor steps 6 and 4", k);
    /* The copy: its own parameter memory with the same values, state zero until loaded. */
    void *pa = malloc(a.bytes), *pb = malloc(b.bytes);
    memcpy(pa, a.p, a.bytes);
    memcpy(pb, b.p, b.bytes);
    CHECK(adamcore_optimizer_create(c, &y) == ADAMCORE_OK, "create");
    CHECK(adamcore_optimizer_add_tensor(y, 0, ADAMCORE_FLOAT32, pa, NULL, A, NULL, 0, NULL) == ADAMCORE_OK &&
          adamcore_optimizer_add_tensor(y, 0, ADAMCORE_FLOAT64, pb, NULL, B, NULL, 0, NULL) == ADAMCORE_OK, "add");
    int s;
    if (k % 2) {
        s = adamcore_optimizer_load_from_memory(y, bytes, size);
    } else {
        char path[512];
        snprintf(path, sizeof path, "%s/subset.safetensors", dir);
        CHECK(adamcore_optimizer_save(x, path) == ADAMCORE_OK, "save to file");
        s = adamcore_optimizer_load(y, path);
    }
    CHECK(s == ADAMCORE_OK, "config %d: load: %s", k, adamcore_status_name(s));
    CHECK(sub_tensor_step(y, 0) == 6 && sub_tensor_step(y, 1) == 4 && sub_step(y) == 9,
          "config %d: loaded counts %lld %lld %lld", k, (long long)sub_tensor_step(y, 0), (long long)sub_tensor_step(y, 1),
          (long long)sub_step(y));
    CHECK(adamcore_optimizer_save_to_memory(y, again, size, NULL) == ADAMCORE_OK && memcmp(bytes, again, size) == 0,
          "config %d: the loaded optimizer saves the same bytes", k);
    /* Continue both: B alone twice (it catches up to A's count, in a different call than A's), then a mixed
     * schedule and full steps. */
    for (int t = 10; t <= 20; t++) {
        sub_grad(&a, t, 9);
        sub_grad(&b, t, 10);
        size_t list[2], n = 0;
        if (t >= 12 && t % 4 != 1) list[n++] = 0;
        if (t % 5 != 0) list[n++] = 1;
        const void *grads[2];
        for (size_t j = 0; j < n; j++) grads[j] = list[j] == 0 ? a.g : b.g;
        CHECK(adamcore_optimizer_step_tensors(x, list, NULL, n, NULL) == ADAMCORE_OK &&
              adamcore_optimizer_step_tensors(y, list, grads, n, NULL) == ADAMCORE_OK, "step %d", t);
    }
    CHECK(memcmp(a.p, pa, a.bytes) == 0 && memcmp(b.p, pb, b.bytes) == 0,
          "config %d: the loaded copy's parameters differ from the original's after continuing", k);
    /* (The header grew: the counts have more digits now.) */
    size_t size_x = 0, size_y = 0;
    CHECK(adamcore_optimizer_checkpoint_size(x, &size_x) == ADAMCORE_OK &&
          adamcore_optimizer_checkpoint_size(y, &size_y) == ADAMCORE_OK && size_x == size_y, "sizes");
    free(again);
    free(other);
    again = malloc(size_x);
    other = malloc(size_x);
    CHECK(adamcore_optimizer_save_to_memory(x, again, size_x, NULL) == ADAMCORE_OK &&
          adamcore_optimizer_save_to_memory(y, other, size_x, NULL) == ADAMCORE_OK && memcmp(again, other, size_x) == 0,
          "config %d: the loaded copy's state or counts differ from the original's after continuing", k);
    CHECK(sub_tensor_step(x, 0) == sub_tensor_step(y, 0) && sub_tensor_step(x, 1) == sub_tensor_step(y, 1) &&
          sub_tensor_step(x, 0) != sub_tensor_step(x, 1), "config %d: counts after continuing", k);
    adamcore_optimizer_destroy(x);
    adamcore_optimizer_destroy(y);
    free(bytes); free(again); free(other); free(pa); free(pb);
    sub_free(&a);
    sub_free(&b);
}

/* (e) Every refused call of the new functions, every caller byte checked; and the refused calls changed nothing in
 * the optimizer either (its checkpoint is byte for byte the same). */
static void test_subset_errors(void) {
    fill_arena();
    for (int i = 0; i < N; i++) {
        arena.q[i] = 0.25f * i - 3; arena.qg[i] = 0.125f * (i % 5) - 0.25f; arena.qm[i] = 0.03f * i;
        arena.qv[i] = 0.004f * i; arena.fresh[i] = 1.0f - 0.5f * i;
    }
    adamcore_config adam = config_of(ADAMCORE_ADAM), adafix = config_of(ADAMCORE_ADAFIX);
    adamcore_optimizer *opt = NULL, *fix = NULL;
    void *state_a[2] = {arena.m, arena.v}, *state_b[2] = {arena.qm, arena.qv};
    CHECK(adamcore_optimizer_create(&adam, &opt) == ADAMCORE_OK, "create");
    /* A: f32 in the arena; B: f32 in the arena; C: f64 param in the arena, state owned by the library. */
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.p, arena.g, N, state_a, 2, NULL) == ADAMCORE_OK &&
          adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, arena.q, arena.qg, N, state_b, 2, NULL) == ADAMCORE_OK &&
          adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT64, arena.pd, arena.gd, N, NULL, 0, NULL) == ADAMCORE_OK,
          "three tensors");
    CHECK(adamcore_optimizer_step(opt, NULL, 3) == ADAMCORE_OK, "a step of all");
    arena.list[0] = 1;
    CHECK(adamcore_optimizer_step_tensors(opt, arena.list, NULL, 1, NULL) == ADAMCORE_OK, "a step of B");
    void *owned = NULL;
    CHECK(adamcore_optimizer_state_buffer(opt, 2, 0, &owned) == ADAMCORE_OK && owned, "C's library-owned state");
    size_t size = 0;
    CHECK(adamcore_optimizer_checkpoint_size(opt, &size) == ADAMCORE_OK, "size");
    unsigned char *before = malloc(size), *after = malloc(size);
    CHECK(adamcore_optimizer_save_to_memory(opt, before, size, NULL) == ADAMCORE_OK, "save");

    /* Indices. */
    arena.list[0] = 0; arena.list[1] = 3;
    arena.grads[0] = arena.g; arena.grads[1] = arena.qg;
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 2, NULL));
    arena.list[1] = SIZE_MAX;
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 2, NULL));
    arena.list[0] = 7;
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 1, NULL));
    arena.list[0] = 1; arena.list[1] = 0; arena.list[2] = 1;                                     /* duplicate */
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 3, NULL));
    arena.list[0] = 0; arena.list[1] = 0;
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 2, NULL));
    arena.list[0] = 0; arena.list[1] = 1; arena.list[2] = 2; arena.list[3] = 0;                  /* 4 of 3 tensors */
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 4, NULL));
    /* NULL lists and entries, handles, options. */
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_step_tensors(opt, NULL, arena.grads, 1, NULL));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_step_tensors(opt, NULL, NULL, 3, NULL));
    arena.list[0] = 0; arena.grads[0] = NULL;
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_step_tensors(NULL, arena.list, NULL, 1, NULL));
    adamcore_step_options options;
    adamcore_step_options_init(&options);
    options.struct_size = 4;
    EXPECT_STATUS(ADAMCORE_E_STRUCT_SIZE, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 1, &options));
    adamcore_step_options_init(&options);
    options.grad_scale = 0;
    EXPECT_STATUS(ADAMCORE_E_GRAD_SCALE, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 1, &options));

    /* A gradient overlapping another tensor's parameter or state (its own was refused before too). */
    arena.list[0] = 0;
    const void *overlapping_a[] = {arena.q, arena.qm + 5, arena.qv + N - 1, arena.pd, owned, arena.p, arena.v + 3};
    for (size_t j = 0; j < sizeof overlapping_a / sizeof overlapping_a[0]; j++) {
        arena.grads[0] = overlapping_a[j];
        EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL));
    }
    arena.list[0] = 1;
    arena.grads[0] = arena.v;                                                              /* A's state */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL));
    arena.grads[0] = arena.p + 1;                                                          /* A's parameter */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL));
    arena.list[0] = 2;
    arena.grads[0] = arena.qm;                                                             /* C (f64) over B's state */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL));
    arena.list[0] = 0; arena.list[1] = 1;                          /* the first entry valid, the second not */
    arena.grads[0] = arena.g; arena.grads[1] = arena.m;
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 2, NULL));
    /* The same through the whole-optimizer step. */
    arena.grads[0] = arena.q; arena.grads[1] = arena.qg; arena.grads[2] = arena.gd;        /* A's grad is B's param */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step(opt, arena.grads, 3));
    arena.grads[0] = arena.g; arena.grads[1] = arena.m;                                    /* B's grad is A's state */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step(opt, arena.grads, 3));
    arena.grads[1] = arena.qg; arena.grads[2] = arena.qm;                                  /* C's over B's state */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step(opt, arena.grads, 3));
    arena.grads[2] = arena.gd; arena.grads[1] = owned;                                     /* B's in C's state */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step(opt, arena.grads, 3));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_with_options(opt, arena.grads, 3, NULL));
    arena.grads[1] = arena.qg;

    /* A tensor at the largest count cannot step; nothing else moves either. */
    CHECK(adamcore_optimizer_set_tensor_step(opt, 0, INT64_MAX) == ADAMCORE_OK, "set_tensor_step(INT64_MAX)");
    arena.list[0] = 1; arena.list[1] = 0;
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 2, NULL));
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_optimizer_step(opt, NULL, 3));
    CHECK(adamcore_optimizer_set_tensor_step(opt, 0, 1) == ADAMCORE_OK, "back to 1");

    /* set_tensor_step / get_tensor_step. */
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_optimizer_set_tensor_step(opt, 0, -1));
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_optimizer_set_tensor_step(opt, 1, INT64_MIN));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_set_tensor_step(opt, 3, 1));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_set_tensor_step(opt, SIZE_MAX, 1));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_set_tensor_step(NULL, 0, 1));
    arena.step_out = 12345;
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_get_tensor_step(opt, 3, &arena.step_out));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_get_tensor_step(opt, SIZE_MAX, &arena.step_out));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_get_tensor_step(opt, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_get_tensor_step(NULL, 0, &arena.step_out));

    /* set_tensor_param: onto another tensor's parameter, state or gradient, its own state or gradient, misaligned,
     * NULL, a bad index. */
    void *onto[] = {arena.q, arena.qm + 3, arena.qv, arena.qg, arena.pd, owned, arena.v, arena.g, arena.m + N - 1};
    for (size_t j = 0; j < sizeof onto / sizeof onto[0]; j++)
        EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_set_tensor_param(opt, 0, onto[j]));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_set_tensor_param(opt, 2, arena.q));    /* f64 C over B */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_set_tensor_param(opt, 1, arena.p + 2));
    EXPECT_STATUS(ADAMCORE_E_MISALIGNED, adamcore_optimizer_set_tensor_param(opt, 0, (char *)arena.misaligned_base + 2));
    float *not8 = (uintptr_t)arena.fresh % 8 == 0 ? arena.fresh + 1 : arena.fresh;
    EXPECT_STATUS(ADAMCORE_E_MISALIGNED, adamcore_optimizer_set_tensor_param(opt, 2, not8));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_set_tensor_param(opt, 0, NULL));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_set_tensor_param(opt, 3, arena.fresh));
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_set_tensor_param(opt, SIZE_MAX, arena.fresh));
    EXPECT_STATUS(ADAMCORE_E_HANDLE, adamcore_optimizer_set_tensor_param(NULL, 0, arena.fresh));
    /* After the refused moves A's parameter is still a registered buffer: a gradient over it is still refused. */
    arena.list[0] = 1; arena.grads[0] = arena.p;
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL));

    /* AdaFix must list every tensor. */
    CHECK(adamcore_optimizer_create(&adafix, &fix) == ADAMCORE_OK &&
          adamcore_optimizer_add_tensor(fix, 0, ADAMCORE_FLOAT32, arena.other, arena.g, N, NULL, 0, NULL) == ADAMCORE_OK &&
          adamcore_optimizer_add_tensor(fix, 0, ADAMCORE_FLOAT32, arena.vmax, arena.qg, N, NULL, 0, NULL) == ADAMCORE_OK,
          "adafix");
    arena.list[0] = 0; arena.list[1] = 1;
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_step_tensors(fix, arena.list, NULL, 1, NULL));
    arena.list[0] = 1;
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_step_tensors(fix, arena.list, NULL, 1, NULL));
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_optimizer_step_tensors(fix, NULL, NULL, 0, NULL));
    arena.list[0] = 1; arena.list[1] = 1;
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_step_tensors(fix, arena.list, NULL, 2, NULL));
    int64_t fix_step = -1;
    CHECK(adamcore_optimizer_get_step(fix, &fix_step) == ADAMCORE_OK && fix_step == 0, "AdaFix: no step taken");

    /* Nothing above changed the optimizer. */
    CHECK(adamcore_optimizer_save_to_memory(opt, after, size, NULL) == ADAMCORE_OK && memcmp(before, after, size) == 0,
          "the refused calls changed the optimizer's state or counts");
    CHECK(sub_tensor_step(opt, 0) == 1 && sub_tensor_step(opt, 1) == 2 && sub_tensor_step(opt, 2) == 1 &&
          sub_step(opt) == 2, "counts after the refused calls");

    /* found_inf: skipped, nothing written, no tensor's count advanced (only the skipped-step count). */
    adamcore_step_options_init(&options);
    options.found_inf = 1;
    arena.list[0] = 0; arena.list[1] = 2;
    int64_t skipped = -1;
    EXPECT_STATUS(ADAMCORE_STEP_SKIPPED, adamcore_optimizer_step_tensors(opt, arena.list, NULL, 2, &options));
    CHECK(adamcore_optimizer_get_skipped_steps(opt, &skipped, NULL) == ADAMCORE_OK && skipped == 1, "skipped %lld",
          (long long)skipped);
    CHECK(sub_tensor_step(opt, 0) == 1 && sub_tensor_step(opt, 1) == 2 && sub_tensor_step(opt, 2) == 1 &&
          sub_step(opt) == 2, "counts after a skipped step");

    /* Accepted: AdaFix listing both in any order; a step of nothing (the tensors' counts stay, the call counts);
     * a gradient shared with another tensor's registered gradient (gradients are only read). */
    arena.list[0] = 1; arena.list[1] = 0;
    CHECK(adamcore_optimizer_step_tensors(fix, arena.list, NULL, 2, NULL) == ADAMCORE_OK, "AdaFix lists all");
    memcpy(snapshot, &arena, sizeof arena);
    CHECK(adamcore_optimizer_step_tensors(opt, NULL, NULL, 0, NULL) == ADAMCORE_OK, "a step of nothing");
    CHECK(memcmp(snapshot, &arena, sizeof arena) == 0, "a step of nothing wrote");
    CHECK(sub_tensor_step(opt, 0) == 1 && sub_tensor_step(opt, 1) == 2 && sub_tensor_step(opt, 2) == 1 &&
          sub_step(opt) == 3, "a step of nothing counts as a call and advances no tensor");
    arena.list[0] = 0; arena.grads[0] = arena.qg;
    CHECK(adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL) == ADAMCORE_OK,
          "A stepped with B's registered gradient");

    /* Moves: onto itself; then to fresh memory, after which the new memory is registered and the old is free. */
    CHECK(adamcore_optimizer_set_tensor_param(opt, 0, arena.p) == ADAMCORE_OK, "set_tensor_param to its own memory");
    CHECK(adamcore_optimizer_set_tensor_param(opt, 0, arena.fresh) == ADAMCORE_OK, "set_tensor_param to fresh memory");
    arena.list[0] = 1; arena.grads[0] = arena.fresh + 1;
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL));
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_set_tensor_param(opt, 1, arena.fresh + 2));
    float p_copy[N];
    memcpy(p_copy, arena.p, sizeof p_copy);
    arena.grads[0] = arena.p;
    CHECK(adamcore_optimizer_step_tensors(opt, arena.list, arena.grads, 1, NULL) == ADAMCORE_OK,
          "a gradient in A's old parameter memory is accepted");
    CHECK(memcmp(p_copy, arena.p, sizeof p_copy) == 0, "A's old parameter memory was written");
    CHECK(adamcore_optimizer_set_tensor_param(opt, 1, arena.p) == ADAMCORE_OK, "B moves into A's old memory");
    adamcore_optimizer_destroy(fix);
    adamcore_optimizer_destroy(opt);
    free(before);
    free(after);
}

static void test_tensor_subsets(const char *dir) {
    adamcore_config configs[SUB_CONFIGS];
    sub_configs(configs);
    for (int k = 0; k < SUB_CONFIGS; k++) {
        test_subset_own_counts(&configs[k], k);
        test_subset_many_counts(&configs[k], k);
        test_subset_restart(&configs[k], k);
        test_subset_late_tensor(&configs[k], k);
        test_subset_rebind(&configs[k], k);
        test_subset_checkpoint(&configs[k], k, dir);
    }
    test_subset_errors();
}

/* Found by the fuzzer: a tensor added after a measured step, before its figures were read, crashed (the figures
 * waited in segments laid out for the old split). They must survive the registration, and the new tensor has none. */
static void test_stats_survive_a_later_tensor(void) {
    adamcore_config c = config_of(ADAMCORE_ADAM);
    adamcore_optimizer *opt = NULL;
    float p[40] = {0}, g[40], q[3] = {0}, h[3] = {1, 1, 1};
    for (int i = 0; i < 40; i++) g[i] = 0.1f * (float)(i % 5) - 0.2f;
    CHECK(adamcore_optimizer_create(&c, &opt) == ADAMCORE_OK, "create");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, p, g, 40, NULL, 0, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_set_stats(opt, 1) == ADAMCORE_OK && adamcore_optimizer_step(opt, NULL, 1) == ADAMCORE_OK,
          "measured step");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, q, h, 3, NULL, 0, NULL) == ADAMCORE_OK, "add later");
    adamcore_step_stats st, late;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    late = st;
    CHECK(adamcore_optimizer_get_stats(opt, &st) == ADAMCORE_OK && st.step == 1 && st.count == 40, "figures kept");
    CHECK(adamcore_optimizer_get_tensor_stats(opt, 1, &late) == ADAMCORE_OK && late.count == 0, "new tensor has none");
    adamcore_optimizer_destroy(opt);
}

/* Structs are read and written by their struct_size: older (smaller) and newer (larger, zero-tailed) layouts work,
 * and nothing past struct_size is touched. A struct placed right before an inaccessible page proves no over-read. */
static void test_struct_sizes(void) {
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *map = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED && mprotect(map + page, (size_t)page, PROT_NONE) == 0, "guard page");
    if (map == MAP_FAILED) return;
    /* A 0.1.0 caller: a 104-byte config ending at the guard page. */
    adamcore_config *old = (adamcore_config *)(map + page - 104);
    CHECK(adamcore_config_init(old, ADAMCORE_ADAM) == ADAMCORE_OK && old->struct_size == 104, "0.1.0 init");
    CHECK(adamcore_config_validate(old) == ADAMCORE_OK, "0.1.0 config validates");
    float p[8] = {1, 2, 3, 4, 5, 6, 7, 8}, g[8] = {1, 1, 1, 1, -1, -1, -1, -1}, m[8] = {0}, v[8] = {0};
    CHECK(adamcore_adam_step_f32(old, 1, 8, p, g, m, v, NULL) == ADAMCORE_OK && p[0] < 1, "0.1.0 config steps");
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(old, &opt) == ADAMCORE_OK, "0.1.0 config creates");
    CHECK(adamcore_optimizer_add_tensor(opt, 0, ADAMCORE_FLOAT32, p, g, 8, NULL, 0, NULL) == ADAMCORE_OK, "add");
    CHECK(adamcore_optimizer_get_config(opt, 0, old) == ADAMCORE_OK && old->lr == 1e-3, "0.1.0 get_config");
    /* step options and statistics of the first release's size, at the guard page too */
    adamcore_step_options *options = (adamcore_step_options *)(map + page - 16);
    CHECK(adamcore_step_options_init(options) == ADAMCORE_OK && options->grad_scale == 1, "0.1.0 options init");
    CHECK(adamcore_optimizer_step_with_options(opt, NULL, 1, options) == ADAMCORE_OK, "0.1.0 options step");
    CHECK(adamcore_optimizer_set_stats(opt, 1) == ADAMCORE_OK && adamcore_optimizer_step(opt, NULL, 1) == ADAMCORE_OK, "stats");
    adamcore_step_stats *stats = (adamcore_step_stats *)(map + page - 104);
    memset(stats, 0, 104);
    stats->struct_size = 104;
    CHECK(adamcore_optimizer_get_stats(opt, stats) == ADAMCORE_OK && stats->step == 2 && stats->count == 8, "0.1.0 stats");

    /* A newer header's larger struct: accepted with a zero tail, refused with anything in it. */
    struct { adamcore_config c; unsigned char tail[24]; unsigned char canary[8]; } newer;
    memset(&newer, 0xAB, sizeof newer);
    CHECK(adamcore_config_init_sized(&newer.c, sizeof newer.c + sizeof newer.tail, ADAMCORE_SGD) == ADAMCORE_OK,
          "sized init");
    unsigned char zeros[24] = {0}, canary[8];
    memset(canary, 0xAB, sizeof canary);
    CHECK(newer.c.struct_size == sizeof newer.c + 24 && memcmp(newer.tail, zeros, 24) == 0 &&
          memcmp(newer.canary, canary, 8) == 0, "sized init zeroes the unknown tail and nothing past struct_size");
    CHECK(adamcore_config_validate(&newer.c) == ADAMCORE_OK, "a larger config with a zero tail is accepted");
    newer.tail[23] = 1;
    EXPECT_STATUS(ADAMCORE_E_STRUCT_SIZE, adamcore_config_validate(&newer.c));
    newer.tail[23] = 0;
    memset(newer.tail, 0x55, 24);
    CHECK(adamcore_optimizer_get_config(opt, 0, &newer.c) == ADAMCORE_OK && memcmp(newer.tail, zeros, 24) == 0 &&
          memcmp(newer.canary, canary, 8) == 0 && newer.c.struct_size == sizeof newer.c + 24, "larger get_config");
    /* ADAMCORE_CONFIG_INIT is the sized form with this header's size. */
    adamcore_config mine;
    CHECK(ADAMCORE_CONFIG_INIT(&mine, ADAMCORE_ADAM) == ADAMCORE_OK && mine.struct_size == sizeof mine, "macro init");
    adamcore_step_options o2;
    CHECK(ADAMCORE_STEP_OPTIONS_INIT(&o2) == ADAMCORE_OK && o2.struct_size == sizeof o2 && o2.grad_scale == 1, "macro");

    /* Refused: below the first release, above 4096 (garbage), sizes whose bytes would reach the guard page. */
    adamcore_config *at_end = (adamcore_config *)(map + page - 104);
    adamcore_config_init(at_end, ADAMCORE_ADAM);
    at_end->struct_size = 100;
    CHECK(adamcore_config_validate(at_end) == ADAMCORE_E_STRUCT_SIZE, "smaller than 0.1.0");
    at_end->struct_size = 1u << 20;  /* would read into the guard page: refused before reading */
    CHECK(adamcore_config_validate(at_end) == ADAMCORE_E_STRUCT_SIZE, "garbage size");
    CHECK(adamcore_config_init_sized(&mine, 100, ADAMCORE_ADAM) == ADAMCORE_E_STRUCT_SIZE, "sized init too small");
    CHECK(adamcore_config_init_sized(&mine, SIZE_MAX, ADAMCORE_ADAM) == ADAMCORE_E_STRUCT_SIZE, "sized init SIZE_MAX");
    CHECK(adamcore_step_options_init_sized(&o2, 8) == ADAMCORE_E_STRUCT_SIZE, "options init too small");
    CHECK(adamcore_step_options_init_sized(NULL, 16) == ADAMCORE_E_NULL_POINTER, "options init NULL");
    CHECK(adamcore_config_init_sized(NULL, 104, ADAMCORE_ADAM) == ADAMCORE_E_NULL_POINTER, "config init NULL");
    adamcore_optimizer_destroy(opt);
    munmap(map, 2 * (size_t)page);
}

/* bfloat16 by the book (round to nearest even; the library's conversions are its own code). */
static uint16_t bf16_of(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    if (isnan(x)) return (uint16_t)((b >> 16) | 0x40);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
/* Distance in ulps of two bfloat16 patterns (sign-magnitude made monotonic). */
static int bf16_ulps(uint16_t a, uint16_t b) {
    int x = a & 0x8000 ? -(int)(a & 0x7fff) : (int)a, y = b & 0x8000 ? -(int)(b & 0x7fff) : (int)b;
    return abs(x - y);
}
static float float_of_bf16(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float x;
    memcpy(&x, &b, 4);
    return x;
}

/* Registration of 16-bit and mixed tensors: every wrong description refused with nothing written; a bf16 AdamW
 * run within one bf16 ulp per step of a float64 step from the same values; the offload form's copy is exactly the
 * float32 parameter rounded; the description reads back resolved; the seed and layout go into checkpoints. */
static void test_mixed_precision(void) {
    adamcore_config c = config_of(ADAMCORE_ADAM);
    c.lr = 1e-2;
    c.weight_decay = 0.1;
    c.flags |= ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY;
    adamcore_optimizer *opt = NULL;
    CHECK(adamcore_optimizer_create(&c, &opt) == ADAMCORE_OK, "create");
    for (int i = 0; i < N; i++) {
        arena.h[i] = bf16_of(0.5f + 0.1f * i);
        arena.hg[i] = bf16_of(0.25f * (i % 7) - 0.5f);
        arena.hcopy[i] = 0x1234;
        arena.master[i] = 1.0f + i;
    }
    adamcore_tensor_desc *d = &arena.desc;
#define FRESH_DESC(param_, dtype_)                                                                        \
    do {                                                                                                  \
        ADAMCORE_TENSOR_DESC_INIT(d);                                                                     \
        d->param_dtype = (dtype_);                                                                        \
        d->param = (param_);                                                                              \
        d->count = N;                                                                                     \
    } while (0)
    FRESH_DESC(arena.h, ADAMCORE_BFLOAT16);
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_add_tensor_desc(opt, 0, NULL, NULL));
    d->struct_size = 8;
    EXPECT_STATUS(ADAMCORE_E_STRUCT_SIZE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.h, 99);
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.h, ADAMCORE_BFLOAT16);
    d->grad_dtype = ADAMCORE_FLOAT16;
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.h, ADAMCORE_BFLOAT16);
    d->state_dtype = ADAMCORE_FLOAT16;
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.pd, ADAMCORE_FLOAT64);
    d->state_dtype = ADAMCORE_FLOAT32;
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.p, ADAMCORE_FLOAT32);
    d->flags = ADAMCORE_TENSOR_MASTER_WEIGHTS;   /* a float32 parameter is its own master */
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.h, ADAMCORE_BFLOAT16);
    d->flags = 1u << 7;
    EXPECT_STATUS(ADAMCORE_E_FLAGS, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.h, ADAMCORE_FLOAT16);
    d->flags = ADAMCORE_TENSOR_STOCHASTIC_PARAM;  /* stochastic rounding is for bfloat16 writes */
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC((char *)arena.h + 1, ADAMCORE_BFLOAT16);
    EXPECT_STATUS(ADAMCORE_E_MISALIGNED, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.h, ADAMCORE_BFLOAT16);
    d->master = arena.master;                   /* a master without the flag */
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.p, ADAMCORE_FLOAT32);
    d->copy = arena.hcopy;                      /* a copy without its dtype */
    EXPECT_STATUS(ADAMCORE_E_DTYPE, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.p, ADAMCORE_FLOAT32);
    d->copy_dtype = ADAMCORE_BFLOAT16;
    d->copy = arena.p + 4;                      /* overlapping the parameter */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(NULL, ADAMCORE_BFLOAT16);
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_optimizer_add_tensor_desc(opt, 0, d, NULL));
    FRESH_DESC(arena.h, ADAMCORE_BFLOAT16);
    EXPECT_STATUS(ADAMCORE_E_INDEX, adamcore_optimizer_add_tensor_desc(opt, 5, d, NULL));
    size_t count = 9;
    CHECK(adamcore_optimizer_tensor_count(opt, &count) == ADAMCORE_OK && count == 0, "nothing registered");

    /* A bf16 tensor (float32 state) and the offload form: float32 master p, bf16 gradients, bf16 copy. */
    uint16_t h[N], hg[N], copy[N], g2[N];
    float p[N], want[N];
    for (int i = 0; i < N; i++) { h[i] = bf16_of((float)sin(i + 1.0)); p[i] = (float)cos(i + 1.0); }
    adamcore_tensor_desc one, two;
    ADAMCORE_TENSOR_DESC_INIT(&one);
    one.param_dtype = ADAMCORE_BFLOAT16; one.param = h; one.count = N;
    ADAMCORE_TENSOR_DESC_INIT(&two);
    two.param_dtype = ADAMCORE_FLOAT32; two.grad_dtype = ADAMCORE_BFLOAT16; two.copy_dtype = ADAMCORE_BFLOAT16;
    two.param = p; two.copy = copy; two.count = N;
    size_t index = 9;
    CHECK(adamcore_optimizer_add_tensor_desc(opt, 0, &one, &index) == ADAMCORE_OK && index == 0, "bf16 tensor");
    CHECK(adamcore_optimizer_add_tensor_desc(opt, 0, &two, &index) == ADAMCORE_OK && index == 1, "offload tensor");
    CHECK(adamcore_optimizer_set_rounding_seed(opt, 1234) == ADAMCORE_OK, "seed");
    double m[N] = {0}, v[N] = {0};
    int within = 1, exact_copy = 1;
    for (int t = 1; t <= 50; t++) {
        for (int i = 0; i < N; i++) {
            hg[i] = bf16_of((float)(cos(0.37 * t * (i + 1)) * pow(10, -(i % 4))));
            g2[i] = bf16_of((float)sin(0.21 * t * (i + 2)));
        }
        /* The float64 step of tensor 0 from its current values (state read back from the library). */
        float *m32 = NULL, *v32 = NULL;
        adamcore_optimizer_state_buffer(opt, 0, 0, (void **)&m32);
        adamcore_optimizer_state_buffer(opt, 0, 1, (void **)&v32);
        double bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.999, t);
        for (int i = 0; i < N; i++) {
            double x = float_of_bf16(h[i]) * (1 - c.lr * c.weight_decay), g = float_of_bf16(hg[i]);
            m[i] = 0.9 * m32[i] + 0.1 * g;
            v[i] = 0.999 * v32[i] + 0.001 * g * g;
            want[i] = (float)(x - c.lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + c.eps));
        }
        const void *gs[2] = {hg, g2};
        CHECK(adamcore_optimizer_step(opt, gs, 2) == ADAMCORE_OK, "step %d", t);
        for (int i = 0; i < N; i++) {
            int off = bf16_ulps(h[i], bf16_of(want[i]));
            if (off > 1) within = 0;
            if (copy[i] != bf16_of(p[i])) exact_copy = 0;
        }
    }
    CHECK(within, "bf16 parameters within one ulp of the float64 step");
    CHECK(exact_copy, "the copy is the float32 parameter rounded to nearest even");
    adamcore_tensor_desc back;
    ADAMCORE_TENSOR_DESC_INIT(&back);
    CHECK(adamcore_optimizer_get_tensor_desc(opt, 0, &back) == ADAMCORE_OK && back.param_dtype == ADAMCORE_BFLOAT16 &&
          back.grad_dtype == ADAMCORE_BFLOAT16 && back.state_dtype == ADAMCORE_FLOAT32 && back.count == N &&
          back.param == h && back.state_count == 2 && back.master == NULL, "description of tensor 0");
    CHECK(adamcore_optimizer_get_tensor_desc(opt, 1, &back) == ADAMCORE_OK && back.copy_dtype == ADAMCORE_BFLOAT16 &&
          back.copy == copy && back.grad_dtype == ADAMCORE_BFLOAT16, "description of tensor 1");
    uint64_t seed = 0;
    CHECK(adamcore_optimizer_get_rounding_seed(opt, &seed) == ADAMCORE_OK && seed == 1234, "seed read back");

    /* A checkpoint loads into the same layout; into another it is MISMATCH with nothing changed. */
    size_t size = 0, written = 0;
    CHECK(adamcore_optimizer_checkpoint_size(opt, &size) == ADAMCORE_OK, "checkpoint size");
    unsigned char *bytes = malloc(size);
    CHECK(bytes && adamcore_optimizer_save_to_memory(opt, bytes, size, &written) == ADAMCORE_OK, "save");
    adamcore_optimizer *same = NULL, *other = NULL;
    uint16_t h2[N], copy2[N];
    float p2[N];
    memcpy(h2, h, sizeof h); memcpy(p2, p, sizeof p);
    one.param = h2; two.param = p2; two.copy = copy2;
    adamcore_optimizer_create(&c, &same);
    adamcore_optimizer_add_tensor_desc(same, 0, &one, NULL);
    adamcore_optimizer_add_tensor_desc(same, 0, &two, NULL);
    CHECK(adamcore_optimizer_load_from_memory(same, bytes, written) == ADAMCORE_OK, "load into the same layout");
    CHECK(adamcore_optimizer_get_rounding_seed(same, &seed) == ADAMCORE_OK && seed == 1234, "seed restored");
    adamcore_optimizer_create(&c, &other);
    one.state_dtype = ADAMCORE_BFLOAT16;
    adamcore_optimizer_add_tensor_desc(other, 0, &one, NULL);
    adamcore_optimizer_add_tensor_desc(other, 0, &two, NULL);
    CHECK(adamcore_optimizer_load_from_memory(other, bytes, written) == ADAMCORE_E_MISMATCH, "another layout");
    CHECK(adamcore_optimizer_get_rounding_seed(other, &seed) == ADAMCORE_OK && seed == 0, "nothing changed");
    free(bytes);
    adamcore_optimizer_destroy(same);
    adamcore_optimizer_destroy(other);
    adamcore_optimizer_destroy(opt);

    /* The stateless form: the same bits as a one-tensor optimizer; its errors leave every buffer as it was. */
    adamcore_optimizer *single = NULL;
    CHECK(adamcore_optimizer_create(&c, &single) == ADAMCORE_OK, "create");
    uint16_t a[N], b[N];
    float m1[N] = {0}, v1[N] = {0};
    for (int i = 0; i < N; i++) a[i] = b[i] = bf16_of((float)sin(3.0 * i));
    ADAMCORE_TENSOR_DESC_INIT(&one);
    one.param_dtype = ADAMCORE_BFLOAT16; one.param = a; one.count = N;
    CHECK(adamcore_optimizer_add_tensor_desc(single, 0, &one, NULL) == ADAMCORE_OK, "one bf16 tensor");
    void *slots1[2] = {m1, v1};
    adamcore_tensor_desc st;
    ADAMCORE_TENSOR_DESC_INIT(&st);
    st.param_dtype = ADAMCORE_BFLOAT16; st.param = b; st.count = N; st.state = slots1; st.state_count = 2;
    int same_bits = 1;
    for (int t = 1; t <= 10; t++) {
        for (int i = 0; i < N; i++) hg[i] = bf16_of((float)cos(0.5 * t + i));
        st.grad = hg;
        const void *gs[1] = {hg};
        CHECK(adamcore_optimizer_step(single, gs, 1) == ADAMCORE_OK, "object step %d", t);
        CHECK(adamcore_step_desc(&c, t, &st, 0) == ADAMCORE_OK, "stateless step %d", t);
        same_bits &= memcmp(a, b, sizeof a) == 0;
    }
    CHECK(same_bits, "adamcore_step_desc gives the optimizer object's bits");
    adamcore_optimizer_destroy(single);
    FRESH_DESC(arena.h, ADAMCORE_BFLOAT16);
    d->grad = arena.hg;
    EXPECT_STATUS(ADAMCORE_E_STATE, adamcore_step_desc(&c, 1, d, 0));             /* Adam's two slots missing */
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_step_desc(NULL, 1, d, 0));
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_step_desc(&c, 1, NULL, 0));
    adamcore_config sgd = config_of(ADAMCORE_SGD);
    sgd.lr = 0.1;
    EXPECT_STATUS(ADAMCORE_E_STEP, adamcore_step_desc(&sgd, 0, d, 0));
    d->flags = ADAMCORE_TENSOR_MASTER_WEIGHTS;                                       /* stateless: the caller's master */
    EXPECT_STATUS(ADAMCORE_E_NULL_POINTER, adamcore_step_desc(&sgd, 1, d, 0));
    d->flags = 0;
    d->grad = arena.h + 3;                                                           /* the gradient overlaps the parameter */
    EXPECT_STATUS(ADAMCORE_E_OVERLAP, adamcore_step_desc(&sgd, 1, d, 0));
    adamcore_config fix = config_of(ADAMCORE_ADAFIX);
    EXPECT_STATUS(ADAMCORE_E_ALGORITHM, adamcore_step_desc(&fix, 1, d, 0));
#undef FRESH_DESC
}

int main(void) {
    fill_arena();
    test_version_and_statuses();
    test_config();
    test_stateless_errors();
    test_adam_reference();
    test_object_matches_stateless();
    test_optimizer_errors();
    fill_arena();
    test_nonfinite_guard();
    test_grad_scale();
    char dir[] = "/tmp/adamcore-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "temporary directory");
    fill_arena();
    test_checkpoint_errors(dir);
    test_checkpoint_continuation(dir);
    test_tensor_subsets(dir);
    test_checkpoint_crash(dir);
    for (int round = 0; round < 3; round++) test_thread_stress();
    test_stats_and_advice();
    test_struct_sizes();
    test_stats_survive_a_later_tensor();
    test_isa_tiers();
    fill_arena();
    test_mixed_precision();
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK(system(command) == 0, "clean up");
    for (int code = 1; code <= LAST_ERROR; code++)
        CHECK(seen[code], "no test produces %s", adamcore_status_name(-code));
    printf("%d rejected calls with every caller byte checked\n", rejected);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
