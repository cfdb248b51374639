/* moe serve dashboard: the models, the training jobs (start, follow, cancel,
 * resume) and inference with the routing trace, over the /v1 API
 * (docs/serve.md). Everything the API returns is put on the page with
 * textContent, never as markup. The API key lives in sessionStorage only.
 * window.moeDashboard exposes the state the browser test waits on. */
(function () {
  'use strict';

  const KEY_STORE = 'moe-serve-key';
  const POLL_MS = 1000;
  const ACTIVE = {queued: true, running: true};
  /* Expert colours: distinct hues; the chip text (black or white) is chosen
   * per colour for >= 4.5:1 and the chips also print the expert number. */
  const EXPERT_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
    '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896',
    '#c5b0d5', '#c49c94'];
  /* Lines and bars on white: each >= 3:1 (non-text contrast). */
  const SERIES_COLOURS = ['#1d4ed8', '#b45309', '#15803d', '#9333ea', '#be123c', '#0e7490',
    '#4d7c0f', '#a16207'];
  const TEXT = '#1a1d21';

  const state = {
    key: '',
    models: [],
    jobs: [],
    selected: null, /* job id shown in the detail view */
    job: null,      /* its latest GET /v1/jobs/{id} */
    pollTimer: 0,
    polling: false,
    refused: false, /* the server refused the key: stop polling */
    trace: null,    /* the last inference's trace tokens */
  };
  const dash = (window.moeDashboard = {polls: 0, lossPoints: 0, expertLayers: 0, infers: 0});

  const $ = id => document.getElementById(id);

  /* ---- small helpers ----------------------------------------------------- */
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function isNum(v) { return typeof v === 'number' && isFinite(v); }
  function fmt(v, digits) { return isNum(v) ? v.toFixed(digits === undefined ? 4 : digits) : '–'; }
  function fmtCount(v) {
    if (!isNum(v)) return '–';
    if (v >= 1e9) return (v / 1e9).toPrecision(3) + ' G';
    if (v >= 1e6) return (v / 1e6).toPrecision(3) + ' M';
    if (v >= 1e3) return (v / 1e3).toPrecision(3) + ' k';
    return String(v);
  }
  function pct(v) { return isNum(v) ? (100 * v).toFixed(1) + '%' : '–'; }
  /* A token's text with whitespace made visible (space as ␣, "\n" as ↵,
   * tab as →) so a chip is never blank. */
  function showToken(t) {
    return String(t === undefined || t === null ? '' : t).replace(/ /g, '␣').replace(/\n/g, '↵')
      .replace(/\t/g, '→');
  }

  /* WCAG relative luminance and the better of black/white text for bg. */
  function luminance(hex) {
    const v = parseInt(hex.slice(1), 16);
    const ch = [(v >> 16) & 255, (v >> 8) & 255, v & 255].map(c => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
  }
  function textOn(hex) {
    const l = luminance(hex);
    return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? '#000000' : '#ffffff';
  }
  function expertColour(e) { return EXPERT_COLOURS[e % EXPERT_COLOURS.length]; }

  function setStatus(msg) { $('status').textContent = msg; }
  function clearErrors() { clear($('errors')); }
  function showError(what, err) {
    const box = el('div', {class: 'error'});
    box.appendChild(el('strong', null, what + ': '));
    const parts = [];
    if (err.status) parts.push('HTTP ' + err.status);
    if (err.field) parts.push('field "' + err.field + '"');
    box.appendChild(el('span', null, (parts.length ? parts.join(', ') + ': ' : '') + err.message));
    const errors = $('errors');
    errors.appendChild(box);
    while (errors.childNodes.length > 3) errors.removeChild(errors.firstChild);
  }

  /* ---- the API ------------------------------------------------------------ */
  class ApiError extends Error {
    constructor(status, field, message) {
      super(message);
      this.status = status;
      this.field = field || '';
    }
  }
  async function api(method, path, body) {
    const headers = {Accept: 'application/json'};
    if (state.key) headers.Authorization = 'Bearer ' + state.key;
    const init = {method: method, headers: headers, cache: 'no-store'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, '', 'the server did not answer (' + e.message + ')');
    }
    let json = null;
    try {
      json = await res.json();
    } catch (e) {
      json = null;
    }
    if (!res.ok) {
      const err = json && json.error ? json.error : {};
      throw new ApiError(err.status || res.status, err.field,
                         err.message || res.statusText || 'request failed');
    }
    if (json === null) throw new ApiError(res.status, '', 'the reply is not JSON');
    return json;
  }
  /* Runs an API call for a user action, showing its error if it fails. */
  async function attempt(what, fn) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      showError(what, e);
      setStatus(what + ' failed.');
      if (e.status === 401) setStatus('The API key was refused: enter a valid key.');
      return undefined;
    }
  }

  /* ---- API key ------------------------------------------------------------ */
  function loadKey() {
    try {
      state.key = sessionStorage.getItem(KEY_STORE) || '';
    } catch (e) {
      state.key = '';
    }
    $('api-key').value = state.key;
  }
  $('key-form').addEventListener('submit', ev => {
    ev.preventDefault();
    state.key = $('api-key').value.trim();
    state.refused = false;
    try {
      if (state.key) sessionStorage.setItem(KEY_STORE, state.key);
      else sessionStorage.removeItem(KEY_STORE);
    } catch (e) { /* storage off: the key lives in this page only */ }
    clearErrors();
    refreshAll();
  });
  $('key-forget').addEventListener('click', () => {
    state.key = '';
    $('api-key').value = '';
    try { sessionStorage.removeItem(KEY_STORE); } catch (e) { /* nothing stored */ }
    setStatus('API key forgotten.');
  });

  async function refreshAll() {
    if (!state.key) {
      setStatus('Enter an API key to use the server.');
      return;
    }
    setStatus('Loading models and jobs…');
    const okModels = await attempt('Listing models', loadModels);
    const okJobs = await attempt('Listing jobs', loadJobs);
    if (okModels && okJobs) {
      setStatus(state.models.length + ' model(s), ' + state.jobs.length + ' job(s).');
    }
    schedulePoll();
  }

  /* ---- models ------------------------------------------------------------- */
  async function loadModels() {
    const r = await api('GET', '/v1/models');
    state.models = Array.isArray(r.models) ? r.models : [];
    renderModels();
    return true;
  }
  function renderModels() {
    const tbody = $('models-table').querySelector('tbody');
    clear(tbody);
    for (const m of state.models) {
      const tr = el('tr');
      tr.appendChild(el('th', {scope: 'row'}, m.name));
      tr.appendChild(el('td', null, m.family));
      tr.appendChild(el('td', null, m.task));
      tr.appendChild(el('td', null, m.input));
      tr.appendChild(el('td', {class: 'num'}, fmtCount(m.params)));
      tr.appendChild(el('td', {class: 'num'}, fmtCount(isNum(m.active_params) ? m.active_params : m.params)));
      tr.appendChild(el('td', null, isNum(m.n_experts) && m.n_experts > 0
        ? m.n_experts + ' (top-' + (isNum(m.top_k) ? m.top_k : '?') + ')' : 'none'));
      tbody.appendChild(tr);
    }
    $('models-table').hidden = state.models.length === 0;
    $('models-empty').textContent = 'No models are served.';
    $('models-empty').hidden = state.models.length > 0;

    const select = $('infer-model');
    const previous = select.value;
    clear(select);
    for (const m of state.models) select.appendChild(el('option', {value: m.name}, m.name + ' (' + m.task + ')'));
    if (state.models.some(m => m.name === previous)) select.value = previous;
    modelChanged();
  }
  function currentModel() { return state.models.find(m => m.name === $('infer-model').value); }
  function modelChanged() {
    const m = currentModel();
    const rows = m && m.input === 'rows';
    $('infer-text-label').textContent = rows ? 'Feature rows' : 'Text';
    $('infer-text-help').textContent = rows
      ? 'Numbers separated by commas, rows by semicolons (' + (m.n_features || '?') +
        ' per row). Press Enter to run.'
      : 'Press Enter to run.';
    if (rows && /[^0-9eE.,;\s+-]/.test($('infer-text').value)) {
      $('infer-text').value = new Array(m.n_features || 1).fill('0').join(', ');
    }
    $('generate').hidden = !(m && m.task === 'lm');
  }
  $('infer-model').addEventListener('change', () => {
    /* the last answer belongs to the previous model */
    clear($('infer-result'));
    clear($('gen-result'));
    showTrace(null);
    modelChanged();
  });

  /* ---- jobs --------------------------------------------------------------- */
  async function loadJobs() {
    const r = await api('GET', '/v1/jobs');
    state.jobs = Array.isArray(r.jobs) ? r.jobs : [];
    renderJobs();
    return true;
  }
  function renderJobs() {
    const tbody = $('jobs-table').querySelector('tbody');
    /* keep focus on the same button across a re-render */
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.action : undefined;
    clear(tbody);
    const jobs = state.jobs.slice().sort((a, b) => String(b.id).localeCompare(String(a.id)));
    for (const j of jobs) {
      const tr = el('tr', {'data-job': j.id});
      if (j.id === state.selected) tr.className = 'selected';
      const name = j.name && j.name !== j.id ? j.name + ' · ' + j.id : j.id;
      tr.appendChild(el('th', {scope: 'row'}, name));
      tr.appendChild(el('td', {class: 'state state-' + j.state}, j.state));
      if (j.stopping) tr.lastChild.appendChild(el('span', {class: 'help'}, ' (stopping)'));
      const p = j.progress || {};
      const td = el('td');
      const total = isNum(p.total_steps) && p.total_steps > 0 ? p.total_steps : 0;
      const step = isNum(p.step) ? p.step : 0;
      const bar = el('progress', {max: total || 1, value: total ? Math.min(step, total) : 0,
                                  'aria-label': 'Progress of ' + j.id});
      td.appendChild(bar);
      td.appendChild(el('span', {class: 'progress-text'},
                        total ? step + ' / ' + total + ' steps' : step + ' steps'));
      tr.appendChild(td);
      const m = j.metrics || {};
      tr.appendChild(el('td', {class: 'num'}, fmt(m.train_loss)));
      const actions = el('td');
      actions.appendChild(button('View', 'view:' + j.id, 'secondary', () => selectJob(j.id),
                                 'View job ' + j.id));
      if (ACTIVE[j.state] && !j.stopping) {
        actions.appendChild(button('Cancel', 'cancel:' + j.id, 'danger', () => cancelJob(j.id),
                                   'Cancel job ' + j.id));
      }
      if (j.resumable && !ACTIVE[j.state]) {
        actions.appendChild(button('Resume', 'resume:' + j.id, '', () => resumeJob(j.id),
                                   'Resume job ' + j.id));
      }
      tr.appendChild(actions);
      tbody.appendChild(tr);
    }
    $('jobs-table').hidden = jobs.length === 0;
    $('jobs-empty').hidden = jobs.length > 0;
    if (focused) {
      const again = tbody.querySelector('[data-action="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }
  function button(text, action, cls, onClick, label) {
    const b = el('button', {type: 'button', class: cls || null, 'data-action': action,
                            'aria-label': label}, text);
    b.addEventListener('click', onClick);
    return b;
  }
  function anyActive() { return state.jobs.some(j => ACTIVE[j.state]); }

  function parseOverrides(text) {
    const set = {};
    for (const part of text.split(/[\s,]+/)) {
      if (!part) continue;
      const eq = part.indexOf('=');
      if (eq <= 0) throw new ApiError(0, 'set', 'write overrides as key=value ("' + part + '")');
      const k = part.slice(0, eq);
      const raw = part.slice(eq + 1);
      let v = raw;
      if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) v = Number(raw);
      else if (raw === 'true' || raw === 'false') v = raw === 'true';
      set[k] = v;
    }
    return set;
  }
  $('train-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    clearErrors();
    const body = {config: $('train-config').value.trim()};
    try {
      const set = parseOverrides($('train-set').value);
      if (Object.keys(set).length) body.set = set;
    } catch (e) {
      showError('Starting a job', e);
      return;
    }
    const name = $('train-name').value.trim();
    if (name) body.name = name;
    $('train-start').disabled = true;
    setStatus('Starting a job from ' + body.config + '…');
    const job = await attempt('Starting a job', () => api('POST', '/v1/train', body));
    $('train-start').disabled = false;
    if (!job) return;
    setStatus('Job ' + job.id + ' is ' + job.state + '.');
    state.jobs = state.jobs.filter(j => j.id !== job.id).concat([job]);
    renderJobs();
    selectJob(job.id);
  });

  async function cancelJob(id) {
    clearErrors();
    const job = await attempt('Cancelling ' + id, () => api('DELETE', '/v1/jobs/' + encodeURIComponent(id)));
    if (job) setStatus('Job ' + id + ': cancel requested (' + job.state + ').');
    await pollOnce();
    schedulePoll(); /* until it has stopped */
  }
  async function resumeJob(id) {
    clearErrors();
    const job = await attempt('Resuming ' + id,
                              () => api('POST', '/v1/jobs/' + encodeURIComponent(id) + '/resume'));
    if (job) setStatus('Job ' + id + ' resumed (' + job.state + ').');
    await pollOnce();
    schedulePoll(); /* the poll loop stopped when every job had ended */
  }

  async function selectJob(id) {
    state.selected = id;
    state.job = null;
    $('job').hidden = false;
    $('job-h').textContent = 'Job ' + id;
    renderJobs();
    await attempt('Reading job ' + id, loadJob);
    schedulePoll();
  }
  async function loadJob() {
    if (!state.selected) return true;
    state.job = await api('GET', '/v1/jobs/' + encodeURIComponent(state.selected));
    renderJob();
    return true;
  }

  /* Polls the job list and the selected job while anything runs. */
  async function pollOnce() {
    if (!state.key || state.polling) return;
    state.polling = true;
    try {
      const before = new Map(state.jobs.map(j => [j.id, j.state]));
      await loadJobs();
      /* announce state changes in the polite status region */
      const changed = state.jobs.filter(j => before.has(j.id) && before.get(j.id) !== j.state);
      if (changed.length) setStatus(changed.map(j => 'Job ' + j.id + ' is ' + j.state + '.').join(' '));
      const sel = state.jobs.find(j => j.id === state.selected);
      if (state.selected && (!state.job || ACTIVE[state.job.state] || (sel && sel.state !== state.job.state))) {
        await loadJob();
      }
      dash.polls++;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      showError('Polling jobs', e);
      if (e.status === 401 || e.status === 403) state.refused = true; /* until a new key */
    } finally {
      state.polling = false;
    }
  }
  function schedulePoll() {
    if (state.pollTimer) return;
    const active = anyActive() || (state.job && ACTIVE[state.job.state]);
    if (!active) return;
    state.pollTimer = setTimeout(async () => {
      state.pollTimer = 0;
      await pollOnce();
      if (state.key && !state.refused) schedulePoll();
    }, POLL_MS);
  }

  /* ---- job detail: facts, loss curve, expert utilization ------------------ */
  function fact(dl, term, value) {
    const d = el('div');
    d.appendChild(el('dt', null, term));
    d.appendChild(el('dd', null, value));
    dl.appendChild(d);
  }
  function renderJob() {
    const j = state.job;
    if (!j) return;
    const p = j.progress || {};
    const m = j.metrics || {};
    const dl = $('job-facts');
    clear(dl);
    fact(dl, 'State', j.state + (j.stopping ? ' (stopping)' : '') + (j.resumable ? ' (resumable)' : ''));
    if (j.stop_reason) fact(dl, 'Stopped because', j.stop_reason);
    fact(dl, 'Step', (isNum(p.step) ? p.step : 0) + (isNum(p.total_steps) ? ' / ' + p.total_steps : ''));
    fact(dl, 'Train loss', fmt(m.train_loss));
    fact(dl, 'Validation loss', fmt(m.val_loss));
    if (isNum(m.val_accuracy)) fact(dl, 'Validation accuracy', pct(m.val_accuracy));
    fact(dl, 'Learning rate', isNum(m.lr) ? m.lr.toExponential(2) : '–');
    if (isNum(m.tokens_per_s)) fact(dl, 'Tokens/s', fmtCount(Math.round(m.tokens_per_s)));
    fact(dl, 'Elapsed', isNum(p.elapsed_s) ? p.elapsed_s.toFixed(1) + ' s' : '–');
    if (ACTIVE[j.state]) fact(dl, 'Time left', isNum(p.eta_s) ? p.eta_s.toFixed(1) + ' s' : '–');
    if (j.key_id) fact(dl, 'Started by key', j.key_id);
    $('job-error').hidden = !j.error;
    $('job-error').textContent = j.error ? 'Error: ' + j.error : '';
    drawLoss(j);
    drawExperts(j);
  }

  const PLOT_CONFIG = {displayModeBar: false, responsive: true, displaylogo: false};
  function baseLayout(title, xTitle, yTitle) {
    return {
      title: {text: title, font: {size: 15, color: TEXT}},
      font: {color: TEXT},
      paper_bgcolor: '#ffffff', plot_bgcolor: '#ffffff',
      margin: {l: 56, r: 16, t: 40, b: 48},
      xaxis: {title: {text: xTitle}, gridcolor: '#e5e7eb', linecolor: '#6b7280', zeroline: false},
      yaxis: {title: {text: yTitle}, gridcolor: '#e5e7eb', linecolor: '#6b7280', zeroline: false},
      legend: {orientation: 'h', y: -0.25},
    };
  }
  function plot(id, traces, layout) {
    if (!window.Plotly) return;
    window.Plotly.react($(id), traces, layout, PLOT_CONFIG);
  }
  function drawLoss(j) {
    const hist = Array.isArray(j.history) ? j.history : [];
    const train = {x: [], y: []}, val = {x: [], y: []};
    for (const h of hist) {
      if (!isNum(h.step)) continue;
      const loss = isNum(h.loss) ? h.loss : h.train_loss;
      if (isNum(loss)) { train.x.push(h.step); train.y.push(loss); }
      if (isNum(h.val_loss)) { val.x.push(h.step); val.y.push(h.val_loss); }
    }
    const traces = [{type: 'scatter', mode: 'lines', name: 'train loss', x: train.x, y: train.y,
                     line: {color: SERIES_COLOURS[0], width: 2}}];
    if (val.x.length) {
      traces.push({type: 'scatter', mode: 'lines+markers', name: 'validation loss', x: val.x, y: val.y,
                   line: {color: SERIES_COLOURS[1], width: 2, dash: 'dash'},
                   marker: {symbol: 'square', size: 7}});
    }
    plot('loss-chart', traces, baseLayout('Loss', 'step', 'loss'));
    dash.lossPoints = train.x.length;
    const last = train.y.length ? train.y[train.y.length - 1] : undefined;
    $('loss-chart').setAttribute('aria-label', 'Loss curve: ' + train.x.length + ' train points' +
      (isNum(last) ? ', latest ' + last.toFixed(4) : '') +
      (val.x.length ? ', latest validation ' + val.y[val.y.length - 1].toFixed(4) : ''));
    $('loss-caption').textContent = 'Train loss (solid) and validation loss (dashed, squares) by step: ' +
      train.x.length + ' train and ' + val.x.length + ' validation points.';
  }
  function drawExperts(j) {
    const layers = j.experts && Array.isArray(j.experts.layers) ? j.experts.layers : [];
    /* the model's layer numbers when the job gives them (MoE may skip layers) */
    const index = j.experts && Array.isArray(j.experts.layer_index) ? j.experts.layer_index : [];
    const layerName = l => String(isNum(index[l]) ? index[l] : l);
    const nExp = layers.reduce((n, l) => Math.max(n, Array.isArray(l) ? l.length : 0), 0);
    const names = Array.from({length: nExp}, (_, e) => 'E' + e);
    const traces = layers.map((shares, l) => ({
      type: 'bar', name: 'layer ' + layerName(l), x: names, y: shares,
      marker: {color: SERIES_COLOURS[l % SERIES_COLOURS.length], line: {color: TEXT, width: 1}},
      hovertemplate: 'layer ' + layerName(l) + ', %{x}: %{y:.1%}<extra></extra>',
    }));
    const layout = baseLayout('Expert utilization', 'expert', 'share of tokens');
    layout.barmode = 'group';
    layout.yaxis.tickformat = '.0%';
    layout.yaxis.rangemode = 'tozero';
    plot('experts-chart', traces, layout);
    dash.expertLayers = layers.length;
    $('experts-chart').setAttribute('aria-label', layers.length
      ? 'Expert utilization of ' + layers.length + ' MoE layers; the table below has the numbers'
      : 'Expert utilization: no data yet');

    /* the same numbers as a table */
    const table = $('experts-table');
    const thead = table.querySelector('thead'), tbody = table.querySelector('tbody');
    clear(thead);
    clear(tbody);
    table.hidden = layers.length === 0;
    if (!layers.length) return;
    const hr = el('tr');
    hr.appendChild(el('th', {scope: 'col'}, 'MoE layer'));
    names.forEach(n => hr.appendChild(el('th', {scope: 'col', class: 'num'}, n)));
    thead.appendChild(hr);
    layers.forEach((shares, l) => {
      const tr = el('tr');
      tr.appendChild(el('th', {scope: 'row'}, layerName(l)));
      for (let e = 0; e < nExp; e++) tr.appendChild(el('td', {class: 'num'}, pct(shares[e])));
      tbody.appendChild(tr);
    });
  }

  /* ---- inference ------------------------------------------------------------ */
  function parseRows(text) {
    const rows = text.split(';').map(r => r.trim()).filter(r => r.length).map(r =>
      r.split(/[\s,]+/).filter(v => v.length).map(Number));
    if (!rows.length || rows.some(r => !r.length || r.some(v => !isFinite(v)))) {
      throw new ApiError(0, 'rows', 'write numbers separated by commas, rows by semicolons');
    }
    return rows;
  }
  $('infer-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    clearErrors();
    const m = currentModel();
    if (!m) {
      showError('Inference', new ApiError(0, 'model', 'no model chosen (enter an API key first)'));
      return;
    }
    const body = {model: m.name};
    const text = $('infer-text').value;
    if (m.input === 'rows') {
      try {
        body.rows = parseRows(text);
      } catch (e) {
        showError('Inference', e);
        return;
      }
    } else {
      body.text = text;
      body.trace = true;
      if (m.task === 'lm') body.top = 5;
    }
    $('infer-run').disabled = true;
    setStatus('Running ' + m.name + '…');
    const r = await attempt('Inference', () => api('POST', '/v1/infer', body));
    $('infer-run').disabled = false;
    if (!r) return;
    renderPrediction(m, r, body.rows);
    dash.infers++;
    setStatus('Prediction from ' + m.name + ' ready.');
  });

  function probsTable(caption, probs, names) {
    const order = probs.map((p, c) => c).sort((a, b) => probs[b] - probs[a]);
    const t = el('table');
    t.appendChild(el('caption', null, caption));
    const head = el('thead');
    const hr = el('tr');
    hr.appendChild(el('th', {scope: 'col'}, 'Class'));
    hr.appendChild(el('th', {scope: 'col', class: 'num'}, 'Probability'));
    head.appendChild(hr);
    t.appendChild(head);
    const body = el('tbody');
    for (const c of order) {
      const tr = el('tr');
      tr.appendChild(el('td', null, names && names[c] !== undefined ? names[c] + ' (' + c + ')' : String(c)));
      tr.appendChild(el('td', {class: 'num'}, pct(probs[c])));
      body.appendChild(tr);
    }
    t.appendChild(body);
    return t;
  }

  function renderPrediction(model, r, rows) {
    const body = {rows: rows};
    const out = $('infer-result');
    clear(out);
    const outputs = Array.isArray(r.outputs) ? r.outputs : [];
    outputs.forEach((o, i) => {
      const box = el('div', {class: 'result'});
      box.appendChild(el('h3', null, outputs.length > 1 ? 'Input ' + (i + 1) : 'Prediction'));
      if (r.task === 'lm' || Array.isArray(o.next)) {
        box.appendChild(el('p', {class: 'prediction'}, 'Loss ' + (isNum(o.loss) ? o.loss.toFixed(4) : '–') +
          ' over ' + (isNum(o.n_tokens) ? o.n_tokens : '?') + ' tokens'));
        const t = el('table');
        t.appendChild(el('caption', null, 'Next-token candidates'));
        const head = el('thead');
        const hr = el('tr');
        ['Token', 'Id', 'Probability'].forEach((h, k) => hr.appendChild(
          el('th', {scope: 'col', class: k ? 'num' : null}, h)));
        head.appendChild(hr);
        t.appendChild(head);
        const body = el('tbody');
        for (const n of o.next || []) {
          const tr = el('tr', {class: 'candidate'});
          tr.appendChild(el('td', null, JSON.stringify(String(n.text))));
          tr.appendChild(el('td', {class: 'num'}, n.id));
          tr.appendChild(el('td', {class: 'num'}, pct(n.prob)));
          body.appendChild(tr);
        }
        t.appendChild(body);
        box.appendChild(t);
      } else if (Array.isArray(o.probs)) {
        const names = model.class_names;
        const label = o.label !== undefined ? o.label
          : (names && names[o.class] !== undefined ? names[o.class] : 'class ' + o.class);
        box.appendChild(el('p', {class: 'prediction'}, 'Predicted: ' + label +
          (isNum(o.class) ? ' (class ' + o.class + ', ' + pct(o.probs[o.class]) + ')' : '')));
        if (rows && rows[i]) box.appendChild(el('p', {class: 'help'}, 'Row: ' + rows[i].join(', ')));
        box.appendChild(probsTable(r.task === 'distribution' ? 'Predicted distribution' : 'Class probabilities',
                                   o.probs, names));
      } else {
        /* a reply shape this page does not know: show it as text */
        const rest = Object.assign({}, o);
        delete rest.trace;
        box.appendChild(el('pre', {class: 'generated'}, JSON.stringify(rest, null, 2)));
      }
      out.appendChild(box);
    });
    if (isNum(r.batch_size)) {
      out.appendChild(el('p', {class: 'help'}, 'Served in a batch of ' + r.batch_size + ' request(s); ' +
        (r.usage && isNum(r.usage.tokens) ? r.usage.tokens + (body.rows ? ' row(s).' : ' tokens.') : '')));
    }
    const first = outputs[0];
    showTrace(first && first.trace ? first.trace.tokens : null);
  }

  /* ---- routing trace: token chips coloured by their top expert ------------- */
  function topExpert(layer) {
    if (!layer || !Array.isArray(layer.experts) || !layer.experts.length) return -1;
    const w = Array.isArray(layer.weights) ? layer.weights : [];
    let best = 0;
    for (let k = 1; k < layer.experts.length; k++) if ((w[k] || 0) > (w[best] || 0)) best = k;
    return layer.experts[best];
  }
  function routingText(layer) {
    if (!layer || !Array.isArray(layer.experts)) return 'no routing';
    const w = layer.weights || [];
    return layer.experts.map((e, k) => 'expert ' + e + ' (' + (isNum(w[k]) ? w[k].toFixed(2) : '?') + ')')
      .join(', ') + (layer.fallback ? ', fallback' : '');
  }
  function showTrace(tokens) {
    state.trace = Array.isArray(tokens) && tokens.length ? tokens : null;
    $('trace').hidden = !state.trace;
    if (!state.trace) return;
    const nLayers = state.trace.reduce((n, t) => Math.max(n, (t.layers || []).length), 0);
    const select = $('trace-layer');
    const previous = select.value;
    clear(select);
    for (let i = 0; i < nLayers; i++) {
      const layer = (state.trace[0].layers || [])[i];
      const name = layer && isNum(layer.layer) ? layer.layer : i;
      select.appendChild(el('option', {value: String(i)}, 'MoE layer ' + name));
    }
    if (previous && Number(previous) < nLayers) select.value = previous;
    drawChips();
    drawTraceTable();
  }
  function drawChips() {
    const tokens = state.trace;
    if (!tokens) return;
    const li = Number($('trace-layer').value || 0);
    const box = $('tokens');
    clear(box);
    const used = new Set();
    let maxExpert = 0;
    for (const t of tokens) {
      const layer = (t.layers || [])[li];
      const e = topExpert(layer);
      const chip = el('span', {class: 'chip', 'data-expert': e});
      const text = routingText(layer);
      chip.title = 'token ' + JSON.stringify(String(t.text)) + ' (id ' + t.id + '): ' + text;
      if (e >= 0) {
        const bg = expertColour(e);
        chip.style.backgroundColor = bg;
        chip.style.color = textOn(bg);
        used.add(e);
        maxExpert = Math.max(maxExpert, e);
      } else {
        chip.style.backgroundColor = '#ffffff';
        chip.style.color = TEXT;
      }
      chip.appendChild(el('span', {class: 'tok'}, showToken(t.text)));
      chip.appendChild(el('span', {class: 'exp'}, e >= 0 ? 'E' + e : '–'));
      box.appendChild(chip);
    }
    const model = currentModel();
    const nExp = model && isNum(model.n_experts) && model.n_experts > 0 ? model.n_experts : maxExpert + 1;
    const legend = $('legend');
    clear(legend);
    for (let e = 0; e < nExp; e++) {
      const bg = expertColour(e);
      const item = el('li');
      const sw = el('span', {class: 'swatch'}, 'E' + e);
      sw.style.backgroundColor = bg;
      sw.style.color = textOn(bg);
      item.appendChild(sw);
      item.appendChild(el('span', null, 'expert ' + e + (used.has(e) ? '' : ' (unused here)')));
      legend.appendChild(item);
    }
  }
  function drawTraceTable() {
    const tbody = $('trace-table').querySelector('tbody');
    clear(tbody);
    state.trace.forEach((t, i) => {
      const tr = el('tr');
      tr.appendChild(el('td', {class: 'num'}, i));
      tr.appendChild(el('td', null, JSON.stringify(String(t.text))));
      tr.appendChild(el('td', null, (t.layers || []).map((l, k) =>
        'layer ' + (isNum(l.layer) ? l.layer : k) + ': ' + routingText(l)).join('; ')));
      tbody.appendChild(tr);
    });
  }
  $('trace-layer').addEventListener('change', drawChips);

  /* ---- generation ------------------------------------------------------------ */
  $('gen-form').addEventListener('submit', async ev => {
    ev.preventDefault();
    clearErrors();
    const m = currentModel();
    if (!m) return;
    const body = {
      model: m.name,
      prompt: $('gen-prompt').value,
      max_tokens: Number($('gen-max').value) || 32,
      temperature: Number($('gen-temp').value),
      seed: Number($('gen-seed').value) || 0,
    };
    $('gen-run').disabled = true;
    setStatus('Generating with ' + m.name + '…');
    const r = await attempt('Generation', () => api('POST', '/v1/generate', body));
    $('gen-run').disabled = false;
    if (!r) return;
    const out = $('gen-result');
    clear(out);
    const box = el('div', {class: 'result'});
    box.appendChild(el('h3', null, 'Generated'));
    const p = el('p', {class: 'generated'});
    p.appendChild(el('span', {class: 'muted'}, body.prompt));
    p.appendChild(el('strong', {class: 'completion'}, r.text));
    box.appendChild(p);
    const u = r.usage || {};
    box.appendChild(el('p', {class: 'help'}, (isNum(u.completion_tokens) ? u.completion_tokens
      : (r.tokens || []).length) + ' tokens generated after ' +
      (isNum(u.prompt_tokens) ? u.prompt_tokens : '?') + ' prompt tokens (prompt in grey, generated in bold).'));
    out.appendChild(box);
    setStatus('Generated ' + (r.tokens || []).length + ' tokens.');
  });

  /* ---- start ----------------------------------------------------------------- */
  loadKey();
  refreshAll();
})();
