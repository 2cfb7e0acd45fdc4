/*
 * adamcore._core: the Optimizer type. It pins every registered buffer (holds its Py_buffer) until it is freed, so
 * the memory cannot move or vanish under the library. Per step it allocates nothing: gradient views and pointers
 * go into arrays sized at registration.
 */
#include "_core.h"

#include <structmember.h>
#include <string.h>

static int ensure_capacity(OptimizerObject *self) {
    if (self->tensors < self->capacity) return 0;
    Py_ssize_t cap = self->capacity ? 2 * self->capacity : 8;
    size_t *counts = PyMem_Realloc(self->counts, (size_t)cap * sizeof *counts);
    if (!counts) return -1;
    self->counts = counts;
    int *dtypes = PyMem_Realloc(self->dtypes, (size_t)cap * sizeof *dtypes);
    if (!dtypes) return -1;
    self->dtypes = dtypes;
    int *grad_dtypes = PyMem_Realloc(self->grad_dtypes, (size_t)cap * sizeof *grad_dtypes);
    if (!grad_dtypes) return -1;
    self->grad_dtypes = grad_dtypes;
    Py_buffer *views = PyMem_Realloc(self->grad_views, 2 * (size_t)cap * sizeof *views);
    if (!views) return -1;
    self->grad_views = views;
    const void **pointers = PyMem_Realloc(self->grad_pointers, 2 * (size_t)cap * sizeof *pointers);
    if (!pointers) return -1;
    self->grad_pointers = pointers;
    Py_buffer *params = PyMem_Realloc(self->param_views, (size_t)cap * sizeof *params);
    if (!params) return -1;
    self->param_views = params;
    size_t *list = PyMem_Realloc(self->step_list, (size_t)cap * sizeof *list);
    if (!list) return -1;
    self->step_list = list;
    int64_t *steps = PyMem_Realloc(self->core_steps, (size_t)cap * sizeof *steps);
    if (!steps) return -1;
    self->core_steps = steps;
    if (torch_binding_grow(&self->torch, self->capacity, cap) != 0) return -1;
    self->capacity = cap;
    return 0;
}

static int pin(OptimizerObject *self, Py_buffer *view) {
    if (self->pinned_count == self->pinned_capacity) {
        Py_ssize_t cap = self->pinned_capacity ? 2 * self->pinned_capacity : 16;
        Py_buffer *p = PyMem_Realloc(self->pinned, (size_t)cap * sizeof *p);
        if (!p) return -1;
        self->pinned = p;
        self->pinned_capacity = cap;
    }
    self->pinned[self->pinned_count++] = *view;
    return 0;
}

static int Optimizer_init(OptimizerObject *self, PyObject *args, PyObject *kwargs) {
    PyObject *config;
    static char *keywords[] = {"config", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Optimizer", keywords, &config)) return -1;
    const adamcore_config *c = as_config(config, "config");
    if (!c) return -1;
    if (self->handle) { PyErr_SetString(PyExc_RuntimeError, "Optimizer is already initialised"); return -1; }
    int status = adamcore_optimizer_create(c, &self->handle);
    if (status != ADAMCORE_OK) { raise_status(status); return -1; }
    self->algorithm = c->algorithm;
    return 0;
}

static void Optimizer_dealloc(OptimizerObject *self) {
    adamcore_optimizer_destroy(self->handle);
    for (Py_ssize_t i = 0; i < self->pinned_count; i++) PyBuffer_Release(&self->pinned[i]);
    for (Py_ssize_t i = 0; i < self->tensors; i++) PyBuffer_Release(&self->param_views[i]);
    PyMem_Free(self->pinned);
    PyMem_Free(self->param_views);
    PyMem_Free(self->step_list);
    PyMem_Free(self->core_steps);
    torch_binding_free(&self->torch, self->tensors);
    PyMem_Free(self->counts);
    PyMem_Free(self->dtypes);
    PyMem_Free(self->grad_dtypes);
    PyMem_Free(self->grad_views);
    PyMem_Free(self->grad_pointers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

int check_ready(OptimizerObject *self) {
    if (!self->handle) { PyErr_SetString(PyExc_RuntimeError, "Optimizer is not initialised"); return -1; }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this optimizer is in use by another thread (optimizers are not thread-safe)");
        return -1;
    }
    return 0;
}

static PyObject *Optimizer_add_group(OptimizerObject *self, PyObject *config) {
    if (check_ready(self)) return NULL;
    const adamcore_config *c = as_config(config, "config");
    if (!c) return NULL;
    size_t group;
    int status = adamcore_optimizer_add_group(self->handle, c, &group);
    if (status != ADAMCORE_OK) return raise_status(status);
    return PyLong_FromSize_t(group);
}

/* set_config(group, config) */
static PyObject *Optimizer_set_config(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "set_config(group, config)"); return NULL; }
    Py_ssize_t group = PyLong_AsSsize_t(args[0]);
    if (group == -1 && PyErr_Occurred()) return NULL;
    const adamcore_config *c = as_config(args[1], "config");
    if (!c) return NULL;
    int status = adamcore_optimizer_set_config(self->handle, group < 0 ? SIZE_MAX : (size_t)group, c);
    if (status != ADAMCORE_OK) return raise_status(status);
    Py_RETURN_NONE;
}

