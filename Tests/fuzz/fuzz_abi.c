/*
 * libFuzzer harness over the C ABI, built with AddressSanitizer (library and harness) and UndefinedBehaviorSanitizer
 * (harness). The first input byte picks a mode; the rest drives it:
 *   0  a config struct of raw bytes, validated, then used for stateless steps on exactly-sized heap buffers;
 *   1  a program of optimizer calls (create, add groups and tensors with fuzzed sizes, dtypes, pointers and
 *      aliasing, step with options, guard, set config/step/L, save and load, destroy twice, stray handles);
 *   2  checkpoint bytes loaded into a fixed optimizer (seed inputs are valid checkpoints, written on start-up).
 * Every call must return a status the header names; a crash, leak or sanitizer report is a finding.
 */
#include <adamcore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                                     \
    do {                                                                                                  \
        if (!(cond)) {                                                                                    \
            fprintf(stderr, "fuzz_abi: %s:%d: %s\n", __FILE__, __LINE__, #cond);                          \
            abort();                                                                                      \
        }                                                                                                 \
    } while (0)

/* A status is 1 (skipped), 0, or a named error. */
static int named(int status) {
    return status == ADAMCORE_STEP_SKIPPED || status == ADAMCORE_OK ||
           (status < 0 && status >= ADAMCORE_E_MISMATCH && strcmp(adamcore_status_name(status), "ADAMCORE_E_UNKNOWN") != 0);
}

typedef struct {
    const uint8_t *data;
    size_t size, at;
} reader;

static uint8_t next_byte(reader *r) { return r->at < r->size ? r->data[r->at++] : 0; }
static uint32_t next_u32(reader *r) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = v << 8 | next_byte(r);
    return v;
}
static double next_double(reader *r) {
    static const double table[] = {0, 1e-3, 0.9, 0.999, 1e-8, 0.5, 1, -1, 2, 1e308, -0.0, 0.01};
    uint8_t b = next_byte(r);
    if (b < 200) return table[b % (sizeof table / sizeof table[0])];
    double d;
    uint64_t bits = (uint64_t)next_u32(r) << 32 | next_u32(r);
    memcpy(&d, &bits, sizeof d);   /* any bit pattern: NaN, Inf, denormals */
    return d;
}

/* Heap blocks of exactly the requested size, freed at the end of the input (after every optimizer is gone). */
enum { MAX_BLOCKS = 64 };
static void *blocks[MAX_BLOCKS];
static int block_count;
static void *block(size_t bytes) {
    if (block_count == MAX_BLOCKS) return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return NULL;
    memset(p, 0, bytes);
    return blocks[block_count++] = p;
}
static void free_blocks(void) {
    while (block_count) free(blocks[--block_count]);
}

static adamcore_config fuzz_config(reader *r) {
    adamcore_config c;
    adamcore_config_init(&c, 1 + next_byte(r) % 5);
    uint8_t which = next_byte(r);
    if (which & 1) c.flags = next_u32(r) & 0x1FF;
    if (which & 2) c.lr = next_double(r);
    if (which & 4) c.beta1 = next_double(r);
    if (which & 8) c.beta2 = next_double(r);
    if (which & 16) c.momentum = next_double(r);
    if (which & 32) c.weight_decay = next_double(r);
    if (which & 64) c.eps = next_double(r);
    if (which & 128) c.struct_size = next_u32(r);
    return c;
}

