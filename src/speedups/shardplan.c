/* shardplan.c: shards.samples.read_samples' work on one manifest line, in C, once its fields are
   known (from its dict, parsed by orjson: shard_sample; or from its bytes: manifestline.c): the
   checks, the hash cache's word on the clip (or its stat), the Sample, and what the format makes
   of it (documents.py's templates, written by jsonout.c). A line it cannot take exactly as the
   Python form would (a missing or odd field, an id seen before, an id that needs escaping, a name
   that needs a PAX header, a clip it cannot stat, a value render leaves) gets None: the Python
   form, which stays the reference, then plans it or says what is wrong with it. */
#include "speedups.h"
#include <limits.h>
#include <math.h>
#include <sys/stat.h>

enum { WEBDATASET = 0, SHAR = 1, NEMO = 2 };

#define MAX_CHANNELS 64
#define MAX_TAR_SIZE 8589934592LL /* 8 ** 11: from there a member needs a PAX header */

static PyObject *k_id, *k_audio_path, *k_audio_ref, *k_duration, *k_frames, *k_sample_rate, *k_channels, *k_sha256,
    *k_text, *k_text_normalized, *k_members, *k_extra, *k_tar_bytes, *k_lower, *k_strip, *s_slash_dot,
    *s_bin, *s_json, *s_dot, *b_newline, *b_empty, *i_one;

static int intern_all(void) {
    if (i_one) return 0;
#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return -1
    INTERN(k_id, "id");
    INTERN(k_audio_path, "audio_path");
    INTERN(k_audio_ref, "audio_ref");
    INTERN(k_duration, "duration");
    INTERN(k_frames, "frames");
    INTERN(k_sample_rate, "sample_rate");
    INTERN(k_channels, "channels");
    INTERN(k_sha256, "sha256");
    INTERN(k_text, "text");
    INTERN(k_text_normalized, "text_normalized");
    INTERN(k_members, "members");
    INTERN(k_extra, "extra");
    INTERN(k_tar_bytes, "tar_bytes");
    INTERN(k_lower, "lower");
    INTERN(k_strip, "strip");
    INTERN(s_slash_dot, "/.");
    INTERN(s_bin, "bin");
    INTERN(s_json, ".json");
    INTERN(s_dot, ".");
#undef INTERN
    if (!(b_newline = PyBytes_FromString("\n")) || !(b_empty = PyBytes_FromString(""))) return -1;
    return (i_one = PyLong_FromLong(1)) ? 0 : -1;
}

/* line[key], borrowed; NULL with no error when the key is missing. */
static PyObject *field(PyObject *line, PyObject *key) { return PyDict_GetItemWithError(line, key); }

/* -1, 0 or 1 as the int `v` is below, at or above zero. */
static int long_sign(PyObject *v) {
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    return overflow ? overflow : (n > 0) - (n < 0);
}

/* A member name of one ustar header: at most 100 bytes, ASCII (so bytes = characters), no NUL. */
static int plain_name(PyObject *name) {
    return PyUnicode_IS_ASCII(name) && PyUnicode_GET_LENGTH(name) <= 100 &&
           PyUnicode_FindChar(name, 0, 0, PyUnicode_GET_LENGTH(name), 1) == -1;
}

static long long member_bytes(long long size) { return 512 + size + (512 - size % 512) % 512; }

/* A decimal int of integrity._unpack's (an optional '-', then ASCII digits, within a long long)
   from `*at`, ended by a space or `end`: 1 with `*at` moved past it, 0 when it is not one (the
   Python form reads it, or not). */
static int entry_number(const char **at, const char *end, long long *out) {
    const char *p = *at;
    int negative = p < end && *p == '-';
    p += negative;
    const char *digits = p;
    long long n = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (n > (LLONG_MAX - (*p - '0')) / 10) return 0;
        n = n * 10 + (*p - '0');
    }
    if (p == digits || (p < end && *p != ' ')) return 0;
    *out = negative ? -n : n;
    *at = p;
    return 1;
}

/* The hash cache's entry for a clip, "<sha256> <size> <mtime_ns> <inode>[ <blob sha1>]"
   (integrity.CACHE_VERSION), against the manifest's sha256: 1 when it records that sha256
   (*stat then (size, mtime_ns, inode), new), 0 when it records another one (so the clip is
   stat'ed, as HashCache.recorded's caller does), 2 when it is not an entry read the same way here
   (the Python form decides), -1 on error (set). */
