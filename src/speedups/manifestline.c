/* manifestline.c: shard_sample's work from a manifest line's bytes, with no dict in between
   (shards.samples.read_samples). The line is scanned here and its values are put into the
   documents as they are written: no objects for the keys and source columns, no second UTF-8
   encoding of the texts. That is exact only for a line written as orjson writes one (prepare's
   own lines): a flat object, strings without escapes, integers below 10**18, floats without an
   exponent (a source column's only in repr's shortest form). Any other line (an escape, an exponent, a nested value, a duplicate key, bytes
   that are not UTF-8, anything that is not JSON) gives None, and goes the dict way (orjson.loads,
   then shard_sample or the Python form), which stays the reference. */
#include "speedups.h"
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_ITEMS 64
#define MAX_NUMBER 40 /* longer numbers go the dict way */
#define MEMO_KEY 48   /* longer keys are looked up in the skip set every time */

enum { V_STRING, V_INT, V_FLOAT, V_TRUE, V_FALSE, V_NULL };

typedef struct {
    const char *key; /* the key's bytes, without its quotes */
    Py_ssize_t klen;
    const char *val; /* the value's JSON text (a string with its quotes) */
    Py_ssize_t vlen;
    int kind;
} Item;

static Py_ssize_t skip_ws(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) {
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i;
}

/* Whether the 8 bytes at q are ASCII with no quote, backslash or control character (SWAR: a
   byte's high bit is set in `found` where it is one of those). */
static inline int plain_ascii8(const unsigned char *q) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t v;
    memcpy(&v, q, 8);
    if (v & high) return 0;
    uint64_t quote = v ^ (ones * '"'), backslash = v ^ (ones * '\\');
    uint64_t found = ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((v - ones * 0x20) & ~v);
    return (found & high) == 0;
}

/* Past the closing quote of the string opening at p[i], or -1 for one orjson would not write as
   it stands: an escape, a control character, bytes that are not UTF-8 (a surrogate's included). */
static Py_ssize_t plain_string(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) {
    for (i++; i < n;) {
        if (i + 8 <= n && plain_ascii8(p + i)) {
            i += 8;
            continue;
        }
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c == '"') return i + 1;
            if (c == '\\' || c < 0x20) return -1;
            i++;
            continue;
        }
        int more;
        unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range (RFC 3629's table) */
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c == 0xE0)
            more = 2, lo = 0xA0;
        else if (c == 0xED)
            more = 2, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF)
            more = 2;
        else if (c == 0xF0)
            more = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3)
            more = 3;
        else if (c == 0xF4)
            more = 3, hi = 0x8F;
        else
            return -1;
        if (i + more >= n || p[i + 1] < lo || p[i + 1] > hi) return -1;
        for (int k = 2; k <= more; k++)
            if ((p[i + k] & 0xC0) != 0x80) return -1;
        i += more + 1;
    }
    return -1;
}

/* Past the number at p[i] (JSON's grammar, no exponent: repr and orjson write those differently),
   its kind in `kind`; -1 for anything else. */
static Py_ssize_t number_end(const unsigned char *p, Py_ssize_t i, Py_ssize_t n, int *kind) {
    Py_ssize_t j = i + (p[i] == '-');
    if (j >= n) return -1;
    if (p[j] == '0')
        j++;
    else if (p[j] >= '1' && p[j] <= '9')
        while (j < n && p[j] >= '0' && p[j] <= '9') j++;
    else
        return -1;
    *kind = V_INT;
    if (j < n && p[j] == '.') {
        if (++j >= n || p[j] < '0' || p[j] > '9') return -1;
        while (j < n && p[j] >= '0' && p[j] <= '9') j++;
        *kind = V_FLOAT;
    }
    if (j < n && (p[j] == 'e' || p[j] == 'E')) return -1;
    return j;
}

/* The items of a flat JSON object, in order; 0 for anything else (see the top). */
static int scan(const unsigned char *p, Py_ssize_t n, Item *items, int *count) {
    Py_ssize_t i = skip_ws(p, 0, n), end;
    if (i >= n || p[i] != '{') return 0;
    i = skip_ws(p, i + 1, n);
    int k = 0;
    for (;;) {
        if (i >= n || p[i] != '"' || k == MAX_ITEMS || (end = plain_string(p, i, n)) < 0) return 0;
        Item *it = &items[k];
        it->key = (const char *)p + i + 1;
        it->klen = end - i - 2;
        for (int j = 0; j < k; j++) /* orjson keeps a duplicate's last value at its first place */
            if (items[j].klen == it->klen && !memcmp(items[j].key, it->key, it->klen)) return 0;
        i = skip_ws(p, end, n);
        if (i >= n || p[i] != ':') return 0;
        i = skip_ws(p, i + 1, n);
        if (i >= n) return 0;
        unsigned char c = p[i];
        if (c == '"')
            end = plain_string(p, i, n), it->kind = V_STRING;
        else if (c == '-' || (c >= '0' && c <= '9'))
            end = number_end(p, i, n, &it->kind);
        else if (n - i >= 4 && !memcmp(p + i, "true", 4))
            end = i + 4, it->kind = V_TRUE;
        else if (n - i >= 5 && !memcmp(p + i, "false", 5))
            end = i + 5, it->kind = V_FALSE;
        else if (n - i >= 4 && !memcmp(p + i, "null", 4))
            end = i + 4, it->kind = V_NULL;
        else
            return 0; /* an array, an object, or not JSON */
        if (end < 0) return 0;
        it->val = (const char *)p + i;
        it->vlen = end - i;
        k++;
        i = skip_ws(p, end, n);
        if (i < n && p[i] == ',') {
            i = skip_ws(p, i + 1, n);
            continue;
        }
        if (i < n && p[i] == '}') break;
        return 0;
    }
    if (skip_ws(p, i + 1, n) != n) return 0;
    *count = k;
    return 1;
}

