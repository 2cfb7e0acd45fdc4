/*
 * The torch fast path of adamcore._core: one call per optimizer step for all parameters of an adamcore.torch
 * optimizer. Per parameter it reads `p.grad` and the data addresses of p and its gradient (two small ints: torch
 * offers no cheaper way to see a tensor's memory from C without linking libtorch), checks the gradient's dtype,
 * layout, device, contiguity and size, and hands the library one list of (tensor, gradient) pairs. Nothing else is
 * allocated per parameter, and the library runs with the GIL released.
 *
 * Anything that is not the steady state is left to adamcore/torch.py, which this call tells what changed:
 * parameters that are not the registered ones (param_groups edited) or whose storage moved (`p.data = ...`).
 * Then nothing has been stepped, and Python fixes the registration and calls again.
 */
#include "_core.h"

#include <math.h>

static PyObject *str_layout, *str_local_tensor;
static PyObject *torch_strided; /* torch.strided, the dense layout */

/*
 * torch's attributes called directly. The generic lookup (type MRO, then the instance dict that torch tensors
 * have) costs about as much as the attribute itself, and this path reads seven per parameter. So for each exact
 * tensor type met (torch.Tensor, torch.nn.Parameter) the C functions behind the attributes are found once; a type
 * where any of them is not torch's C descriptor (a subclass overriding it in Python) uses the generic calls.
 */
enum { A_GRAD, A_DTYPE, A_IS_CPU, A_NBYTES, A_DATA_PTR, A_IS_CONTIGUOUS, ATTRIBUTES };
static const char *const attribute_names[ATTRIBUTES] = {"grad", "dtype", "is_cpu", "nbytes", "data_ptr",
                                                        "is_contiguous"};
static PyObject *attribute_strings[ATTRIBUTES];

typedef struct {
    PyTypeObject *type;            /* a strong reference */
    int direct;                    /* 0: use the generic calls for this type */
    PyGetSetDef *getters[A_NBYTES + 1];
    PyCFunction data_ptr;          /* METH_NOARGS */
    PyCFunctionWithKeywords is_contiguous;
} TensorType;
static TensorType tensor_types[4];
static int tensor_type_count;
static PyObject *empty_tuple;

static const TensorType *tensor_type(PyObject *obj) {
    PyTypeObject *t = Py_TYPE(obj);
    for (int i = 0; i < tensor_type_count; i++)
        if (tensor_types[i].type == t) return &tensor_types[i];
    if (tensor_type_count == (int)(sizeof tensor_types / sizeof tensor_types[0])) return NULL;
    TensorType *e = &tensor_types[tensor_type_count++];
    e->type = (PyTypeObject *)Py_NewRef((PyObject *)t);
    e->direct = 1;
    for (int a = 0; a < ATTRIBUTES; a++) {
        PyObject *d = PyObject_GetAttr((PyObject *)t, attribute_strings[a]);
        if (!d) { PyErr_Clear(); e->direct = 0; break; }
        if (a <= A_NBYTES && Py_IS_TYPE(d, &PyGetSetDescr_Type)) {
            e->getters[a] = ((PyGetSetDescrObject *)d)->d_getset;
        } else if (a == A_DATA_PTR && Py_IS_TYPE(d, &PyMethodDescr_Type) &&
                   ((PyMethodDescrObject *)d)->d_method->ml_flags == METH_NOARGS) {
            e->data_ptr = ((PyMethodDescrObject *)d)->d_method->ml_meth;
        } else if (a == A_IS_CONTIGUOUS && Py_IS_TYPE(d, &PyMethodDescr_Type) &&
                   ((PyMethodDescrObject *)d)->d_method->ml_flags == (METH_VARARGS | METH_KEYWORDS)) {
            e->is_contiguous = (PyCFunctionWithKeywords)(void (*)(void))((PyMethodDescrObject *)d)->d_method->ml_meth;
        } else {
            e->direct = 0;
        }
        Py_DECREF(d);
    }
    return e;
}

/* obj.<attribute> (or obj.<attribute>() for the two methods); a new reference, NULL with an exception. */
static PyObject *tensor_attribute(PyObject *obj, int a) {
    const TensorType *t = tensor_type(obj);
    if (t && t->direct) {
        if (a <= A_NBYTES) return t->getters[a]->get(obj, t->getters[a]->closure);
        if (a == A_DATA_PTR) return t->data_ptr(obj, NULL);
        return t->is_contiguous(obj, empty_tuple, NULL);
    }
    return a < A_DATA_PTR ? PyObject_GetAttr(obj, attribute_strings[a])
                          : PyObject_CallMethodNoArgs(obj, attribute_strings[a]);
}

