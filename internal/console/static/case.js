// Live case page: follows the case's event stream (/api/v1/events) and, on
// a change, reads the page again and puts its changed sections in place,
// with a visible note. Without JavaScript the page is the same, and a
// reload shows the news.
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var status = document.getElementById('live-status');
  var seen = Number(live.dataset.version);
  // Sections replaced whole from the fresh page. An action form is kept
  // while both pages have it, so what is being typed is not lost; its box
  // is replaced when the form appears or goes.
  var sections = ['why', 'attention-box', 'summary', 'request-box', 'steps-box', 'timeline', 'messages-box'];
  var forms = ['resolve', 'request-again', 'ship', 'cancel', 'message', 'modify'];
  var busy = false, pending = null;

  function say(text) {
    status.textContent = text;
    status.hidden = false;
  }

  function swap(doc, id) {
    var now = document.getElementById(id), fresh = doc.getElementById(id);
    if (now && fresh) {
      // A fold the reader opened stays open.
      now.querySelectorAll('details[open][id]').forEach(function (d) {
        var f = fresh.querySelector('#' + CSS.escape(d.id));
        if (f) {
          f.open = true;
        }
      });
      now.replaceWith(document.adoptNode(fresh));
    }
  }

  function refresh(change) {
    if (busy) {
      pending = change;
      return;
    }
    busy = true;
    fetch(location.pathname, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        sections.forEach(function (id) { swap(doc, id); });
        forms.forEach(function (id) {
          if (!(document.getElementById(id) && doc.getElementById(id))) {
            swap(doc, id + '-box');
          }
        });
        say('Updated at ' + new Date().toLocaleTimeString() + ': the case is now ' + change.state +
          (change.attentionCode ? ' (' + change.attentionCode + ')' : '') + ', version ' + change.version + '.');
      })
      .catch(function (err) {
        say('The case changed (now ' + change.state + ') but the page could not be read again (' + err.message + '): reload it.');
      })
      .finally(function () {
        busy = false;
        if (pending) {
          var next = pending;
          pending = null;
          refresh(next);
        }
      });
  }

  var url = '/api/v1/events?case=' + encodeURIComponent(live.dataset.case) +
    '&cursor=' + encodeURIComponent(live.dataset.cursor);
  var events = new EventSource(url);
  events.addEventListener('case', function (ev) {
    var change = JSON.parse(ev.data);
    if (change.version <= seen) {
      return; // a repeat (the stream delivers at least once), or what the page shows
    }
    seen = change.version;
    refresh(change);
  });
})();
