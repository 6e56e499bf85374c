/* persian_data._speedups: the hot loops of the chat stage in C (setup.py builds it where it can).
 *
 * 1. The batch pass of `textclean.batch.analyze`, one loop a text.
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
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

PyDoc_STRVAR(facts_doc,
"facts(type, texts, head, table16, table_full) -> list of `type`, or None\n\n"
"The facts of each text (see textclean.batch), as instances of `type` (a 6-field NamedTuple). table16: one byte of classes for each code point\n"
"below U+10000; table_full: the same for every code point, or None: then None is returned when a\n"
"text holds a character above U+FFFF (the caller builds the full table and asks again).");

static PyObject *facts(PyObject *self, PyObject *args) {
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

/* ---- the answer rules' common case (textclean.answers.clean_answer on normalized text) ---- */

/* Every word the rules test with `in` (the phrases' keywords and the words of their groups), found
   in one pass over a text: a table of first characters, then the rest compared in place. */
#define MAX_WORDS 128
#define MAX_PHRASES 512
#define MAX_GROUPS 4
typedef struct {
    Py_UCS4 *chars;
    Py_ssize_t len;
    int next; /* the next word with the same first character, -1 */
} Word;
typedef struct {
    int keyword;                       /* the word index of the keyword that leads to it */
    int contact;                       /* a contact phrase (else a referral) */
    PyObject *search;                  /* its pattern's search (borrowed from `phrase_data`) */
    int n_groups;
    uint64_t groups[MAX_GROUPS][2];    /* each group: the words of which one must be there */
} Phrase;

static Word words[MAX_WORDS];
static int n_words = 0;
static Phrase phrases[MAX_PHRASES];
static int n_phrases = 0;
static int first_word[0x10000]; /* first character (BMP) -> first word index + 1, 0 none */
static PyObject *strip_chars = NULL;
static PyObject *courtesy_match = NULL;     /* _COURTESY.match */
static PyObject *placeholder_search = NULL; /* _PLACEHOLDER.search */
static PyObject *phrase_data = NULL;        /* keeps the phrases' search callables alive */

static void clear_words(void) {
    for (int w = 0; w < n_words; w++) PyMem_Free(words[w].chars);
    n_words = n_phrases = 0;
    memset(first_word, 0, sizeof first_word);
}

/* The index of `word` in the vocabulary (added if new), or -1 with an exception set. */
static int word_index(PyObject *word) {
    if (!PyUnicode_Check(word) || PyUnicode_GET_LENGTH(word) == 0) {
        PyErr_SetString(PyExc_ValueError, "words must be non-empty str");
        return -1;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(word);
    Py_UCS4 c0 = PyUnicode_READ_CHAR(word, 0);
    if (c0 > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "words must start with a BMP character");
        return -1;
    }
    for (int w = first_word[c0] - 1; w >= 0; w = words[w].next) {
        if (words[w].len == len) {
            int same = 1;
            for (Py_ssize_t k = 0; same && k < len; k++) same = words[w].chars[k] == PyUnicode_READ_CHAR(word, k);
            if (same) return w;
        }
    }
    if (n_words == MAX_WORDS) {
        PyErr_SetString(PyExc_ValueError, "too many words");
        return -1;
    }
    Py_UCS4 *chars = PyUnicode_AsUCS4Copy(word);
    if (!chars) return -1;
    words[n_words] = (Word){chars, len, first_word[c0] - 1};
    first_word[c0] = n_words + 1;
    return n_words++;
}

PyDoc_STRVAR(set_answer_rules_doc,
"set_answer_rules(keywords, phrases, strip, courtesy_match, placeholder_search)\n\n"
"The answer rules' data (textclean.answers): the keywords; per keyword the phrases it leads to, each\n"
"(is_contact, pattern.search, word groups); the characters a sentence is stripped of; the courtesy\n"
"pattern's match and the placeholder pattern's search.");

