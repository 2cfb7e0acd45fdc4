/*
 * adamcore.h: the C interface of adamcore, in-place SIMD optimizer steps over caller-owned buffers.
 *
 * This header is the contract. Every type the library uses is defined here once; the Swift core sees the same
 * definitions through a module map. Every function returns an int status: ADAMCORE_OK (0) or a negative
 * ADAMCORE_E_* code (the optimizer step calls may also return ADAMCORE_STEP_SKIPPED, 1, which is not an error).
 * On any error no caller buffer and no optimizer state has been modified, nothing has been printed, and the process
 * has not been aborted.
 *
 * Conventions
 *   - Counts are element counts (not bytes). Buffers of float must be 4-byte aligned, of double 8-byte aligned.
 *   - Buffers of one call must not overlap each other (ADAMCORE_E_OVERLAP). An optimizer step's gradient must
 *     not overlap any registered tensor's parameter or state, its own or another's.
 *   - `step` is the 1-based number of the update being made (torch's state['step'] after its increment).
 *   - Defaults and update rules follow torch.optim (README.md gives them in full).
 *
 * Thread safety
 *   - Version, status and config functions, and the stateless step functions, are thread-safe and reentrant;
 *     concurrent stateless calls must not share a buffer that either of them writes.
 *   - An adamcore_optimizer is not thread-safe: calls on one optimizer must not overlap in time. Distinct
 *     optimizers may be used from different threads at once.
 */
#ifndef ADAMCORE_H
#define ADAMCORE_H

#include <stddef.h>
#include <stdint.h>

/* ADAMCORE_API marks every function of the interface: exported by the shared library and, on Windows, imported by
 * its callers (define ADAMCORE_STATIC when linking a static build there). */
#if defined(_WIN32) && !defined(ADAMCORE_STATIC)
#if defined(ADAMCORE_BUILDING)
#define ADAMCORE_API __declspec(dllexport)
#else
#define ADAMCORE_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define ADAMCORE_API __attribute__((visibility("default")))
#else
#define ADAMCORE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------------------------- */

#define ADAMCORE_VERSION_MAJOR 0
#define ADAMCORE_VERSION_MINOR 2
#define ADAMCORE_VERSION_PATCH 0
/** MAJOR * 10000 + MINOR * 100 + PATCH, comparable with adamcore_version_number(). */
#define ADAMCORE_VERSION_NUMBER (ADAMCORE_VERSION_MAJOR * 10000 + ADAMCORE_VERSION_MINOR * 100 + ADAMCORE_VERSION_PATCH)
#define ADAMCORE_VERSION_STRING "0.2.0"

/** The version of the library loaded at run time, as ADAMCORE_VERSION_NUMBER. */
ADAMCORE_API uint32_t adamcore_version_number(void);
/** The version of the library loaded at run time, as "MAJOR.MINOR.PATCH". Static storage; never NULL. */
ADAMCORE_API const char *adamcore_version_string(void);

/* ---------------------------------------------------------------------------------------------------------------
 * Status codes
 * ------------------------------------------------------------------------------------------------------------- */

/* Every status, once: XX(name without the ADAMCORE_ prefix, value, message). It generates the enum below and the
 * library's adamcore_status_name and adamcore_strerror (as libuv's UV_ERRNO_MAP does); a test checks that
 * docs/ERRORS.md describes each one. New statuses are appended; values are never reused. */
#define ADAMCORE_STATUS_MAP(XX) \
    XX(OK, 0, "success") \
    XX(STEP_SKIPPED, 1, "the step was skipped (found_inf, or the guard found NaN or Inf in a gradient)") \
    XX(E_NULL_POINTER, -1, "a required pointer is NULL") \
    XX(E_LENGTH, -2, "buffers of different lengths, or an element count too large for the address space") \
    XX(E_OVERLAP, -3, "two buffers of the call overlap") \
    XX(E_MISALIGNED, -4, "a buffer is not aligned to its element size") \
    XX(E_STEP, -5, "step must be >= 1 and the step count must not overflow") \
    XX(E_STRUCT_SIZE, -6, "a struct_size below the struct's first release's, above 4096, or larger with nonzero unknown bytes") \
    XX(E_ALGORITHM, -7, "unknown algorithm, or a call made for another algorithm") \
    XX(E_FLAGS, -8, "unknown flag, or a flag the algorithm does not take") \
    XX(E_LR, -9, "lr must be finite and >= 0") \
    XX(E_BETA1, -10, "beta1 must be finite and in [0, 1) (0 for algorithms without it)") \
    XX(E_BETA2, -11, "beta2 must be finite and in [0, 1) (0 for algorithms without it)") \
    XX(E_EPS, -12, "eps must be finite and >= 0 (0 for SGD)") \
    XX(E_EPS_ROOT, -13, "eps_root must be finite and >= 0 (0 for algorithms without it)") \
    XX(E_WEIGHT_DECAY, -14, "weight_decay must be finite and >= 0") \
    XX(E_MOMENTUM, -15, "momentum must be finite and in [0, 1] (0 for algorithms without it)") \
    XX(E_DAMPENING, -16, "dampening must be in [0, 1] for SGD, 0 with Nesterov and for other algorithms") \
    XX(E_NESTEROV, -17, "Nesterov momentum requires momentum > 0") \
    XX(E_ALPHA, -18, "alpha must be finite and in [0, 1] for RMSprop (0 for other algorithms)") \
    XX(E_LR_DECAY, -19, "lr_decay must be finite and >= 0 for AdaGrad (0 for other algorithms)") \
    XX(E_INITIAL_ACCUMULATOR, -20, "initial_accumulator_value must be finite and >= 0 for AdaGrad (0 for other algorithms)") \
    XX(E_RESERVED, -21, "a reserved field is not 0") \
    XX(E_STATE, -22, "state buffers do not match the algorithm's options (missing, extra or changed)") \
    XX(E_DTYPE, -23, "unknown dtype, or buffers of different dtypes") \
    XX(E_HANDLE, -24, "the optimizer handle is NULL, already destroyed, or not an optimizer handle") \
    XX(E_INDEX, -25, "a group, tensor or state slot index is out of range") \
    XX(E_COUNT, -26, "a list does not have one entry per registered tensor") \
    XX(E_NO_MEMORY, -27, "out of memory") \
    XX(E_SEQUENCE, -28, "the call is not valid in the optimizer's current state") \
    XX(E_NONFINITE, -29, "a value that must be finite is NaN or infinite") \
    XX(E_LIPSCHITZ, -30, "the AdaFix Lipschitz estimate must be finite and >= 0") \
    XX(E_THREADS, -31, "a thread count must be 0 (automatic) or 1..256") \
    XX(E_GRAD_SCALE, -32, "grad_scale must be finite and > 0") \
    XX(E_IO, -33, "a checkpoint file could not be read, written or renamed") \
    XX(E_FORMAT, -34, "the bytes are not an adamcore checkpoint in the safetensors format") \
    XX(E_MISMATCH, -35, "the checkpoint does not match the optimizer (algorithm, groups, tensors, dtypes or shapes)") \
    XX(E_ISA, -36, "the instruction set is unknown, or this CPU or this build cannot run it")

