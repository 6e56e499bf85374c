/* jsonout.c: JSON text exactly as orjson.dumps writes it (compact, UTF-8, keys in order), from
   fixed fragments and values interleaved: the shard formats' per-sample documents (see
   shards/formats.py, whose Python form stays the reference). A value it cannot write exactly as
   orjson would (a float orjson writes in another notation, an int beyond 64 bits, a lone
   surrogate, a type orjson.loads never gives) makes it return None: the caller then takes the
   Python form, which writes the same bytes or raises orjson's own error. */
#include "speedups.h"
#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_DEPTH 64 /* deeper values go to the Python form */

/* What is written so far: in `stack` (the caller's) until it outgrows it, then on the heap. */
typedef struct {
    char *buf, *stack;
    Py_ssize_t len, cap;
} Out;

enum { DONE = 0, FAILED = -1, FALL_BACK = -2 };

static int grow(Out *o, Py_ssize_t n) {
    if (o->len + n <= o->cap) return DONE;
    Py_ssize_t cap = 2 * o->cap;
    while (cap < o->len + n) cap *= 2;
    char *b = o->buf == o->stack ? PyMem_Malloc(cap) : PyMem_Realloc(o->buf, cap);
    if (!b) {
        PyErr_NoMemory();
        return FAILED;
    }
    if (o->buf == o->stack) memcpy(b, o->buf, o->len);
    o->buf = b;
    o->cap = cap;
    return DONE;
}

static int put(Out *o, const char *s, Py_ssize_t n) {
    if (grow(o, n) < 0) return FAILED;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return DONE;
}

/* The length of the run at the start of u[0..n) that needs no escape (no `"`, `\`, control). */
static Py_ssize_t plain_run(const unsigned char *u, Py_ssize_t n) {
    Py_ssize_t i = 0;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x1f);
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(u + i));
        __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                   _mm_cmpeq_epi8(_mm_min_epu8(x, space), x)); /* x <= 0x1f, unsigned */
        int mask = _mm_movemask_epi8(bad);
        if (mask) return i + __builtin_ctz(mask);
    }
#endif
    while (i < n && u[i] >= 0x20 && u[i] != '"' && u[i] != '\\') i++;
    return i;
}

/* A str as orjson quotes it: `"` and `\` escaped, \b \t \n \f \r, other controls as \u00xx, the
   rest as its UTF-8 bytes. */
static int put_str(Out *o, PyObject *s) {
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t n;
    const unsigned char *u = (const unsigned char *)PyUnicode_AsUTF8AndSize(s, &n);
    if (!u) {
        PyErr_Clear();
        return FALL_BACK;
    }
    if (grow(o, 6 * n + 2) < 0) return FAILED;
    char *p = o->buf + o->len;
    *p++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t run = plain_run(u + i, n - i);
        memcpy(p, u + i, run);
        p += run;
        i += run;
        if (i == n) break;
        unsigned char c = u[i];
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\b': *p++ = 'b'; break;
        case '\t': *p++ = 't'; break;
        case '\n': *p++ = 'n'; break;
        case '\f': *p++ = 'f'; break;
        case '\r': *p++ = 'r'; break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p++ = '"';
    o->len = p - o->buf;
    return DONE;
}

/* A long long in decimal, as orjson writes an int. */
static int put_int(Out *o, long long v) {
    char text[24], *end = text + sizeof text, *p = end;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return put(o, p, end - p);
}

static int put_value(Out *o, PyObject *v, int depth);

/* `"key":value` for every item of a dict whose key is not in `skip` (NULL: none skipped), each
   after a comma unless it is the first and `first` says so. */
static int put_items(Out *o, PyObject *d, PyObject *skip, int first, int depth) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) return FALL_BACK;
        if (skip) {
            int skipped = PySet_Contains(skip, key);
            if (skipped < 0) return FAILED;
            if (skipped) continue;
        }
        if (!first && put(o, ",", 1) < 0) return FAILED;
        first = 0;
        int r = put_str(o, key);
        if (r < 0) return r;
        if (put(o, ":", 1) < 0) return FAILED;
        if ((r = put_value(o, value, depth + 1)) < 0) return r;
    }
    return DONE;
}