/* Whether every correct parser reads the float text `it` (no exponent) to the same double: at
   most 15 significant digits and 22 after the point, so that it is one integer below 2**53 divided
   by an exact power of ten, one correctly rounded division (Clinger's fast path). */
static int read_alike(const Item *it) {
    int digits = 0, leading = 1, after_point = -1;
    for (Py_ssize_t i = 0; i < it->vlen; i++) {
        char c = it->val[i];
        if (after_point >= 0) after_point++;
        if (c == '.') after_point = 0;
        if (c < '0' || c > '9' || (leading && c == '0')) continue;
        leading = 0;
        digits++;
    }
    return digits <= 15 && after_point <= 22;
}

/* A value as orjson.loads gives it. NULL with no error: one the dict way must take (an int of 19
   digits or more, -0, a float that is not finite). `as_written`: a float is taken only in repr's
   shortest form (then its text is what orjson.dumps writes); else also one `read_alike`. */
static PyObject *value_object(const Item *it, int as_written) {
    switch (it->kind) {
    case V_STRING:
        return PyUnicode_DecodeUTF8(it->val + 1, it->vlen - 2, NULL);
    case V_INT: {
        int negative = it->val[0] == '-';
        if (it->vlen - negative > 18 || (negative && it->val[1] == '0')) return NULL;
        long long v = 0;
        for (Py_ssize_t i = negative; i < it->vlen; i++) v = v * 10 + (it->val[i] - '0');
        return PyLong_FromLongLong(negative ? -v : v);
    }
    case V_FLOAT: {
        char text[MAX_NUMBER];
        if (it->vlen >= MAX_NUMBER) return NULL;
        memcpy(text, it->val, it->vlen);
        text[it->vlen] = '\0';
        double d = PyOS_string_to_double(text, NULL, NULL);
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        if (!isfinite(d)) return NULL;
        if (!as_written && read_alike(it)) return PyFloat_FromDouble(d);
        char *shortest = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!shortest) return NULL;
        int same = (Py_ssize_t)strlen(shortest) == it->vlen && !memcmp(shortest, text, it->vlen);
        PyMem_Free(shortest);
        return same ? PyFloat_FromDouble(d) : NULL;
    }
    case V_TRUE:
        return Py_NewRef(Py_True);
    case V_FALSE:
        return Py_NewRef(Py_False);
    default:
        return Py_NewRef(Py_None);
    }
}

/* Whether the source column `it` (the line's i-th key) is in `skip`: -1 on error. Every line of a
   manifest has the same keys in the same order, so the last answers are kept by place. */
static struct {
    PyObject *skip;
    int n;
    Py_ssize_t len[MAX_ITEMS];
    char key[MAX_ITEMS][MEMO_KEY];
    char skipped[MAX_ITEMS];
} memo;

static int skipped(PyObject *skip, const Item *it, int i) {
    if (memo.skip != skip) {
        Py_XSETREF(memo.skip, Py_NewRef(skip));
        memo.n = 0;
    }
    if (i < memo.n && memo.len[i] == it->klen && !memcmp(memo.key[i], it->key, it->klen)) return memo.skipped[i];
    PyObject *key = PyUnicode_DecodeUTF8(it->key, it->klen, NULL);
    if (!key) return -1;
    int r = PySet_Contains(skip, key);
    Py_DECREF(key);
    if (r >= 0 && i <= memo.n && it->klen <= MEMO_KEY) {
        memo.len[i] = it->klen;
        memcpy(memo.key[i], it->key, it->klen);
        memo.skipped[i] = (char)r;
        memo.n = i + 1;
    }
    return r;
}

static int key_is(const Item *it, const char *name, Py_ssize_t len) {
    return it->klen == len && !memcmp(it->key, name, len);
}
#define KEY_IS(it, literal) key_is(it, literal, sizeof literal - 1)

