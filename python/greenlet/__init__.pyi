# Type stubs for the greenlet package (greenlet-rs). The names in __all__ match typeshed's
# `types-greenlet`; the rest is what the package also exposes at run time.

from typing import Final

from ._greenlet import (
    CLOCKS_PER_SEC as CLOCKS_PER_SEC,
    GREENLET_USE_CONTEXT_VARS as GREENLET_USE_CONTEXT_VARS,
    GREENLET_USE_GC as GREENLET_USE_GC,
    GREENLET_USE_TRACING as GREENLET_USE_TRACING,
    _C_API as _C_API,
    GreenletExit as GreenletExit,
    enable_optional_cleanup as enable_optional_cleanup,
    error as error,
    get_clocks_used_doing_optional_cleanup as get_clocks_used_doing_optional_cleanup,
    get_stack_policy as get_stack_policy,
    getcurrent as getcurrent,
    gettrace as gettrace,
    greenlet as greenlet,
    set_stack_policy as set_stack_policy,
    settrace as settrace,
)

__version__: Final[str]
# "greenlet-rs"; upstream greenlet has no such attribute.
__implementation__: Final[str]

__all__ = ["__version__", "_C_API", "GreenletExit", "error", "getcurrent", "greenlet", "gettrace", "settrace"]