/* add_tensor(group, param, state[, layout]) -> index; state is a sequence of the group config's state buffers
 * (empty: the library allocates them). layout: (param_dtype, grad_dtype, state_dtype, flags, copy_dtype, copy,
 * master), the fields of adamcore_tensor_desc (0: the default), copy and master writable buffers or None; without
 * it every buffer is float32 or every one float64, as the buffers' formats say. */
static PyObject *Optimizer_add_tensor(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 3 && nargs != 4) { PyErr_SetString(PyExc_TypeError, "add_tensor(group, param, state[, layout])"); return NULL; }
    Py_ssize_t group = PyLong_AsSsize_t(args[0]);
    if (group == -1 && PyErr_Occurred()) return NULL;
    if (ensure_capacity(self) != 0) return PyErr_NoMemory();
    adamcore_tensor_desc desc;
    ADAMCORE_TENSOR_DESC_INIT(&desc);
    PyObject *copy = Py_None, *master = Py_None;
    if (nargs == 4) {
        int param_dtype, grad_dtype, state_dtype, copy_dtype;
        unsigned int flags;
        if (!PyArg_ParseTuple(args[3], "iiiIiOO:layout", &param_dtype, &grad_dtype, &state_dtype, &flags, &copy_dtype,
                              &copy, &master))
            return NULL;
        desc.param_dtype = param_dtype;
        desc.grad_dtype = grad_dtype;
        desc.state_dtype = state_dtype;
        desc.flags = flags;
        desc.copy_dtype = copy_dtype;
    }
    PyObject *state = PySequence_Fast(args[2], "state must be a sequence of arrays");
    if (!state) return NULL;
    Py_ssize_t slots = PySequence_Fast_GET_SIZE(state);
    if (slots > 3) { Py_DECREF(state); return raise_status(ADAMCORE_E_STATE); }
    Py_buffer views[6];
    int held = 0;
    void *pointers[3] = {NULL, NULL, NULL};
    if (nargs == 3) {
        if (get_buffer(args[1], &views[0], 1, "param", -1) != 0) goto fail;
        desc.param_dtype = desc.grad_dtype = desc.state_dtype = dtype_of(&views[0]);
    } else if (get_typed_buffer(args[1], &views[0], 1, desc.param_dtype, "param", 0) != 0) {
        goto fail;
    }
    held = 1;
    const int state_dtype = desc.state_dtype ? desc.state_dtype
        : (desc.param_dtype == ADAMCORE_FLOAT16 || desc.param_dtype == ADAMCORE_BFLOAT16) ? ADAMCORE_FLOAT32 : desc.param_dtype;
    for (Py_ssize_t k = 0; k < slots; k++, held++) {
        if (get_typed_buffer(PySequence_Fast_GET_ITEM(state, k), &views[held], 1, state_dtype, "state", k) != 0) goto fail;
        if (element_count(&views[held]) != element_count(&views[0])) {
            PyErr_Format(PyExc_ValueError, "state[%zd]: its length must match the parameter's", k);
            held++;
            goto fail;
        }
        pointers[k] = views[held].buf;
    }
    if (copy != Py_None) {
        if (get_typed_buffer(copy, &views[held], 1, desc.copy_dtype, "copy", 0) != 0) goto fail;
        desc.copy = views[held].buf;
        held++;
    }
    if (master != Py_None) {
        if (get_typed_buffer(master, &views[held], 1, ADAMCORE_FLOAT32, "master", 0) != 0) goto fail;
        desc.master = views[held].buf;
        held++;
    }
    desc.count = element_count(&views[0]);
    desc.param = views[0].buf;
    desc.state = slots ? pointers : NULL;
    desc.state_count = (size_t)slots;
    size_t index;
    int status = adamcore_optimizer_add_tensor_desc(self->handle, group < 0 ? SIZE_MAX : (size_t)group, &desc, &index);
    if (status != ADAMCORE_OK) { raise_status(status); goto fail; }
    adamcore_tensor_desc resolved;
    ADAMCORE_TENSOR_DESC_INIT(&resolved);
    (void)adamcore_optimizer_get_tensor_desc(self->handle, index, &resolved);
    /* Registered: the views stay pinned for the optimizer's life (the parameter's until set_tensor_param replaces
     * it). The library cannot unregister a tensor, so if pinning runs out of memory the buffers stay held (never
     * released early) and the error is reported. */
    self->param_views[self->tensors] = views[0];
    self->counts[self->tensors] = desc.count;
    self->dtypes[self->tensors] = resolved.param_dtype;
    self->grad_dtypes[self->tensors] = resolved.grad_dtype;
    self->core_steps[self->tensors] = 0;
    self->tensors++;
    for (int i = 1; i < held; i++) {
        if (pin(self, &views[i]) != 0) {
            Py_DECREF(state);
            return PyErr_NoMemory();
        }
    }
    Py_DECREF(state);
    return PyLong_FromSize_t(index);
