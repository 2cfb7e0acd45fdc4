/*
 * adamcore._core: the Config type, an adamcore_config validated by the library when it is made (its fields are
 * read-only afterwards), with its state slot count.
 */
#include "_core.h"

#include <structmember.h>
#include <string.h>

static struct { const char *name; size_t offset; } config_fields[] = {
    {"lr", offsetof(adamcore_config, lr)},
    {"beta1", offsetof(adamcore_config, beta1)},
    {"beta2", offsetof(adamcore_config, beta2)},
    {"eps", offsetof(adamcore_config, eps)},
    {"eps_root", offsetof(adamcore_config, eps_root)},
    {"weight_decay", offsetof(adamcore_config, weight_decay)},
    {"momentum", offsetof(adamcore_config, momentum)},
    {"dampening", offsetof(adamcore_config, dampening)},
    {"alpha", offsetof(adamcore_config, alpha)},
    {"lr_decay", offsetof(adamcore_config, lr_decay)},
    {"initial_accumulator_value", offsetof(adamcore_config, initial_accumulator_value)},
};
enum { CONFIG_FIELD_COUNT = sizeof config_fields / sizeof config_fields[0] };

/* Config(algorithm, flags=0, **fields): torch's defaults for the algorithm, then the given fields; validated. */
static int Config_init(ConfigObject *self, PyObject *args, PyObject *kwargs) {
    int algorithm = 0;
    unsigned long flags = 0;
    if (!PyArg_ParseTuple(args, "i|k:Config", &algorithm, &flags)) return -1;
    int status = adamcore_config_init(&self->config, algorithm);
    if (status != ADAMCORE_OK) { raise_status(status); return -1; }
    if (flags > 0xFFFFFFFFul) { raise_status(ADAMCORE_E_FLAGS); return -1; }
    self->config.flags = (uint32_t)flags;
    if (kwargs) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwargs, &pos, &key, &value)) {
            const char *name = PyUnicode_AsUTF8(key);
            if (!name) return -1;
            int found = 0;
            for (int i = 0; i < CONFIG_FIELD_COUNT; i++) {
                if (strcmp(name, config_fields[i].name) != 0) continue;
                double x = PyFloat_AsDouble(value);
                if (x == -1.0 && PyErr_Occurred()) {
                    PyErr_Format(PyExc_TypeError, "%s must be a real number, not %.100s", name, Py_TYPE(value)->tp_name);
                    return -1;
                }
                *(double *)((char *)&self->config + config_fields[i].offset) = x;
                found = 1;
            }
            if (!found) { PyErr_Format(PyExc_TypeError, "Config got an unexpected field '%s'", name); return -1; }
        }
    }
    status = adamcore_config_validate(&self->config);
    if (status == ADAMCORE_OK) status = adamcore_config_state_count(&self->config, &self->state_count);
    if (status != ADAMCORE_OK) { raise_status(status); return -1; }
    return 0;
}

static PyObject *Config_get_field(ConfigObject *self, void *closure) {
    return PyFloat_FromDouble(*(double *)((char *)&self->config + (size_t)closure));
}
static PyObject *Config_algorithm(ConfigObject *self, void *c) { (void)c; return PyLong_FromLong(self->config.algorithm); }
static PyObject *Config_flags(ConfigObject *self, void *c) { (void)c; return PyLong_FromUnsignedLong(self->config.flags); }
static PyObject *Config_state_names(ConfigObject *self, void *c) {
    (void)c;
    PyObject *names = PyTuple_New((Py_ssize_t)self->state_count);
    for (size_t i = 0; names && i < self->state_count; i++) {
        const char *name = NULL;
        adamcore_config_state_name(&self->config, i, &name);
        PyObject *s = PyUnicode_FromString(name);
        if (!s) { Py_DECREF(names); return NULL; }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, s);
    }
    return names;
}

static PyGetSetDef Config_getset[CONFIG_FIELD_COUNT + 4];

static PyObject *Config_repr(ConfigObject *self) {
    char text[512];
    const adamcore_config *c = &self->config;
    snprintf(text, sizeof text,
             "Config(%d, flags=%u, lr=%g, beta1=%g, beta2=%g, eps=%g, eps_root=%g, weight_decay=%g, momentum=%g, "
             "dampening=%g, alpha=%g, lr_decay=%g, initial_accumulator_value=%g)",
             c->algorithm, c->flags, c->lr, c->beta1, c->beta2, c->eps, c->eps_root, c->weight_decay, c->momentum,
             c->dampening, c->alpha, c->lr_decay, c->initial_accumulator_value);
    return PyUnicode_FromString(text);
}

PyTypeObject ConfigType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "adamcore._core.Config",
    .tp_doc = "Config(algorithm, flags=0, **fields): validated hyperparameters (adamcore_config).",
    .tp_basicsize = sizeof(ConfigObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Config_init,
    .tp_getset = Config_getset,
    .tp_repr = (reprfunc)Config_repr,
};

const adamcore_config *as_config(PyObject *obj, const char *what) {
    if (!PyObject_TypeCheck(obj, &ConfigType)) {
        PyErr_Format(PyExc_TypeError, "%s must be an adamcore Config, not %.100s", what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return &((ConfigObject *)obj)->config;
}

/* Fill the getters from config_fields and ready the type (module init). */
int config_type_ready(void) {
    for (int i = 0; i < CONFIG_FIELD_COUNT; i++)
        Config_getset[i] = (PyGetSetDef){(char *)config_fields[i].name, (getter)Config_get_field, NULL, NULL,
                                         (void *)config_fields[i].offset};
    Config_getset[CONFIG_FIELD_COUNT] = (PyGetSetDef){"algorithm", (getter)Config_algorithm, NULL, NULL, NULL};
    Config_getset[CONFIG_FIELD_COUNT + 1] = (PyGetSetDef){"flags", (getter)Config_flags, NULL, NULL, NULL};
    Config_getset[CONFIG_FIELD_COUNT + 2] = (PyGetSetDef){"state_names", (getter)Config_state_names, NULL, NULL, NULL};
    return PyType_Ready(&ConfigType);
}
