/*
 * adamcore._core: the stateless steps (adamcore.functional). Each call borrows its buffers for the call only.
 */
#include "_core.h"

/* step(config, t, param, grad, state0=None, state1=None, state2=None): one in-place step of any algorithm but
 * AdaFix. The state buffers are the config's slots in order (Config.state_names). */
PyObject *stateless_step(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs < 4 || nargs > 7) {
        PyErr_SetString(PyExc_TypeError, "step(config, t, param, grad, *state) takes 4 to 7 arguments");
        return NULL;
    }
    const adamcore_config *c = as_config(args[0], "config");
    if (!c) return NULL;
    long long t = PyLong_AsLongLong(args[1]);
    if (t == -1 && PyErr_Occurred()) return NULL;
    size_t slots = ((ConfigObject *)args[0])->state_count;
    if ((size_t)(nargs - 4) != slots) {
        return PyErr_Format(PyExc_TypeError, "this config needs %zu state buffers (Config.state_names), got %zd", slots,
                            nargs - 4);
    }
    Py_buffer views[6];
    int held = 0;
    static const char *names[] = {"param", "grad", "state[0]", "state[1]", "state[2]"};
    for (Py_ssize_t i = 2; i < nargs; i++, held++) {
        if (get_buffer(args[i], &views[held], i != 3, names[i - 2], -1) != 0) goto fail;
        if (held > 0 && dtype_of(&views[held]) != dtype_of(&views[0])) {
            PyErr_Format(PyExc_TypeError, "%s: dtype differs from param's", names[i - 2]);
            held++;
            goto fail;
        }
        if (held > 0 && views[held].len != views[0].len) {
            PyErr_Format(PyExc_ValueError, "%s: length %zu differs from param's %zu", names[i - 2],
                         element_count(&views[held]), element_count(&views[0]));
            held++;
            goto fail;
        }
    }
    /* The slots go to the library as they are: the config's order is the C API's too (no unpacking here). */
    void *s[3] = {NULL, NULL, NULL};
    for (size_t k = 0; k < slots; k++) s[k] = views[2 + k].buf;
    adamcore_tensor_desc desc;
    ADAMCORE_TENSOR_DESC_INIT(&desc);
    desc.param_dtype = desc.grad_dtype = desc.state_dtype = dtype_of(&views[0]);
    desc.count = element_count(&views[0]);
    desc.param = views[0].buf;
    desc.grad = views[1].buf;
    desc.state = s;
    desc.state_count = slots;
    int status;
    Py_BEGIN_ALLOW_THREADS
    RECORD_GIL_STATE();
    status = adamcore_step_desc(c, t, &desc, 0);
    Py_END_ALLOW_THREADS
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    if (status != ADAMCORE_OK) return raise_status(status);
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    return NULL;
}

/* adafix_step(config, t, param, grad, exp_avg, exp_avg_sq, lipschitz) -> (max_abs_grad, step_norm_sq, v_updated) */
PyObject *stateless_adafix_step(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "adafix_step(config, t, param, grad, exp_avg, exp_avg_sq, lipschitz)");
        return NULL;
    }
    const adamcore_config *c = as_config(args[0], "config");
    if (!c) return NULL;
    long long t = PyLong_AsLongLong(args[1]);
    if (t == -1 && PyErr_Occurred()) return NULL;
    double lipschitz = PyFloat_AsDouble(args[6]);
    if (lipschitz == -1.0 && PyErr_Occurred()) return NULL;
    static const char *names[] = {"param", "grad", "exp_avg", "exp_avg_sq"};
    Py_buffer views[4];
    int held = 0;
    for (; held < 4; held++) {
        if (get_buffer(args[2 + held], &views[held], held != 1, names[held], -1) != 0) goto fail;
        if (held > 0 && (dtype_of(&views[held]) != dtype_of(&views[0]) || views[held].len != views[0].len)) {
            PyErr_Format(PyExc_ValueError, "%s: dtype and length must match param's", names[held]);
            held++;
            goto fail;
        }
    }
    adamcore_adafix_result r;
    int status;
    size_t n = element_count(&views[0]);
    if (dtype_of(&views[0]) == ADAMCORE_FLOAT64)
        RELEASE_GIL_AND(adamcore_adafix_step_f64(c, t, n, views[0].buf, views[1].buf, views[2].buf, views[3].buf, lipschitz, &r), status);
    else
        RELEASE_GIL_AND(adamcore_adafix_step_f32(c, t, n, views[0].buf, views[1].buf, views[2].buf, views[3].buf, lipschitz, &r), status);
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    if (status != ADAMCORE_OK) return raise_status(status);
    return Py_BuildValue("(ddO)", r.max_abs_grad, r.step_norm_sq, r.v_updated ? Py_True : Py_False);
fail:
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    return NULL;
}

/* adafix_lipschitz(grad, new_grad, step_norm_sq, lipschitz) -> the raised estimate */
PyObject *stateless_adafix_lipschitz(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "adafix_lipschitz(grad, new_grad, step_norm_sq, lipschitz)");
        return NULL;
    }
    double norm = PyFloat_AsDouble(args[2]);
    if (norm == -1.0 && PyErr_Occurred()) return NULL;
    double lipschitz = PyFloat_AsDouble(args[3]);
    if (lipschitz == -1.0 && PyErr_Occurred()) return NULL;
    Py_buffer a, b;
    if (get_buffer(args[0], &a, 0, "grad", -1) != 0) return NULL;
    if (get_buffer(args[1], &b, 0, "new_grad", -1) != 0) { PyBuffer_Release(&a); return NULL; }
    int status = ADAMCORE_E_DTYPE;
    if (dtype_of(&a) == dtype_of(&b) && a.len == b.len) {
        if (dtype_of(&a) == ADAMCORE_FLOAT64) RELEASE_GIL_AND(adamcore_adafix_lipschitz_f64(element_count(&a), a.buf, b.buf, norm, &lipschitz), status);
        else RELEASE_GIL_AND(adamcore_adafix_lipschitz_f32(element_count(&a), a.buf, b.buf, norm, &lipschitz), status);
    } else {
        PyErr_SetString(PyExc_ValueError, "new_grad: dtype and length must match grad's");
        status = 1;
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    if (status == 1) return NULL;
    if (status != ADAMCORE_OK) return raise_status(status);
    return PyFloat_FromDouble(lipschitz);
}
