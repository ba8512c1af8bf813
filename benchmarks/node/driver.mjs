// The Node bullmq contender of the benchmark suite; its protocol is described in benchmarks/peers.py.
//
//   node benchmarks/node/driver.mjs '<spec JSON>'     (NODE_PATH: the folder holding bullmq and ioredis)
//
// Variants: "sandboxed" hands the Worker the processor FILE bench_processor.js, run in child processes
// (useWorkerThreads: false); "inprocess" runs the same processor as a function in this process.
// Producer: Queue.add / addBulk; latency waits with QueueEvents and job.waitUntilFinished. Every key is
// under bull:<queue>:, and the driver deletes them all before it exits, also on a failure; it closes
// every Worker, QueueEvents, Queue and connection it opened.
//
// ES modules ignore NODE_PATH, so the packages are loaded through a CommonJS require.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const { Queue, QueueEvents, Worker } = require("bullmq");
const IORedis = require("ioredis");
const processJob = require("./bench_processor.js");

const PROCESSOR_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), "bench_processor.js");
const BATCH = 1000;
const STALL_LIMIT_MS = 30000; // a drain fails when no job finishes for this long
const LATENCY_LIMIT_MS = 30000; // how long one latency job may take

/** Epoch seconds with sub-millisecond resolution, as Python's time.time() and bench_processor.js. */
function now() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

/** ioredis options for a redis:// or rediss:// URL; BullMQ opens (and closes) its own connections. */
function connectionFor(url) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.slice(1) || 0),
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    tls: parsed.protocol === "rediss:" ? {} : undefined,
  };
}

function globEscape(text) {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

async function deleteKeys(client, queue) {
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `bull:${globEscape(queue)}:*`, "COUNT", 1000);
    if (keys.length > 0) {
      await client.unlink(...keys);
    }
    cursor = next;
  } while (cursor !== "0");
}

/** Runs body(spec, connection), then deletes the queue's keys, whatever happened. */
async function withCleanup(spec, body) {
  // One connection that fails at once when Redis is not there, rather than retrying forever.
  const client = new IORedis(spec.redis, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  let refused = null;
  client.on("error", (err) => {
    refused = err;
  });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`cannot connect to ${spec.redis}: ${(refused || err).message}`);
  }
  try {
    return await body(spec, connectionFor(spec.redis));
  } finally {
    try {
      await deleteKeys(client, spec.queue);
    } finally {
      client.disconnect();
    }
  }
}

function makeWorker(spec, connection) {
  if (spec.variant !== "inprocess" && spec.variant !== "sandboxed") {
    throw new Error(`unknown variant ${JSON.stringify(spec.variant)}: "sandboxed" or "inprocess"`);
  }
  return new Worker(spec.queue, spec.variant === "sandboxed" ? PROCESSOR_FILE : processJob, {
    connection,
    concurrency: spec.concurrency ?? 1,
    useWorkerThreads: false,
  });
}

/** Resolves with the failures' messages once n jobs finished; rejects on a worker error or a stall. */
function finishedJobs(worker, n) {
  return new Promise((resolve, reject) => {
    const failures = [];
    let finished = 0;
    let seen = 0;
    let moved = Date.now();
    const watch = setInterval(() => {
      if (finished !== seen) {
        seen = finished;
        moved = Date.now();
      } else if (Date.now() - moved > STALL_LIMIT_MS) {
        clearInterval(watch);
        reject(new Error(`${finished} of ${n} jobs finished; none for ${STALL_LIMIT_MS / 1000}s`));
      }
    }, 250);
    const count = () => {
      finished += 1;
      if (finished >= n) {
        clearInterval(watch);
        resolve(failures);
      }
    };
    worker.on("completed", count);
    worker.on("failed", (job, err) => {
      failures.push(`job ${job && job.id} failed: ${err && err.message}`);
      count();
    });
    worker.on("error", (err) => {
      clearInterval(watch);
      reject(err);
    });
  });
}

