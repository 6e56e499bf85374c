/* facts.c: the batch pass of `textclean.batch.analyze`, one loop a text.
 *
 * The numpy form in batch.py is the reference (and what runs when this module was not built);
 * tests/test_speedups.py compares the two on random text. What each text gets, from one byte of
 * classes per code point (the table batch.py builds from the rules' own patterns):
 *   runs   - (lo, hi) around each chain of 10 digits or more whose consecutive digits stand at
 *            most two visible separators apart with only separators and invisible marks between,
 *            widened by one character each side (within the text);
 *   latin  - (lo, hi) of each whitespace-delimited token holding an ASCII letter;
 *   arabic, other, arabic_head, other_head - letter counts in the text and in its first `head`
 *            characters.
 */
#include "speedups.h"

enum { DIGIT = 1, VISIBLE_SEP = 2, INVISIBLE = 4, ARABIC = 8, OTHER = 16, ASCII = 32, SPACE = 64 };

typedef struct {
    Py_ssize_t *v;
    Py_ssize_t n, cap;
} Spans;

static int spans_add(Spans *s, Py_ssize_t lo, Py_ssize_t hi) {
    if (s->n + 2 > s->cap) {
        Py_ssize_t cap = s->cap ? 2 * s->cap : 64;
        Py_ssize_t *v = PyMem_Realloc(s->v, cap * sizeof(Py_ssize_t));
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = lo;
    s->v[s->n++] = hi;
    return 0;
}

static PyObject *spans_tuple(const Spans *s) {
    Py_ssize_t pairs = s->n / 2;
    PyObject *t = PyTuple_New(pairs);
    if (!t) return NULL;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        PyObject *pair = Py_BuildValue("(nn)", s->v[2 * i], s->v[2 * i + 1]);
        if (!pair) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, pair);
    }
    return t;
}

/* The loop over one text's characters, for one storage kind (`T`: its code unit). */
#define SCAN_LOOP(T)                                                                                  \
    do {                                                                                              \
        const T *p = (const T *)data;                                                                 \
        for (Py_ssize_t i = 0; i < n; i++) {                                                          \
            unsigned char cl = table[p[i]];                                                           \
            if (cl == ARABIC) { /* most characters: a Persian letter */                              \
                arabic++;                                                                             \
                arabic_head += i < head;                                                              \
                broken = 1;                                                                           \
                continue;                                                                             \
            }                                                                                         \
            if (cl & DIGIT) {                                                                         \
                if (chain && !broken && vis <= 2) {                                                   \
                    chain++;                                                                          \
                } else {                                                                              \
                    if (chain >= 10 && spans_add(runs, first ? first - 1 : 0, last + 2 < n ? last + 2 : n) < 0) \
                        return NULL;                                                                  \
                    chain = 1;                                                                        \
                    first = i;                                                                        \
                }                                                                                     \
                last = i;                                                                             \
                vis = 0;                                                                              \
                broken = 0;                                                                           \
            } else if (cl & VISIBLE_SEP) {                                                            \
                vis++;                                                                                \
            } else if (!(cl & INVISIBLE)) {                                                           \
                broken = 1;                                                                           \
            }                                                                                         \
            if (cl & SPACE) {                                                                         \
                if (tok_ascii && spans_add(latin, tok_start, i) < 0) return NULL;                     \
                tok_start = i + 1;                                                                    \
                tok_ascii = 0;                                                                        \
            } else if (cl & ASCII) {                                                                  \
                tok_ascii = 1;                                                                        \
            }                                                                                         \
            if (cl & ARABIC) {                                                                        \
                arabic++;                                                                             \
                arabic_head += i < head;                                                              \
            } else if (cl & OTHER) {                                                                  \
                other++;                                                                              \
                other_head += i < head;                                                               \
            }                                                                                         \
        }                                                                                             \
    } while (0)

