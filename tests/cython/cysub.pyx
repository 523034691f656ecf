# cython: language_level=3
"""A Cython client of greenlet's C API, built the way gevent builds its own.

The greenlet type is taken from the public header as an extern class, so
Cython checks `tp_basicsize` against `sizeof(PyGreenlet)` when this module is
imported, and `Sub` lays its own fields out right after the 40-byte
`PyGreenlet` struct. If the greenlet implementation kept anything inline past
that struct, these fields would be overwritten.

test_cython_subclass.py compiles this file at test time and drives it.
"""

from cpython.exc cimport PyErr_Occurred
from cpython.ref cimport Py_DECREF

from greenlet import GreenletExit

cdef extern from "greenlet/greenlet.h":
    # The same declarations gevent's .pxd files make.
    ctypedef class greenlet.greenlet [object PyGreenlet]:
        pass

    greenlet PyGreenlet_GetCurrent()
    object PyGreenlet_Switch(greenlet self, void* args, void* kwargs)
    void* PyGreenlet_GetParent(greenlet)
    void PyGreenlet_Import()

cdef extern from *:
    # Emitted verbatim by Cython: the C compiler's view of the struct size.
    Py_ssize_t SIZEOF_PYGREENLET "((Py_ssize_t)sizeof(PyGreenlet))"


cdef int _check_no_error() except -1:
    # Turn "a C API call left an exception set" into a Python raise.
    if PyErr_Occurred() != NULL:
        return -1
    return 0


cdef int _import_api() except -1:
    PyGreenlet_Import()
    return _check_no_error()


_import_api()

#: sizeof(PyGreenlet) as this module was compiled.
PYGREENLET_SIZE = SIZEOF_PYGREENLET


cdef object _parent_of(greenlet g):
    # PyGreenlet_GetParent hands out a new reference, or NULL with no
    # exception for a greenlet that has no parent. Return None for the latter.
    cdef void* raw = PyGreenlet_GetParent(g)
    if raw == NULL:
        _check_no_error()
        return None
    parent = <object>raw   # takes a reference of its own
    Py_DECREF(parent)      # and gives back the one the API handed out
    return parent


cdef object _switch(greenlet target, tuple args, dict kwargs):
    if target is None:
        raise TypeError("cannot switch to None")
    return PyGreenlet_Switch(
        target,
        <void*>args if args is not None else NULL,
        <void*>kwargs if kwargs is not None else NULL)


# ---------------------------------------------------------- module functions

def capi_getcurrent():
    """greenlet.getcurrent() through the C API."""
    return PyGreenlet_GetCurrent()


def capi_parent(greenlet g):
    """Return (parent, exception_was_set) as PyGreenlet_GetParent reports it.

    For a greenlet without a parent this must be (None, False): NULL and no
    pending exception.
    """
    cdef void* raw = PyGreenlet_GetParent(g)
    cdef bint error_set = PyErr_Occurred() != NULL
    if raw == NULL:
        _check_no_error()   # NULL *with* an exception: raise it
        return (None, False)
    parent = <object>raw
    Py_DECREF(parent)
    return (parent, error_set)


def capi_switch(greenlet g, tuple args=None, dict kwargs=None):
    """g.switch(*args, **kwargs) through the C API; None is passed as NULL."""
    return _switch(g, args, kwargs)


def switch_up(*args):
    """Switch from the current greenlet to its parent, passing *args.

    Holds no reference to the current greenlet while suspended, so a greenlet
    parked here can still be freed by reference counting (and be killed by
    its dealloc).
    """
    cdef greenlet parent
    current = PyGreenlet_GetCurrent()
    parent = _parent_of(current)
    del current
    if parent is None:
        raise RuntimeError("switch_up() called in a main greenlet")
    return _switch(parent, args, None)


# ---------------------------------------------------------- the subclasses

cdef class Sub(greenlet):
    """A C-level greenlet subclass with fields of its own past PyGreenlet."""

    cdef public object payload
    cdef public long counter
    cdef public double ratio

    def __init__(self, run=None, parent=None, payload=None,
                 long counter=0, double ratio=0.0):
        greenlet.__init__(self, run, parent)
        self.payload = payload
        self.counter = counter
        self.ratio = ratio

    @staticmethod
    def field_offsets():
        """Byte offsets of our fields, found by scanning a probe instance's
        memory for distinctive values (Cython cannot take the address of an
        object field)."""
        cdef Sub probe = Sub.__new__(Sub)
        marker = object()
        probe.payload = marker
        probe.counter = 0x5EC7E7C0DE
        probe.ratio = -1234.5678e200
        cdef char* base = <char*><void*>probe
        cdef Py_ssize_t size = type(probe).__basicsize__
        cdef Py_ssize_t off
        found = {}
        for off in range(0, size - sizeof(void*) + 1, sizeof(void*)):
            if (<void**>(base + off))[0] == <void*>marker:
                found.setdefault("payload", off)
            if (<long*>(base + off))[0] == probe.counter:
                found.setdefault("counter", off)
            if (<double*>(base + off))[0] == probe.ratio:
                found.setdefault("ratio", off)
        return found

    def fields(self):
        return (self.payload, self.counter, self.ratio)

    def bump(self, long by=1):
        self.counter += by
        self.ratio += 0.5 * by
        return self.counter

    def is_current(self):
        """True iff PyGreenlet_GetCurrent() is this object."""
        return PyGreenlet_GetCurrent() is self

    def capi_parent(self):
        return _parent_of(self)

    def switch_to_parent(self, *args):
        """Switch to our parent through the C API (call it from inside us)."""
        return _switch(_parent_of(self), args, None)

    def capi_switch(self, *args, **kwargs):
        """Switch into this greenlet through the C API."""
        return _switch(self, args, kwargs or None)


cdef class RunSub(Sub):
    """A Sub that provides run() itself, as gevent's Greenlet does."""

    #: Filled by run() when a GreenletExit reaches it.
    killed = []

    def run(self, long rounds=0):
        """Bump the fields `rounds` times, handing (counter, ratio) to the
        parent after each bump; return a summary when done."""
        cdef long i
        try:
            for i in range(rounds):
                self.bump()
                received = self.switch_to_parent(self.counter, self.ratio)
                if received is not None and received != ():
                    self.payload = received
            return ("done", self.counter, self.ratio)
        except GreenletExit as exc:
            # Only C fields here: during a dealloc Cython has already
            # released our object fields.
            RunSub.killed.append((self.counter, self.ratio, type(exc).__name__))
            raise
