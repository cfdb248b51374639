// Drives the `moe serve` dashboard (GET /) in headless Chromium the way a
// user would: enters the API key, sees the served model, checks the
// keyboard path, starts a training job from a preset and follows its loss
// curve (it must grow while the job runs) and expert utilization, cancels
// it, sees an API error reported, runs one inference with the routing trace
// (token chips coloured by expert) and one generation. Then an automated
// WCAG 2.1 AA contrast check over every visible text, the token chips and
// the form controls' borders. Any console error or failed request fails the
// test (except the one error the test provokes on purpose). Saves a
// full-page screenshot.
//
// usage: node tests/browser/serve_dashboard.mjs URL API_KEY MODEL SCREENSHOT.png
//   env: MOE_CHROMIUM (default /usr/bin/chromium), DASH_JOB_SET (overrides
//   for the job, default "train.steps=3000 train.log_every=10 train.eval_every=50
//   train.sample_tokens=0"), DASH_TIMEOUT_S (whole run, default 150)
// Exit status 0 when every check passes; otherwise 1, each failure printed.
import { launchChromium } from './chromium.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [baseUrl, apiKey, modelName, screenshotPath] = process.argv.slice(2);
if (!baseUrl || !apiKey || !modelName || !screenshotPath) {
  console.error('usage: node serve_dashboard.mjs URL API_KEY MODEL SCREENSHOT.png');
  process.exit(2);
}
const JOB_SET = process.env.DASH_JOB_SET ||
  'train.steps=3000 train.log_every=10 train.eval_every=50 train.sample_tokens=0';
const TIMEOUT_S = Number(process.env.DASH_TIMEOUT_S || 150);
const INFER_TEXT = 'In the <i>beginning</i> & "so"';

const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); return ok; };
const log = msg => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
const t0 = Date.now();

// The whole run is bounded: a hung page or server fails instead of waiting.
const watchdog = setTimeout(() => {
  console.error(`FAIL: the browser test did not finish within ${TIMEOUT_S} s`);
  for (const f of failures) console.error(`FAIL: ${f}`);
  process.exit(1);
}, TIMEOUT_S * 1000);

const browser = await launchChromium('moe-dash-chromium-');
const context = browser.context;

// Errors the test provokes on purpose (an unknown preset) are allowed while
// this is set; everything else is a failure.
let provoking = false;
const errors = [], provoked = [];
const note = what => (provoking ? provoked : errors).push(what);

