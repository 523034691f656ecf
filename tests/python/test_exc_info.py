"""sys.exc_info() / handled-exception state is per greenlet."""
import sys

import pytest

from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet


def test_new_greenlet_starts_without_handled_exception():
    def run():
        return sys.exc_info()

    try:
        raise IndexError("main")
    except IndexError:
        assert RawGreenlet(run).switch() == (None, None, None)
        assert sys.exc_info()[0] is IndexError


def test_exception_state_saved_across_switches():
    main = getcurrent()
    log = []

    def run():
        try:
            raise ValueError("in greenlet")
        except ValueError:
            main.switch("suspended inside except")
            log.append(("resumed", sys.exc_info()[0], str(sys.exc_info()[1])))
            try:
                raise  # bare raise re-raises *this* greenlet's exception
            except ValueError as e:
                log.append(("bare raise", str(e)))
        log.append(("after except", sys.exc_info()))
        main.switch("second park")
        return sys.exc_info()

    g = RawGreenlet(run)
    try:
        raise IndexError("in main")
    except IndexError:
        assert g.switch() == "suspended inside except"
        assert sys.exc_info()[0] is IndexError
        assert str(sys.exc_info()[1]) == "in main"
    assert sys.exc_info() == (None, None, None)
    assert g.switch() == "second park"
    assert sys.exc_info() == (None, None, None)
    assert log == [
        ("resumed", ValueError, "in greenlet"),
        ("bare raise", "in greenlet"),
        ("after except", (None, None, None)),
    ]
    assert g.switch() == (None, None, None)


def test_main_exception_not_visible_while_greenlet_handles_its_own():
    main = getcurrent()
    seen = []

    def run():
        seen.append(sys.exc_info()[0])
        try:
            raise KeyError("g")
        except KeyError:
            seen.append(sys.exc_info()[0])
            main.switch()
            seen.append(sys.exc_info()[0])
        seen.append(sys.exc_info()[0])

    g = RawGreenlet(run)
    try:
        raise TypeError("main")
    except TypeError:
        g.switch()
        seen.append(("main", sys.exc_info()[0]))
        g.switch()
        seen.append(("main again", sys.exc_info()[0]))
    assert seen == [None, KeyError, ("main", TypeError), KeyError, None,
                    ("main again", TypeError)]


def test_no_exception_context_leaks_between_greenlets():
    main = getcurrent()

    def run():
        main.switch()
        raise KeyError("raised in greenlet")

    g = RawGreenlet(run)
    g.switch()
    with pytest.raises(KeyError) as info:
        try:
            raise TypeError("main is handling this")
        except TypeError:
            g.switch()
    # The greenlet had no exception being handled when it raised, so the
    # main greenlet's TypeError must not become its __context__.
    assert info.value.__context__ is None


def test_exception_context_within_one_greenlet_is_kept():
    main = getcurrent()

    def run():
        try:
            raise TypeError("first")
        except TypeError:
            main.switch()
            raise KeyError("second")

    g = RawGreenlet(run)
    g.switch()
    with pytest.raises(KeyError) as info:
        g.switch()
    assert isinstance(info.value.__context__, TypeError)


def test_nested_except_blocks_in_several_greenlets():
    main = getcurrent()

    def run(depth, name):
        try:
            raise RuntimeError("%s-%d" % (name, depth))
        except RuntimeError:
            if depth:
                run(depth - 1, name)
            else:
                main.switch()
            assert str(sys.exc_info()[1]) == "%s-%d" % (name, depth)
        return sys.exc_info()

    gs = [RawGreenlet(run) for _ in range(3)]
    for i, g in enumerate(gs):
        g.switch(5, "g%d" % i)
    for g in reversed(gs):
        assert g.switch() == (None, None, None)
    assert sys.exc_info() == (None, None, None)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="except* needs Python 3.11")
def test_exception_group_handling_across_switches():
    code = compile(
        "def run():\n"
        "    try:\n"
        "        raise ExceptionGroup('eg', [KeyError('k'), ValueError('v')])\n"
        "    except* KeyError:\n"
        "        main.switch('in except*')\n"
        "        got.append(type(sys.exc_info()[1]).__name__)\n"
        "    except* ValueError:\n"
        "        got.append('value')\n",
        "<test>", "exec")
    got = []
    namespace = {"main": getcurrent(), "got": got, "sys": sys}
    exec(code, namespace)
    g = RawGreenlet(namespace["run"])
    assert g.switch() == "in except*"
    assert sys.exc_info() == (None, None, None)
    g.switch()
    assert got == ["ExceptionGroup", "value"]
    assert g.dead
