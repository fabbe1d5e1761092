// The audit trail of all four services in one view (intake's /audit). Each service keeps its own trail and
// answers GET /api/audit to an admin; no service may read another's, so the trail is put together here: the
// page names each service's URL (same origin behind the proxy), this reads every page of each answer
// (flask-smorest's X-Pagination header), merges them newest first, shows people by name, and exports the
// filtered rows as CSV after each service has recorded the export (POST /api/audit/exports).
(function () {
  'use strict';
  var SERVICES = ['intake', 'scoring', 'referral', 'notify'];
  var PAGE_SIZE = 100;            // flask-smorest's largest page
  var MAX_PAGES = 50;             // per service: 5000 records; narrow the filters for more
  var SHOWN_ROWS = 300;           // the table; the CSV has every row loaded
  var STAFF_KEYS = {staff_id: true, counselor_id: true, supervisor_id: true, new_counselor_id: true};
  // The API's id rule (services/common/events.py ID_PATTERN): a probed URL can leave anything in a subject,
  // and one id the names API refuses would leave every name of its request out.
  var ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

  var trail = document.getElementById('audit-trail');
  var form = document.getElementById('audit-filters');
  var status = document.getElementById('audit-status');
  var table = document.getElementById('audit-table');
  var exportButton = document.getElementById('audit-export');
  var loaded = {rows: [], perService: {}, filters: {}, names: {client: {}, staff: {}}};

  // --- pure helpers ---

  function isoTime(at) {
    // The API's times are UTC without an offset.
    return /[zZ]|[+-]\d\d:\d\d$/.test(at) ? at : at + 'Z';
  }

  function subjects(subject) {
    // "client_id:abc,staff_id:def" -> [{key, value, kind}], kind "client", "staff" or null
    return (subject || '').split(',').filter(Boolean).map(function (part) {
      var cut = part.indexOf(':');
      var key = cut < 0 ? part : part.slice(0, cut);
      var value = cut < 0 ? '' : part.slice(cut + 1);
      var kind = !ID.test(value) ? null : key === 'client_id' ? 'client' : (STAFF_KEYS[key] ? 'staff' : null);
      return {key: key, value: value, kind: kind};
    });
  }

  function merge(perService) {
    var rows = [];
    SERVICES.forEach(function (service) {
      (perService[service] || []).forEach(function (record) { rows.push(record); });
    });
    return rows.sort(function (a, b) {
      var at = Date.parse(isoTime(b.at)) - Date.parse(isoTime(a.at));
      return at || (a.service < b.service ? -1 : a.service > b.service ? 1 : b.seq - a.seq);
    });
  }

  function csvCell(value) {
    var text = value === null || value === undefined ? '' : String(value);
    // A cell a spreadsheet would run as a formula (a name can start with "=") is kept as text.
    if (/^[=+\-@\t\r]/.test(text)) {
      text = "'" + text;
    }
    return '"' + text.replace(/"/g, '""') + '"';
  }

  function csv(rows, names) {
    var header = ['time_utc', 'service', 'person_id', 'person', 'role', 'action', 'outcome', 'clients',
                  'subject', 'clinic_id', 'request_id', 'seq'];
    var lines = [header.map(csvCell).join(',')];
    rows.forEach(function (r) {
      var clients = subjects(r.subject).filter(function (s) { return s.kind === 'client'; })
        .map(function (s) { return names.client[s.value] || s.value; });
      lines.push([isoTime(r.at), r.service, r.actor, r.actor ? names.staff[r.actor] || '' : '', r.role,
                  r.action, r.outcome, clients.join('; '), r.subject, r.clinic_id, r.request_id, r.seq]
        .map(csvCell).join(','));
    });
    return lines.join('\r\n') + '\r\n';
  }

  // --- reading the services ---

  function filters() {
    var data = new FormData(form);
    var query = {};
    if (data.get('actor')) { query.actor = data.get('actor'); }
    if (String(data.get('client') || '').trim()) { query.subject = 'client_id:' + String(data.get('client')).trim(); }
    // Whole days in the viewer's time zone: from the start of "From" to the end of "To".
    if (data.get('since')) { query.since = new Date(data.get('since') + 'T00:00:00').toISOString(); }
    if (data.get('until')) {
      var end = new Date(data.get('until') + 'T00:00:00');
      end.setDate(end.getDate() + 1);
      query.until = end.toISOString();
    }
    return query;
  }

  function queryString(params) {
    return Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + '=' + encodeURIComponent(params[k]);
    }).join('&');
  }

  function readService(service, query) {
    var base = trail.dataset['url' + service.charAt(0).toUpperCase() + service.slice(1)] + '/api/audit';
    var records = [];
    function page(number) {
      var params = Object.assign({page: number, page_size: PAGE_SIZE}, query);
      return fetch(base + '?' + queryString(params), {credentials: 'same-origin', headers: {Accept: 'application/json'}})
        .then(function (response) {
          if (!response.ok) { throw new Error(service + ' answered ' + response.status); }
          var pagination = JSON.parse(response.headers.get('X-Pagination') || '{}');
          return response.json().then(function (body) {
            records = records.concat(body);
            if (pagination.next_page && number < MAX_PAGES) { return page(pagination.next_page); }
            return {records: records, complete: !pagination.next_page};
          });
        });
    }
    return page(1);
  }

  function readNames(rows) {
    var wanted = {client: {}, staff: {}};
    rows.forEach(function (r) {
      if (r.actor && ID.test(r.actor)) { wanted.staff[r.actor] = true; }
      subjects(r.subject).forEach(function (s) { if (s.kind && s.value) { wanted[s.kind][s.value] = true; } });
    });
    var pairs = [];
    ['client', 'staff'].forEach(function (kind) {
      Object.keys(wanted[kind]).forEach(function (id) { pairs.push([kind, id]); });
    });
    // people.js's look-up (loaded before this script by the layout): one way of asking intake for names.
    return window.RapportPeople.lookUp(pairs);
  }

  // --- showing them ---

  function person(kind, id, names) {
    // The markup of the `person` macro (services/common/templates/_people.html), filled here: the trail
    // arrives after people.js has looked at the page, and the CSV needs the same names.
    var span = document.createElement('span');
    span.className = 'person';
    span.dataset.personKind = kind;
    span.dataset.personId = id;
    span.textContent = names[kind][id] || ((kind === 'client' ? 'Client ' : 'Staff member ') + id.slice(0, 6));
    return span;
  }

  function cell(row, content) {
    var td = document.createElement('td');
    if (typeof content === 'string') { td.textContent = content; } else if (content) { td.appendChild(content); }
    row.appendChild(td);
    return td;
  }

  function render() {
    var body = table.tBodies[0];
    body.textContent = '';
    loaded.rows.slice(0, SHOWN_ROWS).forEach(function (r) {
      var row = document.createElement('tr');
      var when = document.createElement('time');
      when.dateTime = isoTime(r.at);
      when.textContent = new Date(isoTime(r.at)).toLocaleString();
      cell(row, when).className = 'nowrap';
      cell(row, r.service).className = 'nowrap';
      var who = cell(row, r.actor ? person('staff', r.actor, loaded.names) : '–');
      if (r.role) { who.appendChild(document.createTextNode(' (' + r.role.replace('_', ' ') + ')')); }
      cell(row, r.action);
      cell(row, r.outcome);
      var about = cell(row, null);
      subjects(r.subject).forEach(function (s, index) {
        if (index > 0) { about.appendChild(document.createTextNode(' ')); }
        if (s.kind === 'client') {
          var only = document.createElement('button');
          only.type = 'button';
          only.className = 'link';
          only.dataset.filterClient = s.value;
          only.title = 'Show only this client';
          only.appendChild(person('client', s.value, loaded.names));
          about.appendChild(only);
        } else if (s.kind) {
          about.appendChild(person(s.kind, s.value, loaded.names));
        } else {
          about.appendChild(document.createTextNode(s.key + (s.value ? ': ' + s.value : '')));
        }
      });
      body.appendChild(row);
    });
    table.hidden = loaded.rows.length === 0;
  }

  function load() {
    var query = filters();
    // <html data-audit-loaded="true"> once the rows are in: what a test (or anything else) waits for.
    document.documentElement.dataset.auditLoaded = 'false';
    status.textContent = 'Loading the trail of every service…';
    exportButton.disabled = true;
    return Promise.all(SERVICES.map(function (service) { return readService(service, query); }))
      .then(function (answers) {
        var perService = {};
        var partial = [];
        answers.forEach(function (answer, i) {
          perService[SERVICES[i]] = answer.records;
          if (!answer.complete) { partial.push(SERVICES[i]); }
        });
        var rows = merge(perService);
        return readNames(rows).then(function (names) {
          loaded = {rows: rows, perService: perService, filters: query, names: names};
          render();
          var counts = SERVICES.map(function (s) { return s + ' ' + perService[s].length; }).join(', ');
          status.textContent = rows.length === 0 ? 'No records match these filters.'
            : rows.length + ' records (' + counts + ')' +
              (rows.length > SHOWN_ROWS ? '; showing the newest ' + SHOWN_ROWS + ', the CSV has them all' : '') +
              (partial.length ? '. Only the newest ' + PAGE_SIZE * MAX_PAGES + ' of ' + partial.join(', ') +
                ' are loaded: narrow the filters for the rest.' : '.');
          exportButton.disabled = rows.length === 0;
          document.documentElement.dataset.auditLoaded = 'true';
        });
      })
      .catch(function (error) {
        status.textContent = 'The trail could not be read (' + error.message + '). Reload the page to try again.';
        document.documentElement.dataset.auditLoaded = 'true';
      });
  }

  // --- export: recorded by each service whose records leave, then handed over ---

  function recordExport(service) {
    var url = trail.dataset['url' + service.charAt(0).toUpperCase() + service.slice(1)] + '/api/audit/exports';
    var body = Object.assign({rows: loaded.perService[service].length}, loaded.filters);
    return fetch(url, {method: 'POST', credentials: 'same-origin',
                       headers: {'Content-Type': 'application/json', Accept: 'application/json'},
                       body: JSON.stringify(body)})
      .then(function (response) { if (!response.ok) { throw new Error(service + ' answered ' + response.status); } });
  }

  function download() {
    exportButton.disabled = true;
    Promise.all(SERVICES.map(recordExport)).then(function () {
      var link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([csv(loaded.rows, loaded.names)], {type: 'text/csv;charset=utf-8'}));
      link.download = 'rapport-audit-' + new Date().toISOString().slice(0, 10) + '.csv';
      document.body.appendChild(link);
      link.click();
      link.remove();
      status.textContent = 'Exported ' + loaded.rows.length + ' records.';
    }).catch(function (error) {
      status.textContent = 'Not exported: the export could not be recorded (' + error.message + '). Try again.';
    }).finally(function () { exportButton.disabled = false; });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    history.replaceState(null, '', '?' + new URLSearchParams(new FormData(form)).toString());
    load();
  });
  table.addEventListener('click', function (event) {
    var button = event.target.closest('[data-filter-client]');
    if (button) {
      form.elements.client.value = button.dataset.filterClient;
      form.requestSubmit();
    }
  });
  exportButton.addEventListener('click', download);
  load();
})();
