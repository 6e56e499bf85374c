/* planmath.c: shards.plan's and shards.formats' loops over a split's samples: the seeded shuffle,
   the cut by size and what a tar's plan digest hashes. Each gives exactly what its Python form
   gives, or None where it cannot be sure to (the Python form, the reference, then runs). */
#include "speedups.h"
#include <string.h>

#define EXACT_DOUBLE (1LL << 53) /* every int below is a double exactly */

static PyObject *s_members, *s_size, *s_sha256;

static int intern_names(void) {
    if (s_sha256) return 0;
    s_members = PyUnicode_InternFromString("members");
    s_size = PyUnicode_InternFromString("size");
    s_sha256 = PyUnicode_InternFromString("sha256");
    return (s_members && s_size && s_sha256) ? 0 : -1;
}

/* What is being hashed: a buffer handed to the hash object's update when full. */
typedef struct {
    PyObject *update;
    char *data;
    Py_ssize_t used, cap;
} Feed;

/* `update(view of data[:n])`, the view released after the call (no reference to memory that is
   reused or freed can outlive it). */
static int hash_view(PyObject *update, const char *data, Py_ssize_t n) {
    PyObject *view = PyMemoryView_FromMemory((char *)data, n, PyBUF_READ);
    if (!view) return -1;
    PyObject *r = PyObject_CallOneArg(update, view);
    PyObject *released = PyObject_CallMethod(view, "release", NULL);
    Py_DECREF(view);
    Py_XDECREF(released);
    if (!r || !released) {
        Py_XDECREF(r);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int feed_flush(Feed *f) {
    if (!f->used) return 0;
    if (hash_view(f->update, f->data, f->used) < 0) return -1;
    f->used = 0;
    return 0;
}

static int add(Feed *f, const char *data, Py_ssize_t n) {
    if (f->cap - f->used < n && feed_flush(f) < 0) return -1;
    if (n > f->cap) return hash_view(f->update, data, n); /* a member bigger than the buffer */
    memcpy(f->data + f->used, data, n);
    f->used += n;
    return 0;
}

static int add_decimal(Feed *f, long long n) {
    char text[24];
    int len = snprintf(text, sizeof text, "%lld", n);
    return add(f, text, len);
}

/* One sample's part of formats.digest_tar: 1 added, 0 left to the Python form, -1 error. Checked
   before anything is added, so a sample left to the Python form has added nothing. */
static int digest_record(Feed *f, PyObject *sample) {
    PyObject *members = PyObject_GetAttr(sample, s_members), *size = NULL, *sha = NULL;
    int r = 0;
    long long audio_size = 0;
    const char *sha_text = NULL;
    Py_ssize_t sha_len = 0;
    if (!members) return -1;
    if (!PyTuple_CheckExact(members)) goto done;
    for (Py_ssize_t m = 0; m < PyTuple_GET_SIZE(members); m++) {
        PyObject *member = PyTuple_GET_ITEM(members, m);
        if (!PyTuple_CheckExact(member) || PyTuple_GET_SIZE(member) != 2 ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(member, 0)))
            goto done;
        if (!PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(member, 0), NULL)) { /* surrogates: encode() raises */
            PyErr_Clear();
            goto done;
        }
        PyObject *data = PyTuple_GET_ITEM(member, 1);
        if (data != Py_None && !PyBytes_CheckExact(data)) goto done;
        if (data == Py_None && !sha) {
            if (!(size = PyObject_GetAttr(sample, s_size)) || !(sha = PyObject_GetAttr(sample, s_sha256)))
                goto error;
            if (!PyLong_CheckExact(size) || !PyUnicode_CheckExact(sha)) goto done;
            int overflow;
            audio_size = PyLong_AsLongLongAndOverflow(size, &overflow);
            if (overflow || (audio_size == -1 && PyErr_Occurred()) ||
                !(sha_text = PyUnicode_AsUTF8AndSize(sha, &sha_len))) {
                PyErr_Clear();
                goto done;
            }
        }
    }
    for (Py_ssize_t m = 0; m < PyTuple_GET_SIZE(members); m++) {
        PyObject *member = PyTuple_GET_ITEM(members, m), *data = PyTuple_GET_ITEM(member, 1);
        Py_ssize_t len;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(member, 0), &len);
        if (add(f, name, len) < 0 || add(f, "", 1) < 0) goto error;
        if (data == Py_None) { /* f"{name}\0{sample.size}\0{sample.sha256}\n" */
            if (add_decimal(f, audio_size) < 0 || add(f, "", 1) < 0 || add(f, sha_text, sha_len) < 0 ||
                add(f, "\n", 1) < 0)
                goto error;
        } else if (add_decimal(f, PyBytes_GET_SIZE(data)) < 0 || add(f, "", 1) < 0 ||
                   add(f, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)) < 0) { /* f"{name}\0{len(data)}\0", data */
            goto error;
        }
    }
    r = 1;
    goto done;
error:
    r = -1;
done:
    Py_DECREF(members);
    Py_XDECREF(size);
    Py_XDECREF(sha);
    return r;
}

const char pd_digest_records_doc[] =
    "digest_records(update, samples) -> bool\n\n"
    "Feeds `update` (a hash object's) what formats.digest_tar hashes for `samples` (their members'\n"
    "names and sizes, the audio's sha256, the JSON members' bytes). False when a sample must be\n"
    "left to the Python form: what was fed is then only part of it, and the hash must be thrown away.";