typedef enum adamcore_status {
#define ADAMCORE_STATUS_ENUMERATOR_(name, value, message) ADAMCORE_##name = value,
    ADAMCORE_STATUS_MAP(ADAMCORE_STATUS_ENUMERATOR_)
#undef ADAMCORE_STATUS_ENUMERATOR_
    ADAMCORE_STATUS_MAP_END_ = 0 /* not a status: ends the list without a trailing comma (C89, C++98) */
} adamcore_status;

/** 0.1.0's name for ADAMCORE_E_STRUCT_SIZE, kept so that its callers compile. */
#define ADAMCORE_E_CONFIG_SIZE ADAMCORE_E_STRUCT_SIZE

/** The enumerator's name, e.g. "ADAMCORE_E_BETA1"; "ADAMCORE_E_UNKNOWN" for a value not listed. Never NULL. */
ADAMCORE_API const char *adamcore_status_name(int status);
/** A one-line English description, e.g. "beta1 must be finite and in [0, 1)". Never NULL. */
ADAMCORE_API const char *adamcore_strerror(int status);

/* ---------------------------------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum adamcore_algorithm {
    ADAMCORE_ADAM = 1,    /* Adam; AdamW with ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY; AMSGrad with ADAMCORE_FLAG_AMSGRAD */
    ADAMCORE_ADAFIX = 2,  /* AdaFix (Bae, Ryu, Shin): Adam whose second moment freezes once max|g| < L*lr */
    ADAMCORE_SGD = 3,     /* SGD with optional momentum, dampening and Nesterov */
    ADAMCORE_RMSPROP = 4, /* RMSprop with optional momentum and centering */
    ADAMCORE_ADAGRAD = 5  /* AdaGrad with learning-rate decay */
} adamcore_algorithm;

typedef enum adamcore_flag {
    ADAMCORE_FLAG_MAXIMIZE = 1u << 0,                /* all: ascend instead of descend (the gradient is negated) */
    ADAMCORE_FLAG_AMSGRAD = 1u << 1,                 /* Adam: keep the running maximum of v (third state buffer) */
    ADAMCORE_FLAG_AMSGRAD_OPTAX_ORDER = 1u << 2,     /* Adam+AMSGRAD: max over bias-corrected v (optax) instead of raw v (torch) */
    ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY = 1u << 3,  /* Adam, AdaFix: p *= 1 - lr*weight_decay first (AdamW) instead of L2 */
    ADAMCORE_FLAG_NO_BIAS_CORRECTION = 1u << 4,      /* Adam, AdaFix: use m and v without bias correction */
    ADAMCORE_FLAG_NESTEROV = 1u << 5,                /* SGD: Nesterov momentum */
    ADAMCORE_FLAG_CENTERED = 1u << 6,                /* RMSprop: normalise by the estimated variance */
    ADAMCORE_FLAG_ADAFIX_NEXT_GRADIENT = 1u << 7     /* AdaFix optimizer: estimate L from the next step's gradient */
} adamcore_flag;

/*
 * Structs that cross the boundary (adamcore_config, adamcore_step_options, adamcore_step_stats) begin with
 * struct_size, which the caller sets to its sizeof: the library reads and writes nothing past it. A struct from an
 * older header is smaller and its missing fields take the values that release meant; one from a newer header is
 * larger and is accepted when every byte this library does not know is zero. So a binary built against any release's
 * header keeps working with later libraries. ADAMCORE_CONFIG_INIT and ADAMCORE_STEP_OPTIONS_INIT pass the size.
 *
 * Hyperparameters of one algorithm. Initialise with ADAMCORE_CONFIG_INIT(&config, algorithm), which sets
 * struct_size and torch's defaults, then change fields. Fields the algorithm does not use must stay 0: a value there is rejected with the
 * field's status rather than silently ignored.
 *
 *   field                      used by                      default
 *   lr                         all                          1e-3 (Adam, AdaFix, SGD), 1e-2 (RMSprop, AdaGrad)
 *   beta1, beta2               Adam, AdaFix                 0.9, 0.999
 *   eps                        Adam, AdaFix, RMSprop, AdaGrad  1e-8 (AdaGrad 1e-10)
 *   eps_root                   Adam, AdaFix                 0 (eps inside the square root, as optax)
 *   weight_decay               all                          0
 *   momentum                   SGD, RMSprop                 0
 *   dampening                  SGD                          0
 *   alpha                      RMSprop                      0.99
 *   lr_decay                   AdaGrad                      0
 *   initial_accumulator_value  AdaGrad                      0 (fills library-allocated state)
 */
