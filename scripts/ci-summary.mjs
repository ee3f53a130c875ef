#!/usr/bin/env node
// Reads a tap log and prints, last, the totals and every failed test with the names of the subtests
// it is nested in. CI logs are shown truncated to their head and tail: the tail must name the failure.
import process from 'node:process';
import console from 'node:console';
import { readFileSync } from 'node:fs';

const [logPath] = process.argv.slice(2);
if (!logPath) {
  console.error('usage: ci-summary.mjs TAP_LOG');
  process.exit(2);
}
const lines = readFileSync(logPath, 'utf8').split('\n');

// A subtest's name is announced as `# Subtest: NAME` at its indentation before its own lines.
const open = [];
const failures = [];
for (const line of lines) {
  const indent = line.length - line.trimStart().length;
  const text = line.trim();
  const subtest = /^# Subtest: (.*)$/.exec(text);
  if (subtest) {
    while (open.length > 0 && open[open.length - 1].indent >= indent) open.pop();
    open.push({ indent, name: subtest[1] });
    continue;
  }
  const failed = /^not ok \d+ - (.*?)(?: # time=.*)?$/.exec(text);
  if (failed) {
    const path = open.filter((s) => s.indent < indent).map((s) => s.name);
    failures.push([...path, failed[1]].join(' > '));
  }
}

const totals = [
  ...readFileSync(logPath, 'utf8').matchAll(
    /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?/g,
  ),
].pop();
const count = (i) => Number(totals?.[i] ?? 0);
// A failed parent is listed after its failed subtests, so the first lines name what broke.
console.log(`${count(2)} passed, ${count(3)} failed, ${count(4)} skipped`);
for (const f of failures) console.log(`FAILED: ${f}`);