fail:
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    Py_DECREF(state);
    return NULL;
}

/* Fill grad_views/grad_pointers[offset ...] from a sequence with one gradient per tensor. */
static int collect_grads(OptimizerObject *self, PyObject *grads, Py_ssize_t offset, const char *what, int *held) {
    PyObject *seq = PySequence_Fast(grads, "gradients must be a list or tuple of arrays");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n != self->tensors) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd gradients (one per parameter), got %zd", what, self->tensors, n);
        Py_DECREF(seq);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer *view = &self->grad_views[offset + i];
        if (get_typed_buffer(items[i], view, 0, self->grad_dtypes[i], what, i) != 0) { Py_DECREF(seq); return -1; }
        (*held)++;
        if (element_count(view) != self->counts[i]) {
            PyErr_Format(PyExc_ValueError, "%s[%zd]: %zu elements, its parameter has %zu", what, i, element_count(view),
                         self->counts[i]);
            Py_DECREF(seq);
            return -1;
        }
        self->grad_pointers[offset + i] = view->buf;
    }
    Py_DECREF(seq);
    return 0;
}

static void release_grads(OptimizerObject *self, Py_ssize_t offset, int held) {
    for (int i = 0; i < held; i++) PyBuffer_Release(&self->grad_views[offset + i]);
}

/* A step's result: True if applied, False if skipped (found_inf or the guard), else the exception. */
/* Step options from a step call's grad_scale and found_inf arguments; -1 with an exception on failure. */
int step_options_of(PyObject *grad_scale, PyObject *found_inf, adamcore_step_options *options) {
    ADAMCORE_STEP_OPTIONS_INIT(options);
    options->grad_scale = PyFloat_AsDouble(grad_scale);
    if (options->grad_scale == -1.0 && PyErr_Occurred()) return -1;
    int found = PyObject_IsTrue(found_inf);
    if (found < 0) return -1;
    options->found_inf = (uint32_t)found;
    return 0;
}

/* The per-tensor step counts change inside the library (set_step, load): ask it again when needed. */
static void forget_steps(OptimizerObject *self) {
    for (Py_ssize_t i = 0; i < self->tensors; i++) self->core_steps[i] = -1;
}

PyObject *step_result(int status) {
    if (status == ADAMCORE_OK) Py_RETURN_TRUE;
    if (status == ADAMCORE_STEP_SKIPPED) Py_RETURN_FALSE;
    return raise_status(status);
}

/* step(grads) -> bool: one step of every registered tensor. */
static PyObject *Optimizer_step(OptimizerObject *self, PyObject *grads) {
    if (check_ready(self)) return NULL;
    int held = 0, status;
    if (collect_grads(self, grads, 0, "grads", &held) != 0) { release_grads(self, 0, held); return NULL; }
    self->busy = 1;
    RELEASE_GIL_AND(adamcore_optimizer_step(self->handle, self->grad_pointers, (size_t)self->tensors), status);
    self->busy = 0;
    release_grads(self, 0, held);
    return step_result(status);
}

/* step_with_options(grads, grad_scale, found_inf) -> bool */
static PyObject *Optimizer_step_with_options(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 3) { PyErr_SetString(PyExc_TypeError, "step_with_options(grads, grad_scale, found_inf)"); return NULL; }
    adamcore_step_options options;
    if (step_options_of(args[1], args[2], &options) != 0) return NULL;
    int held = 0, status;
    if (collect_grads(self, args[0], 0, "grads", &held) != 0) { release_grads(self, 0, held); return NULL; }
    self->busy = 1;
    RELEASE_GIL_AND(adamcore_optimizer_step_with_options(self->handle, self->grad_pointers, (size_t)self->tensors,
                                                         &options), status);
    self->busy = 0;
    release_grads(self, 0, held);
    return step_result(status);
}