/* Mode 0: raw config bytes, then stateless steps of every algorithm on buffers of the fuzzed length. */
static void fuzz_stateless(reader *r) {
    adamcore_config c;
    size_t take = r->size - r->at < sizeof c ? r->size - r->at : sizeof c;
    memset(&c, 0, sizeof c);
    memcpy(&c, r->data + r->at, take);
    r->at += take;
    REQUIRE(named(adamcore_config_validate(&c)));
    size_t slots = 0;
    const char *name = NULL;
    REQUIRE(named(adamcore_config_state_count(&c, &slots)));
    REQUIRE(named(adamcore_config_state_name(&c, next_byte(r) % 4, &name)));
    size_t n = next_byte(r) % 70;
    int64_t step = (int64_t)next_u32(r) - 2;
    double l = next_double(r);
    float *f[6];
    double *d[6];
    for (int k = 0; k < 6; k++) {
        f[k] = block(n * sizeof(float));
        d[k] = block(n * sizeof(double));
        if (!f[k] || !d[k]) return;
    }
    adamcore_adafix_result result;
    REQUIRE(named(adamcore_adam_step_f32(&c, step, n, f[0], f[1], f[2], f[3], next_byte(r) & 1 ? f[4] : NULL)));
    REQUIRE(named(adamcore_adam_step_f64(&c, step, n, d[0], d[1], d[2], d[3], next_byte(r) & 1 ? d[4] : NULL)));
    REQUIRE(named(adamcore_adafix_step_f32(&c, step, n, f[0], f[1], f[2], f[3], l, &result)));
    REQUIRE(named(adamcore_adafix_step_f64(&c, step, n, d[0], d[1], d[2], d[3], l, NULL)));
    REQUIRE(named(adamcore_adafix_lipschitz_f32(n, f[1], f[5], next_double(r), &l)));
    REQUIRE(named(adamcore_sgd_step_f32(&c, step, n, f[0], f[1], next_byte(r) & 1 ? f[2] : NULL)));
    REQUIRE(named(adamcore_rmsprop_step_f64(&c, step, n, d[0], d[1], d[2], next_byte(r) & 1 ? d[3] : NULL,
                                            next_byte(r) & 1 ? d[4] : NULL)));
    REQUIRE(named(adamcore_adagrad_step_f32(&c, step, n, f[0], f[1], f[2])));
    /* Lengths that lie: one element past the buffer is never read (the call checks nothing it cannot see, so only
     * in-range lengths are fuzzed; the misuse matrix covers the rest). Misaligned and aliased pointers are. */
    REQUIRE(named(adamcore_adam_step_f32(&c, 1, n > 0 ? n - 1 : 0, (float *)((char *)f[0] + 1), f[1], f[2], f[3], NULL)));
    REQUIRE(named(adamcore_adam_step_f32(&c, 1, n, f[0], f[0], f[2], f[3], NULL)));
}