int torch_binding_grow(TorchBinding *b, Py_ssize_t old_capacity, Py_ssize_t capacity) {
    PyObject **params = PyMem_Realloc(b->params, (size_t)capacity * sizeof *params);
    if (!params) return -1;
    b->params = params;
    PyObject **dtypes = PyMem_Realloc(b->dtypes, (size_t)capacity * sizeof *dtypes);
    if (!dtypes) return -1;
    b->dtypes = dtypes;
    unsigned char *local = PyMem_Realloc(b->local, (size_t)capacity);
    if (!local) return -1;
    b->local = local;
    PyObject **grads = PyMem_Realloc(b->grads, (size_t)capacity * sizeof *grads);
    if (!grads) return -1;
    b->grads = grads;
    for (Py_ssize_t i = old_capacity; i < capacity; i++) {
        b->params[i] = NULL;
        b->dtypes[i] = NULL;
        b->local[i] = 0;
    }
    return 0;
}

void torch_binding_free(TorchBinding *b, Py_ssize_t tensors) {
    if (b->params)
        for (Py_ssize_t i = 0; i < tensors; i++) {
            Py_XDECREF(b->params[i]);
            Py_XDECREF(b->dtypes[i]);
        }
    PyMem_Free(b->params);
    PyMem_Free(b->dtypes);
    PyMem_Free(b->local);
    PyMem_Free(b->grads);
}

static int intern_names(void) {
    if (str_layout) return 0;
    for (int a = 0; a < ATTRIBUTES; a++)
        if (!(attribute_strings[a] = PyUnicode_InternFromString(attribute_names[a]))) return -1;
    if (!(empty_tuple = PyTuple_New(0))) return -1;
    str_local_tensor = PyUnicode_InternFromString("_local_tensor");
    str_layout = PyUnicode_InternFromString("layout");
    return str_layout && str_local_tensor ? 0 : -1;
}

/* torch_bind(i, param, dtype, local, strided): tensor i is the torch parameter `param` (a DTensor when local). */
PyObject *Optimizer_torch_bind(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 5) { PyErr_SetString(PyExc_TypeError, "torch_bind(index, param, dtype, local, strided)"); return NULL; }
    if (intern_names() != 0) return NULL;
    Py_ssize_t i = PyLong_AsSsize_t(args[0]);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0 || i >= self->tensors) { PyErr_SetString(PyExc_IndexError, "tensor index out of range"); return NULL; }
    int local = PyObject_IsTrue(args[3]);
    if (local < 0) return NULL;
    Py_XSETREF(self->torch.params[i], Py_NewRef(args[1]));
    Py_XSETREF(self->torch.dtypes[i], Py_NewRef(args[2]));
    self->torch.local[i] = (unsigned char)local;
    if (!torch_strided) torch_strided = Py_NewRef(args[4]);
    Py_RETURN_NONE;
}

/* The address of a tensor's data; 0 with an exception set on failure. */
static uintptr_t data_address(PyObject *tensor) {
    PyObject *r = tensor_attribute(tensor, A_DATA_PTR);
    if (!r) return 0;
    unsigned long long a = PyLong_AsUnsignedLongLong(r);
    Py_DECREF(r);
    if (a == (unsigned long long)-1 && PyErr_Occurred()) return 0;
    if (a == 0) PyErr_SetString(PyExc_ValueError, "a tensor has no storage (data_ptr() is 0)");
    return (uintptr_t)a;
}

/* The tensor itself, or a DTensor's local shard; a new reference. */
static PyObject *local_of(PyObject *tensor, int local) {
    return local ? PyObject_GetAttr(tensor, str_local_tensor) : Py_NewRef(tensor);
}

/* Whether attribute `a` of `obj` is `expected` (identity); -1 with an exception on failure. */
static int attribute_is(PyObject *obj, int a, PyObject *expected) {
    PyObject *v = tensor_attribute(obj, a);
    if (!v) return -1;
    int same = v == expected;
    Py_DECREF(v);
    return same;
}

