"""
greenlet: lightweight in-process concurrent programming.

This is greenlet-rs, a drop-in implementation of the ``greenlet`` package whose extension
module is written in Rust. Its Python API, C API (``greenlet.h`` and ``_C_API``) and
object layout are those of greenlet 3.5.
"""

__version__ = "3.5.6.post1"

#: Tells this implementation apart from the upstream C++ one.
__implementation__ = "greenlet-rs"

from ._greenlet import _C_API  # noqa: F401  (re-exported for PyCapsule_Import)

from ._greenlet import GreenletExit
from ._greenlet import error
from ._greenlet import getcurrent
from ._greenlet import greenlet
from ._greenlet import gettrace
from ._greenlet import settrace

# Which stack new greenlets start on (greenlet-rs; see docs/stacks.md).
from ._greenlet import get_stack_policy  # noqa: F401
from ._greenlet import set_stack_policy  # noqa: F401

# Legacy constants: these features are always available.
from ._greenlet import GREENLET_USE_CONTEXT_VARS  # noqa: F401
from ._greenlet import GREENLET_USE_GC  # noqa: F401
from ._greenlet import GREENLET_USE_TRACING  # noqa: F401

# Control of the search for stray references to main greenlets of exited threads.
from ._greenlet import CLOCKS_PER_SEC  # noqa: F401
from ._greenlet import enable_optional_cleanup  # noqa: F401
from ._greenlet import get_clocks_used_doing_optional_cleanup  # noqa: F401

__all__ = [
    "__version__",
    "_C_API",
    "GreenletExit",
    "error",
    "getcurrent",
    "greenlet",
    "gettrace",
    "settrace",
]