static PyObject *set_answer_rules(PyObject *self, PyObject *args) {
    PyObject *keywords, *needs, *strip, *match, *placeholder;
    if (!PyArg_ParseTuple(args, "O!O!UOO", &PyTuple_Type, &keywords, &PyTuple_Type, &needs, &strip, &match,
                          &placeholder))
        return NULL;
    if (PyTuple_GET_SIZE(keywords) != PyTuple_GET_SIZE(needs)) {
        PyErr_SetString(PyExc_ValueError, "one tuple of phrases per keyword");
        return NULL;
    }
    clear_words();
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(keywords); k++) {
        int kw = word_index(PyTuple_GET_ITEM(keywords, k));
        if (kw < 0) goto fail;
        PyObject *led = PyTuple_GET_ITEM(needs, k);
        if (!PyTuple_Check(led)) goto bad;
        for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(led); p++) {
            PyObject *phrase = PyTuple_GET_ITEM(led, p);
            if (!PyTuple_Check(phrase) || PyTuple_GET_SIZE(phrase) != 3) goto bad;
            PyObject *groups = PyTuple_GET_ITEM(phrase, 2);
            if (!PyTuple_Check(groups) || PyTuple_GET_SIZE(groups) > MAX_GROUPS || n_phrases == MAX_PHRASES) goto bad;
            Phrase *ph = &phrases[n_phrases++];
            memset(ph, 0, sizeof *ph);
            ph->keyword = kw;
            ph->contact = PyObject_IsTrue(PyTuple_GET_ITEM(phrase, 0));
            ph->search = PyTuple_GET_ITEM(phrase, 1);
            ph->n_groups = (int)PyTuple_GET_SIZE(groups);
            for (int g = 0; g < ph->n_groups; g++) {
                PyObject *group = PyTuple_GET_ITEM(groups, g);
                if (!PyTuple_Check(group)) goto bad;
                for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(group); w++) {
                    int at = word_index(PyTuple_GET_ITEM(group, w));
                    if (at < 0) goto fail;
                    ph->groups[g][at >> 6] |= (uint64_t)1 << (at & 63);
                }
            }
        }
    }
    Py_INCREF(strip);
    Py_INCREF(match);
    Py_INCREF(placeholder);
    Py_INCREF(needs);
    Py_XSETREF(strip_chars, strip);
    Py_XSETREF(courtesy_match, match);
    Py_XSETREF(placeholder_search, placeholder);
    Py_XSETREF(phrase_data, needs);
    Py_RETURN_NONE;
bad:
    PyErr_SetString(PyExc_ValueError, "needs: per keyword a tuple of phrases, each a tuple of word tuples");
fail:
    clear_words();
    return NULL;
}

/* The words of the vocabulary that `text` holds, as a bit set. */
static void words_held(int kind, const void *data, Py_ssize_t n, uint64_t held[2]) {
    held[0] = held[1] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c > 0xFFFF || !first_word[c]) continue;
        for (int w = first_word[c] - 1; w >= 0; w = words[w].next) {
            const Word *wd = &words[w];
            if (i + wd->len > n || (held[w >> 6] >> (w & 63)) & 1) continue;
            Py_ssize_t k = 1;
            while (k < wd->len && PyUnicode_READ(kind, data, i + k) == wd->chars[k]) k++;
            if (k == wd->len) held[w >> 6] |= (uint64_t)1 << (w & 63);
        }
    }
}

/* May a sentence of the text match a phrase (answers._phrase_possible), given the words it holds? */
static int phrase_possible(const uint64_t held[2]) {
    for (int p = 0; p < n_phrases; p++) {
        const Phrase *ph = &phrases[p];
        if (!((held[ph->keyword >> 6] >> (ph->keyword & 63)) & 1)) continue;
        int all = 1;
        for (int g = 0; all && g < ph->n_groups; g++) all = (ph->groups[g][0] & held[0]) || (ph->groups[g][1] & held[1]);
        if (all) return 1;
    }
    return 0;
}

static int is_terminator(Py_UCS4 c) { return c == '.' || c == '!' || c == '?' || c == 0x061F; }

static int in_strip(Py_UCS4 c) {
    return PyUnicode_FindChar(strip_chars, c, 0, PyUnicode_GET_LENGTH(strip_chars), 1) >= 0;
}

enum { K_EMPTY, K_COURTESY, K_CONTENT, K_CONTACT, K_REFERRAL };

/* text[lo:hi] with each ZWNJ as a space (a sentence's loose form, once stripped), or NULL */
static PyObject *loose_form(PyObject *text, Py_ssize_t lo, Py_ssize_t hi) {
    PyObject *sentence = PyUnicode_Substring(text, lo, hi);
    if (!sentence) return NULL;
    if (PyUnicode_FindChar(sentence, 0x200C, 0, hi - lo, 1) < 0) return sentence;
    PyObject *zwnj = PyUnicode_FromOrdinal(0x200C), *space = PyUnicode_FromOrdinal(' ');
    PyObject *loose = (zwnj && space) ? PyUnicode_Replace(sentence, zwnj, space, -1) : NULL;
    Py_XDECREF(zwnj);
    Py_XDECREF(space);
    Py_DECREF(sentence);
    return loose;
}

