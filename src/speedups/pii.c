/* pii.c: the personal-data spans of a text whose batch facts are known (textclean.pii). */
#include "speedups.h"
#include <stdint.h>
#include <string.h>

/* ---- PII numbers inside one digit run (textclean.pii._numbers) ---- */

static PyObject *money_words = NULL; /* tuple of the words after which a run is an amount */
static PyObject *type_phone = NULL, *type_id = NULL, *type_card = NULL;

/* Latin digits of a run's group (`\d+`: Unicode decimal digits), at most 32 */
typedef struct {
    Py_ssize_t start, end;
    char d[33];
    int n;
} Group;

static int national_id_valid(const char *d, int n) {
    if (n != 10) return 0;
    int same = 1;
    for (int k = 1; k < n; k++) same &= d[k] == d[0];
    if (same) return 0;
    int s = 0;
    for (int k = 0; k < 9; k++) s += (d[k] - '0') * (10 - k);
    s %= 11;
    int check = d[9] - '0';
    return s < 2 ? check == s : check == 11 - s;
}

static int luhn_valid(const char *d, int n) {
    int same = 1;
    for (int k = 1; k < n; k++) same &= d[k] == d[0];
    if (same) return 0;
    int sum = 0;
    for (int k = 0; k < n; k++) {
        int v = d[n - 1 - k] - '0';
        if (k & 1) {
            v *= 2;
            if (v > 9) v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* pii._classify: the type of a number written as these Latin digits, or NULL */
static PyObject *classify(const char *d, int n, int plus) {
    int phone = (n == 11 && d[0] == '0' && d[1] >= '1' && d[1] <= '9')
                || (n == 12 && d[0] == '9' && d[1] == '8' && d[2] >= '1' && d[2] <= '9')
                || (n == 14 && !memcmp(d, "0098", 4) && d[4] >= '1' && d[4] <= '9');
    if (phone) return plus && !(d[0] == '9' && d[1] == '8') ? NULL : type_phone;
    if (plus) return NULL;
    if (n == 10 && national_id_valid(d, n)) return type_id;
    if (n == 16 && luhn_valid(d, n)) return type_card;
    return NULL;
}

static int is_amount(PyObject *text, Py_ssize_t end) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), stop = end + 12 < n ? end + 12 : n;
    Py_ssize_t i = end;
    while (i < stop && Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(text, i))) i++;
    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(money_words); w++) {
        PyObject *word = PyTuple_GET_ITEM(money_words, w);
        Py_ssize_t len = PyUnicode_GET_LENGTH(word);
        if (i + len <= stop && PyUnicode_Tailmatch(text, word, i, i + len, -1) == 1) return 1;
    }
    return 0;
}

static PyObject *found_number(PyObject *list, PyObject *type, Py_ssize_t start, Py_ssize_t end) {
    PyObject *m = Py_BuildValue("(Onn)", type, start, end);
    if (!m || PyList_Append(list, m) < 0) {
        Py_XDECREF(m);
        Py_DECREF(list);
        return NULL;
    }
    Py_DECREF(m);
    return list;
}

const char pd_numbers_doc[] =
"numbers(text, start, end) -> list of (type, start, end)\n\n"
"pii._numbers for the digit run text[start:end] (a match of pii._RUN).";

#define MAX_RUN_GROUPS 64 /* a run with more groups is left to the Python form */

/* The groups of the run text[rs:re_] (runs of decimal digits, as Latin digits) into `groups`:
   1 when the run is one group (all digits), 0 when not, -1 when it holds more than MAX_RUN_GROUPS. */
