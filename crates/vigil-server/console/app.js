// Vigil's web console: a single page over the admin JSON API. Plain DOM, no
// libraries, no build step. Everything the server sends is inserted as text
// (see dom.js), never parsed as HTML.
import {
  h, replace, table, facts, badge, notice, link, when, duration, micros, count, cut, compact,
} from './dom.js';
import { rateChart } from './chart.js';

const TOKEN_KEY = 'vigil.admin-token';
const $ = (id) => document.getElementById(id);

function announce(text) {
  const live = $('live');
  live.textContent = '';
  // A fresh text node after a tick, so screen readers read a repeat too.
  setTimeout(() => { live.textContent = text; }, 50);
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options) {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const init = { method: 'GET', headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' };
  if (options && options.body !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch (error) {
    throw new ApiError(0, `cannot reach the Vigil server (${error.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (response.status === 401) {
    signOut((body && body.error) || 'The token was refused.');
    throw new ApiError(401, (body && body.error) || 'unauthorized');
  }
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.error) || `HTTP ${response.status}`);
  }
  return body;
}

/** A section's content for an API error. An older server lacks some endpoints. */
function failure(error, what) {
  if (error.status === 404 && error.message.startsWith('no such endpoint')) {
    return notice(`${what} is not available on this server.`, 'muted');
  }
  return notice(`${what}: ${error.message}`, error.status === 404 ? 'muted' : 'bad');
}

// ---- sign-in ----

const me = { identity: null, role: null };

function showLogin(message) {
  stopView();
  $('top').hidden = true;
  replace($('view'));
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').value = '';
  $('token').focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  me.identity = null;
  me.role = null;
  showLogin(message);
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    const who = await api('/whoami');
    me.identity = who.identity;
    me.role = who.role;
  } catch (error) {
    // A server without /whoami: any viewer call tells whether the token works.
    const second = error.status === 404
      ? await api('/approvals?state=pending').then(() => null, (e) => e)
      : error;
    if (second) {
      // 401 has shown the sign-in form with the server's message already.
      if (second.status !== 401) signOut(second.message);
      return false;
    }
  }
  $('login').hidden = true;
  $('top').hidden = false;
  replace($('who'), me.identity
    ? ['Signed in as ', h('strong', {}, me.identity), me.role ? ` (${me.role})` : '']
    : 'Signed in');
  return true;
}

// ---- routing and polling ----

const view = { generation: 0, timers: [] };

function stopView() {
  view.generation += 1;
  for (const timer of view.timers) clearInterval(timer);
  view.timers = [];
}

/** Runs `load` now and every `ms` while this view is shown (and the tab visible). */
function every(ms, load) {
  const generation = view.generation;
  const run = async () => {
    if (generation !== view.generation || document.hidden) return;
    try {
      await load(() => generation === view.generation);
    } catch (error) {
      if (error.status !== 401) console.error(error);
    }
  };
  run();
  view.timers.push(setInterval(run, ms));
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || '') };
}

const routes = {
  overview: renderOverview,
  sessions: renderSessions,
  audit: renderAudit,
  approvals: renderApprovals,
  policy: renderPolicy,
};

function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  const { parts, query } = parseHash();
  const page = routes[parts[0]] ? parts[0] : 'overview';
  stopView();
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = $('view');
  replace(root);
  routes[page](root, parts.slice(1), query);
  const heading = root.querySelector('h1');
  document.title = heading ? `${heading.textContent} · Vigil` : 'Vigil console';
}

function page(root, title, ...intro) {
  root.append(h('div', { class: 'page-head' }, h('h1', {}, title), intro));
}

function section(root, title, ...extra) {
  const body = h('div', { class: 'section-body' });
  root.append(h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title, extra), body));
  return body;
}

/** Re-renders `el` only when `key` (what it shows) changed, so polling keeps focus and scroll. */
function update(el, key, build) {
  const json = JSON.stringify(key);
  if (el.dataset.key === json) return;
  el.dataset.key = json;
  replace(el, build());
}

// ---- overview ----

function renderOverview(root) {
  page(root, 'Overview', h('p', { class: 'sub' }, 'Live; refreshed every 3 seconds.'));
  const tiles = h('div', { class: 'tiles' });
  root.append(tiles);
  const chart = section(root, 'Statements per second');
  const grid = h('div', { class: 'two' });
  root.append(grid);
  const identities = section(grid, 'Top identities');
  const fingerprints = section(grid, 'Top statements');
  let fallback = false;
  every(3000, async (current) => {
    let overview;
    try {
      overview = await api('/overview');
    } catch (error) {
      if (!current()) return;
      if (error.status !== 404 || fallback) {
        if (error.status !== 404) replace(chart, failure(error, 'The overview'));
        return;
      }
      fallback = true;
      replace(chart, failure(error, 'The live overview'));
      replace(identities, notice('Not available.', 'muted'));
      replace(fingerprints, notice('Not available.', 'muted'));
      const pending = await api('/approvals?state=pending');
      if (!current()) return;
      const waiting = pending.requests.length;
      setPending(waiting);
      replace(tiles, tile('Pending approvals', waiting, '#/approvals', null, waiting ? 'warn' : ''));
      return;
    }
    if (!current()) return;
    setPending(overview.approvals_pending);
    const by = overview.by_decision || {};
    const audit = overview.audit || {};
    replace(tiles,
      tile('Statements', overview.statements_total, null, `up ${duration(overview.uptime_secs || 0)}`),
      tile('Blocked (deny)', by.deny, '#/audit?decision=deny', `${count(by.review)} sent to review`, by.deny ? 'bad' : ''),
      tile('Masked values', overview.masked_values_total),
      tile('Active sessions', overview.sessions_active, '#/sessions'),
      tile('Pending approvals', overview.approvals_pending, '#/approvals', null, overview.approvals_pending ? 'warn' : ''),
      tile('Audit', audit.healthy === false ? 'unhealthy' : audit.healthy ? 'healthy' : '–', '#/audit',
        `${audit.mode || '?'} mode · ${count(audit.events)} events`, audit.healthy === false ? 'bad' : 'good'));
    replace(chart, rateChart(overview.rate || [], chart.clientWidth));
    update(identities, overview.top_identities, () => table('Top identities', ['Identity', 'Statements'],
      (overview.top_identities || []).map((row) => [
        link(`#/audit?identity=${encodeURIComponent(row.identity)}`, row.identity), count(row.statements)]),
      'No statements yet.'));
    update(fingerprints, overview.top_fingerprints, () => table('Top statements', ['Statement', 'Count'],
      (overview.top_fingerprints || []).map((row) => [
        h('a', { href: `#/audit?fingerprint=${encodeURIComponent(row.fingerprint)}`, class: 'sql-link', title: row.text },
          cut(row.text || row.fingerprint, 90)),
        count(row.statements)]),
      'No statements yet.'));
  });
}

