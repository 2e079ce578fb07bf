/**
 * The scripts that run inside a report page (plain browser JavaScript, inlined into the HTML). They
 * read the data from the page's JSON element and build the DOM with textContent only: whatever a
 * file name or a text contains, it is never parsed as markup. Charts are Chart.js (with the matrix
 * controller for the confusion heatmap); `window.headstartReport.charts` exposes them for tests.
 */

/** Helpers shared by every page. */
export const COMMON_SCRIPT = String.raw`
'use strict';
var REPORT = JSON.parse(document.getElementById('report-data').textContent);
window.headstartReport = { data: REPORT, charts: {} };
Chart.defaults.animation = false;
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
Chart.defaults.color = '#374151';
Chart.defaults.maintainAspectRatio = false;

function h(tag, attributes) {
  var element = document.createElement(tag);
  var attrs = attributes || {};
  Object.keys(attrs).forEach(function (name) {
    var value = attrs[name];
    if (value === undefined || value === null || value === false) return;
    if (name === 'text') element.textContent = String(value);
    else if (name.slice(0, 2) === 'on') element.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.keys(value).forEach(function (key) { element.dataset[key] = String(value[key]); });
    else element.setAttribute(name, value === true ? '' : String(value));
  });
  for (var i = 2; i < arguments.length; i++) {
    var child = arguments[i];
    if (child === undefined || child === null || child === false) continue;
    (Array.isArray(child) ? child : [child]).forEach(function (c) {
      if (c === undefined || c === null || c === false) return;
      element.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
  }
  return element;
}
function num(x, digits) {
  if (x === null || x === undefined || typeof x !== 'number' || !isFinite(x)) return 'n/a';
  return x.toFixed(digits === undefined ? 3 : digits);
}
function pct(x, digits) {
  if (x === null || x === undefined || !isFinite(x)) return 'n/a';
  return (100 * x).toFixed(digits === undefined ? 1 : digits) + '%';
}
function seconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return 'n/a';
  if (s < 1) return (s * 1000).toFixed(0) + ' ms';
  if (s < 120) return s.toFixed(s < 10 ? 2 : 1) + ' s';
  return (s / 60).toFixed(1) + ' min';
}
function card(label, value, detail) {
  return h('div', { class: 'card' }, h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }), detail ? h('div', { class: 'detail', text: detail }) : null);
}
function section(id, title) {
  var element = h('section', { id: id }, h('h2', { text: title }));
  document.getElementById('report').appendChild(element);
  return element;
}
function chartBox(label, tall) {
  var canvas = h('canvas', { role: 'img', 'aria-label': label });
  return { box: h('div', { class: tall ? 'chart tall' : 'chart' }, canvas), canvas: canvas };
}
function table(headers, rows, className) {
  return h('table', { class: className },
    headers ? h('thead', {}, h('tr', {}, headers.map(function (x) { return h('th', { text: x }); }))) : null,
    h('tbody', {}, rows.map(function (row) {
      return h('tr', {}, row.map(function (cell) { return cell instanceof Node ? h('td', {}, cell) : h('td', { text: cell }); }));
    })));
}
function keyValues(object) {
  var rows = [];
  Object.keys(object || {}).forEach(function (key) {
    var value = object[key];
    if (value === undefined) return;
    rows.push([key, value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value)]);
  });
  return table(null, rows, 'kv');
}
`;

