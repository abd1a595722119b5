// Live lists (the overview and the cases page): follow the event stream of
// every case (/api/v1/events) and, when cases change, read the page again
// (same URL: same filters, order and page) and put its listed sections
// (data-sections) in place, with a visible note. Changes are gathered for
// a second before one read, so a busy store costs one read a second at
// most. Without JavaScript the page is the same, and a reload shows the news.
(function () {
  'use strict';
  var live = document.getElementById('live-list');
  if (!live || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var status = document.getElementById('live-status');
  var sections = live.dataset.sections.split(',');
  var changed = 0, timer = null, busy = false;

  function say(text) {
    status.textContent = text;
    status.hidden = false;
  }

  function refresh() {
    timer = null;
    if (busy) {
      timer = setTimeout(refresh, 1000);
      return;
    }
    busy = true;
    var n = changed;
    changed = 0;
    fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        sections.forEach(function (id) {
          var now = document.getElementById(id), fresh = doc.getElementById(id);
          if (now && fresh) {
            now.replaceWith(document.adoptNode(fresh));
          }
        });
        say('Updated at ' + new Date().toLocaleTimeString() + ' after ' + n + ' case change(s).');
      })
      .catch(function (err) {
        say(n + ' case(s) changed but the page could not be read again (' + err.message + '): reload it.');
      })
      .finally(function () {
        busy = false;
      });
  }

  // versions: the newest version of each case the stream sent. It sends
  // again what a reconnect's cursor, and the few seconds it reads again
  // behind it, cover (at least once): a version seen is not a change.
  var versions = {};
  var events = new EventSource('/api/v1/events?cursor=' + encodeURIComponent(live.dataset.cursor));
  events.addEventListener('case', function (ev) {
    var change = JSON.parse(ev.data);
    if (versions[change.id] >= change.version) {
      return;
    }
    versions[change.id] = change.version;
    changed++;
    if (!timer) {
      timer = setTimeout(refresh, 1000);
    }
  });
})();
