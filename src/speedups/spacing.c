/* spacing.c: the normalizer's space, line and punctuation rules (normalize_context). */
#include "speedups.h"

/* ---- the normalizer's spacing rules (normalize._Compiled._rules) ---- */

/* Both rules only delete spaces and newlines, so the result has the input's kind (its largest
   character stays): it is built in a buffer of that kind. */
#define SPACES_LOOP(T)                                                                                \
    do {                                                                                              \
        Py_ssize_t o = 0;                                                                             \
        const T *in = (const T *)data;                                                                \
        T *out = (T *)buf;                                                                            \
        for (Py_ssize_t i = 0; i < n; i++) {                                                          \
            T c = in[i];                                                                              \
            if (c <= ' ') {                                                                           \
                if (c == ' ') { /* one space, and none after a newline */                           \
                    if (o && (out[o - 1] == ' ' || out[o - 1] == '\n')) continue;                     \
                } else if (c == '\n') { /* none before a newline, at most two newlines */           \
                    if (o && out[o - 1] == ' ') o--;                                                  \
                    if (o >= 2 && out[o - 1] == '\n' && out[o - 2] == '\n') continue;                 \
                }                                                                                     \
            }                                                                                         \
            out[o++] = c;                                                                             \
        }                                                                                             \
        return o;                                                                                     \
    } while (0)

/* One pass of a rule over `n` code units of one kind into `buf`: the result's length. */
typedef Py_ssize_t (*Pass)(const void *data, Py_ssize_t n, void *buf);

/* `arg` rewritten by the pass for its kind (`passes`: UCS1, UCS2, UCS4), or NULL. */
static PyObject *rewrite(PyObject *arg, const char *name, const Pass passes[3]) {
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() wants str", name);
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    int kind = PyUnicode_KIND(arg);
    void *buf = PyMem_Malloc((n + 1) * kind);
    if (!buf) return PyErr_NoMemory();
    Py_ssize_t o = passes[kind == PyUnicode_1BYTE_KIND ? 0 : kind == PyUnicode_2BYTE_KIND ? 1 : 2](
        PyUnicode_DATA(arg), n, buf);
    PyObject *r = PyUnicode_FromKindAndData(kind, buf, o);
    PyMem_Free(buf);
    return r;
}

static Py_ssize_t spaces_1(const void *data, Py_ssize_t n, void *buf) { SPACES_LOOP(Py_UCS1); }
static Py_ssize_t spaces_2(const void *data, Py_ssize_t n, void *buf) { SPACES_LOOP(Py_UCS2); }
static Py_ssize_t spaces_4(const void *data, Py_ssize_t n, void *buf) { SPACES_LOOP(Py_UCS4); }

const char pd_spaces_and_lines_doc[] =
"spaces_and_lines(s) -> str\n\n"
"The normalizer's space and line rules in one pass, as applied in this order: runs of spaces\n"
"become one, a space before or after a newline goes, three newlines or more become two.";

PyObject *pd_spaces_and_lines(PyObject *self, PyObject *arg) {
    static const Pass passes[3] = {spaces_1, spaces_2, spaces_4};
    return rewrite(arg, "spaces_and_lines", passes);
}

enum { P_CLOSE = 1, P_OPEN = 2, P_SPACE = 4, P_SEP = 8 };
static unsigned char punct_class[0x10000];
static int punct_ready = 0;

static int punct_class_of(Py_UCS4 c) {
    if (c < 0x10000) return punct_class[c];
    return Py_UNICODE_ISSPACE(c) ? P_SPACE : 0; /* no mark or separator lies above U+FFFF */
}

const char pd_set_punct_rules_doc[] =
"set_punct_rules(close, open, sep)\n\n"
"The closing and opening marks of the punctuation spacing rule (BMP characters), and the batch\n"
"separator.";

PyObject *pd_set_punct_rules(PyObject *self, PyObject *args) {
    PyObject *close, *open;
    int sep;
    if (!PyArg_ParseTuple(args, "UUC", &close, &open, &sep)) return NULL;
    if (sep > 0xFFFF || PyUnicode_MAX_CHAR_VALUE(close) > 0xFFFF || PyUnicode_MAX_CHAR_VALUE(open) > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "marks and separator must be BMP characters");
        return NULL;
    }
    for (Py_UCS4 c = 0; c < 0x10000; c++) punct_class[c] = Py_UNICODE_ISSPACE(c) ? P_SPACE : 0;
    for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(close); k++) punct_class[PyUnicode_READ_CHAR(close, k)] |= P_CLOSE;
    for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(open); k++) punct_class[PyUnicode_READ_CHAR(open, k)] |= P_OPEN;
    punct_class[sep] |= P_SEP;
    punct_ready = 1;
    Py_RETURN_NONE;
}

#define PUNCT_LOOP(T)                                                                                 \
    do {                                                                                              \
        Py_ssize_t o = 0;                                                                             \
        const T *in = (const T *)data;                                                                \
        T *out = (T *)buf;                                                                            \
        for (Py_ssize_t i = 0; i < n; i++) {                                                          \
            T c = in[i];                                                                              \
            if (c == ' ') {                                                                           \
                if (i + 1 < n && (punct_class_of(in[i + 1]) & P_CLOSE)) {                            \
                    if (i + 2 >= n) continue;                                                         \
                    int f = punct_class_of(in[i + 2]);                                                \
                    if ((f & (P_SPACE | P_SEP | P_OPEN))                                             \
                        || ((f & P_CLOSE) && !(in[i + 1] == '.' && in[i + 2] == '.')))                \
                        continue;                                                                     \
                }                                                                                     \
                if (i > 0 && (punct_class_of(in[i - 1]) & P_OPEN)) continue;                         \
            }                                                                                         \
            out[o++] = c;                                                                             \
        }                                                                                             \
        return o;                                                                                     \
    } while (0)

static Py_ssize_t punct_1(const void *data, Py_ssize_t n, void *buf) { PUNCT_LOOP(Py_UCS1); }
static Py_ssize_t punct_2(const void *data, Py_ssize_t n, void *buf) { PUNCT_LOOP(Py_UCS2); }
static Py_ssize_t punct_4(const void *data, Py_ssize_t n, void *buf) { PUNCT_LOOP(Py_UCS4); }

const char pd_punct_doc[] =
"punct(s) -> str\n\n"
"normalize_context._punct in one pass: no space before a closing mark that ends a word (followed\n"
"by whitespace, a mark, the separator or the end; ' ...' keeps its space), none after an opening\n"
"mark.";

PyObject *pd_punct(PyObject *self, PyObject *arg) {
    static const Pass passes[3] = {punct_1, punct_2, punct_4};
    if (!punct_ready) {
        PyErr_SetString(PyExc_RuntimeError, "set_punct_rules() first");
        return NULL;
    }
    return rewrite(arg, "punct", passes);
}