/* 1 when `fn(arg)` is not None, 0 when it is, -1 on error */
static int found_by(PyObject *fn, PyObject *arg) {
    PyObject *m = PyObject_CallOneArg(fn, arg);
    if (!m) return -1;
    int found = m != Py_None;
    Py_DECREF(m);
    return found;
}

/* Does a phrase of this kind (contact or referral) match the loose sentence? (answers._any_phrase:
   the phrases its held keywords lead to, whose every word group it holds; then the pattern.) */
static int any_phrase(int contact, const uint64_t held[2], PyObject **loose, PyObject *text, Py_ssize_t lo,
                      Py_ssize_t hi) {
    for (int p = 0; p < n_phrases; p++) {
        const Phrase *ph = &phrases[p];
        if (ph->contact != contact || !((held[ph->keyword >> 6] >> (ph->keyword & 63)) & 1)) continue;
        int all = 1;
        for (int g = 0; all && g < ph->n_groups; g++) all = (ph->groups[g][0] & held[0]) || (ph->groups[g][1] & held[1]);
        if (!all) continue;
        if (!*loose && !(*loose = loose_form(text, lo, hi))) return -1;
        int found = found_by(ph->search, *loose);
        if (found) return found;
    }
    return 0;
}

/* answers._kind_normalized of the sentence text[lo:hi] (K_*), -1 on error. `whole`: the text may
   hold a phrase or a placeholder (else only the plain kinds are possible). */
static int sentence_kind(PyObject *text, int kind, const void *data, Py_ssize_t lo, Py_ssize_t hi, int whole) {
    Py_ssize_t slo = lo, shi = hi;
    /* the loose form: ZWNJ as a space, stripped of `strip_chars` (the space a ZWNJ becomes is one) */
    while (lo < hi) {
        Py_UCS4 c = PyUnicode_READ(kind, data, lo);
        if (c != 0x200C && !in_strip(c)) break;
        lo++;
    }
    while (hi > lo) {
        Py_UCS4 c = PyUnicode_READ(kind, data, hi - 1);
        if (c != 0x200C && !in_strip(c)) break;
        hi--;
    }
    if (lo == hi) return K_EMPTY;
    PyObject *loose = NULL;
    int result = -1;
    if (whole) {
        if (PyUnicode_FindChar(text, '[', slo, shi, 1) >= 0) { /* a placeholder in the sentence */
            PyObject *sentence = PyUnicode_Substring(text, slo, shi);
            int found = sentence ? found_by(placeholder_search, sentence) : -1;
            Py_XDECREF(sentence);
            if (found) return found < 0 ? -1 : K_CONTACT;
        }
        uint64_t held[2];
        words_held(kind, (const char *)data + lo * kind, hi - lo, held);
        int found = any_phrase(1, held, &loose, text, lo, hi);
        if (found) {
            result = found < 0 ? -1 : K_CONTACT;
            goto done;
        }
        found = any_phrase(0, held, &loose, text, lo, hi);
        if (found) {
            result = found < 0 ? -1 : (hi - lo < 120 ? K_REFERRAL : K_CONTENT);
            goto done;
        }
    }
    if (hi - lo >= 40) {
        result = K_CONTENT;
        goto done;
    }
    if (!loose && !(loose = loose_form(text, lo, hi))) goto done;
    int courtesy = found_by(courtesy_match, loose);
    result = courtesy < 0 ? -1 : courtesy ? K_COURTESY : K_CONTENT;
done:
    Py_XDECREF(loose);
    return result;
}

/* The end of the sentence that starts at `pos` (answers._SENTENCE: a run of anything but
   terminators and newlines, then a run of terminators, or of newlines, or the end). */
static Py_ssize_t sentence_end(int kind, const void *data, Py_ssize_t n, Py_ssize_t pos) {
    Py_ssize_t i = pos;
    while (i < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '\n' || is_terminator(c)) break;
        i++;
    }
    if (i < n) {
        if (PyUnicode_READ(kind, data, i) == '\n') {
            while (i < n && PyUnicode_READ(kind, data, i) == '\n') i++;
        } else {
            while (i < n && is_terminator(PyUnicode_READ(kind, data, i))) i++;
        }
    }
    return i;
}

static PyObject *verdict(PyObject *kept, const char *reason, PyObject *removed) {
    return Py_BuildValue("(NzN)", kept ? kept : Py_NewRef(Py_None), reason, removed);
}

PyDoc_STRVAR(answer_verdict_doc,
"answer_verdict(text, min_chars) -> (kept, reason, removed)\n\n"
"answers.clean_answer(text, min_chars, normalized=True) (the fields of its AnswerVerdict).");

