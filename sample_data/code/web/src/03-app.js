/* Dashboard entry point: load the exported ride summary and render it. */
(function (global) {
  'use strict';

  var fmt = global.SprocketFormat;
  var chart = global.SprocketChart;
  var state = { imperial: false, year: null, rides: [] };

  function totalsByMonth(rides) {
    var months = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rides.forEach(function (r) {
      var d = new Date(r.started_at);
      if (!isNaN(d.getTime())) {
        months[d.getMonth()] += r.distance_m;
      }
    });
    return months.map(function (v, i) { return { label: fmt.monthName(i), value: v }; });
  }

  function renderSummary(root, rides) {
    var dist = 0;
    var gain = 0;
    var moving = 0;
    rides.forEach(function (r) {
      dist += r.distance_m;
      gain += r.gain_m;
      moving += r.moving_s;
    });
    root.querySelector('[data-k="count"]').textContent = String(rides.length);
    root.querySelector('[data-k="distance"]').textContent = fmt.distance(dist, state.imperial);
    root.querySelector('[data-k="gain"]').textContent = Math.round(gain) + ' m';
    root.querySelector('[data-k="moving"]').textContent = fmt.duration(moving);
  }

  function render() {
    var rides = state.rides.filter(function (r) {
      return !state.year || String(r.started_at).slice(0, 4) === String(state.year);
    });
    renderSummary(document.getElementById('summary'), rides);
    chart.barChart(document.getElementById('months'), totalsByMonth(rides), {
      format: function (v) { return fmt.distance(v, state.imperial); }
    });
  }

  function load(url) {
    return fetch(url, { headers: { Accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) {
          throw new Error('HTTP ' + res.status + ' loading ' + url);
        }
        return res.json();
      })
      .then(function (data) {
        state.rides = data.rides || [];
        state.year = data.year || null;
        render();
      })
      .catch(function (err) {
        var box = document.getElementById('error');
        box.textContent = 'Could not load rides: ' + err.message;
        box.hidden = false;
      });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var toggle = document.getElementById('units');
    if (toggle) {
      toggle.addEventListener('change', function () {
        state.imperial = toggle.checked;
        render();
      });
    }
    load('rides.json');
  });

  global.SprocketApp = { totalsByMonth: totalsByMonth, render: render };
})(window);