/** The model report: summary, training curves, confusion heatmap with examples, tables, calibration. */
export const MODEL_SCRIPT = String.raw`
(function () {
  var data = REPORT;
  var labels = data.labels;
  var k = labels.length;
  var charts = window.headstartReport.charts;
  var validation = data.splits[0];
  var vm = validation.metrics;

  // Summary.
  var summary = section('summary', 'Summary');
  var cards = h('div', { class: 'cards' });
  summary.appendChild(cards);
  var ci = vm.intervals;
  cards.appendChild(card(validation.name + ' accuracy', pct(vm.accuracy), ci ? '95% CI ' + pct(ci.accuracy.low) + ' – ' + pct(ci.accuracy.high) + ' · ' + vm.n + ' ' + data.noun : vm.n + ' ' + data.noun));
  cards.appendChild(card('macro F1', num(vm.macro.f1), ci ? '95% CI ' + num(ci.macroF1.low) + ' – ' + num(ci.macroF1.high) : null));
  if (vm.calibration) {
    var cal = vm.calibration;
    cards.appendChild(card('calibration error (ECE)', num(cal.ece), cal.beforeScaling ? 'before temperature scaling ' + num(cal.beforeScaling.ece) + ' · T = ' + cal.temperature.toPrecision(3) : 'no temperature scaling'));
  }
  if (vm.rocAuc) cards.appendChild(card('ROC-AUC', num(vm.rocAuc.macro), 'macro, one-vs-rest · PR-AUC ' + num(vm.prAuc.macro)));
  data.splits.slice(1).forEach(function (split) {
    cards.appendChild(card(split.name + ' accuracy', pct(split.metrics.accuracy), (split.metrics.intervals ? '95% CI ' + pct(split.metrics.intervals.accuracy.low) + ' – ' + pct(split.metrics.intervals.accuracy.high) + ' · ' : '') + split.metrics.n + ' ' + data.noun));
  });
  if (data.timings && data.timings.totalSeconds !== undefined) cards.appendChild(card('training time', seconds(data.timings.totalSeconds), 'features ' + seconds(data.timings.featureSeconds) + ' · head ' + seconds(data.timings.fitSeconds)));
  data.notes.forEach(function (note) { summary.appendChild(h('p', { class: 'warning', text: note })); });

  // Training curves: the head's epochs, then (for a fine-tuned backbone) the joint training's.
  var curves = section('curves', 'Training curves');
  var drawCurves = function (history, bestEpoch, xLabel, key) {
    var epochs = history.map(function (r) { return r.epoch; });
    var grid = h('div', { class: 'charts' });
    curves.appendChild(grid);
    var lossBox = chartBox('loss per epoch, training and validation');
    var accuracyBox = chartBox('accuracy per epoch, training and validation');
    grid.appendChild(lossBox.box);
    grid.appendChild(accuracyBox.box);
    var best = function (values) {
      return epochs.map(function (epoch, i) { return epoch === bestEpoch ? values[i] : null; });
    };
    var lineChart = function (canvas, title, trainKey, validationKey) {
      var trainValues = history.map(function (r) { return r[trainKey]; });
      var validationValues = history.map(function (r) { return r[validationKey] === undefined ? null : r[validationKey]; });
      var datasets = [
        { label: 'training', data: trainValues, borderColor: '#2563eb', backgroundColor: '#2563eb', pointRadius: 0, borderWidth: 2 },
      ];
      if (validationValues.some(function (v) { return v !== null; })) {
        datasets.push({ label: 'validation', data: validationValues, borderColor: '#f97316', backgroundColor: '#f97316', pointRadius: 0, borderWidth: 2 });
        datasets.push({ label: 'kept (best epoch ' + bestEpoch + ')', data: best(validationValues), borderColor: '#111827', backgroundColor: '#111827', pointRadius: 5, pointStyle: 'rectRot', showLine: false });
      }
      return new Chart(canvas, {
        type: 'line',
        data: { labels: epochs, datasets: datasets },
        options: {
          interaction: { mode: 'index', intersect: false },
          plugins: { title: { display: true, text: title } },
          scales: { x: { title: { display: true, text: xLabel } } },
        },
      });
    };
    charts[key + 'loss'] = lineChart(lossBox.canvas, 'Loss', 'trainLoss', 'valLoss');
    charts[key + 'accuracy'] = lineChart(accuracyBox.canvas, 'Accuracy', 'trainAccuracy', 'valAccuracy');
  };
  if (data.fineTune) {
    var tuned = data.fineTune;
    curves.appendChild(h('h3', { text: 'Fine-tuning the backbone: ' + tuned.trained }));
    drawCurves(tuned.history, tuned.bestEpoch, 'epoch', 'fineTune');
    curves.appendChild(h('p', { class: 'note', text: 'The backbone\'s ' + tuned.trained + ' and a linear head trained together (' + tuned.schedule + ' schedule), after ' + tuned.headEpochs + ' epochs of the head alone. ' + (tuned.stoppedEarly ? 'Training stopped early; ' : '') + 'the backbone weights kept are those of epoch ' + tuned.bestEpoch + (tuned.head === 'joint' ? ', with the head trained alongside them.' : '. The head below was then fitted anew on the fine-tuned features.') }));
    if (tuned.head !== 'joint') curves.appendChild(h('h3', { text: 'The head on the fine-tuned features' }));
  }
  if (data.fineTune && data.fineTune.head === 'joint') {
    // The head's curves are the joint training's, drawn above.
  } else if (!data.history.length) {
    curves.appendChild(h('p', { class: 'note', text: 'This head (' + data.head.type + ') is fitted in one step, without epochs: there are no curves to draw.' }));
  } else {
    drawCurves(data.history, data.bestEpoch, data.optimizer === 'lbfgs' ? 'iteration' : 'epoch', '');
    curves.appendChild(h('p', { class: 'note', text: 'Training loss includes label smoothing and class weights and is averaged over each epoch; validation loss is the plain log loss of that epoch\'s head. ' + (data.stoppedEarly ? 'Training stopped early; ' : '') + 'the saved head is the one from epoch ' + data.bestEpoch + '.' }));
  }

  // Confusion matrix with examples.
  var confusion = section('confusion', 'Confusion matrix');
  confusion.appendChild(h('p', { class: 'note', text: 'Rows are the true class, columns the prediction. Click a cell to see its examples.' }));
  var controls = h('div', { class: 'controls' });
  confusion.appendChild(controls);
  var layout = h('div', { class: 'confusion' });
  confusion.appendChild(layout);
  var matrixBox = chartBox('confusion matrix heatmap', true);
  matrixBox.box.style.height = Math.max(300, Math.min(640, 90 + k * 46)) + 'px';
  var left = h('div', {}, matrixBox.box);
  var pairsBox = h('div', {});
  left.appendChild(pairsBox);
  layout.appendChild(left);
  var examplesPanel = h('div', { id: 'examples', 'aria-live': 'polite' }, h('p', { class: 'note', text: 'Select a cell of the matrix, or a confused pair.' }));
  layout.appendChild(examplesPanel);

  var state = { split: 0, normalized: false };
  var splitButtons = data.splits.map(function (split, index) {
    return h('button', { class: 'tab', type: 'button', 'aria-pressed': index === 0 ? 'true' : 'false', dataset: { split: split.name }, onclick: function () { state.split = index; drawMatrix(); } }, split.name + ' (' + split.metrics.n + ')');
  });
  if (data.splits.length > 1) controls.appendChild(h('span', {}, splitButtons));
  var normalizedBox = h('input', { type: 'checkbox', id: 'normalized', onchange: function () { state.normalized = normalizedBox.checked; drawMatrix(); } });
  controls.appendChild(h('label', {}, normalizedBox, ' show shares of each true class'));

  function cellsOf(metrics) {
    var cells = [];
    for (var t = 0; t < k; t++) {
      var support = metrics.confusion[t].reduce(function (a, b) { return a + b; }, 0);
      for (var p = 0; p < k; p++) {
        var count = metrics.confusion[t][p];
        cells.push({ x: labels[p], y: labels[t], t: t, p: p, count: count, share: support ? count / support : 0 });
      }
    }
    return cells;
  }
  var cellLabels = {
    id: 'cellLabels',
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      var meta = chart.getDatasetMeta(0);
      ctx.save();
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.font = '600 13px system-ui, sans-serif';
      meta.data.forEach(function (element, i) {
        // Many classes make cells too small to label; the tooltip still gives the numbers.
        if (element.width < 24 || element.height < 16) return;
        var cell = chart.data.datasets[0].data[i];
        var centre = element.getCenterPoint();
        ctx.fillStyle = cell.share > 0.55 ? '#fff' : '#111827';
        ctx.fillText(state.normalized ? pct(cell.share, 0) : String(cell.count), centre.x, centre.y);
      });
      ctx.restore();
    },
  };
  function colourOf(cell) {
    var alpha = 0.06 + 0.94 * cell.share;
    return cell.t === cell.p ? 'rgba(37, 99, 235, ' + alpha + ')' : 'rgba(220, 38, 38, ' + alpha + ')';
  }
  function drawMatrix() {
    var split = data.splits[state.split];
    splitButtons.forEach(function (b, i) { b.setAttribute('aria-pressed', i === state.split ? 'true' : 'false'); });
    var cells = cellsOf(split.metrics);
    if (charts.confusion) charts.confusion.destroy();
    charts.confusion = new Chart(matrixBox.canvas, {
      type: 'matrix',
      data: { datasets: [{
        label: 'examples', data: cells, backgroundColor: function (c) { return c.raw ? colourOf(c.raw) : 'transparent'; },
        borderColor: '#fff', borderWidth: 1,
        width: function (c) { var a = c.chart.chartArea; return a ? a.width / k - 2 : 0; },
        height: function (c) { var a = c.chart.chartArea; return a ? a.height / k - 2 : 0; },
      }] },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: {
            title: function (items) { var c = items[0].raw; return 'true ' + c.y + ' → predicted ' + c.x; },
            label: function (item) { var c = item.raw; return c.count + ' ' + data.noun + ' (' + pct(c.share) + ' of ' + c.y + ')'; },
          } },
        },
        scales: {
          x: { type: 'category', labels: labels, offset: true, grid: { display: false }, title: { display: true, text: 'predicted' } },
          // The matrix controller reverses y by default; not reversed, the first class is the top row.
          y: { type: 'category', labels: labels, offset: true, reverse: false, grid: { display: false }, title: { display: true, text: 'true' } },
        },
        onHover: function (event, elements) { event.native.target.style.cursor = elements.length ? 'pointer' : 'default'; },
        onClick: function (event, elements) { if (elements.length) showCell(cells[elements[0].index].t, cells[elements[0].index].p); },
      },
      plugins: [cellLabels],
    });
    pairsBox.textContent = '';
    var pairs = split.metrics.mostConfused || [];
    if (pairs.length) {
      pairsBox.appendChild(h('h3', { text: 'Most confused' }));
      pairsBox.appendChild(h('div', { class: 'pairs' }, pairs.map(function (pair) {
        return h('button', { class: 'pair', type: 'button', onclick: function () { showCell(pair.trueIndex, pair.predictedIndex); } },
          pair.trueLabel + ' → ' + pair.predictedLabel + ': ' + pair.count + ' (' + pct(pair.shareOfClass, 0) + ')');
      })));
    }
    examplesPanel.textContent = '';
    examplesPanel.appendChild(h('p', { class: 'note', text: 'Select a cell of the matrix, or a confused pair.' }));
  }
  function showCell(t, p) {
    var split = data.splits[state.split];
    examplesPanel.textContent = '';
    var title = 'true ' + labels[t] + ' → predicted ' + labels[p];
    examplesPanel.appendChild(h('h3', { text: title }));
    if (!split.examples) {
      examplesPanel.appendChild(h('p', { class: 'warning', text: 'This model folder has no stored predictions (predictions.json), so the examples behind each cell cannot be listed.' }));
      return;
    }
    var chosen = split.examples.filter(function (e) { return e.label === t && e.predicted === p; });
    chosen.sort(function (a, b) { return b.confidence - a.confidence; });
    examplesPanel.appendChild(h('p', { class: 'note', text: chosen.length + ' ' + (chosen.length === 1 ? data.noun.replace(/s$/, '') : data.noun) + (t === p ? ', most confident first.' : ', most confidently wrong first.') }));
    var list = h('ul', { class: data.modality === 'text' ? 'examples text' : 'examples', id: 'example-list' });
    chosen.forEach(function (e) {
      var item = h('li', { class: 'example', dataset: { source: e.source } });
      if (e.media && e.media.type === 'image') item.appendChild(h('img', { src: e.media.src, alt: e.source, loading: 'lazy' }));
      if (e.media && e.media.type === 'audio') item.appendChild(h('audio', { controls: true, preload: 'none', src: e.media.src }));
      if (e.text !== undefined) item.appendChild(h('div', { class: 'snippet', text: e.text }));
      if (e.missing) item.appendChild(h('div', { class: 'missing', text: e.missing }));
      if (e.explanation) item.appendChild(explanationOf(e));
      item.appendChild(h('div', { class: 'source', title: e.source, text: shortSource(e.source) }));
      item.appendChild(h('div', { text: 'p(' + labels[p] + ') ' + num(e.confidence, 2) + (t === p ? '' : ' · p(' + labels[t] + ') ' + num(e.trueProbability, 2)) }));
      list.appendChild(item);
    });
    examplesPanel.appendChild(list);
  }
  // Why the model predicted what it did: the map over the photo, the clip's coloured waveform, or
  // each word tinted by its score (red for the predicted label, blue against it).
  function explanationOf(e) {
    var x = e.explanation;
    var box = h('div', { class: 'explanation', title: 'why ' + labels[e.predicted] + ': ' + x.method });
    if (x.src) box.appendChild(h('img', { class: 'explanation-map', src: x.src, alt: 'explanation (' + x.method + ') of ' + e.source }));
    if (x.words) {
      var peak = x.words.reduce(function (m, w) { return Math.max(m, Math.abs(w.score)); }, 0) || 1;
      box.appendChild(h('div', { class: 'snippet words' }, x.words.map(function (w) {
        var a = Math.min(1, Math.abs(w.score) / peak) * 0.75;
        return h('span', { class: 'word', title: num(w.score, 4) + (x.unit === 'logit' ? ' (logit)' : ' (probability)'), style: 'background: ' + (w.score >= 0 ? 'rgba(220, 38, 38, ' : 'rgba(37, 99, 235, ') + a.toFixed(3) + ')', text: w.text + ' ' });
      })));
    }
    if (!x.src && !x.words && x.unit) box.appendChild(h('div', { class: 'missing', text: x.unit }));
    box.appendChild(h('div', { class: 'note', text: x.method }));
    return box;
  }
  window.headstartReport.showCell = showCell;
  drawMatrix();

  // Most confident mistakes (fastai's top losses), with their explanations when the report has them.
  data.splits.forEach(function (split) {
    if (!split.examples) return;
    var wrong = split.examples.filter(function (e) { return e.label !== e.predicted; }).sort(function (a, b) { return b.confidence - a.confidence; }).slice(0, data.explained ? data.explained.mistakes : 8);
    if (!wrong.length) return;
    var gallery = section('mistakes-' + split.name, 'Most confident mistakes (' + split.name + ')');
    gallery.appendChild(h('p', { class: 'note', text: data.explained ? 'The ' + data.noun + ' the model got wrong most confidently, each with why it predicted what it did (' + data.explained.methods.join(', ') + ').' : 'The ' + data.noun + ' the model got wrong most confidently. Run headstart report --explain to see why.' }));
    gallery.appendChild(h('ul', { class: data.modality === 'text' ? 'examples text' : 'examples', id: 'mistakes-' + split.name + '-list' }, wrong.map(function (e) {
      var item = h('li', { class: 'example', dataset: { source: e.source } });
      if (e.explanation) item.appendChild(explanationOf(e));
      else if (e.media && e.media.type === 'image') item.appendChild(h('img', { src: e.media.src, alt: e.source, loading: 'lazy' }));
      if (e.text !== undefined && !(e.explanation && e.explanation.words)) item.appendChild(h('div', { class: 'snippet', text: e.text }));
      item.appendChild(h('div', { class: 'source', title: e.source, text: shortSource(e.source) }));
      item.appendChild(h('div', { text: 'true ' + labels[e.label] + ' → ' + labels[e.predicted] + ' ' + num(e.confidence, 2) }));
      return item;
    })));
  });
  // The last two path parts (class folder and file) say enough; the full path is in the tooltip.
  function shortSource(source) {
    var parts = source.split(/[\/\\]/);
    return parts.length > 2 ? '…/' + parts.slice(-2).join('/') : source;
  }
  // Per-class and overall metrics.
  var perClass = section('classes', 'Per class');
  data.splits.forEach(function (split) {
    var m = split.metrics;
    perClass.appendChild(h('h3', { text: split.name + ' (' + m.n + ' ' + data.noun + ')' }));
    var headers = ['class', 'precision', 'recall', 'F1', 'support'].concat(m.rocAuc ? ['ROC-AUC', 'PR-AUC'] : []);
    var rows = m.perClass.map(function (c, i) {
      var row = [c.label, num(c.precision), num(c.recall), num(c.f1), String(c.support)];
      return m.rocAuc ? row.concat([num(m.rocAuc.perClass[i]), num(m.prAuc.perClass[i])]) : row;
    });
    ['macro', 'weighted', 'micro'].forEach(function (avg) {
      if (!m[avg]) return;
      var row = [avg + ' avg', num(m[avg].precision), num(m[avg].recall), num(m[avg].f1), String(m.n)];
      rows.push(m.rocAuc ? row.concat(avg === 'micro' ? ['', ''] : [num(m.rocAuc[avg]), num(m.prAuc[avg])]) : row);
    });
    perClass.appendChild(table(headers, rows));
    var overall = [['accuracy', num(m.accuracy, 4) + (m.intervals ? '  (95% CI ' + num(m.intervals.accuracy.low) + ' – ' + num(m.intervals.accuracy.high) + ')' : '')]];
    if (m.intervals) overall.push(['macro F1', num(m.macro.f1, 4) + '  (95% CI ' + num(m.intervals.macroF1.low) + ' – ' + num(m.intervals.macroF1.high) + ', bootstrap over ' + m.intervals.resamples + ' resamples)']);
    (m.topK || []).forEach(function (t) { if (t.k > 1) overall.push(['top-' + t.k + ' accuracy', num(t.accuracy, 4)]); });
    if (m.balancedAccuracy !== undefined) {
      overall.push(['balanced accuracy', num(m.balancedAccuracy, 4)]);
      overall.push(['Cohen\'s kappa', num(m.cohenKappa, 4)]);
      overall.push(['Matthews correlation', num(m.matthews, 4)]);
    }
    overall.push(['log loss', num(m.logLoss, 4)]);
    perClass.appendChild(table(null, overall, 'kv'));
  });

  // Calibration.
  var calibration = section('calibration', 'Calibration');
  if (!vm.calibration) {
    calibration.appendChild(h('p', { class: 'note', text: 'This model folder predates calibration reports.' }));
  } else {
    calibration.appendChild(h('p', { class: 'note', text: 'A calibrated model is right 80% of the time when it says 80%. Each bar is the accuracy of the ' + data.noun + ' whose top probability fell in that range; on the diagonal, confidence and accuracy agree. ECE is the gap, averaged over ' + data.noun + '.' }));
    var grid2 = h('div', { class: 'charts' });
    calibration.appendChild(grid2);
    data.splits.forEach(function (split) {
      var c = split.metrics.calibration;
      if (!c) return;
      var box = chartBox('reliability diagram, ' + split.name);
      grid2.appendChild(box.box);
      // The top probability is at least 1/k, so bins below that are always empty: leave them out.
      var first = Math.max(0, Math.floor(c.bins.length / k - 1e-9));
      c = { ece: c.ece, bins: c.bins.slice(first), fittedOn: c.fittedOn, beforeScaling: c.beforeScaling && { ece: c.beforeScaling.ece, bins: c.beforeScaling.bins.slice(first) } };
      var names = c.bins.map(function (b) { return b.lower.toFixed(1) + '–' + b.upper.toFixed(1); });
      var datasets = [];
      if (c.beforeScaling) datasets.push({ type: 'bar', label: 'accuracy before scaling (ECE ' + num(c.beforeScaling.ece) + ')', data: c.beforeScaling.bins.map(function (b) { return b.count ? b.accuracy : null; }), backgroundColor: 'rgba(156, 163, 175, 0.7)', counts: c.beforeScaling.bins.map(function (b) { return b.count; }) });
      datasets.push({ type: 'bar', label: (c.beforeScaling ? 'accuracy after scaling' : 'accuracy') + ' (ECE ' + num(c.ece) + ')', data: c.bins.map(function (b) { return b.count ? b.accuracy : null; }), backgroundColor: 'rgba(37, 99, 235, 0.8)', counts: c.bins.map(function (b) { return b.count; }) });
      datasets.push({ type: 'line', label: 'perfect calibration', data: c.bins.map(function (b) { return (b.lower + b.upper) / 2; }), borderColor: '#111827', borderDash: [5, 4], pointRadius: 0, borderWidth: 1.5 });
      charts['reliability-' + split.name] = new Chart(box.canvas, {
        type: 'bar',
        data: { labels: names, datasets: datasets },
        options: {
          plugins: {
            title: { display: true, text: split.name + (c.fittedOn === split.name ? ' (temperature fitted here: optimistic)' : '') },
            tooltip: { callbacks: { label: function (item) { var counts = item.dataset.counts; return item.dataset.label.split(' (')[0] + ': ' + num(item.raw) + (counts ? ' over ' + counts[item.dataIndex] + ' ' + data.noun : ''); } } },
          },
          scales: { y: { min: 0, max: 1, title: { display: true, text: 'accuracy' } }, x: { title: { display: true, text: 'confidence (top probability)' } } },
        },
      });
    });
    if (data.calibration) {
      var honest = data.splits.length > 1
        ? 'The temperature (T = ' + data.calibration.temperature.toPrecision(3) + ') was fitted on the ' + data.calibration.fittedOn + ' split, so that split\'s ECE after scaling is optimistic; the test split, which played no part in training or scaling, is the honest check.'
        : 'The temperature (T = ' + data.calibration.temperature.toPrecision(3) + ') was fitted on the ' + data.calibration.fittedOn + ' split, so the ECE after scaling shown here is optimistic. Give a test split (a test/ folder) for an honest check.';
      calibration.appendChild(h('p', { class: 'note', text: honest + ' Temperature scaling divides the logits by T: it changes how confident the model is, never which class it predicts.' }));
    } else {
      calibration.appendChild(h('p', { class: 'note', text: 'No temperature was fitted (trained with --no-calibrate).' }));
    }
  }

  // Skipped inputs.
  var skipped = section('skipped', 'Skipped inputs');
  if (!data.skipped.length) skipped.appendChild(h('p', { class: 'note', text: 'None: every input was read.' }));
  else skipped.appendChild(table(['input', 'why'], data.skipped.map(function (s) { return [s.source, s.reason]; })));

  // Configuration and timings.
  var config = section('config', 'Configuration and timings');
  config.appendChild(h('h3', { text: 'model' }));
  config.appendChild(keyValues(data.model));
  config.appendChild(h('h3', { text: 'data' }));
  config.appendChild(keyValues(data.data));
  config.appendChild(h('h3', { text: 'training' }));
  config.appendChild(keyValues(data.config));
  config.appendChild(h('h3', { text: 'timings' }));
  config.appendChild(keyValues(data.timings));
})();
`;

