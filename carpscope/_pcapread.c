/* carpscope._pcapread: classic pcap files read in large chunks, with the BPF filter applied.
 *
 * libpcap reads a savefile through stdio, whose buffer is the file system's block size (4 KB
 * here): a 1.5 GB capture costs 360,000 read() calls. This reader takes 1 MB at a time and
 * runs libpcap's own compiled filter program (pcapy.compile(...).get_bpf()) on each record
 * with a classic BPF interpreter that follows libpcap's bpf_filter(): loads past the captured
 * length reject the packet, BPF_LEN is the original length. It hands out batches in the shape
 * of pcapy-ng's next_batch (bytes of the matching frames; per frame four native uint32:
 * seconds, microseconds, offset, length), with the GIL released while it reads and filters.
 *
 * Records longer than the file's snapshot length are cut to it, as libpcap does. Anything it
 * is not sure of (a truncated record, a captured length over 256 KB) raises Stop with the
 * record number and offset, and capture.py hands the file to the exact reader from that frame.
 * Nanosecond files give microseconds by truncation, as libpcap opened at its default precision.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1 << 20)
#define MAX_CAPLEN 262144

typedef struct {
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
} insn_t;

typedef struct {
    PyObject_HEAD
    int fd;
    int swapped;            /* file byte order differs from ours */
    int nsec;
    uint32_t snaplen;
    insn_t *prog;
    Py_ssize_t nprog;
    unsigned char *buf;     /* CHUNK + MAX_CAPLEN + 16 */
    size_t start, end;      /* unread bytes are buf[start:end] */
    int eof;
    long long records;      /* records read (every record, matching or not) */
    long long offset;       /* file offset of buf[start] */
} Reader;

static PyObject *Stop;