typedef struct adamcore_config {
    uint32_t struct_size; /* sizeof(adamcore_config); guards against a header/library mismatch */
    int32_t algorithm;    /* an adamcore_algorithm */
    uint32_t flags;       /* adamcore_flag bits */
    uint32_t reserved;    /* must be 0 */
    double lr;
    double beta1;
    double beta2;
    double eps;
    double eps_root;
    double weight_decay;
    double momentum;
    double dampening;
    double alpha;
    double lr_decay;
    double initial_accumulator_value;
} adamcore_config;

/** Fill the `size` bytes of *config (its sizeof: ADAMCORE_CONFIG_INIT passes it) with torch's defaults for the
 *  algorithm; struct_size = size, bytes past this library's layout zero. ADAMCORE_E_ALGORITHM for an unknown one. */
ADAMCORE_API int adamcore_config_init_sized(adamcore_config *config, size_t size, int algorithm);
#define ADAMCORE_CONFIG_INIT(config, algorithm) adamcore_config_init_sized((config), sizeof *(config), (algorithm))
/** The same for the first release's layout (104 bytes), which is all a caller of this size-less form is known to
 *  have: 0.1.0's callers. Newer code uses ADAMCORE_CONFIG_INIT. */
ADAMCORE_API int adamcore_config_init(adamcore_config *config, int algorithm);
/** Check every field of *config; ADAMCORE_OK if a step with it would be accepted. */
ADAMCORE_API int adamcore_config_validate(const adamcore_config *config);
/** Number of state buffers per tensor for this config (e.g. 2 for Adam, 3 for AMSGrad, 0 for plain SGD). */
ADAMCORE_API int adamcore_config_state_count(const adamcore_config *config, size_t *count);
/** torch's name of state slot `slot` ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg",
 *  "grad_avg", "sum", "prev_grad"); static storage. */
ADAMCORE_API int adamcore_config_state_name(const adamcore_config *config, size_t slot, const char **name);

/* ---------------------------------------------------------------------------------------------------------------
 * Stateless steps: one in-place update of one buffer set.
 * param and the state buffers are read and written; grad is only read. All have `count` elements.
 * ------------------------------------------------------------------------------------------------------------- */

/** Adam / AdamW / AMSGrad. max_exp_avg_sq is required with ADAMCORE_FLAG_AMSGRAD and must be NULL without it. */
ADAMCORE_API int adamcore_adam_step_f32(const adamcore_config *config, int64_t step, size_t count, float *param,
                           const float *grad, float *exp_avg, float *exp_avg_sq, float *max_exp_avg_sq);
ADAMCORE_API int adamcore_adam_step_f64(const adamcore_config *config, int64_t step, size_t count, double *param,
                           const double *grad, double *exp_avg, double *exp_avg_sq, double *max_exp_avg_sq);

/* What an AdaFix step decided and measured. */
typedef struct adamcore_adafix_result {
    double max_abs_grad;   /* max |g| over the buffer (the gate's left side) */
    double step_norm_sq;   /* ||x_{t+1} - x_t||^2, as the parameters actually moved */
    int32_t v_updated;     /* 1 if v was updated (max|g| >= L*lr), 0 if it was held fixed */
    int32_t reserved;
} adamcore_adafix_result;

/** AdaFix on one buffer set that is the whole model: v is updated only if max|grad| >= lipschitz*lr.
 *  `lipschitz` is the current estimate L (0 before any); result may be NULL. */
ADAMCORE_API int adamcore_adafix_step_f32(const adamcore_config *config, int64_t step, size_t count, float *param,
                             const float *grad, float *exp_avg, float *exp_avg_sq, double lipschitz,
                             adamcore_adafix_result *result);
ADAMCORE_API int adamcore_adafix_step_f64(const adamcore_config *config, int64_t step, size_t count, double *param,
                             const double *grad, double *exp_avg, double *exp_avg_sq, double lipschitz,
                             adamcore_adafix_result *result);
/** The AdaFix estimate update: *lipschitz = max(*lipschitz, ||new_grad - grad|| / sqrt(step_norm_sq)), where
 *  new_grad is the same minibatch's gradient at the new point. Unchanged when step_norm_sq is 0.
 *  ADAMCORE_E_NONFINITE (and *lipschitz unchanged) if the ratio is not finite. */
ADAMCORE_API int adamcore_adafix_lipschitz_f32(size_t count, const float *grad, const float *new_grad, double step_norm_sq,
                                  double *lipschitz);
ADAMCORE_API int adamcore_adafix_lipschitz_f64(size_t count, const double *grad, const double *new_grad, double step_norm_sq,
                                  double *lipschitz);

/** SGD. momentum_buffer is required when momentum > 0 and must be NULL otherwise; at step 1 it is overwritten
 *  with the gradient (torch's first-step rule), so its prior contents do not matter then. */
ADAMCORE_API int adamcore_sgd_step_f32(const adamcore_config *config, int64_t step, size_t count, float *param,
                          const float *grad, float *momentum_buffer);
