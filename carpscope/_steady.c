/* carpscope._steady: steady.Table.find + steady.Steady.fold in one C call per frame.
 *
 * A transcription of those two Python methods in carpscope/steady.py (read them first: they
 * are the reference and the documentation). Every check runs in the same order, nothing is
 * mutated before the last check passed, and every update goes to the same Python objects, so
 * both leave identical state: tests/test_steady.py runs captures through the pipeline alone,
 * the Python fold and this one and compares the reports. setup.py marks the extension
 * optional: without a C compiler the Python fold runs.
 *
 * The template's fields come as the tuple Template.c (steady.Template.pack). The slotted
 * records it updates (track.Speaker, auth._Speaker, model.SourceInfo) are read and written at
 * their slot offsets, found once by configure(). The HMAC is SHA-1 (FIPS 180-4) continued
 * from the states hmac_state() precomputed after the key pads and the message prefix, the
 * shortcut auth.HmacContext takes with hashlib.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

enum { T_LT, T_CARP, T_P, T_SRC, T_INFO, T_KR, T_GEN, T_HMAC, T_GID, T_RECENT, T_CSEEN, T_VI,
       T_VCELL, T_VGAP, T_G, T_SP, T_ACTIVE, T_DUP, T_TAUTH, T_ASP, T_AKIND, T_OKKEY, T_VKEY,
       T_VSAMPLE, T_DEFERRED, T_TABLE, T_RECENT_MAX, T_SAMPLE, T_AUTH_SAMPLE, T_FIELDS };
enum { OK = 1, UNCHECKED = 2, VRRP2_AUTH = 3 };

static PyObject *s_layouts, *s_templates, *s_c, *s_n_open, *s_due, *s_advance, *s_adj_until,
    *s_now, *s_generation, *s_popitem;

/* ------------------------------------------------------------------ slots */

static PyTypeObject *speaker_type, *auth_type, *info_type;
/* track.Speaker */
static Py_ssize_t sp_steady, sp_run_start, sp_last, sp_adverts, sp_frames, sp_p_n, sp_p_sum, sp_p_sq, sp_p_min,
    sp_p_max, sp_run_adverts, sp_last_frame, sp_auth;
/* auth._Speaker */
static Py_ssize_t as_adverts, as_last_seen, as_first_seen, as_frames, as_ok, as_ok_by,
    as_unchecked, as_auth, as_auth_frames;
/* model.SourceInfo, steady.Table */
static Py_ssize_t si_adverts, tb_folded;
static PyTypeObject *table_type;

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

static int offset_of(PyTypeObject *tp, const char *name, Py_ssize_t *out)
{
    PyObject *d = PyDict_GetItemString(tp->tp_dict, name);
    if (d == NULL || !PyObject_TypeCheck(d, &PyMemberDescr_Type)
        || ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", tp->tp_name, name);
        return -1;
    }
    *out = ((PyMemberDescrObject *)d)->d_member->offset;
    return 0;
}

/* a slot's value (borrowed); NULL with AttributeError when unset */
static PyObject *get_slot(PyObject *o, Py_ssize_t off)
{
    PyObject *v = SLOT(o, off);
    if (v == NULL)
        PyErr_SetString(PyExc_AttributeError, "unset slot");
    return v;
}

/* steals v */
static int set_slot(PyObject *o, Py_ssize_t off, PyObject *v)
{
    if (v == NULL)
        return -1;
    PyObject *old = SLOT(o, off);
    SLOT(o, off) = v;
    Py_XDECREF(old);
    return 0;
}

