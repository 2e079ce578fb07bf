/**
 * The detection report's script (plain browser JavaScript after COMMON_SCRIPT's helpers): summary
 * cards, per-class AP, PR curves (Chart.js), and the gallery — each thumbnail with an SVG overlay
 * of ground truth (dashed; red when missed) and predictions (solid; green true positives, orange
 * false positives), filtered by class, false positives and misses. A box with per-box Grad-CAM has a
 * button under its image that lays its map over the thumbnail: the embedded grayscale PNG coloured
 * by an SVG filter (the heat colours of `src/explain/image-map.ts`), so no pixels are touched in
 * script. DOM built with textContent only. `window.headstartReport.filterGallery`, `.showGradCam`
 * and `.charts.pr` are exposed for tests.
 */
export const DETECTION_SCRIPT = String.raw`
(function () {
  var data = REPORT;
  var m = data.metrics;
  var classes = data.classes;
  var charts = window.headstartReport.charts;
  var SVG = 'http://www.w3.org/2000/svg';
  var PALETTE = ['#4363d8', '#911eb4', '#42d4f4', '#f032e6', '#469990', '#9a6324', '#000075', '#808000'];

  var summary = section('summary', 'Summary');
  var cards = h('div', { class: 'cards' });
  summary.appendChild(cards);
  cards.appendChild(card('mAP@[.50:.95]', num(m.mAP), 'COCO\'s primary metric · ' + m.images + ' images (' + data.split + ')'));
  cards.appendChild(card('mAP50', num(m.mAP50), 'AP at IoU 0.5'));
  cards.appendChild(card('mAP75', num(m.mAP75), 'AP at IoU 0.75'));
  cards.appendChild(card('AR@100', num(m.AR100), 'AR@1 ' + num(m.AR1) + ' · AR@10 ' + num(m.AR10)));
  var t = m.atThreshold;
  cards.appendChild(card('P / R / F1 at ' + t.threshold, num(t.precision) + ' / ' + num(t.recall) + ' / ' + num(t.f1), t.truePositives + ' TP · ' + t.falsePositives + ' FP · ' + t.falseNegatives + ' missed (IoU 0.5)'));
  summary.appendChild(table(['', 'all', 'small', 'medium', 'large'], [
    ['AP@[.50:.95]', num(m.mAP), num(m.APsmall), num(m.APmedium), num(m.APlarge)],
    ['AR@100', num(m.AR100), num(m.ARsmall), num(m.ARmedium), num(m.ARlarge)],
  ]));
  summary.appendChild(h('p', { class: 'note', text: 'Detector ' + data.detector + ' (' + data.layout + ') on ' + data.data + '. Numbers as pycocotools\' COCOeval computes them; -1 / n/a where no ground truth of that size exists.' }));

  var perClass = section('classes', 'Per-class AP');
  perClass.appendChild(table(['class', 'boxes', 'AP', 'AP50', 'AP75', 'AR@100', 'precision', 'recall', 'F1'], m.perClass.map(function (c) {
    return [c.name, String(c.support), num(c.AP), num(c.AP50), num(c.AP75), num(c.AR100), num(c.precision), num(c.recall), num(c.f1)];
  }), 'classes'));

  var curves = section('pr', 'Precision–recall curves');
  curves.appendChild(h('p', { class: 'note', text: 'COCO\'s interpolated precision at 101 recall points, per class, at IoU 0.5 (solid) and 0.75 (dashed).' }));
  var prBox = chartBox('precision-recall curves', true);
  curves.appendChild(prBox.box);
  var datasets = [];
  classes.forEach(function (name, c) {
    var colour = PALETTE[c % PALETTE.length];
    [['iou50', []], ['iou75', [6, 4]]].forEach(function (pair) {
      var values = m.prCurves[pair[0]][c];
      if (!values || values[0] === -1) return;
      datasets.push({ label: name + ' @' + (pair[0] === 'iou50' ? '0.5' : '0.75'), data: m.prCurves.recall.map(function (r, i) { return { x: r, y: values[i] }; }), borderColor: colour, borderDash: pair[1], pointRadius: 0, borderWidth: 2 });
    });
  });
  charts.pr = new Chart(prBox.canvas, {
    type: 'line',
    data: { datasets: datasets },
    options: { parsing: false, scales: { x: { type: 'linear', min: 0, max: 1, title: { display: true, text: 'recall' } }, y: { min: 0, max: 1, title: { display: true, text: 'precision' } } } },
  });

  var gallerySection = section('gallery', 'Images');
  gallerySection.appendChild(h('p', { class: 'note', text: 'Ground truth dashed (red when missed), predictions scoring ≥ ' + data.threshold + ' solid: green when they match a ground-truth box of their class at IoU ≥ 0.5, orange when they are false positives.' + (data.galleryOmitted ? ' ' + data.galleryOmitted + ' further images are not shown.' : '') }));
  var classSelect = h('select', { id: 'gallery-class', onchange: function () { filterGallery(); } }, h('option', { value: '', text: 'all classes' }), classes.map(function (name, c) { return h('option', { value: String(c), text: name }); }));
  var fpBox = h('input', { type: 'checkbox', id: 'gallery-fp', onchange: function () { filterGallery(); } });
  var missBox = h('input', { type: 'checkbox', id: 'gallery-missed', onchange: function () { filterGallery(); } });
  var count = h('span', { id: 'gallery-count', class: 'note' });
  gallerySection.appendChild(h('div', { class: 'controls' }, h('label', {}, 'class ', classSelect), ' ', h('label', {}, fpBox, ' with false positives'), ' ', h('label', {}, missBox, ' with misses'), ' ', count));
  var explained = data.explained;
  gallerySection.appendChild(h('p', { class: 'note', text: explained.method === 'gradcam'
    ? 'Per-box Grad-CAM (' + explained.boxes + ' boxes: each image\'s false positives and its ' + explained.mostConfident + ' most confident predictions): the buttons under an image lay a box\'s map over it — red where the feature map raised that box\'s score, blue where it did not.'
    : 'No per-box Grad-CAM: ' + explained.reason + '.' }));
  var grid = h('ul', { id: 'gallery-list', class: 'gallery' });
  gallerySection.appendChild(grid);
  // The heat colours (dark blue → cyan → yellow → red) and opacity 0.25 + 0.45·value of the
  // explain overlays, applied to a grayscale map; sRGB, as the stops are sRGB values.
  var defs = document.createElementNS(SVG, 'svg');
  defs.setAttribute('width', '0'); defs.setAttribute('height', '0'); defs.setAttribute('aria-hidden', 'true');
  defs.style.position = 'absolute';
  var filter = document.createElementNS(SVG, 'filter');
  filter.setAttribute('id', 'heat'); filter.setAttribute('color-interpolation-filters', 'sRGB');
  var alpha = document.createElementNS(SVG, 'feColorMatrix');
  alpha.setAttribute('type', 'matrix');
  alpha.setAttribute('values', '1 0 0 0 0  0 1 0 0 0  0 0 1 0 0  0.45 0 0 0 0.25');
  filter.appendChild(alpha);
  var colours = document.createElementNS(SVG, 'feComponentTransfer');
  [['feFuncR', '48 40 30 250 220'], ['feFuncG', '18 130 220 220 30'], ['feFuncB', '59 240 200 40 20']].forEach(function (pair) {
    var f = document.createElementNS(SVG, pair[0]);
    f.setAttribute('type', 'table');
    f.setAttribute('tableValues', pair[1].split(' ').map(function (v) { return (Number(v) / 255).toFixed(4); }).join(' '));
    colours.appendChild(f);
  });
  filter.appendChild(colours);
  defs.appendChild(filter);
  gallerySection.appendChild(defs);

  function overlay(image, c) {
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + image.width + ' ' + image.height);
    svg.setAttribute('class', 'boxes');
    var stroke = Math.max(2, Math.max(image.width, image.height) / 160);
    function rect(box, colour, dashed, kind, caption) {
      var r = document.createElementNS(SVG, 'rect');
      r.setAttribute('x', box[0]); r.setAttribute('y', box[1]);
      r.setAttribute('width', Math.max(0, box[2] - box[0])); r.setAttribute('height', Math.max(0, box[3] - box[1]));
      r.setAttribute('fill', 'none'); r.setAttribute('stroke', colour); r.setAttribute('stroke-width', stroke);
      if (dashed) r.setAttribute('stroke-dasharray', stroke * 3 + ' ' + stroke * 2);
      r.setAttribute('data-kind', kind);
      var title = document.createElementNS(SVG, 'title');
      title.textContent = caption;
      r.appendChild(title);
      svg.appendChild(r);
    }
    image.truth.forEach(function (b) {
      if (c !== null && b.label !== c) return;
      rect(b.box, b.crowd ? '#9ca3af' : b.matched ? '#16a34a' : '#dc2626', true, b.crowd ? 'crowd' : b.matched ? 'truth' : 'missed', 'ground truth: ' + classes[b.label] + (b.crowd ? ' (crowd, ignored)' : b.matched ? '' : ' (missed)'));
    });
    image.predictions.forEach(function (p) {
      if (c !== null && p.label !== c) return;
      rect(p.box, p.outcome === 'tp' ? '#16a34a' : p.outcome === 'fp' ? '#f97316' : '#9ca3af', false, p.outcome, describePrediction(p));
    });
    return svg;
  }

  function describePrediction(p) {
    return classes[p.label] + ' ' + p.score.toFixed(2) + ' (' + (p.outcome === 'tp' ? 'true positive' : p.outcome === 'fp' ? 'false positive' : 'on a crowd region') + ')';
  }

  /** Lays prediction k's map over the image's boxes, or removes it when it is already shown; returns whether it is shown. */
  function toggleMap(li, image, k) {
    var svg = li.querySelector('svg.boxes');
    var current = svg.querySelector('image[data-kind="gradcam"]');
    var wasShown = current && current.getAttribute('data-prediction') === String(k);
    if (current) svg.removeChild(current);
    li.querySelectorAll('button.gradcam').forEach(function (b) { b.setAttribute('aria-pressed', 'false'); });
    if (wasShown) return false;
    var p = image.predictions[k];
    var map = document.createElementNS(SVG, 'image');
    map.setAttribute('href', p.gradCam.src);
    map.setAttribute('x', '0'); map.setAttribute('y', '0');
    map.setAttribute('width', image.width); map.setAttribute('height', image.height);
    map.setAttribute('preserveAspectRatio', 'none');
    map.setAttribute('filter', 'url(#heat)');
    map.setAttribute('data-kind', 'gradcam');
    map.setAttribute('data-prediction', String(k));
    svg.insertBefore(map, svg.firstChild);
    li.querySelector('button.gradcam[data-prediction="' + k + '"]').setAttribute('aria-pressed', 'true');
    return true;
  }

  function mapButtons(li, image, c) {
    var buttons = [];
    image.predictions.forEach(function (p, k) {
      if (!p.gradCam || (c !== null && p.label !== c)) return;
      buttons.push(h('button', { type: 'button', class: 'gradcam' + (p.outcome === 'fp' ? ' fp' : ''), dataset: { prediction: String(k) }, 'aria-pressed': 'false', title: 'Grad-CAM of ' + describePrediction(p) + ', peak at (' + p.gradCam.peak.x + ', ' + p.gradCam.peak.y + ')', text: classes[p.label] + ' ' + p.score.toFixed(2) + (p.outcome === 'fp' ? ' FP' : ''), onclick: function () { toggleMap(li, image, k); } }));
    });
    return buttons.length ? h('div', { class: 'maps' }, 'Grad-CAM: ', buttons) : null;
  }

  /** Shows the images matching the filters; returns their sources (for tests). */
  function filterGallery() {
    var c = classSelect.value === '' ? null : Number(classSelect.value);
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    var shown = data.gallery.filter(function (image) {
      var truth = image.truth.filter(function (b) { return c === null || b.label === c; });
      var predictions = image.predictions.filter(function (p) { return c === null || p.label === c; });
      if (c !== null && truth.length === 0 && predictions.length === 0) return false;
      if (fpBox.checked && !predictions.some(function (p) { return p.outcome === 'fp'; })) return false;
      if (missBox.checked && !truth.some(function (b) { return !b.matched && !b.crowd; })) return false;
      return true;
    });
    shown.forEach(function (image) {
      var fp = image.predictions.filter(function (p) { return (c === null || p.label === c) && p.outcome === 'fp'; }).length;
      var missed = image.truth.filter(function (b) { return (c === null || b.label === c) && !b.matched && !b.crowd; }).length;
      var figure = h('div', { class: 'thumb' }, image.thumbnail ? h('img', { src: image.thumbnail, alt: image.source }) : h('div', { class: 'missing', text: image.missing || 'no preview' }));
      figure.appendChild(overlay(image, c));
      var li = h('li', { dataset: { source: image.source } }, figure, h('div', { class: 'caption', text: image.source.split(/[\\/]/).pop() + ' · ' + image.truth.length + ' boxes · ' + image.predictions.length + ' predicted' + (fp ? ' · ' + fp + ' FP' : '') + (missed ? ' · ' + missed + ' missed' : '') }));
      var buttons = mapButtons(li, image, c);
      if (buttons) li.appendChild(buttons);
      grid.appendChild(li);
    });
    count.textContent = shown.length + ' of ' + data.gallery.length + ' images';
    return shown.map(function (image) { return image.source; });
  }
  window.headstartReport.filterGallery = function (options) {
    classSelect.value = options.classIndex === undefined || options.classIndex === null ? '' : String(options.classIndex);
    fpBox.checked = Boolean(options.falsePositives);
    missBox.checked = Boolean(options.misses);
    return filterGallery();
  };
  window.headstartReport.showGradCam = function (source, k) {
    var index = data.gallery.findIndex(function (image) { return image.source === source; });
    var li = Array.prototype.find.call(grid.children, function (item) { return item.dataset.source === source; });
    if (index < 0 || !li || !data.gallery[index].predictions[k] || !data.gallery[index].predictions[k].gradCam) return false;
    return toggleMap(li, data.gallery[index], k);
  };
  filterGallery();

  if (data.skipped.length) {
    var skipped = section('skipped', 'Skipped while reading the data');
    skipped.appendChild(table(['file', 'reason'], data.skipped.slice(0, 200).map(function (s) { return [s.source, s.reason]; })));
  }
  var style = document.createElement('style');
  style.textContent = '.gallery{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}.thumb{position:relative}.thumb img{width:100%;display:block}.thumb svg.boxes{position:absolute;inset:0;width:100%;height:100%}.caption{font-size:12px;color:#4b5563;word-break:break-all}.missing{padding:2rem;background:#f3f4f6}.maps{font-size:12px;margin-top:4px}.maps button{font-size:11px;margin:2px;padding:1px 6px;border:1px solid #16a34a;border-radius:3px;background:#fff;cursor:pointer}.maps button.fp{border-color:#f97316}.maps button[aria-pressed=true]{background:#fde68a}';
  document.head.appendChild(style);
})();
`;
