"""Every Lua script of the store, each one atomic step on the Redis server.

Every script starts with one prelude (`PRELUDE`): Redis' own clock (TIME, so
workers and API processes on several machines agree), the finished statuses, an
owner's part of an index and appending to an event stream. The job scripts add
the job's key layout (`core.store.scripts.jobs.JOB_LAYOUT`) after it.

    jobs.py      a job's life: create, run, progress, finish, cancel, delete, prune;
                 an owner's admission; a PNG cached beside a finished job or study
    workers.py   heartbeats, lost workers and their jobs, the outbox of dispatches
    studies.py   a study beside its children: create, reconcile, seal, cancel, delete
    dispatch.py  the dispatcher: a queue's units waiting, a worker's claim on the next
"""

from __future__ import annotations

from dataclasses import dataclass

PRELUDE = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function stamp(t) return string.format('%.6f', t) end

local finished = {succeeded = true, failed = true, cancelled = true}

-- An owner's part of an index (core.store.keys.owned): derived here, as the worker's
-- transitions do not know the job's owner; the owners hash does.
local function owned(index, owner) return index .. ':owner:' .. owner end

-- The owner's queued and running jobs: what its max_active_jobs limit counts.
local function active_jobs(queued, running, owner)
  return redis.call('ZCARD', owned(queued, owner)) + redis.call('ZCARD', owned(running, owner))
end

local function append_event(events, cap, kind, data)
  redis.call('XADD', events, 'MAXLEN', '~', cap, '*', 'type', kind, 'data', data)
end
"""


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A named Lua script; executors load it once and call it by SHA."""

    name: str
    source: str


def lua_script(name: str, *parts: str) -> LuaScript:
    """The script `name`: the prelude, then `parts` in order."""
    return LuaScript(name, PRELUDE + "".join(parts))