static uint32_t rd32(const unsigned char *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

#define EXTRACT32(p) ((uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (p)[3])
#define EXTRACT16(p) ((uint32_t)(p)[0] << 8 | (p)[1])

/* classic BPF as libpcap's bpf_filter() runs it in user space; 0 rejects */
static uint32_t bpf_run(const insn_t *pc, Py_ssize_t n, const unsigned char *p, uint32_t wirelen, uint32_t buflen)
{
    uint32_t A = 0, X = 0, k, mem[16] = {0};
    const insn_t *end = pc + n;
    for (; pc < end; pc++) {
        switch (pc->code) {
        case 0x06: return pc->k;                                      /* ret #k */
        case 0x16: return A;                                          /* ret a */
        case 0x20: k = pc->k;                                         /* ld [k] */
            if (k > buflen || 4 > buflen - k) return 0;
            A = EXTRACT32(p + k); break;
        case 0x28: k = pc->k;                                         /* ldh [k] */
            if (k > buflen || 2 > buflen - k) return 0;
            A = EXTRACT16(p + k); break;
        case 0x30: k = pc->k;                                         /* ldb [k] */
            if (k >= buflen) return 0;
            A = p[k]; break;
        case 0x80: A = wirelen; break;                                /* ld #len */
        case 0x81: X = wirelen; break;                                /* ldx #len */
        case 0x40: k = X + pc->k;                                     /* ld [x + k] */
            if (pc->k > buflen || X > buflen - pc->k || 4 > buflen - k) return 0;
            A = EXTRACT32(p + k); break;
        case 0x48: k = X + pc->k;                                     /* ldh [x + k] */
            if (X > buflen || pc->k > buflen - X || 2 > buflen - k) return 0;
            A = EXTRACT16(p + k); break;
        case 0x50: k = X + pc->k;                                     /* ldb [x + k] */
            if (pc->k >= buflen || X >= buflen - pc->k) return 0;
            A = p[k]; break;
        case 0xb1: k = pc->k;                                         /* ldxb 4*([k]&0xf) */
            if (k >= buflen) return 0;
            X = (p[k] & 0xf) << 2; break;
        case 0x00: A = pc->k; break;                                  /* ld #k */
        case 0x01: X = pc->k; break;                                  /* ldx #k */
        case 0x60: if (pc->k >= 16) return 0; A = mem[pc->k]; break;  /* ld M[k] */
        case 0x61: if (pc->k >= 16) return 0; X = mem[pc->k]; break;  /* ldx M[k] */
        case 0x02: if (pc->k >= 16) return 0; mem[pc->k] = A; break;  /* st M[k] */
        case 0x03: if (pc->k >= 16) return 0; mem[pc->k] = X; break;  /* stx M[k] */
        case 0x05: pc += (int32_t)pc->k; break;     /* ja: sign-extended (libpcap: protochain jumps back) */
        case 0x25: pc += (A > pc->k) ? pc->jt : pc->jf; break;        /* jgt #k */
        case 0x35: pc += (A >= pc->k) ? pc->jt : pc->jf; break;       /* jge #k */
        case 0x15: pc += (A == pc->k) ? pc->jt : pc->jf; break;       /* jeq #k */
        case 0x45: pc += (A & pc->k) ? pc->jt : pc->jf; break;        /* jset #k */
        case 0x2d: pc += (A > X) ? pc->jt : pc->jf; break;            /* jgt x */
        case 0x3d: pc += (A >= X) ? pc->jt : pc->jf; break;           /* jge x */
        case 0x1d: pc += (A == X) ? pc->jt : pc->jf; break;           /* jeq x */
        case 0x4d: pc += (A & X) ? pc->jt : pc->jf; break;            /* jset x */
        case 0x0c: A += X; break;
        case 0x1c: A -= X; break;
        case 0x2c: A *= X; break;
        case 0x3c: if (X == 0) return 0; A /= X; break;
        case 0x9c: if (X == 0) return 0; A %= X; break;
        case 0x5c: A &= X; break;
        case 0x4c: A |= X; break;
        case 0xac: A ^= X; break;
        case 0x6c: A = X < 32 ? A << X : 0; break;
        case 0x7c: A = X < 32 ? A >> X : 0; break;
        case 0x04: A += pc->k; break;
        case 0x14: A -= pc->k; break;
        case 0x24: A *= pc->k; break;
        case 0x34: if (pc->k == 0) return 0; A /= pc->k; break;
        case 0x94: if (pc->k == 0) return 0; A %= pc->k; break;
        case 0x54: A &= pc->k; break;
        case 0x44: A |= pc->k; break;
        case 0xa4: A ^= pc->k; break;
        case 0x64: A = pc->k < 32 ? A << pc->k : 0; break;
        case 0x74: A = pc->k < 32 ? A >> pc->k : 0; break;
        case 0x84: A = (uint32_t)-(int32_t)A; break;                  /* neg */
        case 0x07: X = A; break;                                      /* tax */
        case 0x87: A = X; break;                                      /* txa */
        default: return 0;
        }
    }
    return 0;
}

/* make at least need bytes available at buf[start]; 0 ok, 1 end of file first, -1 errno */
static int fill(Reader *r, size_t need)
{
    while (r->end - r->start < need) {
        if (r->eof)
            return 1;
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        ssize_t got = read(r->fd, r->buf + r->end, CHUNK + MAX_CAPLEN + 16 - r->end);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (got == 0)
            r->eof = 1;
        r->end += (size_t)got;
    }
    return 0;
}

static void reader_dealloc(Reader *r)
{
    PyMem_Free(r->prog);
    PyMem_Free(r->buf);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* Reader(fd, swapped, nsec, snaplen, program): fd positioned after the 24-byte file header */
static int reader_init(Reader *r, PyObject *args, PyObject *kw)
{
    PyObject *prog;
    unsigned int snaplen;
    if (!PyArg_ParseTuple(args, "ippIO", &r->fd, &r->swapped, &r->nsec, &snaplen, &prog))
        return -1;
    /* libpcap: a snapshot length of 0 or over the maximum means the maximum */
    r->snaplen = (snaplen == 0 || snaplen > MAX_CAPLEN) ? MAX_CAPLEN : snaplen;
    PyObject *seq = PySequence_Fast(prog, "program: a sequence of (code, jt, jf, k)");
    if (seq == NULL)
        return -1;
    r->nprog = PySequence_Fast_GET_SIZE(seq);
    PyMem_Free(r->prog);
    r->prog = PyMem_Calloc(r->nprog ? r->nprog : 1, sizeof(insn_t));
    if (r->buf == NULL)
        r->buf = PyMem_Malloc(CHUNK + MAX_CAPLEN + 16);
    if (r->prog == NULL || r->buf == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < r->nprog; i++) {
        unsigned int code, jt, jf, k;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "IIII", &code, &jt, &jf, &k)) {
            Py_DECREF(seq);
            return -1;
        }
        r->prog[i] = (insn_t){(uint16_t)code, (uint8_t)jt, (uint8_t)jf, k};
    }
    Py_DECREF(seq);
    r->start = r->end = 0;
    r->eof = 0;
    r->records = 0;
    r->offset = 24;
    return 0;
}

