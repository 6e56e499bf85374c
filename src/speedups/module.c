/* module.c: the module persian_data._speedups, the hot loops of the chat stage and of the shard
   writers in C (setup.py builds it where it can; each function has a Python form that stays the reference). */
#include "speedups.h"

static PyMethodDef methods[] = {
    {"facts", pd_facts, METH_VARARGS, pd_facts_doc},
    {"set_answer_rules", pd_set_answer_rules, METH_VARARGS, pd_set_answer_rules_doc},
    {"answer_verdict", pd_answer_verdict, METH_VARARGS, pd_answer_verdict_doc},
    {"set_pii_rules", pd_set_pii_rules, METH_VARARGS, pd_set_pii_rules_doc},
    {"numbers", pd_numbers, METH_VARARGS, pd_numbers_doc},
    {"find_pii", pd_find_pii, METH_VARARGS, pd_find_pii_doc},
    {"spaces_and_lines", pd_spaces_and_lines, METH_O, pd_spaces_and_lines_doc},
    {"set_punct_rules", pd_set_punct_rules, METH_VARARGS, pd_set_punct_rules_doc},
    {"punct", pd_punct, METH_O, pd_punct_doc},
    {"user_turns", pd_user_turns, METH_VARARGS, pd_user_turns_doc},
    {"set_word_rules", pd_set_word_rules, METH_VARARGS, pd_set_word_rules_doc},
    {"word_hashes", pd_word_hashes, METH_VARARGS, pd_word_hashes_doc},
    {"tar_samples", pd_tar_samples, METH_VARARGS, pd_tar_samples_doc},
    {"render", pd_render, METH_VARARGS, pd_render_doc},
    {"shard_sample", (PyCFunction)(void (*)(void))pd_shard_sample, METH_FASTCALL, pd_shard_sample_doc},
    {"shard_raw", (PyCFunction)(void (*)(void))pd_shard_raw, METH_FASTCALL, pd_shard_raw_doc},
    {"digest_records", pd_digest_records, METH_VARARGS, pd_digest_records_doc},
    {"cut_points", pd_cut_points, METH_VARARGS, pd_cut_points_doc},
    {"shuffle", pd_shuffle, METH_VARARGS, pd_shuffle_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_speedups", "The hot loops of the chat stage and the shard writers in C (see the Python form of each).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
