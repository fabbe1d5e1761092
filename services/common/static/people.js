// People (and clinics) by name on staff pages (services/common/templates/_people.html): every
// [data-person-kind][data-person-id] element shows a stand-in; this asks intake's API, on the same origin with
// the session cookie, for the names of the ids on the page and puts them in. Intake answers only the ids the
// viewer may see (and audits the read); the others keep their stand-in. When done, successful or not, it marks
// <html data-people-loaded="true"> so that a test (or anything else) knows the page is complete.
(function () {
  'use strict';
  var script = document.currentScript;
  // A request line stays well under the servers' limit (gunicorn: 4094 bytes); a page with more people
  // than fit in one is asked about in a few requests instead of one.
  var MAX_URL_LENGTH = 3000;
  // The kinds a page may name, and the key of each in the API's answer.
  var KEYS = {client: 'clients', staff: 'staff', clinic: 'clinics'};

  function done() {
    document.documentElement.dataset.peopleLoaded = 'true';
  }

  function requestUrls(base, wanted) {
    var urls = [];
    var url = base;
    var count = 0;
    wanted.forEach(function (pair) {
      var param = encodeURIComponent(pair[0]) + '=' + encodeURIComponent(pair[1]);
      if (count > 0 && url.length + 1 + param.length > MAX_URL_LENGTH) {
        urls.push(url);
        url = base;
        count = 0;
      }
      url += (count === 0 ? '?' : '&') + param;
      count += 1;
    });
    if (count > 0) {
      urls.push(url);
    }
    return urls;
  }

  // The names of [kind, id] pairs the viewer may see: {client: {id: name}, staff: {...}, clinic: {...}}; ids
  // intake does not answer for (or a failed request) are simply missing.
  function lookUp(wanted) {
    var base = script && script.dataset.peopleUrl;
    var answers = base && wanted.length ? requestUrls(base, wanted).map(function (url) {
      return fetch(url, {credentials: 'same-origin', headers: {Accept: 'application/json'}})
        .then(function (response) { return response.ok ? response.json() : {}; })
        .catch(function () { return {}; });
    }) : [];
    return Promise.all(answers).then(function (found) {
      var names = {};
      Object.keys(KEYS).forEach(function (kind) {
        names[kind] = Object.create(null);
        found.forEach(function (answer) { Object.assign(names[kind], answer[KEYS[kind]] || {}); });
      });
      return names;
    });
  }

  function fill(elements) {
    var seen = {};
    var wanted = [];
    elements.forEach(function (element) {
      var kind = element.dataset.personKind;
      var id = element.dataset.personId;
      if (KEYS[kind] && id && !seen[kind + ':' + id]) {
        seen[kind + ':' + id] = true;
        wanted.push([kind, id]);
      }
    });
    lookUp(wanted).then(function (names) {
      elements.forEach(function (element) {
        var kind = element.dataset.personKind;
        var name = KEYS[kind] ? names[kind][element.dataset.personId] : undefined;
        if (typeof name === 'string') {
          element.textContent = name;  // text, never markup: a name is data
        }
      });
    }).finally(done);
  }

  // For a page that shows people after loading (the audit trail): the same look-up.
  window.RapportPeople = {lookUp: lookUp};

  function start() {
    fill(Array.prototype.slice.call(document.querySelectorAll('[data-person-kind][data-person-id]')));
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