/* A tensor index argument: 0 <= i < tensors, else IndexError. */
static Py_ssize_t tensor_index(OptimizerObject *self, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return -1;
    if (i < 0 || i >= self->tensors) {
        PyErr_Format(PyExc_IndexError, "tensor index %zd out of range (%zd tensors)", i, self->tensors);
        return -1;
    }
    return i;
}

/* step_tensors(indices, grads, grad_scale, found_inf) -> bool: a step of the listed tensors only. */
static PyObject *Optimizer_step_tensors(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 4) { PyErr_SetString(PyExc_TypeError, "step_tensors(indices, grads, grad_scale, found_inf)"); return NULL; }
    adamcore_step_options options;
    if (step_options_of(args[2], args[3], &options) != 0) return NULL;
    PyObject *indices = PySequence_Fast(args[0], "indices must be a list or tuple of ints");
    if (!indices) return NULL;
    PyObject *grads = PySequence_Fast(args[1], "grads must be a list or tuple of arrays");
    if (!grads) { Py_DECREF(indices); return NULL; }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(indices), held = 0;
    int status = ADAMCORE_OK;
    PyObject *result = NULL;
    if (PySequence_Fast_GET_SIZE(grads) != n) {
        PyErr_Format(PyExc_ValueError, "%zd indices but %zd gradients", n, PySequence_Fast_GET_SIZE(grads));
        goto done;
    }
    if (n > self->tensors) { PyErr_Format(PyExc_ValueError, "%zd indices for %zd tensors", n, self->tensors); goto done; }
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t i = tensor_index(self, PySequence_Fast_GET_ITEM(indices, k));
        if (i < 0) goto done;
        Py_buffer *view = &self->grad_views[k];
        if (get_typed_buffer(PySequence_Fast_GET_ITEM(grads, k), view, 0, self->grad_dtypes[i], "grads", k) != 0) goto done;
        held++;
        if ((size_t)(view->len / view->itemsize) != self->counts[i]) {
            PyErr_Format(PyExc_ValueError, "grads[%zd]: length must match parameter %zd's", k, i);
            goto done;
        }
        self->step_list[k] = (size_t)i;
        self->grad_pointers[k] = view->buf;
    }
    self->busy = 1;
    RELEASE_GIL_AND(adamcore_optimizer_step_tensors(self->handle, self->step_list, self->grad_pointers, (size_t)n,
                                                    &options), status);
    self->busy = 0;
    forget_steps(self);
    result = step_result(status);
done:
    for (Py_ssize_t k = 0; k < held; k++) PyBuffer_Release(&self->grad_views[k]);
    Py_DECREF(indices);
    Py_DECREF(grads);
    return result;
}

/* get_tensor_step(i) -> int: the tensor's own step count. */
static PyObject *Optimizer_get_tensor_step(OptimizerObject *self, PyObject *arg) {
    if (check_ready(self)) return NULL;
    Py_ssize_t i = tensor_index(self, arg);
    if (i < 0) return NULL;
    int64_t step;
    int status = adamcore_optimizer_get_tensor_step(self->handle, (size_t)i, &step);
    if (status != ADAMCORE_OK) return raise_status(status);
    self->core_steps[i] = step;
    return PyLong_FromLongLong(step);
}

/* set_tensor_step(i, step) */
static PyObject *Optimizer_set_tensor_step(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "set_tensor_step(index, step)"); return NULL; }
    Py_ssize_t i = tensor_index(self, args[0]);
    if (i < 0) return NULL;
    long long step = PyLong_AsLongLong(args[1]);
    if (step == -1 && PyErr_Occurred()) return NULL;
    int status = adamcore_optimizer_set_tensor_step(self->handle, (size_t)i, step);
    if (status != ADAMCORE_OK) return raise_status(status);
    self->core_steps[i] = step;
    Py_RETURN_NONE;
}

/* set_tensor_param(i, param): the tensor's parameter is now this writable buffer (same dtype and length). */
static PyObject *Optimizer_set_tensor_param(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "set_tensor_param(index, param)"); return NULL; }
    Py_ssize_t i = tensor_index(self, args[0]);
    if (i < 0) return NULL;
    Py_buffer view;
    if (get_typed_buffer(args[1], &view, 1, self->dtypes[i], "param", 0) != 0) return NULL;
    if ((size_t)(view.len / view.itemsize) != self->counts[i]) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "param: length must match tensor %zd's", i);
        return NULL;
    }
    int status = adamcore_optimizer_set_tensor_param(self->handle, (size_t)i, view.buf);
    if (status != ADAMCORE_OK) { PyBuffer_Release(&view); return raise_status(status); }
    PyBuffer_Release(&self->param_views[i]);
    self->param_views[i] = view;
    Py_RETURN_NONE;
}

