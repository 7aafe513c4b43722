// Opens the dashboard written by `traj report` in headless Chromium: it must render offline (no
// request but the file itself, no console errors), draw charts in every role section, show the
// config comparison, link runs to Jaeger and keep hostile strings from the data inert.
// Needs `target/debug/traj` (cargo build -p traj-cli) and /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const traj = process.env.TRAJ_BIN ?? join(root, 'target', 'debug', 'traj');
const fixtures = join(root, 'tests', 'fixtures', 'runs');
const artifacts = join(root, 'target', 'test-artifacts');
const HOSTILE = '<img src="http://127.0.0.1:9/pwned.png" onerror="console.error(\'xss\')">';

let work;
let browser;

before(async () => {
  assert.ok(existsSync(traj), `${traj} is missing: run cargo build -p traj-cli first`);
  work = mkdtempSync(join(tmpdir(), 'traj-dashboard-'));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function report(runsDir, outDir, extra = []) {
  return execFileSync(traj, ['report', '--runs', runsDir, '--out', outDir, ...extra], { encoding: 'utf8' });
}

/** Opens `file` and records console errors, page errors and every request made. */
async function open(file) {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const errors = [];
  const requests = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  return { page, errors, requests };
}

test('dashboard of two configs renders offline with charts per role', async () => {
  const out = join(work, 'fixtures-report');
  const stdout = report(fixtures, out);
  assert.match(stdout, /28 runs \(0 skipped\), 2 configs/);
  const file = join(out, 'dashboard.html');
  const { page, errors, requests } = await open(file);

  assert.deepEqual(errors, [], 'console errors');
  assert.deepEqual(requests, [pathToFileURL(file).href], 'only the file itself is requested');

  const svgs = {};
  for (const role of ['planner', 'worker', 'verifier']) {
    svgs[role] = await page.locator(`section#${role} svg`).count();
  }
  assert.ok(svgs.planner >= 5, `planner charts: ${svgs.planner}`);
  assert.ok(svgs.worker >= 6, `worker charts: ${svgs.worker}`);
  assert.ok(svgs.verifier >= 7, `verifier charts: ${svgs.verifier}`);
  // Each chart has drawn marks, not only axes.
  assert.ok(await page.locator('section#planner svg rect').count() >= 8);
  assert.ok(await page.locator('section#verifier svg rect').count() >= 6);

  // The comparison shows the better config, with a flagged difference and its interval.
  const comparison = page.locator('section#comparison');
  assert.equal(await comparison.locator('svg').count(), 1);
  assert.ok(await comparison.locator('.badge.b-better').count() >= 1);
  assert.match(await comparison.innerText(), /Success rate[\s\S]*\+35\.4 pt/);

  // One row per run, each trace id linking to Jaeger.
  const links = page.locator('section#runs a[href^="http://localhost:16686/trace/"]');
  assert.equal(await links.count(), 28);
  const href = await links.first().getAttribute('href');
  assert.match(href, /^http:\/\/localhost:16686\/trace\/[0-9a-f]{32}$/);

  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
  await page.close();
});

test('strings from the data are escaped and the Jaeger URL is configurable', async () => {
  const runs = join(work, 'hostile-runs');
  cpSync(fixtures, runs, { recursive: true });
  const victim = readdirSync(runs).sort()[0];
  const sessionPath = join(runs, victim, 'session.json');
  const session = JSON.parse(readFileSync(sessionPath, 'utf8'));
  session.goal_family = HOSTILE;
  session.model_stack.planner.model = HOSTILE;
  writeFileSync(sessionPath, JSON.stringify(session, null, 2));

  const out = join(work, 'hostile-report');
  report(runs, out, ['--jaeger-url', 'https://jaeger.example.invalid/ui/']);
  const file = join(out, 'dashboard.html');
  const { page, errors, requests } = await open(file);
  assert.deepEqual(errors, []);
  assert.deepEqual(requests, [pathToFileURL(file).href]);
  assert.equal(await page.locator('img').count(), 0, 'no element injected');
  assert.match(await page.locator('section#groups').innerText(), /<img src=/);
  const links = page.locator('section#runs a[href^="https://jaeger.example.invalid/ui/trace/"]');
  assert.equal(await links.count(), 28);
  await page.close();
});
