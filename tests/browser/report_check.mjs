// Opens a `moe report` page in headless Chromium (file:// URL, offline) and
// checks that it renders: no console or page errors, no network requests,
// every chart the data calls for is there and drawn (a plotly SVG with trace
// elements, a title and axis titles), no chart the data lacks, the token view
// follows the layer <select>, alerts and the imbalance bar are on the chart.
// Saves a full-page screenshot.
//
// usage: node tests/browser/report_check.mjs REPORT.html SCREENSHOT.png
// Exit status 0 when every check passes; otherwise 1, each failure printed.
import { launchChromium } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [reportPath, screenshotPath] = process.argv.slice(2);
if (!reportPath || !screenshotPath) {
  console.error('usage: node report_check.mjs REPORT.html SCREENSHOT.png');
  process.exit(2);
}
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

// The data block, read the way report_numbers.py reads it.
function readData(file) {
  const html = fs.readFileSync(file, 'utf8');
  const m = html.match(/<script type="application\/json" id="moe-data">([\s\S]*?)<\/script>/);
  if (!m) throw new Error(`${file}: no <script type="application/json" id="moe-data"> block`);
  return JSON.parse(m[1]);
}

// Which charts (data-chart ids) and sections the data calls for. Written
// from docs/monitoring.md independently of report.js, so a chart that goes
// missing (or appears without data) is caught.
function expected(data) {
  const train = data.train || [], evals = data.eval || [], alerts = data.alerts || [];
  const has = (lines, k) => lines.some(l => k in l);
  const layerKeys = k => [...new Set(train.flatMap(l =>
    l[k] && typeof l[k] === 'object' ? Object.keys(l[k]) : []))];
  const charts = new Set(), sections = new Set(['summary']);
  if (has(train, 'train_loss') || has(evals, 'val_loss')) charts.add('loss');
  if (has(train, 'learning_rate') || has(train, 'router_temperature')) charts.add('lr');
  if (charts.size) sections.add('curves');
  for (const layer of layerKeys('expert_fraction')) charts.add(`util-L${layer}`);
  if (layerKeys('expert_fraction').length) sections.add('utilization');
  if (has(train, 'load_cv') || has(train, 'load_max_over_mean')) charts.add('balance');
  if (has(train, 'router_entropy')) charts.add('entropy');
  if (charts.has('balance') || charts.has('entropy') || alerts.length) sections.add('balance');
  const r = data.routing, sub = r && r.subsets;
  if (sub && sub.mean_gate) for (const l of r.layers) charts.add(`gate-L${l}`);
  if (sub && sub.expert_accuracy) charts.add('expert-accuracy');
  if (sub && (sub.mean_gate || sub.expert_accuracy)) sections.add('routing');
  if (sub && sub.fraction) { for (const l of r.layers) charts.add(`hist-L${l}`); sections.add('histograms'); }
  if (r && r.sample) { charts.add('tokens'); sections.add('tokens'); }
  if (r && r.distribution) { charts.add('distribution'); sections.add('distribution'); }
  // analysis.jsonl (docs/families.md): expert analysis and channel-gate sparsity
  const an = data.analysis || [];
  if (an.some(a => a.expert_analysis)) {
    charts.add('expert-class-accuracy'); charts.add('expert-class-gate'); sections.add('expert-analysis');
  }
  if (an.some(a => a.gate_sparsity)) {
    charts.add('gate-zero-by-layer'); charts.add('gate-zero-over-time'); sections.add('gate-sparsity');
  }
  return { charts, sections };
}