/* save(path) / load(path): checkpoint files; path is str, bytes or os.PathLike. File I/O runs without the GIL. */
static PyObject *checkpoint_file(OptimizerObject *self, PyObject *path, int (*call)(adamcore_optimizer *, const char *)) {
    if (check_ready(self)) return NULL;
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(path, &encoded)) return NULL;
    int status;
    self->busy = 1;
    RELEASE_GIL_AND(call(self->handle, PyBytes_AS_STRING(encoded)), status);
    self->busy = 0;
    forget_steps(self);
    if (status == ADAMCORE_E_IO) {
        PyErr_Format(PyExc_OSError, "%s: %s", adamcore_strerror(status), PyBytes_AS_STRING(encoded));
        Py_DECREF(encoded);
        return NULL;
    }
    Py_DECREF(encoded);
    if (status != ADAMCORE_OK) return raise_status(status);
    Py_RETURN_NONE;
}
static PyObject *Optimizer_save(OptimizerObject *self, PyObject *path) { return checkpoint_file(self, path, adamcore_optimizer_save); }
static PyObject *Optimizer_load(OptimizerObject *self, PyObject *path) { return checkpoint_file(self, path, adamcore_optimizer_load); }

/* checkpoint_bytes() -> bytes */
static PyObject *Optimizer_checkpoint_bytes(OptimizerObject *self, PyObject *unused) {
    (void)unused;
    if (check_ready(self)) return NULL;
    size_t size = 0;
    int status = adamcore_optimizer_checkpoint_size(self->handle, &size);
    if (status != ADAMCORE_OK) return raise_status(status);
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!bytes) return NULL;
    self->busy = 1;
    RELEASE_GIL_AND(adamcore_optimizer_save_to_memory(self->handle, PyBytes_AS_STRING(bytes), size, NULL), status);
    self->busy = 0;
    if (status != ADAMCORE_OK) { Py_DECREF(bytes); return raise_status(status); }
    return bytes;
}