ADAMCORE_API int adamcore_sgd_step_f64(const adamcore_config *config, int64_t step, size_t count, double *param,
                          const double *grad, double *momentum_buffer);

/** RMSprop. grad_avg is required exactly with ADAMCORE_FLAG_CENTERED, momentum_buffer exactly when momentum > 0. */
ADAMCORE_API int adamcore_rmsprop_step_f32(const adamcore_config *config, int64_t step, size_t count, float *param,
                              const float *grad, float *square_avg, float *grad_avg, float *momentum_buffer);
ADAMCORE_API int adamcore_rmsprop_step_f64(const adamcore_config *config, int64_t step, size_t count, double *param,
                              const double *grad, double *square_avg, double *grad_avg, double *momentum_buffer);

/** AdaGrad. state_sum starts at initial_accumulator_value (the caller fills it). */
ADAMCORE_API int adamcore_adagrad_step_f32(const adamcore_config *config, int64_t step, size_t count, float *param,
                              const float *grad, float *state_sum);
ADAMCORE_API int adamcore_adagrad_step_f64(const adamcore_config *config, int64_t step, size_t count, double *param,
                              const double *grad, double *state_sum);

/* ---------------------------------------------------------------------------------------------------------------
 * Optimizer objects: hyperparameter groups, a step count, global scalars (AdaFix's L) and registered tensors,
 * all stepped by one call.
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum adamcore_dtype {
    ADAMCORE_FLOAT32 = 1,
    ADAMCORE_FLOAT64 = 2,
    ADAMCORE_FLOAT16 = 3,   /* IEEE binary16: tensors registered by adamcore_optimizer_add_tensor_desc */
    ADAMCORE_BFLOAT16 = 4   /* bfloat16 (float32's upper 16 bits): the same */
} adamcore_dtype;

typedef struct adamcore_optimizer adamcore_optimizer;

/** Create an optimizer whose group 0 has *config. Free it with adamcore_optimizer_destroy. */
ADAMCORE_API int adamcore_optimizer_create(const adamcore_config *config, adamcore_optimizer **out);
/** Free the optimizer and the state it allocated. NULL is accepted and does nothing. Every call checks its handle
 *  against the live ones first: a destroyed handle used again, a second destroy, or a pointer that is not a handle
 *  returns ADAMCORE_E_HANDLE and touches nothing. */
ADAMCORE_API int adamcore_optimizer_destroy(adamcore_optimizer *optimizer);

/** Add a hyperparameter group (torch's param_groups) with the optimizer's algorithm; its index in *group. */
ADAMCORE_API int adamcore_optimizer_add_group(adamcore_optimizer *optimizer, const adamcore_config *config, size_t *group);
/** Number of groups. */
ADAMCORE_API int adamcore_optimizer_group_count(adamcore_optimizer *optimizer, size_t *count);
/** Copy group `group`'s config into *config (whose struct_size the caller sets, e.g. by adamcore_config_init). */
ADAMCORE_API int adamcore_optimizer_get_config(adamcore_optimizer *optimizer, size_t group, adamcore_config *config);
/** Replace group `group`'s hyperparameters between steps (schedulers). The algorithm and the state layout
 *  (AMSGrad, momentum > 0, centered) must stay as they were: ADAMCORE_E_STATE otherwise. */
ADAMCORE_API int adamcore_optimizer_set_config(adamcore_optimizer *optimizer, size_t group, const adamcore_config *config);

/**
 * Register a parameter tensor of `count` elements in group `group`, every buffer of `dtype` (FLOAT32 or FLOAT64;
 * 16-bit and mixed layouts: adamcore_optimizer_add_tensor_desc).
 *   grad: the gradient buffer used when adamcore_optimizer_step gets no list; may be NULL.
 *   state: NULL to let the library allocate zeroed state (AdaGrad's filled with initial_accumulator_value),
 *          or an array of state_count caller-owned buffers (adamcore_config_state_count) of `count` elements each,
 *          which must outlive the optimizer or the tensor's use.
 * The tensor's index (0, 1, ... in order of registration) goes to *index, which may be NULL.
 * No buffer may overlap another buffer of the optimizer. The caller keeps param (and grad, state) alive and
 * unmoved while the optimizer can step them.
 */
ADAMCORE_API int adamcore_optimizer_add_tensor(adamcore_optimizer *optimizer, size_t group, int dtype, void *param,
                                  const void *grad, size_t count, void *const *state, size_t state_count,
                                  size_t *index);
/* Mixed precision: a tensor whose buffers have their own storage types. Any layout with a 16-bit buffer computes
 * in float32: every 16-bit value is widened exactly, and every 16-bit write rounds to nearest even (or, with the
 * stochastic flags, stochastically: bfloat16 only). The combinations (anything else is ADAMCORE_E_DTYPE):
 *   param_dtype   grad_dtype                      state_dtype
 *   FLOAT64       FLOAT64                         FLOAT64
 *   FLOAT32       FLOAT32, BFLOAT16, FLOAT16       FLOAT32, BFLOAT16
 *   BFLOAT16      BFLOAT16, FLOAT32                FLOAT32 (the default), BFLOAT16 (torch's layout)
 *   FLOAT16       FLOAT16, FLOAT32                 FLOAT32 (the default), BFLOAT16, FLOAT16 (torch's layout)
 * 16-bit buffers are aligned to 2 bytes. */
