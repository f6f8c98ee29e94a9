// Summarise a .cpuprofile: self time by function (top N) and by file.
//   node bench/profile-summary.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

const [file, n = '40'] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((node) => [node.id, node]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fn = new Map();
const files = new Map();
for (const [id, us] of self) {
  const { functionName, url, lineNumber } = byId.get(id).callFrame;
  const short = url.replace(/^.*\/(node_modules|dist|src)\//, '$1/').replace(/^node:/, '');
  const key = `${functionName || '(anon)'} ${short}:${lineNumber + 1}`;
  fn.set(key, (fn.get(key) ?? 0) + us);
  const f = short || '(native/gc/idle)';
  files.set(f, (files.get(f) ?? 0) + us);
}
const pct = (us) => ((100 * us) / total).toFixed(1).padStart(5) + '%';
console.log(`total ${(total / 1e6).toFixed(2)} s sampled`);
console.log('\n-- by file --');
for (const [k, us] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(pct(us), k);
console.log('\n-- by function --');
for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(pct(us), k);