/* next_batch(count) -> (bytes, meta): up to count matching frames; (b"", b"") at the end */
static PyObject *reader_next_batch(Reader *r, PyObject *arg)
{
    Py_ssize_t want = PyLong_AsSsize_t(arg);
    if (want == -1 && PyErr_Occurred())
        return NULL;
    if (want <= 0 || r->buf == NULL) {
        PyErr_SetString(PyExc_ValueError, "next_batch(count > 0) on an initialised Reader");
        return NULL;
    }
    size_t cap = 1 << 16, used = 0;
    unsigned char *out = PyMem_RawMalloc(cap);
    uint32_t *meta = PyMem_RawMalloc((size_t)want * 16);
    if (out == NULL || meta == NULL) {
        PyMem_RawFree(out);
        PyMem_RawFree(meta);
        return PyErr_NoMemory();
    }
    Py_ssize_t n = 0;
    int fail = 0;            /* 1 read error, 2 damage or a record not for this reader */
    char why[160] = "";
    Py_BEGIN_ALLOW_THREADS
    while (n < want) {
        int f = fill(r, 16);
        if (f < 0) { fail = 1; break; }
        if (f > 0) {
            if (r->end != r->start) {
                fail = 2;
                snprintf(why, sizeof why, "truncated record header at record %lld (offset %lld)",
                         r->records + 1, r->offset);
            }
            break;
        }
        const unsigned char *h = r->buf + r->start;
        uint32_t sec = rd32(h, r->swapped), frac = rd32(h + 4, r->swapped);
        uint32_t caplen = rd32(h + 8, r->swapped), len = rd32(h + 12, r->swapped);
        if (caplen > MAX_CAPLEN) {
            fail = 2;
            snprintf(why, sizeof why, "record %lld (offset %lld): captured length %u over %u",
                     r->records + 1, r->offset, caplen, MAX_CAPLEN);
            break;
        }
        f = fill(r, 16 + (size_t)caplen);
        if (f != 0) {
            fail = f < 0 ? 1 : 2;
            if (f > 0)
                snprintf(why, sizeof why, "truncated record %lld (offset %lld)", r->records + 1, r->offset);
            break;
        }
        h = r->buf + r->start;
        const unsigned char *data = h + 16;
        uint32_t keep = caplen;
        if (keep > r->snaplen)      /* libpcap keeps the file's snapshot length, skips the rest */
            keep = r->snaplen;
        if (r->nprog == 0 || bpf_run(r->prog, r->nprog, data, len, keep) != 0) {
            if (used + keep > cap) {
                while (used + keep > cap)
                    cap *= 2;
                unsigned char *bigger = PyMem_RawRealloc(out, cap);
                if (bigger == NULL) { fail = 3; break; }
                out = bigger;
            }
            memcpy(out + used, data, keep);
            uint32_t *m = meta + 4 * n;
            m[0] = sec;
            m[1] = r->nsec ? frac / 1000 : frac;
            m[2] = (uint32_t)used;
            m[3] = keep;
            used += keep;
            n++;
        }
        r->start += 16 + (size_t)caplen;
        r->offset += 16 + (long long)caplen;
        r->records++;
    }
    Py_END_ALLOW_THREADS
    PyObject *res = NULL;
    if (fail == 1)
        PyErr_SetFromErrno(PyExc_OSError);
    else if (fail == 3)
        PyErr_NoMemory();
    else if (fail == 2 && n == 0)
        PyErr_SetString(Stop, why);
    else {
        /* what was read goes out; the next call stops at the same record and raises Stop */
        res = Py_BuildValue("(y#y#)", (const char *)out, (Py_ssize_t)used, (const char *)meta, n * 16);
    }
    PyMem_RawFree(out);
    PyMem_RawFree(meta);
    return res;
}