/* A column name of the context (speaker, gender) as UTF-8; NULL (no error) for None. */
static const char *column_name(PyObject *column, Py_ssize_t *len) {
    if (column == Py_None || !PyUnicode_Check(column)) return NULL;
    const char *name = PyUnicode_AsUTF8AndSize(column, len);
    if (!name) PyErr_Clear(); /* a lone surrogate: no line has that key as UTF-8 */
    return name;
}

/* The fields taken as objects, and the kind each must have (-1: any). */
#define SLOT(name, field, kind) {name, sizeof name - 1, offsetof(PdLine, field), kind}
static const struct {
    const char *name;
    Py_ssize_t len;
    size_t offset;
    int want;
} SLOTS[] = {SLOT("id", id, V_STRING),         SLOT("audio_path", audio, V_STRING), SLOT("sha256", sha, V_STRING),
             SLOT("duration", duration, -1),   SLOT("frames", frames, V_INT),        SLOT("sample_rate", rate, V_INT),
             SLOT("channels", channels, -1)};
#undef SLOT

const char pd_shard_raw_doc[] =
    "shard_raw(ctx, raw, number) -> Sample or None\n\n"
    "shard_sample for a manifest line's bytes, scanned here; None for a line not written as orjson\n"
    "writes one (or one shard_sample leaves): it then goes the dict way.";

PyObject *pd_shard_raw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !pd_is_plan_context(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "shard_raw(ctx, raw, number): ctx is documents.line_planner's, raw bytes");
        return NULL;
    }
    PyObject *ctx = args[0], *raw = args[1], *skip = PyTuple_GET_ITEM(ctx, CTX_SKIP);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(raw);
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    Item items[MAX_ITEMS];
    int count = 0;
    if (!scan(p, n, items, &count)) Py_RETURN_NONE;

    Py_ssize_t speaker_len = 0, gender_len = 0;
    const char *speaker_name = column_name(PyTuple_GET_ITEM(ctx, CTX_SPEAKER), &speaker_len),
               *gender_name = column_name(PyTuple_GET_ITEM(ctx, CTX_GENDER), &gender_len);
    PdLine f = {0};
    PyObject **owned[] = {&f.id, &f.audio, &f.sha, &f.duration, &f.frames, &f.rate, &f.text, &f.normalized,
                          &f.channels, &f.speaker, &f.gender};
    PyObject *rest = NULL, *result = NULL;
    char first[2048], *out = n <= (Py_ssize_t)sizeof first ? first : PyMem_Malloc(n);
    Py_ssize_t len = 0; /* the source columns, `,"key":value` each: never more bytes than the line */
    if (!out) return PyErr_NoMemory();

    for (int i = 0; i < count; i++) {
        const Item *it = &items[i];
        PyObject **slot = NULL;
        int want = -1;
        for (size_t j = 0; j < sizeof SLOTS / sizeof *SLOTS && !slot; j++)
            if (key_is(it, SLOTS[j].name, SLOTS[j].len))
                slot = (PyObject **)((char *)&f + SLOTS[j].offset), want = SLOTS[j].want;
        if (slot) {
            if ((want >= 0 && it->kind != want) || !(*slot = value_object(it, 0))) goto fall_back;
        } else if (KEY_IS(it, "text") || KEY_IS(it, "text_normalized")) {
            if (it->kind != V_STRING) goto fall_back;
            /* the JSON string as it is written: render puts bytes as they are */
            PyObject **text = KEY_IS(it, "text") ? &f.text : &f.normalized;
            if (!(*text = PyBytes_FromStringAndSize(it->val, it->vlen))) goto done;
        } else if (KEY_IS(it, "audio_ref") && it->kind != V_NULL)
            goto fall_back; /* --no-extract: the Python form says so */
        /* the speaker and gender columns may be any column, common ones included */
        if (speaker_name && key_is(it, speaker_name, speaker_len) && !(f.speaker = value_object(it, 0))) goto fall_back;
        if (gender_name && key_is(it, gender_name, gender_len) && !(f.gender = value_object(it, 0))) goto fall_back;
        int r = skipped(skip, it, i);
        if (r < 0) goto done;
        if (r) continue;
        if (it->kind == V_INT || it->kind == V_FLOAT) { /* written as they stand only in orjson's own form */
            PyObject *number = value_object(it, 1);
            if (!number) goto fall_back;
            Py_DECREF(number);
        }
        out[len++] = ',';
        out[len++] = '"';
        memcpy(out + len, it->key, it->klen);
        len += it->klen;
        out[len++] = '"';
        out[len++] = ':';
        memcpy(out + len, it->val, it->vlen);
        len += it->vlen;
    }
    if (!(rest = PyBytes_FromStringAndSize(out, len))) goto done;
    result = pd_plan_line(ctx, &f, args[2], rest);
    goto done;

fall_back:
    result = PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
done:
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) Py_XDECREF(*owned[i]);
    Py_XDECREF(rest);
    if (out != first) PyMem_Free(out);
    return result;
}
