/* titles.c: the title rule of the chat stage (prepare.chat_convert.user_turn), a batch at a time. */
#include "speedups.h"

/* `s` without spaces, newlines and ZWNJs (chat_convert._key), or NULL */
static PyObject *loose_key(PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_UCS4 *buf = PyMem_Malloc((n + 1) * sizeof(Py_UCS4));
    if (!buf) return PyErr_NoMemory();
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c != ' ' && c != '\n' && c != 0x200C) buf[o++] = c;
    }
    PyObject *r = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, o);
    PyMem_Free(buf);
    return r;
}

/* 1: `needle` in `hay`, 0: not, -1: error */
static int contains(PyObject *hay, PyObject *needle) { return PyUnicode_Contains(hay, needle); }

/* user_turn(title, question), or NULL */
static PyObject *user_turn(PyObject *title, PyObject *question, PyObject *strip_chars) {
    PyObject *t = PyObject_CallMethod(title, "strip", NULL);
    if (!t) return NULL;
    int in;
    if (PyUnicode_GET_LENGTH(t) == 0 || (in = contains(question, t)) == 1) {
        Py_DECREF(t);
        return Py_NewRef(question);
    }
    if (in < 0) goto fail_t;
    PyObject *core = PyObject_CallMethod(t, "strip", "O", strip_chars);
    if (!core) goto fail_t;
    PyObject *kt = loose_key(core);
    Py_DECREF(core);
    if (!kt) goto fail_t;
    PyObject *kq = loose_key(question);
    if (!kq) {
        Py_DECREF(kt);
        goto fail_t;
    }
    PyObject *out = NULL;
    if (PyUnicode_GET_LENGTH(kt) == 0 || (in = contains(kq, kt)) == 1) {
        out = Py_NewRef(question);
    } else if (in == 0) {
        int back = 0;
        if (PyUnicode_GET_LENGTH(kq)) {
            PyObject *ktt = loose_key(t);
            back = ktt ? contains(ktt, kq) : -1;
            Py_XDECREF(ktt);
        }
        if (back == 1) {
            out = Py_NewRef(t);
        } else if (back == 0) {
            out = PyUnicode_FromFormat("%U\n\n%U", t, question);
        }
    }
    Py_DECREF(kt);
    Py_DECREF(kq);
    Py_DECREF(t);
    return out;
fail_t:
    Py_DECREF(t);
    return NULL;
}

const char pd_user_turns_doc[] =
"user_turns(titles, questions, title_strip) -> list of str\n\n"
"[user_turn(t, q) for t, q in zip(titles, questions)] (prepare.chat_convert's title rule; both\n"
"normalized): the question, the title alone, or the title, a blank line and the question.";

PyObject *pd_user_turns(PyObject *self, PyObject *args) {
    PyObject *titles, *questions, *strip_chars;
    if (!PyArg_ParseTuple(args, "O!O!U", &PyList_Type, &titles, &PyList_Type, &questions, &strip_chars)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(titles);
    if (PyList_GET_SIZE(questions) != n) {
        PyErr_SetString(PyExc_ValueError, "one question per title");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    if (!out) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *t = PyList_GET_ITEM(titles, k), *q = PyList_GET_ITEM(questions, k);
        if (!PyUnicode_Check(t) || !PyUnicode_Check(q)) {
            PyErr_SetString(PyExc_TypeError, "user_turns() wants str items");
            Py_DECREF(out);
            return NULL;
        }
        PyObject *turn = user_turn(t, q, strip_chars);
        if (!turn) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, turn);
    }
    return out;
}
