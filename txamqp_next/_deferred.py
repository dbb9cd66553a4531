# -*- test-case-name: tests.test_deferred -*-
"""
Deferreds that asyncio tasks can await as well.

A L{Deferred}'s C{__await__} yields the L{Deferred} itself: that drives
fine under C{Deferred.fromCoroutine} and C{ensureDeferred}, but an asyncio
C{Task} (under Twisted's C{AsyncioSelectorReactor}) rejects it with
C{RuntimeError: Task got bad yield}.  Every L{Deferred} the library hands
out is an L{AsyncioDeferred}: awaited by a coroutine that an asyncio task
drives, it waits on an asyncio future of the running loop instead; awaited
anywhere else it is a plain L{Deferred}.

Whether the awaiting coroutine is driven by the current task, and not by
Twisted inside that task's step (a library coroutine started with
C{Deferred.fromCoroutine} runs its first steps synchronously within the
caller's step), is read from the stack: going up from the awaiting frame,
either the task's own coroutine frame comes first (the task drives it) or
a frame of C{twisted.internet.defer} does (C{_inlineCallbacks} drives it).
The stack is only looked at while an asyncio task is running, so code
without asyncio tasks pays one C{_get_running_loop()} per C{await}.
"""

from __future__ import annotations

import sys
from asyncio import AbstractEventLoop, Future, Task, current_task
from asyncio.events import _get_running_loop
from collections.abc import Coroutine, Generator
from types import FrameType
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["AsyncioDeferred", "adopt", "fail", "from_coroutine", "may_fail", "succeed"]

_T = TypeVar("_T")

#: the globals of C{twisted.internet.defer}: a frame with these runs
#: Twisted's coroutine driver (or a callback chain)
_DEFER_GLOBALS = vars(defer)


def _task_frame(task: Task[Any]) -> FrameType | None:
    """
    The frame of the coroutine a task steps (a coroutine, or the generator
    C{asyncio.ensure_future} wraps an awaitable in).
    """
    coro: Any = task.get_coro()
    frame: FrameType | None = getattr(coro, "cr_frame", None)
    if frame is None:
        frame = getattr(coro, "gi_frame", None)
    return frame


def _driving_loop(frame: FrameType | None) -> AbstractEventLoop | None:
    """
    The running loop, when an asyncio task drives the coroutine awaiting in
    C{frame}; else C{None}.
    """
    loop = _get_running_loop()
    if loop is None:
        return None
    task = current_task(loop)
    if task is None:
        return None
    top = _task_frame(task)
    while frame is not None:
        if frame is top:
            return loop
        if frame.f_globals is _DEFER_GLOBALS:
            return None
        frame = frame.f_back
    return None


class AsyncioDeferred(Deferred[_T]):
    """
    A L{Deferred} that an asyncio task can await: inside a task it waits on
    a future of the running loop, elsewhere it is awaited as any
    L{Deferred}.  Awaiting does not consume the result (others may await
    it or add callbacks too), as awaiting a L{Deferred} does not.
    Cancelling the task cancels the L{Deferred}.
    """

    def __await__(self) -> Generator[Any, None, _T]:
        loop = _driving_loop(sys._getframe(1))
        if loop is None:
            return Deferred.__iter__(self)
        return self._wait_in(loop)

    def _wait_in(self, loop: AbstractEventLoop) -> Generator[Any, None, _T]:
        """
        Wait for the result on a future of C{loop}, then take it as
        C{Deferred.__await__} does.
        """
        while not self.called or self.paused:
            future: Future[None] = loop.create_future()
            self.addBoth(_wake, future)
            future.add_done_callback(self._abandoned)
            yield from future.__await__()
        return (yield from Deferred.__iter__(self))

    def _abandoned(self, future: Future[None]) -> None:
        """
        The future a task waited on is done: if it was cancelled (the task
        was), cancel this L{Deferred} and swallow the failure that leaves
        behind, which nobody waits for.
        """
        if future.cancelled():
            self.cancel()
            self.addErrback(_ignore)


def _wake(result: object, future: Future[None]) -> object:
    """
    Let the task waiting on C{future} go on; pass the result through.
    """
    if not future.done():
        future.set_result(None)
    return result


def _ignore(failure: Failure) -> None:
    return None


def succeed(result: _T) -> Deferred[_T]:
    """
    An L{AsyncioDeferred} that has fired with C{result}, as
    L{twisted.internet.defer.succeed}.
    """
    d: AsyncioDeferred[_T] = AsyncioDeferred()
    # as twisted.internet.defer.succeed does: a publish without confirms
    # returns one of these, so skip the empty callback run
    d.result = result
    d.called = True
    return d


def may_fail(d: Deferred[Any]) -> bool:
    """
    Whether C{d} may still report a failure: it has not fired, or it has
    failed.  A L{Deferred} that succeeded already (a publish or an ack
    handed to the transport) needs no error handler.
    """
    return not d.called or isinstance(d.result, Failure)


def fail(error: BaseException | Failure) -> Deferred[Any]:
    """
    An L{AsyncioDeferred} that has failed with C{error}, as
    L{twisted.internet.defer.fail}.
    """
    d: AsyncioDeferred[Any] = AsyncioDeferred()
    d.errback(error)
    return d


def adopt(d: Deferred[_T]) -> Deferred[_T]:
    """
    Make a L{Deferred} made elsewhere (by Twisted) an L{AsyncioDeferred},
    in place: the same object, with its callbacks, canceller and result,
    that asyncio tasks can await too.

    @param d: a plain L{Deferred}; a L{Deferred} of another subclass is left
        as it is.
    @return: C{d}.
    """
    if type(d) is Deferred:
        d.__class__ = AsyncioDeferred
    return d


def from_coroutine(coro: Coroutine[Any, Any, _T]) -> Deferred[_T]:
    """
    Run a coroutine as L{Deferred.fromCoroutine} does.

    @return: an L{AsyncioDeferred} firing with what the coroutine returns;
        cancelling it cancels what the coroutine awaits.
    """
    return adopt(Deferred.fromCoroutine(coro))