function tile(label, value, href, sub, tone) {
  const inner = [h('span', { class: 'tile-label' }, label),
    h('span', { class: 'tile-value' }, typeof value === 'number' ? count(value) : (value ?? '–')),
    sub ? h('span', { class: 'tile-sub' }, sub) : null];
  return href
    ? h('a', { class: `tile ${tone || ''}`, href }, inner)
    : h('div', { class: `tile ${tone || ''}` }, inner);
}


// ---- sessions ----

function renderSessions(root, rest) {
  if (rest.length) return renderSession(root, rest[0]);
  page(root, 'Sessions', h('p', { class: 'sub' }, 'Sessions open now; refreshed every 3 seconds.'));
  const body = section(root, 'Open sessions');
  every(3000, async (current) => {
    let answer;
    try {
      answer = await api('/sessions');
    } catch (error) {
      if (current()) replace(body, failure(error, 'The session list'));
      return;
    }
    if (!current()) return;
    update(body, answer.sessions, () => table('Open sessions',
      ['Session', 'Identity', 'Database', 'Client', 'Started', 'Statements', 'State', 'Now running'],
      answer.sessions.map((x) => [
        link(`#/sessions/${encodeURIComponent(x.id)}`, `#${x.id}`),
        [x.identity, h('span', { class: 'muted' }, ` ${x.kind || ''}`)],
        x.database,
        [x.client_addr, x.application_name ? h('span', { class: 'muted' }, ` ${x.application_name}`) : null, x.tls ? h('span', { class: 'muted' }, ' TLS') : ''],
        when(x.started_at),
        count(x.statements),
        h('span', { class: `state state-${x.state}` }, String(x.state || '').replace('_', ' ')),
        x.current_statement ? h('code', { class: 'sql-inline' }, cut(x.current_statement, 80)) : '–',
      ]), 'No sessions are open.'));
  });
}

