"""What a store call raises, named for callers outside the store, and which of those
errors mean that Redis cannot serve for now rather than that a request was wrong.

Callers (the API's error handlers, the worker) catch these instead of importing
redis: the store is the one package that talks to it.

Example:
    >>> is_store_unavailable(StoreUnreachable("Connection refused"))
    True
"""

from __future__ import annotations

from redis.exceptions import (
    BusyLoadingError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

StoreError = RedisError
"""Any error of a store call: the base of the three below."""
StoreUnreachable = RedisConnectionError
"""Redis could not be reached, or the connection was lost."""
StoreTimeout = RedisTimeoutError
"""Redis held the connection but did not answer in time."""
StoreReplyError = ResponseError
"""Redis answered a command with an error reply."""

# Error replies meaning Redis cannot serve the command now, though it will again
# without anyone changing the request: a restarted Redis replaying its data (LOADING),
# a script running too long (BUSY), failing to persist (MISCONF), a replica after a
# failover (READONLY) or cut off from its master (MASTERDOWN), out of memory (OOM),
# a cluster moving slots (TRYAGAIN). Callers answer them like an unreachable Redis.
UNAVAILABLE_REPLIES = frozenset(
    {"LOADING", "BUSY", "MISCONF", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN"}
)

# The types redis-py keeps for some of these codes whatever their message (it strips
# the code from it); core.store.multiplex raises the same ones.
_UNAVAILABLE_TYPES = (
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    MasterDownError,
    TryAgainError,
)


def error_code(error: BaseException) -> str:
    """The code of a Redis error reply (`LOADING`, `ERR`, ...): its message's first word."""
    # redis-py (>= 6) records it apart, having cut it from the message.
    code = getattr(error, "status_code", None)
    return code if isinstance(code, str) and code else str(error).partition(" ")[0]


def is_unavailable_reply(error: BaseException) -> bool:
    """True for an error reply of UNAVAILABLE_REPLIES, from either of the store's clients.

    Example:
        >>> is_unavailable_reply(ResponseError("BUSY Redis is busy running a script."))
        True
        >>> is_unavailable_reply(ResponseError("BUSYGROUP Consumer Group name already exists"))
        False
    """
    if isinstance(error, _UNAVAILABLE_TYPES):
        return True
    return isinstance(error, ResponseError) and error_code(error) in UNAVAILABLE_REPLIES


def is_store_unavailable(error: BaseException) -> bool:
    """True when `error` means Redis cannot serve now, not that a request was wrong:
    unreachable, not answering, or an error reply of UNAVAILABLE_REPLIES."""
    unreachable = isinstance(error, RedisConnectionError | RedisTimeoutError)
    return unreachable or is_unavailable_reply(error)
