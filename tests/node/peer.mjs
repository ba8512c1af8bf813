// A Node bullmq peer for sandq's interop tests, driven over stdin/stdout.
//
//   node peer.mjs INSTALL_DIR REDIS_URL [PREFIX]
//
// INSTALL_DIR holds node_modules/bullmq (and ioredis); tests/node_peer.py installs it outside the
// repository. Each line on stdin is one step, a JSON object {"op": ..., ...}, or a JSON array of steps
// (a batch, run in order); each step prints one line on stdout: {"ok": true, "result": ...} or
// {"ok": false, "error": "...", "stack": "..."}. Steps run one after another; a Worker and a QueueEvents
// keep running in the background between steps. At the end of stdin everything is closed and the
// process exits.
//
// Steps (every one names its "queue"):
//   add {jobs: [{name, data, opts}]}                   -> the jobs' ids, added one by one, in order
//   counts {states?}                                   -> getJobCounts(...states)
//   jobs {states, start?, end?, asc?}                  -> getJobs(...), as job records (see record())
//   job {id}                                           -> the job's record with its "state", or null
//   logs {id, start?, end?, asc?}                      -> getJobLogs(...): {logs, count}
//   workers                                            -> getWorkers(): CLIENT LIST entries
//   paused / pause / resume                            -> isPaused() / pause() / resume()
//   worker.start {options}                             -> a Worker with act() as its processor
//   worker.stop                                        -> closes it (force: jobs left running are
//                                                         abandoned); what it ran, in order
//   events.start                                       -> a QueueEvents reading from the stream's
//                                                         current end
//   events.collect {timeout_ms?}                       -> waits until it has read up to the stream's
//                                                         last entry, closes it, returns the events
//
// act(), the processor, does what job.data.do lists, the same as tests/processors/interop.py:
//   {"progress": x}  {"log": "line"}  {"log_attempt": true}  {"sleep": ms}  {"throw": "message"}
//   {"fail_until": n, "message": "..."} (throws while attemptsMade < n)
//   {"hang_on_first_start": true} (never returns while attemptsStarted <= 1)
// and returns job.data.return when present, else {name, attemptsMade, attemptsStarted}.

import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const [installDir, redisUrl, prefix = "bull"] = process.argv.slice(2);
if (!installDir || !redisUrl) {
  process.stderr.write("usage: node peer.mjs INSTALL_DIR REDIS_URL [PREFIX]\n");
  process.exit(2);
}
const require = createRequire(path.join(installDir, "package.json"));
const { Queue, QueueEvents, Worker } = require("bullmq");
const IORedis = require("ioredis");