static int slot_double(PyObject *o, Py_ssize_t off, double *out)
{
    PyObject *v = get_slot(o, off);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* o.slot += 1 for an int */
static int incr_slot(PyObject *o, Py_ssize_t off)
{
    PyObject *v = get_slot(o, off);
    if (v == NULL)
        return -1;
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    return set_slot(o, off, PyLong_FromLongLong(x + 1));
}

/* d[key] += 1 for a dict of ints */
static int incr_item(PyObject *d, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    PyObject *w = PyLong_FromLongLong(x + 1);
    if (w == NULL)
        return -1;
    int r = PyDict_SetItem(d, key, w);
    Py_DECREF(w);
    return r;
}

/* if len(list slot) < limit: append n */
static int sample(PyObject *o, Py_ssize_t off, PyObject *limit, PyObject *n)
{
    PyObject *lst = get_slot(o, off);
    if (lst == NULL)
        return -1;
    if (!PyList_Check(lst)) {
        PyErr_SetString(PyExc_TypeError, "sample list expected");
        return -1;
    }
    Py_ssize_t lim = PyLong_AsSsize_t(limit);
    if (lim == -1 && PyErr_Occurred())
        return -1;
    return PyList_GET_SIZE(lst) < lim ? PyList_Append(lst, n) : 0;
}

/* p_min / p_max: set to dt when None or beaten */
static int set_extreme(PyObject *sp, Py_ssize_t off, double dt, int want_min)
{
    PyObject *v = get_slot(sp, off);
    if (v == NULL)
        return -1;
    if (v != Py_None) {
        double cur = PyFloat_AsDouble(v);
        if (cur == -1.0 && PyErr_Occurred())
            return -1;
        if (want_min ? !(dt < cur) : !(dt > cur))
            return 0;
    }
    return set_slot(sp, off, PyFloat_FromDouble(dt));
}

static int attr_double(PyObject *o, PyObject *name, double *out)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* ------------------------------------------------------------------ SHA-1 (FIPS 180-4) */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* one 64-byte block; the message schedule kept as 16 words (FIPS 180-4 §6.1.3) */
#define W(i) (w[(i) & 15] = ROL(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ w[((i) + 2) & 15] ^ w[(i) & 15], 1))
#define STEP(f, k, wi) do {                                       \
        uint32_t t_ = ROL(a, 5) + (f) + e + (k) + (wi);           \
        e = d; d = c; c = ROL(b, 30); b = a; a = t_;              \
    } while (0)

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++)
        STEP((b & c) | (~b & d), 0x5A827999, w[i]);
    for (int i = 16; i < 20; i++)
        STEP((b & c) | (~b & d), 0x5A827999, W(i));
    for (int i = 20; i < 40; i++)
        STEP(b ^ c ^ d, 0x6ED9EBA1, W(i));
    for (int i = 40; i < 60; i++)
        STEP((b & c) | (b & d) | (c & d), 0x8F1BBCDC, W(i));
    for (int i = 60; i < 80; i++)
        STEP(b ^ c ^ d, 0xCA62C1D6, W(i));
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static const uint32_t SHA1_IV[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

/* SHA-1 of everything absorbed so far (len bytes in all, the last rem_len in rem) */
static void sha1_final(uint32_t h[5], unsigned char *rem, size_t rem_len, uint64_t len, unsigned char out[20])
{
    unsigned char blk[128];
    memcpy(blk, rem, rem_len);
    blk[rem_len] = 0x80;
    size_t total = rem_len + 9 <= 64 ? 64 : 128;
    memset(blk + rem_len + 1, 0, total - rem_len - 1);
    uint64_t bits = len * 8;
    for (int i = 0; i < 8; i++)
        blk[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, blk);
    if (total == 128)
        sha1_block(h, blk + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}

/* HMAC-SHA1(key, prefix || message) continued from a precomputed state */
typedef struct {
    uint32_t inner[5];      /* after ipad and the whole 64-byte blocks of the prefix */
    uint32_t outer[5];      /* after opad */
    uint64_t len;           /* bytes absorbed by the inner hash: 64 + len(prefix) */
    uint32_t rem_len;       /* prefix bytes not yet in a block */
    unsigned char rem[64];
} hmac_state_t;

static void hmac_finish(const hmac_state_t *s, const unsigned char *msg, size_t n, unsigned char out[20])
{
    uint32_t h[5];
    unsigned char buf[128], idig[20];
    memcpy(h, s->inner, sizeof h);
    size_t have = s->rem_len;
    memcpy(buf, s->rem, have);
    if (have + n > sizeof buf)      /* messages here are 8 bytes; be safe */
        n = sizeof buf - have;
    memcpy(buf + have, msg, n);
    have += n;
    uint64_t len = s->len + n;
    unsigned char *p = buf;
    while (have >= 64) {
        sha1_block(h, p);
        p += 64;
        have -= 64;
    }
    sha1_final(h, p, have, len, idig);
    memcpy(h, s->outer, sizeof h);
    sha1_final(h, idig, 20, 64 + 20, out);
}

/* hmac_state(key, prefix) -> opaque bytes for Template.c */
static PyObject *hmac_state(PyObject *self, PyObject *args)
{
    Py_buffer key, prefix;
    if (!PyArg_ParseTuple(args, "y*y*", &key, &prefix))
        return NULL;
    hmac_state_t s;
    unsigned char k[64] = {0}, pad[64];
    uint32_t h[5];
    if (key.len > 64) {            /* RFC 2104: a longer key is hashed first */
        memcpy(h, SHA1_IV, sizeof h);
        const unsigned char *p = key.buf;
        Py_ssize_t left = key.len;
        while (left >= 64) {
            sha1_block(h, p);
            p += 64;
            left -= 64;
        }
        sha1_final(h, (unsigned char *)p, (size_t)left, (uint64_t)key.len, k);
    } else {
        memcpy(k, key.buf, key.len);
    }
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    memcpy(s.inner, SHA1_IV, sizeof s.inner);
    sha1_block(s.inner, pad);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    memcpy(s.outer, SHA1_IV, sizeof s.outer);
    sha1_block(s.outer, pad);
    const unsigned char *p = prefix.buf;
    Py_ssize_t left = prefix.len;
    while (left >= 64) {
        sha1_block(s.inner, p);
        p += 64;
        left -= 64;
    }
    memcpy(s.rem, p, (size_t)left);
    s.rem_len = (uint32_t)left;
    s.len = 64 + (uint64_t)prefix.len;
    memset(k, 0, sizeof k);
    memset(pad, 0, sizeof pad);
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    return PyBytes_FromStringAndSize((const char *)&s, sizeof s);
}

/* hmac(state, message) -> 20-byte digest (tests compare it with the hmac module) */
static PyObject *hmac_digest(PyObject *self, PyObject *args)
{
    Py_buffer st, msg;
    if (!PyArg_ParseTuple(args, "y*y*", &st, &msg))
        return NULL;
    PyObject *out = NULL;
    if (st.len != (Py_ssize_t)sizeof(hmac_state_t) || msg.len > 64) {
        PyErr_SetString(PyExc_ValueError, "not an hmac_state, or a message over 64 bytes");
    } else {
        unsigned char d[20];
        hmac_finish((const hmac_state_t *)st.buf, msg.buf, (size_t)msg.len, d);
        out = PyBytes_FromStringAndSize((const char *)d, 20);
    }
    PyBuffer_Release(&st);
    PyBuffer_Release(&msg);
    return out;
}

/* ------------------------------------------------------------------ find (steady.Table.find) */

/* new reference to the template, Py_None when there is none, NULL on error */
static PyObject *find(PyObject *table, const char *b, Py_ssize_t n)
{
    PyObject *layouts = PyObject_GetAttr(table, s_layouts);
    if (layouts == NULL)
        return NULL;
    PyObject *templates = PyObject_GetAttr(table, s_templates);
    PyObject *found = NULL;
    PyObject *len = templates ? PyLong_FromSsize_t(n) : NULL;
    PyObject *cuts = len ? PyDict_GetItemWithError(layouts, len) : NULL;
    Py_XDECREF(len);
    if (cuts != NULL && PyList_Check(cuts)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cuts) && !found; i++) {
            PyObject *cut = PyList_GET_ITEM(cuts, i);
            Py_ssize_t c[6];
            for (int k = 0; k < 6; k++) {   /* Python clamps slice bounds to [0, n] */
                c[k] = PyLong_AsSsize_t(PyTuple_GET_ITEM(cut, k));
                c[k] = c[k] < 0 ? 0 : (c[k] > n ? n : c[k]);
            }
            Py_ssize_t l1 = c[2] > c[1] ? c[2] - c[1] : 0, l2 = c[4] > c[3] ? c[4] - c[3] : 0;
            PyObject *key = PyBytes_FromStringAndSize(NULL, c[0] + l1 + l2 + (n - c[5]));
            if (key == NULL)
                break;
            char *k = PyBytes_AS_STRING(key);
            memcpy(k, b, c[0]);
            memcpy(k + c[0], b + c[1], l1);
            memcpy(k + c[0] + l1, b + c[3], l2);
            memcpy(k + c[0] + l1 + l2, b + c[5], n - c[5]);
            found = PyDict_GetItemWithError(templates, key);
            Py_DECREF(key);
            if (found == NULL && PyErr_Occurred())
                break;
        }
    }
    Py_DECREF(layouts);
    Py_XDECREF(templates);
    if (PyErr_Occurred())
        return NULL;
    found = found ? found : Py_None;
    Py_INCREF(found);
    return found;
}

