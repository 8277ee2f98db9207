/* carpscope._sha1: the HMAC-SHA1 of a CARP advert from precomputed midstates.
 *
 * A generic kernel, no protocol logic: SHA-1 (FIPS 180-4) over a state that has already
 * absorbed whole 64-byte blocks. carpscope.auth.hmac precomputes, per (key, VIP set, flavour),
 * the inner state after ipad || message prefix and the outer state after opad, as the kernels
 * do; an advert then costs finishing both hashes over its 8-byte counter: three compressions,
 * one call. Where this extension is not built, the same midstates are hashlib objects.
 *
 *   absorb(data) -> context      SHA-1 state after data's whole blocks, plus the rest
 *   finish(inner, outer, msg) -> digest (20 bytes)
 *
 * A context is 20 bytes of state (five big-endian words), 8 bytes of length (bytes absorbed,
 * big-endian) and 0-63 bytes not yet absorbed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void compress(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f, k, t;
    for (int i = 0; i < 80; i++) {
        if (i < 20)      { f = (b & c) | (~b & d);          k = 0x5A827999; }
        else if (i < 40) { f = b ^ c ^ d;                    k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
        else             { f = b ^ c ^ d;                    k = 0xCA62C1D6; }
        t = ROL(a, 5) + f + e + k + w[i];
        e = d; d = c; c = ROL(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static const uint32_t H0[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* hash the rest (tail || msg) after a midstate of `len` bytes into out[20] */
static int finish_into(const unsigned char *ctx, Py_ssize_t ctxlen, const unsigned char *msg, Py_ssize_t mlen,
                       unsigned char out[20])
{
    if (ctxlen < 28 || ctxlen > 28 + 63 || mlen < 0 || mlen > 64)
        return -1;
    uint32_t h[5];
    for (int i = 0; i < 5; i++)
        h[i] = get32(ctx + 4 * i);
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len = (len << 8) | ctx[20 + i];
    Py_ssize_t tail = ctxlen - 28;
    unsigned char buf[192];
    memcpy(buf, ctx + 28, (size_t)tail);
    memcpy(buf + tail, msg, (size_t)mlen);
    Py_ssize_t n = tail + mlen;
    uint64_t bits = (len + (uint64_t)n) * 8;
    buf[n++] = 0x80;
    while (n % 64 != 56)
        buf[n++] = 0;
    for (int i = 7; i >= 0; i--)
        buf[n++] = (unsigned char)(bits >> (8 * i));
    for (Py_ssize_t off = 0; off < n; off += 64)
        compress(h, buf + off);
    for (int i = 0; i < 5; i++)
        put32(out + 4 * i, h[i]);
    return 0;
}

static PyObject *absorb(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = view.buf;
    Py_ssize_t n = view.len, whole = n - n % 64;
    uint32_t h[5];
    memcpy(h, H0, sizeof h);
    for (Py_ssize_t off = 0; off < whole; off += 64)
        compress(h, p + off);
    unsigned char ctx[28 + 63];
    for (int i = 0; i < 5; i++)
        put32(ctx + 4 * i, h[i]);
    uint64_t len = (uint64_t)whole;
    for (int i = 0; i < 8; i++)
        ctx[20 + i] = (unsigned char)(len >> (8 * (7 - i)));
    memcpy(ctx + 28, p + whole, (size_t)(n - whole));
    PyObject *r = PyBytes_FromStringAndSize((const char *)ctx, 28 + (n - whole));
    PyBuffer_Release(&view);
    return r;
}

static PyObject *finish(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "finish(inner: bytes, outer: bytes, message: bytes)");
        return NULL;
    }
    unsigned char inner[20], digest[20];
    if (finish_into((const unsigned char *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]),
                    (const unsigned char *)PyBytes_AS_STRING(args[2]), PyBytes_GET_SIZE(args[2]), inner) < 0
        || finish_into((const unsigned char *)PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1]),
                       inner, 20, digest) < 0) {
        PyErr_SetString(PyExc_ValueError, "not a context from absorb(), or a message over 64 bytes");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)digest, 20);
}

static PyMethodDef methods[] = {
    {"absorb", absorb, METH_O, "absorb(data) -> context: the SHA-1 state after data's whole blocks, and the rest"},
    {"finish", (PyCFunction)(void (*)(void))finish, METH_FASTCALL,
     "finish(inner, outer, message) -> HMAC-SHA1 digest: SHA-1(outer || SHA-1(inner || message))"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "carpscope._sha1", NULL, -1, methods};

PyMODINIT_FUNC PyInit__sha1(void)
{
    return PyModule_Create(&module);
}
