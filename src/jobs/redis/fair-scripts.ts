// The fair scheduler's Lua scripts: each runs atomically in Redis, so any number of API replicas and workers can
// enqueue, feed and cancel at once without two of them taking the same job or overfilling the worker slots.
// Keys (connection.ts FairNames): a list of waiting job ids per owner, a sorted set `ring` of the owners with
// waiting jobs scored by when each was last served (owners never served score below everyone, in the order they
// started waiting), and a hash `dispatched` of the jobs handed to BullMQ and not finished (id → `<tick>:<owner>`).
// The per-owner list and worker keys are built from prefixes passed as arguments (one Redis, no Cluster).
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Score of an owner that was never served: below every tick, ordered by when it started waiting. */
const NEVER_SERVED_BASE = 1_000_000_000_000;

/**
 * KEYS: ring, served, seq, dispatched, since. ARGV: owner list prefix, job id, owner, channel, now (ms).
 * Appends the job to its owner's list (a no-op for a job already listed or fed) and puts the owner in the ring.
 * Returns 1 when added, 0 when it was there already.
 */
export const ENQUEUE = `
local list = ARGV[1] .. ARGV[3]
if redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1 then return 0 end
if redis.call('LPOS', list, ARGV[2]) then return 0 end
redis.call('RPUSH', list, ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[5])
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  local served = redis.call('HGET', KEYS[2], ARGV[3])
  local score
  if served then score = tonumber(served) else score = redis.call('INCR', KEYS[3]) - ${NEVER_SERVED_BASE} end
  redis.call('ZADD', KEYS[1], score, ARGV[3])
end
redis.call('PUBLISH', ARGV[4], 'enqueue')
return 1
`;

/**
 * KEYS: ring, served, seq, dispatched, since, workers. ARGV: owner list prefix, worker key prefix, running jobs
 * per owner, the owner without that limit (anonymous), channel.
 * Free slots = the live workers' slots (their keys expire unless renewed) − the jobs fed and not finished. While
 * one is free: the first owner of the ring below its running limit gives its oldest job, which is marked fed,
 * and goes to the back of the ring (or leaves it, its list empty). Returns the ids fed, in order.
 */
export const TAKE = `
local slots = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[6])) do
  local n = redis.call('GET', ARGV[2] .. w)
  if n then slots = slots + tonumber(n) else redis.call('SREM', KEYS[6], w) end
end
local busy, total = {}, 0
local fed = redis.call('HGETALL', KEYS[4])
for i = 2, #fed, 2 do
  local owner = string.match(fed[i], '^%d+:(.*)$')
  busy[owner] = (busy[owner] or 0) + 1
  total = total + 1
end
local limit = tonumber(ARGV[3])
local out = {}
while total < slots do
  local pick = nil
  for _, owner in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if owner == ARGV[4] or (busy[owner] or 0) < limit then pick = owner break end
  end
  if not pick then break end
  local list = ARGV[1] .. pick
  local id = redis.call('LPOP', list)
  local tick = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[2], pick, tick)
  if redis.call('LLEN', list) > 0 then redis.call('ZADD', KEYS[1], tick, pick) else redis.call('ZREM', KEYS[1], pick) end
  if id then
    redis.call('HDEL', KEYS[5], id)
    redis.call('HSET', KEYS[4], id, tick .. ':' .. pick)
    busy[pick] = (busy[pick] or 0) + 1
    total = total + 1
    out[#out + 1] = id
  end
end
if #out > 0 then redis.call('PUBLISH', ARGV[5], 'take') end
return out
`;

/** KEYS: ring, since. ARGV: the owner's list key, job id, owner, channel. Takes a waiting job out; returns 1 if it was waiting. */
export const REMOVE = `
local n = redis.call('LREM', ARGV[1], 0, ARGV[2])
if n > 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  if redis.call('LLEN', ARGV[1]) == 0 then redis.call('ZREM', KEYS[1], ARGV[3]) end
  redis.call('PUBLISH', ARGV[4], 'remove')
end
return n
`;

/** KEYS: dispatched. ARGV: job id, channel. A fed job finished (or was dropped): its slot is free. */
export const DONE = `
local n = redis.call('HDEL', KEYS[1], ARGV[1])
if n > 0 then redis.call('PUBLISH', ARGV[2], 'done') end
return n
`;

/**
 * KEYS: ring, dispatched, since. ARGV: owner list prefix. The whole line at one instant: the ring in order with
 * each owner's waiting ids ({owner, id, id…} per owner), the fed jobs (flat id, value…) and the wait starts.
 */
export const VIEW = `
local owners = {}
for _, owner in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local row = { owner }
  for _, id in ipairs(redis.call('LRANGE', ARGV[1] .. owner, 0, -1)) do row[#row + 1] = id end
  owners[#owners + 1] = row
end
return { owners, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]) }
`;

/** Runs a script by its SHA1 (loaded on first use and again after a Redis restart lost it). */
export async function runScript(redis: Redis, script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
  const sha = shaOf(script);
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (e) {
    if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}

const shas = new Map<string, string>();
const shaOf = (script: string): string => {
  let sha = shas.get(script);
  if (!sha) shas.set(script, (sha = createHash('sha1').update(script).digest('hex')));
  return sha;
};
