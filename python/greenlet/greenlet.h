/*
 * greenlet.h -- the C interface of greenlet-rs.
 *
 * greenlet-rs is a Rust reimplementation of the `greenlet` package. C and
 * Cython code written against the greenlet 2.x/3.x header must build against
 * this file unchanged and run against our extension, so everything below is
 * binary interface, not design choice:
 *
 *   - `PyGreenlet` is the instance layout of `greenlet.greenlet`: the object
 *     header and three pointers (40 bytes on 64-bit GIL builds). Cython
 *     subclasses (gevent, for one) put their own fields straight after it,
 *     so its size must never change.
 *   - The API is a table of `PyGreenlet_API_pointers` pointers published as
 *     the capsule `greenlet._C_API`. A slot's index is its identity; new
 *     entries may only ever be appended.
 *
 * Every client translation unit gets its own copy of the table pointer and
 * must call `PyGreenlet_Import()` (normally from its module init) before
 * using any of the accessors.
 */
#ifndef Py_GREENLETOBJECT_H
#define Py_GREENLETOBJECT_H

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Frozen at this value since greenlet 1.0; kept only so old code compiles. */
#define GREENLET_VERSION "1.0.0"

/*
 * The type of the last struct field. Clients see an opaque pointer. A module
 * that implements greenlet in C or C++ defines GREENLET_MODULE and may name
 * its own pointer type in `implementation_ptr_t` before including us.
 */
#ifndef implementation_ptr_t
#    define implementation_ptr_t void*
#endif

typedef struct _greenlet {
    PyObject_HEAD
    PyObject* weakreflist;          /* tp_weaklistoffset points here */
    PyObject* dict;                 /* tp_dictoffset points here */
    implementation_ptr_t pimpl;     /* owned by the extension; never touch */
} PyGreenlet;

#define PyGreenlet_Check(op) \
    ((op) && PyObject_TypeCheck((op), &PyGreenlet_Type))

/* ---- the pointer table ------------------------------------------------ */

#define PyGreenlet_API_pointers 12

/* Objects. */
#define PyGreenlet_Type_NUM         0   /* PyTypeObject*            */
#define PyExc_GreenletError_NUM     1   /* greenlet.error           */
#define PyExc_GreenletExit_NUM      2   /* greenlet.GreenletExit    */

/* Functions present since the table was introduced. */
#define PyGreenlet_New_NUM          3
#define PyGreenlet_GetCurrent_NUM   4
#define PyGreenlet_Throw_NUM        5
#define PyGreenlet_Switch_NUM       6
#define PyGreenlet_SetParent_NUM    7

/* Functions that replaced field-reading macros when the struct went opaque. */
#define PyGreenlet_MAIN_NUM         8
#define PyGreenlet_STARTED_NUM      9
#define PyGreenlet_ACTIVE_NUM       10
#define PyGreenlet_GET_PARENT_NUM   11

#ifndef GREENLET_MODULE

/* Filled in by PyGreenlet_Import(); one copy per translation unit. */
static void** _PyGreenlet_API = NULL;

/* Read slot `num` of the table as a value of type `type`. */
#define _PyGreenlet_SLOT(type, num) ((type)_PyGreenlet_API[num])

#define PyGreenlet_Type \
    (*_PyGreenlet_SLOT(PyTypeObject*, PyGreenlet_Type_NUM))

#define PyExc_GreenletError \
    _PyGreenlet_SLOT(PyObject*, PyExc_GreenletError_NUM)

#define PyExc_GreenletExit \
    _PyGreenlet_SLOT(PyObject*, PyExc_GreenletExit_NUM)

/*
 * PyGreenlet* PyGreenlet_New(PyObject* run, PyGreenlet* parent)
 *   Like greenlet.greenlet(run, parent). NULL parent: the current greenlet.
 *   New reference, or NULL with an exception set.
 */
#define PyGreenlet_New \
    (*_PyGreenlet_SLOT(PyGreenlet* (*)(PyObject*, PyGreenlet*), \
                       PyGreenlet_New_NUM))

/*
 * PyGreenlet* PyGreenlet_GetCurrent(void)
 *   Like greenlet.getcurrent(). New reference, or NULL with an exception set.
 */
#define PyGreenlet_GetCurrent \
    (*_PyGreenlet_SLOT(PyGreenlet* (*)(void), PyGreenlet_GetCurrent_NUM))

/*
 * PyObject* PyGreenlet_Throw(PyGreenlet* g, PyObject* typ, PyObject* val,
 *                            PyObject* tb)
 *   Like g.throw(typ, val, tb). val and tb may be NULL.
 */
#define PyGreenlet_Throw \
    (*_PyGreenlet_SLOT(PyObject* (*)(PyGreenlet*, PyObject*, PyObject*, \
                                     PyObject*),                       \
                       PyGreenlet_Throw_NUM))

/*
 * PyObject* PyGreenlet_Switch(PyGreenlet* g, PyObject* args, PyObject* kwargs)
 *   Like g.switch(*args, **kwargs). NULL args means no positional arguments,
 *   NULL kwargs means no keyword arguments. New reference or NULL.
 */
#define PyGreenlet_Switch \
    (*_PyGreenlet_SLOT(PyObject* (*)(PyGreenlet*, PyObject*, PyObject*), \
                       PyGreenlet_Switch_NUM))

/*
 * int PyGreenlet_SetParent(PyGreenlet* g, PyGreenlet* new_parent)
 *   Like `g.parent = new_parent`. 0 on success, -1 with an exception set.
 */
#define PyGreenlet_SetParent \
    (*_PyGreenlet_SLOT(int (*)(PyGreenlet*, PyGreenlet*), \
                       PyGreenlet_SetParent_NUM))

/*
 * PyGreenlet* PyGreenlet_GetParent(PyGreenlet* g)
 *   Like g.parent, as a new reference. A greenlet without a parent (a main
 *   greenlet) gives NULL *without* an exception: check PyErr_Occurred().
 */
#define PyGreenlet_GetParent \
    (*_PyGreenlet_SLOT(PyGreenlet* (*)(PyGreenlet*), \
                       PyGreenlet_GET_PARENT_NUM))

/* Older spelling of PyGreenlet_GetParent. */
#define PyGreenlet_GET_PARENT PyGreenlet_GetParent

/*
 * int PyGreenlet_MAIN(PyGreenlet*), PyGreenlet_STARTED(...), PyGreenlet_ACTIVE(...)
 *   1 or 0; -1 with TypeError set if the argument is not a greenlet.
 */
#define PyGreenlet_MAIN \
    (*_PyGreenlet_SLOT(int (*)(PyGreenlet*), PyGreenlet_MAIN_NUM))

#define PyGreenlet_STARTED \
    (*_PyGreenlet_SLOT(int (*)(PyGreenlet*), PyGreenlet_STARTED_NUM))

#define PyGreenlet_ACTIVE \
    (*_PyGreenlet_SLOT(int (*)(PyGreenlet*), PyGreenlet_ACTIVE_NUM))

/*
 * Import `greenlet` and fetch its `_C_API` capsule. On failure the table
 * pointer stays NULL and a Python exception is set; check both.
 */
#define PyGreenlet_Import()                                                \
    {                                                                      \
        _PyGreenlet_API = (void**)PyCapsule_Import("greenlet._C_API", 0);  \
    }

#endif /* !GREENLET_MODULE */

#ifdef __cplusplus
}
#endif

#endif /* !Py_GREENLETOBJECT_H */