/* ------------------------------------------------------------------ fold (steady.Steady.fold) */

/* 1 folded, 0 not a pure repeat (nothing changed), -1 error */
static int fold(PyObject *t, PyObject *c, PyObject *nobj, PyObject *tsobj, double ts,
                const unsigned char *frame, Py_ssize_t flen)
{
#define F(i) PyTuple_GET_ITEM(c, i)
    PyObject *sp = F(T_SP), *vi = F(T_VI), *vc = F(T_VCELL), *src = F(T_SRC), *asp = F(T_ASP);
    int r;

    if (Py_TYPE(sp) != speaker_type || Py_TYPE(F(T_INFO)) != info_type || Py_TYPE(F(T_TABLE)) != table_type
        || (asp != Py_None && Py_TYPE(asp) != auth_type)) {
        PyErr_SetString(PyExc_TypeError, "template records of unexpected types (configure() first)");
        return -1;
    }
    if (SLOT(sp, sp_steady) != t)
        return 0;
    if (SLOT(sp, sp_run_start) == NULL || SLOT(sp, sp_run_start) == Py_None)
        return 0;               /* its run was closed (by another's advert, time running back) */
    PyObject *no = PyObject_GetAttr(F(T_G), s_n_open);
    if (no == NULL)
        return -1;
    long n_open = PyLong_AsLong(no);
    Py_DECREF(no);
    if (n_open != 1)
        return n_open == -1 && PyErr_Occurred() ? -1 : 0;
    double last, active = PyFloat_AsDouble(F(T_ACTIVE)), dup = PyFloat_AsDouble(F(T_DUP));
    if (slot_double(sp, sp_last, &last) < 0 || PyErr_Occurred())
        return -1;
    double dt = ts - last;
    if (dt > active || dt < dup || PyDict_GET_SIZE(F(T_DEFERRED)) > 0)
        return 0;
    if (vi != Py_None) {
        double due, adj;
        if (attr_double(vi, s_due, &due) < 0)
            return -1;
        if (ts >= due) {     /* what add_advert does first (idempotent for one ts) */
            PyObject *res = PyObject_CallMethodOneArg(vi, s_advance, tsobj);
            if (res == NULL)
                return -1;
            Py_DECREF(res);
        }
        if (attr_double(vi, s_adj_until, &adj) < 0)
            return -1;
        if (ts <= adj)
            return 0;
        r = PyObject_RichCompareBool(PyList_GET_ITEM(vc, 0), src, Py_NE);
        if (r != 0)
            return r < 0 ? -1 : 0;
        double v1 = PyFloat_AsDouble(PyList_GET_ITEM(vc, 1));
        double vgap = PyFloat_AsDouble(F(T_VGAP));
        if (PyErr_Occurred())
            return -1;
        if (ts - v1 > vgap)
            return 0;
    }
    if (F(T_CARP) == Py_True) {
        Py_ssize_t p = PyLong_AsSsize_t(F(T_P));
        if (p < 0 || p + 36 > flen)
            return PyErr_Occurred() ? -1 : 0;
        const unsigned char *pl = frame + p;
        /* int.from_bytes(pl) % 0xFFFF: 2**16 == 1 (mod 0xFFFF), so the sum of the words */
        uint64_t sum = 0;
        for (int i = 0; i < 36; i += 2)
            sum += ((uint64_t)pl[i] << 8) | pl[i + 1];
        if (sum % 0xFFFF)
            return 0;
        if (F(T_KR) != Py_None) {
            PyObject *gen = PyObject_GetAttr(F(T_KR), s_generation);
            if (gen == NULL)
                return -1;
            r = PyObject_RichCompareBool(gen, F(T_GEN), Py_NE);
            Py_DECREF(gen);
            if (r != 0)
                return r < 0 ? -1 : 0;
        }
        PyObject *hs = F(T_HMAC);
        if (hs != Py_None) {
            unsigned char d[20];
            if (!PyBytes_Check(hs) || PyBytes_GET_SIZE(hs) != (Py_ssize_t)sizeof(hmac_state_t)) {
                PyErr_SetString(PyExc_TypeError, "template HMAC state is not an hmac_state()");
                return -1;
            }
            hmac_finish((const hmac_state_t *)PyBytes_AS_STRING(hs), pl + 8, 8, d);
            if (memcmp(d, pl + 16, 20) != 0)
                return 0;
        }
        PyObject *gid = F(T_GID), *recent = F(T_RECENT), *cell = F(T_CSEEN);
        Py_ssize_t gl = PyBytes_GET_SIZE(gid);
        PyObject *rk = PyBytes_FromStringAndSize(NULL, gl + 28);
        if (rk == NULL)
            return -1;
        memcpy(PyBytes_AS_STRING(rk), PyBytes_AS_STRING(gid), gl);
        memcpy(PyBytes_AS_STRING(rk) + gl, pl + 8, 28);
        r = PyDict_Contains(recent, rk);
        if (r == 0)
            r = PyObject_Not(PyList_GET_ITEM(cell, 1));
        if (r != 0) {
            Py_DECREF(rk);
            return r < 0 ? -1 : 0;
        }
        /* every check passed: from here on, fold */
        PyObject *counter = PyBytes_FromStringAndSize((const char *)pl + 8, 8);
        if (counter == NULL || PyList_SetItem(cell, 0, counter) < 0) {
            Py_DECREF(rk);
            return -1;
        }
        Py_ssize_t rmax = PyLong_AsSsize_t(F(T_RECENT_MAX));
        if (PyObject_Length(recent) >= rmax) {
            PyObject *x = PyObject_CallMethodOneArg(recent, s_popitem, Py_False);
            if (x == NULL) {
                Py_DECREF(rk);
                return -1;
            }
            Py_DECREF(x);
        }
        PyObject *val = PyTuple_Pack(3, tsobj, nobj, src);
        r = val ? PyObject_SetItem(recent, rk, val) : -1;
        Py_XDECREF(val);
        Py_DECREF(rk);
        if (r < 0)
            return -1;
    }
    if (vi != Py_None) {
        double now;
        if (attr_double(vi, s_now, &now) < 0)
            return -1;
        if (ts > now && PyObject_SetAttr(vi, s_now, tsobj) < 0)
            return -1;
        Py_INCREF(tsobj);
        if (PyList_SetItem(vc, 1, tsobj) < 0)
            return -1;
    }
    /* track.Group.advert for the only open run */
    double sum, sq;
    if (incr_slot(sp, sp_adverts) < 0 || sample(sp, sp_frames, F(T_SAMPLE), nobj) < 0
        || incr_slot(sp, sp_p_n) < 0
        || slot_double(sp, sp_p_sum, &sum) < 0 || set_slot(sp, sp_p_sum, PyFloat_FromDouble(sum + dt)) < 0
        || slot_double(sp, sp_p_sq, &sq) < 0 || set_slot(sp, sp_p_sq, PyFloat_FromDouble(sq + dt * dt)) < 0
        || set_extreme(sp, sp_p_min, dt, 1) < 0 || set_extreme(sp, sp_p_max, dt, 0) < 0
        || incr_slot(sp, sp_run_adverts) < 0)
        return -1;
    Py_INCREF(tsobj);
    set_slot(sp, sp_last, tsobj);
    Py_INCREF(nobj);
    set_slot(sp, sp_last_frame, nobj);
    if (F(T_TAUTH) != Py_None) {
        PyObject *auth = get_slot(sp, sp_auth);
        if (auth == NULL || !PyDict_Check(auth) || incr_item(auth, F(T_TAUTH)) < 0)
            return -1;
    }
    /* auth.AuthFindings.add */
    if (asp != Py_None) {
        double seen;
        if (incr_slot(asp, as_adverts) < 0)
            return -1;
        if (slot_double(asp, as_last_seen, &seen) < 0
            || (ts > seen && (Py_INCREF(tsobj), set_slot(asp, as_last_seen, tsobj)) < 0))
            return -1;
        if (slot_double(asp, as_first_seen, &seen) < 0
            || (ts < seen && (Py_INCREF(tsobj), set_slot(asp, as_first_seen, tsobj)) < 0))
            return -1;
        if (sample(asp, as_frames, F(T_AUTH_SAMPLE), nobj) < 0)
            return -1;
        long kind = PyLong_AsLong(F(T_AKIND));
        if (kind == OK) {
            if (incr_slot(asp, as_ok) < 0)
                return -1;
            if (F(T_OKKEY) != Py_None) {
                PyObject *d = get_slot(asp, as_ok_by);
                if (d == NULL || !PyDict_Check(d) || incr_item(d, F(T_OKKEY)) < 0)
                    return -1;
            }
        } else if (kind == UNCHECKED) {
            if (incr_slot(asp, as_unchecked) < 0)
                return -1;
        } else if (kind == VRRP2_AUTH) {
            if (F(T_VKEY) != Py_None) {
                PyObject *d = get_slot(asp, as_auth);
                if (d == NULL || !PyDict_Check(d) || incr_item(d, F(T_VKEY)) < 0)
                    return -1;
            }
            if (F(T_VSAMPLE) == Py_True && sample(asp, as_auth_frames, F(T_AUTH_SAMPLE), nobj) < 0)
                return -1;
        }
    }
    if (incr_slot(F(T_INFO), si_adverts) < 0 || incr_slot(F(T_TABLE), tb_folded) < 0)
        return -1;
    return 1;
#undef F
}