static int cache_word(PyObject *entry, PyObject *sha, PyObject **stat) {
    if (!PyUnicode_CheckExact(entry) || !PyUnicode_IS_ASCII(entry)) return 2;
    const char *text = (const char *)PyUnicode_DATA(entry), *end = text + PyUnicode_GET_LENGTH(entry);
    const char *space = memchr(text, ' ', end - text);
    if (!space || space == text) return 2;
    long long v[3];
    const char *at = space;
    for (int i = 0; i < 3; i++) {
        if (at == end || *at++ != ' ' || !entry_number(&at, end, &v[i])) return 2;
    }
    if (at < end && (*at != ' ' || memchr(at + 1, ' ', end - at - 1))) return 2; /* a blob sha1, without spaces */
    Py_ssize_t sha_len;
    const char *want = PyUnicode_AsUTF8AndSize(sha, &sha_len);
    if (!want) { /* surrogates: compared by the Python form */
        PyErr_Clear();
        return 2;
    }
    if (sha_len != space - text || memcmp(want, text, sha_len) != 0) return 0;
    return (*stat = Py_BuildValue("(LLL)", v[0], v[1], v[2])) ? 1 : -1;
}

/* (size, mtime_ns, inode) of `path`, as samples._stat gives them; NULL with no error when it
   cannot be stat'ed (the Python form says why). */
static PyObject *stat_tuple(PyObject *path) {
    PyObject *encoded = PyUnicode_EncodeFSDefault(path);
    if (!encoded) return NULL;
    struct stat st;
    int r = stat(PyBytes_AS_STRING(encoded), &st);
    Py_DECREF(encoded);
    if (r != 0) return NULL;
    long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec; /* to the year 2262 */
    return Py_BuildValue("(LLK)", (long long)st.st_size, mtime_ns, (unsigned long long)st.st_ino);
}

const char pd_shard_sample_doc[] =
    "shard_sample(ctx, line, number) -> Sample or None\n\n"
    "read_samples' loop body for one parsed manifest line (see shards/documents.line_planner);\n"
    "None when the Python form must plan the line.";

PyObject *pd_shard_sample(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !pd_is_plan_context(args[0])) {
        PyErr_SetString(PyExc_TypeError, "shard_sample(ctx, line, number): ctx is documents.line_planner's tuple");
        return NULL;
    }
    if (intern_all() < 0) return NULL;
    PyObject *ctx = args[0], *line = args[1];
    if (!PyDict_CheckExact(line)) Py_RETURN_NONE;
    PyObject *speaker = PyTuple_GET_ITEM(ctx, CTX_SPEAKER), *gender = PyTuple_GET_ITEM(ctx, CTX_GENDER);
    PdLine f = {field(line, k_id), field(line, k_audio_path), field(line, k_sha256), field(line, k_duration),
                field(line, k_frames), field(line, k_sample_rate), field(line, k_text),
                field(line, k_text_normalized), field(line, k_channels),
                speaker != Py_None ? field(line, speaker) : NULL, gender != Py_None ? field(line, gender) : NULL};
    PyObject *ref = field(line, k_audio_ref);
    if (PyErr_Occurred()) return NULL;
    if (ref && ref != Py_None) Py_RETURN_NONE;
    return pd_plan_line(ctx, &f, args[2], line);
}

int pd_is_plan_context(PyObject *ctx) { return PyTuple_CheckExact(ctx) && PyTuple_GET_SIZE(ctx) == CTX_SIZE; }

/* The loop body once a line's fields are known (borrowed in `line`; `speaker` and `gender` NULL
   when the line lacks the column): from a dict (shard_sample; `rest` the dict) or from the line's
   bytes (manifestline.c; `text` and `normalized` their JSON strings as bytes, `rest` the source
   columns already written). */
