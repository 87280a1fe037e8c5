// KafkaJS 2.2.4 against one StreamHouse broker: prints one
// "PASS kafkajs/LABEL/SCENARIO" or "FAIL kafkajs/LABEL/SCENARIO: why" line per
// scenario (tests/compat/node.sh starts the brokers and collects the lines).
//
//   node compat.js 127.0.0.1:PORT LABEL
//
// Scenarios, as tests/compat/go/main.go and pyclients.py:
//   metadata, create-topic, CODEC/{produce,from-beginning,from-offset,from-timestamp},
//   group/{split,leave-rebalance,resume-from-commits}, configs/{describe,alter}, delete-topic
// for CODEC in none gzip snappy (kafkajs-snappy). KafkaJS has no LZ4 or ZSTD
// codec of its own; their plugins (kafkajs-lz4, @kafkajs/zstd) need native
// builds, so those two codecs are not run (docs/compatibility.md says so).
// KafkaJS has no assign(): the reads use a consumer of a fresh group that
// never commits, with seek().
'use strict';

const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs');
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');

const [boot, label] = process.argv.slice(2);
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy };
const N = 200;
const HALF = N / 2;
const GAP_MS = 10000;
const TIMEOUT_MS = 30000;
const GROUP_PARTS = 4;
const PER_PARTITION = 10;

// scenario-name regex (after kafkajs/LABEL/) -> why it fails: XFAIL, not FAIL.
const KNOWN_GAPS = {};

let failed = false;

function outcome(name, err) {
  const full = `kafkajs/${label}/${name}`;
  if (!err) {
    console.log(`PASS ${full}`);
    return true;
  }
  const msg = String((err && err.stack && process.env.COMPAT_DEBUG) ? err.stack : (err.message || err))
    .replace(/\n/g, ' ').slice(0, 600);
  for (const [pattern, why] of Object.entries(KNOWN_GAPS)) {
    if (new RegExp(`^(?:${pattern})$`).test(name)) {
      console.log(`XFAIL ${full}: ${why} (${msg})`);
      return false;
    }
  }
  failed = true;
  console.log(`FAIL ${full}: ${msg}`);
  return false;
}

async function scenario(name, body) {
  let timer;
  try {
    await Promise.race([
      body(),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('scenario timed out')), 3 * TIMEOUT_MS); }),
    ]);
    return outcome(name, null);
  } catch (e) {
    return outcome(name, e || new Error('failed'));
  } finally {
    clearTimeout(timer);
  }
}