function renderSession(root, id) {
  page(root, `Session #${id}`, h('p', {}, link('#/sessions', '← All sessions')));
  const info = section(root, 'Session');
  const timeline = section(root, 'Statement timeline');
  every(3000, async (current) => {
    let answer;
    try {
      answer = await api(`/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!current()) return;
      replace(info, failure(error, 'This session'));
      replace(timeline, notice('No timeline to show.', 'muted'));
      return;
    }
    if (!current()) return;
    const x = answer.session;
    const start = (answer.events || []).find((e) => e.kind === 'session.start');
    update(info, x, () => (x ? facts([
      ['Identity', `${x.identity} (${x.kind})`],
      ['Groups', (x.groups || []).join(', ')],
      ['Database', x.database],
      ['Client', `${x.client_addr}${x.tls ? ' over TLS' : ''}`],
      ['Application', x.application_name],
      ['Started', when(x.started_at)],
      ['State', String(x.state || '').replace('_', ' ')],
      ['Statements', count(x.statements)],
      ['Now running', x.current_statement ? h('pre', { class: 'sql' }, x.current_statement) : null],
    ]) : [notice('This session has ended.', 'muted'), start ? facts([
      ['Identity', start.body.identity], ['Database', start.body.database],
      ['Client', start.body.client_addr], ['Started', when(start.time)]]) : null]));
    update(timeline, answer.events, () => sessionTimeline(answer.events || []));
  });
}

function sessionTimeline(events) {
  const done = new Map();
  for (const e of events) if (e.kind === 'statement.completed') done.set(e.body.statement_seq, e.body);
  const items = events.filter((e) => e.kind !== 'statement.completed').map((e) => {
    const b = e.body || {};
    if (e.kind !== 'statement') {
      return h('li', { class: 'tl-other' }, h('span', { class: 'tl-time' }, when(e.time)), ' ',
        link(`#/audit/${e.seq}`, e.kind), ' ', h('span', { class: 'muted' }, cut(compact(b), 120)));
    }
    const c = done.get(b.statement_seq);
    return h('li', { class: `tl-statement tl-${b.decision}` },
      h('div', { class: 'tl-head' }, h('span', { class: 'tl-time' }, when(e.time)), ' ', badge(b.decision), ' ',
        link(`#/audit/${e.seq}`, `statement ${b.statement_seq}`),
        c ? h('span', { class: 'muted' }, ` · ${completionText(c)}`) : ''),
      h('pre', { class: 'sql' }, b.text || ''));
  });
  return items.length ? h('ol', { class: 'timeline' }, items) : notice('No audit events for this session.', 'muted');
}

function completionText(c) {
  const parts = [];
  if (c.rows !== undefined && c.rows !== null) parts.push(`${count(c.rows)} rows`);
  parts.push(micros(c.duration_us));
  if (c.sqlstate) parts.push(`SQLSTATE ${c.sqlstate}`);
  return parts.join(', ');
}

// ---- audit ----

const FILTERS = [
  ['identity', 'Identity'], ['database', 'Database'], ['table', 'Table'], ['decision', 'Decision'],
  ['fingerprint', 'Fingerprint'], ['kind', 'Event kind'], ['session_id', 'Session'],
  ['since', 'Since'], ['until', 'Until'], ['limit', 'Per page'],
];
const KINDS = ['statement', 'statement.completed', 'session.start', 'session.end', 'auth.failure',
  'approval.requested', 'approval.approved', 'approval.granted', 'approval.denied', 'approval.expired',
  'approval.withdrawn', 'approval.executed', 'config.reload', 'admin.action'];

function renderAudit(root, rest, query) {
  if (rest.length) return renderAuditEvent(root, rest[0]);
  page(root, 'Audit trail');
  const verify = section(root, 'Chain');
  verifyPanel(verify);

  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter audit events' });
  for (const [name, label] of FILTERS) {
    const id = `filter-${name}`;
    let input;
    if (name === 'decision') {
      input = h('select', { id, name }, ['', 'allow', 'review', 'deny'].map((v) =>
        h('option', { value: v, selected: query.get(name) === v }, v || 'any')));
    } else {
      input = h('input', {
        id, name, value: query.get(name) || '', autocomplete: 'off',
        type: name === 'limit' || name === 'session_id' ? 'number' : 'text',
        min: name === 'limit' || name === 'session_id' ? '1' : null,
        placeholder: { since: '2026-01-31T12:00:00Z', until: 'RFC 3339', limit: '50', table: 'schema.table' }[name] || null,
        list: name === 'kind' ? 'audit-kinds' : null,
      });
    }
    form.append(h('div', { class: 'field' }, h('label', { for: id }, label), input));
  }
  form.append(h('datalist', { id: 'audit-kinds' }, KINDS.map((k) => h('option', { value: k }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Search'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { location.hash = '#/audit'; } }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [name] of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    const next = `#/audit${params.toString() ? `?${params}` : ''}`;
    if (location.hash === next) route();
    else location.hash = next;
  });
  const filters = section(root, 'Search');
  filters.append(form);

  const results = section(root, 'Events');
  results.setAttribute('aria-live', 'polite');
  const params = new URLSearchParams();
  for (const [name] of FILTERS) if (query.get(name)) params.set(name, query.get(name));
  if (query.get('before')) params.set('before', query.get('before'));
  if (!params.get('limit')) params.set('limit', '50');
  replace(results, notice('Loading…', 'muted'));
  api(`/audit?${params}`).then((answer) => {
    const events = answer.events || [];
    const more = answer.next_before;
    const pager = h('div', { class: 'pager' },
      query.get('before') ? link(`#/audit?${withParam(query, 'before', null)}`, '« Newest') : null,
      more !== null && more !== undefined
        ? link(`#/audit?${withParam(query, 'before', more)}`, 'Older »') : null);
    replace(results,
      h('p', { class: 'sub' }, `${events.length} event${events.length === 1 ? '' : 's'}, newest first.`),
      table('Audit events', ['Seq', 'Time', 'Kind', 'Identity', 'Database', 'Decision', 'What'],
        events.map((e) => {
          const b = e.body || {};
          return [link(`#/audit/${e.seq}`, String(e.seq)), when(e.time), e.kind,
            b.identity || b.user || b.requester || b.actor || '–', b.database || '–',
            b.decision ? badge(b.decision) : '–',
            e.kind === 'statement'
              ? h('code', { class: 'sql-inline' }, cut(b.text, 90))
              : h('span', { class: 'muted cell-text' }, cut(summary(e.kind, b), 90))];
        }), 'No events match.'),
      pager);
  }).catch((error) => replace(results, failure(error, 'Audit search')));
}

/** One line about an event other than a statement. */
function summary(kind, b) {
  const session = b.session_id !== undefined ? `session #${b.session_id}` : null;
  const line = (...parts) => parts.filter(Boolean).join(' · ');
  switch (kind) {
    case 'session.start':
      return line(session, b.client_addr, b.application_name, b.auth_method, b.tls ? 'TLS' : null);
    case 'session.end':
      return line(session, `${count(b.statements)} statements`, micros(b.duration_us), b.client_addr);
    case 'statement.completed':
      return line(`${session}, statement ${b.statement_seq}`, completionText(b));
    case 'auth.failure':
      return line(b.user, b.client_addr, b.reason);
    default:
      if (kind.startsWith('approval.')) {
        const { approval_id: id, by, reason, ...rest } = b;
        return line(id, by ? `by ${by}` : null, reason, compact(rest));
      }
      return compact(b);
  }
}

function withParam(query, name, value) {
  const next = new URLSearchParams(query);
  if (value === null) next.delete(name);
  else next.set(name, value);
  return next.toString();
}

function verifyPanel(el) {
  const out = h('div', { class: 'verify-out', role: 'status' });
  const button = h('button', { type: 'button', class: 'secondary' }, 'Verify chain');
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(out, 'Verifying the hash chain…');
    try {
      const r = await api('/audit/verify');
      replace(out, r.ok
        ? notice(`Chain intact: ${count(r.records)} records verified${r.unsigned_tail ? `, ${count(r.unsigned_tail)} after the last signed checkpoint` : ''}.`, 'good')
        : [notice(`Chain broken${r.first_bad_seq !== null && r.first_bad_seq !== undefined ? ` at record ${r.first_bad_seq}` : ''} (${count(r.records)} records read).`, 'bad'),
          h('ul', {}, (r.problems || []).map((p) => h('li', {}, p)))]);
    } catch (error) {
      replace(out, failure(error, 'Chain verification'));
    } finally {
      button.disabled = false;
    }
  });
  el.append(h('div', { class: 'verify' }, h('p', {}, 'Check every record\'s hash and link to the one before.'), button), out);
}

function renderAuditEvent(root, seq) {
  page(root, `Audit event ${seq}`, h('p', {}, link('#/audit', '← Audit trail')));
  const body = section(root, 'Event');
  api(`/audit/${encodeURIComponent(seq)}`).then(({ event, completion }) => {
    const b = event.body || {};
    const rest = (skip) => Object.entries(b).filter(([k]) => !skip.includes(k));
    let details;
    if (event.kind === 'statement') {
      details = [
        facts([
          ['Decision', badge(b.decision)],
          ['Rules', (b.rule_ids || []).join(', ') || 'none'],
          ['Identity', b.identity],
          ['Database', b.database],
          ['Session', b.session_id !== undefined ? link(`#/sessions/${b.session_id}`, `#${b.session_id}, statement ${b.statement_seq}`) : null],
          ['Kinds', `${(b.kinds || []).join(', ')}${b.class ? ` (${b.class})` : ''}`],
          ['Relations', (b.relations || []).join(', ') || 'none'],
          ['Masked columns', (b.masked_columns || []).join(', ') || 'none'],
          ['Approval', b.approval_id ? link('#/approvals', b.approval_id) : null],
          ['Intent', Object.keys(b.intent || {}).length ? compact(b.intent) : null],
          ['Fingerprint', link(`#/audit?fingerprint=${encodeURIComponent(b.fingerprint || '')}`, b.fingerprint)],
        ]),
        h('h3', {}, 'Statement'), h('pre', { class: 'sql' }, b.text || ''),
        h('h3', {}, 'Completion'),
        completion ? facts([
          ['Rows', count(completion.body.rows)],
          ['Duration', micros(completion.body.duration_us)],
          ['SQLSTATE', completion.body.sqlstate || 'success'],
          ['Bytes', count(completion.body.bytes)],
          ['Masked values', completion.body.masked_values ? compact(completion.body.masked_values) : null],
          ['Completed', link(`#/audit/${completion.seq}`, `event ${completion.seq}`)],
        ]) : notice('No completion recorded: the statement did not run (or has not finished).', 'muted'),
      ];
    } else {
      details = facts(rest([]).map(([k, v]) => [k.replace(/_/g, ' '), typeof v === 'object' ? compact(v) : String(v)]));
    }
    replace(body,
      facts([['Kind', event.kind], ['Time', when(event.time)], ['Seq', String(event.seq)]]),
      details,
      h('details', {}, h('summary', {}, 'Record as stored'), h('pre', { class: 'raw' }, JSON.stringify({ event, completion }, null, 2))));
  }).catch((error) => replace(body, failure(error, 'This event')));
}

// ---- approvals ----

function renderApprovals(root) {
  page(root, 'Approvals', h('p', { class: 'sub' }, 'Pending requests; refreshed every 2 seconds.'));
  const queue = section(root, 'Waiting for a decision');
  const list = h('div', { class: 'queue' });
  const empty = notice('No requests are waiting.', 'muted');
  queue.append(list);
  const grants = section(root, 'Grants in force');
  const recent = section(root, 'Recent requests');
  const cards = new Map();
  let first = true;
  every(2000, async (current) => {
    let pending;
    try {
      pending = await api('/approvals?state=pending');
    } catch (error) {
      if (current()) replace(list, failure(error, 'The approval queue'));
      return;
    }
    if (!current()) return;
    const requests = pending.requests || [];
    setPending(requests.length);
    const ids = new Set(requests.map((r) => r.id));
    for (const [id, card] of cards) {
      // A card the user just acted on stays until they have read its outcome.
      if (!ids.has(id) && !card.dataset.acted) { card.remove(); cards.delete(id); }
    }
    let added = 0;
    // The API lists newest first; prepending oldest first keeps the newest on top.
    for (const request of [...requests].reverse()) {
      const card = cards.get(request.id);
      if (card) { refreshCard(card, request); continue; }
      const made = requestCard(request);
      cards.set(request.id, made);
      list.prepend(made);
      added += 1;
    }
    if (added && !first) announce(`${added} new approval request${added === 1 ? '' : 's'}`);
    first = false;
    if (!cards.size) list.replaceChildren(empty);
    else if (empty.isConnected) empty.remove();

    api('/grants').then((answer) => current() && update(grants, answer.grants, () =>
      table('Grants in force', ['Identity', 'Group', 'Database', 'Expires', 'Approval'],
        (answer.grants || []).map((g) => [g.identity, g.group, g.database, when(g.expires_at), h('code', {}, g.approval_id)]),
        'No grants are in force.'))).catch((error) => current() && replace(grants, failure(error, 'Grants')));
    api('/approvals?state=all').then((answer) => current() && update(recent,
      (answer.requests || []).filter((r) => r.state !== 'pending').slice(0, 20).map((r) => [r.id, r.state]),
      () => table('Recent requests', ['Request', 'State', 'Requester', 'Database', 'What', 'Decided by'],
        (answer.requests || []).filter((r) => r.state !== 'pending').slice(0, 20).map((r) => [
          h('code', {}, r.id), h('span', { class: `state state-${r.state}` }, r.state), r.requester, r.database,
          r.kind === 'grant' ? grantText(r.grant) : h('code', { class: 'sql-inline' }, cut(r.sql, 70)),
          deciders(r)]),
        'No decided requests yet.'))).catch(() => {});
  });
}

function grantText(grant) {
  if (!grant) return 'grant';
  return `grant: group ${grant.group} on ${grant.database} for ${duration(grant.duration_secs || 0)}`;
}

function deciders(r) {
  if (r.denial) return `denied by ${r.denial.by}: ${r.denial.reason}`;
  return (r.approvals || []).map((a) => `${a.by}${a.reason ? `: ${a.reason}` : ''}`).join('; ') || '–';
}

function approversText(approvers) {
  if (!approvers) return '–';
  const who = [];
  if ((approvers.identities || []).length) who.push(`identities ${approvers.identities.join(', ')}`);
  if ((approvers.groups || []).length) who.push(`groups ${approvers.groups.join(', ')}`);
  return `${approvers.count || 1} of ${who.join(' or ') || 'any approver'}`;
}

function requestCard(request) {
  const id = request.id;
  const reasonId = `reason-${id}`;
  const titleId = `request-${id}`;
  const reason = h('input', { id: reasonId, name: 'reason', type: 'text', autocomplete: 'off', maxlength: '500' });
  const outcome = h('p', { class: 'outcome', role: 'status' });
  const approve = h('button', { type: 'submit', value: 'approve' }, 'Approve');
  const deny = h('button', { type: 'submit', value: 'deny', class: 'danger' }, 'Deny');
  const viewer = me.role === 'viewer';
  if (viewer) { approve.disabled = true; deny.disabled = true; }
  const form = h('form', { class: 'decide', 'aria-label': `Decide on request ${id}` },
    h('label', { for: reasonId }, 'Reason ', h('span', { class: 'muted' }, '(required to deny)')),
    reason, h('div', { class: 'actions' }, approve, deny), outcome);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const action = event.submitter && event.submitter.value === 'deny' ? 'deny' : 'approve';
    const text = reason.value.trim();
    if (action === 'deny' && !text) {
      outcome.className = 'outcome bad';
      outcome.textContent = 'Give a reason to deny.';
      reason.focus();
      return;
    }
    approve.disabled = true;
    deny.disabled = true;
    outcome.className = 'outcome';
    outcome.textContent = action === 'deny' ? 'Denying…' : 'Approving…';
    try {
      const r = await api(`/approvals/${encodeURIComponent(id)}/${action}`, { body: text ? { reason: text } : {} });
      card.dataset.acted = 'yes';
      const got = (r.approvals || []).length;
      const need = (r.approvers && r.approvers.count) || 1;
      const message = action === 'deny'
        ? `Denied ${id}.`
        : r.state === 'pending' ? `Approved ${id} (${got} of ${need} approvals).` : `Approved ${id}: it runs now.`;
      outcome.className = `outcome ${action === 'deny' ? 'bad' : 'good'}`;
      outcome.textContent = message;
      refreshCard(card, r);
      card.classList.add('decided');
      api('/approvals?state=pending').then((x) => setPending((x.requests || []).length)).catch(() => {});
      announce(message);
      setTimeout(() => { card.dataset.acted = ''; }, 8000);
    } catch (error) {
      outcome.className = 'outcome bad';
      outcome.textContent = `Not done: ${error.message}`;
      approve.disabled = viewer;
      deny.disabled = viewer;
    }
  });
  const what = request.kind === 'grant'
    ? h('p', { class: 'grant-ask' }, grantText(request.grant))
    : [h('pre', { class: 'sql', 'aria-label': 'Statement' }, request.sql || ''),
      (request.parameters || []).length
        ? h('p', { class: 'params' }, 'Parameters: ', request.parameters.map((p, i) =>
          [i ? ', ' : '', h('code', {}, `$${i + 1} = ${p === null ? 'NULL' : p}`)])) : null];
  const state = h('span', { class: 'state state-pending', 'data-field': 'state' }, request.state);
  const votes = h('dd', { 'data-field': 'votes' });
  const card = h('article', { class: 'request', 'aria-labelledby': titleId, 'data-id': id },
    h('h3', { id: titleId }, `${request.kind === 'grant' ? 'Grant' : 'Statement'} `, h('code', {}, id), ' ', state),
    what,
    h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Requester'), h('dd', {}, request.requester)),
      h('div', {}, h('dt', {}, 'Database'), h('dd', {}, request.database)),
      request.session_id !== null && request.session_id !== undefined
        ? h('div', {}, h('dt', {}, 'Session'), h('dd', {}, link(`#/sessions/${request.session_id}`, `#${request.session_id}`), request.mode ? ` (${request.mode})` : ''))
        : null,
      h('div', {}, h('dt', {}, 'Rules'), h('dd', {}, (request.rules || []).join(', ') || '–')),
      h('div', {}, h('dt', {}, 'Approvers'), h('dd', {}, approversText(request.approvers))),
      h('div', {}, h('dt', {}, 'Approvals'), votes),
      h('div', {}, h('dt', {}, 'Created'), h('dd', { 'data-field': 'created' })),
      h('div', {}, h('dt', {}, 'Expires'), h('dd', { 'data-field': 'expires' }))),
    viewer ? notice('Your token is a viewer\'s: it cannot decide.', 'muted') : null,
    form);
  refreshCard(card, request);
  return card;
}

