/*
 * libFuzzer harness over the C ABI, built with AddressSanitizer (library and harness) and UndefinedBehaviorSanitizer
 * (harness). The first input byte picks a mode; the rest drives it:
 *   0  a config struct of raw bytes (in a block of exactly its struct_size), validated, then used for stateless
 *      steps on exactly-sized heap buffers;
 *   1  a program of optimizer calls (create, add groups and tensors with fuzzed sizes, dtypes, pointers and
 *      aliasing, step with options, steps of fuzzed subsets (index lists with duplicates, out-of-range entries,
 *      SIZE_MAX, NULL), gradients that alias registered buffers or are misaligned or NULL, per-tensor step counts,
 *      set_tensor_param to fresh, aliased, misaligned or NULL memory, guard, set config/step/L, save and load,
 *      destroy twice, stray handles), with the memory each call may write and its step counts checked;
 *   2  checkpoint bytes loaded into a fixed optimizer (seed inputs are valid checkpoints, written on start-up).
 * Structs (config, step options, stats) go in heap blocks of exactly their fuzzed struct_size, so touching a byte
 * past it is an ASan report. Every call must return a status the header names; a crash, leak or sanitizer report is
 * a finding.
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

/* A status is 1 (skipped), 0, or an error of the header's list (ADAMCORE_STATUS_MAP). */
static int named(int status) {
    switch (status) {
#define NAMED_STATUS_(name, value, message) case value:
    ADAMCORE_STATUS_MAP(NAMED_STATUS_)
#undef NAMED_STATUS_
        return 1;
    default:
        return 0;
    }
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
enum { MAX_BLOCKS = 512 };
static void *blocks[MAX_BLOCKS];
static size_t block_sizes[MAX_BLOCKS];
static int block_count;
static void *block(size_t bytes) {
    if (block_count == MAX_BLOCKS) return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return NULL;
    memset(p, 0, bytes);
    block_sizes[block_count] = bytes;
    return blocks[block_count++] = p;
}
static void free_blocks(void) {
    while (block_count) free(blocks[--block_count]);
}

/* Structs by struct_size (0.2.0): the library reads and writes nothing past a struct's struct_size and refuses a
 * size above 4096 without reading the struct. So a fuzzed struct_size is passed in a heap block of exactly that many
 * bytes (just the 4-byte field for a size above 4096 or below 4), where ASan sees any byte touched past it. */
enum { LARGEST_STRUCT = 4096 };
static size_t struct_bytes(uint32_t size) { return size > LARGEST_STRUCT || size < 4 ? 4 : size; }

/* Mostly this header's size; sometimes a newer (larger) layout, a size below any release's, 4096 and 4097, 0..3,
 * any 32 bits. */
static uint32_t fuzz_struct_size(reader *r, size_t known) {
    uint8_t b = next_byte(r);
    switch (b % 10) {
    case 0: return next_u32(r);
    case 1: case 2: return (uint32_t)known + 8 * (1 + b / 10 % 16);
    case 3: return (uint32_t)known - 1 - b / 10 % 8;
    case 4: return LARGEST_STRUCT - b / 10 % 2;
    case 5: return LARGEST_STRUCT + 1 + b / 10;
    case 6: return b / 10 % 4;
    default: return (uint32_t)known;
    }
}

/* `value` (`known` bytes) as a struct of struct_size `size` in a block of its own; the bytes past `known` zero, or
 * (sometimes) one of them not, which must be refused. */
static void *sized_copy(reader *r, const void *value, size_t known, uint32_t size) {
    size_t bytes = struct_bytes(size);
    uint8_t *b = block(bytes);
    if (!b) return NULL;
    memcpy(b, value, bytes < known ? bytes : known);
    memcpy(b, &size, sizeof size);
    if (bytes > known && next_byte(r) % 4 == 0) b[known + next_byte(r) % (bytes - known)] = next_byte(r) | 1;
    return b;
}

/* A block for a struct the library writes, of a fuzzed struct_size, filled with 0xA5 past the field. */
static uint8_t *out_struct(reader *r, size_t known, uint32_t *size) {
    *size = fuzz_struct_size(r, known);
    uint8_t *b = block(struct_bytes(*size));
    if (!b) return NULL;
    memset(b, 0xA5, struct_bytes(*size));
    memcpy(b, size, sizeof *size);
    return b;
}

/* After the library wrote (or, failing, did not write) such a struct: struct_size kept, the bytes past this
 * library's layout zeroed; failing, every byte as it was. */
static void check_out_struct(const uint8_t *b, uint32_t size, size_t known, int status) {
    if (!b) return;
    uint32_t kept;
    memcpy(&kept, b, sizeof kept);
    REQUIRE(kept == size);
    size_t bytes = struct_bytes(size);
    for (size_t i = 4; i < bytes; i++) REQUIRE(status == ADAMCORE_OK ? i < known || b[i] == 0 : b[i] == 0xA5);
}

static const adamcore_config *fuzz_config(reader *r, int *algorithm) {
    adamcore_config c;
    int alg = 1 + next_byte(r) % 5;
    ADAMCORE_CONFIG_INIT(&c, alg);
    if (algorithm) *algorithm = alg;
    uint8_t which = next_byte(r);
    if (which & 1) c.flags = next_u32(r) & 0x1FF;
    if (which & 2) c.lr = next_double(r);
    if (which & 4) c.beta1 = next_double(r);
    if (which & 8) c.beta2 = next_double(r);
    if (which & 16) c.momentum = next_double(r);
    if (which & 32) c.weight_decay = next_double(r);
    if (which & 64) c.eps = next_double(r);
    return sized_copy(r, &c, sizeof c, which & 128 ? fuzz_struct_size(r, sizeof c) : (uint32_t)sizeof c);
}

/* Mode 0: raw config bytes, then stateless steps of every algorithm on buffers of the fuzzed length. */
static void fuzz_stateless(reader *r) {
    adamcore_config c;
    size_t take = r->size - r->at < sizeof c ? r->size - r->at : sizeof c;
    memset(&c, 0, sizeof c);
    memcpy(&c, r->data + r->at, take);
    r->at += take;
    const adamcore_config *cp = sized_copy(r, &c, sizeof c, c.struct_size);   /* the raw bytes' struct_size */
    if (!cp) return;
    REQUIRE(named(adamcore_config_validate(cp)));
    size_t slots = 0;
    const char *name = NULL;
    REQUIRE(named(adamcore_config_state_count(cp, &slots)));
    REQUIRE(named(adamcore_config_state_name(cp, next_byte(r) % 4, &name)));
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
    REQUIRE(named(adamcore_adam_step_f32(cp, step, n, f[0], f[1], f[2], f[3], next_byte(r) & 1 ? f[4] : NULL)));
    REQUIRE(named(adamcore_adam_step_f64(cp, step, n, d[0], d[1], d[2], d[3], next_byte(r) & 1 ? d[4] : NULL)));
    REQUIRE(named(adamcore_adafix_step_f32(cp, step, n, f[0], f[1], f[2], f[3], l, &result)));
    REQUIRE(named(adamcore_adafix_step_f64(cp, step, n, d[0], d[1], d[2], d[3], l, NULL)));
    REQUIRE(named(adamcore_adafix_lipschitz_f32(n, f[1], f[5], next_double(r), &l)));
    REQUIRE(named(adamcore_sgd_step_f32(cp, step, n, f[0], f[1], next_byte(r) & 1 ? f[2] : NULL)));
    REQUIRE(named(adamcore_rmsprop_step_f64(cp, step, n, d[0], d[1], d[2], next_byte(r) & 1 ? d[3] : NULL,
                                            next_byte(r) & 1 ? d[4] : NULL)));
    REQUIRE(named(adamcore_adagrad_step_f32(cp, step, n, f[0], f[1], f[2])));
    /* Lengths that lie: one element past the buffer is never read (the call checks nothing it cannot see, so only
     * in-range lengths are fuzzed; the misuse matrix covers the rest). Misaligned and aliased pointers are. */
    REQUIRE(named(adamcore_adam_step_f32(cp, 1, n > 0 ? n - 1 : 0, (float *)((char *)f[0] + 1), f[1], f[2], f[3], NULL)));
    REQUIRE(named(adamcore_adam_step_f32(cp, 1, n, f[0], f[0], f[2], f[3], NULL)));
    /* Tensor descriptions of any dtypes, flags and buffers (each buffer a block of n doubles, so every dtype fits;
     * offsets 1 and 2 misalign them for some dtypes), through the stateless step and a registration. */
    adamcore_tensor_desc desc;
    ADAMCORE_TENSOR_DESC_INIT(&desc);
    desc.param_dtype = next_byte(r) % 6 - 1;
    desc.grad_dtype = next_byte(r) % 6 - 1;
    desc.state_dtype = next_byte(r) % 6 - 1;
    desc.copy_dtype = next_byte(r) % 6 - 1;
    desc.flags = next_byte(r) & 1 ? next_u32(r) : next_byte(r) % 8;
    desc.count = n;
    uint8_t shift = next_byte(r);
    desc.param = (char *)d[0] + (shift & 3 ? 0 : shift % 3);
    desc.grad = next_byte(r) % 8 ? d[1] : (const void *)d[0];   /* sometimes the parameter itself */
    void *slots_given[3] = {d[2], d[3], next_byte(r) % 8 ? (void *)d[4] : (void *)d[2]};
    desc.state = next_byte(r) % 4 ? slots_given : NULL;
    desc.state_count = next_byte(r) % 4;
    desc.master = next_byte(r) & 1 ? (float *)d[5] : NULL;
    desc.copy = next_byte(r) & 1 ? (void *)f[5] : NULL;
    const adamcore_tensor_desc *dp = sized_copy(r, &desc, sizeof desc, next_byte(r) % 4 ? (uint32_t)sizeof desc
                                                                                         : next_u32(r));
    if (!dp) return;
    REQUIRE(named(adamcore_step_desc(cp, step, dp, next_u32(r))));
    adamcore_optimizer *o = NULL;
    if (adamcore_optimizer_create(cp, &o) == ADAMCORE_OK) {
        size_t index = 0;
        int added = adamcore_optimizer_add_tensor_desc(o, next_byte(r) % 2, dp, &index);
        REQUIRE(named(added));
        if (added == ADAMCORE_OK) {
            adamcore_tensor_desc back;
            ADAMCORE_TENSOR_DESC_INIT(&back);
            REQUIRE(adamcore_optimizer_get_tensor_desc(o, index, &back) == ADAMCORE_OK);
            REQUIRE(back.count == n && back.param == dp->param);
            const void *g[1] = {dp->grad ? dp->grad : d[1]};
            REQUIRE(named(adamcore_optimizer_step(o, g, 1)));
        }
        REQUIRE(adamcore_optimizer_destroy(o) == ADAMCORE_OK);
    }
}

/* Mode 1: a program of optimizer calls.
 *
 * The harness keeps its own record of every optimizer: each tensor's current parameter (and the block it lies in),
 * its registered gradient, its state buffers (the caller's or the library's, from adamcore_optimizer_state_buffer),
 * and the step counts. From it, it knows when a call must fail (a listed index out of range or repeated, a gradient
 * that is NULL, misaligned or overlaps a registered parameter or state, a step count that would overflow, a new
 * parameter that overlaps another buffer of the optimizer) and, around every call that may step or must not write,
 * which bytes of memory may change: every heap block of the input and every registered state buffer is
 * snapshotted before the call and compared after it. A successful step may write only the parameters and state of
 * the tensors it stepped; a failed or skipped step, set_tensor_param, set_tensor_step and observe write nothing;
 * a load writes only the target's state. The step counts must move as the header says. */
enum { MAX_OPT = 3, MAX_T = 6, MAX_SPARE = 8 };

typedef struct {
    uint8_t *param;          /* the registered parameter now */
    uint8_t *backing;        /* the heap block param lies in, and its size: where a moved param may slide to */
    size_t backing_bytes;
    const uint8_t *grad;     /* the registered gradient, or NULL */
    uint8_t *state[3];       /* from adamcore_optimizer_state_buffer */
    int slots;
    size_t n, size;          /* elements, bytes per element */
    int dtype;
    uint8_t *list_grad;      /* the gradient the harness passes in lists: exactly n * size bytes */
} tensor_rec;

typedef struct {
    adamcore_optimizer *o;
    int algorithm;
    int count;
    tensor_rec t[MAX_T];
    uint8_t *spare[MAX_SPARE];   /* parameters given up by set_tensor_param: still alive, no longer registered */
    size_t spare_bytes[MAX_SPARE];
    int spares;
} opt_rec;

static int overlap(const void *a, size_t an, const void *b, size_t bn) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return a && b && an && bn && x < y + bn && y < x + an;
}