/* Mode 1: a program of optimizer calls. */
static void fuzz_program(reader *r) {
    enum { MAX_OPT = 3, MAX_T = 6 };
    adamcore_optimizer *opt[MAX_OPT] = {0};
    void *gradient_lists[MAX_OPT][MAX_T];
    size_t counts[MAX_OPT][MAX_T];
    int dtypes[MAX_OPT][MAX_T], tensors[MAX_OPT] = {0};
    while (r->at < r->size) {
        uint8_t op = next_byte(r), which = next_byte(r) % MAX_OPT;
        adamcore_optimizer *o = opt[which];
        switch (op % 14) {
        case 0: {
            if (o) break;
            adamcore_config c = fuzz_config(r);
            REQUIRE(named(adamcore_optimizer_create(&c, &opt[which])));
            tensors[which] = 0;
            break;
        }
        case 1: {
            adamcore_config c = fuzz_config(r);
            size_t group = 0;
            REQUIRE(named(adamcore_optimizer_add_group(o, &c, &group)));
            break;
        }
        case 2: {
            if (tensors[which] == MAX_T) break;
            int dtype = next_byte(r) % 4;
            size_t n = next_byte(r) % 40, size = dtype == ADAMCORE_FLOAT64 ? 8 : 4;
            size_t slots = next_byte(r) % 4;
            uint8_t shape = next_byte(r);
            void *param = block(n * size), *grad = shape & 1 ? block(n * size) : NULL;
            void *state[3] = {block(n * size), block(n * size), block(n * size)};
            if (!param || !state[0] || !state[1] || !state[2]) break;
            if (shape & 2) state[1] = param;                               /* aliased */
            if (shape & 4) param = (char *)param + 2;                      /* misaligned */
            size_t index = 0;
            int s = adamcore_optimizer_add_tensor(o, next_byte(r) % 3, dtype, param, grad, n,
                                                  shape & 8 ? state : NULL, slots, &index);
            REQUIRE(named(s));
            if (s == ADAMCORE_OK) {
                REQUIRE(index == (size_t)tensors[which]);
                counts[which][index] = n;
                dtypes[which][index] = dtype;
                gradient_lists[which][index] = block(n * size);
                tensors[which]++;
            }
            break;
        }
        case 3: case 4: {
            adamcore_step_options options;
            adamcore_step_options_init(&options);
            uint8_t how = next_byte(r);
            if (how & 1) options.grad_scale = next_double(r);
            if (how & 2) options.found_inf = 1;
            if (how & 4) options.struct_size = next_u32(r);
            /* Gradients: the registered ones, or fresh exactly-sized buffers with fuzzed values. */
            for (int t = 0; t < tensors[which]; t++) {
                size_t size = dtypes[which][t] == ADAMCORE_FLOAT64 ? 8 : 4;
                uint8_t *g = gradient_lists[which][t];
                if (!g) continue;
                for (size_t b = 0; b < counts[which][t] * size; b++) g[b] = next_byte(r);
            }
            size_t count = how & 8 ? next_byte(r) % (MAX_T + 1) : (size_t)tensors[which];
            const void *const *grads = how & 16 ? NULL : (const void *const *)gradient_lists[which];
            REQUIRE(named(op % 14 == 3 ? adamcore_optimizer_step(o, grads, count)
                                       : adamcore_optimizer_step_with_options(o, grads, count, &options)));
            break;
        }
        case 5:
            REQUIRE(named(adamcore_optimizer_set_nonfinite_guard(o, next_byte(r) & 1)));
            break;
        case 6: {
            adamcore_config c = fuzz_config(r);
            REQUIRE(named(adamcore_optimizer_set_config(o, next_byte(r) % 3, &c)));
            break;
        }
        case 7:
            REQUIRE(named(adamcore_optimizer_set_step(o, (int64_t)((uint64_t)next_u32(r) << 32 | next_u32(r)))));
            break;
        case 8:
            REQUIRE(named(adamcore_optimizer_set_lipschitz(o, next_double(r))));
            REQUIRE(named(adamcore_optimizer_set_adafix_step_norm_sq(o, next_double(r))));
            break;
        case 9: {
            size_t size = 0;
            if (adamcore_optimizer_checkpoint_size(o, &size) != ADAMCORE_OK || size > (1u << 20)) break;
            uint8_t *bytes = block(size);
            if (!bytes) break;
            REQUIRE(adamcore_optimizer_save_to_memory(o, bytes, size, NULL) == ADAMCORE_OK);
            if (size > 8) bytes[8 + next_byte(r) % (size - 8)] ^= next_byte(r);   /* sometimes harmless */
            adamcore_optimizer *target = opt[next_byte(r) % MAX_OPT];
            REQUIRE(named(adamcore_optimizer_load_from_memory(target, bytes, size - next_byte(r) % 2)));
            break;
        }
        case 10: {
            int64_t step, skipped;
            uint64_t nonfinite;
            double x;
            int flag;
            size_t n;
            REQUIRE(named(adamcore_optimizer_get_step(o, &step)));
            REQUIRE(named(adamcore_optimizer_get_skipped_steps(o, &skipped, &nonfinite)));
            REQUIRE(named(adamcore_optimizer_get_lipschitz(o, &x)));
            REQUIRE(named(adamcore_optimizer_get_adafix_step_norm_sq(o, &x)));
            REQUIRE(named(adamcore_optimizer_adafix_v_updated(o, &flag)));
            REQUIRE(named(adamcore_optimizer_tensor_count(o, &n)));
            REQUIRE(named(adamcore_optimizer_group_count(o, &n)));
            void *buffer;
            REQUIRE(named(adamcore_optimizer_state_buffer(o, next_byte(r) % 8, next_byte(r) % 4, &buffer)));
            break;
        }
        case 11: {
            const void *news[MAX_T];
            for (int t = 0; t < tensors[which]; t++) news[t] = gradient_lists[which][t];
            REQUIRE(named(adamcore_optimizer_adafix_observe(o, NULL, news, (size_t)tensors[which])));
            break;
        }
        case 12:
            /* Destroy, then use the stale handle once more (it must be refused, not dereferenced). */
            REQUIRE(named(adamcore_optimizer_destroy(o)));
            REQUIRE(adamcore_optimizer_destroy(o) == (o ? ADAMCORE_E_HANDLE : ADAMCORE_OK));
            REQUIRE(o == NULL || adamcore_optimizer_step(o, NULL, 0) == ADAMCORE_E_HANDLE);
            opt[which] = NULL;
            tensors[which] = 0;
            break;
        case 13: {
            void *stray = block(64);
            if (stray) REQUIRE(adamcore_optimizer_step((adamcore_optimizer *)stray, NULL, 0) == ADAMCORE_E_HANDLE);
            REQUIRE(named(adamcore_set_num_threads((int)(next_byte(r) % 5) - 1)));
            break;
        }
        }
    }
    for (int k = 0; k < MAX_OPT; k++) REQUIRE(adamcore_optimizer_destroy(opt[k]) == ADAMCORE_OK);
    adamcore_set_num_threads(0);
}

