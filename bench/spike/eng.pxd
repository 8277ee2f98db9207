# cython: language_level=3
import cython
cdef dict _ADDRS, _MACS
cdef str ntop(bytes b)
cdef str mac(bytes b)

cdef class Advert:
    cdef public object frame
    cdef public double ts
    cdef public str segment, protocol, src, dst, eth_src
    cdef public long family, ttl, vhid, version, type, checksum, advbase, advskew, authlen, demote
    cdef public bint checksum_ok
    cdef public bytes counter, md, ipkey

@cython.locals(n=Py_ssize_t, off=Py_ssize_t, et=long, ihl=Py_ssize_t, total=Py_ssize_t, end=Py_ssize_t)
cpdef Advert decode(bytes data, object frame, double ts, str source)

cdef class Fold:
    cdef public long count
    cdef public double first, last
    cdef public list frames

cdef class PacketRules:
    cdef public dict folds, recent, counters
    cdef public long hits
    cpdef void hit(self, tuple key, double ts, object frame)
    @cython.locals(before=long)
    cpdef bint advert(self, Advert a)

cdef class Ctx:
    cdef public object inner, outer
    cdef public str label
    cpdef bint matches(self, bytes counter, bytes md)

cdef class Verifier:
    cdef public dict ctxs, good
    cpdef str verify(self, Advert a)

cdef class Speaker:
    cdef public str ip, mac, key
    cdef public long adverts, copies, p_n, run_adverts, ok, fail
    cdef public object run_first, last_frame
    cdef public double first, last, md, interval, p_sum, p_min, p_max, run_start
    cdef public long advbase, advskew
    cdef public list frames

cdef class Group:
    cdef public tuple key
    cdef public dict speakers, pairs
    cdef public Speaker master
    cdef public long n_changes, n_runs, episodes
    cdef public list changes, runs
    @cython.locals(t=double, dt=double, o=Speaker, prev=Speaker)
    cpdef void advert(self, Advert a, Speaker sp)
    cpdef void close(self, Speaker sp)

cdef class Copy:
    cdef public double ts, window
    cdef public Speaker sp

cdef class Engine:
    cdef public dict groups, copies
    cdef public PacketRules rules
    cdef public Verifier verifier
    cdef public long adverts, copied
    @cython.locals(a=Advert, c=Copy, g=Group, sp=Speaker)
    cpdef void frame(self, bytes data, object frame, double ts, str source)
    cpdef void batch(self, list frames, str source)