typedef enum adamcore_tensor_flags {
    /* A 16-bit parameter with float32 master weights: the step updates the master and writes the parameter as its
     * rounded copy, so updates below the 16-bit ulp accumulate. `master` NULL: the library makes the master from
     * the parameter's values at registration (and checkpoints it). */
    ADAMCORE_TENSOR_MASTER_WEIGHTS = 1u << 0,
    /* Stochastic rounding of the bfloat16 parameter (or bfloat16 copy) writes, and of bfloat16 state writes. The
     * random bits come from a counter-based generator of (rounding seed, the tensor's step, tensor index, element
     * index): the same bits for any thread count and ISA, reproducible from the seed. */
    ADAMCORE_TENSOR_STOCHASTIC_PARAM = 1u << 1,
    ADAMCORE_TENSOR_STOCHASTIC_STATE = 1u << 2
} adamcore_tensor_flags;

/* One tensor to register. Initialise with ADAMCORE_TENSOR_DESC_INIT, then set fields. */
typedef struct adamcore_tensor_desc {
    uint32_t struct_size;  /* sizeof(adamcore_tensor_desc) */
    int32_t param_dtype;   /* an adamcore_dtype */
    int32_t grad_dtype;    /* 0: param_dtype */
    int32_t state_dtype;   /* 0: FLOAT32 for a 16-bit parameter, else param_dtype */
    uint32_t flags;        /* adamcore_tensor_flags */
    int32_t copy_dtype;    /* the offload form: a FLOAT32 parameter (the master) whose rounded copy of this 16-bit
                              dtype every step writes to `copy`. 0: no copy */
    size_t count;          /* elements */
    void *param;
    const void *grad;      /* the gradient used when a step gets no list; may be NULL */
    void *const *state;    /* NULL: library-allocated state of state_dtype; else state_count caller buffers of it */
    size_t state_count;
    float *master;         /* with ADAMCORE_TENSOR_MASTER_WEIGHTS: the caller's float32 master, or NULL (the library's) */
    void *copy;            /* with copy_dtype: the buffer of `count` 16-bit values the step writes */
} adamcore_tensor_desc;

/** Zero *desc, then struct_size = size (ADAMCORE_TENSOR_DESC_INIT passes sizeof). */
ADAMCORE_API int adamcore_tensor_desc_init_sized(adamcore_tensor_desc *desc, size_t size);
#define ADAMCORE_TENSOR_DESC_INIT(desc) adamcore_tensor_desc_init_sized((desc), sizeof *(desc))
/** Register the tensor *desc describes in group `group` (as adamcore_optimizer_add_tensor, with the storage types,
 *  master weights and copy-out above); its index in *index (may be NULL). On any error nothing is registered. */
ADAMCORE_API int adamcore_optimizer_add_tensor_desc(adamcore_optimizer *optimizer, size_t group,
                                                    const adamcore_tensor_desc *desc, size_t *index);
/** Describe registered tensor `tensor` into *desc (its struct_size set by the caller): the dtypes and flags as
 *  resolved (no zeros for defaults), count, param, grad, master (the library's or the caller's), copy; state NULL
 *  (use adamcore_optimizer_state_buffer) and state_count the slot count. */
ADAMCORE_API int adamcore_optimizer_get_tensor_desc(adamcore_optimizer *optimizer, size_t tensor, adamcore_tensor_desc *desc);
/** One stateless step of the tensor *desc describes, of any layout above: Adam/AdamW/AMSGrad, SGD, RMSprop, AdaGrad
 *  (AdaFix: the optimizer object). Every buffer is the caller's: desc->state holds the config's state_count slots
 *  in state_dtype, and master weights (with the flag) are desc->master. rounding_seed keys stochastic rounding
 *  with `step`. On any error nothing is written. */
ADAMCORE_API int adamcore_step_desc(const adamcore_config *config, int64_t step, const adamcore_tensor_desc *desc,
                                    uint64_t rounding_seed);
/** The stochastic-rounding seed (0 until set); checkpoints keep it. */
ADAMCORE_API int adamcore_optimizer_set_rounding_seed(adamcore_optimizer *optimizer, uint64_t seed);
ADAMCORE_API int adamcore_optimizer_get_rounding_seed(adamcore_optimizer *optimizer, uint64_t *seed);

/** Number of registered tensors. */
ADAMCORE_API int adamcore_optimizer_tensor_count(adamcore_optimizer *optimizer, size_t *count);
/** Element count and dtype of a tensor (either out pointer may be NULL). */
ADAMCORE_API int adamcore_optimizer_tensor_info(adamcore_optimizer *optimizer, size_t tensor, size_t *count, int *dtype);
/** The state buffer in slot `slot` of tensor `tensor` (owned by the library or the caller), e.g. to checkpoint it. */
ADAMCORE_API int adamcore_optimizer_state_buffer(adamcore_optimizer *optimizer, size_t tensor, size_t slot, void **buffer);

/**
 * One step of every registered tensor. grads: NULL to use the registered gradient buffers, or an array of
 * `count` gradient pointers, one per tensor in registration order (count must equal the tensor count).
 * For AdaFix the gate is one decision over all tensors.
 */
ADAMCORE_API int adamcore_optimizer_step(adamcore_optimizer *optimizer, const void *const *grads, size_t count);

/* Per-call options of adamcore_optimizer_step_with_options. Initialise with adamcore_step_options_init. */
typedef struct adamcore_step_options {
    uint32_t struct_size; /* sizeof(adamcore_step_options) */
    uint32_t found_inf;   /* nonzero: skip this step (AMP found an inf or NaN while unscaling): ADAMCORE_STEP_SKIPPED */
    double grad_scale;    /* the gradients are the true ones times this (AMP's loss scale); 1 = none. Finite, > 0.
                             Divided out exactly for powers of two (as AMP's scalers use); not for AdaFix. */
} adamcore_step_options;