/* Checks tensor k's gradient `g` (a plain tensor): its dtype, device, layout and byte size are the parameter's.
 * Four attribute reads, the fewest that cover it: a sparse tensor is not contiguous (the layout is read only to
 * say so), and with the dtype known, nbytes gives the element count. 0, or -1 with an exception naming the
 * parameter. torch checks much of this when .grad is assigned, but `g.data = ...` can still change any of it. */
static int check_grad(OptimizerObject *self, Py_ssize_t k, PyObject *g) {
    int ok = attribute_is(g, A_DTYPE, self->torch.dtypes[k]);
    if (ok <= 0) {
        if (ok == 0) PyErr_Format(PyExc_TypeError, "parameter %zd: its gradient's dtype differs from the parameter's", k);
        return -1;
    }
    ok = attribute_is(g, A_IS_CPU, Py_True);
    if (ok <= 0) {
        if (ok == 0) PyErr_Format(PyExc_ValueError, "parameter %zd: its gradient is not on the CPU", k);
        return -1;
    }
    ok = attribute_is(g, A_IS_CONTIGUOUS, Py_True);
    if (ok <= 0) {  /* say why: sparse (not strided), or strided but not contiguous */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyObject *layout = PyObject_GetAttr(g, str_layout);
        int strided = layout ? layout == torch_strided : -1;
        Py_XDECREF(layout);
        if (strided > 0 && type) {
            PyErr_Restore(type, value, traceback);  /* is_contiguous() itself failed */
            return -1;
        }
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        if (strided == 0)
            PyErr_Format(PyExc_RuntimeError, "parameter %zd: adamcore does not support sparse gradients", k);
        else if (strided > 0)
            PyErr_Format(PyExc_ValueError, "parameter %zd: its gradient is not contiguous", k);
        return -1;
    }
    PyObject *n = tensor_attribute(g, A_NBYTES);
    if (!n) return -1;
    Py_ssize_t bytes = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    if (bytes == -1 && PyErr_Occurred()) return -1;
    const size_t itemsize = dtype_size(self->grad_dtypes[k]);
    if ((size_t)bytes != self->counts[k] * itemsize) {
        PyErr_Format(PyExc_ValueError, "parameter %zd: its gradient has %zd elements, the parameter %zu", k,
                     bytes / (Py_ssize_t)itemsize, self->counts[k]);
        return -1;
    }
    return 0;
}

/* Appends k to *list (created on first use); -1 on failure. */
static int append_index(PyObject **list, Py_ssize_t k) {
    if (!*list && !(*list = PyList_New(0))) return -1;
    PyObject *v = PyLong_FromSsize_t(k);
    if (!v) return -1;
    int r = PyList_Append(*list, v);
    Py_DECREF(v);
    return r;
}

/*
 * torch_step(group_params, steps, grad_scale, found_inf) -> (code, payload)
 *   group_params: each param group's "params" list, in order; steps: None (SGD: the library's own counts) or a
 *   writable float32/float64 buffer with (at least) one step count per tensor: torch's state['step'] values,
 *   which the user may change, advanced here for the tensors stepped.
 *   (1, None or [tensors stepped for the first time]) applied; (0, None) skipped (found_inf);
 *   (-1, None) the parameters are not the registered ones; (-2, [tensors]) their storage moved. For -1 and -2
 *   nothing was read or written.
 */
