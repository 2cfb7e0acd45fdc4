/*
 * What the shim's source files share. _core.c: the module and its exception; _buffers.c: argument buffers;
 * _config.c: the Config type; _stateless.c: the stateless steps; _optimizer.c: the Optimizer type; _torch.c: the
 * adamcore.torch fast path.
 */
#ifndef ADAMCORE_PY_CORE_H
#define ADAMCORE_PY_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <adamcore.h>

extern PyObject *AdamCoreError;

/* Test builds only (make test compiles a second copy of the module with ADAMCORE_TEST_HOOKS, into
 * build/python-hooks): PyGILState_Check() recorded inside each released region, the deterministic proof that
 * kernels run without the GIL. The production module has neither the global nor the function that reads it. */
#ifdef ADAMCORE_TEST_HOOKS
extern int gil_held_in_last_kernel;
#define RECORD_GIL_STATE() (gil_held_in_last_kernel = PyGILState_Check())
#else
#define RECORD_GIL_STATE() ((void)0)
#endif

#define RELEASE_GIL_AND(call, status_var)                                                                \
    do {                                                                                                 \
        Py_BEGIN_ALLOW_THREADS                                                                           \
        RECORD_GIL_STATE();                                                                              \
        status_var = (call);                                                                             \
        Py_END_ALLOW_THREADS                                                                             \
    } while (0)

/* adamcore.torch's records, per tensor (arrays sized with the Optimizer's other per-tensor arrays). */
typedef struct {
    PyObject **params;        /* the registered torch parameters (strong references); NULL: not bound */
    PyObject **dtypes;        /* each parameter's torch dtype when registered */
    unsigned char *local;     /* 1: a DTensor, whose _local_tensor is stepped */
    PyObject **grads;         /* per step: the gradients being used (strong references while it runs) */
} TorchBinding;

typedef struct {
    PyObject_HEAD
    adamcore_optimizer *handle;
    int algorithm;
    int busy;                 /* a call is inside the library with the GIL released */
    Py_ssize_t tensors, capacity;
    Py_buffer *pinned;        /* state views, held until dealloc */
    Py_ssize_t pinned_count, pinned_capacity;
    size_t *counts;           /* per tensor: element count */
    int *dtypes;              /* per tensor: its parameter's adamcore_dtype */
    int *grad_dtypes;         /* per tensor: its gradients' adamcore_dtype */
    Py_buffer *grad_views;    /* per step: 2 * tensors views (grads, then new grads for AdaFix) */
    const void **grad_pointers;
    Py_buffer *param_views;   /* per tensor: the pinned parameter view (replaced by set_tensor_param) */
    size_t *step_list;        /* per step: the indices of the tensors stepped */
    int64_t *core_steps;      /* per tensor: the core's step count as last known, -1 when unknown */
    TorchBinding torch;       /* adamcore.torch's per-tensor records (_torch.c) */
} OptimizerObject;

/* _core.c */
PyObject *raise_status(int status);

/* _buffers.c */
int dtype_of(const Py_buffer *view);
int fits(const Py_buffer *view, int dtype);
size_t dtype_size(int dtype);
const char *dtype_name(int dtype);
int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what, Py_ssize_t index);
int get_typed_buffer(PyObject *obj, Py_buffer *view, int writable, int dtype, const char *what, Py_ssize_t index);
size_t element_count(const Py_buffer *view);

/* _config.c */
typedef struct {
    PyObject_HEAD
    adamcore_config config;
    size_t state_count;
} ConfigObject;
extern PyTypeObject ConfigType;
const adamcore_config *as_config(PyObject *obj, const char *what);
int config_type_ready(void);

/* _stateless.c: module functions */
PyObject *stateless_step(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *stateless_adafix_step(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *stateless_adafix_lipschitz(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* _optimizer.c */
extern PyTypeObject OptimizerType;
extern PyTypeObject *StatsType;
int optimizer_types_ready(void);
int check_ready(OptimizerObject *self);
PyObject *step_result(int status);
int step_options_of(PyObject *grad_scale, PyObject *found_inf, adamcore_step_options *options);

/* _torch.c: Optimizer methods */
PyObject *Optimizer_torch_bind(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *Optimizer_torch_step(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs);
int torch_binding_grow(TorchBinding *b, Py_ssize_t old_capacity, Py_ssize_t capacity);
void torch_binding_free(TorchBinding *b, Py_ssize_t tensors);

#endif
