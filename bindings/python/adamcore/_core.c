/*
 * adamcore._core: the CPython shim over libadamcore. It converts and validates arguments, releases the GIL around
 * every kernel, and turns statuses into exceptions. No update rule lives here.
 *
 * This file is the module (its functions, constants and the exception type); _buffers.c, _config.c, _stateless.c,
 * _optimizer.c and _torch.c hold the rest, _core.h what they share.
 */
#include "_core.h"

#include <structmember.h>
#include <string.h>

PyObject *AdamCoreError; /* ValueError subclass carrying .status and .name */
#ifdef ADAMCORE_TEST_HOOKS
int gil_held_in_last_kernel = -1;
#endif

/* Raise the exception for a core status; returns NULL for convenient `return raise_status(s)`. */
PyObject *raise_status(int status) {
    if (status == ADAMCORE_E_NO_MEMORY) return PyErr_NoMemory();
    PyObject *args = Py_BuildValue("(s)", adamcore_strerror(status));
    if (!args) return NULL;
    PyObject *exc = PyObject_Call(AdamCoreError, args, NULL);
    Py_DECREF(args);
    if (!exc) return NULL;
    PyObject *code = PyLong_FromLong(status), *name = PyUnicode_FromString(adamcore_status_name(status));
    if (code && name && PyObject_SetAttrString(exc, "status", code) == 0 && PyObject_SetAttrString(exc, "name", name) == 0)
        PyErr_SetObject(AdamCoreError, exc);
    Py_XDECREF(code);
    Py_XDECREF(name);
    Py_DECREF(exc);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Module
 * ---------------------------------------------------------------------------------------------------------- */

/* advise(config, dtype) -> [(code, severity, value, message)] */
static PyObject *module_advise(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    (void)m;
    if (nargs != 2) { PyErr_SetString(PyExc_TypeError, "advise(config, dtype)"); return NULL; }
    const adamcore_config *c = as_config(args[0], "config");
    if (!c) return NULL;
    int dtype = PyLong_AsLong(args[1]);
    if (dtype == -1 && PyErr_Occurred()) return NULL;
    adamcore_advice advice[16];
    size_t count = 0;
    int status = adamcore_advise(c, dtype, advice, 16, &count);
    if (status != ADAMCORE_OK) return raise_status(status);
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (size_t i = 0; i < count && i < 16; i++) {
        PyObject *item = Py_BuildValue("(iids)", advice[i].code, advice[i].severity, advice[i].value, advice[i].message);
        if (!item || PyList_Append(list, item) != 0) { Py_XDECREF(item); Py_DECREF(list); return NULL; }
        Py_DECREF(item);
    }
    return list;
}

static PyObject *module_status_name(PyObject *m, PyObject *code) {
    (void)m;
    long c = PyLong_AsLong(code);
    if (c == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(adamcore_status_name((int)c));
}
static PyObject *module_set_num_threads(PyObject *m, PyObject *arg) {
    (void)m;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    int status = (n < INT32_MIN || n > INT32_MAX) ? ADAMCORE_E_THREADS : adamcore_set_num_threads((int)n);
    if (status != ADAMCORE_OK) return raise_status(status);
    Py_RETURN_NONE;
}
static PyObject *module_get_num_threads(PyObject *m, PyObject *unused) {
    (void)m; (void)unused;
    int n = 1;
    adamcore_get_num_threads(&n);
    return PyLong_FromLong(n);
}
#ifdef ADAMCORE_TEST_HOOKS
static PyObject *module_gil_held(PyObject *m, PyObject *unused) {
    (void)m; (void)unused;
    int held = gil_held_in_last_kernel;
    gil_held_in_last_kernel = -1; /* read and clear: each read proves a new record */
    return PyLong_FromLong(held);
}
#endif

static PyMethodDef module_methods[] = {
    {"step", (PyCFunction)(void (*)(void))stateless_step, METH_FASTCALL,
     "step(config, t, param, grad, *state): one in-place step (not AdaFix); state in Config.state_names order"},
    {"adafix_step", (PyCFunction)(void (*)(void))stateless_adafix_step, METH_FASTCALL,
     "adafix_step(config, t, param, grad, exp_avg, exp_avg_sq, lipschitz) -> (max_abs_grad, step_norm_sq, v_updated)"},
    {"adafix_lipschitz", (PyCFunction)(void (*)(void))stateless_adafix_lipschitz, METH_FASTCALL,
     "adafix_lipschitz(grad, new_grad, step_norm_sq, lipschitz) -> raised estimate"},
    {"status_name", (PyCFunction)module_status_name, METH_O, "status_name(code) -> 'ADAMCORE_E_...'"},
    {"advise", (PyCFunction)(void (*)(void))module_advise, METH_FASTCALL,
     "advise(config, dtype) -> [(code, severity, value, message)]"},
    {"set_num_threads", (PyCFunction)module_set_num_threads, METH_O,
     "set_num_threads(n): threads per step, process-wide; 0 restores the default (ADAMCORE_NUM_THREADS or the CPUs)"},
    {"get_num_threads", (PyCFunction)module_get_num_threads, METH_NOARGS, "get_num_threads() -> the thread count in force"},
#ifdef ADAMCORE_TEST_HOOKS
    {"_gil_held_in_last_kernel", (PyCFunction)module_gil_held, METH_NOARGS,
     "PyGILState_Check() recorded inside the last released region (0: released), -1 if none since the last read"},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "adamcore._core", "CPython shim over libadamcore (see adamcore.h).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (config_type_ready() < 0 || optimizer_types_ready() < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    AdamCoreError = PyErr_NewExceptionWithDoc("adamcore.AdamCoreError",
                                              "An adamcore status: .status (negative code) and .name (ADAMCORE_E_...).",
                                              PyExc_ValueError, NULL);
    if (!AdamCoreError || PyModule_AddObjectRef(m, "AdamCoreError", AdamCoreError) < 0 ||
        PyModule_AddObjectRef(m, "Config", (PyObject *)&ConfigType) < 0 ||
        PyModule_AddObjectRef(m, "Optimizer", (PyObject *)&OptimizerType) < 0 ||
        PyModule_AddObjectRef(m, "StepStatsFields", (PyObject *)StatsType) < 0 ||
        PyModule_AddStringConstant(m, "library_version", adamcore_version_string()) < 0 ||
        PyModule_AddStringConstant(m, "header_version", ADAMCORE_VERSION_STRING) < 0 ||
        PyModule_AddIntConstant(m, "active_isa", adamcore_active_isa()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    static const struct { const char *name; long value; } constants[] = {
        {"ADAM", ADAMCORE_ADAM}, {"ADAFIX", ADAMCORE_ADAFIX}, {"SGD", ADAMCORE_SGD}, {"RMSPROP", ADAMCORE_RMSPROP},
        {"ADAGRAD", ADAMCORE_ADAGRAD}, {"FLOAT32", ADAMCORE_FLOAT32}, {"FLOAT64", ADAMCORE_FLOAT64},
        {"FLOAT16", ADAMCORE_FLOAT16}, {"BFLOAT16", ADAMCORE_BFLOAT16},
        {"FLAG_MAXIMIZE", ADAMCORE_FLAG_MAXIMIZE}, {"FLAG_AMSGRAD", ADAMCORE_FLAG_AMSGRAD},
        {"FLAG_AMSGRAD_OPTAX_ORDER", ADAMCORE_FLAG_AMSGRAD_OPTAX_ORDER},
        {"FLAG_DECOUPLED_WEIGHT_DECAY", ADAMCORE_FLAG_DECOUPLED_WEIGHT_DECAY},
        {"FLAG_NO_BIAS_CORRECTION", ADAMCORE_FLAG_NO_BIAS_CORRECTION}, {"FLAG_NESTEROV", ADAMCORE_FLAG_NESTEROV},
        {"FLAG_CENTERED", ADAMCORE_FLAG_CENTERED}, {"FLAG_ADAFIX_NEXT_GRADIENT", ADAMCORE_FLAG_ADAFIX_NEXT_GRADIENT},
        {"TENSOR_MASTER_WEIGHTS", ADAMCORE_TENSOR_MASTER_WEIGHTS},
        {"TENSOR_STOCHASTIC_PARAM", ADAMCORE_TENSOR_STOCHASTIC_PARAM},
        {"TENSOR_STOCHASTIC_STATE", ADAMCORE_TENSOR_STOCHASTIC_STATE},
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) { Py_DECREF(m); return NULL; }
    }
    return m;
}
