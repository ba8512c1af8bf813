"use strict";
// The CPU-bound work of benchmarks/throughput.py, as benchmarks/processors.py:burn does it in Python:
// n rounds of x = (x * 31 + i) mod 2**32. x * 31 + i stays below 2**38, exact in a double, and `>>> 0`
// takes it mod 2**32, so both languages return the same checksum for the same n.
//
//   node work.js calibrate MS CHECK_N   prints {"n", "ms", "x", "check"} as JSON: n rounds take about MS
//                                       ms here (best of 7), x = burn(n), check = burn(CHECK_N)

function burn(n) {
  let x = 0;
  for (let i = 0; i < n; i++) {
    x = (x * 31 + i) >>> 0;
  }
  return x;
}

function bestMs(n, times) {
  let best = Infinity;
  for (let t = 0; t < times; t++) {
    const start = process.hrtime.bigint();
    burn(n);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
  }
  return best;
}

function calibrate(targetMs) {
  let n = 100000;
  bestMs(n, 5); // let the JIT optimise burn
  while (bestMs(n, 3) < 2) n *= 4;
  n = Math.round((n * targetMs) / bestMs(n, 5));
  n = Math.round((n * targetMs) / bestMs(n, 7));
  return { n, ms: bestMs(n, 7) };
}

module.exports = { burn };

if (require.main === module && process.argv[2] === "calibrate") {
  const { n, ms } = calibrate(Number(process.argv[3]));
  const check = burn(Number(process.argv[4]));
  process.stdout.write(JSON.stringify({ n, ms, x: burn(n), check }) + "\n");
}