/** Set struct_size = size (its sizeof: ADAMCORE_STEP_OPTIONS_INIT passes it), found_inf = 0, grad_scale = 1. */
ADAMCORE_API int adamcore_step_options_init_sized(adamcore_step_options *options, size_t size);
#define ADAMCORE_STEP_OPTIONS_INIT(options) adamcore_step_options_init_sized((options), sizeof *(options))
/** The same for the first release's layout (16 bytes). */
ADAMCORE_API int adamcore_step_options_init(adamcore_step_options *options);
/** adamcore_optimizer_step with options (NULL: the defaults). ADAMCORE_STEP_SKIPPED if found_inf is set or the
 *  guard found a non-finite gradient value; then nothing was written and the step count is unchanged. */
ADAMCORE_API int adamcore_optimizer_step_with_options(adamcore_optimizer *optimizer, const void *const *grads, size_t count,
                                         const adamcore_step_options *options);

/**
 * One step of some of the registered tensors: `tensors` lists `count` tensor indices (each at most once, any
 * order) and `grads` their gradients in the same order (NULL: their registered gradients). The tensors not listed
 * are not read or written and keep their step counts: torch.optim's treatment of a parameter whose grad is None.
 * Each listed tensor's bias correction and first-step rules use its own step count (get/set_tensor_step), which
 * the step advances; the optimizer's step count (get_step) counts applied step calls. options as in
 * adamcore_optimizer_step_with_options (NULL: the defaults). count 0 is a valid step of nothing.
 * AdaFix's gate and Lipschitz estimate are global, so an AdaFix optimizer must list all of its tensors
 * (ADAMCORE_E_ALGORITHM otherwise). A listed index out of range or listed twice is ADAMCORE_E_INDEX.
 */
ADAMCORE_API int adamcore_optimizer_step_tensors(adamcore_optimizer *optimizer, const size_t *tensors, const void *const *grads,
                                    size_t count, const adamcore_step_options *options);
/** A tensor's own step count: the steps it took part in (0 for a tensor added after others have stepped). */
ADAMCORE_API int adamcore_optimizer_get_tensor_step(adamcore_optimizer *optimizer, size_t tensor, int64_t *step);
/** Set a tensor's step count (>= 0); 0 with zeroed state restarts it, as torch.optim does after `del state[p]`. */
ADAMCORE_API int adamcore_optimizer_set_tensor_step(adamcore_optimizer *optimizer, size_t tensor, int64_t step);
/** Point a tensor at new parameter memory of the same dtype and element count (torch's `p.data = ...`). It must
 *  be aligned and overlap no other buffer of the optimizer; state and step count are kept. */
ADAMCORE_API int adamcore_optimizer_set_tensor_param(adamcore_optimizer *optimizer, size_t tensor, void *param);

/**
 * The non-finite guard (off by default). When on, every step first counts NaN and +-Inf values in all of its
 * gradients (one extra read of them) and, if there is any, skips the whole step for every tensor: nothing is
 * written, the step count stays, and the call returns ADAMCORE_STEP_SKIPPED.
 * With the guard off a non-finite gradient value is used as given: NaN or Inf reaches that element's parameter and
 * state (and, for AdaFix, the step norm and hence L), while every other element updates normally.
 */
ADAMCORE_API int adamcore_optimizer_set_nonfinite_guard(adamcore_optimizer *optimizer, int enabled);
ADAMCORE_API int adamcore_optimizer_get_nonfinite_guard(adamcore_optimizer *optimizer, int *enabled);
/** Steps skipped so far (by found_inf or the guard), and the non-finite values the guard counted in the last
 *  step's gradients (0 when the guard is off). Either pointer may be NULL. */
ADAMCORE_API int adamcore_optimizer_get_skipped_steps(adamcore_optimizer *optimizer, int64_t *skipped,
                                         uint64_t *last_nonfinite_count);

/* One step's figures, for a tensor or the whole optimizer (Adam, AMSGrad and AdaFix only). Measured inside the
 * update pass when statistics are on; the update itself is bit for bit the same. */
typedef struct adamcore_step_stats {
    uint32_t struct_size;      /* sizeof(adamcore_step_stats), set by the caller */
    int32_t adafix_v_frozen;   /* AdaFix: 1 if this step held v fixed */
    int64_t step;              /* the step described (0: none yet) */
    uint64_t count;            /* elements */
    uint64_t nonfinite_grads;  /* NaN and +-Inf values among the step's gradients */
    double max_step_over_lr;   /* max |m_hat / (sqrt(v_hat) + eps)|: the adaptive step in multiples of lr */
    double step_bound;         /* seed 000 Prop. 1: sqrt(b2)(1-b1)/sqrt((1-b2)(b2-b1^2)) (+inf if b1^2 >= b2); the
                                  optimizer's figure is the largest of its groups' */
    double min_effective_lr;   /* lr / (sqrt(v_hat) + eps) over the elements */
    double max_effective_lr;
    double mean_effective_lr;  /* float32 tensors: from the CPU's reciprocal estimate, within 4e-4 relative */
    double m_norm;             /* ||m|| after the step */
    double v_norm;             /* ||v|| after the step */
    double step_norm;          /* ||p_new - p_old|| */
    double lipschitz;          /* AdaFix: L after the step */
} adamcore_step_stats;

/** Statistics off (0, the default), on every step (1), or on every `every`-th step (steps divisible by it), which
 *  spreads their cost: a measured step takes up to ~2x as long in cache and +10-40% from DRAM
 *  (docs/PERFORMANCE.md). The update writes the same bits either way. ADAMCORE_E_ALGORITHM for SGD, RMSprop and
 *  AdaGrad; ADAMCORE_E_INDEX for a negative value. */
