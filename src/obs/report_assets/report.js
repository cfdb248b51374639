/* moe report: draws the page of a training run with plotly.js from the JSON
 * block id="moe-data" (the run directory's files: data.train, data.eval,
 * data.alerts = metrics.jsonl lines by kind; data.routing, data.model_info,
 * data.results, data.config; data.analysis = analysis.jsonl lines; formats in
 * docs/monitoring.md and docs/families.md). Every plotly
 * chart is a div.chart[data-chart=<id>]; a section whose data is missing is
 * left out. Sets window.moeReport.done once every chart has rendered.
 * Embedded into the library at build time (cmake/embed.cmake). */
(function () {
  'use strict';

  const data = JSON.parse(document.getElementById('moe-data').textContent);
  const main = document.getElementById('report');
  const train = data.train || [];
  const evals = data.eval || [];
  const alerts = data.alerts || [];
  const routing = data.routing;
  const info = data.model_info || {};
  const results = data.results || {};
  const config = data.config || {};
  const modelCfg = config.model || {};
  const moeCfg = modelCfg.moe || {};
  const drawing = []; /* Plotly.newPlot promises */
  const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948',
    '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac', '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728',
    '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  const WARN = '#cf222e';

  window.moeReport = {done: false, charts: 0};

  /* ---- helpers ---------------------------------------------------------- */
  function colour(i) { return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length]; }
  function rgba(hex, alpha) {
    const v = parseInt(hex.slice(1), 16);
    return 'rgba(' + (v >> 16) + ',' + ((v >> 8) & 255) + ',' + (v & 255) + ',' + alpha + ')';
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function isNum(v) { return typeof v === 'number' && isFinite(v); }
  function first() {
    for (const v of arguments) if (v !== undefined && v !== null && v !== '') return v;
    return undefined;
  }
  /* Keys of label objects ("1", "3", ...) in numeric order. */
  function sortedKeys(keys) {
    return Array.from(keys).sort((a, b) => (Number(a) - Number(b)) || (a < b ? -1 : a > b));
  }
  /* Union of the label keys of a labelled metric over the train lines. */
  function labelKeys(metric) {
    const keys = new Set();
    for (const line of train) {
      const v = line[metric];
      if (v && typeof v === 'object') Object.keys(v).forEach(k => keys.add(k));
    }
    return sortedKeys(keys);
  }
  function has(lines, metric) { return lines.some(l => metric in l); }
  /* x = step, y = get(line) for the lines that carry it; null (NaN or Inf in
   * the file) stays null so plotly leaves a gap. */
  function series(lines, get) {
    const x = [], y = [];
    for (const line of lines) {
      const v = get(line);
      if (v === undefined) continue;
      x.push(line.step);
      y.push(isNum(v) ? v : null);
    }
    return {x: x, y: y};
  }
  function fmtInt(v) { return isNum(v) ? Math.round(v).toLocaleString('en-US') : undefined; }
  function fmtSI(v, unit) {
    if (!isNum(v)) return undefined;
    const steps = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
    for (const [scale, prefix] of steps)
      if (Math.abs(v) >= scale) return (v / scale).toPrecision(4) + ' ' + prefix + unit;
    return v.toPrecision(4) + ' ' + unit;
  }
  function fmtDuration(s) {
    if (!isNum(s)) return undefined;
    const t = Math.round(s);
    const h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60, sec = t % 60;
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + sec + 's (' + s.toFixed(2) + ' s)';
  }
  function nExperts() {
    const keys = new Set();
    for (const line of train) {
      const f = line.expert_fraction;
      if (f && typeof f === 'object')
        for (const l in f) if (f[l] && typeof f[l] === 'object') Object.keys(f[l]).forEach(k => keys.add(k));
    }
    return first(info.n_experts, moeCfg.n_experts, routing && routing.n_experts,
      keys.size || undefined);
  }

  const sections = [];
  function section(id, title, note) {
    const s = el('section', {id: id});
    s.appendChild(el('h2', {}, title));
    if (note) s.appendChild(el('p', {class: 'note'}, note));
    main.appendChild(s);
    sections.push([id, title]);
    return s;
  }
  function grid(parent) { const g = el('div', {class: 'grid'}); parent.appendChild(g); return g; }
  function layout(title, xTitle, yTitle, extra) {
    return Object.assign({
      title: {text: title, font: {size: 15}, x: 0.02, xanchor: 'left'},
      xaxis: {title: {text: xTitle}, automargin: true, zeroline: false},
      yaxis: {title: {text: yTitle}, automargin: true, zeroline: false},
      margin: {l: 64, r: 24, t: 48, b: 52},
      height: 360,
      hovermode: 'closest',
      paper_bgcolor: '#ffffff',
      plot_bgcolor: '#ffffff',
    }, extra || {});
  }
  function chart(parent, id, traces, lay) {
    const div = el('div', {class: 'chart', 'data-chart': id});
    parent.appendChild(div);
    drawing.push(Plotly.newPlot(div, traces, lay, {responsive: true, displaylogo: false}));
    window.moeReport.charts++;
  }
  /* One section builder failing must not take the others with it; the error
   * still reaches the console (and fails the browser test). */
  function build(name, fn) {
    try { fn(); } catch (e) { console.error('moe report: ' + name + ': ' + (e && e.stack || e)); }
  }

  /* Alerts as dotted vertical lines plus hoverable markers along the top (on
   * a hidden 0..1 axis so they sit there whatever the chart's scale). */
  function alertOverlay(lay, traces) {
    if (!alerts.length) return;
    lay.shapes = (lay.shapes || []).concat(alerts.map(a => ({
      type: 'line', xref: 'x', yref: 'paper', x0: a.step, x1: a.step, y0: 0, y1: 1,
      line: {color: WARN, width: 1, dash: 'dot'},
    })));
    lay.yaxis9 = {overlaying: 'y', range: [0, 1], visible: false, fixedrange: true};
    traces.push({
      x: alerts.map(a => a.step), y: alerts.map(() => 0.97), yaxis: 'y9',
      type: 'scatter', mode: 'markers', name: 'alerts',
      marker: {symbol: 'triangle-down', size: 11, color: WARN},
      text: alerts.map(a => 'step ' + a.step + ': ' + (a.message || a.alert)),
      hovertemplate: '%{text}<extra>' + 'alert' + '</extra>',
    });
  }

  /* ---- header and summary ------------------------------------------------ */
  const runName = first(results.name, info.name, config.name,
    String(data.run_dir || '').replace(/\/+$/, '').split('/').pop());
  document.title = 'moe report: ' + runName;
  const header = el('header', {class: 'run'});
  header.appendChild(el('h1', {}, 'moe report: ' + runName));
  const lastStep = train.length ? train[train.length - 1].step : undefined;
  header.appendChild(el('p', {}, 'run directory ' + data.run_dir + ' \u00b7 report written ' +
    data.generated_utc + (results.stop_reason ? ' \u00b7 finished (' + results.stop_reason + ')'
      : ' \u00b7 training' + (lastStep !== undefined ? ', step ' + lastStep : ''))));
  const toc = el('nav', {class: 'toc'});
  header.appendChild(toc);
  document.body.insertBefore(header, main);

  build('summary', function () {
    const rows = [];
    const add = (label, value) => { if (value !== undefined && value !== '') rows.push([label, String(value)]); };
    const nLayer = first(info.n_layer, modelCfg.n_layer);
    const moeLayers = info.moe_layers || (routing && routing.layers);
    add('run', runName);
    add('layers', nLayer !== undefined && Array.isArray(moeLayers)
      ? nLayer + ' (MoE in blocks ' + moeLayers.join(', ') + ')' : nLayer);
    add('d_model', first(info.d_model, modelCfg.d_model));
    add('experts', nExperts());
    add('top_k', first(info.top_k, moeCfg.top_k));
    const seqLen = first(info.seq_len, config.train && config.train.seq_len);
    const batch = first(info.batch_size, config.train && config.train.batch_size);
    if (seqLen !== undefined || batch !== undefined)
      add('batch', (batch !== undefined ? batch : '?') + ' sequences of ' +
        (seqLen !== undefined ? seqLen : '?') + ' tokens');
    const params = first(info.params, results.params);
    const active = first(info.active_params, results.active_params);
    add('parameters', fmtInt(params));
    if (isNum(active))
      add('active parameters per token', fmtInt(active) +
        (isNum(params) && params > 0 ? ' (' + (100 * active / params).toFixed(1) + '% of all)' : ''));
    const fa = info.flops_per_token_active, fd = info.flops_per_token_dense;
    if (isNum(fa) && isNum(fd))
      add('forward FLOPs per token', fmtSI(fa, 'FLOP') + ' active vs ' + fmtSI(fd, 'FLOP') +
        ' dense (all experts on every token): ratio ' + (fd > 0 ? (fa / fd).toFixed(3) : '?'));
    else add('forward FLOPs per token', fmtSI(fa, 'FLOP'));
    add('training FLOPs per token', fmtSI(first(info.train_flops_per_token, results.train_flops_per_token), 'FLOP'));
    /* perplexity means something for language models only */
    const lm = !(config.train && config.train.task && config.train.task !== 'lm');
    if (isNum(results.final_val_loss))
      add('final validation loss', results.final_val_loss.toFixed(4) +
        (lm && isNum(results.final_val_ppl) ? ' (perplexity ' + results.final_val_ppl.toFixed(3) + ')' : ''));
    if (isNum(results.best_val_loss))
      add('best validation loss', results.best_val_loss.toFixed(4) +
        (lm && isNum(results.best_val_ppl) ? ' (perplexity ' + results.best_val_ppl.toFixed(3) + ')' : ''));
    const classifier = isNum(results.final_val_macro_f1);
    if (classifier)
      add('final validation accuracy / macro-F1', results.final_val_accuracy.toFixed(4) + ' / ' +
        results.final_val_macro_f1.toFixed(4));
    else if (isNum(results.final_val_accuracy))
      add('final masked-token accuracy', results.final_val_accuracy.toFixed(4));
    const test = results.test;
    if (test && isNum(test.macro_f1))
      add('test accuracy / macro-F1', test.accuracy.toFixed(4) + ' / ' + test.macro_f1.toFixed(4) +
        (Array.isArray(test.confusion) ? ' (confusion ' + JSON.stringify(test.confusion) + ')' : ''));
    if (isNum(results.tokens_per_s)) add('training tokens per second', fmtInt(results.tokens_per_s));
    add('elapsed', fmtDuration(results.elapsed_s));
    add('steps', results.steps);
    add('stop reason', results.stop_reason);
    if (!data.results)
      add('status', 'still training (no results.json yet)' +
        (lastStep !== undefined ? '; last logged step ' + lastStep : ''));
    const s = section('summary', 'Summary');
    const table = el('table', {class: 'summary'});
    for (const [label, value] of rows) {
      const tr = el('tr');
      tr.appendChild(el('th', {}, label));
      tr.appendChild(el('td', {}, value));
      table.appendChild(tr);
    }
    s.appendChild(table);
  });

  /* ---- learning curves ---------------------------------------------------- */
  build('learning curves', function () {
    const hasLoss = has(train, 'train_loss') || has(evals, 'val_loss');
    const hasLr = has(train, 'learning_rate') || has(train, 'router_temperature');
    if (!hasLoss && !hasLr) return;
    const s = section('curves', 'Learning curves');
    const g = grid(s);
    if (hasLoss) {
      const traces = [];
      if (has(train, 'train_loss'))
        traces.push(Object.assign(series(train, l => l.train_loss),
          {name: 'train loss', type: 'scatter', mode: 'lines', line: {color: colour(0)}}));
      if (has(evals, 'val_loss'))
        traces.push(Object.assign(series(evals, l => l.val_loss),
          {name: 'validation loss', type: 'scatter', mode: 'lines+markers', line: {color: colour(2)}}));
      chart(g, 'loss', traces, layout('Training and validation loss', 'step', 'loss (nats per token)'));
    }
    if (hasLr) {
      const traces = [];
      if (has(train, 'learning_rate'))
        traces.push(Object.assign(series(train, l => l.learning_rate),
          {name: 'learning rate', type: 'scatter', mode: 'lines', line: {color: colour(0)}}));
      if (has(train, 'router_temperature'))
        traces.push(Object.assign(series(train, l => l.router_temperature),
          {name: 'router temperature', type: 'scatter', mode: 'lines', yaxis: 'y2',
            line: {color: colour(1), dash: 'dash'}}));
      chart(g, 'lr', traces, layout('Learning rate and router temperature', 'step', 'learning rate', {
        yaxis2: {title: {text: 'router temperature'}, overlaying: 'y', side: 'right', automargin: true},
        legend: {orientation: 'h', y: -0.22},
        height: 400,
      }));
    }
  });

  /* ---- expert utilization -------------------------------------------------- */
  build('expert utilization', function () {
    const layers = labelKeys('expert_fraction');
    if (!layers.length) return;
    const E = nExperts();
    const s = section('utilization', 'Expert utilization',
      'Share of the kept (token, slot) pairs each expert got in the logged step, per MoE layer' +
      (isNum(E) ? '; a perfect balance is 1/' + E + ' = ' + (1 / E).toFixed(3) + ' each.' : '.'));
    const g = grid(s);
    for (const layer of layers) {
      const lines = train.filter(l => l.expert_fraction && l.expert_fraction[layer]);
      const experts = sortedKeys(new Set([].concat(...lines.map(l => Object.keys(l.expert_fraction[layer])))));
      const z = experts.map(e => lines.map(l => {
        const v = l.expert_fraction[layer][e];
        return isNum(v) ? v : null;
      }));
      chart(g, 'util-L' + layer, [{
        type: 'heatmap', x: lines.map(l => l.step), y: experts.map(Number), z: z,
        zmin: 0, colorscale: 'Viridis', colorbar: {title: {text: 'fraction'}},
        hovertemplate: 'step %{x}<br>expert %{y}<br>fraction %{z:.4f}<extra></extra>',
      }], layout('Expert utilization, layer ' + layer, 'step', 'expert', {
        yaxis: {title: {text: 'expert'}, dtick: 1, automargin: true},
      }));
    }
  });

  /* ---- load balance, router entropy, alerts --------------------------------- */
  build('load balance', function () {
    const hasBalance = has(train, 'load_cv') || has(train, 'load_max_over_mean');
    const hasEntropy = has(train, 'router_entropy');
    if (!hasBalance && !hasEntropy && !alerts.length) return;
    const s = section('balance', 'Load balance and alerts',
      'Coefficient of variation of pairs per expert (left axis) and the busiest expert\'s pairs over ' +
      'the mean (right axis), per MoE layer; red markers are alerts (hover for the message).');
    const g = grid(s);
    if (hasBalance) {
      const traces = [];
      labelKeys('load_cv').forEach((layer, i) => traces.push(Object.assign(
        series(train, l => l.load_cv ? l.load_cv[layer] : undefined),
        {name: 'load cv, layer ' + layer, type: 'scatter', mode: 'lines', line: {color: colour(i)}})));
      labelKeys('load_max_over_mean').forEach((layer, i) => traces.push(Object.assign(
        series(train, l => l.load_max_over_mean ? l.load_max_over_mean[layer] : undefined),
        {name: 'max/mean, layer ' + layer, type: 'scatter', mode: 'lines', yaxis: 'y2',
          line: {color: colour(i), dash: 'dot'}})));
      const imbalance = alerts.find(a => a.alert === 'imbalance' && isNum(a.threshold));
      const thr = first(config.obs && config.obs.imbalance_max, imbalance && imbalance.threshold, 0.2);
      const steps = train.map(l => l.step);
      if (steps.length)
        traces.push({x: [Math.min(...steps), Math.max(...steps)], y: [thr, thr], type: 'scatter',
          mode: 'lines', name: 'imbalance_max (' + thr + ')', line: {color: WARN, dash: 'dash', width: 1.5},
          hovertemplate: 'imbalance_max ' + thr + '<extra></extra>'});
      const lay = layout('Load imbalance per layer', 'step', 'load cv', {
        yaxis2: {title: {text: 'max / mean'}, overlaying: 'y', side: 'right', automargin: true},
        legend: {orientation: 'h', y: -0.22},
        height: 400,
      });
      alertOverlay(lay, traces);
      chart(g, 'balance', traces, lay);
    }
    if (hasEntropy) {
      const traces = labelKeys('router_entropy').map((layer, i) => Object.assign(
        series(train, l => l.router_entropy ? l.router_entropy[layer] : undefined),
        {name: 'layer ' + layer, type: 'scatter', mode: 'lines', line: {color: colour(i)}}));
      const E = nExperts();
      const steps = train.map(l => l.step);
      if (isNum(E) && E > 1 && steps.length)
        traces.push({x: [Math.min(...steps), Math.max(...steps)], y: [Math.log(E), Math.log(E)],
          type: 'scatter', mode: 'lines', name: 'uniform router (ln ' + E + ')',
          line: {color: '#888888', dash: 'dash', width: 1}});
      const lay = layout('Router entropy per layer', 'step', 'entropy (nats)',
        {legend: {orientation: 'h', y: -0.22}, height: 400});
      alertOverlay(lay, traces);
      chart(g, 'entropy', traces, lay);
    }
    if (alerts.length) {
      s.appendChild(el('h3', {}, 'Alerts'));
      const table = el('table', {class: 'alerts'});
      const head = el('tr');
      ['step', 'alert', 'layer', 'expert', 'value', 'threshold', 'message'].forEach(h => head.appendChild(el('th', {}, h)));
      table.appendChild(head);
      for (const a of alerts) {
        const tr = el('tr');
        [a.step, a.alert, a.layer, a.expert, isNum(a.value) ? a.value.toPrecision(4) : a.value,
          a.threshold].forEach(v => tr.appendChild(el('td', {}, v === undefined || v === null ? '' : String(v))));
        tr.appendChild(el('td', {class: 'message'}, a.message || ''));
        table.appendChild(tr);
      }
      s.appendChild(table);
    }
  });

  /* ---- routing by label (routing.json) ---------------------------------------- */
  const subsets = routing && routing.subsets;
  const routingLayers = (routing && routing.layers) || [];
  const labelKind = (subsets && subsets.kind) || 'label';
  const atStep = routing && isNum(routing.step) ? ' (routing.json, step ' + routing.step + ')' : '';

  build('routing by label', function () {
    if (!subsets || !(subsets.mean_gate || subsets.expert_accuracy)) return;
    const labels = subsets.labels || [];
    const counts = subsets.tokens ? labels.map((l, i) => l + ' ' + fmtInt(subsets.tokens[i])).join(', ') : '';
    const s = section('routing', 'Routing by ' + labelKind,
      'Mean gate weight each expert gives the tokens of each ' + labelKind + ' (0 when not chosen)' +
      atStep + (counts ? '; tokens per ' + labelKind + ': ' + counts : '') + '.');
    const g = grid(s);
    if (subsets.mean_gate)
      routingLayers.forEach((layer, i) => {
        const z = labels.map((_, l) => (subsets.mean_gate[l] || [])[i] || []);
        const E = Math.max(0, ...z.map(r => r.length));
        chart(g, 'gate-L' + layer, [{
          type: 'heatmap', x: [...Array(E).keys()], y: labels, z: z, zmin: 0,
          colorscale: 'Blues', reversescale: true, colorbar: {title: {text: 'mean gate'}},
          hovertemplate: labelKind + ' %{y}<br>expert %{x}<br>mean gate %{z:.4f}<extra></extra>',
        }], layout('Mean gate weight by ' + labelKind + ', layer ' + layer, 'expert', labelKind, {
          xaxis: {title: {text: 'expert'}, dtick: 1, automargin: true},
          height: Math.max(320, 60 + 26 * labels.length),
        }));
      });
    if (subsets.expert_accuracy) {
      const z = subsets.expert_accuracy;
      const E = Math.max(0, ...z.map(r => r.length));
      chart(g, 'expert-accuracy', [{
        type: 'heatmap', x: [...Array(E).keys()], y: routingLayers.map(l => 'layer ' + l), z: z,
        zmin: 0, zmax: 1, colorscale: 'Greens', reversescale: true, colorbar: {title: {text: 'accuracy'}},
        hovertemplate: '%{y}<br>expert %{x}<br>accuracy %{z:.4f}<extra></extra>',
      }], layout('Accuracy of each expert alone', 'expert', 'MoE layer', {
        xaxis: {title: {text: 'expert'}, dtick: 1, automargin: true},
      }));
    }
  });

  build('routing histograms', function () {
    if (!subsets || !subsets.fraction) return;
    const labels = subsets.labels || [];
    const s = section('histograms', 'Expert shares by ' + labelKind,
      'Share of each ' + labelKind + '\'s kept (token, slot) pairs that went to each expert' + atStep + '.');
    const g = grid(s);
    routingLayers.forEach((layer, i) => {
      const traces = labels.map((label, l) => {
        const y = (subsets.fraction[l] || [])[i] || [];
        return {type: 'bar', name: String(label), x: [...y.keys()], y: y, marker: {color: colour(l)},
          hovertemplate: String(label) + '<br>expert %{x}: %{y:.4f}<extra></extra>'};
      });
      chart(g, 'hist-L' + layer, traces, layout('Expert shares by ' + labelKind + ', layer ' + layer,
        'expert', 'fraction of pairs', {barmode: 'group', xaxis: {title: {text: 'expert'}, dtick: 1, automargin: true}}));
    });
  });

  /* ---- token-level view -------------------------------------------------------- */
  build('tokens', function () {
    const sample = routing && routing.sample;
    if (!sample || !Array.isArray(sample.tokens) || !Array.isArray(sample.expert)) return;
    const s = section('tokens', 'Tokens by expert',
      'A stretch of validation text' + atStep + ', each token coloured by the expert that gave it ' +
      'its largest gate weight in the chosen MoE layer (stronger colour: larger weight). Hover a ' +
      'token for its expert and weight.');
    const controls = el('div', {class: 'tokens-controls'});
    const labelEl = el('label', {}, 'MoE layer');
    const select = el('select', {id: 'tokens-layer'});
    sample.expert.forEach((_, i) => select.appendChild(el('option', {value: String(i)},
      'layer ' + first(routingLayers[i], i))));
    labelEl.appendChild(select);
    controls.appendChild(labelEl);
    s.appendChild(controls);
    const legend = el('div', {class: 'legend'});
    s.appendChild(legend);
    const view = el('div', {class: 'tokens', 'data-chart': 'tokens'});
    s.appendChild(view);
    function render(i) {
      const experts = sample.expert[i] || [], gates = (sample.gate || [])[i] || [];
      const counts = new Map();
      view.textContent = '';
      const frag = document.createDocumentFragment();
      sample.tokens.forEach((token, t) => {
        const e = experts[t], w = gates[t];
        const span = el('span', {}, String(token));
        if (isNum(e)) {
          counts.set(e, (counts.get(e) || 0) + 1);
          span.style.backgroundColor = rgba(colour(e), isNum(w) ? 0.2 + 0.7 * Math.min(1, Math.max(0, w)) : 0.6);
          span.title = 'expert ' + e + (isNum(w) ? ', gate ' + w.toFixed(3) : '');
        }
        frag.appendChild(span);
      });
      view.appendChild(frag);
      legend.textContent = '';
      const E = first(nExperts(), Math.max(0, ...counts.keys()) + 1);
      for (let e = 0; e < E; e++) {
        const item = el('span', {});
        item.appendChild(el('span', {class: 'swatch', style: 'background:' + colour(e)}));
        item.appendChild(document.createTextNode('expert ' + e + ' (' + (counts.get(e) || 0) + ')'));
        legend.appendChild(item);
      }
    }
    select.addEventListener('change', () => render(Number(select.value)));
    render(0);
  });

  /* ---- expert outputs of distribution models -------------------------------------- */
  build('distribution', function () {
    const dist = routing && routing.distribution;
    if (!dist || !Array.isArray(dist.experts) || !dist.experts.length) return;
    const rows = dist.experts, labels = dist.labels || [];
    const names = [...new Set(labels.map(String))];
    const index = labels.map(l => names.indexOf(String(l)));
    const E = Math.max(...rows.map(r => r.length));
    const n = Math.max(1, names.length);
    const scale = names.length > 1 ? names.map((_, k) => [k / (n - 1), colour(k)]) : [[0, colour(0)], [1, colour(0)]];
    const s = section('distribution', 'Expert outputs',
      'Each line is one example; each axis one expert\'s output; colour: the example\'s label' + atStep + '.');
    chart(s, 'distribution', [{
      type: 'parcoords',
      line: {color: index.length ? index : rows.map(() => 0), colorscale: scale, cmin: 0, cmax: n - 1,
        showscale: names.length > 1,
        colorbar: {title: {text: 'label'}, tickvals: names.map((_, k) => k), ticktext: names}},
      dimensions: [...Array(E).keys()].map(e => ({label: 'expert ' + e, values: rows.map(r => r[e])})),
    }], layout('Expert outputs per example', '', '', {margin: {l: 60, r: 60, t: 80, b: 30}}));
  });

  /* ---- seed families: expert analysis and channel gates (analysis.jsonl) ---------- */
  const analysis = data.analysis || [];
  function analysisLabel(a) {
    return a.split + ', epoch ' + (isNum(a.epoch) ? a.epoch.toFixed(2) : '?') + ', step ' + a.step;
  }
  build('expert analysis', function () {
    const lines = analysis.filter(a => a.expert_analysis && Array.isArray(a.expert_analysis.accuracy));
    if (!lines.length) return;
    const s = section('expert-analysis', 'Expert analysis',
      'Left: each expert alone (its own classifier\'s answer) — the share of each true class it gets right. ' +
      'Right: its mean gate weight on that class. Specialised experts have different bright columns.');
    const select = el('select', {'aria-label': 'evaluation shown'});
    lines.forEach((a, i) => select.appendChild(el('option', {value: String(i)}, analysisLabel(a))));
    select.value = String(lines.length - 1);
    s.appendChild(el('label', {}, 'Evaluation: '));
    s.lastChild.appendChild(select);
    const g = grid(s);
    const top = el('p', {class: 'note'});
    s.appendChild(top);
    function traces(a, key, scale, title) {
      const ea = a.expert_analysis, z = ea[key];
      return [{
        type: 'heatmap', x: ea.classes.map(String), y: z.map((_, e) => 'expert ' + e), z: z,
        zmin: 0, zmax: 1, colorscale: scale, reversescale: true, colorbar: {title: {text: title}},
        hovertemplate: '%{y}<br>class %{x}<br>' + title + ' %{z:.4f}<extra></extra>',
      }];
    }
    function lay(a, title) {
      return layout(title, 'true class', 'expert', {height: Math.max(300, 90 + 40 * a.expert_analysis.accuracy.length),
        xaxis: {title: {text: 'true class'}, automargin: true, tickangle: -30}});
    }
    function topText(a) {
      const ea = a.expert_analysis;
      return 'Best classes of each expert (own accuracy): ' + (ea.top_classes || []).map((t, e) =>
        'expert ' + e + ': ' + t.slice(0, 3).map(c => ea.classes[c]).join(', ')).join('; ') + '.';
    }
    const a0 = lines[lines.length - 1];
    chart(g, 'expert-class-accuracy', traces(a0, 'accuracy', 'Greens', 'accuracy'), lay(a0, 'Each expert\'s own accuracy per class'));
    chart(g, 'expert-class-gate', traces(a0, 'gate', 'Blues', 'mean gate'), lay(a0, 'Mean gate weight per class'));
    top.textContent = topText(a0);
    select.addEventListener('change', () => {
      const a = lines[Number(select.value)];
      const divs = g.querySelectorAll('div.chart');
      Plotly.react(divs[0], traces(a, 'accuracy', 'Greens', 'accuracy'), lay(a, 'Each expert\'s own accuracy per class'));
      Plotly.react(divs[1], traces(a, 'gate', 'Blues', 'mean gate'), lay(a, 'Mean gate weight per class'));
      top.textContent = topText(a);
    });
  });

  build('gate sparsity', function () {
    const lines = analysis.filter(a => a.gate_sparsity && Array.isArray(a.gate_sparsity.layers));
    if (!lines.length) return;
    const last = lines[lines.length - 1], gs = last.gate_sparsity;
    const pct = v => (100 * v).toFixed(1) + '%';
    const s = section('gate-sparsity', 'Channel gates',
      'Share of channel gates that are exactly zero per gated conv (' + analysisLabel(last) + '); ' +
      'skipping those channels saves ' + pct(gs.skippable_fraction) + ' of the gated convs\' FLOPs (' +
      fmtSI(gs.skippable_flops, 'FLOP') + ' of ' + fmtSI(gs.gated_conv_flops, 'FLOP') + ' per example).');
    const g = grid(s);
    chart(g, 'gate-zero-by-layer', [{
      type: 'bar', x: gs.layers.map((_, l) => 'conv ' + l), y: gs.layers.map(l => l.zero_fraction),
      marker: {color: colour(0)}, hovertemplate: '%{x}<br>zero gates %{y:.3f}<extra></extra>',
    }], layout('Zero gates per gated conv', 'gated conv', 'share of gates = 0', {yaxis: {range: [0, 1], title: {text: 'share of gates = 0'}}}));
    chart(g, 'gate-zero-over-time', [
      {type: 'scatter', mode: 'lines+markers', name: 'zero gates', x: lines.map(a => a.step),
        y: lines.map(a => a.gate_sparsity.zero_fraction), line: {color: colour(0)}},
      {type: 'scatter', mode: 'lines+markers', name: 'skippable FLOPs', x: lines.map(a => a.step),
        y: lines.map(a => a.gate_sparsity.skippable_fraction), line: {color: colour(1)}},
    ], layout('Sparsity over training', 'step', 'share', {yaxis: {range: [0, 1], title: {text: 'share'}}, legend: {orientation: 'h', y: -0.22}}));
  });

  /* ---- table of contents, then done -------------------------------------------------- */
  for (const [id, title] of sections) {
    const a = el('a', {href: '#' + id}, title);
    toc.appendChild(a);
  }
  Promise.all(drawing).then(() => {
    window.moeReport.done = true;
    document.body.setAttribute('data-rendered', 'true');
  }, e => console.error('moe report: a chart failed to draw: ' + e));
})();