/* Memory snapshots. */
typedef struct {
    const uint8_t *p;
    size_t bytes;
} region;
enum { WATCH_MAX = 2 * MAX_BLOCKS + MAX_OPT * MAX_T * 3, ARENA = 4 << 20 };
static region watched[WATCH_MAX];
static size_t watched_at[WATCH_MAX];
static int watch_count;
static uint8_t arena[ARENA];
static size_t arena_used;

static void watch(const void *p, size_t bytes) {
    if (!p || !bytes || watch_count == WATCH_MAX || bytes > ARENA - arena_used) return;
    watched[watch_count] = (region){p, bytes};
    watched_at[watch_count++] = arena_used;
    memcpy(arena + arena_used, p, bytes);
    arena_used += bytes;
}

static void snapshot(const opt_rec *opts) {
    watch_count = 0;
    arena_used = 0;
    for (int b = 0; b < block_count; b++) watch(blocks[b], block_sizes[b]);
    for (int k = 0; k < MAX_OPT; k++)
        for (int t = 0; t < opts[k].count; t++)
            for (int s = 0; s < opts[k].t[t].slots; s++) watch(opts[k].t[t].state[s], opts[k].t[t].n * opts[k].t[t].size);
}

/* The regions a call may have written: the parameter (if `params`) and state of the tensors in `mask`. */
static int allowed_regions(const opt_rec *oi, unsigned mask, int params, region *out) {
    int n = 0;
    for (int t = 0; t < oi->count; t++) {
        if (!(mask >> t & 1)) continue;
        size_t bytes = oi->t[t].n * oi->t[t].size;
        if (params) out[n++] = (region){oi->t[t].param, bytes};
        for (int s = 0; s < oi->t[t].slots; s++) out[n++] = (region){oi->t[t].state[s], bytes};
    }
    return n;
}

