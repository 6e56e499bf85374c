/* answers.c: the answer rules (textclean.answers.clean_answer on normalized text) in one pass. */
#include <stdint.h>
#include <string.h>
#include "speedups.h"

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

const char pd_set_answer_rules_doc[] =
"set_answer_rules(keywords, phrases, strip, courtesy_match, placeholder_search)\n\n"
"The answer rules' data (textclean.answers): the keywords; per keyword the phrases it leads to, each\n"
"(is_contact, pattern.search, word groups); the characters a sentence is stripped of; the courtesy\n"
"pattern's match and the placeholder pattern's search.";

PyObject *pd_set_answer_rules(PyObject *self, PyObject *args) {
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

/* text[lo:hi] (stripped of whitespace when `strip`) appended to `list`: 0, or -1 on error */
static int append_slice(PyObject *list, PyObject *text, Py_ssize_t lo, Py_ssize_t hi, int strip) {
    PyObject *slice = PyUnicode_Substring(text, lo, hi);
    if (slice && strip) Py_SETREF(slice, PyObject_CallMethod(slice, "strip", NULL));
    int r = slice ? PyList_Append(list, slice) : -1;
    Py_XDECREF(slice);
    return r;
}

/* A contact sentence text[pos:end]: into `removed` (stripped), and out of the text kept (`*parts`,
   started with everything before it at the first one). 0, or -1 on error. */
static int take_out(PyObject *text, Py_ssize_t pos, Py_ssize_t end, PyObject *removed, PyObject **parts) {
    if (append_slice(removed, text, pos, end, 1) < 0) return -1;
    if (*parts) return 0;
    if (!(*parts = PyList_New(0))) return -1;
    return append_slice(*parts, text, 0, pos, 0);
}

static PyObject *verdict(PyObject *kept, const char *reason, PyObject *removed) {
    return Py_BuildValue("(NzN)", kept ? kept : Py_NewRef(Py_None), reason, removed);
}

const char pd_answer_verdict_doc[] =
"answer_verdict(text, min_chars) -> (kept, reason, removed)\n\n"
"answers.clean_answer(text, min_chars, normalized=True) (the fields of its AnswerVerdict).";

PyObject *pd_answer_verdict(PyObject *self, PyObject *args) {
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
            if (take_out(text, pos, end, removed, &parts) < 0) goto error;
            pos = end;
            continue;
        }
        if (parts && append_slice(parts, text, pos, end, 0) < 0) goto error;
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

