/*
 * adamcore._core: buffers. Argument buffers (the buffer protocol, C-contiguous), their dtypes and the errors that
 * name the argument that failed.
 */
#include "_core.h"

#include <structmember.h>
#include <string.h>

/* Element type of a buffer format: ADAMCORE_FLOAT32, ADAMCORE_FLOAT64, or 0. Accepts native and '=' / '<' on
 * little-endian machines, as numpy and array.array report them. */
int dtype_of(const Py_buffer *view) {
    const char *f = view->format ? view->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    if (f[0] == 'f' && f[1] == 0 && view->itemsize == 4) return ADAMCORE_FLOAT32;
    if (f[0] == 'd' && f[1] == 0 && view->itemsize == 8) return ADAMCORE_FLOAT64;
    return 0;
}

/* Whether a buffer can hold elements of `dtype`: float32 and float64 by their formats; binary16 as numpy's
 * float16 ('e') or as raw 16-bit integers; bfloat16, which has no buffer format (ml_dtypes' arrays refuse to
 * export one), as raw 16-bit integers (adamcore's Python layer passes `array.view(numpy.uint16)`). */
int fits(const Py_buffer *view, int dtype) {
    if (dtype == ADAMCORE_FLOAT32 || dtype == ADAMCORE_FLOAT64) return dtype_of(view) == dtype;
    if (dtype != ADAMCORE_FLOAT16 && dtype != ADAMCORE_BFLOAT16) return 0;
    const char *f = view->format ? view->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    if (view->itemsize != 2 || f[1] != 0) return 0;
    return f[0] == 'H' || f[0] == 'h' || (f[0] == 'e' && dtype == ADAMCORE_FLOAT16);
}

size_t dtype_size(int dtype) { return dtype == ADAMCORE_FLOAT64 ? 8 : dtype == ADAMCORE_FLOAT32 ? 4 : 2; }

const char *dtype_name(int dtype) {
    switch (dtype) {
    case ADAMCORE_FLOAT32: return "float32";
    case ADAMCORE_FLOAT64: return "float64";
    case ADAMCORE_FLOAT16: return "float16";
    case ADAMCORE_BFLOAT16: return "bfloat16";
    default: return "unknown";
    }
}

/* A C-contiguous buffer of `obj` that fits `dtype` (see fits), writable if asked; -1 with an exception naming the
 * argument otherwise. */
int get_typed_buffer(PyObject *obj, Py_buffer *view, int writable, int dtype, const char *what, Py_ssize_t index) {
    if (dtype == ADAMCORE_FLOAT32 || dtype == ADAMCORE_FLOAT64) {
        if (get_buffer(obj, view, writable, what, index) != 0) return -1;
    } else if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) != 0) {
        return -1;
    }
    if (fits(view, dtype)) return 0;
    PyErr_Format(PyExc_TypeError, "%s[%zd]: dtype must be %s (as registered), got format '%s' (itemsize %zd)", what,
                 index, dtype_name(dtype), view->format ? view->format : "B", view->itemsize);
    PyBuffer_Release(view);
    return -1;
}

/* The argument's name for messages, e.g. "grads[3]"; built only on error paths (snprintf is not cheap). */
static const char *label_of(char *out, size_t size, const char *what, Py_ssize_t index) {
    if (index >= 0) snprintf(out, size, "%s[%zd]", what, index);
    else snprintf(out, size, "%s", what);
    return out;
}

/* Get a C-contiguous float32/float64 buffer of `obj`, writable if asked; on failure set a TypeError or ValueError
 * that names the argument (`what`, `index` >= 0 appends [index]) and return -1. */
int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what, Py_ssize_t index) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) == 0) {
        if (dtype_of(view)) return 0;
        char label[64];
        PyErr_Format(PyExc_TypeError, "%s: dtype must be float32 or float64, got format '%s' (itemsize %zd)",
                     label_of(label, sizeof label, what, index), view->format ? view->format : "B", view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    /* Say which property failed: ask again for less. */
    char label[64];
    label_of(label, sizeof label, what, index);
    PyErr_Clear();
    Py_buffer probe;
    if (!PyObject_CheckBuffer(obj) || PyObject_GetBuffer(obj, &probe, PyBUF_FULL_RO) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an array of float32 or float64 (buffer protocol), got %.100s",
                     label, Py_TYPE(obj)->tp_name);
        return -1;
    }
    int contiguous = PyBuffer_IsContiguous(&probe, 'C'), readonly = probe.readonly;
    PyBuffer_Release(&probe);
    if (!contiguous) PyErr_Format(PyExc_ValueError, "%s: the array must be C-contiguous", label);
    else if (writable && readonly) PyErr_Format(PyExc_ValueError, "%s: the array is read-only; it must be writable", label);
    else PyErr_Format(PyExc_TypeError, "%s: unsupported buffer", label);
    return -1;
}

size_t element_count(const Py_buffer *view) { return (size_t)(view->len / view->itemsize); }