static int run_groups(PyObject *text, Py_ssize_t rs, Py_ssize_t re_, Group *groups, int *ng) {
    int all_digits = 1;
    for (Py_ssize_t i = rs; i < re_;) {
        Py_UCS4 c = PyUnicode_READ_CHAR(text, i);
        if (!Py_UNICODE_ISDECIMAL(c)) {
            all_digits = 0;
            i++;
            continue;
        }
        if (*ng == MAX_RUN_GROUPS) return -1;
        Group *g = &groups[(*ng)++];
        g->start = i;
        g->n = 0;
        while (i < re_ && Py_UNICODE_ISDECIMAL(c = PyUnicode_READ_CHAR(text, i))) {
            if (g->n < 32) g->d[g->n] = (char)('0' + Py_UNICODE_TODECIMAL(c));
            g->n++;
            i++;
        }
        g->end = i;
        if (g->n > 32) g->n = 33; /* longer than any number: never joined, never one */
    }
    return all_digits;
}

static PyObject *run_numbers(PyObject *text, Py_ssize_t rs, Py_ssize_t re_);

PyObject *pd_numbers(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t rs, re_;
    if (!PyArg_ParseTuple(args, "Unn", &text, &rs, &re_)) return NULL;
    return run_numbers(text, rs, re_);
}

/* pii._numbers of the run text[rs:re_]: a list of (type, start, end), or None (more than 64
   groups: the Python form) */
static PyObject *run_numbers(PyObject *text, Py_ssize_t rs, Py_ssize_t re_) {
    if (!money_words) {
        PyErr_SetString(PyExc_RuntimeError, "set_pii_rules() first");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (rs < 0 || re_ > n || rs > re_) {
        PyErr_SetString(PyExc_ValueError, "run out of the text");
        return NULL;
    }
    PyObject *found = PyList_New(0);
    if (!found || is_amount(text, re_)) return found;
    Group groups[MAX_RUN_GROUPS];
    int ng = 0, all_digits = run_groups(text, rs, re_, groups, &ng);
    if (all_digits < 0) { /* the caller's Python form handles it */
        Py_DECREF(found);
        Py_RETURN_NONE;
    }
    if (all_digits) { /* one group (most runs): a number of one of the lengths, or none */
        int len = groups[0].n;
        if (len != 10 && len != 11 && len != 12 && len != 14 && len != 16) return found;
        PyObject *kind = classify(groups[0].d, len, 0);
        return kind ? found_number(found, kind, rs, re_) : found;
    }
    Py_UCS4 first = PyUnicode_READ_CHAR(text, rs);
    int plus = first == '+', paren = first == '(';
    for (int i = 0; i < ng;) {
        int best = -1;
        PyObject *best_kind = NULL;
        char digits[40];
        int nd = 0;
        for (int j = i; j < ng && j < i + 8; j++) {
            if (nd + groups[j].n > 16) break;
            memcpy(digits + nd, groups[j].d, groups[j].n);
            nd += groups[j].n;
            PyObject *kind = classify(digits, nd, plus && i == 0);
            if (kind) {
                best = j;
                best_kind = kind;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        Py_ssize_t start = (i == 0 && (plus || paren)) ? rs : groups[i].start;
        Py_ssize_t end = groups[best].end;
        if (end < n && PyUnicode_READ_CHAR(text, end) == ')'
            && PyUnicode_FindChar(text, '(', start, end, 1) >= 0)
            end++;
        if (!found_number(found, best_kind, start, end)) return NULL;
        i = best + 1;
    }
    return found;
}

/* ---- every personal-data span of a text whose facts are known (textclean.pii.find_pii) ---- */

static PyObject *pii_rules = NULL; /* the tuple below, kept alive */
static PyObject *email_finditer, *url_finditer, *handle_match, *ir_finditer, *iban_match, *run_finditer;
static PyObject *numbers_python;   /* pii._numbers_python(text, run): runs of more than 64 groups */
static PyTypeObject *match_type;   /* pii.Match (a NamedTuple) */
static PyObject *type_email, *type_url, *type_handle, *type_iban;
static PyObject *trailing_chars;   /* pii._TRAILING */
static PyObject *iban_drop;        /* the characters a Sheba number's spelling may hold between digits */

const char pd_set_pii_rules_doc[] =
"set_pii_rules(money_words, phone, national_id, card, rules)\n\n"
"The words after which a digit run is an amount, the type names of numbers, and `rules`: a tuple\n"
"(_EMAIL.finditer, _URL.finditer, _HANDLE.match, _IR.finditer, _IBAN.match, _RUN.finditer,\n"
"_numbers_python, Match, 'EMAIL', 'URL', 'HANDLE', 'IBAN', _TRAILING, the IBAN's dropped chars).";

PyObject *pd_set_pii_rules(PyObject *self, PyObject *args) {
    PyObject *money, *phone, *nid, *card, *rules;
    if (!PyArg_ParseTuple(args, "O!UUUO!", &PyTuple_Type, &money, &phone, &nid, &card, &PyTuple_Type, &rules))
        return NULL;
    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(money); w++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(money, w))) {
            PyErr_SetString(PyExc_TypeError, "money words must be str");
            return NULL;
        }
    }
    PyObject *fe, *fu, *mh, *fi, *mi, *fr, *np, *mt, *te, *tu, *th, *ti, *tr, *dr;
    if (!PyArg_ParseTuple(rules, "OOOOOOOO!UUUUUU", &fe, &fu, &mh, &fi, &mi, &fr, &np, &PyType_Type, &mt, &te, &tu,
                          &th, &ti, &tr, &dr))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)mt, &PyTuple_Type) || ((PyTypeObject *)mt)->tp_dictoffset) {
        PyErr_SetString(PyExc_TypeError, "Match must be a NamedTuple");
        return NULL;
    }
    Py_INCREF(money);
    Py_INCREF(phone);
    Py_INCREF(nid);
    Py_INCREF(card);
    Py_INCREF(rules);
    Py_XSETREF(money_words, money);
    Py_XSETREF(type_phone, phone);
    Py_XSETREF(type_id, nid);
    Py_XSETREF(type_card, card);
    Py_XSETREF(pii_rules, rules); /* the borrowed references below live as long as it */
    email_finditer = fe, url_finditer = fu, handle_match = mh, ir_finditer = fi, iban_match = mi;
    run_finditer = fr, numbers_python = np, match_type = (PyTypeObject *)mt;
    type_email = te, type_url = tu, type_handle = th, type_iban = ti, trailing_chars = tr, iban_drop = dr;
    Py_RETURN_NONE;
}