/** The drain reply from the N results; throws on a wrong one (as common.check_results in Python). */
function checkResults(results, spec) {
  const seen = new Set();
  for (const result of results) {
    if (result === null || typeof result !== "object" || typeof result.t !== "number") {
      throw new Error(`a job returned ${JSON.stringify(result)}`);
    }
    if (spec.kind === "cpu" && result.x !== spec.check) {
      throw new Error(`job ${result.i} computed ${result.x}, not ${spec.check}`);
    }
    seen.add(result.i);
  }
  if (seen.size !== spec.n) {
    throw new Error(`${seen.size} distinct jobs finished, not ${spec.n}`);
  }
  let first = Infinity;
  let last = -Infinity;
  for (const result of results) {
    first = Math.min(first, result.t);
    last = Math.max(last, result.t);
  }
  return { first, last, jobs: spec.n };
}

function range(low, high) {
  return Array.from({ length: high - low }, (_, k) => low + k);
}

async function versions() {
  return {
    versions: {
      bullmq: require("bullmq/package.json").version,
      ioredis: require("ioredis/package.json").version,
      node: process.versions.node,
    },
  };
}

async function enqueue(spec, connection) {
  const queue = new Queue(spec.queue, { connection });
  try {
    await queue.add("warm-up", { i: -1 }); // connect first: the connection is not part of the adds
    const start = performance.now();
    if (spec.bulk) {
      for (let low = 0; low < spec.n; low += BATCH) {
        await queue.addBulk(range(low, Math.min(spec.n, low + BATCH)).map((i) => ({ name: "job", data: { i } })));
      }
    } else {
      for (let i = 0; i < spec.n; i++) {
        await queue.add("job", { i });
      }
    }
    const seconds = (performance.now() - start) / 1000;
    const waiting = await queue.getWaitingCount();
    if (waiting !== spec.n + 1) {
      throw new Error(`${waiting} jobs waiting after adding ${spec.n} and a warm-up job`);
    }
    return { seconds };
  } finally {
    await queue.close();
  }
}

async function drain(spec, connection) {
  const extra = spec.kind === "cpu" ? { n: spec.rounds } : {};
  const queue = new Queue(spec.queue, { connection });
  let worker = null;
  try {
    for (let low = 0; low < spec.n; low += BATCH) {
      const jobs = range(low, Math.min(spec.n, low + BATCH)).map((i) => ({ name: "job", data: { i, ...extra } }));
      await queue.addBulk(jobs);
    }
    worker = makeWorker(spec, connection);
    const failures = await finishedJobs(worker, spec.n);
    await worker.close();
    worker = null;
    if (failures.length > 0) {
      throw new Error(failures[0]);
    }
    const completed = await queue.getCompleted(0, -1);
    return checkResults(
      completed.map((job) => job.returnvalue),
      spec,
    );
  } finally {
    if (worker !== null) {
      await worker.close(true);
    }
    await queue.close();
  }
}

async function latency(spec, connection) {
  const queue = new Queue(spec.queue, { connection });
  const events = new QueueEvents(spec.queue, { connection });
  let worker = null;
  const active = [];
  const completed = [];
  try {
    worker = makeWorker(spec, connection);
    worker.on("error", (err) => console.error(`worker error: ${err && err.stack}`));
    await Promise.all([events.waitUntilReady(), worker.waitUntilReady()]);
    const warm = await queue.add("job", { i: -1 });
    await warm.waitUntilFinished(events, 60000);
    for (let i = 0; i < spec.n; i++) {
      const t0 = now();
      const job = await queue.add("job", { i });
      const result = await job.waitUntilFinished(events, LATENCY_LIMIT_MS);
      const t2 = now();
      if (result === null || typeof result !== "object" || result.i !== i) {
        throw new Error(`latency job ${i} returned ${JSON.stringify(result)}`);
      }
      active.push((result.t - t0) * 1000);
      completed.push((t2 - t0) * 1000);
    }
    return { active_ms: active, completed_ms: completed };
  } finally {
    if (worker !== null) {
      await worker.close();
    }
    await events.close();
    await queue.close();
  }
}

const OPS = { versions, enqueue, drain, latency };

function reply(result, status) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(status));
}

async function main() {
  let spec;
  try {
    spec = JSON.parse(process.argv[2]);
    const op = OPS[spec.op];
    if (op === undefined) {
      throw new Error(`unknown op ${JSON.stringify(spec.op)}; this driver has ${Object.keys(OPS).sort()}`);
    }
    reply(spec.op === "versions" ? await versions() : await withCleanup(spec, op), 0);
  } catch (err) {
    reply({ error: `${(err && err.name) || "Error"}: ${(err && err.message) || err}` }, 1);
  }
}

main();
