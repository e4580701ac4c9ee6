/**
 * The status page's script, sent inline. It polls `GET status` (relative, so the page also works
 * behind a path prefix) once a second and re-renders from the JSON; every value goes into the DOM
 * as text, never as HTML. Plain ES2020 in a string: it runs in the browser, not in Node.
 * Stable hooks for tests and scrapers: `data-subscription`, `data-partition`, `data-service`,
 * `data-field`.
 */
export const STATUS_PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var REFRESH_MS = Math.max(250, Number(params.get('refreshMs')) || 1000);
  var lastOk = 0;

  function h(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === undefined || value === null || value === false) return;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'class') node.className = value;
        else node.setAttribute(key, String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) child.forEach(function (c) { if (c) node.appendChild(c); });
      else if (typeof child === 'object') node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
    return node;
  }
  function badge(text, kind, field) {
    return h('span', { class: 'badge ' + kind, 'data-field': field, text: text });
  }
  function table(headers, rows, numeric) {
    numeric = numeric || [];
    return h('table', null,
      h('thead', null, h('tr', null, headers.map(function (title, i) {
        return h('th', { class: numeric.indexOf(i) >= 0 ? 'num' : null, text: title });
      }))),
      h('tbody', null, rows));
  }
  function td(value, attrs) {
    attrs = attrs || {};
    if (value !== null && typeof value === 'object') return h('td', attrs, value);
    attrs.text = value === null || value === undefined ? '\u2013' : value;
    return h('td', attrs);
  }
  function num(value, field) {
    return td(value === null || value === undefined ? null : Number(value).toLocaleString('en-US'), {
      class: 'num', 'data-field': field
    });
  }
  function empty(text) { return h('p', { class: 'empty', text: text }); }
  function section(id, title, wide) {
    var node = document.getElementById(id);
    if (!node) {
      node = h('section', { id: id, class: wide ? 'wide' : null });
      document.querySelector('main').appendChild(node);
    }
    node.replaceChildren(h('h2', { text: title }));
    return node;
  }
  function ago(iso) {
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + ' s ago';
    if (seconds < 3600) return Math.round(seconds / 60) + ' min ago';
    return Math.round(seconds / 3600) + ' h ago';
  }
  function duration(seconds) {
    var d = Math.floor(seconds / 86400), hr = Math.floor((seconds % 86400) / 3600);
    var m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (d ? d + 'd ' : '') + (d || hr ? hr + 'h ' : '') + (d || hr || m ? m + 'm ' : '') + s + 's';
  }

  function renderHeader(status) {
    var ready = document.getElementById('ready');
    ready.className = 'badge ' + (status.ready ? 'ok' : 'bad');
    ready.textContent = status.ready ? 'ready' : 'not ready';
    document.getElementById('meta').textContent =
      'v' + status.version + ' \u00b7 pid ' + status.pid + ' \u00b7 up ' + duration(status.uptimeSeconds);
  }

  function renderChecks(status) {
    var node = section('checks', 'Readiness');
    node.appendChild(table(['Check', 'State', 'Reason'], status.checks.map(function (check) {
      return h('tr', { 'data-check': check.name },
        td(check.name),
        td(badge(check.ready ? 'ready' : 'not ready', check.ready ? 'ok' : 'bad', 'ready')),
        td(check.reason || '', { class: check.ready ? null : 'error-text', 'data-field': 'reason' }));
    })));
  }

  function renderListeners(status) {
    var node = section('listeners', 'Listeners');
    var rows = [];
    Object.keys(status.components).forEach(function (name) {
      var listener = status.components[name].listener;
      if (!listener) return;
      var state = listener.draining ? badge('draining', 'warn', 'state')
        : listener.listening ? badge('listening', 'ok', 'state') : badge('closed', 'bad', 'state');
      rows.push(h('tr', { 'data-listener': listener.name },
        td(listener.name), td(h('span', { class: 'mono', text: listener.url || '\u2013' })), td(state),
        num(listener.connections, 'connections'), num(listener.inFlight, 'in-flight')));
    });
    node.appendChild(rows.length ? table(['Listener', 'Address', 'State', 'Connections', 'In flight'], rows, [3, 4])
      : empty('No listener.'));
  }

  function renderSubscriptions(status) {
    var node = section('subscriptions', 'Push subscriptions', true);
    var component = status.components.subscriptions;
    var list = component && component.subscriptions || [];
    if (!list.length) { node.appendChild(empty('No push subscription configured.')); return; }
    list.forEach(function (sub) {
      var state = !sub.joined ? badge('not joined', 'bad', 'state')
        : sub.paused ? badge('paused', 'warn', 'state') : badge('running', 'ok', 'state');
      var error = sub.lastDeliveryError;
      var card = h('div', { class: 'sub', 'data-subscription': sub.name },
        h('h3', null, sub.name + ' ', state),
        h('div', { class: 'kv' },
          h('span', null, 'group ', h('b', { class: 'mono', text: sub.group })),
          h('span', null, 'topics ', h('b', { class: 'mono', text: sub.topics.length ? sub.topics.join(', ') : '/' + sub.topicPattern + '/' })),
          h('span', null, 'path ', h('b', { class: 'mono', text: sub.path })),
          h('span', null, 'mode ', h('b', { text: sub.mode })),
          h('span', null, 'lag ', h('b', { 'data-field': 'lag', text: Number(sub.lag).toLocaleString('en-US') })),
          h('span', null, 'paused partitions ', h('b', { 'data-field': 'paused-partitions', text: sub.pausedPartitions }))),
        sub.crashed ? h('p', { class: 'error-text', text: 'consumer crashed: ' + sub.crashed }) : null,
        h('p', { class: error ? 'error-text' : 'empty', 'data-field': 'last-error',
          text: error ? 'last delivery error (' + ago(error.at) + '): ' + error.error : 'no delivery error' }),
        sub.partitions.length
          ? table(['Topic', 'Partition', 'Lag', 'State'], sub.partitions.map(function (p) {
              return h('tr', { 'data-partition': p.topic + '/' + p.partition },
                td(p.topic), num(p.partition, 'partition'), num(p.lag, 'lag'),
                td(p.paused === null ? badge('unknown', 'muted', 'state')
                  : p.paused ? badge('paused', 'warn', 'state') : badge('running', 'ok', 'state')));
            }), [1, 2])
          : empty('No partition assigned.'));
      node.appendChild(card);
    });
  }

  function renderUpstreams(status) {
    var node = section('upstreams', 'Upstream services (egress)', true);
    var component = status.components.egress;
    var list = component && component.services || [];
    if (!list.length) { node.appendChild(empty('Egress is off or has no service.')); return; }
    node.appendChild(table(['Service', 'Balancer', 'Endpoints', 'Ejected', 'Breaker', 'Retry budget (10 s)', 'Endpoint list'],
      list.map(function (service) {
        var breaker = service.breaker;
        var budget = service.retryBudget;
        var endpoints = [];
        service.groups.forEach(function (group) {
          group.endpoints.forEach(function (endpoint) {
            endpoints.push(h('div', { class: 'mono', 'data-endpoint': endpoint.origin },
              (group.name ? group.name + ': ' : '') + endpoint.origin + ' ',
              endpoint.ejected ? badge('ejected', 'bad', 'ejected') : null,
              endpoint.healthy === false ? badge('unhealthy', 'bad', 'unhealthy') : null,
              typeof endpoint.latencyMs === 'number' ? badge(endpoint.latencyMs.toFixed(1) + ' ms', 'muted', 'latency') : null));
          });
        });
        return h('tr', { 'data-service': service.name },
          td(service.name), td(service.loadBalancer), num(service.endpoints, 'endpoints'), num(service.ejected, 'ejected'),
          td(breaker ? badge(breaker.state, breaker.state === 'closed' ? 'ok' : 'bad', 'breaker') : badge('none', 'muted', 'breaker')),
          td(budget ? budget.retries + ' of ' + budget.allowed + ' retries (' + budget.requests + ' requests)' : 'no budget',
            { 'data-field': 'retry-budget' }),
          td(endpoints.length ? endpoints : 'none'));
      }), [2, 3]));
  }

  function renderPullConsumers(status) {
    var node = section('pull-consumers', 'Bridge pull consumers');
    var bridge = status.components.bridge;
    if (!bridge) { node.appendChild(empty('The bridge is off.')); return; }
    node.appendChild(h('div', { class: 'kv' }, h('span', null, 'Kafka ',
      bridge.kafkaConnected ? badge('connected', 'ok', 'kafka') : badge('not connected', 'bad', 'kafka')),
      bridge.lastConnectError ? h('span', { class: 'error-text', text: bridge.lastConnectError }) : null));
    var list = bridge.pullConsumers || [];
    if (!list.length) { node.appendChild(empty('No consumer instance.')); return; }
    node.appendChild(table(['Group', 'Instance', 'Format', 'Topics', 'Partitions', 'Buffered', 'Idle'],
      list.map(function (c) {
        return h('tr', { 'data-consumer': c.group + '/' + c.name },
          td(c.group), td(c.name), td(c.format),
          td(c.mode === 'assign' ? '(assigned)' : c.topics.join(', ') || c.topicPattern || '\u2013'),
          td(c.partitions.map(function (p) { return p.topic + '/' + p.partition; }).join(', ') || '\u2013'),
          num(c.bufferedRecords, 'buffered'), td(Math.round(c.idleMs / 1000) + ' s'));
      }), [5]));
  }

  var KNOWN = ['admin', 'ingress', 'egress', 'bridge', 'subscriptions'];
  /** Components this page has no view of (yet): their status() as indented JSON. */
  function renderOthers(status) {
    Object.keys(status.components).forEach(function (name) {
      if (KNOWN.indexOf(name) >= 0) return;
      var node = section('component-' + name, name, true);
      var data = Object.assign({}, status.components[name]);
      delete data.listener;
      node.appendChild(h('pre', { class: 'mono', 'data-component': name, text: JSON.stringify(data, null, 2) }));
    });
  }

  function renderErrors(status) {
    var node = section('errors', 'Recent warnings and errors', true);
    if (!status.recentErrors.length) { node.appendChild(empty('Nothing logged at warn or above.')); return; }
    node.appendChild(table(['Time', 'Level', 'Source', 'Message'], status.recentErrors.map(function (e) {
      return h('tr', null, td(new Date(e.time).toLocaleTimeString()),
        td(badge(e.level, e.level === 'warn' ? 'warn' : 'bad', 'level')), td(e.source || ''),
        td(e.msg + (e.error ? ': ' + e.error : '')));
    })));
  }

  function render(status) {
    renderHeader(status);
    renderChecks(status);
    renderListeners(status);
    renderSubscriptions(status);
    renderUpstreams(status);
    renderPullConsumers(status);
    renderOthers(status);
    renderErrors(status);
    document.body.setAttribute('data-generated-at', status.generatedAt);
  }

  function setLive(ok) {
    var live = document.getElementById('live');
    if (ok) lastOk = Date.now();
    live.className = ok ? 'live' : 'live offline';
    live.textContent = ok ? 'live \u00b7 updated ' + new Date(lastOk).toLocaleTimeString()
      : 'offline \u00b7 last update ' + (lastOk ? new Date(lastOk).toLocaleTimeString() : 'never');
  }

  function tick() {
    fetch('status', { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(function (status) { render(status); setLive(true); })
      .catch(function () { setLive(false); })
      .finally(function () { setTimeout(tick, REFRESH_MS); });
  }
  tick();
})();
`;