/** The compare page: learning curves of the pre-trained and scratch contenders, and the table. */
export const COMPARE_SCRIPT = String.raw`
(function () {
  var data = REPORT;
  var charts = window.headstartReport.charts;
  var palette = ['#2563eb', '#f97316', '#059669', '#7c3aed', '#db2777'];
  var sizes = data.sizes.map(function (s) { return s.label; });

  var summary = section('summary', 'The head start, measured');
  var cards = h('div', { class: 'cards' });
  summary.appendChild(cards);
  data.contenders.forEach(function (c) {
    var reach = c.toTarget;
    cards.appendChild(card(c.name, reach ? reach.label + ' per class' : 'not reached',
      'to reach ' + pct(data.target.accuracy) + ' accuracy' + (reach ? ' · ≈ ' + seconds(reach.seconds) : '')));
  });
  summary.appendChild(h('p', { class: 'note', text: 'Target accuracy ' + num(data.target.accuracy) + ': ' + data.target.how + '. Accuracy is on ' + data.evaluation.n + ' held-out ' + data.noun + ' (' + data.evaluation.name + '), mean ± standard deviation over ' + data.seeds.length + ' seeded draws per size; both contenders train on the same draws with the same head.' }));

  var curve = section('curve', 'Learning curve');
  var box = chartBox('accuracy against training examples per class', true);
  curve.appendChild(box.box);
  var datasets = [];
  data.contenders.forEach(function (c, i) {
    var colour = palette[i % palette.length];
    var mean = c.points.map(function (p) { return p.accuracy.mean; });
    var upper = c.points.map(function (p) { return Math.min(1, p.accuracy.mean + p.accuracy.std); });
    var lower = c.points.map(function (p) { return Math.max(0, p.accuracy.mean - p.accuracy.std); });
    datasets.push({ label: c.name + ' +std', data: upper, borderWidth: 0, pointRadius: 0, fill: false, band: true });
    datasets.push({ label: c.name + ' ±std', data: lower, borderWidth: 0, pointRadius: 0, fill: '-1', backgroundColor: colour + '26', band: true });
    datasets.push({ label: c.name, data: mean, borderColor: colour, backgroundColor: colour, borderWidth: 2.5, pointRadius: 4 });
  });
  datasets.push({ label: 'target ' + pct(data.target.accuracy), data: sizes.map(function () { return data.target.accuracy; }), borderColor: '#111827', borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0 });
  charts.learningCurve = new Chart(box.canvas, {
    type: 'line',
    data: { labels: sizes, datasets: datasets },
    options: {
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { labels: { filter: function (item, chartData) { return !chartData.datasets[item.datasetIndex].band; } } },
        tooltip: { filter: function (item) { return !item.dataset.band; } },
      },
      scales: {
        x: { title: { display: true, text: 'training examples per class' } },
        y: { suggestedMin: 0.4, max: 1, title: { display: true, text: 'accuracy on held-out ' + data.noun } },
      },
    },
  });

  var results = section('table', 'Results');
  var headers = ['examples per class'].concat(data.contenders.map(function (c) { return c.name; }));
  var rows = data.sizes.map(function (s, i) {
    return [s.label].concat(data.contenders.map(function (c) { var p = c.points[i]; return num(p.accuracy.mean) + ' ± ' + num(p.accuracy.std); }));
  });
  results.appendChild(table(headers, rows));
  results.appendChild(h('h3', { text: 'Contenders' }));
  results.appendChild(table(['contender', 'feature time per example', 'head fit (largest size, mean)', 'features'], data.contenders.map(function (c) {
    return [c.name, seconds(c.secondsPerExample), seconds(c.points[c.points.length - 1].fitSeconds), c.description];
  }), 'contenders'));
  results.appendChild(h('p', { class: 'note', text: 'Time to reach the target = feature time per example × training examples + the head\'s mean fitting time at that size (measured on this machine; cached features are not counted as free).' }));
  var config = section('config', 'Configuration');
  config.appendChild(keyValues(data.settings));
})();
`;