typedef struct {
    PyObject *type; /* borrowed */
    Py_ssize_t start, end, order;
} Span;

typedef struct {
    Span *v;
    Py_ssize_t n, cap;
} SpanList;

static int span_add(SpanList *l, PyObject *type, Py_ssize_t start, Py_ssize_t end) {
    if (l->n == l->cap) {
        Py_ssize_t cap = l->cap ? 2 * l->cap : 16;
        Span *v = PyMem_Realloc(l->v, cap * sizeof(Span));
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = (Span){type, start, end, l->n};
    l->n++;
    return 0;
}

/* pii.find_pii's order: by start, the longest first, then as found (Python's sort is stable) */
static int span_cmp(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    Py_ssize_t lx = x->end - x->start, ly = y->end - y->start;
    if (lx != ly) return lx > ly ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The (start, end) of a match object, or -1 */
static int match_span(PyObject *m, Py_ssize_t *start, Py_ssize_t *end) {
    PyObject *span = PyObject_CallMethod(m, "span", NULL);
    if (!span) return -1;
    int ok = PyArg_ParseTuple(span, "nn", start, end);
    Py_DECREF(span);
    return ok ? 0 : -1;
}

/* A match found by an email, URL or handle pattern, trimmed as find_pii trims it. */
static int add_trimmed(SpanList *l, PyObject *text, PyObject *type, PyObject *m) {
    Py_ssize_t start, end;
    if (match_span(m, &start, &end) < 0) return -1;
    while (end > start && PyUnicode_FindChar(trailing_chars, PyUnicode_READ_CHAR(text, end - 1), 0,
                                             PyUnicode_GET_LENGTH(trailing_chars), 1) >= 0)
        end--;
    if (type == type_email)
        while (start < PyUnicode_GET_LENGTH(text) && PyUnicode_READ_CHAR(text, start) == '.') start++;
    return span_add(l, type, start, end);
}

/* Each match of `finditer(text, lo, hi)` for every (lo, hi) of `spans` through `each`. */
static int for_each_match(PyObject *finditer, PyObject *text, PyObject *spans,
                          int (*each)(SpanList *, PyObject *, PyObject *, PyObject *), SpanList *l,
                          PyObject *type) {
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(spans); k++) {
        Py_ssize_t lo, hi;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spans, k), "nn", &lo, &hi)) return -1;
        PyObject *it = PyObject_CallFunction(finditer, "Onn", text, lo, hi);
        if (!it) return -1;
        PyObject *m;
        while ((m = PyIter_Next(it))) {
            int r = each(l, text, type, m);
            Py_DECREF(m);
            if (r < 0) {
                Py_DECREF(it);
                return -1;
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) return -1;
    }
    return 0;
}