function check(cond, msg) { if (!cond) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function unique(prefix) {
  const t = new Date().toISOString().slice(11, 19).replace(/:/g, '');
  return `${prefix}-${t}-${Math.random().toString(16).slice(2, 10)}`;
}
async function until(what, fn) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const r = await fn();
    if (r) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const kafka = new Kafka({
  clientId: 'streamhouse-compat-kafkajs',
  brokers: [boot],
  logLevel: process.env.COMPAT_DEBUG ? logLevel.DEBUG : logLevel.NOTHING,
  retry: { retries: 5, initialRetryTime: 100 },
});

function codecRecords(codec, base) {
  const out = [];
  for (let i = 0; i < N; i++) {
    out.push({
      key: `key-${i}`,
      value: `value-${i}-${codec}`,
      headers: { a: 'b', codec, i: String(i) },
      offset: String(i),
      timestamp: String(base + i + (i >= HALF ? GAP_MS : 0)),
    });
  }
  return out;
}

function asRecord(m) {
  const headers = {};
  for (const [k, v] of Object.entries(m.headers || {})) headers[k] = v.toString();
  return { key: m.key && m.key.toString(), value: m.value && m.value.toString(), headers, offset: m.offset,
    timestamp: m.timestamp };
}

function same(got, want) {
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    const g = JSON.stringify(got[i]);
    const w = JSON.stringify(want[i]);
    check(g === w, `record #${i} differs: got ${g}, expected ${w}`);
  }
  check(got.length === want.length, `got ${got.length} records, expected ${want.length}`);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();

  const createTopic = async (topic, numPartitions) => {
    const created = await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
    check(created, `createTopics answered ${created}`);
    await until(`${topic} in metadata`, async () => {
      const md = await admin.fetchTopicMetadata({ topics: [topic] });
      return md.topics[0].partitions.length === numPartitions;
    });
  };

  // Reads partition 0 of topic from `offset` (or the beginning) until `count` records.
  const consume = async (topic, offset, count) => {
    const c = kafka.consumer({ groupId: unique('js-read'), allowAutoTopicCreation: false, maxWaitTimeInMs: 200 });
    const got = [];
    await c.connect();
    try {
      await c.subscribe({ topics: [topic], fromBeginning: true });
      let done;
      const finished = new Promise((r) => { done = r; });
      await c.run({
        autoCommit: false,
        eachMessage: async ({ message }) => {
          got.push(asRecord(message));
          if (got.length >= count) done();
        },
      });
      if (offset !== null) c.seek({ topic, partition: 0, offset: String(offset) });
      await Promise.race([finished, sleep(TIMEOUT_MS)]);
      check(got.length >= count, `timed out with ${got.length} of ${count} records`);
    } finally {
      await c.disconnect();
    }
    return got;
  };

  await scenario('metadata', async () => {
    const cl = await admin.describeCluster();
    const addrs = cl.brokers.map((b) => `${b.host}:${b.port}`);
    check(addrs.includes(boot), `brokers in metadata: ${addrs}`);
  });
  await scenario('create-topic', () => createTopic(unique('js-create'), 3));

  for (const [codec, type] of Object.entries(CODECS)) {
    const topic = unique(`js-${codec}`);
    const base = Date.now() - 600000;
    const recs = codecRecords(codec, base);
    const ok = await scenario(`${codec}/produce`, async () => {
      await createTopic(topic, 1);
      const p = kafka.producer({ allowAutoTopicCreation: false, idempotent: false, maxInFlightRequests: 1 });
      await p.connect();
      try {
        const offsets = [];
        for (const burst of [recs.slice(0, HALF), recs.slice(HALF)]) {
          const md = await p.send({
            topic, acks: -1, compression: type, timeout: TIMEOUT_MS,
            messages: burst.map((r) => ({ key: r.key, value: r.value, headers: r.headers, partition: 0,
              timestamp: r.timestamp })),
          });
          check(md.length === 1 && md[0].errorCode === 0, `send answered ${JSON.stringify(md)}`);
          offsets.push(md[0].baseOffset);
        }
        check(JSON.stringify(offsets) === JSON.stringify(['0', String(HALF)]),
          `base offsets of the bursts: ${offsets}`);
      } finally {
        await p.disconnect();
      }
    });
    if (!ok) {
      for (const s of ['from-beginning', 'from-offset', 'from-timestamp']) outcome(`${codec}/${s}`, new Error('not run: produce failed'));
      continue;
    }
    await scenario(`${codec}/from-beginning`, async () => same(await consume(topic, null, N), recs));
    await scenario(`${codec}/from-offset`, async () => same(await consume(topic, HALF, N - HALF), recs.slice(HALF)));
    await scenario(`${codec}/from-timestamp`, async () => {
      const found = await admin.fetchTopicOffsetsByTimestamp(topic, base + HALF + GAP_MS / 2);
      check(found.length === 1 && found[0].offset === String(HALF), `offsets by timestamp: ${JSON.stringify(found)}`);
      same(await consume(topic, found[0].offset, N - HALF), recs.slice(HALF));
    });
  }

  await group(createTopic);

  const ctopic = unique('js-configs');
  const describe = async () => {
    const d = await admin.describeConfigs({ includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: ctopic }] });
    const r = d.resources[0];
    check(r.errorCode === 0, `describeConfigs error ${r.errorCode} ${r.errorMessage}`);
    return Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue]));
  };
  await scenario('configs/describe', async () => {
    await createTopic(ctopic, 1);
    const cfg = await describe();
    check(cfg['retention.ms'], `retention.ms not described: ${Object.keys(cfg).slice(0, 20)}`);
  });
  await scenario('configs/alter', async () => {
    const r = await admin.alterConfigs({ validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: ctopic, configEntries: [{ name: 'retention.ms', value: '123456789' }] }] });
    check(r.resources[0].errorCode === 0, `alterConfigs answered ${JSON.stringify(r)}`);
    const cfg = await describe();
    check(cfg['retention.ms'] === '123456789', `retention.ms is ${cfg['retention.ms']} after the alter`);
  });
  await scenario('delete-topic', async () => {
    await admin.deleteTopics({ topics: [ctopic], timeout: TIMEOUT_MS });
    await until('the deleted topic to leave the list', async () => !(await admin.listTopics()).includes(ctopic));
  });
  await admin.disconnect();
}

