# Type stubs for greenlet._greenlet, the extension module of greenlet-rs.
#
# The public part matches typeshed's `types-greenlet` (names and signatures), so code
# checked against either gets the same answers. Where greenlet-rs and upstream greenlet
# differ from typeshed, the stub follows the runtime:
#   - the GREENLET_USE_* flags are the int 1 (PyModule_AddIntConstant), not bool;
#   - get_clocks_used_doing_optional_cleanup() returns None while the cleanup is off;
#   - greenlet.__getstate__ always raises (greenlets cannot be pickled).
# tools/stubtest.sh checks this file against the installed module.

import sys
from collections.abc import Callable
from contextvars import Context
from types import FrameType, TracebackType
from typing import Any, Literal, NoReturn, Protocol, TypeAlias, overload, type_check_only
from typing_extensions import disjoint_base

_TraceEvent: TypeAlias = Literal["switch", "throw"]
# A trace function is called as callback(event, (origin, target)); its result is ignored.
_TraceCallback: TypeAlias = Callable[[_TraceEvent, tuple[greenlet, greenlet]], object]

CLOCKS_PER_SEC: int
GREENLET_USE_CONTEXT_VARS: int
GREENLET_USE_GC: int
GREENLET_USE_STANDARD_THREADING: int
GREENLET_USE_TRACING: int

# The C API table (a PyCapsule named "greenlet._C_API"); Python code only passes it on.
_C_API: object

@type_check_only
class _ParentDescriptor(Protocol):
    # Reading gives None only for a thread's main greenlet; writing needs a greenlet.
    def __get__(self, obj: greenlet, owner: type[greenlet] | None = None) -> greenlet | None: ...
    def __set__(self, obj: greenlet, value: greenlet) -> None: ...

class GreenletExit(BaseException): ...
class error(Exception): ...

@disjoint_base
class greenlet:
    parent: _ParentDescriptor

    def __init__(self, run: Callable[..., Any] | None = None, parent: greenlet | None = None) -> None: ...
    @property
    def run(self) -> Callable[..., Any]: ...
    @run.setter
    def run(self, value: Callable[..., Any]) -> None: ...
    @property
    def dead(self) -> bool: ...
    @property
    def gr_frame(self) -> FrameType | None: ...
    @property
    def gr_context(self) -> Context | None: ...
    @gr_context.setter
    def gr_context(self, value: Context | None) -> None: ...
    def switch(self, *args: Any, **kwargs: Any) -> Any: ...
    @overload
    def throw(
        self, typ: type[BaseException] = ..., val: BaseException | object = None, tb: TracebackType | None = None, /
    ) -> Any: ...
    @overload
    def throw(self, typ: BaseException = ..., val: None = None, tb: TracebackType | None = None, /) -> Any: ...
    def __bool__(self) -> bool: ...
    def __getstate__(self) -> NoReturn: ...

    # The module's exceptions and functions, also reachable from the class.
    GreenletExit: type[GreenletExit]
    error: type[error]
    @staticmethod
    def getcurrent() -> greenlet: ...
    @staticmethod
    def gettrace() -> _TraceCallback | None: ...
    @staticmethod
    def settrace(callback: _TraceCallback | None, /) -> _TraceCallback | None: ...

def getcurrent() -> greenlet: ...
def gettrace() -> _TraceCallback | None: ...
def settrace(callback: _TraceCallback | None, /) -> _TraceCallback | None: ...
def enable_optional_cleanup(enabled: bool, /) -> None: ...
def get_clocks_used_doing_optional_cleanup() -> int | None: ...

# Test hooks (undocumented, used by greenlet's own test suite).
class UnswitchableGreenlet(greenlet):
    force_switch_error: bool
    force_slp_switch_error: bool

def get_pending_cleanup_count() -> int: ...
def get_total_main_greenlets() -> int: ...
def set_thread_local(key: object, value: object, /) -> None: ...

if sys.version_info < (3, 13):
    def get_tstate_trash_delete_nesting() -> int: ...

if sys.version_info >= (3, 11):
    # greenlet-rs only: CPython data-stack chunks kept for reuse.
    def _cached_data_stack_chunks() -> int: ...