/* `_IR` found "ir" here: a Sheba number if `_IBAN` matches from it and its check passes. */
static int add_iban(SpanList *l, PyObject *text, PyObject *type, PyObject *ir) {
    Py_ssize_t start, end;
    if (match_span(ir, &start, &end) < 0) return -1;
    PyObject *m = PyObject_CallFunction(iban_match, "On", text, start);
    if (!m) return -1;
    if (m == Py_None) {
        Py_DECREF(m);
        return 0;
    }
    int r = match_span(m, &start, &end);
    Py_DECREF(m);
    if (r < 0) return -1;
    /* iban_valid of the compact form: IR + 24 digits (Latin once translated), mod 97 */
    char compact[27];
    int n = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(text, i);
        if (PyUnicode_FindChar(iban_drop, c, 0, PyUnicode_GET_LENGTH(iban_drop), 1) >= 0) continue;
        if (n == 26) return 0;
        if (n < 2) { /* compact[:2].upper() == "IR" */
            Py_UCS4 u = Py_UNICODE_TOUPPER(c);
            compact[n++] = (char)(u == 'I' || u == 'R' ? u : '?');
            continue;
        }
        int d = Py_UNICODE_TODECIMAL(c);
        if (d < 0) return 0;
        compact[n++] = (char)('0' + d);
    }
    if (n != 26 || compact[0] != 'I' || compact[1] != 'R') return 0;
    /* int(compact[4:] + "1827" + compact[2:4]) % 97 == 1 */
    int rem = 0;
    for (int k = 4; k < 26; k++) rem = (rem * 10 + compact[k] - '0') % 97;
    const char *tail = "1827";
    for (int k = 0; k < 4; k++) rem = (rem * 10 + tail[k] - '0') % 97;
    for (int k = 2; k < 4; k++) rem = (rem * 10 + compact[k] - '0') % 97;
    return rem == 1 ? span_add(l, type_iban, start, end) : 0;
}

