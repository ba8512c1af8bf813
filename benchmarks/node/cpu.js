"use strict";
// Sandboxed processor: the CPU-bound work, with the JavaScript round count the benchmark calibrated.
const { burn } = require("./work.js");

module.exports = async (job) => ({ i: job.data.i, x: burn(job.data.n_js) });