/* find + fold of one frame: 1 folded, 0 not, -1 error */
static int find_fold_one(PyObject *table, long lt, PyObject *nobj, PyObject *tsobj, double ts,
                         const char *b, Py_ssize_t n)
{
    PyObject *t = find(table, b, n);
    if (t == NULL)
        return -1;
    if (t == Py_None) {
        Py_DECREF(t);
        return 0;
    }
    PyObject *c = PyObject_GetAttr(t, s_c);
    int r = c ? 0 : -1;
    if (c != NULL && (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) != T_FIELDS)) {
        PyErr_SetString(PyExc_TypeError, "template tuple of the wrong shape");
        r = -1;
    } else if (c != NULL && PyLong_AsLong(PyTuple_GET_ITEM(c, T_LT)) == lt) {
        r = fold(t, c, nobj, tsobj, ts, (const unsigned char *)b, n);
    }
    Py_XDECREF(c);
    Py_DECREF(t);
    return r;
}

static int check_ready(void)
{
    if (speaker_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "carpscope._steady.configure() was not called");
        return -1;
    }
    return 0;
}

/* find_fold(table, linktype, frame number, ts, data) -> bool: steady.Steady.find_fold */
static PyObject *find_fold(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyBytes_Check(args[4]) || !PyFloat_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "find_fold(table, linktype, number, ts: float, data: bytes)");
        return NULL;
    }
    if (check_ready() < 0)
        return NULL;
    long lt = PyLong_AsLong(args[1]);
    if (lt == -1 && PyErr_Occurred())
        return NULL;
    int r = find_fold_one(args[0], lt, args[2], args[3], PyFloat_AS_DOUBLE(args[3]),
                          PyBytes_AS_STRING(args[4]), PyBytes_GET_SIZE(args[4]));
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

