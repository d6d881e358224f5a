/* banwatch dispatch console: the live board, the map, alert detail, tasks.
 *
 * Plain DOM, no framework, no network beyond this console: data comes from /api/* and one
 * Server-Sent Events stream (/api/stream) that resumes with Last-Event-ID. Every piece of data
 * reaches the page through textContent, never innerHTML. Times are shown in the browser's local
 * time, and ages are computed against the console's clock (its skew is measured from the
 * stream), so a badly set workstation clock does not make a fresh alert look old.
 */
'use strict';
(function () {
  const KINDS = {
    zone_breach: 'Zone breach', proximity_breach: 'Proximity breach',
    reported_contact: 'Reported contact', sos: 'SOS alarm', tamper: 'Device tamper',
    approach: 'Approach', signal_lost: 'Signal lost', threat: 'Threat',
    battery_low: 'Battery low', tip: 'Tip from the public', late_evidence: 'Late evidence',
    unmatched_incident: 'Unmatched incident',
  };
  const TASKS = {
    respond: 'Respond', protect: 'Protect', interview: 'Interview',
    motivational_talk: 'Motivational talk', referral: 'Social services referral',
    knock: 'Doorstep visit',
  };
  const OUTCOMES = {
    contact_made: 'Contact made', not_found: 'Not found', arrested: 'Arrested',
    protected_safe: 'Protected person safe', false_alarm: 'False alarm',
    held: 'Interview held', not_reached: 'Not reached', refused: 'Refused',
    held_accepts_help: 'Talk held: accepts help', held_declines_help: 'Talk held: declines help',
    declined: 'Declined help', not_home: 'Nobody home',
  };
  const ACTIONS = { accept: 'Accept', decline: 'Decline', en_route: 'En route', on_scene: 'On scene', done: 'Done' };
  const ROLES = { investigator: 'Investigator', negotiator: 'Negotiator', social_services: 'Social services', outreach: 'Outreach' };
  const STATES = { assigned: 'assigned', accepted: 'accepted', en_route: 'en route', on_scene: 'on scene', done: 'done', declined: 'declined', expired: 'expired', cancelled: 'cancelled' };
  const RANK = { escalated: 0, open: 1, updated: 1, acknowledged: 2 };
  const UNACKED = new Set(['open', 'updated', 'escalated']);
  const COLORS = { 1: '#ff4d4f', 2: '#f5a623', 3: '#7f95ad' };
  const REPEAT_CUE_MS = 15000;
  const STALE_MS = 40000;

  const S = {
    me: null, alerts: new Map(), tasks: new Map(), selected: null, detail: null,
    skew: 0, lastId: null, lastMsg: 0, es: null, connected: false, downSince: null,
    seen: new Set(), silenced: new Set(), escalationsHeard: new Set(), fresh: new Set(),
    audio: null, soundOn: true, lastCue: 0, cues: 0, pending: new Map(),
    map: null, overview: null, detailLayer: null, view: 'board', ticker: null,
    taskPending: new Map(), choice: null, taskError: null, unitsTimer: null,
  };
  // who answers tasks: a patrol unit (its unit's) or a follow-up role (its role's)
  const followUp = () => !!S.me && Object.prototype.hasOwnProperty.call(ROLES, S.me.role);
  const taskUser = () => !!S.me && (S.me.role === 'patrol' || followUp());

  // ------------------------------------------------------------------ helpers
  const $ = (sel) => document.querySelector(sel);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const now = () => Date.now() + S.skew;
  const ms = (ts) => (ts ? Date.parse(ts) : NaN);
  function age(ts) {
    const t = ms(ts);
    if (Number.isNaN(t)) return '–';
    let s = Math.max(0, Math.floor((now() - t) / 1000));
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const mm = h ? String(m).padStart(2, '0') : String(m);
    return (h ? h + ':' : '') + mm + ':' + String(s).padStart(2, '0');
  }
  function clockText(ts) {
    const t = ms(ts);
    return Number.isNaN(t) ? '–' : new Date(t).toLocaleTimeString('sv-SE');
  }
  function dateTimeText(ts) {
    const t = ms(ts);
    return Number.isNaN(t) ? '–' : new Date(t).toLocaleString('sv-SE');
  }
  const metres = (m) => (typeof m === 'number' ? (m >= 10000 ? (m / 1000).toFixed(1) + ' km' : Math.round(m) + ' m') : '–');
  const kindText = (k) => KINDS[k] || k || 'Alert';
  const taskText = (k) => TASKS[k] || k || 'Task';
  const ageSpan = (ts, prefix) => el('span', { class: 'age', 'data-since': ts || '', 'data-prefix': prefix || '' }, (prefix || '') + age(ts));
  const urgent = (a) => a.priority === 1 && UNACKED.has(a.state);

  function urgency(a, b) {
    const pa = typeof a.priority === 'number' ? a.priority : 9;
    const pb = typeof b.priority === 'number' ? b.priority : 9;
    if (pa !== pb) return pa - pb;
    const ra = RANK[a.state] ?? 3, rb = RANK[b.state] ?? 3;
    if (ra !== rb) return ra - rb;
    const oa = ms(a.opened_at) || 0, ob = ms(b.opened_at) || 0;
    if (oa !== ob) return oa - ob;
    return String(a.alert_id) < String(b.alert_id) ? -1 : 1;
  }

  async function api(method, path, body) {
    const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    return { status: r.status, ok: r.ok, data };
  }

  // -------------------------------------------------------------------- login
  function showLogin(message) {
    if (S.es) { S.es.close(); S.es = null; }
    $('#app').hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = message || '';
    $('#token').focus();
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    unlockAudio();
    const token = $('#token').value.trim();
    $('#login-button').disabled = true;
    try {
      const r = await api('POST', '/login', { token });
      if (r.ok) {
        $('#token').value = '';
        start(r.data);
      } else if (r.status === 429) {
        $('#login-error').textContent = 'Too many failed attempts. Wait a minute and try again.';
      } else {
        $('#login-error').textContent = 'That token was not accepted.';
      }
    } catch (_) {
      $('#login-error').textContent = 'The console cannot be reached.';
    } finally {
      $('#login-button').disabled = false;
    }
  });

  $('#logout').addEventListener('click', async () => {
    await api('POST', '/logout', {}).catch(() => null);
    location.reload();
  });

  // ------------------------------------------------------------------- start
  function start(me) {
    S.me = me;
    document.body.dataset.role = me.role;
    $('#login').hidden = true;
    $('#app').hidden = false;
    const patrol = me.role === 'patrol';
    const auditor = me.role === 'auditor';
    $('#tab-history').hidden = me.role !== 'dispatcher';
    $('#tab-audit').hidden = !auditor;
    if (auditor) { // the audit and nothing else: no stream, no board, no map
      $('#who').textContent = me.user + ' · ' + me.role;
      for (const id of ['#tab-board', '#tab-tasks', '#tab-units', '#conn', '#sound']) $(id).hidden = true;
      showView('audit');
      runSearch('audit', 0);
      return;
    }
    const role = followUp();
    $('#who').textContent = patrol ? me.user + ' · unit ' + me.unit : me.user + ' · ' + (ROLES[me.role] || me.role);
    $('#tabs').hidden = patrol || role;
    $('#list-title').firstChild.textContent = patrol ? 'Tasks for unit ' + me.unit + ' '
      : role ? 'Queue · ' + ROLES[me.role] + ' ' : 'Open alerts ';
    $('#list-empty').textContent = patrol ? 'No tasks for your unit.' : role ? 'Nothing in your queue.' : 'No open alerts.';
    $('.consult').hidden = patrol || role;
    $('#detail-empty').textContent = patrol
      ? 'Select a task to see where to go and to report on it.'
      : role ? 'Select a task to see it and record what came of it.'
        : 'Select an alert to see its detail. Opening it is recorded in the audit log.';
    if (role) $('#board-view').classList.add('queue'); // a queue: no map, no alerts
    else initMap();
    connect();
    if (!S.ticker) S.ticker = setInterval(tick, 1000);
    render();
  }

  // ------------------------------------------------------------------- stream
  function connect() {
    if (S.es) S.es.close();
    const url = S.lastId ? '/api/stream?lastEventId=' + encodeURIComponent(S.lastId) : '/api/stream';
    const es = new EventSource(url);
    S.es = es;
    es.onopen = () => setConnected(true);
    es.onerror = async () => {
      setConnected(false);
      if (es.readyState !== EventSource.CLOSED || S.es !== es) return;
      const r = await api('GET', '/api/me').catch(() => null);
      if (r && r.status === 401) { showLogin('Your session has ended. Log in again.'); return; }
      setTimeout(() => { if (S.es === es) connect(); }, 3000);
    };
    const handle = (fn) => (e) => {
      S.lastMsg = Date.now();
      if (e.lastEventId) S.lastId = e.lastEventId;
      setConnected(true);
      fn(JSON.parse(e.data));
    };
    es.addEventListener('snapshot', handle(onSnapshot));
    es.addEventListener('alert', handle((a) => { onAlert(a); render(); }));
    es.addEventListener('task', handle((t) => { onTask(t); render(); }));
    es.addEventListener('clock', handle((c) => setSkew(c.now)));
  }

  function setSkew(serverNow) {
    const t = ms(serverNow);
    if (!Number.isNaN(t)) S.skew = t - Date.now();
  }

  function setConnected(up) {
    if (up) { S.connected = true; S.downSince = null; }
    else if (S.connected || S.downSince === null) { S.connected = false; S.downSince = S.downSince || Date.now(); }
    updateConn();
  }

  function updateConn() {
    const c = $('#conn');
    const stale = S.connected && S.lastMsg && Date.now() - S.lastMsg > STALE_MS;
    const live = S.connected && !stale;
    c.className = 'conn ' + (live ? 'live' : 'down');
    c.textContent = live ? '● Live' : 'Reconnecting…';
    const banner = $('#stale');
    if (!live && (S.downSince ? Date.now() - S.downSince > 5000 : stale)) {
      const since = S.downSince || S.lastMsg;
      banner.textContent = 'No connection to the console since ' + new Date(since).toLocaleTimeString('sv-SE') +
        '. What you see may be out of date; reconnecting.';
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  function onSnapshot(snap) {
    setSkew(snap.now);
    const before = new Set(S.alerts.keys());
    S.alerts = new Map();
    for (const a of snap.alerts || []) S.alerts.set(a.alert_id, a);
    S.tasks = new Map();
    for (const t of snap.tasks || []) S.tasks.set(t.task_id, t);
    for (const a of S.alerts.values()) if (!before.has(a.alert_id) && urgent(a) && S.lastSnap) S.fresh.add(a.alert_id);
    S.lastSnap = true;
    if (S.selected && S.me.role !== 'patrol' && !S.alerts.has(S.selected)) { /* resolved while away */ }
    render();
    for (const t of S.tasks.values()) settlePending(t);
    if (taskUser() && S.selected && S.tasks.has(S.selected)) renderTaskDetail(S.tasks.get(S.selected));
  }

  function onAlert(a) {
    const prev = S.alerts.get(a.alert_id);
    if (prev && prev.seq >= a.seq) return;
    if (a.state === 'resolved') S.alerts.delete(a.alert_id);
    else S.alerts.set(a.alert_id, a);
    if (!prev && urgent(a)) S.fresh.add(a.alert_id);
    if (a.state === 'escalated' && !S.escalationsHeard.has(a.alert_id)) {
      S.escalationsHeard.add(a.alert_id);
      S.silenced.delete(a.alert_id);
      S.seen.delete(a.alert_id);
      S.lastCue = 0;
    }
    if (a.alert_id === S.selected && S.detail) {
      S.detail.alert = a;
      if (!S.detail.revisions.some((r) => r.seq === a.seq)) S.detail.revisions.push(a);
      const p = S.pending.get(a.alert_id);
      if (p && ((p === 'acknowledge' && (a.state === 'acknowledged' || a.state === 'resolved')) || (p === 'resolve' && a.state === 'resolved'))) {
        S.pending.delete(a.alert_id);
      }
      renderDetail();
    }
  }

  /* An update sent waits for the worker's revision: any change of the task's state ends the
     wait (the state it moved to, or another the worker decided). */
  function settlePending(t) {
    const p = S.taskPending.get(t.task_id);
    if (p && (t.state !== p.from || t.closed)) S.taskPending.delete(t.task_id);
  }

  function onTask(t) {
    const prev = S.tasks.get(t.task_id);
    if (prev && typeof prev.seq === 'number' && typeof t.seq === 'number' && prev.seq >= t.seq && prev.closed === t.closed) return;
    S.tasks.set(t.task_id, t);
    settlePending(t);
    if (taskUser() && !prev && !t.closed) {
      S.fresh.add(t.task_id);
      cue(t.priority === 1);
    }
    if (taskUser() && t.task_id === S.selected) renderTaskDetail(t);
    if (S.view === 'units') loadUnitsSoon();
    if (S.detail && t.alert_id === S.selected) {
      S.detail.tasks = S.detail.tasks.filter((x) => x.task_id !== t.task_id).concat([t]);
      renderDetail();
    }
  }

  // -------------------------------------------------------------------- sound
  function unlockAudio() {
    try {
      if (!S.audio) S.audio = new (window.AudioContext || window.webkitAudioContext)();
      if (S.audio.state === 'suspended') S.audio.resume();
    } catch (_) { S.audio = null; }
    updateSound();
  }
  function audioReady() { return S.audio && S.audio.state === 'running'; }
  function updateSound() {
    const b = $('#sound');
    if (!audioReady()) { b.textContent = 'Click to enable sound'; b.className = 'sound locked'; }
    else if (!S.soundOn) { b.textContent = 'Sound off'; b.className = 'sound off'; }
    else { b.textContent = 'Sound on'; b.className = 'sound'; }
  }
  $('#sound').addEventListener('click', () => {
    if (!audioReady()) unlockAudio();
    else S.soundOn = !S.soundOn;
    updateSound();
  });
  document.addEventListener('click', () => { if (S.audio && S.audio.state === 'suspended') S.audio.resume().then(updateSound); }, { capture: true });

  function cue(urgentCue) {
    S.cues += 1;
    document.body.dataset.cues = String(S.cues);
    S.lastCue = Date.now();
    if (!S.soundOn || !audioReady()) return;
    const ctx = S.audio, t0 = ctx.currentTime;
    const tones = urgentCue ? [988, 740, 988, 740, 988] : [880, 660];
    tones.forEach((f, i) => {
      const o = ctx.createOscillator(), g = ctx.createGain(), t = t0 + i * 0.2;
      o.type = 'square';
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, t);
      g.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, t + 0.18);
      o.connect(g).connect(ctx.destination);
      o.start(t);
      o.stop(t + 0.19);
    });
  }

  // ---------------------------------------------------------------- the board
  function render() {
    if (!S.me) return;
    if (taskUser()) renderPatrolList(); else renderAlertList();
    renderBanner();
    renderOverview();
    if (S.view === 'tasks') renderTaskBoard();
    document.title = titleText();
  }

  function titleText() {
    const n = [...S.alerts.values()].filter(urgent).length;
    return (n ? '(' + n + ') P1 · ' : '') + 'banwatch · dispatch console';
  }

  function renderAlertList() {
    const list = $('#alert-list');
    const alerts = [...S.alerts.values()].sort(urgency);
    $('#alert-count').textContent = alerts.length ? '(' + alerts.length + ')' : '';
    $('#list-empty').hidden = alerts.length > 0;
    keyedList(list, alerts, (a) => a.alert_id,
      (a) => [a.seq, a.state, a.alert_id === S.selected, S.fresh.has(a.alert_id), JSON.stringify(a.response || null)].join('|'), alertCard);
  }

  /* Update a list in place: an item whose signature did not change keeps its element, so the
     board does not flicker and what the operator is about to click stays where it is. */
  function keyedList(list, items, keyOf, sigOf, build) {
    const old = new Map([...list.children].map((li) => [li.dataset.key, li]));
    const next = items.map((item) => {
      const key = keyOf(item), sig = sigOf(item), prev = old.get(key);
      if (prev && prev.dataset.sig === sig) return prev;
      const li = build(item);
      li.dataset.key = key;
      li.dataset.sig = sig;
      return li;
    });
    next.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
    while (list.children.length > next.length) list.lastChild.remove();
  }

  function alertCard(a) {
    const p = a.priority;
    const classes = ['card', 'p' + p, UNACKED.has(a.state) ? 'unacked' : 'acked', a.state];
    if (a.alert_id === S.selected) classes.push('selected');
    if (S.fresh.has(a.alert_id)) classes.push('new');
    const second = [a.ban_id, a.restrained_person, a.zone_id ? 'zone ' + a.zone_id : null,
      a.protected_person ? 'near ' + a.protected_person : null].filter(Boolean).join(' · ');
    const rec = (a.recommended_units || [])[0];
    const resp = a.response ? responseText(a.response) : null;
    const third = [a.confidence, typeof a.distance_m === 'number' ? metres(a.distance_m) : null,
      rec ? 'nearest unit ' + rec.unit_id + ' ' + metres(rec.distance_m) : null].filter(Boolean).join(' · ');
    if (a.restored) classes.push('is-restored');
    const li = el('li', {
      class: classes.join(' '), 'data-alert-id': a.alert_id, 'data-state': a.state,
      'data-priority': p, 'data-kind': a.kind, tabindex: 0,
    },
    el('div', { class: 'row' },
      el('span', { class: 'prio p' + p, text: 'P' + p }),
      el('span', { class: 'kind grow', text: kindText(a.kind) }),
      a.episode === 'ended' ? el('span', { class: 'ended', text: 'episode ended' }) : null,
      a.restored ? el('span', { class: 'restored', title: 'Restored from the record store after a restart; no stream worker tracks it', text: 'restored' }) : null,
      el('span', { class: 'state ' + a.state, text: a.state })),
    el('div', { class: 'meta', text: second }),
    third ? el('div', { class: 'meta', text: third }) : null,
    resp ? el('div', { class: 'meta response', 'data-response-unit': a.response.unit_id || '', text: resp }) : null,
    el('div', { class: 'meta' },
      a.state === 'escalated' ? el('strong', { text: 'Escalated · ' }) : null,
      ageSpan(a.opened_at, 'opened '), ' ago · updated ', clockText(a.updated_at)));
    li.addEventListener('click', () => select(a.alert_id));
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter') select(a.alert_id); });
    return li;
  }

  /* The alert's `response` (contract v2): who accepted its respond task, when, when on scene,
     and the outcome. */
  function responseText(r) {
    return 'Response: ' + [r.unit_id || '–',
      r.accepted_at ? 'accepted ' + clockText(r.accepted_at) : 'not accepted yet',
      r.on_scene_at ? 'on scene ' + clockText(r.on_scene_at) : null,
      r.outcome ? 'outcome ' + (OUTCOMES[r.outcome] || r.outcome) : null].filter(Boolean).join(' · ');
  }

  function renderBanner() {
    const banner = $('#p1-banner');
    if (taskUser()) { banner.hidden = true; return; }
    const waiting = [...S.alerts.values()].filter(urgent).sort(urgency);
    if (!waiting.length) { banner.hidden = true; return; }
    const top = waiting[0];
    banner.hidden = false;
    banner.dataset.alertId = top.alert_id;
    const more = waiting.length > 1 ? ' (+' + (waiting.length - 1) + ' more)' : '';
    $('#p1-text').replaceChildren(
      kindText(top.kind) + ' · ' + (top.ban_id || '') + ' · ' + (top.state === 'escalated' ? 'ESCALATED · ' : ''),
      ageSpan(top.opened_at, 'waiting '), more);
    const unheard = waiting.filter((a) => !S.silenced.has(a.alert_id));
    banner.classList.toggle('seen', unheard.length === 0);
    const newOnes = waiting.filter((a) => !S.seen.has(a.alert_id));
    if (newOnes.length) {
      newOnes.forEach((a) => S.seen.add(a.alert_id));
      cue(true);
    }
  }

  $('#p1-open').addEventListener('click', () => { const id = $('#p1-banner').dataset.alertId; if (id) select(id); });
  $('#p1-silence').addEventListener('click', () => {
    for (const a of S.alerts.values()) if (urgent(a)) S.silenced.add(a.alert_id);
    renderBanner();
  });

  function tick() {
    for (const span of document.querySelectorAll('.age[data-since]')) {
      span.textContent = (span.dataset.prefix || '') + age(span.dataset.since);
    }
    $('#clock').textContent = new Date(now()).toLocaleTimeString('sv-SE');
    updateConn();
    updateSound();
    if (S.view === 'units' && Date.now() - (S.unitsAt || 0) > 10000) { S.unitsAt = Date.now(); loadUnits(); }
    if (S.me && !taskUser()) {
      const loud = [...S.alerts.values()].filter((a) => urgent(a) && !S.silenced.has(a.alert_id));
      if (loud.length && Date.now() - S.lastCue > REPEAT_CUE_MS) cue(true);
    }
  }

  // --------------------------------------------------------------- the detail
  async function select(alertId) {
    if (taskUser()) { selectTask(alertId); return; }
    S.selected = alertId;
    S.fresh.delete(alertId);
    S.silenced.add(alertId);
    showView('board');
    render();
    const reason = $('#consult-reason').value;
    const r = await api('GET', '/api/alerts/' + encodeURIComponent(alertId) + '?reason=' + encodeURIComponent(reason));
    if (S.selected !== alertId) return;
    if (r.status === 401) { showLogin('Your session has ended. Log in again.'); return; }
    if (!r.ok) {
      S.detail = null;
      $('#detail-body').hidden = false;
      $('#detail-body').replaceChildren(el('p', { class: 'notice warn', text: (r.data && r.data.error) || 'The detail could not be loaded.' }));
      return;
    }
    setSkew(r.data.now);
    S.detail = r.data;
    const live = S.alerts.get(alertId);
    if (live && live.seq > S.detail.alert.seq) { S.detail.alert = live; S.detail.revisions.push(live); }
    renderDetail();
    drawDetailMap(true);
  }

  function fact(dl, name, value) {
    if (value === null || value === undefined || value === '') return;
    dl.append(el('dt', { text: name }), el('dd', {}, value));
  }

  function renderDetail() {
    const d = S.detail;
    const body = $('#detail-body');
    $('#detail-empty').hidden = !!d;
    body.hidden = !d;
    if (!d) return;
    const a = d.alert;
    const dl = el('dl', { class: 'facts' });
    fact(dl, 'Confidence', a.confidence);
    fact(dl, 'Distance', typeof a.distance_m === 'number' ? metres(a.distance_m) : null);
    if (a.position) {
      fact(dl, 'Position', el('span', {}, '± ' + metres(a.position.accuracy_m) + ' at ' + clockText(a.position.ts) + ' (', ageSpan(a.position.ts), ' ago)'));
    }
    if (a.protected_position) {
      fact(dl, 'Protected person', (a.protected_person || '') + ' ± ' + metres(a.protected_position.accuracy_m) + ' at ' + clockText(a.protected_position.ts));
    }
    fact(dl, 'Ban', [a.ban_id, d.ban ? d.ban.kind + ' v' + d.ban.version : null].filter(Boolean).join(' · '));
    fact(dl, 'Restrained', a.restrained_person);
    fact(dl, 'Zone', a.zone_id);
    fact(dl, 'Device', a.device_id);
    fact(dl, 'Incident', a.incident_id);
    fact(dl, 'Opened', dateTimeText(a.opened_at));
    fact(dl, 'Updated', dateTimeText(a.updated_at));
    fact(dl, 'Episode', a.episode);
    fact(dl, 'Acknowledged by', a.acknowledged_by);
    if (a.response) {
      fact(dl, 'Accepted by', a.response.unit_id);
      fact(dl, 'Accepted at', a.response.accepted_at ? clockText(a.response.accepted_at) : 'not yet');
      fact(dl, 'On scene at', a.response.on_scene_at ? clockText(a.response.on_scene_at) : 'not yet');
      fact(dl, 'Outcome', a.response.outcome ? OUTCOMES[a.response.outcome] || a.response.outcome : null);
    }

    const units = el('ul', { class: 'plain' });
    for (const u of a.recommended_units || []) {
      units.append(el('li', { 'data-unit': u.unit_id }, el('strong', { text: u.unit_id }), ' · ' + metres(u.distance_m)));
    }
    if (!units.children.length) units.append(el('li', { class: 'notice', text: 'No available unit with a fresh position.' }));

    const tasks = el('ul', { class: 'plain' });
    for (const t of d.tasks.slice().sort((x, y) => (ms(x.created_at) || 0) - (ms(y.created_at) || 0))) {
      tasks.append(el('li', { 'data-task-id': t.task_id, class: t.closed ? 'closed' : '' },
        el('strong', { text: taskText(t.kind) }), ' → ', t.unit_id || t.role || '–',
        t.state ? el('span', { class: 'tstate ' + t.state, text: STATES[t.state] || t.state }) : null,
        t.outcome ? ' · ' + (OUTCOMES[t.outcome] || t.outcome) : '',
        ' · due ' + dateTimeText(t.due_by)));
    }
    if (!tasks.children.length) tasks.append(el('li', { class: 'notice', text: 'No tasks.' }));

    const revs = el('table', { class: 'revs' },
      el('thead', {}, el('tr', {}, ...['#', 'time', 'state', 'P', 'confidence', 'distance'].map((h) => el('th', { text: h })))),
      el('tbody', {}, ...d.revisions.slice().sort((x, y) => y.seq - x.seq).map((r) => el('tr', {},
        el('td', { text: r.seq }), el('td', { text: clockText(r.updated_at) }),
        el('td', {}, el('span', { class: 'state ' + r.state, text: r.state })),
        el('td', { text: r.priority }), el('td', { text: r.confidence || '–' }),
        el('td', { text: typeof r.distance_m === 'number' ? metres(r.distance_m) : '–' })))));

    body.replaceChildren(
      el('h3', {}, el('span', { class: 'prio p' + a.priority, text: 'P' + a.priority }), kindText(a.kind),
        el('span', { id: 'detail-state', class: 'state ' + a.state, 'data-state': a.state, text: a.state })),
      el('div', { class: 'meta' }, 'Opened ', ageSpan(a.opened_at), ' ago'),
      el('div', { class: 'reason', text: a.reason || '' }),
      dl,
      el('h4', { text: 'Recommended units' }), units,
      el('h4', { text: 'Tasks' }), tasks,
      actions(a),
      el('h4', { text: 'Revisions' }), revs);
  }

  function actions(a) {
    const box = el('div', { class: 'actions' });
    const dispatcher = S.me.role === 'dispatcher';
    const pending = S.pending.get(a.alert_id);
    const note = el('textarea', { id: 'note', maxlength: 500, placeholder: 'Note (what was done, who was sent)' });
    const ack = el('button', { type: 'button', id: 'ack', text: 'Acknowledge' });
    const res = el('button', { type: 'button', id: 'resolve', text: 'Resolve' });
    ack.disabled = !dispatcher || !UNACKED.has(a.state) || pending === 'acknowledge' || !!a.restored;
    res.disabled = !dispatcher || a.state === 'resolved' || pending === 'resolve';
    ack.addEventListener('click', () => act(a.alert_id, 'ack', note.value));
    res.addEventListener('click', () => act(a.alert_id, 'resolve', note.value));
    box.append(note, el('div', { class: 'buttons' }, ack, res));
    if (a.restored) {
      box.append(el('p', { class: 'notice warn', id: 'restored-note', text: 'Restored from the record store after banwatch restarted: no stream worker tracks this alert any more, so it cannot be acknowledged and will not escalate. Handle it by the usual procedure, then Resolve takes it off the board (recorded in the audit log; the note is not kept).' }));
    }
    if (!dispatcher) {
      note.disabled = true;
      box.append(el('p', { class: 'notice', id: 'readonly', text: 'Your role (' + S.me.role + ') can read alerts but not act on them.' }));
    } else if (pending) {
      box.append(el('p', { class: 'notice', id: 'pending', text: (pending === 'acknowledge' ? 'Acknowledgement' : 'Resolution') + ' sent; waiting for the alert to change.' }));
    }
    if (S.actionError) box.append(el('p', { class: 'notice warn', text: S.actionError }));
    return box;
  }

  async function act(alertId, what, note) {
    S.actionError = null;
    const action = what === 'ack' ? 'acknowledge' : 'resolve';
    S.pending.set(alertId, action);
    renderDetail();
    const r = await api('POST', '/api/alerts/' + encodeURIComponent(alertId) + '/' + what, { note: note || '' })
      .catch(() => ({ ok: false, status: 0, data: null }));
    if (!r.ok) {
      S.pending.delete(alertId);
      S.actionError = (r.data && r.data.error) || 'The action could not be sent; try again.';
    } else if (r.data && r.data.published === false && r.data.why) {
      if (!/waiting/.test(r.data.why)) S.pending.delete(alertId);
    }
    setTimeout(() => { if (S.pending.get(alertId) === action) { S.pending.delete(alertId); renderDetail(); } }, 20000);
    renderDetail();
  }

  // ---------------------------------------------------------------- the map
  function initMap() {
    if (S.map || typeof L === 'undefined') return;
    S.map = L.map('map', { attributionControl: false, zoomControl: true, minZoom: 4, maxZoom: 19 })
      .setView([59.25, 17.85], 10);
    L.control.scale({ imperial: false }).addTo(S.map);
    S.overview = L.layerGroup().addTo(S.map);
    S.detailLayer = L.layerGroup().addTo(S.map);
    if (window.banwatchTiles) window.banwatchTiles.add(S.map); // streets (static/tiles.js)
    const legend = $('#legend');
    const item = (cls, text) => el('span', {}, el('span', { class: 'sw ' + cls }), text);
    legend.replaceChildren(...(S.me.role === 'patrol'
      ? [item('restrained', 'Task target'), item('unit', 'Units')]
      : [item('restrained', 'Restrained person (± accuracy)'), item('protected', 'Protected person'),
        item('zone', 'Ban zone (dashed: + buffer)'), item('unit', 'Recommended unit')]));
    setTimeout(() => S.map.invalidateSize(), 50);
  }

  function renderOverview() {
    if (!S.map) return;
    S.overview.clearLayers();
    if (S.me.role === 'patrol') {
      for (const t of S.tasks.values()) {
        if (!t.target || t.closed) continue;
        L.circleMarker([t.target.lat, t.target.lon], { radius: 9, color: '#fff', weight: 2, fillColor: COLORS[t.priority] || COLORS[3], fillOpacity: 0.9 })
          .bindTooltip(taskText(t.kind) + ' · P' + t.priority)
          .on('click', () => selectTask(t.task_id)).addTo(S.overview);
      }
      return;
    }
    for (const a of S.alerts.values()) {
      if (!a.position || a.alert_id === S.selected) continue;
      L.circleMarker([a.position.lat, a.position.lon], {
        radius: a.priority === 1 ? 9 : 7, color: a.state === 'escalated' ? '#ff3dbb' : '#11151b', weight: 2,
        fillColor: COLORS[a.priority] || COLORS[3], fillOpacity: 0.9,
      }).bindTooltip('P' + a.priority + ' ' + kindText(a.kind) + ' · ' + (a.ban_id || ''))
        .on('click', () => select(a.alert_id)).addTo(S.overview);
    }
  }

  function zoneLayers(ban) {
    const out = [];
    const features = (ban && ban.zones && ban.zones.features) || [];
    for (const f of features) {
      const p = f.properties || {};
      const g = f.geometry || {};
      const label = (p.label ? p.label + ' · ' : '') + 'zone ' + (p.zone_id || '') + (p.buffer_m ? ' (+' + p.buffer_m + ' m buffer)' : '');
      const style = { color: '#c9a0ff', weight: 2, fillColor: '#c9a0ff', fillOpacity: 0.15 };
      const start = out.length;
      if (g.type === 'Point') {
        const [lon, lat] = g.coordinates;
        const r = Number(p.radius_m || 0);
        out.push(L.circle([lat, lon], { ...style, radius: r }).bindTooltip(label));
        if (p.buffer_m) out.push(L.circle([lat, lon], { color: '#c9a0ff', weight: 1, dashArray: '4 4', fill: false, radius: r + Number(p.buffer_m) }));
      } else if (g.type === 'Polygon' || g.type === 'MultiPolygon') {
        out.push(L.geoJSON(f, { style: () => style }).bindTooltip(label));
        const outline = ban.outlines && ban.outlines[p.zone_id];
        if (outline) out.push(L.geoJSON(outline, { style: () => ({ color: '#c9a0ff', weight: 1, dashArray: '4 4', fill: false }), interactive: false }));
      }
      for (let i = start; i < out.length; i++) out[i].zoneId = p.zone_id;
    }
    return out;
  }

  function unitMarker(u, tasked) {
    const label = el('span', { class: tasked ? 'tasked' : '', text: u.unit_id });
    return L.marker([u.position.lat, u.position.lon], {
      icon: L.divIcon({ className: 'unit-icon', html: label, iconSize: null }),
      keyboard: false,
    }).bindTooltip(u.unit_id + (u.task ? ' · ' + taskText(u.task) : '') + (u.distance_m ? ' · ' + metres(u.distance_m) : ''));
  }

  function drawDetailMap(fit) {
    if (!S.map) return;
    S.detailLayer.clearLayers();
    renderOverview();
    const d = S.detail;
    if (!d) return;
    const a = d.alert;
    const layers = zoneLayers(d.ban);
    const pp = a.protected_position;
    if (pp) {
      if (d.ban && d.ban.proximity_m) layers.push(L.circle([pp.lat, pp.lon], { color: '#3ecf8e', weight: 1, dashArray: '6 4', fill: false, radius: d.ban.proximity_m, interactive: false }));
      if (pp.accuracy_m) layers.push(L.circle([pp.lat, pp.lon], { color: '#3ecf8e', weight: 1, fillOpacity: 0.15, radius: pp.accuracy_m, interactive: false }));
      layers.push(L.circleMarker([pp.lat, pp.lon], { radius: 7, color: '#11151b', weight: 2, fillColor: '#3ecf8e', fillOpacity: 1 }).bindTooltip('Protected person ' + (a.protected_person || '')));
    }
    const pos = a.position;
    if (pos) {
      if (pos.accuracy_m) layers.push(L.circle([pos.lat, pos.lon], { color: '#ff4d4f', weight: 1, fillOpacity: 0.2, radius: pos.accuracy_m, interactive: false }));
      layers.push(L.circleMarker([pos.lat, pos.lon], { radius: 8, color: '#fff', weight: 2, fillColor: '#ff4d4f', fillOpacity: 1 })
        // an incident's own position (where `respond` goes, contract v2 rule 9) has no accuracy
        .bindTooltip(pos.accuracy_m == null ? 'Incident position · ' + clockText(pos.ts)
          : 'Restrained ' + (a.restrained_person || '') + ' · ± ' + metres(pos.accuracy_m) + ' · ' + clockText(pos.ts)));
    }
    // what the view fits: the alert's own zone (all zones when it has none), the persons, the
    // units sent (or the nearest recommended one)
    const focus = layers.filter((l) => !l.zoneId || !a.zone_id || l.zoneId === a.zone_id);
    const units = (d.units || []).filter((u) => u.position);
    const sent = units.filter((u) => u.task);
    for (const u of units) {
      const marker = unitMarker(u, !!u.task);
      layers.push(marker);
      if (u.task || (!sent.length && u === units.find((x) => x.recommended))) focus.push(marker);
      if (pos) layers.push(L.polyline([[u.position.lat, u.position.lon], [pos.lat, pos.lon]], { color: '#4aa3ff', weight: 1, dashArray: '3 5', interactive: false }));
    }
    layers.forEach((l) => l.addTo(S.detailLayer));
    if (fit) {
      const group = L.featureGroup(focus);
      const b = group.getBounds();
      if (b.isValid()) S.map.fitBounds(b.pad(0.25), { maxZoom: 17 });
    }
  }

  // -------------------------------------------------------------- patrol view
  function renderPatrolList() {
    const list = $('#alert-list');
    const tasks = [...S.tasks.values()].sort((x, y) => (x.closed - y.closed) || (x.priority - y.priority) || ((ms(x.due_by) || 0) - (ms(y.due_by) || 0)));
    $('#alert-count').textContent = tasks.length ? '(' + tasks.filter((t) => !t.closed).length + ' open)' : '';
    $('#list-empty').hidden = tasks.length > 0;
    keyedList(list, tasks, (t) => t.task_id,
      (t) => [t.closed, t.seq, t.state, t.task_id === S.selected, S.fresh.has(t.task_id), t.due_by].join('|'), taskCard);
  }

  function taskCard(t) {
    const classes = ['card', 'task', 'p' + t.priority];
    if (t.closed) classes.push('closed');
    if (t.task_id === S.selected) classes.push('selected');
    if (S.fresh.has(t.task_id)) classes.push('new');
    const stateText = t.state ? STATES[t.state] || t.state : (t.closed ? 'closed' : 'open');
    const li = el('li', { class: classes.join(' '), 'data-task-id': t.task_id, 'data-unit': t.unit_id || '', 'data-kind': t.kind, 'data-state': t.state || '', tabindex: 0 },
      el('div', { class: 'row' },
        el('span', { class: 'prio p' + t.priority, text: 'P' + t.priority }),
        el('span', { class: 'kind grow', text: taskText(t.kind) }),
        el('span', { class: 'tstate ' + (t.state || (t.closed ? 'done' : 'assigned')), text: stateText })),
      el('div', { class: 'meta', text: [t.ban_id, t.restrained_person, t.unit_id || ROLES[t.role] || t.role].filter(Boolean).join(' · ') }),
      el('div', { class: 'meta' }, 'created ', ageSpan(t.created_at), ' ago · ', el('span', { class: 'due' + (!t.closed && ms(t.due_by) < now() ? ' overdue' : '') }, 'due ' + dateTimeText(t.due_by))),
      t.outcome ? el('div', { class: 'meta', text: 'Outcome: ' + (OUTCOMES[t.outcome] || t.outcome) }) : null,
      el('div', { class: 'instructions', text: t.instructions || '' }));
    li.addEventListener('click', () => {
      if (taskUser()) selectTask(t.task_id);
      else if (t.alert_id && S.alerts.has(t.alert_id)) select(t.alert_id);
    });
    return li;
  }

  function selectTask(taskId) {
    const t = S.tasks.get(taskId);
    if (!t) return;
    S.selected = taskId;
    S.fresh.delete(taskId);
    render();
    renderTaskDetail(t);
    if (S.map && t.target) S.map.setView([t.target.lat, t.target.lon], 16);
  }

  function renderTaskDetail(t) {
    const dl = el('dl', { class: 'facts' });
    fact(dl, 'Priority', 'P' + t.priority);
    fact(dl, 'Ban', t.ban_id);
    fact(dl, 'Restrained', t.restrained_person);
    fact(dl, 'Violations', typeof t.violations === 'number' ? String(t.violations) : null);
    fact(dl, 'Target', t.target ? t.target.lat.toFixed(5) + ', ' + t.target.lon.toFixed(5) : null);
    fact(dl, 'Attempt', typeof t.attempt === 'number' ? String(t.attempt) : null);
    fact(dl, 'Created', dateTimeText(t.created_at));
    fact(dl, 'Due', dateTimeText(t.due_by));
    fact(dl, 'Updated', t.updated_at ? dateTimeText(t.updated_at) : null);
    fact(dl, 'Outcome', t.outcome ? OUTCOMES[t.outcome] || t.outcome : null);
    $('#detail-empty').hidden = true;
    const body = $('#detail-body');
    body.hidden = false;
    body.replaceChildren(el('h3', {}, el('span', { class: 'prio p' + t.priority, text: 'P' + t.priority }), taskText(t.kind),
      el('span', { id: 'task-state', class: 'tstate ' + (t.state || ''), 'data-state': t.state || (t.closed ? 'closed' : 'assigned'), text: t.state ? STATES[t.state] || t.state : (t.closed ? 'closed' : 'open') })),
      el('div', { class: 'reason', text: t.instructions || '' }), dl, taskActions(t));
  }

  /* What the unit or the role reports: big buttons that follow the task's state (the server
     sends the actions valid from it, and the outcomes of its kind), an outcome choice for
     Done and, after a motivational talk where the person accepts help, the person's consent
     asked as a plain question with no default. While an update is on its way every button
     waits for the worker's revision. */
  function taskActions(t) {
    if (!S.choice || S.choice.taskId !== t.task_id) S.choice = { taskId: t.task_id, outcome: null, consent: null, note: '' };
    const ch = S.choice;
    const box = el('div', { class: 'actions task-actions', 'data-task': t.task_id });
    const pending = (S.taskPending.get(t.task_id) || {}).action;
    const valid = new Set(t.actions || []);
    const shown = S.me.role === 'patrol' ? Object.keys(ACTIONS) : ['accept', 'done'];
    const needsConsent = t.kind === 'motivational_talk' && ch.outcome === 'held_accepts_help';
    const buttons = shown.map((a) => {
      const b = el('button', { type: 'button', id: 'task-' + a, class: 'big ' + a, text: ACTIONS[a] });
      b.disabled = !valid.has(a) || !!pending || (a === 'done' && (!ch.outcome || (needsConsent && ch.consent === null)));
      b.addEventListener('click', () => sendTask(t, a));
      return b;
    });
    if (!t.closed && valid.has('done')) {
      const outcomes = el('div', { class: 'outcomes', role: 'radiogroup', 'aria-label': 'Outcome' });
      for (const o of t.outcomes || []) {
        const b = el('button', { type: 'button', class: 'outcome' + (ch.outcome === o ? ' chosen' : ''), 'data-outcome': o, role: 'radio', 'aria-checked': ch.outcome === o ? 'true' : 'false', text: OUTCOMES[o] || o });
        b.disabled = !!pending;
        b.addEventListener('click', () => { ch.outcome = o; if (o !== 'held_accepts_help') ch.consent = null; renderTaskDetail(t); });
        outcomes.append(b);
      }
      box.append(el('h4', { text: 'Outcome (for Done)' }), outcomes);
      if (needsConsent) box.append(consentChoice(t, ch, !!pending));
    }
    const note = el('textarea', { id: 'task-note', maxlength: 500, placeholder: 'Note (optional; kept with the report, never shown to anyone else)' });
    note.value = ch.note;
    note.addEventListener('input', () => { ch.note = note.value; });
    if (!t.closed) box.append(note);
    box.append(el('div', { class: 'buttons big-buttons' }, ...buttons));
    if (pending) box.append(el('p', { class: 'notice', id: 'task-pending', text: ACTIONS[pending] + ' sent; waiting for the task to change.' }));
    if (S.taskError && S.taskError.taskId === t.task_id) box.append(el('p', { class: 'notice warn', id: 'task-error', text: S.taskError.text }));
    if (t.closed) box.append(el('p', { class: 'notice', text: 'This task has ended (' + (STATES[t.state] || 'closed') + '): nothing more to report.' }));
    return box;
  }

  function consentChoice(t, ch, pending) {
    const yes = el('button', { type: 'button', id: 'consent-yes', class: 'consent' + (ch.consent === true ? ' chosen' : ''), role: 'radio', 'aria-checked': String(ch.consent === true), text: 'Yes, the person agrees' });
    const no = el('button', { type: 'button', id: 'consent-no', class: 'consent' + (ch.consent === false ? ' chosen' : ''), role: 'radio', 'aria-checked': String(ch.consent === false), text: 'No' });
    yes.disabled = no.disabled = pending;
    yes.addEventListener('click', () => { ch.consent = true; renderTaskDetail(t); });
    no.addEventListener('click', () => { ch.consent = false; renderTaskDetail(t); });
    const summary = ch.consent === null ? 'Ask the person, then choose Yes or No.'
      : ch.consent ? 'Done will record that the person agrees: social services will be told and a referral follows.'
        : 'Done will record that the person does not agree: nothing is passed to social services.';
    return el('fieldset', { id: 'consent', class: 'consent-box', role: 'radiogroup' },
      el('legend', { text: 'Consent to share' }),
      el('p', { class: 'question', text: 'The person agrees that social services may be told that they want help, and may contact them about it.' }),
      el('div', { class: 'buttons' }, yes, no),
      el('p', { class: 'notice', id: 'consent-summary', text: summary }));
  }

  async function sendTask(t, action) {
    const ch = S.choice;
    const body = { note: ch.note || '', outcome: null, consent_to_share: null };
    if (action === 'done') {
      body.outcome = ch.outcome;
      if (t.kind === 'motivational_talk' && ch.outcome === 'held_accepts_help') body.consent_to_share = ch.consent;
    }
    S.taskError = null;
    const sent = { action, from: t.state };
    S.taskPending.set(t.task_id, sent);
    renderTaskDetail(S.tasks.get(t.task_id) || t);
    const r = await api('POST', '/api/tasks/' + encodeURIComponent(t.task_id) + '/' + action, body)
      .catch(() => ({ ok: false, status: 0, data: null }));
    if (r.status === 401) { showLogin('Your session has ended. Log in again.'); return; }
    if (!r.ok) {
      S.taskPending.delete(t.task_id);
      S.taskError = { taskId: t.task_id, text: (r.data && r.data.error) || 'The report could not be sent; try again.' };
    } else {
      ch.note = '';
      if (r.data && r.data.published === false && !/waiting/.test(r.data.why || '')) S.taskPending.delete(t.task_id);
      setTimeout(() => {
        if (S.taskPending.get(t.task_id) === sent) {
          S.taskPending.delete(t.task_id);
          const now = S.tasks.get(t.task_id);
          if (now && S.selected === t.task_id) renderTaskDetail(now);
        }
      }, 20000);
    }
    const latest = S.tasks.get(t.task_id) || t;
    if (S.selected === t.task_id) renderTaskDetail(latest);
  }

  // --------------------------------------------------------------- task board
  function showView(view) {
    S.view = view;
    $('#board-view').hidden = view !== 'board';
    $('#tasks-view').hidden = view !== 'tasks';
    $('#history-view').hidden = view !== 'history';
    $('#units-view').hidden = view !== 'units';
    if (view === 'units') loadUnits();
    $('#audit-view').hidden = view !== 'audit';
    for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.view === view);
    if (view === 'tasks') renderTaskBoard();
    if (view === 'board' && S.map) setTimeout(() => S.map.invalidateSize(), 0);
  }
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showView(b.dataset.view));

  function renderTaskBoard() {
    const groups = new Map();
    for (const t of S.tasks.values()) {
      const key = t.unit_id || 'role: ' + (t.role || '–');
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(t);
    }
    const keys = [...groups.keys()].sort((x, y) => (x.startsWith('role') - y.startsWith('role')) || (x < y ? -1 : 1));
    const cols = keys.map((k) => el('div', { class: 'column', 'data-group': k },
      el('h2', { text: k }),
      el('ol', { class: 'cards' }, ...groups.get(k)
        .sort((x, y) => (x.closed - y.closed) || (x.priority - y.priority) || ((ms(x.due_by) || 0) - (ms(y.due_by) || 0)))
        .map(taskCard))));
    $('#task-board').replaceChildren(...(cols.length ? cols : [el('p', { class: 'empty', text: 'No tasks.' })]));
  }

  // ---------------------------------------------------------------- unit board
  const UNIT_STATES = { free: 'free', tasked: 'tasked', accepted: 'accepted', en_route: 'en route', on_scene: 'on scene', off_duty: 'off duty' };
  async function loadUnits() {
    const r = await api('GET', '/api/units').catch(() => null);
    if (!r || !r.ok) return;
    const rows = r.data.units.map((u) => el('tr', { 'data-unit': u.unit_id, 'data-status': u.status },
      el('td', { class: 'mono', text: u.unit_id }),
      el('td', {}, el('span', { class: 'ustate ' + u.status, text: UNIT_STATES[u.status] || u.status })),
      el('td', { text: u.task ? taskText(u.task.kind) + ' · P' + u.task.priority : '–' }),
      el('td', { class: 'mono', text: u.task && u.task.alert_id ? u.task.alert_id : '–' }),
      el('td', { text: u.task && u.task.updated_at ? clockText(u.task.updated_at) : '–' }),
      el('td', { text: u.avl_status || '–' }),
      el('td', {}, u.position_ts ? ageSpan(u.position_ts) : '–', u.position_ts ? ' ago' : '')));
    $('#u-rows').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 7, class: 'empty', text: 'No units known yet.' }))]));
  }
  function loadUnitsSoon() {
    if (S.unitsTimer) return;
    S.unitsTimer = setTimeout(() => { S.unitsTimer = null; if (S.view === 'units') loadUnits(); }, 500);
  }

  // ------------------------------------------------- history and audit searches
  // Both are paged by offset (the server says `next_offset`); each search is audited.
  const PAGE = 25;
  const SEARCH = {
    history: { path: '/api/alerts', key: 'alerts', prefix: 'h', offset: 0, fields: ['ban_id:h-ban', 'person:h-person', 'kind:h-kind', 'state:h-state', 'from:h-from', 'to:h-to'] },
    audit: { path: '/api/audit', key: 'records', prefix: 'a', offset: 0, fields: ['object:a-object', 'actor:a-actor', 'from:a-from', 'to:a-to'] },
  };
  for (const [k, v] of Object.entries(KINDS)) $('#h-kind').append(el('option', { value: k, text: v }));

  function localToRfc3339(v) { // a datetime-local value (the workstation's time) as UTC
    if (!v) return '';
    const t = new Date(v);
    return Number.isNaN(t.getTime()) ? '' : t.toISOString();
  }

  async function runSearch(which, offset) {
    const s = SEARCH[which];
    const q = new URLSearchParams();
    for (const f of s.fields) {
      const [name, id] = f.split(':');
      let v = $('#' + id).value.trim();
      if (name === 'from' || name === 'to') v = localToRfc3339(v);
      if (v) q.set(name, v);
    }
    if (which === 'history' && !q.has('state')) q.set('state', 'all');
    q.set('limit', PAGE);
    q.set('offset', Math.max(0, offset));
    const err = $('#' + s.prefix + '-error');
    const r = await api('GET', s.path + '?' + q.toString()).catch(() => ({ ok: false, status: 0, data: null }));
    if (r.status === 401) { showLogin('Your session has ended. Log in again.'); return; }
    if (!r.ok) {
      err.hidden = false;
      err.textContent = (r.data && r.data.error) || 'The search could not be made; try again.';
      return;
    }
    err.hidden = true;
    s.offset = r.data.offset;
    s.next = r.data.next_offset;
    const rows = r.data[s.key].map(which === 'history' ? historyRow : auditRow);
    $('#' + s.prefix + '-rows').replaceChildren(...(rows.length ? rows
      : [el('tr', {}, el('td', { colspan: 8, class: 'empty', text: 'Nothing found.' }))]));
    const first = r.data.total ? r.data.offset + 1 : 0;
    $('#' + s.prefix + '-page').textContent = first + '–' + (r.data.offset + r.data[s.key].length) + ' of ' + r.data.total;
    $('#' + s.prefix + '-prev').disabled = r.data.offset === 0;
    $('#' + s.prefix + '-next').disabled = r.data.next_offset === null;
  }

  function historyRow(a) {
    const tr = el('tr', { 'data-alert-id': a.alert_id, tabindex: 0, class: 'pick' },
      el('td', { text: dateTimeText(a.updated_at || a.opened_at) }),
      el('td', {}, el('span', { class: 'prio p' + a.priority, text: 'P' + a.priority })),
      el('td', { text: kindText(a.kind) }),
      el('td', {}, el('span', { class: 'state ' + a.state, text: a.state })),
      el('td', { text: a.ban_id || '–' }), el('td', { text: a.restrained_person || '–' }),
      el('td', { text: a.protected_person || '–' }), el('td', { class: 'mono', text: a.alert_id }));
    tr.addEventListener('click', () => openRevisions(a.alert_id));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') openRevisions(a.alert_id); });
    return tr;
  }

  function auditRow(r) {
    return el('tr', {},
      el('td', { text: dateTimeText(r.ts) }), el('td', { text: r.actor || '–' }),
      el('td', { text: r.role || '–' }), el('td', { text: r.action || '–' }),
      el('td', { class: 'mono', text: r.object || '–' }), el('td', { text: r.reason || '' }));
  }

  async function openRevisions(alertId) {
    const box = $('#h-detail');
    box.hidden = false;
    const r = await api('GET', '/api/alerts/' + encodeURIComponent(alertId) + '?reason=review')
      .catch(() => ({ ok: false, status: 0, data: null }));
    if (!r.ok) {
      box.replaceChildren(el('p', { class: 'notice warn', text: (r.data && r.data.error) || 'The alert could not be loaded.' }));
      return;
    }
    const a = r.data.alert;
    const revs = r.data.revisions.slice().sort((x, y) => x.seq - y.seq);
    box.dataset.alertId = alertId;
    box.replaceChildren(
      el('h3', {}, el('span', { class: 'prio p' + a.priority, text: 'P' + a.priority }), kindText(a.kind), ' · ',
        el('span', { class: 'mono', text: alertId })),
      el('p', { class: 'sub', text: 'Opened ' + dateTimeText(a.opened_at) + ' · ban ' + (a.ban_id || '–') + ' · ' + (a.restrained_person || '–') + (r.data.source === 'store' ? ' · from the record store' : '') + ' · opening it was recorded in the audit log (supervisory review)' }),
      el('table', { class: 'revs', id: 'h-revs' },
        el('thead', {}, el('tr', {}, ...['#', 'time', 'state', 'P', 'confidence', 'by', 'reason'].map((h) => el('th', { text: h })))),
        el('tbody', {}, ...revs.map((x) => el('tr', { 'data-seq': x.seq },
          el('td', { text: x.seq }), el('td', { text: dateTimeText(x.updated_at) }),
          el('td', {}, el('span', { class: 'state ' + x.state, text: x.state })),
          el('td', { text: x.priority }), el('td', { text: x.confidence || '–' }),
          el('td', { text: x.acknowledged_by || '–' }), el('td', { text: x.reason || '' }))))));
  }

  for (const which of Object.keys(SEARCH)) {
    const p = SEARCH[which].prefix;
    $('#' + (which === 'history' ? 'history' : 'audit') + '-form').addEventListener('submit', (ev) => { ev.preventDefault(); runSearch(which, 0); });
    $('#' + p + '-prev').addEventListener('click', () => runSearch(which, SEARCH[which].offset - PAGE));
    $('#' + p + '-next').addEventListener('click', () => { if (SEARCH[which].next !== null) runSearch(which, SEARCH[which].next); });
  }

  // -------------------------------------------------------------------- boot
  async function boot() {
    updateSound();
    let r = null;
    try { r = await api('GET', '/api/me'); } catch (_) { r = null; }
    if (r && r.status === 200) start(r.data);
    else showLogin(r ? '' : 'The console cannot be reached.');
  }
  boot();
}());
