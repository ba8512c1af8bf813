"use strict";
// Sandboxed processor (run in a child process by BullMQ): returns the job's data.
module.exports = async (job) => job.data;
