/*
 * greenlet_compiler_compat.hpp -- compiler helpers for C++ clients.
 *
 * greenlet-rs itself is written in Rust and needs none of this. The file is
 * shipped next to greenlet.h because C++ code written for the C++ greenlet
 * (its test extension, for one) includes it by this name. It holds only the
 * macros such code is known to use.
 */
#ifndef GREENLET_COMPILER_COMPAT_HPP
#define GREENLET_COMPILER_COMPAT_HPP

/*
 * UNUSED(name) declares a parameter the function body ignores: the name is
 * mangled so it cannot be used by accident, and the compiler is told not to
 * warn about it.
 *
 *     static PyObject* f(PyObject* UNUSED(module), PyObject* arg);
 */
#ifndef UNUSED
#    if defined(__GNUC__) || defined(__clang__)
#        define UNUSED(name) UNUSED_##name __attribute__((__unused__))
#    else
#        define UNUSED(name) UNUSED_##name
#    endif
#endif

#endif /* GREENLET_COMPILER_COMPAT_HPP */