static int add_numbers(SpanList *l, PyObject *text, PyObject *type, PyObject *run) {
    Py_ssize_t start, end;
    if (match_span(run, &start, &end) < 0) return -1;
    PyObject *found = run_numbers(text, start, end);
    if (found == Py_None) {
        Py_DECREF(found);
        found = PyObject_CallFunctionObjArgs(numbers_python, text, run, NULL);
    }
    if (!found) return -1;
    PyObject *seq = PySequence_Fast(found, "numbers");
    Py_DECREF(found);
    if (!seq) return -1;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        PyObject *m = PySequence_Fast_GET_ITEM(seq, k), *t;
        Py_ssize_t a, b;
        if (!PyArg_ParseTuple(m, "Onn", &t, &a, &b)) {
            Py_DECREF(seq);
            return -1;
        }
        /* the type as one of the strings held here (the found objects go away) */
        t = PyUnicode_Compare(t, type_phone) == 0 ? type_phone : PyUnicode_Compare(t, type_id) == 0 ? type_id : type_card;
        if (span_add(l, t, a, b) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int add_handle(SpanList *l, PyObject *text, Py_ssize_t at) {
    PyObject *m = PyObject_CallFunction(handle_match, "On", text, at);
    if (!m) return -1;
    int r = m == Py_None ? 0 : add_trimmed(l, text, type_handle, m);
    Py_DECREF(m);
    return r;
}

const char pd_find_pii_doc[] =
"find_pii(text, facts) -> list of Match\n\n"
"pii.find_pii(text, facts) for a text whose batch facts are known (textclean.batch.TextFacts).";

PyObject *pd_find_pii(PyObject *self, PyObject *args) {
    PyObject *text, *facts;
    if (!PyArg_ParseTuple(args, "UO!", &text, &PyTuple_Type, &facts)) return NULL;
    if (!pii_rules) {
        PyErr_SetString(PyExc_RuntimeError, "set_pii_rules() first");
        return NULL;
    }
    PyObject *runs = PyTuple_GET_SIZE(facts) > 1 ? PyTuple_GET_ITEM(facts, 0) : NULL;
    PyObject *latin = runs ? PyTuple_GET_ITEM(facts, 1) : NULL;
    if (!runs || !PyTuple_Check(runs) || !PyTuple_Check(latin)) {
        PyErr_SetString(PyExc_TypeError, "facts must be a TextFacts");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int at = PyUnicode_FindChar(text, '@', 0, n, 1) >= 0;
    int has_latin = PyTuple_GET_SIZE(latin) > 0;
    SpanList l = {0};
    PyObject *out = NULL;
    if (at && has_latin && for_each_match(email_finditer, text, latin, add_trimmed, &l, type_email) < 0) goto done;
    if (has_latin && for_each_match(url_finditer, text, latin, add_trimmed, &l, type_url) < 0) goto done;
    if (at) { /* a handle starts at an "@": tried at each one */
        for (Py_ssize_t i = PyUnicode_FindChar(text, '@', 0, n, 1); i >= 0; i = PyUnicode_FindChar(text, '@', i + 1, n, 1))
            if (add_handle(&l, text, i) < 0) goto done;
    }
    if (has_latin && for_each_match(ir_finditer, text, latin, add_iban, &l, NULL) < 0) goto done;
    if (for_each_match(run_finditer, text, runs, add_numbers, &l, NULL) < 0) goto done;
    qsort(l.v, l.n, sizeof(Span), span_cmp);
    out = PyList_New(0);
    if (!out) goto done;
    Py_ssize_t last_end = -1;
    for (Py_ssize_t k = 0; k < l.n; k++) { /* the first (and longest) span wins where two overlap */
        Span *sp = &l.v[k];
        if (last_end >= 0 && sp->start < last_end) continue;
        PyObject *m = match_type->tp_alloc(match_type, 3);
        PyObject *a = PyLong_FromSsize_t(sp->start), *b = PyLong_FromSsize_t(sp->end);
        if (!m || !a || !b) {
            Py_XDECREF(m);
            Py_XDECREF(a);
            Py_XDECREF(b);
            Py_CLEAR(out);
            goto done;
        }
        Py_INCREF(sp->type);
        PyTuple_SET_ITEM(m, 0, sp->type);
        PyTuple_SET_ITEM(m, 1, a);
        PyTuple_SET_ITEM(m, 2, b);
        int r = PyList_Append(out, m);
        Py_DECREF(m);
        if (r < 0) {
            Py_CLEAR(out);
            goto done;
        }
        last_end = sp->end;
    }
done:
    PyMem_Free(l.v);
    return out;
}

