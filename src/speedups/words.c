/* words.c: the word hashes of a batch of texts (textclean.near_dup.signatures' first step).
 *
 * A word is a maximal run of characters that are neither whitespace (str.isspace) nor one of the
 * break characters, ZWNJs deleted first (so they join what they separate): near_dup._WORD on
 * t.replace(ZWNJ, ""). Each word's hash comes from `word_hash(word)` (near_dup's blake2b of its
 * UTF-8), called once per distinct word and kept here in an open-addressing table (cleared when
 * full: it only saves calls), so the common words of a corpus cost no Python object at all.
 */
#include "speedups.h"
#include <stdint.h>
#include <string.h>

#define TABLE_BITS 18 /* 262,144 slots; cleared at 3/4 full */
#define TABLE_SIZE (1u << TABLE_BITS)

typedef struct {
    uint64_t key;     /* FNV-1a of the word's code points, 0: empty slot */
    uint32_t value;   /* the word's hash */
    uint32_t len;     /* code points */
    size_t at;        /* where its code points are in `arena` */
} Slot;

static Slot *slots = NULL;
static uint32_t used = 0;
static Py_UCS4 *arena = NULL;
static size_t arena_len = 0, arena_cap = 0;
static unsigned char breaks[0x10000]; /* 1: whitespace or a break character (BMP) */
static PyObject *word_hash = NULL;

static void clear_table(void) {
    memset(slots, 0, TABLE_SIZE * sizeof(Slot));
    used = 0;
    arena_len = 0;
}

const char pd_set_word_rules_doc[] =
"set_word_rules(break_chars, word_hash)\n\n"
"The characters besides whitespace that end a word, and the function giving a word's hash.";

PyObject *pd_set_word_rules(PyObject *self, PyObject *args) {
    PyObject *chars, *fn;
    if (!PyArg_ParseTuple(args, "UO", &chars, &fn)) return NULL;
    if (!slots && !(slots = PyMem_Calloc(TABLE_SIZE, sizeof(Slot)))) return PyErr_NoMemory();
    for (Py_UCS4 c = 0; c < 0x10000; c++) breaks[c] = Py_UNICODE_ISSPACE(c) ? 1 : 0;
    for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(chars); k++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(chars, k);
        if (c > 0xFFFF) {
            PyErr_SetString(PyExc_ValueError, "break characters must be BMP characters");
            return NULL;
        }
        breaks[c] = 1;
    }
    Py_INCREF(fn);
    Py_XSETREF(word_hash, fn);
    clear_table();
    Py_RETURN_NONE;
}

static inline int is_break(Py_UCS4 c) { return c < 0x10000 ? breaks[c] : Py_UNICODE_ISSPACE(c); }

/* The hash of the word `w` (`n` code points): from the table, or `word_hash` then kept. -1: error. */
static int64_t hash_of(const Py_UCS4 *w, size_t n) {
    uint64_t key = 0xcbf29ce484222325ull;
    for (size_t k = 0; k < n; k++) key = (key ^ w[k]) * 0x100000001b3ull;
    key |= 1; /* never 0 (an empty slot) */
    uint32_t at = (uint32_t)(key >> (64 - TABLE_BITS));
    for (;; at = (at + 1) & (TABLE_SIZE - 1)) {
        Slot *s = &slots[at];
        if (!s->key) break;
        if (s->key == key && s->len == n && !memcmp(arena + s->at, w, n * sizeof(Py_UCS4))) return s->value;
    }
    PyObject *word = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, w, (Py_ssize_t)n);
    if (!word) return -1;
    PyObject *h = PyObject_CallOneArg(word_hash, word);
    Py_DECREF(word);
    if (!h) return -1;
    unsigned long value = PyLong_AsUnsignedLong(h);
    Py_DECREF(h);
    if (value == (unsigned long)-1 && PyErr_Occurred()) return -1;
    if (used >= TABLE_SIZE / 4 * 3) { /* full: start again (only calls are saved) */
        clear_table();
        at = (uint32_t)(key >> (64 - TABLE_BITS));
    } else {
        while (slots[at].key) at = (at + 1) & (TABLE_SIZE - 1);
    }
    if (arena_len + n > arena_cap) {
        size_t cap = arena_cap ? 2 * arena_cap : (1u << 20);
        while (cap < arena_len + n) cap *= 2;
        Py_UCS4 *grown = PyMem_Realloc(arena, cap * sizeof(Py_UCS4));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        arena = grown;
        arena_cap = cap;
    }
    memcpy(arena + arena_len, w, n * sizeof(Py_UCS4));
    slots[at] = (Slot){key, (uint32_t)value, (uint32_t)n, arena_len};
    arena_len += n;
    used++;
    return (uint32_t)value;
}

const char pd_word_hashes_doc[] =
"word_hashes(texts) -> (bytearray, bytearray)\n\n"
"The hash of every word of every text, text after text (uint32), and each text's word count (int64).";

PyObject *pd_word_hashes(PyObject *self, PyObject *args) {
    PyObject *texts;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &texts)) return NULL;
    if (!word_hash) {
        PyErr_SetString(PyExc_RuntimeError, "set_word_rules() first");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(texts);
    PyObject *lengths = PyByteArray_FromStringAndSize(NULL, count * 8);
    PyObject *hashes = PyByteArray_FromStringAndSize(NULL, 0);
    Py_UCS4 *word = NULL;
    size_t word_cap = 0;
    if (!lengths || !hashes) goto error;
    Py_ssize_t n_hashes = 0, cap_hashes = 0;
    for (Py_ssize_t t = 0; t < count; t++) {
        PyObject *text = PyList_GET_ITEM(texts, t);
        if (!PyUnicode_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "word_hashes() wants str items");
            goto error;
        }
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        Py_ssize_t n = PyUnicode_GET_LENGTH(text), words = 0;
        if ((size_t)n + 1 > word_cap) {
            word_cap = (size_t)n + 64;
            Py_UCS4 *w = PyMem_Realloc(word, word_cap * sizeof(Py_UCS4));
            if (!w) {
                PyErr_NoMemory();
                goto error;
            }
            word = w;
        }
        size_t wl = 0;
        for (Py_ssize_t i = 0; i <= n; i++) {
            Py_UCS4 c = i < n ? PyUnicode_READ(kind, data, i) : ' ';
            if (c == 0x200C) continue; /* deleted: it joins what it separates */
            if (!is_break(c)) {
                word[wl++] = c;
                continue;
            }
            if (!wl) continue;
            int64_t h = hash_of(word, wl);
            if (h < 0) goto error;
            if (n_hashes == cap_hashes) {
                cap_hashes = cap_hashes ? 2 * cap_hashes : 4096;
                if (PyByteArray_Resize(hashes, cap_hashes * 4) < 0) goto error;
            }
            ((uint32_t *)PyByteArray_AS_STRING(hashes))[n_hashes++] = (uint32_t)h;
            words++;
            wl = 0;
        }
        ((int64_t *)PyByteArray_AS_STRING(lengths))[t] = words;
    }
    PyMem_Free(word);
    if (PyByteArray_Resize(hashes, n_hashes * 4) < 0) goto error_freed;
    return Py_BuildValue("(NN)", hashes, lengths);
error:
    PyMem_Free(word);
error_freed:
    Py_XDECREF(lengths);
    Py_XDECREF(hashes);
    return NULL;
}