static void verify_memory(const char *call, int status, const region *allowed, int n_allowed) {
    for (int w = 0; w < watch_count; w++) {
        const uint8_t *p = watched[w].p, *old = arena + watched_at[w];
        if (memcmp(p, old, watched[w].bytes) == 0) continue;
        for (size_t i = 0; i < watched[w].bytes; i++) {
            if (p[i] == old[i]) continue;
            int ok = 0;
            for (int a = 0; a < n_allowed && !ok; a++) ok = overlap(p + i, 1, allowed[a].p, allowed[a].bytes);
            if (!ok) {
                fprintf(stderr, "fuzz_abi: %s returned %s and wrote byte %zu of a %zu-byte buffer at %p "
                        "(0x%02x -> 0x%02x) that it must not write\n", call, adamcore_status_name(status), i,
                        watched[w].bytes, (const void *)p, old[i], p[i]);
                abort();
            }
        }
    }
}

/* Scalar state, before and after a call. */
typedef struct {
    int64_t step, skipped, tsteps[MAX_T];
    double l, sn;
    int ls, ss;
} scalars;

static scalars read_scalars(const opt_rec *oi) {
    scalars s;
    memset(&s, 0, sizeof s);
    if (!oi->o) return s;
    REQUIRE(adamcore_optimizer_get_step(oi->o, &s.step) == ADAMCORE_OK);
    REQUIRE(adamcore_optimizer_get_skipped_steps(oi->o, &s.skipped, NULL) == ADAMCORE_OK);
    for (int t = 0; t < oi->count; t++) REQUIRE(adamcore_optimizer_get_tensor_step(oi->o, t, &s.tsteps[t]) == ADAMCORE_OK);
    s.ls = adamcore_optimizer_get_lipschitz(oi->o, &s.l);
    s.ss = adamcore_optimizer_get_adafix_step_norm_sq(oi->o, &s.sn);
    REQUIRE(named(s.ls) && named(s.ss));
    return s;
}

static int same_adafix_scalars(const scalars *a, const scalars *b) {
    return a->ls == b->ls && a->ss == b->ss && memcmp(&a->l, &b->l, sizeof a->l) == 0 &&
           memcmp(&a->sn, &b->sn, sizeof a->sn) == 0;
}

/* After a step call of the tensors in `stepped`: the counts the header promises. */
static void verify_step_counts(const opt_rec *oi, const scalars *before, int status, unsigned stepped) {
    if (!oi->o) return;
    scalars after = read_scalars(oi);
    if (status == ADAMCORE_OK) {
        REQUIRE(after.step == before->step + 1);
        REQUIRE(after.skipped == before->skipped);
        for (int t = 0; t < oi->count; t++) REQUIRE(after.tsteps[t] == before->tsteps[t] + (int64_t)(stepped >> t & 1));
        return;
    }
    REQUIRE(after.step == before->step);
    REQUIRE(after.skipped == before->skipped + (status == ADAMCORE_STEP_SKIPPED));
    for (int t = 0; t < oi->count; t++) REQUIRE(after.tsteps[t] == before->tsteps[t]);
    REQUIRE(same_adafix_scalars(&after, before));
}

/* After a call that changes no count (and, failing, nothing). */
static void verify_unchanged(const opt_rec *oi, const scalars *before, int status, int adafix_may_change) {
    if (!oi->o) return;
    scalars after = read_scalars(oi);
    REQUIRE(after.step == before->step && after.skipped == before->skipped);
    for (int t = 0; t < oi->count; t++) REQUIRE(after.tsteps[t] == before->tsteps[t]);
    if (status != ADAMCORE_OK || !adafix_may_change) REQUIRE(same_adafix_scalars(&after, before));
}

