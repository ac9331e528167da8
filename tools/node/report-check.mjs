#!/usr/bin/env node
// report-check.mjs: opens a taxistream run report in Debian's chromium (driven by playwright-core, no
// browser download) and checks what a person would see:
//   - the page makes no network request: every request is recorded and routed, and anything but the
//     report's own file:// URL is aborted and fails the check (and the page's resource timing is empty);
//   - every chart rendered: a visible non-empty <svg class="chart"> with marks that have a size, an x
//     and a y axis label and a legend; the charts named by --expect-charts are all there;
//   - the numbers shown equal the summary JSON (`taxistream local --summary-json`): every
//     [data-metric] element's value and visible text, and the reconciliation lines, in order;
//   - no console error or page error;
// then saves a full-page screenshot (and, with --viewport-shot, one of the top of the page, 1280 px wide
// and --shot-height high: `make report-png` makes the README's docs/report.png so).
//
// usage: node report-check.mjs --report R.html --summary S.json --screenshot OUT.png
//          [--viewport-shot TOP.png [--shot-height 900]] [--expect-charts id,id,...] [--require-metrics key,key,...]
// Prints a JSON result on stdout; exits 1 with the problems on stderr.
// CHROMIUM overrides the browser (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

function args() {
  const out = {};
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith('--')) throw new Error(`unexpected argument ${a[i]}`);
    out[a[i].slice(2)] = a[i + 1];
    i++;
  }
  for (const k of ['report', 'summary', 'screenshot']) {
    if (!out[k]) throw new Error(`--${k} is required`);
  }
  return out;
}

const opts = args();
const problems = [];
const fail = (msg) => problems.push(msg);
const summary = JSON.parse(readFileSync(opts.summary, 'utf8'));
const reportURL = pathToFileURL(resolve(opts.report)).href;
const userDataDir = mkdtempSync(join(tmpdir(), 'taxistream-report-check-'));

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  offline: true,
  timeout: 60000,
});
const result = { requests: [], blocked: [], charts: [], metrics: 0, reconciliation: 0 };
try {
  context.on('request', (req) => result.requests.push(req.url()));
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url === reportURL) return route.continue();
    result.blocked.push(url);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(reportURL, { waitUntil: 'load', timeout: 60000 });

  // Network: only the report itself.
  for (const u of result.requests) {
    if (u !== reportURL) fail(`the page requested ${u}`);
  }
  for (const u of result.blocked) fail(`blocked a request to ${u}`);
  const resources = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  for (const u of resources) fail(`resource timing lists ${u}`);
  for (const e of consoleErrors) fail(`console error: ${e}`);

  // Charts.
  result.charts = await page.$$eval('svg.chart', (svgs) => svgs.map((svg) => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('.mark')];
    const sized = marks.filter((m) => {
      const b = m.getBBox();
      return b.width > 0 || b.height > 0;
    });
    const text = (sel) => [...svg.querySelectorAll(sel)].map((t) => t.textContent.trim()).filter((t) => t !== '');
    return {
      id: svg.dataset.chart,
      width: box.width,
      height: box.height,
      marks: marks.length,
      sizedMarks: sized.length,
      xLabel: text('text.axis-label[data-axis="x"]')[0] || '',
      yLabel: text('text.axis-label[data-axis="y"]')[0] || '',
      legend: text('g.legend text.legend-label'),
      ticks: svg.querySelectorAll('text.tick').length,
    };
  }));
  if (result.charts.length === 0) fail('no charts on the page');
  for (const c of result.charts) {
    const where = `chart ${c.id}`;
    if (!(c.width > 100 && c.height > 50)) fail(`${where}: rendered ${c.width}x${c.height}`);
    if (c.marks === 0 || c.sizedMarks === 0) fail(`${where}: ${c.marks} marks, ${c.sizedMarks} with a size`);
    if (!c.xLabel) fail(`${where}: no x axis label`);
    if (!c.yLabel) fail(`${where}: no y axis label`);
    if (c.legend.length === 0) fail(`${where}: no legend`);
    if (c.ticks === 0) fail(`${where}: no tick labels`);
  }
  const ids = new Set(result.charts.map((c) => c.id));
  if (ids.size !== result.charts.length) fail('two charts share an id');
  for (const id of (opts['expect-charts'] || '').split(',').filter(Boolean)) {
    if (!ids.has(id)) fail(`chart ${id} is missing`);
  }

  // Numbers: each [data-metric] equals the summary JSON.
  const metrics = await page.$$eval('[data-metric]', (els) => els.map((e) => ({
    key: e.dataset.metric, value: e.dataset.value, text: e.textContent.trim(),
    visible: e.getBoundingClientRect().width > 0,
  })));
  result.metrics = metrics.length;
  const seen = new Set();
  for (const m of metrics) {
    seen.add(m.key);
    if (!(m.key in summary)) { fail(`metric ${m.key} is not in the summary JSON`); continue; }
    const want = summary[m.key];
    if (m.value !== String(want)) fail(`metric ${m.key}: data-value ${m.value}, summary ${want}`);
    if (!m.visible) fail(`metric ${m.key} is not visible`);
    if (typeof want === 'number' && m.text.replace(/,/g, '') !== String(want)) {
      fail(`metric ${m.key}: the page shows "${m.text}", summary ${want}`);
    }
  }
  for (const k of (opts['require-metrics'] || '').split(',').filter(Boolean)) {
    if (!seen.has(k)) fail(`metric ${k} is not shown`);
  }
  const lines = await page.$$eval('[data-list="reconciliation"] li', (els) => els.map((e) => e.textContent.trim()));
  result.reconciliation = lines.length;
  const want = summary.reconciliation || [];
  if (JSON.stringify(lines) !== JSON.stringify(want)) {
    fail(`reconciliation lines differ:\npage:    ${JSON.stringify(lines)}\nsummary: ${JSON.stringify(want)}`);
  }

  await page.screenshot({ path: opts.screenshot, fullPage: true });
  if (opts['viewport-shot']) {
    await page.setViewportSize({ width: 1280, height: Number(opts['shot-height'] || 900) });
    await page.screenshot({ path: opts['viewport-shot'], fullPage: false });
  }
} catch (e) {
  fail(`checking the report: ${e.stack || e}`);
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
if (problems.length > 0) {
  process.stderr.write(problems.map((p) => `- ${p}`).join('\n') + '\n');
  process.exit(1);
}
