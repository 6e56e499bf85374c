/* tarcopy.c: shards.tarwrite.TarFileWriter's per-sample loop (headers, JSON members, clips read
   into the writer's buffer, padding) for a run of samples. Samples it cannot take as they are (a
   clip the hash cache does not vouch for, changed or missing; a name over 100 bytes) are left to
   the Python form, which stays the reference: the bytes written are the same either way. */
#include "speedups.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 512
#define MAX_SIZE 8589934592LL /* 8 ** 11: the largest size a ustar size field holds, plus one */

/* The writer being filled: its buffer (`_buf`), how much of it is used, its `_flush`. */
typedef struct {
    PyObject *writer;
    char *buf;
    Py_ssize_t cap, used;
} Sink;

static PyObject *s_members, *s_path, *s_size, *s_trusted, *s_stat, *s_used, *s_flush;

static int intern_names(void) {
    if (s_flush) return 0;
    s_members = PyUnicode_InternFromString("members");
    s_path = PyUnicode_InternFromString("path");
    s_size = PyUnicode_InternFromString("size");
    s_trusted = PyUnicode_InternFromString("trusted");
    s_stat = PyUnicode_InternFromString("stat");
    s_used = PyUnicode_InternFromString("_used");
    s_flush = PyUnicode_InternFromString("_flush");
    return (s_members && s_path && s_size && s_trusted && s_stat && s_used && s_flush) ? 0 : -1;
}

/* The writer's `_used` set to ours (before its `_flush` runs, and on the way out). */
static int sync_used(Sink *k) {
    PyObject *n = PyLong_FromSsize_t(k->used);
    if (!n) return -1;
    int r = PyObject_SetAttr(k->writer, s_used, n);
    Py_DECREF(n);
    return r;
}

/* The buffer hashed and written by the writer's own `_flush` (it empties it). */
static int flush(Sink *k) {
    if (sync_used(k) < 0) return -1;
    PyObject *r = PyObject_CallMethodNoArgs(k->writer, s_flush);
    if (!r) return -1;
    Py_DECREF(r);
    k->used = 0;
    return 0;
}

/* Room for at least `n` bytes (n <= capacity). */
static int room(Sink *k, Py_ssize_t n) { return k->cap - k->used >= n ? 0 : flush(k); }

static int put(Sink *k, const char *data, Py_ssize_t n) {
    while (n) {
        if (k->used == k->cap && flush(k) < 0) return -1;
        Py_ssize_t take = k->cap - k->used < n ? k->cap - k->used : n;
        memcpy(k->buf + k->used, data, take);
        k->used += take;
        data += take;
        n -= take;
    }
    return 0;
}

static int pad(Sink *k, long long size) {
    static const char zeros[BLOCK];
    Py_ssize_t n = (Py_ssize_t)((BLOCK - size % BLOCK) % BLOCK);
    return put(k, zeros, n);
}

/* `v` in `digits` octal digits, zero-padded (v < 8 ** digits: a size below MAX_SIZE, a checksum
   below 8 ** 6), as "%0*llo" would write it without its NUL. */
static void octal(char *at, int digits, long long v) {
    for (int i = digits - 1; i >= 0; i--, v >>= 3) at[i] = (char)('0' + (v & 7));
}

/* tarwrite.header(name, size) for a name of at most 100 bytes: the template with name, size and
   checksum filled in. */
static int header(Sink *k, const char *empty, long long base, const char *name, Py_ssize_t len, long long size) {
    if (room(k, BLOCK) < 0) return -1;
    char *h = k->buf + k->used;
    memcpy(h, empty, BLOCK);
    memcpy(h, name, len);
    octal(h + 124, 11, size); /* "%011o\0" */
    h[135] = 0;
    long long sum = base;
    for (Py_ssize_t i = 0; i < len; i++) sum += (unsigned char)name[i];
    for (int i = 0; i < 12; i++) sum += (unsigned char)h[124 + i];
    octal(h + 148, 6, sum); /* "%06o\0 " */
    h[154] = 0;
    h[155] = ' ';
    k->used += BLOCK;
    return 0;
}

/* A clip's bytes read from `fd` into the buffer: 1 when all `size` were there, 0 when the file
   ended first, -1 on error (set, naming `path`). */
static int copy_from(Sink *k, int fd, long long size, PyObject *path) {
    while (size > 0) {
        if (k->used == k->cap && flush(k) < 0) return -1;
        Py_ssize_t want = k->cap - k->used < size ? k->cap - k->used : (Py_ssize_t)size;
        ssize_t n = read(fd, k->buf + k->used, want);
        if (n < 0) {
            if (errno == EINTR) continue;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
            return -1;
        }
        if (n == 0) return 0;
        k->used += n;
        size -= n;
    }
    return 1;
}

/* One sample's members, checked: 1 when they can be taken here (*fd then holds its open clip, or
   -1 without one), 0 when it is left to the Python form, -1 on error. */
