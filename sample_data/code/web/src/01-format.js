/* Formatting helpers shared by the dashboard widgets. */
(function (global) {
  'use strict';

  var KM_PER_MILE = 1.609344;

  /**
   * Format a distance given in metres.
   * @param {number} metres
   * @param {boolean} imperial
   * @returns {string}
   */
  function distance(metres, imperial) {
    if (imperial) {
      return (metres / 1000 / KM_PER_MILE).toFixed(1) + ' mi';
    }
    if (metres < 1000) {
      return Math.round(metres) + ' m';
    }
    return (metres / 1000).toFixed(1) + ' km';
  }

  function duration(seconds) {
    var s = Math.round(seconds);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var pad = m < 10 ? '0' + m : String(m);
    if (h > 0) {
      return h + 'h ' + pad + 'm';
    }
    var sec = s % 60;
    return m + 'm ' + (sec < 10 ? '0' + sec : sec) + 's';
  }

  function monthName(index) {
    return ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun',
            'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][index];
  }

  global.SprocketFormat = { distance: distance, duration: duration, monthName: monthName };
})(window);