/* A tensor index: mostly in range, sometimes one past the end, far out, SIZE_MAX or above INT64_MAX. */
static size_t fuzz_index(reader *r, int count) {
    uint8_t b = next_byte(r);
    switch (b % 10) {
    case 0: return (size_t)count;
    case 1: return SIZE_MAX;
    case 2: return (size_t)1 << 63;
    case 3: return (size_t)INT64_MAX;
    case 4: return (size_t)count + b / 10;
    default: return (size_t)(b / 10) % (size_t)(count > 0 ? count : 1);
    }
}

/* A step count: small, negative, at and next to INT64_MAX, or any 64 bits. */
static int64_t fuzz_step(reader *r) {
    static const int64_t table[] = {0, 1, 2, 3, 10, -1, INT64_MIN, INT64_MAX, INT64_MAX - 1, INT64_MAX - 2, 1000000};
    uint8_t b = next_byte(r);
    if (b < 220) return table[b % (sizeof table / sizeof table[0])];
    return (int64_t)((uint64_t)next_u32(r) << 32 | next_u32(r));
}

/* A pointer into one of oi's buffers of kind `kind` (0 a parameter, within the block it lies in; 1 a state
 * buffer; 2 a registered gradient; 3 a spare, i.e. a former parameter; 4 a list gradient) with at least `need`
 * bytes from it, at a fuzzed multiple of `align` into it. NULL if there is none that fits. */
static uint8_t *pick_buffer(reader *r, opt_rec *oi, int kind, size_t need, size_t align) {
    uint8_t j = next_byte(r), k = next_byte(r);
    uint8_t *base = NULL;
    size_t bytes = 0;
    if (kind == 3) {
        if (!oi->spares) return NULL;
        base = oi->spare[j % oi->spares];
        bytes = oi->spare_bytes[j % oi->spares];
    } else {
        if (!oi->count) return NULL;
        tensor_rec *t = &oi->t[j % oi->count];
        size_t own = t->n * t->size;
        switch (kind) {
        case 0: base = t->backing; bytes = t->backing_bytes; break;
        case 1: if (!t->slots) return NULL; base = t->state[k % t->slots]; bytes = own; break;
        case 2: base = (uint8_t *)t->grad; bytes = t->grad ? own : 0; break;
        default: base = t->list_grad; bytes = own; break;
        }
        k /= 4;
    }
    if (!base) return NULL;
    size_t off = (size_t)(k % 6) * align;
    if (off > bytes || bytes - off < need) off = 0;
    if (bytes < need) return NULL;
    return base + off;
}

/* Whether a gradient g for tensor t of oi must make a step fail: NULL, misaligned, or overlapping a registered
 * parameter or state buffer (of any tensor of oi, its own included). */
static int bad_grad(const opt_rec *oi, int t, const void *g) {
    const tensor_rec *rec = &oi->t[t];
    if (!g || (uintptr_t)g % rec->size) return 1;
    size_t need = rec->n * rec->size;
    for (int j = 0; j < oi->count; j++) {
        size_t bytes = oi->t[j].n * oi->t[j].size;
        if (overlap(g, need, oi->t[j].param, bytes)) return 1;
        for (int s = 0; s < oi->t[j].slots; s++)
            if (overlap(g, need, oi->t[j].state[s], bytes)) return 1;
    }
    return 0;
}

/* A gradient for the list entry naming tensor t (which may be out of range): mostly the harness's own buffer,
 * sometimes NULL, misaligned, or another buffer of the optimizer (a parameter or state, which must be refused;
 * a registered gradient, a spare or another list gradient, which may be read). */
static const void *pick_grad(reader *r, opt_rec *oi, size_t t) {
    if (t >= (size_t)oi->count) return block(8);
    tensor_rec *rec = &oi->t[t];
    size_t need = rec->n * rec->size;
    uint8_t how = next_byte(r);
    uint8_t *g = NULL;
    switch (how % 16) {
    case 8: return NULL;
    case 9: {
        uint8_t *b = block(need + 8);
        return b ? b + 1 + (how >> 4) % (rec->size - 1) : NULL;   /* 1..size-1 bytes off */
    }
    case 10: g = pick_buffer(r, oi, 0, need, rec->size); break;
    case 11: g = pick_buffer(r, oi, 1, need, rec->size); break;
    case 12: g = pick_buffer(r, oi, 2, need, rec->size); break;
    case 13: g = pick_buffer(r, oi, 3, need, rec->size); break;
    case 14: g = pick_buffer(r, oi, 4, need, rec->size); break;
    default: break;
    }
    return g ? g : rec->list_grad;
}

/* Fill the list gradients of the tensors in `mask` with input bytes (any value: NaN, Inf, denormals). */
static void fill_grads(reader *r, opt_rec *oi, unsigned mask) {
    for (int t = 0; t < oi->count; t++) {
        if (!(mask >> t & 1) || !oi->t[t].list_grad) continue;
        for (size_t b = 0; b < oi->t[t].n * oi->t[t].size; b++) oi->t[t].list_grad[b] = next_byte(r);
    }
}

static const adamcore_step_options *fuzz_options(reader *r, uint8_t how) {
    adamcore_step_options options;
    ADAMCORE_STEP_OPTIONS_INIT(&options);
    if (how & 1) options.grad_scale = next_double(r);
    if (how & 2) options.found_inf = 1;
    return sized_copy(r, &options, sizeof options, how & 4 ? fuzz_struct_size(r, sizeof options) : (uint32_t)sizeof options);
}

/* The handle refuses every per-tensor call (a destroyed or stray handle). */
static void require_refused(adamcore_optimizer *o) {
    size_t zero = 0;
    int64_t step;
    REQUIRE(adamcore_optimizer_step_tensors(o, &zero, NULL, 1, NULL) == ADAMCORE_E_HANDLE);
    REQUIRE(adamcore_optimizer_step_tensors(o, NULL, NULL, 0, NULL) == ADAMCORE_E_HANDLE);
    REQUIRE(adamcore_optimizer_get_tensor_step(o, 0, &step) == ADAMCORE_E_HANDLE);
    REQUIRE(adamcore_optimizer_set_tensor_step(o, 0, 1) == ADAMCORE_E_HANDLE);
    REQUIRE(adamcore_optimizer_set_tensor_param(o, 0, &zero) == ADAMCORE_E_HANDLE);
}