static PyObject *reader_getfd(Reader *r, PyObject *unused)
{
    return PyLong_FromLong(r->fd);
}

static PyObject *reader_records(Reader *r, void *unused)
{
    return PyLong_FromLongLong(r->records);
}

static PyMethodDef reader_methods[] = {
    {"next_batch", (PyCFunction)reader_next_batch, METH_O, "next_batch(count) -> (bytes, meta)"},
    {"getfd", (PyCFunction)reader_getfd, METH_NOARGS, "the file descriptor read"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"records", (getter)reader_records, NULL, "records read so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "carpscope._pcapread.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reader(fd, swapped, nsec, snaplen, program): a classic pcap file, BPF-filtered",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
};

/* bpf(program, data, wirelen) -> the program's return value (tests compare with libpcap) */
static PyObject *bpf(PyObject *self, PyObject *args)
{
    PyObject *prog;
    Py_buffer data;
    unsigned int wirelen;
    if (!PyArg_ParseTuple(args, "Oy*I", &prog, &data, &wirelen))
        return NULL;
    Reader tmp;
    memset(&tmp, 0, sizeof tmp);
    PyObject *seq = PySequence_Fast(prog, "program: a sequence of (code, jt, jf, k)");
    PyObject *res = NULL;
    if (seq != NULL) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        insn_t *p = PyMem_Calloc(n ? n : 1, sizeof(insn_t));
        int ok = p != NULL;
        for (Py_ssize_t i = 0; ok && i < n; i++) {
            unsigned int code, jt, jf, k;
            ok = PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "IIII", &code, &jt, &jf, &k);
            if (ok)
                p[i] = (insn_t){(uint16_t)code, (uint8_t)jt, (uint8_t)jf, k};
        }
        if (ok)
            res = PyLong_FromUnsignedLong(bpf_run(p, n, data.buf, wirelen, (uint32_t)data.len));
        else if (!PyErr_Occurred())
            PyErr_NoMemory();
        PyMem_Free(p);
        Py_DECREF(seq);
    }
    PyBuffer_Release(&data);
    return res;
}

static PyMethodDef methods[] = {
    {"bpf", bpf, METH_VARARGS, "bpf(program, data, wirelen) -> return value (0 rejects)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "carpscope._pcapread",
                                    "Large-chunk, BPF-filtered pcap reading (see capture.py).", -1, methods};

PyMODINIT_FUNC PyInit__pcapread(void)
{
    if (PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Stop = PyErr_NewException("carpscope._pcapread.Stop", NULL, NULL);
    Py_INCREF(&ReaderType);
    if (Stop == NULL || PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0
        || PyModule_AddObject(m, "Stop", Stop) < 0)
        return NULL;
    return m;
}