static int check_sample(PyObject *sample, PyObject *members, long long *size, int *fd, PyObject **path) {
    *fd = -1;
    *path = NULL;
    int audio = 0;
    Py_ssize_t count = PyTuple_GET_SIZE(members);
    for (Py_ssize_t m = 0; m < count; m++) {
        PyObject *member = PyTuple_GET_ITEM(members, m);
        if (!PyTuple_Check(member) || PyTuple_GET_SIZE(member) != 2) return 0;
        Py_ssize_t len;
        const char *name = PyUnicode_Check(PyTuple_GET_ITEM(member, 0))
                               ? PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(member, 0), &len) : NULL;
        if (!name) {
            PyErr_Clear(); /* not a str, or surrogates: the Python form encodes it with surrogateescape */
            return 0;
        }
        if (len > 100 || memchr(name, 0, len)) return 0;
        PyObject *data = PyTuple_GET_ITEM(member, 1);
        if (data == Py_None) audio++;
        else if (!PyBytes_Check(data) || PyBytes_GET_SIZE(data) >= MAX_SIZE) return 0;
    }
    if (!audio) return 1;
    if (audio > 1) return 0;
    PyObject *trusted = PyObject_GetAttr(sample, s_trusted);
    if (!trusted) return -1;
    int yes = trusted == Py_True;
    Py_DECREF(trusted);
    if (!yes) return 0; /* hashed on the way, by the Python form */
    PyObject *stat = PyObject_GetAttr(sample, s_stat), *sz = PyObject_GetAttr(sample, s_size);
    long long want[3] = {0, 0, 0};
    int ok = stat && sz && PyTuple_Check(stat) && PyTuple_GET_SIZE(stat) == 3;
    for (int i = 0; ok && i < 3; i++) {
        want[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(stat, i));
        if (want[i] == -1 && PyErr_Occurred()) ok = 0;
    }
    *size = ok ? PyLong_AsLongLong(sz) : -1;
    Py_XDECREF(stat);
    Py_XDECREF(sz);
    if (!ok || *size < 0 || *size >= MAX_SIZE) {
        PyErr_Clear();
        return 0;
    }
    PyObject *str = PyObject_GetAttr(sample, s_path);
    if (!str) return -1;
    if (!PyUnicode_Check(str) || !PyUnicode_FSConverter(str, path)) {
        Py_DECREF(str);
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(str);
    int f = open(PyBytes_AS_STRING(*path), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (f < 0 || fstat(f, &st) < 0 || st.st_size != *size || (long long)st.st_size != want[0] ||
        (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != want[1] || (long long)st.st_ino != want[2]) {
        if (f >= 0) close(f);
        Py_CLEAR(*path);
        return 0; /* missing or changed since planned: the Python form says which, or hashes it */
    }
    *fd = f;
    return 1;
}

/* One checked sample's members into the buffer: 1 done, 0 its clip ended early, -1 error. */
static int write_sample(Sink *k, PyObject *members, const char *empty, long long base, long long size, int fd,
                        PyObject *path) {
    Py_ssize_t count = PyTuple_GET_SIZE(members);
    for (Py_ssize_t m = 0; m < count; m++) {
        PyObject *member = PyTuple_GET_ITEM(members, m), *data = PyTuple_GET_ITEM(member, 1);
        Py_ssize_t len;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(member, 0), &len);
        long long n = data == Py_None ? size : (long long)PyBytes_GET_SIZE(data);
        if (header(k, empty, base, name, len, n) < 0) return -1;
        if (data == Py_None) {
            int got = copy_from(k, fd, size, path);
            if (got <= 0) return got;
        } else if (put(k, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)) < 0) {
            return -1;
        }
        if (pad(k, n) < 0) return -1;
    }
    return 1;
}

const char pd_tar_samples_doc[] =
    "tar_samples(writer, samples, start, stop, empty, base) -> int\n\n"
    "The members of samples[start:stop] written as TarFileWriter.add/add_from would, into the writer's\n"
    "buffer. Returns the index of the first sample not written (stop when all were; that sample is\n"
    "left whole to the Python form), or -1 - index when that sample's clip ended before its size.\n"
    "`empty`: the 512-byte header template, `base`: its checksum without name and size.";

PyObject *pd_tar_samples(PyObject *self, PyObject *args) {
    PyObject *writer, *samples, *bufobj = NULL;
    Py_ssize_t start, stop;
    const char *empty;
    Py_ssize_t empty_len;
    long long base;
    if (!PyArg_ParseTuple(args, "OO!nny#L", &writer, &PyList_Type, &samples, &start, &stop, &empty, &empty_len,
                          &base))
        return NULL;
    if (empty_len != BLOCK) {
        PyErr_SetString(PyExc_ValueError, "empty must be one 512-byte header");
        return NULL;
    }
    if (intern_names() < 0) return NULL;
    if (stop > PyList_GET_SIZE(samples)) stop = PyList_GET_SIZE(samples);
    Py_buffer view;
    if (!(bufobj = PyObject_GetAttrString(writer, "_buf"))) return NULL;
    if (PyObject_GetBuffer(bufobj, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(bufobj);
        return NULL;
    }
    Sink k = {writer, view.buf, view.len, 0};
    PyObject *used = PyObject_GetAttr(writer, s_used);
    k.used = used ? PyLong_AsSsize_t(used) : -1;
    Py_XDECREF(used);
    Py_ssize_t i = start;
    int failed = 1;
    if (k.used < 0 || k.used > k.cap || k.cap < BLOCK) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "the writer's buffer is not as expected");
        goto done;
    }
    for (; i < stop; i++) {
        PyObject *sample = PyList_GET_ITEM(samples, i);
        PyObject *members = PyObject_GetAttr(sample, s_members);
        if (!members) goto done;
        if (!PyTuple_Check(members)) {
            Py_DECREF(members);
            break;
        }
        long long size = 0;
        int fd;
        PyObject *path;
        int ok = check_sample(sample, members, &size, &fd, &path);
        if (ok == 1) ok = write_sample(&k, members, empty, base, size, fd, path);
        else if (ok == 0) ok = 2; /* left to the Python form */
        if (fd >= 0) close(fd);
        Py_XDECREF(path);
        Py_DECREF(members);
        if (ok < 0) goto done;
        if (ok == 0) { /* the clip shrank: the archive is thrown away */
            i = -1 - i;
            break;
        }
        if (ok == 2) break;
    }
    failed = sync_used(&k) < 0;
done:
    PyBuffer_Release(&view);
    Py_DECREF(bufobj);
    return failed ? NULL : PyLong_FromSsize_t(i);
}
