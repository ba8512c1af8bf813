"use strict";
// One BullMQ (npm) worker for benchmarks/throughput.py: processes TOTAL jobs, closes, exits.
//
//   node worker.js URL PREFIX QUEUE CONCURRENCY TOTAL inprocess
//   node worker.js URL PREFIX QUEUE CONCURRENCY TOTAL sandboxed /abs/path/processor.js
//
// `inprocess` runs a no-op processor function in this process; `sandboxed` hands BullMQ the processor
// file, which it runs in child processes (useWorkerThreads: false). TOTAL 0: start and stop at once.
// Exit status 0 when every job completed, 1 when one failed, 2 on an error. bullmq and ioredis are found through NODE_PATH (the
// benchmark installs them outside the repository).
const { Worker } = require("bullmq");
const IORedis = require("ioredis");

const [url, prefix, queue, concurrency, totalText, mode, processorFile] = process.argv.slice(2);
const total = Number(totalText);
const connection = new IORedis(url, { maxRetriesPerRequest: null });
const processor = mode === "sandboxed" ? processorFile : async (job) => job.data;

const worker = new Worker(queue, processor, {
  connection,
  prefix,
  concurrency: Number(concurrency),
  useWorkerThreads: false,
});

let completed = 0;
let failed = 0;
let finishing = false;

async function finish() {
  if (finishing) return;
  finishing = true;
  await worker.close();
  await connection.quit();
  process.exit(failed ? 1 : 0);
}

worker.on("completed", () => {
  completed += 1;
  if (completed + failed >= total) finish();
});
worker.on("failed", (job, err) => {
  failed += 1;
  console.error(`job ${job && job.id} failed: ${err && err.message}`);
  if (completed + failed >= total) finish();
});
worker.on("error", (err) => {
  console.error(`worker error: ${err && err.stack}`);
  process.exit(2);
});
if (total === 0) {
  // An idle launch (the benchmark subtracts its CPU time): start, connect, stop.
  worker.waitUntilReady().then(finish);
}