static PyObject *answer_verdict(PyObject *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t min_chars;
    if (!PyArg_ParseTuple(args, "Un", &text, &min_chars)) return NULL;
    if (!courtesy_match) {
        PyErr_SetString(PyExc_RuntimeError, "set_answer_rules() first");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    uint64_t held[2];
    words_held(kind, data, n, held);
    /* whole: a sentence may hold a phrase or a placeholder; else the answer is kept whole as soon
       as one sentence has content (no sentence of it can be a contact one) */
    int whole = PyUnicode_FindChar(text, '[', 0, n, 1) >= 0 || phrase_possible(held);
    PyObject *removed = PyList_New(0), *parts = NULL;
    if (!removed) return NULL;
    int content = 0, referral = 0;
    for (Py_ssize_t pos = 0; pos < n;) {
        Py_ssize_t end = sentence_end(kind, data, n, pos);
        int k = sentence_kind(text, kind, data, pos, end, whole);
        if (k < 0) goto error;
        if (k == K_CONTENT) {
            content = 1;
            if (!whole) break;
        } else if (k == K_REFERRAL) {
            referral = 1;
        } else if (k == K_CONTACT) {
            PyObject *sentence = PyUnicode_Substring(text, pos, end);
            PyObject *stripped = sentence ? PyObject_CallMethod(sentence, "strip", NULL) : NULL;
            Py_XDECREF(sentence);
            if (!stripped || PyList_Append(removed, stripped) < 0) {
                Py_XDECREF(stripped);
                goto error;
            }
            Py_DECREF(stripped);
            if (!parts) { /* the sentences kept so far: every one before this */
                parts = PyList_New(0);
                PyObject *before = parts ? PyUnicode_Substring(text, 0, pos) : NULL;
                if (!before || PyList_Append(parts, before) < 0) {
                    Py_XDECREF(before);
                    goto error;
                }
                Py_DECREF(before);
            }
            pos = end;
            continue;
        }
        if (parts) {
            PyObject *sentence = PyUnicode_Substring(text, pos, end);
            if (!sentence || PyList_Append(parts, sentence) < 0) {
                Py_XDECREF(sentence);
                goto error;
            }
            Py_DECREF(sentence);
        }
        pos = end;
    }
    if (!content) {
        Py_XDECREF(parts);
        return verdict(NULL, PyList_GET_SIZE(removed) ? "contact_only" : referral ? "referral_only" : "no_content",
                       removed);
    }
    PyObject *joined = text;
    Py_INCREF(joined);
    if (parts) {
        PyObject *empty = PyUnicode_New(0, 0);
        Py_DECREF(joined);
        joined = empty ? PyUnicode_Join(empty, parts) : NULL;
        Py_XDECREF(empty);
        Py_CLEAR(parts);
        if (!joined) goto error;
    }
    PyObject *kept = PyObject_CallMethod(joined, "strip", NULL);
    Py_DECREF(joined);
    if (!kept) goto error;
    if (PyUnicode_GET_LENGTH(kept) < min_chars) {
        Py_DECREF(kept);
        return verdict(NULL, "too_short", removed);
    }
    return verdict(kept, NULL, removed);
error:
    Py_XDECREF(parts);
    Py_DECREF(removed);
    return NULL;
}

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

PyDoc_STRVAR(numbers_doc,
"numbers(text, start, end) -> list of (type, start, end)\n\n"
"pii._numbers for the digit run text[start:end] (a match of pii._RUN).");

static PyObject *run_numbers(PyObject *text, Py_ssize_t rs, Py_ssize_t re_);

static PyObject *numbers(PyObject *self, PyObject *args) {
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
    /* the groups: runs of decimal digits, as Latin digits */
    Group groups[64];
    int ng = 0, all_digits = 1;
    for (Py_ssize_t i = rs; i < re_;) {
        Py_UCS4 c = PyUnicode_READ_CHAR(text, i);
        if (!Py_UNICODE_ISDECIMAL(c)) {
            all_digits = 0;
            i++;
            continue;
        }
        if (ng == 64) { /* a run this long holds no number of the lengths below more than once: */
            Py_DECREF(found); /* the caller's Python form handles it */
            Py_RETURN_NONE;
        }
        Group *g = &groups[ng++];
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

PyDoc_STRVAR(set_pii_rules_doc,
"set_pii_rules(money_words, phone, national_id, card, rules)\n\n"
"The words after which a digit run is an amount, the type names of numbers, and `rules`: a tuple\n"
"(_EMAIL.finditer, _URL.finditer, _HANDLE.match, _IR.finditer, _IBAN.match, _RUN.finditer,\n"
"_numbers_python, Match, 'EMAIL', 'URL', 'HANDLE', 'IBAN', _TRAILING, the IBAN's dropped chars).");

static PyObject *set_pii_rules(PyObject *self, PyObject *args) {
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

PyDoc_STRVAR(find_pii_doc,
"find_pii(text, facts) -> list of Match\n\n"
"pii.find_pii(text, facts) for a text whose batch facts are known (textclean.batch.TextFacts).");

static PyObject *find_pii(PyObject *self, PyObject *args) {
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

/* ---- the normalizer's spacing rules (normalize._Compiled._rules) ---- */

/* Both rules only delete spaces and newlines, so the result has the input's kind (its largest
   character stays): it is built in a buffer of that kind. */
#define SPACES_LOOP(T)                                                                                \
    do {                                                                                              \
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
    } while (0)

PyDoc_STRVAR(spaces_and_lines_doc,
"spaces_and_lines(s) -> str\n\n"
"The normalizer's space and line rules in one pass, as applied in this order: runs of spaces\n"
"become one, a space before or after a newline goes, three newlines or more become two.");

static PyObject *spaces_and_lines(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "spaces_and_lines() wants str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    void *buf = PyMem_Malloc((n + 1) * kind);
    if (!buf) return PyErr_NoMemory();
    Py_ssize_t o = 0;
    if (kind == PyUnicode_1BYTE_KIND)
        SPACES_LOOP(Py_UCS1);
    else if (kind == PyUnicode_2BYTE_KIND)
        SPACES_LOOP(Py_UCS2);
    else
        SPACES_LOOP(Py_UCS4);
    PyObject *r = PyUnicode_FromKindAndData(kind, buf, o);
    PyMem_Free(buf);
    return r;
}

enum { P_CLOSE = 1, P_OPEN = 2, P_SPACE = 4, P_SEP = 8 };
static unsigned char punct_class[0x10000];
static int punct_ready = 0;

static int punct_class_of(Py_UCS4 c) {
    if (c < 0x10000) return punct_class[c];
    return Py_UNICODE_ISSPACE(c) ? P_SPACE : 0; /* no mark or separator lies above U+FFFF */
}

PyDoc_STRVAR(set_punct_rules_doc,
"set_punct_rules(close, open, sep)\n\n"
"The closing and opening marks of the punctuation spacing rule (BMP characters), and the batch\n"
"separator.");

static PyObject *set_punct_rules(PyObject *self, PyObject *args) {
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
    } while (0)

PyDoc_STRVAR(punct_doc,
"punct(s) -> str\n\n"
"normalize_context._punct in one pass: no space before a closing mark that ends a word (followed\n"
"by whitespace, a mark, the separator or the end; ' ...' keeps its space), none after an opening\n"
"mark.");

static PyObject *punct(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "punct() wants str");
        return NULL;
    }
    if (!punct_ready) {
        PyErr_SetString(PyExc_RuntimeError, "set_punct_rules() first");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    void *buf = PyMem_Malloc((n + 1) * kind);
    if (!buf) return PyErr_NoMemory();
    Py_ssize_t o = 0;
    if (kind == PyUnicode_1BYTE_KIND)
        PUNCT_LOOP(Py_UCS1);
    else if (kind == PyUnicode_2BYTE_KIND)
        PUNCT_LOOP(Py_UCS2);
    else
        PUNCT_LOOP(Py_UCS4);
    PyObject *r = PyUnicode_FromKindAndData(kind, buf, o);
    PyMem_Free(buf);
    return r;
}

static PyMethodDef methods[] = {
    {"facts", facts, METH_VARARGS, facts_doc},
    {"set_answer_rules", set_answer_rules, METH_VARARGS, set_answer_rules_doc},
    {"answer_verdict", answer_verdict, METH_VARARGS, answer_verdict_doc},
    {"set_pii_rules", set_pii_rules, METH_VARARGS, set_pii_rules_doc},
    {"numbers", numbers, METH_VARARGS, numbers_doc},
    {"find_pii", find_pii, METH_VARARGS, find_pii_doc},
    {"spaces_and_lines", spaces_and_lines, METH_O, spaces_and_lines_doc},
    {"set_punct_rules", set_punct_rules, METH_VARARGS, set_punct_rules_doc},
    {"punct", punct, METH_O, punct_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "The hot loops of the chat stage in C (see the Python form of each).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