/** The detection compare page: validation mAP50 of both contenders against the share of training images, and the table. */
export const DETECTION_COMPARE_SCRIPT = String.raw`
(function () {
  var data = REPORT;
  var charts = window.headstartReport.charts;
  var palette = ['#2563eb', '#f97316'];
  var sizes = data.sizes.map(function (s) { return s.percent + ' % (' + s.images + ')'; });
  var b = data.budget;

  var summary = section('summary', 'The head start, measured');
  var cards = h('div', { class: 'cards' });
  summary.appendChild(cards);
  data.contenders.forEach(function (c) {
    var last = c.points[c.points.length - 1];
    cards.appendChild(card(c.name, pct(last.mAP50), 'mAP50 with ' + last.images + ' training images'));
  });
  summary.appendChild(h('p', { class: 'note', text: 'mAP50 on ' + data.evaluation.n + ' validation images. Both contenders train on the same seeded draw at each size (seed ' + data.seed + ') with the same budget: ' + b.epochs + ' epochs, batch ' + b.batchSize + ', ' + b.augment + ' augmented view(s) per image, learning rate ' + b.lr + ', no early stopping; the epoch with the best validation mAP50 is kept for both.' }));

  var curve = section('curve', 'Learning curve');
  var box = chartBox('validation mAP50 against training images', true);
  curve.appendChild(box.box);
  charts.learningCurve = new Chart(box.canvas, {
    type: 'line',
    data: { labels: sizes, datasets: data.contenders.map(function (c, i) {
      return { label: c.name, data: c.points.map(function (p) { return p.mAP50; }), borderColor: palette[i], backgroundColor: palette[i], borderWidth: 2.5, pointRadius: 4 };
    }) },
    options: {
      interaction: { mode: 'index', intersect: false },
      scales: {
        x: { title: { display: true, text: 'share of the training images (images)' } },
        y: { min: 0, max: 1, title: { display: true, text: 'mAP50 on validation images' } },
      },
    },
  });

  var results = section('table', 'Results');
  var headers = ['training images'].concat(data.contenders.map(function (c) { return c.name + ' mAP50'; })).concat(data.contenders.map(function (c) { return c.name + ' time'; }));
  var rows = data.sizes.map(function (s, i) {
    return [sizes[i]].concat(data.contenders.map(function (c) { return num(c.points[i].mAP50); })).concat(data.contenders.map(function (c) { return seconds(c.points[i].seconds); }));
  });
  results.appendChild(table(headers, rows));
  results.appendChild(h('h3', { text: 'Contenders' }));
  results.appendChild(table(['contender', 'what trains'], data.contenders.map(function (c) { return [c.name, c.description]; }), 'contenders'));
  var config = section('config', 'Configuration');
  config.appendChild(keyValues(data.settings));
})();
`;