static void fuzz_program(reader *r) {
    static opt_rec opts[MAX_OPT];
    memset(opts, 0, sizeof opts);
    region allowed[MAX_T * 4];
    while (r->at < r->size) {
        uint8_t op = next_byte(r), which = next_byte(r) % MAX_OPT;
        opt_rec *oi = &opts[which];
        adamcore_optimizer *o = oi->o;
        switch (op % 18) {
        case 0: {
            if (o) break;
            int algorithm;
            const adamcore_config *c = fuzz_config(r, &algorithm);
            int s = adamcore_optimizer_create(c, &oi->o);
            REQUIRE(named(s));
            REQUIRE((s == ADAMCORE_OK) == (oi->o != NULL));
            oi->count = 0;
            oi->spares = 0;
            oi->algorithm = algorithm;
            break;
        }
        case 1: {
            const adamcore_config *c = fuzz_config(r, NULL);
            size_t group = 0;
            REQUIRE(named(adamcore_optimizer_add_group(o, c, &group)));
            break;
        }
        case 2: {
            if (oi->count == MAX_T) break;
            int dtype = next_byte(r) % 4;
            size_t n = next_byte(r) % 40, size = dtype == ADAMCORE_FLOAT64 ? 8 : 4;
            size_t slots = next_byte(r) % 4;
            uint8_t shape = next_byte(r);
            void *param = block(n * size), *grad = shape & 1 ? block(n * size) : NULL;
            void *state[3] = {block(n * size), block(n * size), block(n * size)};
            uint8_t *list = block(n * size);
            if (!param || !state[0] || !state[1] || !state[2] || !list) break;
            uint8_t *backing = param;
            if (shape & 2) state[1] = param;                               /* aliased */
            if (shape & 4) param = (char *)param + 2;                      /* misaligned */
            size_t index = 0;
            int s = adamcore_optimizer_add_tensor(o, next_byte(r) % 3, dtype, param, grad, n,
                                                  shape & 8 ? state : NULL, slots, &index);
            REQUIRE(named(s));
            if (s == ADAMCORE_OK) {
                REQUIRE(index == (size_t)oi->count);
                tensor_rec *t = &oi->t[index];
                memset(t, 0, sizeof *t);
                t->param = param;
                t->backing = backing;
                t->backing_bytes = n * size;
                t->grad = grad;
                t->n = n;
                t->size = size;
                t->dtype = dtype;
                t->list_grad = list;
                void *buffer;
                while (t->slots < 3 && adamcore_optimizer_state_buffer(o, index, t->slots, &buffer) == ADAMCORE_OK)
                    t->state[t->slots++] = buffer;
                REQUIRE(adamcore_optimizer_state_buffer(o, index, t->slots, &buffer) == ADAMCORE_E_INDEX);
                int64_t step = -1;
                REQUIRE(adamcore_optimizer_get_tensor_step(o, index, &step) == ADAMCORE_OK && step == 0);
                oi->count++;
            }
            break;
        }
        case 3: case 4: {
            uint8_t how = next_byte(r);
            const adamcore_step_options *options = fuzz_options(r, how);
            unsigned all = (1u << oi->count) - 1;
            if (!(how & 64)) fill_grads(r, oi, all);
            size_t count = how & 8 ? next_byte(r) % (MAX_T + 1) : (size_t)oi->count;
            /* Gradients: the registered ones, the list ones, or each picked (aliased, misaligned, NULL). */
            const void *list[MAX_T];
            for (int t = 0; t < oi->count; t++) list[t] = how & 32 ? pick_grad(r, oi, t) : oi->t[t].list_grad;
            const void *const *grads = how & 16 ? NULL : list;
            scalars before = read_scalars(oi);
            int must_fail = !o || count != (size_t)oi->count || before.step == INT64_MAX;
            for (int t = 0; t < oi->count; t++)
                must_fail |= before.tsteps[t] == INT64_MAX || bad_grad(oi, t, grads ? grads[t] : oi->t[t].grad);
            snapshot(opts);
            int s = op % 18 == 3 ? adamcore_optimizer_step(o, grads, count)
                                 : adamcore_optimizer_step_with_options(o, grads, count, options);
            REQUIRE(named(s));
            REQUIRE(!must_fail || s < 0);
            verify_memory("adamcore_optimizer_step", s, allowed, s == ADAMCORE_OK ? allowed_regions(oi, all, 1, allowed) : 0);
            verify_step_counts(oi, &before, s, all);
            break;
        }
        case 5: {
            REQUIRE(named(adamcore_optimizer_set_nonfinite_guard(o, next_byte(r) & 1)));
            /* Statistics, whose per-tensor figures must follow subset steps (a tensor not stepped has none). */
            REQUIRE(named(adamcore_optimizer_set_stats(o, (int)(next_byte(r) % 4) - 1)));
            uint32_t size;
            uint8_t *stats = out_struct(r, sizeof(adamcore_step_stats), &size);
            int s = adamcore_optimizer_get_stats(o, (adamcore_step_stats *)stats);
            REQUIRE(named(s));
            check_out_struct(stats, size, sizeof(adamcore_step_stats), s);
            stats = out_struct(r, sizeof(adamcore_step_stats), &size);
            s = adamcore_optimizer_get_tensor_stats(o, fuzz_index(r, oi->count), (adamcore_step_stats *)stats);
            REQUIRE(named(s));
            check_out_struct(stats, size, sizeof(adamcore_step_stats), s);
            break;
        }
        case 6: {
            const adamcore_config *c = fuzz_config(r, NULL);
            REQUIRE(named(adamcore_optimizer_set_config(o, next_byte(r) % 3, c)));
            uint32_t size;   /* and read a group's config back, by a fuzzed struct_size */
            uint8_t *back = out_struct(r, sizeof(adamcore_config), &size);
            int s = adamcore_optimizer_get_config(o, next_byte(r) % 3, (adamcore_config *)back);
            REQUIRE(named(s));
            check_out_struct(back, size, sizeof(adamcore_config), s);
            if (s == ADAMCORE_OK) REQUIRE(adamcore_config_validate((const adamcore_config *)back) == ADAMCORE_OK);
            break;
        }
        case 7: {
            int64_t v = fuzz_step(r);
            int s = adamcore_optimizer_set_step(o, v);
            REQUIRE(named(s));
            REQUIRE(!(o && v < 0) || s == ADAMCORE_E_STEP);
            if (s == ADAMCORE_OK) {
                scalars after = read_scalars(oi);
                REQUIRE(after.step == v);
                for (int t = 0; t < oi->count; t++) REQUIRE(after.tsteps[t] == v);
            }
            break;
        }
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
            opt_rec *target = &opts[next_byte(r) % MAX_OPT];
            scalars before = read_scalars(target);
            snapshot(opts);
            int s = adamcore_optimizer_load_from_memory(target->o, bytes, size - next_byte(r) % 2);
            REQUIRE(named(s));
            /* A load writes the target's state, never a parameter or the checkpoint bytes; failing, nothing. */
            verify_memory("adamcore_optimizer_load_from_memory", s, allowed,
                          s == ADAMCORE_OK ? allowed_regions(target, (1u << target->count) - 1, 0, allowed) : 0);
            if (s != ADAMCORE_OK) verify_unchanged(target, &before, s, 0);
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
            size_t t = fuzz_index(r, oi->count);
            int s = adamcore_optimizer_get_tensor_step(o, t, next_byte(r) % 4 ? &step : NULL);
            REQUIRE(named(s));
            REQUIRE(!(o && t >= (size_t)oi->count) || s == ADAMCORE_E_INDEX || s == ADAMCORE_E_NULL_POINTER);
            break;
        }
        case 11: {
            const void *news[MAX_T];
            uint8_t how = next_byte(r);
            for (int t = 0; t < oi->count; t++) news[t] = how & 1 ? pick_grad(r, oi, t) : oi->t[t].list_grad;
            scalars before = read_scalars(oi);
            snapshot(opts);
            int s = adamcore_optimizer_adafix_observe(o, NULL, news, (size_t)oi->count);
            REQUIRE(named(s));
            verify_memory("adamcore_optimizer_adafix_observe", s, allowed, 0);
            verify_unchanged(oi, &before, s, 1);
            break;
        }
        case 12:
            /* Destroy, then use the stale handle once more (it must be refused, not dereferenced). */
            REQUIRE(named(adamcore_optimizer_destroy(o)));
            REQUIRE(adamcore_optimizer_destroy(o) == (o ? ADAMCORE_E_HANDLE : ADAMCORE_OK));
            REQUIRE(o == NULL || adamcore_optimizer_step(o, NULL, 0) == ADAMCORE_E_HANDLE);
            if (o) require_refused(o);
            memset(oi, 0, sizeof *oi);   /* its blocks stay allocated until the end of the input */
            break;
        case 13: {
            void *stray = block(64);
            if (stray) {
                REQUIRE(adamcore_optimizer_step((adamcore_optimizer *)stray, NULL, 0) == ADAMCORE_E_HANDLE);
                require_refused((adamcore_optimizer *)stray);
            }
            REQUIRE(named(adamcore_set_num_threads((int)(next_byte(r) % 5) - 1)));
            /* The sized initialisers, at fuzzed sizes. */
            uint32_t size;
            uint8_t *b = out_struct(r, sizeof(adamcore_config), &size);
            int s = adamcore_config_init_sized((adamcore_config *)b, size, next_byte(r) % 7);
            REQUIRE(named(s));
            check_out_struct(b, size, sizeof(adamcore_config), s);
            if (s == ADAMCORE_OK) REQUIRE(adamcore_config_validate((const adamcore_config *)b) == ADAMCORE_OK);
            b = out_struct(r, sizeof(adamcore_step_options), &size);
            s = adamcore_step_options_init_sized((adamcore_step_options *)b, size);
            REQUIRE(named(s));
            check_out_struct(b, size, sizeof(adamcore_step_options), s);
            break;
        }
        case 14: case 15: {
            /* A step of a subset: a fuzzed list of indices (a valid subset in some order, or raw entries, with a
             * duplicate or an out-of-range entry mixed in, NULL, or a count far past the list) and gradients. */
            uint8_t how = next_byte(r), shape = next_byte(r);
            int nt = oi->count;
            size_t entries[MAX_T + 3], k = 0;
            switch (shape % 4) {
            case 0: case 1: {
                uint8_t mask = next_byte(r);
                for (int t = 0; t < nt; t++)
                    if (mask >> t & 1) entries[k++] = (size_t)t;
                if (shape % 4 == 1 && k > 1) {   /* rotated and reversed */
                    size_t rot = next_byte(r) % k, tmp[MAX_T];
                    for (size_t i = 0; i < k; i++) tmp[i] = entries[(i + rot) % k];
                    for (size_t i = 0; i < k; i++) entries[i] = tmp[k - 1 - i];
                }
                break;
            }
            case 2:
                for (int t = 0; t < nt; t++) entries[k++] = (size_t)t;
                break;
            default:
                k = next_byte(r) % (MAX_T + 3);
                for (size_t i = 0; i < k; i++) entries[i] = fuzz_index(r, nt);
                break;
            }
            if ((shape & 4) && k < MAX_T + 3) {   /* a duplicate */
                entries[k] = k ? entries[next_byte(r) % k] : 0;
                k++;
            }
            if ((shape & 8) && k) entries[next_byte(r) % k] = fuzz_index(r, nt);
            size_t count = k;
            if (shape & 16) {   /* a count past the list: the call must refuse it before reading that far */
                static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, (size_t)1 << 63, (size_t)INT64_MAX, (size_t)1 << 40,
                                              MAX_T + 3};
                count = huge[next_byte(r) % (sizeof huge / sizeof huge[0])];
            }
            size_t *list = shape & 32 ? NULL : block(k * sizeof(size_t));
            if (list) memcpy(list, entries, k * sizeof(size_t));
            unsigned mask = 0;
            int repeated = 0, out_of_range = 0;
            for (size_t i = 0; i < k; i++) {
                if (entries[i] >= (size_t)nt) { out_of_range = 1; continue; }
                repeated |= mask >> entries[i] & 1;
                mask |= 1u << entries[i];
            }
            if (how & 64) fill_grads(r, oi, mask);
            const void **grads = NULL;
            if (!(shape & 64)) {
                grads = block(k * sizeof(void *));
                if (!grads) break;
                for (size_t i = 0; i < k; i++) grads[i] = how & 32 ? pick_grad(r, oi, entries[i]) : 
                    entries[i] < (size_t)nt ? oi->t[entries[i]].list_grad : block(8);
            }
            const adamcore_step_options *options = fuzz_options(r, how);
            scalars before = read_scalars(oi);
            int must_fail = !o || count > (size_t)nt || (count > 0 && !list) || repeated || out_of_range ||
                            (oi->algorithm == ADAMCORE_ADAFIX && count != (size_t)nt) || before.step == INT64_MAX;
            int entry_fail = 0;   /* a listed tensor's gradient or step count alone makes the call fail */
            if (count == k)
                for (size_t i = 0; i < k; i++) {
                    if (entries[i] >= (size_t)nt) continue;
                    int t = (int)entries[i];
                    entry_fail |= before.tsteps[t] == INT64_MAX || bad_grad(oi, t, grads ? grads[i] : oi->t[t].grad);
                }
            must_fail |= entry_fail;
            snapshot(opts);
            int s = adamcore_optimizer_step_tensors(o, list, (const void *const *)grads, count,
                                                    how & 16 ? NULL : options);
            REQUIRE(named(s));
            if (must_fail && s >= 0) {
                fprintf(stderr, "fuzz_abi: step_tensors returned %s for a call that must fail (count %zu of %d "
                        "tensors, list %s, repeated %d, out of range %d)\n", adamcore_status_name(s), count, nt,
                        list ? "set" : "NULL", repeated, out_of_range);
                abort();
            }
            /* With every listed tensor's gradient and step count good, a bad index can only be refused as one
             * (or earlier, for the options or AdaFix's whole-list rule). */
            REQUIRE(!(o && (repeated || out_of_range) && count == k && list && count <= (size_t)nt && !entry_fail) ||
                    s == ADAMCORE_E_INDEX || s == ADAMCORE_E_ALGORITHM || s == ADAMCORE_E_CONFIG_SIZE ||
                    s == ADAMCORE_E_GRAD_SCALE || s == ADAMCORE_E_STEP);
            verify_memory("adamcore_optimizer_step_tensors", s, allowed,
                          s == ADAMCORE_OK ? allowed_regions(oi, mask, 1, allowed) : 0);
            verify_step_counts(oi, &before, s, mask);
            break;
        }
        case 16: {
            /* A tensor's own step count: negative, 0, INT64_MAX (its next step must then be refused), any. */
            size_t t = fuzz_index(r, oi->count);
            int64_t v = fuzz_step(r);
            scalars before = read_scalars(oi);
            snapshot(opts);
            int s = adamcore_optimizer_set_tensor_step(o, t, v);
            REQUIRE(named(s));
            REQUIRE(!o || !(t >= (size_t)oi->count || v < 0) || s < 0);
            REQUIRE(!o || t >= (size_t)oi->count || v >= 0 || s == ADAMCORE_E_STEP);
            verify_memory("adamcore_optimizer_set_tensor_step", s, allowed, 0);
            if (o) {
                scalars after = read_scalars(oi);
                REQUIRE(after.step == before.step && after.skipped == before.skipped);
                for (int j = 0; j < oi->count; j++)
                    REQUIRE(after.tsteps[j] == (s == ADAMCORE_OK && (size_t)j == t ? v : before.tsteps[j]));
            }
            int64_t got = -7;
            s = adamcore_optimizer_get_tensor_step(o, t, &got);
            REQUIRE(named(s));
            REQUIRE(!o || t >= (size_t)oi->count || (s == ADAMCORE_OK && got >= 0));
            break;
        }
        case 17: {
            /* New parameter memory: a fresh block (exact or larger, at an offset), NULL, misaligned, or another
             * buffer of the optimizer (another tensor's parameter, state or gradient, its own state or gradient,
             * which must be refused; a spare, a list gradient or a slide within its own block, which may not). */
            size_t t = fuzz_index(r, oi->count);
            int valid = t < (size_t)oi->count;
            tensor_rec *rec = valid ? &oi->t[t] : NULL;
            size_t size = valid ? rec->size : 4, need = valid ? rec->n * size : 16;
            uint8_t how = next_byte(r);
            uint8_t *p = NULL, *back = NULL;
            size_t back_bytes = 0;
            switch (how % 12) {
            case 3: break;   /* NULL */
            case 4: {
                uint8_t *b = block(need + 8);
                if (b) p = b + 1 + (how >> 4) % (size - 1);
                break;
            }
            case 5: case 6: p = pick_buffer(r, oi, 0, need, size); break;
            case 7: p = pick_buffer(r, oi, 1, need, size); break;
            case 8: p = pick_buffer(r, oi, 2, need, size); break;
            case 9: p = pick_buffer(r, oi, 3, need, size); break;
            case 10: p = pick_buffer(r, oi, 4, need, size); break;
            case 11:
                back_bytes = need + 4 * size;
                back = block(back_bytes);
                if (back) p = back + (how >> 4) % 5 * size;
                break;
            default: break;
            }
            if (!p && how % 12 != 3) {   /* fresh, exactly sized */
                back_bytes = need;
                p = back = block(need);
                if (!p) break;
            }
            if (p && !back) {   /* which block it lies in (for a later slide): one the harness allocated */
                for (int b = 0; b < block_count && !back; b++)
                    if ((uint8_t *)blocks[b] <= p && p < (uint8_t *)blocks[b] + block_sizes[b]) {
                        back = blocks[b];
                        back_bytes = block_sizes[b];
                    }
                if (!back) { back = p; back_bytes = need; }   /* library-owned state */
            }
            int must_fail = !o || !valid || !p;
            if (valid && p) {
                must_fail |= (uintptr_t)p % size != 0;
                for (int j = 0; j < oi->count; j++) {
                    size_t bytes = oi->t[j].n * oi->t[j].size;
                    if ((size_t)j != t && overlap(p, need, oi->t[j].param, bytes)) must_fail = 1;
                    if (overlap(p, need, oi->t[j].grad, bytes)) must_fail = 1;
                    for (int s = 0; s < oi->t[j].slots; s++)
                        if (overlap(p, need, oi->t[j].state[s], bytes)) must_fail = 1;
                }
            }
            scalars before = read_scalars(oi);
            snapshot(opts);
            int s = adamcore_optimizer_set_tensor_param(o, t, p);
            REQUIRE(named(s));
            if (must_fail && s >= 0) {
                fprintf(stderr, "fuzz_abi: set_tensor_param(%zu, %p) returned %s but must fail\n", t, (void *)p,
                        adamcore_status_name(s));
                abort();
            }
            REQUIRE(!(o && valid && !p) || s == ADAMCORE_E_NULL_POINTER);
            REQUIRE(!(o && valid && p && (uintptr_t)p % size) || s == ADAMCORE_E_MISALIGNED);
            verify_memory("adamcore_optimizer_set_tensor_param", s, allowed, 0);
            verify_unchanged(oi, &before, s, 0);
            if (s == ADAMCORE_OK && rec->param != p) {
                if (oi->spares < MAX_SPARE) {
                    oi->spare[oi->spares] = rec->param;
                    oi->spare_bytes[oi->spares++] = rec->backing_bytes - (size_t)(rec->param - rec->backing);
                }
                rec->param = p;
                rec->backing = back;
                rec->backing_bytes = back_bytes;
            }
            break;
        }
        }
    }
    for (int k = 0; k < MAX_OPT; k++) REQUIRE(adamcore_optimizer_destroy(opts[k].o) == ADAMCORE_OK);
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