function connectionOptions(url) {
  const parsed = new URL(url);
  if (parsed.protocol === "unix:") {
    return { path: parsed.pathname, db: Number(parsed.searchParams.get("db") || 0) };
  }
  const options = { host: parsed.hostname || "127.0.0.1", port: Number(parsed.port || 6379) };
  const db = parsed.pathname.replace(/^\//, "");
  if (db) options.db = Number(db);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  return options;
}

const connection = connectionOptions(redisUrl);
const raw = new IORedis({ ...connection, maxRetriesPerRequest: null });
const queues = new Map();
const workers = new Map();
const listeners = new Map();

function queueFor(name) {
  let queue = queues.get(name);
  if (!queue) {
    queue = new Queue(name, { connection, prefix });
    queues.set(name, queue);
  }
  return queue;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function act(job) {
  const data = job.data && typeof job.data === "object" ? job.data : {};
  for (const step of data.do || []) {
    if ("progress" in step) {
      await job.updateProgress(step.progress);
    } else if ("log" in step) {
      await job.log(step.log);
    } else if ("log_attempt" in step) {
      await job.log(`attempt ${job.attemptsMade} at ${Date.now()}`);
    } else if ("sleep" in step) {
      await sleep(step.sleep);
    } else if ("throw" in step) {
      throw new Error(step.throw);
    } else if ("fail_until" in step) {
      if (job.attemptsMade < step.fail_until) {
        throw new Error(step.message || `attempt ${job.attemptsMade} fails`);
      }
    } else if ("hang_on_first_start" in step) {
      if (job.attemptsStarted <= 1) await new Promise(() => {});
    } else {
      throw new Error(`unknown action ${JSON.stringify(step)}`);
    }
  }
  if ("return" in data) return data.return;
  return { name: job.name, attemptsMade: job.attemptsMade, attemptsStarted: job.attemptsStarted };
}

// The fields of a Job as Node's getters read them (no functions, no queue).
const FIELDS = [
  "id", "name", "data", "opts", "progress", "returnvalue", "failedReason", "stacktrace",
  "attemptsMade", "attemptsStarted", "stalledCounter", "timestamp", "processedOn", "finishedOn",
  "delay", "priority", "processedBy", "parentKey", "repeatJobKey", "deduplicationId",
];

function record(job) {
  if (!job) return null;
  const out = {};
  for (const field of FIELDS) {
    if (job[field] !== undefined) out[field] = job[field];
  }
  return JSON.parse(JSON.stringify(out));
}

async function startWorker(name, options) {
  if (workers.has(name)) throw new Error(`a worker already runs on ${name}`);
  const ran = [];
  const errors = [];
  const worker = new Worker(name, act, { connection, prefix, drainDelay: 1, ...options });
  worker.on("active", (job) => ran.push({ id: job.id, event: "active", attemptsStarted: job.attemptsStarted }));
  worker.on("completed", (job, result) => ran.push({ id: job.id, event: "completed", result }));
  worker.on("failed", (job, err) =>
    ran.push({ id: job && job.id, event: "failed", reason: err && err.message }),
  );
  worker.on("error", (err) => errors.push(String((err && err.stack) || err)));
  workers.set(name, { worker, ran, errors });
  await worker.waitUntilReady();
  return true;
}

async function stopWorker(name) {
  const entry = workers.get(name);
  if (!entry) throw new Error(`no worker runs on ${name}`);
  workers.delete(name);
  await entry.worker.close(true);
  return { ran: entry.ran, errors: entry.errors };
}

async function lastStreamId(name) {
  const last = await raw.xrevrange(`${prefix}:${name}:events`, "+", "-", "COUNT", 1);
  return last.length ? last[0][0] : "0-0";
}

const INTERNAL_EVENTS = new Set(["error", "ready", "closing", "closed", "ioredis:close"]);

async function startEvents(name) {
  if (listeners.has(name)) throw new Error(`events of ${name} are already read`);
  const seen = [];
  const events = new QueueEvents(name, {
    connection,
    prefix,
    lastEventId: await lastStreamId(name),
    blockingTimeout: 1000,
  });
  const emit = events.emit.bind(events);
  events.emit = (event, ...args) => {
    if (!INTERNAL_EVENTS.has(event) && !event.includes(":")) {
      if (event === "drained") {
        seen.push({ streamId: args[0], fields: { event } });
      } else {
        seen.push({ streamId: args[1], fields: { event, ...args[0] } });
      }
    }
    return emit(event, ...args);
  };
  listeners.set(name, { events, seen });
  await events.waitUntilReady();
  return true;
}

function streamIdAtLeast(a, b) {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am > bm || (am === bm && as >= bs);
}

async function collectEvents(name, timeoutMs) {
  const entry = listeners.get(name);
  if (!entry) throw new Error(`events of ${name} are not read`);
  const target = await lastStreamId(name);
  const deadline = Date.now() + timeoutMs;
  while (target !== "0-0") {
    const last = entry.seen.length ? entry.seen[entry.seen.length - 1].streamId : "0-0";
    if (streamIdAtLeast(last, target)) break;
    if (Date.now() > deadline) throw new Error(`QueueEvents did not reach ${target} within ${timeoutMs} ms`);
    await sleep(10);
  }
  listeners.delete(name);
  await entry.events.close();
  return entry.seen;
}

async function run(step) {
  const queue = () => queueFor(step.queue);
  switch (step.op) {
    case "add": {
      const ids = [];
      for (const job of step.jobs) {
        const added = await queue().add(job.name, job.data, job.opts || {});
        ids.push(added.id);
      }
      return ids;
    }
    case "counts":
      return queue().getJobCounts(...(step.states || []));
    case "jobs": {
      const jobs = await queue().getJobs(step.states, step.start ?? 0, step.end ?? -1, step.asc ?? false);
      return jobs.map(record);
    }
    case "job": {
      const job = await queue().getJob(step.id);
      if (!job) return null;
      return { ...record(job), state: await job.getState() };
    }
    case "logs":
      return queue().getJobLogs(step.id, step.start ?? 0, step.end ?? -1, step.asc ?? true);
    case "workers":
      return queue().getWorkers();
    case "paused":
      return queue().isPaused();
    case "pause":
      await queue().pause();
      return true;
    case "resume":
      await queue().resume();
      return true;
    case "worker.start":
      return startWorker(step.queue, step.options || {});
    case "worker.stop":
      return stopWorker(step.queue);
    case "events.start":
      return startEvents(step.queue);
    case "events.collect":
      return collectEvents(step.queue, step.timeout_ms ?? 10000);
    default:
      throw new Error(`unknown op ${JSON.stringify(step.op)}`);
  }
}

function reply(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function runOne(step) {
  try {
    reply({ ok: true, result: (await run(step)) ?? null });
  } catch (err) {
    reply({ ok: false, error: String((err && err.message) || err), stack: String((err && err.stack) || "") });
  }
}

async function shutdown() {
  for (const { worker } of workers.values()) await worker.close(true);
  for (const { events } of listeners.values()) await events.close();
  for (const queue of queues.values()) await queue.close();
  raw.disconnect();
  process.exit(0);
}

let chain = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let parsed;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      reply({ ok: false, error: `not JSON: ${err.message}`, stack: "" });
      return;
    }
    for (const step of Array.isArray(parsed) ? parsed : [parsed]) await runOne(step);
  });
});
lines.on("close", () => {
  chain = chain.then(shutdown);
});