/* load_bytes(buffer): restore from any bytes-like object. */
static PyObject *Optimizer_load_bytes(OptimizerObject *self, PyObject *data) {
    if (check_ready(self)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return NULL;
    int status;
    self->busy = 1;
    RELEASE_GIL_AND(adamcore_optimizer_load_from_memory(self->handle, view.buf, (size_t)view.len), status);
    self->busy = 0;
    forget_steps(self);
    PyBuffer_Release(&view);
    if (status != ADAMCORE_OK) return raise_status(status);
    Py_RETURN_NONE;
}

/* get_config(group) -> Config */
static PyObject *Optimizer_get_config(OptimizerObject *self, PyObject *group) {
    if (check_ready(self)) return NULL;
    Py_ssize_t g = PyLong_AsSsize_t(group);
    if (g == -1 && PyErr_Occurred()) return NULL;
    if (g < 0) return raise_status(ADAMCORE_E_INDEX);
    ConfigObject *c = PyObject_New(ConfigObject, &ConfigType);
    if (!c) return NULL;
    adamcore_config_init(&c->config, ADAMCORE_SGD);
    int status = adamcore_optimizer_get_config(self->handle, (size_t)g, &c->config);
    if (status == ADAMCORE_OK) status = adamcore_config_state_count(&c->config, &c->state_count);
    if (status != ADAMCORE_OK) { Py_DECREF(c); return raise_status(status); }
    return (PyObject *)c;
}

/* set_stats(every): 0 off, 1 every step, k every k-th step */
static PyObject *Optimizer_set_stats(OptimizerObject *self, PyObject *every) {
    if (check_ready(self)) return NULL;
    long enabled = PyLong_AsLong(every);
    if (enabled == -1 && PyErr_Occurred()) return NULL;
    if (enabled > INT32_MAX) return raise_status(ADAMCORE_E_INDEX);
    int status = adamcore_optimizer_set_stats(self->handle, (int)enabled);
    if (status != ADAMCORE_OK) return raise_status(status);
    Py_RETURN_NONE;
}

/* get_stats' result: adamcore_step_stats by field name (a struct sequence, so nothing is unpacked by position). */
static PyStructSequence_Field stats_fields[] = {
    {"step", "the step these figures describe (0: none yet)"},
    {"count", "elements measured"},
    {"nonfinite_grads", "NaN and +-Inf gradient values"},
    {"max_step_over_lr", "max |m_hat / (sqrt(v_hat) + eps)|"},
    {"step_bound", "seed 000 Proposition 1's bound on max_step_over_lr"},
    {"min_effective_lr", "smallest lr / (sqrt(v_hat) + eps)"},
    {"max_effective_lr", "largest lr / (sqrt(v_hat) + eps)"},
    {"mean_effective_lr", "mean lr / (sqrt(v_hat) + eps)"},
    {"m_norm", "||m|| after the step"},
    {"v_norm", "||v|| after the step"},
    {"step_norm", "||p_new - p_old||"},
    {"adafix_v_frozen", "AdaFix: whether this step held v fixed"},
    {"lipschitz", "AdaFix: L after the step"},
    {NULL, NULL},
};
static PyStructSequence_Desc stats_desc = {"adamcore._core.StepStatsFields",
                                           "One step's statistics (adamcore_step_stats), by field name.", stats_fields,
                                           13};
PyTypeObject *StatsType;

/* get_stats(tensor) -> StepStatsFields (tensor -1: the whole optimizer) */
static PyObject *Optimizer_get_stats(OptimizerObject *self, PyObject *tensor) {
    if (check_ready(self)) return NULL;
    Py_ssize_t t = PyLong_AsSsize_t(tensor);
    if (t == -1 && PyErr_Occurred()) return NULL;
    adamcore_step_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    int status = t < 0 ? adamcore_optimizer_get_stats(self->handle, &st)
                       : adamcore_optimizer_get_tensor_stats(self->handle, (size_t)t, &st);
    if (status != ADAMCORE_OK) return raise_status(status);
    PyObject *values[13] = {
        PyLong_FromLongLong(st.step), PyLong_FromUnsignedLongLong(st.count),
        PyLong_FromUnsignedLongLong(st.nonfinite_grads), PyFloat_FromDouble(st.max_step_over_lr),
        PyFloat_FromDouble(st.step_bound), PyFloat_FromDouble(st.min_effective_lr),
        PyFloat_FromDouble(st.max_effective_lr), PyFloat_FromDouble(st.mean_effective_lr),
        PyFloat_FromDouble(st.m_norm), PyFloat_FromDouble(st.v_norm), PyFloat_FromDouble(st.step_norm),
        PyBool_FromLong(st.adafix_v_frozen), PyFloat_FromDouble(st.lipschitz),
    };
    PyObject *result = PyStructSequence_New(StatsType);
    for (int i = 0; i < 13; i++) {
        if (!values[i] || !result) {
            for (int j = i; j < 13; j++) Py_XDECREF(values[j]);
            Py_XDECREF(result);
            return NULL;
        }
        PyStructSequence_SetItem(result, i, values[i]); /* steals the reference */
    }
    return result;
}

static PyObject *Optimizer_get_guard(OptimizerObject *self, void *c) {
    (void)c;
    if (check_ready(self)) return NULL;
    int on = 0;
    adamcore_optimizer_get_nonfinite_guard(self->handle, &on);
    return PyBool_FromLong(on);
}
static int Optimizer_set_guard(OptimizerObject *self, PyObject *value, void *c) {
    (void)c;
    if (check_ready(self)) return -1;
    if (!value) { PyErr_SetString(PyExc_TypeError, "cannot delete nonfinite_guard"); return -1; }
    int on = PyObject_IsTrue(value);
    if (on < 0) return -1;
    adamcore_optimizer_set_nonfinite_guard(self->handle, on);
    return 0;
}
static PyObject *Optimizer_get_seed(OptimizerObject *self, void *c) {
    (void)c;
    if (check_ready(self)) return NULL;
    uint64_t seed = 0;
    adamcore_optimizer_get_rounding_seed(self->handle, &seed);
    return PyLong_FromUnsignedLongLong(seed);
}
static int Optimizer_set_seed(OptimizerObject *self, PyObject *value, void *c) {
    (void)c;
    if (check_ready(self)) return -1;
    if (!value) { PyErr_SetString(PyExc_TypeError, "cannot delete rounding_seed"); return -1; }
    unsigned long long seed = PyLong_AsUnsignedLongLong(value);
    if (seed == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    adamcore_optimizer_set_rounding_seed(self->handle, (uint64_t)seed);
    return 0;
}
static PyObject *Optimizer_skipped(OptimizerObject *self, void *which) {
    if (check_ready(self)) return NULL;
    int64_t skipped = 0;
    uint64_t nonfinite = 0;
    adamcore_optimizer_get_skipped_steps(self->handle, &skipped, &nonfinite);
    return which ? PyLong_FromUnsignedLongLong(nonfinite) : PyLong_FromLongLong(skipped);
}

/* adafix_observe(grads, new_grads) */
static PyObject *Optimizer_adafix_observe(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "adafix_observe(grads, new_grads)"); return NULL; }
    int held = 0, held_new = 0, status;
    if (collect_grads(self, args[0], 0, "grads", &held) != 0 ||
        collect_grads(self, args[1], self->tensors, "new_grads", &held_new) != 0) {
        release_grads(self, 0, held);
        release_grads(self, self->tensors, held_new);
        return NULL;
    }
    self->busy = 1;
    RELEASE_GIL_AND(adamcore_optimizer_adafix_observe(self->handle, self->grad_pointers,
                                                      self->grad_pointers + self->tensors, (size_t)self->tensors), status);
    self->busy = 0;
    release_grads(self, 0, held);
    release_grads(self, self->tensors, held_new);
    if (status != ADAMCORE_OK) return raise_status(status);
    Py_RETURN_NONE;
}