/* fold_batch(table, linktype, buf, meta, start, n0) -> index of the first frame not folded
 * (steady.Steady.fold_batch): meta holds (seconds, microseconds, offset, length) per frame as
 * native uint32, as pcapy-ng's next_batch gives them; frame i is number n0 + i + 1. */
static PyObject *fold_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "fold_batch(table, linktype, buf: bytes, meta, start, n0)");
        return NULL;
    }
    if (check_ready() < 0)
        return NULL;
    long lt = PyLong_AsLong(args[1]);
    Py_ssize_t i = PyLong_AsSsize_t(args[4]);
    long long n0 = PyLong_AsLongLong(args[5]);
    if (PyErr_Occurred())
        return NULL;
    Py_buffer mb;
    if (PyObject_GetBuffer(args[3], &mb, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint32_t *m = (const uint32_t *)mb.buf;
    Py_ssize_t count = mb.len / 16;
    const char *buf = PyBytes_AS_STRING(args[2]);
    Py_ssize_t blen = PyBytes_GET_SIZE(args[2]);
    int r = 0;
    for (; i < count; i++) {
        const uint32_t *f = m + 4 * i;
        if ((Py_ssize_t)f[2] + (Py_ssize_t)f[3] > blen)
            break;              /* Python's slice would be short: let it see the frame */
        /* ts exactly as capture.py computes it: seconds + microseconds * 1e-6 */
        double ts = (double)f[0] + (double)f[1] * 1e-6;
        PyObject *tsobj = PyFloat_FromDouble(ts);
        PyObject *nobj = tsobj ? PyLong_FromLongLong(n0 + i + 1) : NULL;
        r = nobj ? find_fold_one(args[0], lt, nobj, tsobj, ts, buf + f[2], f[3]) : -1;
        Py_XDECREF(tsobj);
        Py_XDECREF(nobj);
        if (r <= 0)
            break;
    }
    PyBuffer_Release(&mb);
    if (r < 0)
        return NULL;
    return PyLong_FromSsize_t(i);
}

/* configure(Speaker, AuthSpeaker, SourceInfo, Table): find the slot offsets */
static PyObject *configure(PyObject *self, PyObject *args)
{
    PyTypeObject *sp, *as, *si, *tb;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyType_Type, &sp, &PyType_Type, &as, &PyType_Type, &si,
                          &PyType_Type, &tb))
        return NULL;
    if (offset_of(sp, "steady", &sp_steady) || offset_of(sp, "run_start", &sp_run_start)
        || offset_of(sp, "last", &sp_last)
        || offset_of(sp, "adverts", &sp_adverts) || offset_of(sp, "frames", &sp_frames)
        || offset_of(sp, "p_n", &sp_p_n) || offset_of(sp, "p_sum", &sp_p_sum)
        || offset_of(sp, "p_sq", &sp_p_sq) || offset_of(sp, "p_min", &sp_p_min)
        || offset_of(sp, "p_max", &sp_p_max) || offset_of(sp, "run_adverts", &sp_run_adverts)
        || offset_of(sp, "last_frame", &sp_last_frame) || offset_of(sp, "auth", &sp_auth)
        || offset_of(as, "adverts", &as_adverts) || offset_of(as, "last_seen", &as_last_seen)
        || offset_of(as, "first_seen", &as_first_seen) || offset_of(as, "frames", &as_frames)
        || offset_of(as, "ok", &as_ok) || offset_of(as, "ok_by", &as_ok_by)
        || offset_of(as, "unchecked", &as_unchecked) || offset_of(as, "auth", &as_auth)
        || offset_of(as, "auth_frames", &as_auth_frames) || offset_of(si, "adverts", &si_adverts)
        || offset_of(tb, "folded", &tb_folded))
        return NULL;
    Py_INCREF(sp);
    Py_INCREF(as);
    Py_INCREF(si);
    Py_INCREF(tb);
    Py_XSETREF(table_type, tb);
    Py_XSETREF(speaker_type, sp);
    Py_XSETREF(auth_type, as);
    Py_XSETREF(info_type, si);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"find_fold", (PyCFunction)(void (*)(void))find_fold, METH_FASTCALL,
     "find_fold(table, linktype, number, ts, data) -> True when the frame was folded"},
    {"fold_batch", (PyCFunction)(void (*)(void))fold_batch, METH_FASTCALL,
     "fold_batch(table, linktype, buf, meta, start, n0) -> index of the first frame not folded"},
    {"configure", configure, METH_VARARGS, "configure(Speaker, AuthSpeaker, SourceInfo, Table)"},
    {"hmac_state", hmac_state, METH_VARARGS, "hmac_state(key, prefix) -> opaque state"},
    {"hmac", hmac_digest, METH_VARARGS, "hmac(state, message) -> HMAC-SHA1(key, prefix + message)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "carpscope._steady",
                                    "Compiled steady-state fold (see carpscope/steady.py).", -1, methods};

#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__steady(void)
{
    INTERN(s_layouts, "layouts");
    INTERN(s_templates, "templates");
    INTERN(s_c, "c");
    INTERN(s_n_open, "n_open");
    INTERN(s_due, "due");
    INTERN(s_advance, "_advance");
    INTERN(s_adj_until, "adj_until");
    INTERN(s_now, "_now");
    INTERN(s_generation, "generation");
    INTERN(s_popitem, "popitem");
    return PyModule_Create(&module);
}