/* Seed programs (mode 1), so that mutation starts from optimizers that exist and calls that get past validation.
 * Each line is one call: op, optimizer, then what the op reads (see fuzz_program). */
#define ONES8 0, 0, 0x80, 0x3f, 0, 0, 0, 0xbf
#define ONES32 ONES8, ONES8, ONES8, ONES8
static const uint8_t seed_adam[] = {
    1,
    0, 0, 0, 0,                  /* create: Adam, defaults */
    2, 0, 1, 8, 0, 1, 0,         /* add: float32 x8 with a registered gradient, library state */
    2, 0, 2, 5, 0, 0, 0,         /* add: float64 x5 */
    2, 0, 1, 8, 2, 8, 0,         /* add: float32 x8, the caller's two state buffers */
    14, 0, 64, 0, 5, ONES32, ONES32, /* step_tensors {0, 2} with gradient values */
    14, 0, 0, 1, 7, 1,           /* step_tensors {0, 1, 2} rotated and reversed */
    16, 0, 15, 4,                /* set_tensor_step(1, 10) */
    17, 0, 5, 0,                 /* set_tensor_param(0, fresh) */
    17, 0, 5, 5, 1, 0,           /* set_tensor_param(0, tensor 1's param): overlap */
    17, 0, 5, 4,                 /* misaligned */
    17, 0, 5, 3,                 /* NULL */
    17, 0, 5, 35,                /* a larger fresh block, 2 elements in */
    17, 0, 5, 5, 0, 4,           /* slide within it, over its own old place */
    4, 0, 64,                    /* step all */
    14, 0, 32, 2, 10, 1, 0, 0, 0, /* step_tensors {0, 1, 2}, tensor 0's gradient = tensor 1's param: overlap */
    14, 0, 0, 4, 3, 0,           /* {0, 1, 0}: duplicate */
    14, 0, 0, 16, 3, 0,          /* count SIZE_MAX */
    14, 0, 0, 32, 3,             /* NULL list, count 2 */
    14, 0, 0, 0, 0,              /* the empty list */
    10, 0, 0, 0, 5, 1,           /* getters, get_tensor_step(0) */
    12, 0,                       /* destroy */
};
static const uint8_t seed_adafix[] = {
    1,
    0, 0, 1, 0,                  /* create: AdaFix */
    2, 0, 1, 8, 0, 1, 0,
    2, 0, 2, 4, 0, 1, 0,
    14, 0, 64, 2, ONES32, ONES32, /* step_tensors {0, 1}: all of them */
    11, 0, 0,                    /* observe */
    14, 0, 0, 0, 1,              /* {0}: AdaFix must list all */
    14, 0, 0, 2,
    12, 0,
};
static const uint8_t seed_sgd[] = {
    1,
    0, 0, 2, 16, 2,              /* create: SGD, momentum 0.9 */
    2, 0, 1, 8, 0, 1, 0,
    2, 0, 1, 8, 0, 1, 0,
    14, 0, 0, 0, 3,              /* {0, 1} */
    14, 0, 0, 0, 2,              /* {1} */
    16, 0, 5, 0,                 /* set_tensor_step(0, 0): restart */
    14, 0, 0, 0, 1,              /* {0}: the first-step rule again */
    16, 0, 5, 7,                 /* set_tensor_step(0, INT64_MAX) */
    14, 0, 0, 0, 3,              /* {0, 1}: tensor 0's count would overflow */
    7, 0, 8,                     /* set_step(INT64_MAX - 1) */
    14, 0, 0, 0, 2,
    14, 0, 0, 0, 2,              /* the optimizer's count would overflow */
};

static void write_seed(const char *dir, const char *name, const uint8_t *bytes, size_t size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(bytes, 1, size, f);
        fclose(f);
    }
}

/* With ADAMCORE_FUZZ_SEEDS=dir: write the seed programs, and a valid checkpoint (mode byte 2 in front) as a seed,
 * so mutation starts from inputs that pass the parser's early checks. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("ADAMCORE_FUZZ_SEEDS");
    if (!dir) return 0;
    write_seed(dir, "program-seed-adam", seed_adam, sizeof seed_adam);
    write_seed(dir, "program-seed-adafix", seed_adafix, sizeof seed_adafix);
    write_seed(dir, "program-seed-sgd", seed_sgd, sizeof seed_sgd);
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
