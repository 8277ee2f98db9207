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
#include <stdlib.h>

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* The portable compression: 80 rounds unrolled by the compiler from a 16-word ring. */
#define F1(b, c, d) (((c) ^ (d)) & (b) ^ (d))
#define F2(b, c, d) ((b) ^ (c) ^ (d))
#define F3(b, c, d) (((b) & (c)) | (((b) | (c)) & (d)))
#define W(i) (w[(i) & 15] = ROL(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ w[((i) + 2) & 15] ^ w[(i) & 15], 1))
#define R(a, b, c, d, e, f, k, x) do { e += ROL(a, 5) + f(b, c, d) + k + (x); b = ROL(b, 30); } while (0)
#define R5(f, k, i, x)                       \
    R(a, b, c, d, e, f, k, x(i));            \
    R(e, a, b, c, d, f, k, x(i + 1));        \
    R(d, e, a, b, c, f, k, x(i + 2));        \
    R(c, d, e, a, b, f, k, x(i + 3));        \
    R(b, c, d, e, a, f, k, x(i + 4))
#define W0(i) (w[i])

static void compress_portable(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    R5(F1, 0x5A827999, 0, W0); R5(F1, 0x5A827999, 5, W0); R5(F1, 0x5A827999, 10, W0);
    R(a, b, c, d, e, F1, 0x5A827999, w[15]);
    R(e, a, b, c, d, F1, 0x5A827999, W(16)); R(d, e, a, b, c, F1, 0x5A827999, W(17));
    R(c, d, e, a, b, F1, 0x5A827999, W(18)); R(b, c, d, e, a, F1, 0x5A827999, W(19));
    R5(F2, 0x6ED9EBA1, 20, W); R5(F2, 0x6ED9EBA1, 25, W); R5(F2, 0x6ED9EBA1, 30, W); R5(F2, 0x6ED9EBA1, 35, W);
    R5(F3, 0x8F1BBCDC, 40, W); R5(F3, 0x8F1BBCDC, 45, W); R5(F3, 0x8F1BBCDC, 50, W); R5(F3, 0x8F1BBCDC, 55, W);
    R5(F2, 0xCA62C1D6, 60, W); R5(F2, 0xCA62C1D6, 65, W); R5(F2, 0xCA62C1D6, 70, W); R5(F2, 0xCA62C1D6, 75, W);
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

/* The same compression with the x86 SHA extensions (SHA-NI), chosen at run time when the CPU
 * has them: four rounds per sha1rnds4, the message schedule in sha1msg1/sha1msg2. The state
 * vector holds A..D with A in the highest lane, as the instructions expect. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHANI_PATH 1

#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

#define G(n, fn) do {                                                                 \
        e = _mm_sha1nexte_epu32(prev, m[(n)]);                                        \
        prev = abcd;                                                                  \
        abcd = _mm_sha1rnds4_epu32(abcd, e, fn);                                      \
    } while (0)
#define SCHED(n) (m[(n)] = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(m[(n) - 4], m[(n) - 3]), \
                                                            m[(n) - 2]), m[(n) - 1]))

SHANI_TARGET static void compress_shani(uint32_t h[5], const unsigned char *p)
{
    const __m128i rev = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m128i m[20];
    for (int i = 0; i < 4; i++)
        m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), rev);
    for (int n = 4; n < 20; n++)
        SCHED(n);
    __m128i abcd = _mm_set_epi32((int)h[0], (int)h[1], (int)h[2], (int)h[3]);
    __m128i e0 = _mm_set_epi32((int)h[4], 0, 0, 0);
    __m128i abcd0 = abcd, prev, e;
    e = _mm_add_epi32(e0, m[0]);
    prev = abcd;
    abcd = _mm_sha1rnds4_epu32(abcd, e, 0);
    G(1, 0); G(2, 0); G(3, 0); G(4, 0);
    G(5, 1); G(6, 1); G(7, 1); G(8, 1); G(9, 1);
    G(10, 2); G(11, 2); G(12, 2); G(13, 2); G(14, 2);
    G(15, 3); G(16, 3); G(17, 3); G(18, 3); G(19, 3);
    e0 = _mm_sha1nexte_epu32(prev, e0);
    abcd = _mm_add_epi32(abcd, abcd0);
    uint32_t out[4], eo[4];
    _mm_storeu_si128((__m128i *)out, abcd);
    _mm_storeu_si128((__m128i *)eo, e0);
    h[0] = out[3]; h[1] = out[2]; h[2] = out[1]; h[3] = out[0]; h[4] = eo[3];
}

static int cpu_has_shani(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
        return 0;                                   /* SSSE3, SSE4.1 */
    if (__get_cpuid_max(0, 0) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1;                           /* SHA */
}
#endif

static void (*compress)(uint32_t h[5], const unsigned char *p) = compress_portable;

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
    PyObject *m = PyModule_Create(&module);
    const char *kernel = "portable";
#ifdef HAVE_SHANI_PATH
    const char *off = getenv("CARPSCOPE_NO_SHANI");      /* to test and time the portable path */
    if ((off == NULL || !*off) && cpu_has_shani()) {
        compress = compress_shani;
        kernel = "sha-ni";
    }
#endif
    if (m != NULL && PyModule_AddStringConstant(m, "kernel", kernel) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