/* Mode 2: checkpoint bytes for a fixed optimizer. */
static adamcore_optimizer *checkpoint_target(float **p, double **d) {
    adamcore_config c;
    adamcore_config_init(&c, ADAMCORE_ADAM);
    c.flags = ADAMCORE_FLAG_AMSGRAD;
    adamcore_optimizer *o = NULL;
    REQUIRE(adamcore_optimizer_create(&c, &o) == ADAMCORE_OK);
    size_t group;
    REQUIRE(adamcore_optimizer_add_group(o, &c, &group) == ADAMCORE_OK);
    *p = calloc(5, sizeof(float));
    *d = calloc(3, sizeof(double));
    REQUIRE(adamcore_optimizer_add_tensor(o, 0, ADAMCORE_FLOAT32, *p, NULL, 5, NULL, 0, NULL) == ADAMCORE_OK);
    REQUIRE(adamcore_optimizer_add_tensor(o, 1, ADAMCORE_FLOAT64, *d, NULL, 3, NULL, 0, NULL) == ADAMCORE_OK);
    return o;
}

static void fuzz_checkpoint(reader *r) {
    float *p;
    double *d;
    adamcore_optimizer *o = checkpoint_target(&p, &d);
    size_t n = r->size - r->at;
    uint8_t *bytes = malloc(n ? n : 1);   /* its own block, so ASan sees any read past the end */
    memcpy(bytes, r->data + r->at, n);
    REQUIRE(named(adamcore_optimizer_load_from_memory(o, bytes, n)));
    free(bytes);
    REQUIRE(adamcore_optimizer_destroy(o) == ADAMCORE_OK);
    free(p);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size, size ? 1 : 0};
    switch (size ? data[0] % 3 : 0) {
    case 0: fuzz_stateless(&r); break;
    case 1: fuzz_program(&r); break;
    case 2: fuzz_checkpoint(&r); break;
    }
    free_blocks();
    return 0;
}

/* With ADAMCORE_FUZZ_SEEDS=dir: write a valid checkpoint (mode byte 2 in front) as a seed, so mutation starts
 * from inputs that pass the parser's early checks. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("ADAMCORE_FUZZ_SEEDS");
    if (!dir) return 0;
    float *p;
    double *d;
    adamcore_optimizer *o = checkpoint_target(&p, &d);
    float g[5] = {1, -2, 3, -4, 5};
    double h[3] = {0.5, 0.25, -1};
    const void *grads[2] = {g, h};
    REQUIRE(adamcore_optimizer_step(o, grads, 2) == ADAMCORE_OK);
    size_t size = 0;
    REQUIRE(adamcore_optimizer_checkpoint_size(o, &size) == ADAMCORE_OK);
    uint8_t *bytes = malloc(size + 1);
    bytes[0] = 2;
    REQUIRE(adamcore_optimizer_save_to_memory(o, bytes + 1, size, NULL) == ADAMCORE_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/checkpoint-seed", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(bytes, 1, size + 1, f);
        fclose(f);
    }
    free(bytes);
    adamcore_optimizer_destroy(o);
    free(p);
    free(d);
    return 0;
}