async function group(createTopic) {
  const topic = unique('js-group');
  const groupId = unique('js-g');
  const member = async () => {
    const c = kafka.consumer({ groupId, allowAutoTopicCreation: false, heartbeatInterval: 300,
      sessionTimeout: 10000, rebalanceTimeout: 10000, maxWaitTimeInMs: 200 });
    const m = { c, parts: [], next: {}, seen: new Set() };
    c.on(c.events.GROUP_JOIN, (e) => {
      m.parts = (e.payload.memberAssignment[topic] || []).slice().sort();
      m.next = {};
    });
    await c.connect();
    await c.subscribe({ topics: [topic], fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        m.seen.add(message.value.toString());
        m.next[partition] = Number(message.offset) + 1;
      },
    });
    m.caughtUp = () => m.parts.length > 0 && m.parts.every((p) => m.next[p] === PER_PARTITION);
    m.commit = () => c.commitOffsets(m.parts.map((p) => ({ topic, partition: p, offset: String(m.next[p]) })));
    return m;
  };
  const produce = async (values) => {
    const p = kafka.producer({ allowAutoTopicCreation: false });
    await p.connect();
    try {
      await p.send({ topic, acks: -1, messages: values.map(([partition, v]) => ({ partition, key: v, value: v })) });
    } finally {
      await p.disconnect();
    }
  };
  let a = null;
  let b = null;
  let ok = await scenario('group/split', async () => {
    await createTopic(topic, GROUP_PARTS);
    const vals = [];
    for (let p = 0; p < GROUP_PARTS; p++) for (let i = 0; i < PER_PARTITION; i++) vals.push([p, `g-${p}-${i}`]);
    await produce(vals);
    a = await member();
    b = await member();
    try {
      await until('a split of the partitions, each consumed to its end', () => {
        const all = new Set([...a.parts, ...b.parts]);
        return a.parts.length > 0 && b.parts.length > 0 && a.parts.length + b.parts.length === GROUP_PARTS &&
          all.size === GROUP_PARTS && a.caughtUp() && b.caughtUp();
      });
    } catch (e) {
      throw new Error(`${e.message}: a=${JSON.stringify(a.parts)} b=${JSON.stringify(b.parts)} next a=${JSON.stringify(a.next)} b=${JSON.stringify(b.next)}`);
    }
    await a.commit();
    await b.commit();
  });
  if (ok) {
    ok = await scenario('group/leave-rebalance', async () => {
      await b.c.disconnect(); // leaves the group
      b = null;
      try {
        await until('all partitions at the remaining member', () => a.parts.length === GROUP_PARTS);
      } catch (e) {
        throw new Error(`${e.message}: it has ${JSON.stringify(a.parts)}`);
      }
      await a.c.disconnect();
      a = null;
    });
  } else {
    outcome('group/leave-rebalance', new Error('not run: group/split failed'));
  }
  if (ok) {
    await scenario('group/resume-from-commits', async () => {
      const extra = [];
      for (let p = 0; p < GROUP_PARTS; p++) extra.push([p, `late-${p}`]);
      await produce(extra);
      const c = await member();
      try {
        await until('the new records', () => c.seen.size >= GROUP_PARTS).catch(() => {});
        await sleep(1000);
        const seen = [...c.seen].sort();
        check(JSON.stringify(seen) === JSON.stringify(extra.map((x) => x[1])), `restarted member read ${seen.slice(0, 12)}`);
      } finally {
        await c.c.disconnect();
      }
    });
  } else {
    outcome('group/resume-from-commits', new Error('not run: an earlier group scenario failed'));
  }
  for (const m of [a, b]) if (m) await m.c.disconnect().catch(() => {});
}

main().then(
  () => process.exit(failed ? 1 : 0),
  (e) => { console.log(`FAIL kafkajs/${label}/run: ${String(e && e.stack || e).replace(/\n/g, ' ')}`); process.exit(1); },
);
