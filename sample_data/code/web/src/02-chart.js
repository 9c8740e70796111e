/* A tiny dependency-free bar chart drawn as SVG. */
(function (global) {
  'use strict';

  var SVG_NS = 'http:' + '//www.w3.org/2000/svg';

  function el(name, attrs) {
    var node = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, attrs[key]);
    });
    return node;
  }

  /**
   * Draw a bar chart into `container`.
   * @param {HTMLElement} container
   * @param {{label: string, value: number}[]} data
   * @param {{width?: number, height?: number, colour?: string, format?: function}} opts
   */
  function barChart(container, data, opts) {
    opts = opts || {};
    var width = opts.width || 640;
    var height = opts.height || 220;
    var pad = 28;
    var max = Math.max.apply(null, data.map(function (d) { return d.value; }).concat([1]));
    var barW = (width - pad * 2) / Math.max(data.length, 1);
    var svg = el('svg', { viewBox: '0 0 ' + width + ' ' + height, role: 'img' });

    data.forEach(function (d, i) {
      var h = (height - pad * 2) * (d.value / max);
      var x = pad + i * barW;
      var y = height - pad - h;
      var rect = el('rect', {
        x: x + 2, y: y, width: Math.max(barW - 4, 1), height: h,
        fill: opts.colour || '#1f5f8b', rx: 2
      });
      var title = el('title');
      title.textContent = d.label + ': ' + (opts.format ? opts.format(d.value) : d.value);
      rect.appendChild(title);
      svg.appendChild(rect);

      var label = el('text', {
        x: x + barW / 2, y: height - pad + 14, 'text-anchor': 'middle', 'font-size': 11
      });
      label.textContent = d.label;
      svg.appendChild(label);
    });

    container.innerHTML = '';
    container.appendChild(svg);
    return svg;
  }

  global.SprocketChart = { barChart: barChart };
})(window);
