/* The C extension persian_data._speedups: what each source file gives the module (module.c). */
#ifndef PERSIAN_DATA_SPEEDUPS_H
#define PERSIAN_DATA_SPEEDUPS_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* facts.c: textclean.batch.analyze's pass */
PyObject *pd_facts(PyObject *self, PyObject *args);
extern const char pd_facts_doc[];
/* answers.c: textclean.answers.clean_answer on normalized text */
PyObject *pd_set_answer_rules(PyObject *self, PyObject *args);
PyObject *pd_answer_verdict(PyObject *self, PyObject *args);
extern const char pd_set_answer_rules_doc[], pd_answer_verdict_doc[];
/* pii.c: textclean.pii._numbers and find_pii */
PyObject *pd_set_pii_rules(PyObject *self, PyObject *args);
PyObject *pd_numbers(PyObject *self, PyObject *args);
PyObject *pd_find_pii(PyObject *self, PyObject *args);
extern const char pd_set_pii_rules_doc[], pd_numbers_doc[], pd_find_pii_doc[];
/* spacing.c: the normalizer's space, line and punctuation rules */
PyObject *pd_spaces_and_lines(PyObject *self, PyObject *arg);
PyObject *pd_set_punct_rules(PyObject *self, PyObject *args);
PyObject *pd_punct(PyObject *self, PyObject *arg);
extern const char pd_spaces_and_lines_doc[], pd_set_punct_rules_doc[], pd_punct_doc[];
/* words.c: the word hashes of textclean.near_dup.signatures */
PyObject *pd_set_word_rules(PyObject *self, PyObject *args);
PyObject *pd_word_hashes(PyObject *self, PyObject *args);
extern const char pd_set_word_rules_doc[], pd_word_hashes_doc[];
/* titles.c: the chat stage's title rule */
PyObject *pd_user_turns(PyObject *self, PyObject *args);
extern const char pd_user_turns_doc[];

/* tarcopy.c: shards.tarwrite.TarFileWriter's per-sample loop */
PyObject *pd_tar_samples(PyObject *self, PyObject *args);
extern const char pd_tar_samples_doc[];
/* jsonout.c: the shard formats' per-sample JSON documents, as orjson writes them */
PyObject *pd_render(PyObject *self, PyObject *args);
PyObject *pd_render_values(PyObject *fragments, PyObject *const *values, Py_ssize_t n, PyObject *skip,
                           PyObject *rest);
extern const char pd_render_doc[];
/* shardplan.c: shards.samples.read_samples' work on one manifest line. The split's context is a
   tuple built once by documents.line_planner; CTX_TEMPLATES: (document, second document or None,
   speaker part, gender part), each a fragments tuple. */
enum { CTX_FORMAT, CTX_ROOT, CTX_PREFIX, CTX_ENTRIES, CTX_SEEN, CTX_SAMPLE, CTX_SPEAKER, CTX_GENDER, CTX_SKIP,
       CTX_TEMPLATES, CTX_SIZE };
typedef struct { /* a line's fields, borrowed; NULL where the line lacks the key */
    PyObject *id, *audio, *sha, *duration, *frames, *rate, *text, *normalized, *channels, *speaker, *gender;
} PdLine;
PyObject *pd_shard_sample(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *pd_plan_line(PyObject *ctx, const PdLine *line, PyObject *number, PyObject *rest);
int pd_is_plan_context(PyObject *ctx);
extern const char pd_shard_sample_doc[];
/* manifestline.c: the same from a manifest line's bytes, with no dict in between */
PyObject *pd_shard_raw(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
extern const char pd_shard_raw_doc[];
/* planmath.c: shards.plan's shuffle and cut, and the tar plan digest's records */
PyObject *pd_digest_records(PyObject *self, PyObject *args);
PyObject *pd_cut_points(PyObject *self, PyObject *args);
PyObject *pd_shuffle(PyObject *self, PyObject *args);
extern const char pd_digest_records_doc[], pd_cut_points_doc[], pd_shuffle_doc[];

#endif