try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30000);
  page.on('console', msg => { if (msg.type() === 'error') note(`console: ${msg.text()}`); });
  page.on('pageerror', err => errors.push(`page error: ${err.message}`));
  page.on('requestfailed', req => {
    // a poll cut short by the page's own navigation is not the server's fault
    if (req.failure() && /ERR_ABORTED/.test(req.failure().errorText) && /\/v1\/jobs/.test(req.url())) return;
    errors.push(`request failed: ${req.method()} ${req.url()} (${req.failure() && req.failure().errorText})`);
  });
  page.on('response', res => {
    if (res.status() >= 400) note(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  const v1Before = [];
  const onRequest = req => { if (new URL(req.url()).pathname.startsWith('/v1/')) v1Before.push(req.url()); };
  page.on('request', onRequest);

  // ---- 1. load, enter the key, see the model ------------------------------
  await page.goto(baseUrl, { waitUntil: 'load' });
  await page.waitForFunction(() => window.moeDashboard && window.Plotly);
  check(v1Before.length === 0, `the page called the API before a key was entered: ${v1Before.join(', ')}`);
  page.off('request', onRequest);
  const csp = await page.evaluate(async () => (await fetch('/', { cache: 'no-store' })).headers.get('content-security-policy'));
  log(`page loaded (Content-Security-Policy: ${csp})`);

  await page.fill('#api-key', apiKey);
  await page.press('#api-key', 'Enter');
  const modelRow = page.locator('#models-table tbody tr', { hasText: modelName });
  await modelRow.first().waitFor({ state: 'visible' });
  const modelCells = await modelRow.first().locator('th, td').allTextContents();
  log(`model listed: ${modelCells.join(' | ')}`);
  check(modelCells[0] === modelName, `models table: first cell "${modelCells[0]}", want ${modelName}`);
  check(modelCells.length === 7 && modelCells.slice(1).every(c => c.trim() !== ''),
        `models table: a column is empty: ${JSON.stringify(modelCells)}`);
  const stored = await page.evaluate(() => ({
    session: Object.keys(sessionStorage).map(k => sessionStorage.getItem(k)),
    local: Object.keys(localStorage).map(k => localStorage.getItem(k)),
    cookie: document.cookie,
  }));
  check(stored.session.includes(apiKey), 'the key is not kept in sessionStorage');
  check(!stored.local.some(v => v.includes(apiKey)) && !stored.cookie.includes(apiKey),
        'the key leaked into localStorage or a cookie');

  // ---- 2. keyboard path (after a reload: the key comes back from the session)
  await page.reload({ waitUntil: 'load' });
  await modelRow.first().waitFor({ state: 'visible' });
  check(await page.inputValue('#api-key') === apiKey, 'the key field is empty after a reload');
  const path_ = [];
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(() => {
      const a = document.activeElement;
      if (!a || a === document.body) return null;
      const s = getComputedStyle(a);
      const label = a.labels && a.labels.length ? a.labels[0].textContent.trim()
        : (a.getAttribute('aria-label') || a.textContent.trim());
      return { id: a.id, tag: a.tagName.toLowerCase(), label, outline: s.outlineStyle,
               outlineWidth: parseFloat(s.outlineWidth) };
    });
    if (!f) break;
    path_.push(f);
    if (f.id === 'infer-text') break;
  }
  const at = id => path_.findIndex(f => f.id === id);
  log(`Tab path: ${path_.map(f => f.id || f.tag).join(' > ')}`);
  check(at('api-key') >= 0, 'Tab never reaches the API key field');
  check(at('train-config') > at('api-key'), 'Tab does not reach the job form (preset) after the key field');
  check(at('infer-text') > at('train-config'), 'Tab does not reach the inference text after the job form');
  for (const f of path_) {
    check(f.outline !== 'none' && f.outlineWidth >= 2,
          `focused ${f.id || f.tag} has no visible focus outline (${f.outline} ${f.outlineWidth}px)`);
    check(f.label && f.label.length > 0, `focused ${f.id || f.tag} has no label`);
  }
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim())
    .map(c => c.id || c.outerHTML.slice(0, 60)));
  check(unlabelled.length === 0, `controls without a label: ${unlabelled.join(', ')}`);

  // ---- 3. an API error is shown in the live region --------------------------
  provoking = true;
  await page.fill('#train-config', 'no-such-preset');
  await page.fill('#train-set', '');
  const refused = page.waitForResponse(r => r.url().endsWith('/v1/train') && r.request().method() === 'POST');
  await page.press('#train-config', 'Enter');
  const refusedRes = await refused;
  const refusedBody = await refusedRes.json().catch(() => ({}));
  check(refusedRes.status() >= 400 && refusedRes.status() < 500,
        `POST /v1/train with an unknown preset answered ${refusedRes.status()}`);
  await page.waitForFunction(() => document.querySelector('#errors .error'));
  const errText = await page.textContent('#errors');
  const errLive = await page.evaluate(() => {
    const e = document.getElementById('errors');
    return e.getAttribute('aria-live') || (e.getAttribute('role') === 'alert' ? 'assertive' : '');
  });
  await page.waitForTimeout(200);
  provoking = false;
  log(`provoked error shown: ${errText.trim()}`);
  const apiErr = refusedBody.error || {};
  check(errText.includes(`HTTP ${refusedRes.status()}`), `the error region lacks the HTTP status: "${errText}"`);
  check(apiErr.message && errText.includes(apiErr.message),
        `the error region lacks the API's message "${apiErr.message}": "${errText}"`);
  check(!apiErr.field || errText.includes(`field "${apiErr.field}"`),
        `the error region lacks the field "${apiErr.field}": "${errText}"`);
  check(errLive === 'assertive', 'the error region is not aria-live');

  // ---- 4. start a job (Enter in the form) and follow it ---------------------
  await page.fill('#train-config', 'tiny');
  await page.fill('#train-set', JOB_SET);
  const started = page.waitForResponse(r => r.url().endsWith('/v1/train') && r.request().method() === 'POST');
  await page.press('#train-set', 'Enter');
  const startRes = await started;
  const job = await startRes.json();
  check(startRes.status() === 202, `POST /v1/train answered ${startRes.status()}`);
  log(`job started: ${job.id} (${job.state})`);
  check(await page.textContent('#errors') === '', 'the old error is still shown after a good request');
  await page.locator(`#jobs-table tr[data-job="${job.id}"]`).waitFor();
  await page.locator('#job').waitFor({ state: 'visible' });

  const lossPoints = () => page.evaluate(() => {
    const gd = document.getElementById('loss-chart');
    const t = gd.data && gd.data[0];
    return {
      points: t && t.x ? t.x.length : 0,
      drawn: gd.querySelectorAll('g.scatterlayer g.trace path.js-line').length,
      progress: document.querySelector('#jobs-table tbody tr .progress-text')?.textContent,
      state: window.moeDashboard && document.querySelector('#job-facts dd')?.textContent,
    };
  });
  await page.waitForFunction(() => window.moeDashboard.lossPoints >= 2, null, { timeout: 60000 });
  const first = await lossPoints();
  log(`loss curve: ${first.points} points (${first.progress}; ${first.state})`);
  check(first.drawn > 0, 'the loss curve has points but no line drawn');
  await page.waitForFunction(n => window.moeDashboard.lossPoints > n, first.points, { timeout: 60000 });
  const later = await lossPoints();
  log(`loss curve updated: ${later.points} points (${later.progress}; ${later.state})`);
  check(later.points > first.points, 'the loss curve did not grow');

  await page.waitForFunction(() => window.moeDashboard.expertLayers >= 1, null, { timeout: 30000 });
  const experts = await page.evaluate(() => {
    const gd = document.getElementById('experts-chart');
    const rows = [...document.querySelectorAll('#experts-table tbody tr')].map(tr =>
      [...tr.querySelectorAll('td')].map(td => parseFloat(td.textContent)));
    return {
      traces: gd.data ? gd.data.length : 0,
      bars: [...gd.querySelectorAll('g.bars g.point path')].filter(p => (p.getAttribute('d') || '') !== 'M0,0Z').length,
      rows,
    };
  });
  log(`expert utilization: ${experts.traces} layers, ${experts.bars} bars, table ${JSON.stringify(experts.rows)}`);
  check(experts.traces >= 1 && experts.bars > 0, 'expert utilization is not drawn');
  check(experts.rows.length === experts.traces, 'the utilization table and chart disagree on the layers');
  for (const r of experts.rows) {
    const sum = r.reduce((a, b) => a + b, 0);
    check(r.length >= 2 && Math.abs(sum - 100) < 1.5, `a layer's expert shares do not sum to 100%: ${r}`);
  }

  // ---- 5. cancel it, resume it, cancel it again ------------------------------
  const stateOf = () => page.textContent(`#jobs-table tr[data-job="${job.id}"] td.state`);
  const waitEnded = () => page.waitForFunction(id => {
    const td = document.querySelector(`#jobs-table tr[data-job="${id}"] td.state`);
    return td && /^(cancelled|completed)$/.test(td.textContent);
  }, job.id, { timeout: 60000 });
  const cancelBtn = page.locator(`button[data-action="cancel:${job.id}"]`);
  if (await cancelBtn.count()) await cancelBtn.click();
  await waitEnded();
  let endState = await stateOf();
  log(`job ended: ${endState}`);
  const resumeBtn = page.locator(`button[data-action="resume:${job.id}"]`);
  if (endState === 'cancelled') {
    check(await resumeBtn.count() === 1, 'the cancelled job offers no Resume button');
  }
  if (await resumeBtn.count()) {
    const resumed = page.waitForResponse(r => r.url().endsWith(`/v1/jobs/${job.id}/resume`));
    await resumeBtn.click();
    const resumeRes = await resumed;
    check(resumeRes.ok(), `POST /v1/jobs/${job.id}/resume answered ${resumeRes.status()}`);
    await page.waitForFunction(id => {
      const tr = document.querySelector(`#jobs-table tr[data-job="${id}"]`);
      const st = tr ? tr.querySelector('td.state').textContent : '';
      return /^completed/.test(st) ||
        (/^(queued|running)/.test(st) && tr.querySelector(`button[data-action="cancel:${id}"]`));
    }, job.id, { timeout: 30000 });
    log(`job resumed: ${await stateOf()}`);
    if (await cancelBtn.count()) await cancelBtn.click();
    await waitEnded();
    endState = await stateOf();
    log(`job ended again: ${endState}`);
  }

  // ---- 6. inference with the routing trace (Enter submits) ------------------
  await page.selectOption('#infer-model', modelName);
  await page.fill('#infer-text', INFER_TEXT);
  const inferred = page.waitForResponse(r => r.url().endsWith('/v1/infer'));
  await page.press('#infer-text', 'Enter');
  const inferRes = await inferred;
  const answer = await inferRes.json();
  check(inferRes.status() === 200, `POST /v1/infer answered ${inferRes.status()}: ${JSON.stringify(answer)}`);
  if (inferRes.status() !== 200) throw new Error('the inference failed; the checks after it did not run');
  const sent = JSON.parse(inferRes.request().postData() || '{}');
  check(sent.trace === true && sent.text === INFER_TEXT, `the page sent ${JSON.stringify(sent)}`);
  await page.waitForFunction(() => window.moeDashboard.infers >= 1);
  const out = answer.outputs && answer.outputs[0] || {};
  const traceTokens = out.trace && out.trace.tokens || [];
  check(traceTokens.length > 0, 'the inference reply has no trace tokens');
  const nLayers = traceTokens.length ? traceTokens[0].layers.length : 0;
  const top = (tok, l) => {
    const L = tok.layers[l];
    let b = 0;
    for (let k = 1; k < L.experts.length; k++) if (L.weights[k] > L.weights[b]) b = k;
    return L.experts[b];
  };
  const chipsAt = () => page.evaluate(() => ({
    chips: [...document.querySelectorAll('#tokens .chip')].map(c => ({
      tok: c.querySelector('.tok').textContent, exp: c.querySelector('.exp').textContent,
      title: c.title, bg: getComputedStyle(c).backgroundColor, data: c.dataset.expert })),
    markup: document.querySelectorAll('#tokens i, #infer-result i, #trace-table i').length,
    legend: [...document.querySelectorAll('#legend .swatch')].map(s => s.textContent),
    candidates: document.querySelectorAll('#infer-result tr.candidate').length,
    prediction: document.querySelector('#infer-result .prediction')?.textContent,
  }));
  for (const layer of [...new Set([0, nLayers - 1])]) {
    if (layer < 0) continue;
    await page.selectOption('#trace-layer', String(layer));
    const v = await chipsAt();
    check(v.chips.length === traceTokens.length, `layer ${layer}: ${v.chips.length} chips for ${traceTokens.length} tokens`);
    check(v.chips.every((c, t) => traceTokens[t] && c.exp === `E${top(traceTokens[t], layer)}`),
          `layer ${layer}: a chip does not show its token's top expert`);
    check(v.chips.every((c, t) => traceTokens[t] && c.title.includes(`expert ${top(traceTokens[t], layer)} (`)),
          `layer ${layer}: a chip's title lacks its experts and weights`);
    const byExpert = new Map();
    for (const c of v.chips) {
      if (byExpert.has(c.exp)) check(byExpert.get(c.exp) === c.bg, `layer ${layer}: expert ${c.exp} has two colours`);
      byExpert.set(c.exp, c.bg);
    }
    check(new Set(byExpert.values()).size === byExpert.size, `layer ${layer}: two experts share a colour`);
    check(v.legend.length >= byExpert.size && v.chips.every(c => v.legend.includes(c.exp)),
          `layer ${layer}: the legend (${v.legend}) lacks a chip's expert`);
    check(v.markup === 0, 'text from the API was inserted as markup');
    if (layer === 0) {
      log(`inference: "${v.prediction}", ${v.chips.length} chips, ${v.candidates} candidates, legend ${v.legend.join(' ')}`);
      if (answer.task === 'lm') {
        check(v.candidates === (out.next || []).length && v.candidates > 0, 'the next-token candidates are not listed');
        check(traceTokens.map(t => t.text).join('') !== INFER_TEXT || v.chips.map(c => c.tok.replace(/␣/g, ' ')).join('') === INFER_TEXT,
              'the chips do not spell the input text');
      }
      check(v.prediction && v.prediction.length > 0, 'no prediction shown');
    }
  }

  // ---- 7. generation (LMs) ----------------------------------------------------
  if (await page.isVisible('#generate')) {
    await page.fill('#gen-max', '12');
    const gen = page.waitForResponse(r => r.url().endsWith('/v1/generate'));
    await page.press('#gen-prompt', 'Enter');
    const genRes = await gen;
    const g = await genRes.json();
    if (!check(genRes.status() === 200, `POST /v1/generate answered ${genRes.status()}: ${JSON.stringify(g)}`)) {
      throw new Error('the generation failed; the checks after it did not run');
    }
    await page.locator('#gen-result .completion').waitFor();
    const shown = await page.textContent('#gen-result .completion');
    check(shown === g.text, 'the generated text is not shown as sent');
    log(`generated ${(g.tokens || []).length} tokens`);
  }

  // ---- 8. WCAG 2.1 AA contrast over everything visible ------------------------
  const contrast = await page.evaluate(() => {
    const parse = c => {
      const m = c && c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    };
    const over = (top, bottom) => {
      const a = top.a;
      return { r: top.r * a + bottom.r * (1 - a), g: top.g * a + bottom.g * (1 - a),
               b: top.b * a + bottom.b * (1 - a), a: 1 };
    };
    const lum = c => {
      const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    };
    const ratio = (x, y) => { const a = lum(x), b = lum(y); return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
    // background behind node: its and its ancestors' background colours,
    // alpha blended from the canvas (white) up
    const backdrop = node => {
      const layers = [];
      for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
        const c = parse(getComputedStyle(n).backgroundColor);
        if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
      }
      let bg = { r: 255, g: 255, b: 255, a: 1 };
      for (const l of layers.reverse()) bg = over(l, bg);
      return bg;
    };
    const opacity = node => {
      let o = 1;
      for (let n = node; n && n.nodeType === 1; n = n.parentElement) o *= parseFloat(getComputedStyle(n).opacity);
      return o;
    };
    const visible = e => {
      if (!e.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
      const r = e.getBoundingClientRect();
      return r.width > 1 && r.height > 1;
    };
    const name = e => {
      let s = e.tagName.toLowerCase();
      if (e.id) s += '#' + e.id;
      else if (typeof e.className === 'string' && e.className) s += '.' + e.className.split(' ').join('.');
      const p = e.closest('[id]');
      if (p && p !== e) s = `#${p.id} ${s}`;
      return s;
    };
    const bad = [];
    let checked = 0, chips = 0, svgText = 0;
    const textCheck = (e, fgColour, text) => {
      const s = getComputedStyle(e);
      const bg = backdrop(e.closest('svg') ? e.closest('svg').parentElement : e);
      let fg = parse(fgColour);
      if (!fg) return;
      fg = over({ ...fg, a: fg.a * opacity(e) }, bg);
      const size = parseFloat(s.fontSize), weight = parseInt(s.fontWeight, 10) || 400;
      const large = size >= 24 || (size >= 18.66 && weight >= 700);
      const need = large ? 3 : 4.5;
      const r = ratio(fg, bg);
      checked++;
      if (e.closest('.chip')) chips++;
      if (r < need) bad.push(`${name(e)} "${text.trim().slice(0, 30)}": ${r.toFixed(2)}:1 < ${need}:1 (${fgColour} on rgb(${Math.round(bg.r)},${Math.round(bg.g)},${Math.round(bg.b)}))`);
    };
    for (const e of document.body.querySelectorAll('*')) {
      if (/^(script|style|option|title)$/i.test(e.tagName) || !visible(e)) continue;
      if (e.closest('svg')) {
        if (e.tagName.toLowerCase() === 'text' && e.textContent.trim()) {
          svgText++;
          textCheck(e, getComputedStyle(e).fill, e.textContent);
        }
        continue;
      }
      const own = [...e.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('');
      if (own.trim()) textCheck(e, getComputedStyle(e).color, own);
      if (/^(input|select|textarea)$/i.test(e.tagName)) {
        if (e.value) textCheck(e, getComputedStyle(e).color, e.value);
        else if (e.placeholder) textCheck(e, getComputedStyle(e, '::placeholder').color, e.placeholder);
      }
      // UI components: the border (or the fill) against what surrounds them, >= 3:1
      if (/^(input|select|textarea|button)$/i.test(e.tagName) && !e.disabled) {
        const s = getComputedStyle(e);
        const around = backdrop(e.parentElement);
        const border = parse(s.borderTopColor);
        const bw = parseFloat(s.borderTopWidth);
        const fill = over(parse(s.backgroundColor) || { r: 0, g: 0, b: 0, a: 0 }, around);
        const rb = border && bw > 0 ? ratio(over(border, fill), around) : 0;
        const rf = ratio(fill, around);
        if (Math.max(rb, rf) < 3) bad.push(`${name(e)}: component edge ${Math.max(rb, rf).toFixed(2)}:1 < 3:1`);
      }
    }
    return { bad, checked, chips, svgText };
  });
  log(`contrast: ${contrast.checked} texts checked (${contrast.chips} in token chips, ${contrast.svgText} in charts)`);
  check(contrast.chips > 0, 'the contrast check saw no token chips');
  check(contrast.bad.length === 0, `contrast below WCAG 2.1 AA (${contrast.bad.length}):\n  ${contrast.bad.slice(0, 40).join('\n  ')}` +
        (contrast.bad.length > 40 ? `\n  … and ${contrast.bad.length - 40} more` : ''));

} catch (e) {
  failures.push(`${e.message.split('\n')[0]}`);
} finally {
  check(errors.length === 0, `errors in the page:\n  ${errors.join('\n  ')}`);
  // the screenshot also when a check failed: it shows what the page looked like
  try {
    const page = context.pages()[0];
    fs.mkdirSync(path.dirname(path.resolve(screenshotPath)), { recursive: true });
    await page.screenshot({ path: screenshotPath, fullPage: true });
    log(`screenshot: ${path.resolve(screenshotPath)}`);
  } catch (e) {
    failures.push(`no screenshot: ${e.message.split('\n')[0]}`);
  }
  await browser.close();
  clearTimeout(watchdog);
}
if (failures.length) {
  for (const f of failures) console.error(`FAIL: ${f}`);
  process.exit(1);
}
console.log('dashboard: every check passed');
