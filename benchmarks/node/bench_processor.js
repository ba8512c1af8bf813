"use strict";
// The benchmark suite's job for Node bullmq (benchmarks/node/driver.mjs): a processor FILE, which the
// "sandboxed" variant hands to BullMQ (run in child processes) and the "inprocess" variant requires and
// runs as a function. It returns the job's index, when it started (epoch seconds with sub-millisecond
// resolution, as Python's time.time()), and for a cpu job (data.n rounds) the checksum burn(n), which is
// the one benchmarks/processors.py computes for the same n.
const { burn } = require("./work.js");

module.exports = async (job) => {
  const started = (performance.timeOrigin + performance.now()) / 1000;
  const result = { i: job.data.i, t: started };
  if (job.data.n !== undefined) {
    result.x = burn(job.data.n);
  }
  return result;
};