/* One text's facts as a `type` (a 6-tuple), or NULL with an exception set. */
static PyObject *text_facts(PyTypeObject *type, PyObject *text, Py_ssize_t head, const unsigned char *table,
                            Spans *runs, Spans *latin) {
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t arabic = 0, other = 0, arabic_head = 0, other_head = 0;
    /* the digit chain under way: its digit count, first and last digit, the visible separators
       since its last digit, and whether anything else stood there */
    Py_ssize_t chain = 0, first = 0, last = 0, vis = 0;
    int broken = 0;
    Py_ssize_t tok_start = 0;
    int tok_ascii = 0;
    runs->n = latin->n = 0;
    if (head > n) head = n;
    if (kind == PyUnicode_1BYTE_KIND)
        SCAN_LOOP(Py_UCS1);
    else if (kind == PyUnicode_2BYTE_KIND)
        SCAN_LOOP(Py_UCS2);
    else
        SCAN_LOOP(Py_UCS4);
    if (chain >= 10 && spans_add(runs, first ? first - 1 : 0, last + 2 < n ? last + 2 : n) < 0) return NULL;
    if (tok_ascii && spans_add(latin, tok_start, n) < 0) return NULL;
    PyObject *r = runs->n ? spans_tuple(runs) : PyTuple_New(0);
    if (!r) return NULL;
    PyObject *l = latin->n ? spans_tuple(latin) : PyTuple_New(0);
    if (!l) {
        Py_DECREF(r);
        return NULL;
    }
    /* an instance of `type` (a tuple subclass without a __dict__, as a NamedTuple is), filled in
       place as tuple.__new__(type, ...) would fill it */
    PyObject *f = type->tp_alloc(type, 6);
    if (!f) {
        Py_DECREF(r);
        Py_DECREF(l);
        return NULL;
    }
    PyTuple_SET_ITEM(f, 0, r);
    PyTuple_SET_ITEM(f, 1, l);
    Py_ssize_t counts[4] = {arabic, other, arabic_head, other_head};
    for (int k = 0; k < 4; k++) {
        PyObject *v = PyLong_FromSsize_t(counts[k]);
        if (!v) {
            Py_DECREF(f);
            return NULL;
        }
        PyTuple_SET_ITEM(f, 2 + k, v);
    }
    return f;
}

const char pd_facts_doc[] =
"facts(type, texts, head, table16, table_full) -> list of `type`, or None\n\n"
"The facts of each text (see textclean.batch), as instances of `type` (a 6-field NamedTuple). table16: one byte of classes for each code point\n"
"below U+10000; table_full: the same for every code point, or None: then None is returned when a\n"
"text holds a character above U+FFFF (the caller builds the full table and asks again).";

PyObject *pd_facts(PyObject *self, PyObject *args) {
    PyObject *texts, *full;
    PyTypeObject *type;
    Py_ssize_t head;
    Py_buffer t16, tfull = {0};
    if (!PyArg_ParseTuple(args, "O!O!ny*O", &PyType_Type, &type, &PyList_Type, &texts, &head, &t16, &full))
        return NULL;
    PyObject *out = NULL;
    Spans runs = {0}, latin = {0};
    if (!PyType_IsSubtype(type, &PyTuple_Type) || type->tp_dictoffset || type->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_SetString(PyExc_TypeError, "type must be a tuple subclass with no instance dict (a NamedTuple)");
        goto done;
    }
    if (t16.len < 0x10000) {
        PyErr_SetString(PyExc_ValueError, "table16 must cover U+0000-U+FFFF");
        goto done;
    }
    if (full != Py_None) {
        if (PyObject_GetBuffer(full, &tfull, PyBUF_SIMPLE) < 0) goto done;
        if (tfull.len < 0x110000) {
            PyErr_SetString(PyExc_ValueError, "table_full must cover every code point");
            goto done;
        }
    }
    Py_ssize_t count = PyList_GET_SIZE(texts);
    out = PyList_New(count);
    if (!out) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = PyList_GET_ITEM(texts, i);
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "facts() wants str items, got %.50s", Py_TYPE(text)->tp_name);
            Py_CLEAR(out);
            goto done;
        }
        const unsigned char *table = t16.buf;
        if (PyUnicode_KIND(text) == PyUnicode_4BYTE_KIND) {
            if (full == Py_None) {
                Py_CLEAR(out);
                out = Py_None;
                Py_INCREF(out);
                goto done;
            }
            table = tfull.buf;
        }
        PyObject *f = text_facts(type, text, head, table, &runs, &latin);
        if (!f) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, f);
    }
done:
    PyMem_Free(runs.v);
    PyMem_Free(latin.v);
    PyBuffer_Release(&t16);
    if (tfull.obj) PyBuffer_Release(&tfull);
    return out;
}