const data = readData(reportPath);
const want = expected(data);
const browser = await launchChromium('moe-report-chromium-');
const context = browser.context;
try {
  const page = context.pages()[0] || await context.newPage();
  const errors = [], requests = [];
  page.on('console', msg => { if (msg.type() === 'error') errors.push(`console: ${msg.text()}`); });
  page.on('pageerror', err => errors.push(`page error: ${err.message}`));
  page.on('request', req => {
    const url = req.url();
    if (!url.startsWith('file:') && !url.startsWith('data:') && !url.startsWith('blob:')) requests.push(url);
  });
  await page.goto(pathToFileURL(path.resolve(reportPath)).href, { waitUntil: 'load' });
  try {
    await page.waitForFunction(() => window.moeReport && window.moeReport.done, null, { timeout: 60000 });
  } catch (e) {
    failures.push('the page did not finish drawing (window.moeReport.done) within 60 s');
  }

  const seen = await page.evaluate(() => [...document.querySelectorAll('[data-chart]')].map(div => {
    const fig = div.classList.contains('chart') ? div : null;
    const lay = fig && fig.layout || {};
    return {
      id: div.dataset.chart,
      plotly: !!fig,
      svg: !!div.querySelector('.main-svg'),
      types: fig && fig.data ? fig.data.map(t => t.type || 'scatter') : [],
      traces: fig && fig.data ? fig.data.map(t => ({ name: t.name, x: t.x, y: t.y, text: t.text })) : [],
      title: lay.title && lay.title.text || '',
      xTitle: lay.xaxis && lay.xaxis.title && lay.xaxis.title.text || '',
      yTitle: lay.yaxis && lay.yaxis.title && lay.yaxis.title.text || '',
      heatmapImages: div.querySelectorAll('g.hm image').length,
      barPaths: [...div.querySelectorAll('g.bars g.point path')].filter(p => (p.getAttribute('d') || '') !== 'M0,0Z').length,
      scatterTraces: div.querySelectorAll('g.scatterlayer g.trace').length,
      parcoordsAxes: div.querySelectorAll('g.parcoords g.y-axis, g.parcoords .axis').length,
      height: div.getBoundingClientRect().height,
    };
  }));
  const sections = await page.evaluate(() =>
    [...document.querySelectorAll('main > section')].map(s => ({ id: s.id, h2: !!s.querySelector('h2') })));

  // the set of charts and sections
  const seenIds = seen.map(c => c.id);
  check(new Set(seenIds).size === seenIds.length, `a data-chart id is repeated: ${seenIds}`);
  for (const id of want.charts) check(seenIds.includes(id), `chart ${id} is missing`);
  for (const id of seenIds) check(want.charts.has(id), `chart ${id} is drawn but its data is absent`);
  const sectionIds = sections.map(s => s.id);
  for (const id of want.sections) check(sectionIds.includes(id), `section ${id} is missing`);
  for (const id of sectionIds) check(want.sections.has(id), `section ${id} is there but its data is absent`);
  for (const s of sections) check(s.h2, `section ${s.id} has no h2`);

  // each plotly chart drew its traces and is labelled
  for (const c of seen.filter(c => c.plotly)) {
    check(c.svg, `${c.id}: no plotly .main-svg`);
    check(c.height > 100, `${c.id}: ${c.height}px tall`);
    check(c.types.length > 0, `${c.id}: no traces`);
    check(c.title.length > 0, `${c.id}: no title`);
    if (!c.types.includes('parcoords')) {
      check(c.xTitle.length > 0 && c.yTitle.length > 0, `${c.id}: an axis has no title`);
    }
    if (c.types.includes('heatmap')) check(c.heatmapImages > 0, `${c.id}: heatmap not drawn`);
    if (c.types.includes('bar')) check(c.barPaths > 0, `${c.id}: no bars drawn`);
    if (c.types.includes('scatter')) check(c.scatterTraces > 0, `${c.id}: no lines drawn`);
    if (c.types.includes('parcoords')) {
      check(c.parcoordsAxes > 0, `${c.id}: parallel coordinates not drawn`);
    }
  }

  // alerts and the imbalance bar on the load-balance chart
  const balance = seen.find(c => c.id === 'balance');
  if (balance) {
    const bar = balance.traces.find(t => /imbalance_max/.test(t.name || ''));
    check(bar && bar.y.every(v => v === 0.2 || v === (data.config && data.config.obs && data.config.obs.imbalance_max)),
      'balance: no dashed imbalance_max line');
    const alerts = data.alerts || [];
    const marks = balance.traces.find(t => t.name === 'alerts');
    if (alerts.length) {
      check(marks && JSON.stringify(marks.x) === JSON.stringify(alerts.map(a => a.step)),
        'balance: alert markers are not at the alert steps');
      check(marks && alerts.every((a, i) => String(marks.text[i]).includes(a.message)),
        'balance: alert hover text lacks the alert messages');
    } else {
      check(!marks, 'balance: alert markers without alerts');
    }
  }

  // the token view: one span per token, coloured by the selected layer
  const sample = data.routing && data.routing.sample;
  if (sample) {
    const tokenView = async () => page.evaluate(() => {
      const view = document.querySelector('.tokens[data-chart="tokens"]');
      const sel = document.querySelector('#tokens-layer');
      return {
        spans: [...view.querySelectorAll(':scope > span')].map(s => ({ text: s.textContent, title: s.title, bg: s.style.backgroundColor })),
        options: sel ? sel.options.length : 0,
        legend: document.querySelectorAll('#tokens .legend .swatch').length,
      };
    });
    for (const layer of [sample.expert.length - 1, 0]) {
      await page.selectOption('#tokens-layer', String(layer));
      const v = await tokenView();
      check(v.options === sample.expert.length, `tokens: ${v.options} layers in the select, want ${sample.expert.length}`);
      check(v.legend > 0, 'tokens: no legend');
      check(v.spans.length === sample.tokens.length, `tokens: ${v.spans.length} spans for ${sample.tokens.length} tokens`);
      check(v.spans.every((s, t) => s.text === sample.tokens[t]), 'tokens: span text differs from the sample');
      check(v.spans.every((s, t) => s.title.startsWith(`expert ${sample.expert[layer][t]},`) && s.bg),
        `tokens: layer ${layer}: a span's expert (title) or colour is not the sample's`);
    }
  }

  check(errors.length === 0, `errors in the page:\n  ${errors.join('\n  ')}`);
  check(requests.length === 0, `the page made network requests: ${requests.join(', ')}`);
  fs.mkdirSync(path.dirname(path.resolve(screenshotPath)), { recursive: true });
  await page.screenshot({ path: screenshotPath, fullPage: true });
  console.log(`charts: ${seenIds.join(' ')}`);
  console.log(`screenshot: ${path.resolve(screenshotPath)}`);
} finally {
  await browser.close();
}
if (failures.length) {
  for (const f of failures) console.error(`FAIL: ${f}`);
  process.exit(1);
}
console.log('report renders: every check passed');
