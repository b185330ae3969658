"""The dataset scripts: an owner's uploaded datasets beside its jobs.

Each changes a dataset's keys (`core.store.keys.DatasetKeys`) and its owner's
index and content hashes in one atomic step, so two uploads at once cannot
pass the owner's count together, and a dataset is never deleted while a job
that is queued or running uses it.
"""

from __future__ import annotations

from core.store.scripts import LuaScript, lua_script

PUT_DATASET = lua_script(
    "put_dataset",
    """
-- KEYS[1] record, [2] data, [3] datasets index, [4] content hashes index;
-- ARGV[1] id, [2] owner, [3] meta JSON, [4] packed arrays, [5] dedupe key, [6] the
-- owner's limit of datasets.
-- The owner's dataset of the same content, label and task if there is one; else a new
-- one unless the owner is at its limit.
local owner = ARGV[2]
local index, hashes = owned(KEYS[3], owner), owned(KEYS[4], owner)
local existing = redis.call('HGET', hashes, ARGV[5])
if existing then return {'existing', existing} end
local count = redis.call('ZCARD', index)
if count >= tonumber(ARGV[6]) then return {'full', count} end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'owner', owner, 'meta', ARGV[3],
           'dedupe', ARGV[5], 'created_at', stamp(now()))
redis.call('SET', KEYS[2], ARGV[4])
redis.call('ZADD', index, 0, ARGV[1])
redis.call('HSET', hashes, ARGV[5], ARGV[1])
return {'new', ARGV[1]}
""",
)

USE_DATASET = lua_script(
    "use_dataset",
    """
-- KEYS[1] record, [2] the jobs using it; ARGV the job ids.
-- 1 when the dataset is there and now names the jobs, 0 when it was deleted.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], unpack(ARGV))
return 1
""",
)

DELETE_DATASET = lua_script(
    "delete_dataset",
    """
-- KEYS[1] record, [2] data, [3] the jobs using it, [4] datasets index, [5] content
-- hashes index; ARGV[1] id, [2] what a job's record key starts with.
-- {'deleted'}, {'missing'}, or {'busy', job ids...} while a queued or running job uses it
-- (the finished ones leave the set as they are met).
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return {'missing'} end
local busy = {'busy'}
for _, job in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local status = redis.call('HGET', ARGV[2] .. job, 'status')
  if status == 'queued' or status == 'running' then
    busy[#busy + 1] = job
  else
    redis.call('SREM', KEYS[3], job)
  end
end
if #busy > 1 then return busy end
local dedupe = redis.call('HGET', KEYS[1], 'dedupe')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', owned(KEYS[4], owner), ARGV[1])
redis.call('HDEL', owned(KEYS[5], owner), dedupe)
return {'deleted'}
""",
)

DATASET_SCRIPTS: tuple[LuaScript, ...] = (PUT_DATASET, USE_DATASET, DELETE_DATASET)