PyObject *pd_digest_records(PyObject *self, PyObject *args) {
    PyObject *update, *samples;
    if (!PyArg_ParseTuple(args, "OO!", &update, &PyList_Type, &samples)) return NULL;
    if (intern_names() < 0) return NULL;
    Feed f = {update, PyMem_Malloc(256 << 10), 0, 256 << 10};
    if (!f.data) return PyErr_NoMemory();
    int r = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(samples) && r == 1; i++) {
        PyObject *sample = PyList_GET_ITEM(samples, i);
        Py_INCREF(sample); /* a getattr may run Python code */
        r = digest_record(&f, sample);
        Py_DECREF(sample);
    }
    if (r == 1 && feed_flush(&f) < 0) r = -1;
    PyMem_Free(f.data);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

const char pd_cut_points_doc[] =
    "cut_points(sizes, target) -> list of (start, end) or None\n\n"
    "plan.cut_by_size for a list of ints: None when a size is not a non-negative int, the total is\n"
    "0, or the total or target is past 2**53 (where float division could round otherwise).";

PyObject *pd_cut_points(PyObject *self, PyObject *args) {
    PyObject *sizes, *target_obj;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &sizes, &target_obj)) return NULL;
    Py_ssize_t count_sizes = PyList_GET_SIZE(sizes);
    if (!count_sizes) return PyList_New(0);
    if (!PyLong_CheckExact(target_obj)) Py_RETURN_NONE;
    int overflow;
    long long target = PyLong_AsLongLongAndOverflow(target_obj, &overflow);
    if (overflow || target < 1 || target >= EXACT_DOUBLE) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    long long *values = PyMem_Malloc(count_sizes * sizeof(long long));
    if (!values) return PyErr_NoMemory();
    long long total = 0;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < count_sizes; i++) {
        PyObject *item = PyList_GET_ITEM(sizes, i);
        long long v = PyLong_CheckExact(item) ? PyLong_AsLongLongAndOverflow(item, &overflow) : -1;
        if (!PyLong_CheckExact(item) || overflow || v < 0 || v >= EXACT_DOUBLE) {
            PyErr_Clear();
            result = Py_NewRef(Py_None);
            goto done;
        }
        values[i] = v;
        total += v;
        if (total >= EXACT_DOUBLE) {
            result = Py_NewRef(Py_None);
            goto done;
        }
    }
    if (!total) { /* the Python form divides by it */
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* max(1, ceil(total / target)): both exact doubles, so the one rounding is Python's */
    double quotient = (double)total / (double)target;
    long long count = (long long)quotient;
    if ((double)count < quotient) count++;
    if (count < 1) count = 1;
    if (!(result = PyList_New(0))) goto done;
    Py_ssize_t start = 0, made = 0;
    __int128 done = 0;
    for (Py_ssize_t i = 0; i < count_sizes; i++) {
        long long shard = (long long)((2 * done + values[i]) * count / (2 * (__int128)total));
        if (shard > count - 1) shard = count - 1;
        if (shard > made && i > start) {
            PyObject *bound = Py_BuildValue("(nn)", start, i);
            if (!bound || PyList_Append(result, bound) < 0) {
                Py_XDECREF(bound);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(bound);
            made++;
            start = i;
        }
        done += values[i];
    }
    PyObject *last = Py_BuildValue("(nn)", start, count_sizes);
    if (!last || PyList_Append(result, last) < 0) Py_CLEAR(result);
    Py_XDECREF(last);
done:
    PyMem_Free(values);
    return result;
}

const char pd_shuffle_doc[] =
    "shuffle(getrandbits, x)\n\n"
    "random.Random.shuffle(x) for the Random whose getrandbits this is: the same swaps, drawn the\n"
    "same way (_randbelow_with_getrandbits). plan.py checks it against Random.shuffle before use.";

PyObject *pd_shuffle(PyObject *self, PyObject *args) {
    PyObject *getrandbits, *x;
    if (!PyArg_ParseTuple(args, "OO!", &getrandbits, &PyList_Type, &x)) return NULL;
    for (Py_ssize_t i = PyList_GET_SIZE(x) - 1; i >= 1; i--) {
        unsigned long long n = (unsigned long long)i + 1, r;
        int k = 0;
        for (unsigned long long v = n; v; v >>= 1) k++; /* n.bit_length() */
        PyObject *bits = PyLong_FromLong(k);
        if (!bits) return NULL;
        do {
            PyObject *drawn = PyObject_CallOneArg(getrandbits, bits);
            if (!drawn) {
                Py_DECREF(bits);
                return NULL;
            }
            r = PyLong_AsUnsignedLongLong(drawn);
            Py_DECREF(drawn);
            if (r == (unsigned long long)-1 && PyErr_Occurred()) {
                Py_DECREF(bits);
                return NULL;
            }
        } while (r >= n);
        Py_DECREF(bits);
        if (i >= PyList_GET_SIZE(x)) { /* getrandbits changed the list: stop as a Python loop would fail */
            PyErr_SetString(PyExc_IndexError, "list changed size during shuffle");
            return NULL;
        }
        PyObject *a = PyList_GET_ITEM(x, i);
        PyList_SET_ITEM(x, i, PyList_GET_ITEM(x, (Py_ssize_t)r));
        PyList_SET_ITEM(x, (Py_ssize_t)r, a);
    }
    Py_RETURN_NONE;
}