static int put_value(Out *o, PyObject *v, int depth) {
    if (depth > MAX_DEPTH) return FALL_BACK;
    if (v == Py_None) return put(o, "null", 4);
    if (v == Py_True) return put(o, "true", 4);
    if (v == Py_False) return put(o, "false", 5);
    if (PyUnicode_CheckExact(v)) return put_str(o, v);
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) return FALL_BACK; /* orjson writes up to 2**64 - 1; the Python form knows */
        if (n == -1 && PyErr_Occurred()) return FAILED;
        return put_int(o, n);
    }
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) return FALL_BACK;
        /* repr's shortest round trip; orjson writes the same digits, but its exponent notation
           differs from repr's (1e-5 vs 1e-05, 1e-7 vs 1e-07): those go to the Python form. The
           last one is kept: a Shar cut holds its duration three times. (Under the GIL.) */
        static double last = 0.0;
        static char last_text[32] = "0.0";
        static Py_ssize_t last_len = 3;
        if (memcmp(&d, &last, sizeof d) != 0) {
            char *text = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (!text) return FAILED;
            size_t len = strlen(text);
            int exponent = strchr(text, 'e') != NULL;
            if (!exponent && len < sizeof last_text) {
                memcpy(last_text, text, len);
                last_len = (Py_ssize_t)len;
                last = d;
            }
            PyMem_Free(text);
            if (exponent || len >= sizeof last_text) return FALL_BACK;
        }
        return put(o, last_text, last_len);
    }
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        PyObject *seq = v;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (put(o, "[", 1) < 0) return FAILED;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i && put(o, ",", 1) < 0) return FAILED;
            int r = put_value(o, PySequence_Fast_GET_ITEM(seq, i), depth + 1);
            if (r < 0) return r;
        }
        return put(o, "]", 1);
    }
    if (PyDict_CheckExact(v)) {
        if (put(o, "{", 1) < 0) return FAILED;
        int r = put_items(o, v, NULL, 1, depth);
        if (r < 0) return r;
        return put(o, "}", 1);
    }
    return FALL_BACK;
}

const char pd_render_doc[] =
    "render(fragments, values, skip, rest) -> bytes or None\n\n"
    "fragments[0] + J(values[0]) + fragments[1] + ... + J(values[-1]) + R + fragments[-1], where J\n"
    "is orjson.dumps of a value (a bytes value is put as it is) and R is `,\"key\":J(value)` for\n"
    "each item of the dict `rest` whose key is not in the set `skip`. None when a value is one it\n"
    "cannot write exactly as orjson would (the caller's Python form then writes it).";

/* The C form of `render` for this extension's own callers (shardplan.c): `values` a C array of
   `n` values, `fragments` a tuple of n + 1 bytes, `rest` a dict, or bytes already written as
   `,"key":value...` (put as they are: manifestline.c), or NULL. */
PyObject *pd_render_values(PyObject *fragments, PyObject *const *values, Py_ssize_t n, PyObject *skip,
                           PyObject *rest) {
    if (PyTuple_GET_SIZE(fragments) != n + 1) {
        PyErr_SetString(PyExc_ValueError, "render: one fragment more than values");
        return NULL;
    }
    char first[1024];
    Out o = {first, first, 0, sizeof first};
    int r = DONE;
    for (Py_ssize_t i = 0; i <= n && r == DONE; i++) {
        PyObject *fragment = PyTuple_GET_ITEM(fragments, i);
        if (!PyBytes_CheckExact(fragment)) {
            PyErr_SetString(PyExc_TypeError, "render: fragments must be bytes");
            r = FAILED;
            break;
        }
        if (i == n && rest &&
            (r = PyBytes_CheckExact(rest) ? put(&o, PyBytes_AS_STRING(rest), PyBytes_GET_SIZE(rest))
                                          : put_items(&o, rest, skip, 0, 0)) < 0)
            break;
        r = put(&o, PyBytes_AS_STRING(fragment), PyBytes_GET_SIZE(fragment));
        if (r < 0 || i == n) break;
        PyObject *value = values[i];
        r = PyBytes_CheckExact(value) ? put(&o, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
                                      : put_value(&o, value, 0);
    }
    PyObject *result = NULL;
    if (r == DONE)
        result = PyBytes_FromStringAndSize(o.buf, o.len);
    else if (r == FALL_BACK)
        result = Py_NewRef(Py_None);
    if (o.buf != first) PyMem_Free(o.buf);
    return result;
}

PyObject *pd_render(PyObject *self, PyObject *args) {
    PyObject *fragments, *values, *skip, *rest;
    if (!PyArg_ParseTuple(args, "O!O!OO!", &PyTuple_Type, &fragments, &PyTuple_Type, &values, &skip, &PyDict_Type,
                          &rest))
        return NULL;
    if (!PyAnySet_Check(skip)) {
        PyErr_SetString(PyExc_TypeError, "render: skip must be a set or frozenset");
        return NULL;
    }
    return pd_render_values(fragments, &PyTuple_GET_ITEM(values, 0), PyTuple_GET_SIZE(values), skip, rest);
}