/** Updates what changes on a card, leaving the reason field (and focus) alone. */
function refreshCard(card, request) {
  const field = (name) => card.querySelector(`[data-field="${name}"]`);
  field('state').textContent = request.state;
  field('state').className = `state state-${request.state}`;
  replace(field('votes'), deciders(request) === '–' ? 'none yet' : deciders(request));
  replace(field('created'), when(request.created_at));
  replace(field('expires'), when(request.expires_at));
}

function setPending(n) {
  const el = $('pending-badge');
  if (typeof n !== 'number') return;
  el.hidden = n === 0;
  el.textContent = String(n);
  el.setAttribute('aria-label', `${n} pending`);
}

// ---- policy ----

function renderPolicy(root) {
  page(root, 'Policy');
  const explain = section(root, 'Explain a statement');
  const rules = section(root, 'Rules');
  const grid = h('div', { class: 'two' });
  root.append(grid);
  const databases = section(grid, 'Databases');
  const identities = section(grid, 'Identities');
  explainForm(explain);
  api('/policy').then((policy) => {
    replace(rules, table('Rules', ['Rule', 'Action', 'What it says', 'Details'],
      (policy.rules || []).map((r) => [
        h('code', { class: 'nowrap' }, r.id), badge(r.action),
        r.description || r.message || '–',
        ruleDetails(r)]), 'No rules are loaded.'));
    replace(databases, table('Databases', ['Database', 'Labels'],
      (policy.databases || []).map((d) => [d.name, compact(d.labels) || '–']), 'No databases.'));
    replace(identities, table('Identities', ['Identity', 'Kind', 'Groups'],
      (policy.identities || []).map((i) => [i.name, i.kind, (i.groups || []).join(', ') || '–']), 'No identities.'));
    const fill = (id, values) => {
      const list = document.getElementById(id);
      if (list) replace(list, values.map((v) => h('option', { value: v })));
    };
    fill('explain-identities', (policy.identities || []).map((i) => i.name));
    fill('explain-databases', (policy.databases || []).map((d) => d.name));
  }).catch((error) => {
    replace(rules, failure(error, 'The policy'));
    replace(databases, notice('Not available.', 'muted'));
    replace(identities, notice('Not available.', 'muted'));
  });
}

