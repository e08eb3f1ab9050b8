// caskade with the Node.js clients users have: ioredis (multi/exec, a WATCH retry
// loop, defineCommand) and node-redis (multi/exec, a script). Usage: node e2e.js PORT.
// Exits non-zero, naming the check, on the first difference.
'use strict';

const assert = require('node:assert/strict');
const Redis = require('ioredis');
const { createClient } = require('redis');

const port = Number(process.argv[2]);

async function withIoredis() {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    await r.del('io:a', 'io:n', 'io:l');
    const res = await r.multi().set('io:a', '1').incr('io:n').incr('io:n').get('io:a').exec();
    assert.deepEqual(res, [[null, 'OK'], [null, 1], [null, 2], [null, '1']], 'ioredis multi().exec()');

    // A runtime error inside EXEC fails that command only.
    const mixed = await r.multi().set('io:s', 'x').incr('io:s').get('io:s').exec();
    assert.equal(mixed[0][1], 'OK');
    assert.match(String(mixed[1][0]), /not an integer/, 'ioredis: the failing command reports its error');
    assert.equal(mixed[2][1], 'x');

    // WATCH: a change by another client aborts EXEC (null), a retry succeeds.
    const other = new Redis({ port, host: '127.0.0.1' });
    await r.watch('io:w');
    await other.set('io:w', 'changed');
    const aborted = await r.multi().set('io:w', 'mine').exec();
    assert.equal(aborted, null, 'ioredis: EXEC after a watched key changed answers null');
    await r.watch('io:w');
    const done = await r.multi().set('io:w', 'mine').exec();
    assert.deepEqual(done, [[null, 'OK']]);
    other.disconnect();

    // defineCommand: EVALSHA, falling back to EVAL when the script is not cached.
    r.defineCommand('incrCapped', {
      numberOfKeys: 1,
      lua: "local v = redis.call('incr', KEYS[1]) if v > tonumber(ARGV[1]) then redis.call('set', KEYS[1], ARGV[1]) return tonumber(ARGV[1]) end return v",
    });
    await r.script('FLUSH');
    assert.equal(await r.incrCapped('io:l', 2), 1, 'defineCommand first call (EVAL fallback)');
    assert.equal(await r.incrCapped('io:l', 2), 2);
    assert.equal(await r.incrCapped('io:l', 2), 2, 'defineCommand capped');
    const piped = await r.pipeline().incrCapped('io:l', 5).incrCapped('io:l', 5).exec();
    assert.deepEqual(piped, [[null, 3], [null, 4]], 'defineCommand in a pipeline');

    // Sorted sets and a blocking pop, as a leaderboard and a job queue use them.
    await r.del('io:z', 'io:q');
    assert.equal(await r.zadd('io:z', 10, 'ann', 7.5, 'bob', 12, 'cy'), 3);
    assert.equal(await r.zincrby('io:z', 5, 'bob'), '12.5', 'ioredis zincrby');
    assert.deepEqual(await r.zrevrange('io:z', 0, -1, 'WITHSCORES'),
      ['bob', '12.5', 'cy', '12', 'ann', '10'], 'ioredis zrevrange withscores');
    assert.equal(await r.zrank('io:z', 'ann'), 0);
    const pusher = new Redis({ port, host: '127.0.0.1' });
    setTimeout(() => pusher.lpush('io:q', 'job'), 200);
    assert.deepEqual(await r.brpop('io:q', 5), ['io:q', 'job'], 'ioredis brpop served by a push');
    assert.equal(await r.brpop('io:q', 0.1), null, 'ioredis brpop timeout');
    pusher.disconnect();
  } finally {
    r.disconnect();
  }
}

async function withNodeRedis() {
  const c = createClient({ url: `redis://127.0.0.1:${port}` });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.del(['nr:a', 'nr:n']);
    const res = await c.multi().set('nr:a', 'v').incr('nr:n').get('nr:a').exec();
    assert.deepEqual(res, ['OK', 1, 'v'], 'node-redis multi().exec()');
    const n = await c.eval("return redis.call('incrby', KEYS[1], ARGV[1])", {
      keys: ['nr:n'],
      arguments: ['10'],
    });
    assert.equal(n, 11, 'node-redis eval');
    // Transactions from several connections end exact.
    const clients = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const k = createClient({ url: `redis://127.0.0.1:${port}` });
        k.on('error', () => {});
        await k.connect();
        return k;
      }),
    );
    await Promise.all(
      clients.map(async (k) => {
        for (let i = 0; i < 50; i++) {
          await k.multi().incr('nr:count').exec();
        }
      }),
    );
    await Promise.all(clients.map((k) => k.quit()));
    assert.equal(await c.get('nr:count'), '200', 'node-redis: 4 clients x 50 transactions');
    await c.del(['nr:z', 'nr:hll']);
    await c.zAdd('nr:z', [{ score: 1, value: 'a' }, { score: 2, value: 'b' }]);
    assert.deepEqual(await c.zRangeWithScores('nr:z', 0, -1),
      [{ value: 'a', score: 1 }, { value: 'b', score: 2 }], 'node-redis zRangeWithScores');
    assert.equal(await c.pfAdd('nr:hll', ['x', 'y', 'z']), true);
    assert.equal(await c.pfCount('nr:hll'), 3, 'node-redis pfCount');
  } finally {
    await c.quit();
  }
}

(async () => {
  await withIoredis();
  await withNodeRedis();
  console.log('node clients: ok');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