static PyObject *Optimizer_get_step(OptimizerObject *self, void *c) {
    (void)c;
    int64_t step = 0;
    if (check_ready(self)) return NULL;
    adamcore_optimizer_get_step(self->handle, &step);
    return PyLong_FromLongLong(step);
}
static int Optimizer_set_step(OptimizerObject *self, PyObject *value, void *c) {
    (void)c;
    if (check_ready(self)) return -1;
    if (!value) { PyErr_SetString(PyExc_TypeError, "cannot delete step"); return -1; }
    long long step = PyLong_AsLongLong(value);
    if (step == -1 && PyErr_Occurred()) return -1;
    int status = adamcore_optimizer_set_step(self->handle, step);
    if (status != ADAMCORE_OK) { raise_status(status); return -1; }
    forget_steps(self);
    return 0;
}

typedef int (*get_double_fn)(adamcore_optimizer *, double *);
typedef int (*set_double_fn)(adamcore_optimizer *, double);
static struct { get_double_fn get; set_double_fn set; } double_properties[] = {
    {adamcore_optimizer_get_lipschitz, adamcore_optimizer_set_lipschitz},
    {adamcore_optimizer_get_adafix_step_norm_sq, adamcore_optimizer_set_adafix_step_norm_sq},
};
static PyObject *Optimizer_get_double(OptimizerObject *self, void *which) {
    if (check_ready(self)) return NULL;
    double x = 0;
    int status = double_properties[(size_t)which].get(self->handle, &x);
    if (status != ADAMCORE_OK) return raise_status(status);
    return PyFloat_FromDouble(x);
}
static int Optimizer_set_double(OptimizerObject *self, PyObject *value, void *which) {
    if (check_ready(self)) return -1;
    if (!value) { PyErr_SetString(PyExc_TypeError, "cannot delete this attribute"); return -1; }
    double x = PyFloat_AsDouble(value);
    if (x == -1.0 && PyErr_Occurred()) return -1;
    int status = double_properties[(size_t)which].set(self->handle, x);
    if (status != ADAMCORE_OK) { raise_status(status); return -1; }
    return 0;
}
static PyObject *Optimizer_v_updated(OptimizerObject *self, void *c) {
    (void)c;
    if (check_ready(self)) return NULL;
    int updated = 0;
    int status = adamcore_optimizer_adafix_v_updated(self->handle, &updated);
    if (status != ADAMCORE_OK) return raise_status(status);
    return PyBool_FromLong(updated);
}
static PyObject *Optimizer_tensor_count(OptimizerObject *self, void *c) { (void)c; return PyLong_FromSsize_t(self->tensors); }