ADAMCORE_API int adamcore_optimizer_set_stats(adamcore_optimizer *optimizer, int every);
/** The whole optimizer's figures of the last measured step (its number is stats->step). */
ADAMCORE_API int adamcore_optimizer_get_stats(adamcore_optimizer *optimizer, adamcore_step_stats *stats);
/** The same for one tensor. */
ADAMCORE_API int adamcore_optimizer_get_tensor_stats(adamcore_optimizer *optimizer, size_t tensor, adamcore_step_stats *stats);

/**
 * AdaFix only, after a step and unless ADAMCORE_FLAG_ADAFIX_NEXT_GRADIENT: supply g' (the same minibatch's
 * gradient at the new parameters) so that L = max(L, ||g' - g|| / ||x_{t+1} - x_t||) over all tensors.
 * grads are the gradients of that step (NULL: the registered ones), new_grads the gradients at the new point;
 * both lists have one entry per tensor. ADAMCORE_E_SEQUENCE if no step awaits it.
 */
ADAMCORE_API int adamcore_optimizer_adafix_observe(adamcore_optimizer *optimizer, const void *const *grads,
                                      const void *const *new_grads, size_t count);

/** The number of steps applied (torch's state['step'] when every tensor took part in each); 0 before the first. */
ADAMCORE_API int adamcore_optimizer_get_step(adamcore_optimizer *optimizer, int64_t *step);
/** Set the step count and every tensor's step count, e.g. when restoring a checkpoint (>= 0). */
ADAMCORE_API int adamcore_optimizer_set_step(adamcore_optimizer *optimizer, int64_t step);
/** AdaFix's Lipschitz estimate L (0 before any estimate). ADAMCORE_E_ALGORITHM for other algorithms. */
ADAMCORE_API int adamcore_optimizer_get_lipschitz(adamcore_optimizer *optimizer, double *lipschitz);
/** Set L, e.g. when restoring a checkpoint (finite and >= 0). */
ADAMCORE_API int adamcore_optimizer_set_lipschitz(adamcore_optimizer *optimizer, double lipschitz);
/** Whether the last AdaFix step updated v (1) or held it fixed (0); 1 before any step. */
ADAMCORE_API int adamcore_optimizer_adafix_v_updated(adamcore_optimizer *optimizer, int *v_updated);
/** AdaFix: ||x_{t+1} - x_t||^2 of the last step while an estimate may still use it (the next observe, or in
 *  ADAFIX_NEXT_GRADIENT mode the next step), else -1. With get/set_step and get/set_lipschitz this is all of an
 *  AdaFix optimizer's scalar state, so a restored optimizer continues bit for bit. */
ADAMCORE_API int adamcore_optimizer_get_adafix_step_norm_sq(adamcore_optimizer *optimizer, double *step_norm_sq);
/** Restore it (finite and >= 0, or -1 for none). Call after adamcore_optimizer_set_step, which clears it. */
ADAMCORE_API int adamcore_optimizer_set_adafix_step_norm_sq(adamcore_optimizer *optimizer, double step_norm_sq);

/* ---------------------------------------------------------------------------------------------------------------
 * Hyperparameter advice (the research seeds' analyses, before the first step)
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum adamcore_advice_severity {
    ADAMCORE_ADVICE_INFO = 0,     /* a figure to reason with */
    ADAMCORE_ADVICE_NOTICE = 1,   /* a known tendency of this setting */
    ADAMCORE_ADVICE_WARNING = 2   /* a setting the analyses say breaks */
} adamcore_advice_severity;

typedef enum adamcore_advice_code {
    ADAMCORE_ADVICE_MAX_STEP = 1,                /* value: Prop. 1's largest step / lr (seed 000) */
    ADAMCORE_ADVICE_FLAT_CROSSING = 2,           /* value: Prop. 2's farthest crossing of a flat / lr (seed 000) */
    ADAMCORE_ADVICE_BETA1_ABOVE_SQRT_BETA2 = 3,  /* value: beta1 / sqrt(beta2) >= 1 (seeds 000, 002) */
    ADAMCORE_ADVICE_SMALL_BETA2 = 4,             /* value: beta2; warning below 0.9, notice below 0.99 (seed 002) */
    ADAMCORE_ADVICE_SPIKE_REGIME = 5,            /* value: b/a >= 10, a = (1-beta2)/lr, b = (1-beta1)/lr (seed 003) */
    ADAMCORE_ADVICE_OSCILLATION_REGIME = 6,      /* value: b/a within 10x of 1 (seed 003's good regime) */
    ADAMCORE_ADVICE_DIVERGENCE_REGIME = 7,       /* value: b/a <= 0.1 (seed 003) */
    ADAMCORE_ADVICE_EPS_UNDERFLOW = 8            /* value: eps; rounds to 0 (warning) or is subnormal (notice) */
} adamcore_advice_code;

typedef struct adamcore_advice {
    int32_t code;              /* an adamcore_advice_code */
    int32_t severity;          /* an adamcore_advice_severity */
    double value;              /* the figure the advice is about */
    const char *message;       /* one sentence with the reason and its source; static storage */
} adamcore_advice;

/** Advice for a valid *config whose state is kept in `dtype` (an adamcore_dtype, FLOAT16 and BFLOAT16 included).
 *  Up to `capacity` entries go to `advice` (which may be NULL when capacity is 0); *count receives how many there
 *  are in all, so a call with capacity 0 sizes the array. Thread-safe. */
ADAMCORE_API int adamcore_advise(const adamcore_config *config, int dtype, adamcore_advice *advice, size_t capacity, size_t *count);

