// Follows the dashboard's run link to a live Jaeger in headless Chromium (Debian's chromium,
// driven by playwright-core) and keeps a screenshot. Run by tests/python/test_collector_live.py:
//   node jaeger-trace.mjs <dashboard.html> <jaeger-base-url> <trace_id> <spans> <screenshot.png>
// Prints one JSON line of what it saw; exits non-zero when the link or the trace is wrong.
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [dashboard, jaegerUrl, traceId, spans, shot] = process.argv.slice(2);
assert.ok(dashboard && jaegerUrl && traceId && spans && shot, 'usage: dashboard jaeger-url trace-id spans png');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  await page.goto(pathToFileURL(dashboard).href, { waitUntil: 'load' });
  // The run's row links its trace id to <jaeger>/trace/<trace_id>.
  const link = page.locator(`section#runs a[href="${jaegerUrl}/trace/${traceId}"]`);
  assert.equal(await link.count(), 1, `dashboard has no link to ${jaegerUrl}/trace/${traceId}`);
  const href = await link.getAttribute('href');
  const resp = await page.goto(href, { waitUntil: 'load' });
  assert.equal(resp.status(), 200, `${href} answered ${resp.status()}`);
  // What the page at that link gets from its own origin for this trace: Jaeger's query API.
  const got = await page.evaluate(async (id) => {
    const r = await fetch(`/api/traces/${id}`);
    const body = await r.json();
    const t = body.data?.[0];
    return { status: r.status, traceID: t?.traceID, spans: t?.spans?.length ?? 0,
      ops: (t?.spans ?? []).map((s) => s.operationName) };
  }, traceId);
  assert.equal(got.status, 200);
  assert.equal(got.traceID, traceId);
  assert.equal(got.spans, Number(spans), `Jaeger holds ${got.spans} spans, traj counted ${spans}`);
  const ui = await page.evaluate(() => ({
    title: document.title,
    placeholder: document.body.innerText.includes('This is not the Jaeger UI you are looking for'),
  }));
  if (!ui.placeholder) {
    // The real Jaeger UI (a binary built with its assets): the trace page names the root span.
    await page.getByText(/invoke_workflow/).first().waitFor({ timeout: 30000 });
  }
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ href, status: resp.status(), spans: got.spans, ui_assets: !ui.placeholder,
    title: ui.title, root_ops: got.ops.filter((o) => o.startsWith('invoke_workflow')) }));
} finally {
  await browser.close();
}