PyObject *Optimizer_torch_step(OptimizerObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (check_ready(self)) return NULL;
    if (nargs != 4) { PyErr_SetString(PyExc_TypeError, "torch_step(group_params, steps, grad_scale, found_inf)"); return NULL; }
    if (intern_names() != 0) return NULL;
    adamcore_step_options options;
    if (step_options_of(args[2], args[3], &options) != 0) return NULL;

    /* The parameters are the registered ones, in order. */
    PyObject *groups = args[0];
    if (!PyList_Check(groups)) { PyErr_SetString(PyExc_TypeError, "group_params must be a list"); return NULL; }
    Py_ssize_t k = 0;
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(groups); g++) {
        PyObject *params = PyList_GET_ITEM(groups, g);
        if (!PyList_Check(params)) return Py_BuildValue("(iO)", -1, Py_None);
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(params); j++, k++) {
            if (k >= self->tensors || PyList_GET_ITEM(params, j) != self->torch.params[k])
                return Py_BuildValue("(iO)", -1, Py_None);
        }
    }
    if (k != self->tensors) return Py_BuildValue("(iO)", -1, Py_None);

    Py_ssize_t m = 0; /* gradients held in torch.grads[0..m) */
    PyObject *moved = NULL, *first = NULL, *result = NULL;
    Py_buffer steps_view = {0};
    int have_steps = 0, steps_f64 = 0, status = ADAMCORE_OK;

    /* Storage and gradient of every parameter, checked before anything is written. */
    for (k = 0; k < self->tensors; k++) {
        const int local = self->torch.local[k];
        PyObject *p = local_of(self->torch.params[k], local);
        if (!p) goto done;
        uintptr_t address = self->counts[k] ? data_address(p) : (uintptr_t)self->param_views[k].buf;
        Py_DECREF(p);
        if (!address) goto done;
        if (address != (uintptr_t)self->param_views[k].buf) {  /* moved: Python registers it anew, then retries */
            if (append_index(&moved, k) != 0) goto done;
            continue;
        }
        PyObject *grad = tensor_attribute(self->torch.params[k], A_GRAD);
        if (!grad) goto done;
        if (grad == Py_None) { Py_DECREF(grad); continue; }
        PyObject *g = local_of(grad, local);
        Py_DECREF(grad);
        if (!g) goto done;
        self->torch.grads[m++] = g;
        if (check_grad(self, k, g) != 0) goto done;
        uintptr_t grad_address = self->counts[k] ? data_address(g) : (uintptr_t)self->param_views[k].buf;
        if (!grad_address) goto done;
        self->step_list[m - 1] = (size_t)k;
        self->grad_pointers[m - 1] = (const void *)grad_address;
    }
    if (moved) { result = Py_BuildValue("(iO)", -2, moved); goto done; }

    /* Each stepped tensor's count: torch's state['step'] where the optimizer keeps one. */
    if (args[1] != Py_None) {
        if (PyObject_GetBuffer(args[1], &steps_view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) goto done;
        have_steps = 1;
        const int f = dtype_of(&steps_view);
        if (!f || steps_view.len < steps_view.itemsize * self->tensors) {
            PyErr_SetString(PyExc_TypeError, "steps must be a float32 or float64 buffer with an entry per tensor");
            goto done;
        }
        steps_f64 = f == ADAMCORE_FLOAT64;
    }
    for (Py_ssize_t j = 0; j < m; j++) {
        const size_t t = self->step_list[j];
        if (have_steps) {
            const double v = steps_f64 ? ((const double *)steps_view.buf)[t] : ((const float *)steps_view.buf)[t];
            if (!(v >= 0) || v != floor(v) || v > 9007199254740992.0) {
                PyErr_Format(PyExc_ValueError, "parameter %zu: state['step'] is %g, not a whole number of steps", t,
                             (double)v);
                goto done;
            }
            if (self->core_steps[t] != (int64_t)v) {
                int s = adamcore_optimizer_set_tensor_step(self->handle, t, (int64_t)v);
                if (s != ADAMCORE_OK) { raise_status(s); goto done; }
                self->core_steps[t] = (int64_t)v;
            }
        } else if (self->core_steps[t] < 0) {
            int s = adamcore_optimizer_get_tensor_step(self->handle, t, &self->core_steps[t]);
            if (s != ADAMCORE_OK) { raise_status(s); goto done; }
        }
    }

    self->busy = 1;
    RELEASE_GIL_AND(adamcore_optimizer_step_tensors(self->handle, self->step_list, self->grad_pointers, (size_t)m,
                                                    &options), status);
    self->busy = 0;
    if (status == ADAMCORE_OK) {
        for (Py_ssize_t j = 0; j < m; j++) {
            const size_t t = self->step_list[j];
            const int64_t was = self->core_steps[t];
            self->core_steps[t] = was + 1;
            if (have_steps && steps_f64) ((double *)steps_view.buf)[t] = (double)(was + 1);
            else if (have_steps) ((float *)steps_view.buf)[t] = (float)(was + 1);
            if (was == 0 && append_index(&first, (Py_ssize_t)t) != 0) goto done;
        }
        result = Py_BuildValue("(iO)", 1, first ? first : Py_None);
    } else if (status == ADAMCORE_STEP_SKIPPED) {
        result = Py_BuildValue("(iO)", 0, Py_None);
    } else {
        raise_status(status);
    }
done:
    for (Py_ssize_t j = 0; j < m; j++) Py_DECREF(self->torch.grads[j]);
    if (have_steps) PyBuffer_Release(&steps_view);
    Py_XDECREF(moved);
    Py_XDECREF(first);
    return result;
}