/* ---------------------------------------------------------------------------------------------------------------
 * Checkpoints
 *
 * An optimizer's whole state (every group's hyperparameters, the step and skipped-step counts, every state buffer,
 * AdaFix's L, gate and pending step norm) in the safetensors format: an 8-byte little-endian header length, a JSON
 * header, the raw little-endian buffers. The `safetensors` package and a few lines of numpy read it. Buffers are
 * named "tensor.<index>.<slot>" with torch's slot names (adamcore_config_state_name); scalars are strings in
 * "__metadata__". Parameters are not included: they are the model's.
 *
 * Loading needs an optimizer with the same algorithm, group count, state layout per group, and tensors (count,
 * dtype, element count, group). Every byte is validated before anything changes: on any error the optimizer is
 * untouched. Malformed bytes are ADAMCORE_E_FORMAT; a well-formed checkpoint of another optimizer is
 * ADAMCORE_E_MISMATCH. A saved, loaded and continued run is bit-identical to one that never stopped.
 * ------------------------------------------------------------------------------------------------------------- */

/** Write to `path` through a temporary file in the same directory that is fsynced and renamed over `path`: a crash
 *  at any point leaves the previous file or the new one, never a torn one. ADAMCORE_E_IO if any of that fails. */
ADAMCORE_API int adamcore_optimizer_save(adamcore_optimizer *optimizer, const char *path);
/** Read and restore the checkpoint at `path`. ADAMCORE_E_IO if it cannot be opened or read. */
ADAMCORE_API int adamcore_optimizer_load(adamcore_optimizer *optimizer, const char *path);
/** The byte size adamcore_optimizer_save_to_memory needs now. */
ADAMCORE_API int adamcore_optimizer_checkpoint_size(adamcore_optimizer *optimizer, size_t *size);
/** The checkpoint into `buffer` (capacity bytes; ADAMCORE_E_LENGTH if too small; it must not overlap a registered
 *  buffer); the byte count to *written, which may be NULL. */
ADAMCORE_API int adamcore_optimizer_save_to_memory(adamcore_optimizer *optimizer, void *buffer, size_t capacity, size_t *written);
/** Restore from `size` bytes (which must not overlap a registered buffer). */
ADAMCORE_API int adamcore_optimizer_load_from_memory(adamcore_optimizer *optimizer, const void *bytes, size_t size);

/* ---------------------------------------------------------------------------------------------------------------
 * Threads
 *
 * Large steps are split into fixed items (8192-element chunks of big tensors, runs of small tensors up to that size)
 * that a persistent pool runs in parallel; the split does not depend on the thread count, and reductions (AdaFix)
 * are summed per item in item order, so results are bitwise identical for every thread count. Steps under 32768
 * elements run on the calling thread. A call that finds the pool busy with another thread's step runs alone rather
 * than oversubscribe the CPUs.
 * ------------------------------------------------------------------------------------------------------------- */

/** Use up to `threads` threads (the caller included) per step; 0 restores the default: ADAMCORE_NUM_THREADS from
 *  the environment, else the CPUs this process may run on. Process-wide; thread-safe. */
ADAMCORE_API int adamcore_set_num_threads(int threads);
/** The thread count in force (>= 1). */
ADAMCORE_API int adamcore_get_num_threads(int *threads);

/* ---------------------------------------------------------------------------------------------------------------
 * Instruction sets
 * ------------------------------------------------------------------------------------------------------------- */

typedef enum adamcore_isa {
    ADAMCORE_ISA_BASELINE = 0, /* portable SIMD for the architecture's baseline (SSE2 on x86-64) */
    ADAMCORE_ISA_AVX2_FMA = 1, /* x86-64 with AVX2 and FMA (x86-64-v3): 256-bit vectors, fused multiply-add */
    ADAMCORE_ISA_AVX512 = 2,   /* x86-64 with AVX-512 F/CD/BW/DQ/VL (x86-64-v4): 512-bit vectors, 32 registers */
    ADAMCORE_ISA_DEFAULT = 3   /* adamcore_select_isa only: back to the choice made at first use */
} adamcore_isa;

/** The kernel set in use: the fastest this CPU runs, chosen at first use by cpuid: the widest, except where
 *  512-bit operations are split in two halves (AMD Zen 4), which runs float32/float64 tensors on AVX2 (reported
 *  here) and 16-bit layouts on AVX-512 (the table is in docs/PERFORMANCE.md, "How a step is tuned to the CPU").
 *  ADAMCORE_ISA in the environment (baseline, avx2_fma or avx512) chooses one set instead, capped at what the CPU
 *  runs, and adamcore_select_isa changes it. The AVX2 and AVX-512 sets
 *  give bitwise the same updates; the baseline differs from them by a few float ulps per step (README:
 *  "Instruction sets"). */
ADAMCORE_API int adamcore_active_isa(void);
/** Makes `isa` the kernel set of the stateless steps and of optimizers created afterwards (an optimizer keeps the
 *  set it was created with): that one tier for every layout. ADAMCORE_ISA_DEFAULT restores the choice made at
 *  first use (which may take the 16-bit layouts' kernels from another tier than the one adamcore_active_isa
 *  reports, so selecting that tier is not the same). ADAMCORE_E_ISA, and nothing changed, if `isa` is unknown or
 *  this CPU (or build) cannot run it. Process-wide; thread-safe. For tests and benchmarks that compare the tiers. */
ADAMCORE_API int adamcore_select_isa(int isa);

#ifdef __cplusplus
}
#endif

#endif /* ADAMCORE_H */