PyObject *pd_plan_line(PyObject *ctx, const PdLine *line, PyObject *number, PyObject *rest) {
    if (intern_all() < 0) return NULL;
    int fmt = (int)PyLong_AsLong(PyTuple_GET_ITEM(ctx, CTX_FORMAT));
    PyObject *templates = PyTuple_GET_ITEM(ctx, CTX_TEMPLATES), *skip = PyTuple_GET_ITEM(ctx, CTX_SKIP);

    /* Everything below that is a new reference, released at `done`. */
    PyObject *result = NULL, *path = NULL, *stat = NULL, *ext = NULL, *duration = NULL, *sample = NULL,
             *gender = NULL, *doc = NULL, *second = NULL, *members = NULL, *ids = NULL,
             *seconds = NULL, *spoken = NULL, *gendered = NULL, *name_a = NULL, *name_b = NULL, *member_b = NULL,
             *tar = NULL;
    int trusted = 0;

    PyObject *id = line->id, *audio = line->audio, *sha = line->sha, *raw_duration = line->duration,
             *frames = line->frames, *rate = line->rate, *text = line->text, *normalized = line->normalized,
             *channels = line->channels;
    if (!id || !audio || !sha || !raw_duration || !frames || !rate || !text || !normalized) Py_RETURN_NONE;
    if (!PyUnicode_CheckExact(id) || !PyUnicode_CheckExact(audio) || !PyUnicode_CheckExact(sha)) Py_RETURN_NONE;
    if (!channels) channels = i_one;
    /* the values samples._value_problem accepts (the Python form names any other) */
    if (!(PyUnicode_CheckExact(text) || PyBytes_CheckExact(text)) ||
        !(PyUnicode_CheckExact(normalized) || PyBytes_CheckExact(normalized)) || !PyUnicode_GET_LENGTH(id) ||
        !PyUnicode_GET_LENGTH(audio) || !PyUnicode_GET_LENGTH(sha) || !PyLong_CheckExact(frames) ||
        long_sign(frames) < 0 || !PyLong_CheckExact(rate) || long_sign(rate) <= 0)
        Py_RETURN_NONE;
    if (PyFloat_CheckExact(raw_duration)) {
        double d = PyFloat_AS_DOUBLE(raw_duration);
        if (!isfinite(d) || d < 0) Py_RETURN_NONE;
    } else if (!PyLong_CheckExact(raw_duration) || long_sign(raw_duration) < 0)
        Py_RETURN_NONE;
    int seen = PySet_Contains(PyTuple_GET_ITEM(ctx, CTX_SEEN), id);
    if (seen != 0) return seen < 0 ? NULL : Py_NewRef(Py_None);
    if (PyFloat_CheckExact(raw_duration))
        duration = Py_NewRef(raw_duration);
    else if (!(duration = PyNumber_Float(raw_duration))) { /* an int past the largest float */
        PyErr_Clear();
        Py_RETURN_NONE;
    }

    /* The clip: vouched for by the hash cache with the manifest's sha256, or stat'ed. */
    if (!(path = PyUnicode_Concat(PyTuple_GET_ITEM(ctx, CTX_ROOT), audio))) goto done;
    PyObject *prefix = PyTuple_GET_ITEM(ctx, CTX_PREFIX), *entries = PyTuple_GET_ITEM(ctx, CTX_ENTRIES);
    if (entries != Py_None) {
        Py_ssize_t length = PyUnicode_GET_LENGTH(path), cut = PyUnicode_GET_LENGTH(prefix);
        if (PyUnicode_Tailmatch(path, prefix, 0, length, -1) != 1 ||
            PyUnicode_Find(path, s_slash_dot, 0, length, 1) != -1)
            goto fall_back; /* the hash cache's slow key (HashCache._key) */
        PyObject *key = PyUnicode_Substring(path, cut, length);
        if (!key) goto done;
        PyObject *entry = PyDict_GetItemWithError(entries, key);
        Py_DECREF(key);
        if (!entry && PyErr_Occurred()) goto done;
        if (entry) {
            int word = cache_word(entry, sha, &stat);
            if (word < 0) goto done;
            if (word == 2) goto fall_back;
            trusted = word;
        }
    }
    if (!stat && !(stat = stat_tuple(path))) {
        if (PyErr_Occurred()) PyErr_Clear();
        goto fall_back; /* missing, or unreadable: the Python form's message */
    }
    if (PyTuple_GET_SIZE(stat) < 1 || !PyLong_CheckExact(PyTuple_GET_ITEM(stat, 0))) goto fall_back;
    PyObject *size = PyTuple_GET_ITEM(stat, 0);
    long long audio_size = PyLong_AsLongLong(size);
    if (audio_size == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        goto fall_back;
    }

    /* The member extension: the file name's, lower case; "bin" without one. */
    Py_ssize_t alen = PyUnicode_GET_LENGTH(audio);
    Py_ssize_t slash = PyUnicode_FindChar(audio, '/', 0, alen, -1), dot = PyUnicode_FindChar(audio, '.', 0, alen, -1);
    if (slash == -2 || dot == -2) goto done;
    if (dot > slash) {
        PyObject *raw_ext = PyUnicode_Substring(audio, dot + 1, alen);
        if (!raw_ext) goto done;
        ext = PyObject_CallMethodNoArgs(raw_ext, k_lower);
        Py_DECREF(raw_ext);
        if (!ext) goto done;
    } else
        ext = Py_NewRef(s_bin);

    PyObject *sample_args[9] = {id, path, ext, sha, duration, number, size, stat, trusted ? Py_True : Py_False};
    if (!(sample = PyObject_Vectorcall(PyTuple_GET_ITEM(ctx, CTX_SAMPLE), sample_args, 9, NULL))) goto done;

    /* speaker and gender as metadata_of sets them. */
    PyObject *speaker = Py_None;
    if (line->speaker) {
        int truthy = PyObject_IsTrue(line->speaker);
        if (truthy < 0) goto done;
        if (truthy) speaker = line->speaker;
    }
    gender = Py_NewRef(Py_None);
    if (line->gender) {
        PyObject *value = line->gender;
        if (PyUnicode_Check(value)) {
            PyObject *stripped = PyObject_CallMethodNoArgs(value, k_strip);
            if (!stripped) goto done;
            Py_SETREF(gender, PyObject_CallMethodNoArgs(stripped, k_lower));
            Py_DECREF(stripped);
            if (!gender) goto done;
        } else
            Py_SETREF(gender, Py_NewRef(value));
        int truthy = PyObject_IsTrue(gender);
        if (truthy < 0) goto done;
        if (!truthy) Py_SETREF(gender, Py_NewRef(Py_None));
    }

    /* The member names: <key>.<ext> (the audio) and <key>.json (WebDataset's metadata, Shar's
       recording). Shar's key is the id; WebDataset's and NeMo's is member_key(id), the id itself
       unless it holds % . or / (then the Python form escapes it). */
    if (fmt != SHAR) {
        Py_ssize_t ilen = PyUnicode_GET_LENGTH(id);
        if (PyUnicode_FindChar(id, '%', 0, ilen, 1) != -1 || PyUnicode_FindChar(id, '.', 0, ilen, 1) != -1 ||
            PyUnicode_FindChar(id, '/', 0, ilen, 1) != -1)
            goto fall_back;
    }
    PyObject *dotted = PyUnicode_Concat(s_dot, ext);
    if (!dotted) goto done;
    name_a = PyUnicode_Concat(id, dotted);
    Py_DECREF(dotted);
    if (!name_a || (fmt != NEMO && !(name_b = PyUnicode_Concat(id, s_json)))) goto done;
    if (!plain_name(name_a) || (name_b && !plain_name(name_b)) || audio_size >= MAX_TAR_SIZE) goto fall_back;

    long long tar_bytes = 0;
    if (fmt == WEBDATASET || fmt == NEMO) {
        if (fmt == WEBDATASET) {
            PyObject *values[10] = {id, raw_duration, frames, rate, channels, sha, text, normalized, speaker, gender};
            if (!(doc = pd_render_values(PyTuple_GET_ITEM(templates, 0), values, 10, skip, rest))) goto done;
            if (doc == Py_None) goto fall_back;
            tar_bytes = member_bytes(PyBytes_GET_SIZE(doc)) + member_bytes(audio_size);
            members = Py_BuildValue("((OO)(OO))", name_b, doc, name_a, Py_None);
        } else {
            PyObject *values[11] = {name_a, raw_duration, normalized, id, text, frames, rate, channels, sha, speaker,
                                    gender};
            if (!(doc = pd_render_values(PyTuple_GET_ITEM(templates, 0), values, 11, skip, rest))) goto done;
            if (doc == Py_None) goto fall_back;
            tar_bytes = member_bytes(audio_size);
            members = Py_BuildValue("((OO))", name_a, Py_None);
            second = Py_NewRef(doc); /* the NeMo entry is the sample's sidecar line */
        }
    } else {
        /* Shar: list(range(int(channels or 1))), frames / sample_rate, as documents._recording. */
        int truthy = PyObject_IsTrue(channels);
        if (truthy < 0) goto done;
        long count = 1;
        if (truthy) {
            if (!PyLong_CheckExact(channels)) goto fall_back;
            count = PyLong_AsLong(channels);
            if (count == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                goto fall_back;
            }
        }
        if (count < 1 || count > MAX_CHANNELS) goto fall_back; /* frames and rate: ints, rate > 0 (above) */
        if (!(ids = PyList_New(count))) goto done;
        for (long i = 0; i < count; i++) {
            PyObject *n = PyLong_FromLong(i);
            if (!n) goto done;
            PyList_SET_ITEM(ids, i, n);
        }
        if (!(seconds = PyNumber_TrueDivide(frames, rate))) goto done;
        PyObject *channel = count == 1 ? PyList_GET_ITEM(ids, 0) : ids;
        PyObject *recording[6] = {id, ids, rate, frames, seconds, ids};
        if (!(doc = pd_render_values(PyTuple_GET_ITEM(templates, 0), recording, 6, skip, NULL))) goto done;
        if (doc == Py_None) goto fall_back;
        if (speaker == Py_None)
            spoken = Py_NewRef(b_empty);
        else if (!(spoken = pd_render_values(PyTuple_GET_ITEM(templates, 2), &speaker, 1, skip, NULL)))
            goto done;
        if (gender == Py_None)
            gendered = Py_NewRef(b_empty);
        else if (!(gendered = pd_render_values(PyTuple_GET_ITEM(templates, 3), &gender, 1, skip, NULL)))
            goto done;
        if (spoken == Py_None || gendered == Py_None) goto fall_back;
        PyObject *cut[16] = {id, seconds, channel, id, id, seconds, channel, normalized, spoken, gendered, text, doc,
                             frames, rate, channels, sha};
        if (!(second = pd_render_values(PyTuple_GET_ITEM(templates, 1), cut, 16, skip, rest))) goto done;
        if (second == Py_None) goto fall_back;
        member_b = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(doc) + 1);
        if (!member_b) goto done;
        memcpy(PyBytes_AS_STRING(member_b), PyBytes_AS_STRING(doc), PyBytes_GET_SIZE(doc));
        PyBytes_AS_STRING(member_b)[PyBytes_GET_SIZE(doc)] = '\n';
        tar_bytes = member_bytes(audio_size) + member_bytes(PyBytes_GET_SIZE(member_b));
        members = Py_BuildValue("((OO)(OO))", name_a, Py_None, name_b, member_b);
    }
    if (!members || !(tar = PyLong_FromLongLong(tar_bytes))) goto done;
    if (PyObject_SetAttr(sample, k_members, members) < 0 || PyObject_SetAttr(sample, k_tar_bytes, tar) < 0 ||
        (second && PyObject_SetAttr(sample, k_extra, second) < 0))
        goto done;
    if (PySet_Add(PyTuple_GET_ITEM(ctx, CTX_SEEN), id) < 0) goto done;
    result = Py_NewRef(sample);
    goto done;

fall_back:
    /* An error met on the way (never expected here) is raised, not left behind a None. */
    result = PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
done:
    Py_XDECREF(path);
    Py_XDECREF(stat);
    Py_XDECREF(ext);
    Py_XDECREF(duration);
    Py_XDECREF(sample);
    Py_XDECREF(gender);
    Py_XDECREF(doc);
    Py_XDECREF(second);
    Py_XDECREF(members);
    Py_XDECREF(ids);
    Py_XDECREF(seconds);
    Py_XDECREF(spoken);
    Py_XDECREF(gendered);
    Py_XDECREF(name_a);
    Py_XDECREF(name_b);
    Py_XDECREF(member_b);
    Py_XDECREF(tar);
    return result;
}