static PyMethodDef Optimizer_methods[] = {
    {"add_group", (PyCFunction)Optimizer_add_group, METH_O, "add_group(config) -> group index"},
    {"set_config", (PyCFunction)(void (*)(void))Optimizer_set_config, METH_FASTCALL, "set_config(group, config)"},
    {"add_tensor", (PyCFunction)(void (*)(void))Optimizer_add_tensor, METH_FASTCALL,
     "add_tensor(group, param, state) -> tensor index; pins param and state until the optimizer is freed"},
    {"step", (PyCFunction)Optimizer_step, METH_O,
     "step(grads) -> bool: one step of every tensor, GIL released; False if the guard skipped it"},
    {"step_with_options", (PyCFunction)(void (*)(void))Optimizer_step_with_options, METH_FASTCALL,
     "step_with_options(grads, grad_scale, found_inf) -> bool: AMP's step; False if skipped"},
    {"step_tensors", (PyCFunction)(void (*)(void))Optimizer_step_tensors, METH_FASTCALL,
     "step_tensors(indices, grads, grad_scale, found_inf) -> bool: a step of the listed tensors only"},
    {"get_tensor_step", (PyCFunction)Optimizer_get_tensor_step, METH_O, "get_tensor_step(i) -> the tensor's step count"},
    {"set_tensor_step", (PyCFunction)(void (*)(void))Optimizer_set_tensor_step, METH_FASTCALL,
     "set_tensor_step(i, step)"},
    {"set_tensor_param", (PyCFunction)(void (*)(void))Optimizer_set_tensor_param, METH_FASTCALL,
     "set_tensor_param(i, param): new parameter memory of the same dtype and length"},
    {"torch_bind", (PyCFunction)(void (*)(void))Optimizer_torch_bind, METH_FASTCALL,
     "torch_bind(i, param, dtype, local): the torch parameter registered as tensor i (adamcore.torch)"},
    {"torch_step", (PyCFunction)(void (*)(void))Optimizer_torch_step, METH_FASTCALL,
     "torch_step(group_params, steps, grad_scale, found_inf) -> (code, payload) (adamcore.torch)"},
    {"save", (PyCFunction)Optimizer_save, METH_O, "save(path): safetensors checkpoint, written atomically"},
    {"load", (PyCFunction)Optimizer_load, METH_O, "load(path): restore a checkpoint; unchanged on any error"},
    {"checkpoint_bytes", (PyCFunction)Optimizer_checkpoint_bytes, METH_NOARGS, "checkpoint_bytes() -> bytes"},
    {"load_bytes", (PyCFunction)Optimizer_load_bytes, METH_O, "load_bytes(data): restore from bytes"},
    {"get_config", (PyCFunction)Optimizer_get_config, METH_O, "get_config(group) -> Config"},
    {"set_stats", (PyCFunction)Optimizer_set_stats, METH_O, "set_stats(on): in-pass statistics (Adam family)"},
    {"get_stats", (PyCFunction)Optimizer_get_stats, METH_O, "get_stats(tensor or -1) -> StepStatsFields"},
    {"adafix_observe", (PyCFunction)(void (*)(void))Optimizer_adafix_observe, METH_FASTCALL,
     "adafix_observe(grads, new_grads): AdaFix's Lipschitz estimate from g' at the new point"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Optimizer_getset[] = {
    {"step_count", (getter)Optimizer_get_step, (setter)Optimizer_set_step, "steps taken", NULL},
    {"lipschitz", (getter)Optimizer_get_double, (setter)Optimizer_set_double, "AdaFix's estimate L", (void *)0},
    {"adafix_step_norm_sq", (getter)Optimizer_get_double, (setter)Optimizer_set_double,
     "AdaFix's pending ||x_{t+1} - x_t||^2, or -1", (void *)1},
    {"v_updated", (getter)Optimizer_v_updated, NULL, "whether the last AdaFix step updated v", NULL},
    {"tensor_count", (getter)Optimizer_tensor_count, NULL, "registered tensors", NULL},
    {"nonfinite_guard", (getter)Optimizer_get_guard, (setter)Optimizer_set_guard,
     "skip any step whose gradients hold NaN or Inf", NULL},
    {"rounding_seed", (getter)Optimizer_get_seed, (setter)Optimizer_set_seed,
     "the stochastic-rounding seed (0 to 2**64 - 1)", NULL},
    {"skipped_steps", (getter)Optimizer_skipped, NULL, "steps skipped by found_inf or the guard", NULL},
    {"last_nonfinite_count", (getter)Optimizer_skipped, NULL, "NaN/Inf values the guard counted last step", (void *)1},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject OptimizerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "adamcore._core.Optimizer",
    .tp_doc = "Optimizer(config): an adamcore_optimizer with pinned parameter and state buffers. Not thread-safe.",
    .tp_basicsize = sizeof(OptimizerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Optimizer_init,
    .tp_dealloc = (destructor)Optimizer_dealloc,
    .tp_methods = Optimizer_methods,
    .tp_getset = Optimizer_getset,
};

/* Ready the Optimizer type and the statistics' struct sequence (module init). */
int optimizer_types_ready(void) {
    if (PyType_Ready(&OptimizerType) < 0) return -1;
    if (!StatsType && !(StatsType = PyStructSequence_NewType(&stats_desc))) return -1;
    return 0;
}