/** A rule's settings, one per line, what it matches first; shapes the console does not know are shown as they come. */
function ruleDetails(rule) {
  const shown = ['id', 'action', 'description', rule.description ? null : 'message'];
  const order = ['when', 'unless', 'approval', 'approvers', 'message', 'hint', 'origin'];
  const keys = Object.keys(rule).filter((k) => !shown.includes(k) && !blankValue(rule[k]))
    .sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  return h('ul', { class: 'kv' }, keys.map((k) =>
    h('li', {}, h('span', { class: 'kv-key' }, `${k} `), typeof rule[k] === 'object' ? compact(rule[k]) : String(rule[k]))));
}

function blankValue(v) {
  return v === null || v === undefined || v === '' || (typeof v === 'object' && !compact(v));
}

function explainForm(el) {
  const sql = h('textarea', { id: 'explain-sql', name: 'sql', rows: '4', required: true, spellcheck: 'false' });
  const identity = h('input', { id: 'explain-identity', name: 'identity', list: 'explain-identities', required: true, autocomplete: 'off' });
  const database = h('input', { id: 'explain-database', name: 'database', list: 'explain-databases', required: true, autocomplete: 'off' });
  const out = h('div', { class: 'explain-out', 'aria-live': 'polite' });
  const form = h('form', { class: 'explain' },
    h('div', { class: 'field wide' }, h('label', { for: 'explain-sql' }, 'SQL'), sql),
    h('div', { class: 'field' }, h('label', { for: 'explain-identity' }, 'As identity'), identity),
    h('div', { class: 'field' }, h('label', { for: 'explain-database' }, 'On database'), database),
    h('datalist', { id: 'explain-identities' }), h('datalist', { id: 'explain-databases' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Explain')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!sql.value.trim() || !identity.value.trim() || !database.value.trim()) {
      replace(out, notice('Give the SQL, an identity and a database.', 'bad'));
      return;
    }
    replace(out, notice('Explaining…', 'muted'));
    try {
      const r = await api('/policy/explain', {
        body: { sql: sql.value, identity: identity.value.trim(), database: database.value.trim() },
      });
      replace(out, facts([['Decision', badge(r.decision)], ['Rule', r.rule], ['Message', r.message]]),
        r.explain ? h('pre', { class: 'explain-text' }, r.explain) : null);
    } catch (error) {
      replace(out, failure(error, 'Explain'));
    }
  });
  el.append(form, out);
}

// ---- start ----

document.addEventListener('DOMContentLoaded', async () => {
  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (!token) {
      $('login-error').textContent = 'Enter your admin token.';
      $('token').focus();
      return;
    }
    $('login-error').textContent = '';
    if (await signIn(token)) {
      if (!location.hash || location.hash === '#') location.hash = '#/overview';
      else route();
      $('main').focus();
    }
  });
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  window.addEventListener('hashchange', () => {
    // Only `#/…` is a page; `#main` (the skip link) is not.
    if (location.hash && !location.hash.startsWith('#/')) return;
    route();
    $('main').focus({ preventScroll: true });
  });
  // The badge on the navigation follows the queue wherever the user is.
  setInterval(() => {
    if (!sessionStorage.getItem(TOKEN_KEY) || document.hidden) return;
    api('/approvals?state=pending').then((r) => setPending((r.requests || []).length)).catch(() => {});
  }, 5000);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && await signIn(token)) route();
  else if (!token) showLogin();
});
