// stratum-proxy operator dashboard. Plain DOM code, no framework, no
// build step. Every value that comes from the API (and so possibly from a
// miner: rig names, user names, pool addresses, error texts) reaches the
// page through textContent or a canvas fillText, never as markup.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const PAGE = 100;
  const TOKEN_KEY = 'stratum-proxy.token';
  const PALETTE = ['#1f6feb', '#d9480f', '#2b8a3e', '#ae3ec9', '#e8590c', '#0b7285', '#c2255c', '#5c940d'];
  const MAX_SERIES = PALETTE.length;

  const $ = (id) => document.getElementById(id);

  // el builds an element: props are assigned as properties (className,
  // textContent, title, type, value, ...), children are nodes or strings
  // (strings become text nodes).
  function el(tag, props, ...children) {
    const n = document.createElement(tag);
    if (props) {
      for (const k of Object.keys(props)) {
        if (k === 'dataset') Object.assign(n.dataset, props[k]);
        else n[k] = props[k];
      }
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      n.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return n;
  }

  // ---- formatting ----
  const HASH_UNITS = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s', 'EH/s'];
  function fmtHashrate(h) {
    if (typeof h !== 'number' || !isFinite(h) || h < 0) return '–';
    let i = 0;
    while (h >= 1000 && i < HASH_UNITS.length - 1) { h /= 1000; i++; }
    const digits = h >= 100 ? 0 : h >= 10 ? 1 : 2;
    return h.toFixed(i === 0 && h === Math.floor(h) ? 0 : digits) + ' ' + HASH_UNITS[i];
  }
  function fmtNum(x, digits) {
    if (typeof x !== 'number' || !isFinite(x)) return '–';
    return x.toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 0 : digits });
  }
  function fmtDiff(d) {
    if (typeof d !== 'number' || !isFinite(d)) return '–';
    if (d !== 0 && (Math.abs(d) < 0.001 || Math.abs(d) >= 1e9)) return d.toExponential(2);
    return fmtNum(d, 4);
  }
  function fmtAge(iso) {
    if (!iso) return '–';
    const t = Date.parse(iso);
    if (isNaN(t)) return '–';
    let s = Math.max(0, Math.floor((Date.now() - t) / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }
  function fmtTime(iso) {
    if (!iso) return 'never';
    const t = new Date(iso);
    return isNaN(t) ? '–' : t.toLocaleString();
  }

  // ---- API ----
  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
    // missing: the endpoint does not exist in this proxy version.
    get missing() { return this.status === 404 || this.status === 405 || this.status === 501; }
  }

  function token() { return localStorage.getItem(TOKEN_KEY) || ''; }

  async function api(method, path, body) {
    const headers = { 'Accept': 'application/json' };
    const tok = token();
    if (tok) headers['Authorization'] = 'Bearer ' + tok;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, 'proxy unreachable');
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const msg = data && typeof data.error === 'string' && data.error ? data.error : resp.status + ' ' + resp.statusText;
      throw new APIError(resp.status, msg);
    }
    return data || {};
  }

  // panelState shows why a panel has no data: "not available" when its
  // endpoint is not in this proxy version, the error otherwise.
  function panelState(name, err) {
    const section = $(name);
    const label = document.querySelector('.panel-status[data-for="' + name + '"]');
    section.classList.toggle('unavailable', !!(err && err.missing));
    if (!label) return;
    if (!err) { label.textContent = ''; return; }
    if (err.missing) label.textContent = 'not available in this proxy version';
    else if (err.status === 401) label.textContent = 'unauthorized: enter the API token above';
    else label.textContent = err.message;
  }

  // armed turns a button into a two-click confirmation (no native
  // dialogs): the first click arms it for 3 s, the second runs action.
  function armedButton(label, action) {
    const b = el('button', { type: 'button', className: 'danger', textContent: label });
    let timer = 0;
    b.addEventListener('click', () => {
      if (!b.classList.contains('armed')) {
        b.classList.add('armed');
        b.textContent = 'confirm?';
        timer = setTimeout(() => { b.classList.remove('armed'); b.textContent = label; }, 3000);
        return;
      }
      clearTimeout(timer);
      b.classList.remove('armed');
      b.textContent = label;
      b.disabled = true;
      Promise.resolve(action()).finally(() => { b.disabled = false; });
    });
    return b;
  }

  function setMsg(node, text, ok) {
    node.textContent = text;
    node.className = 'msg ' + (ok ? 'ok' : 'err');
  }

  // ---- totals ----
  let stats = null;
  async function loadStats() {
    try {
      stats = await api('GET', '/api/v1/stats');
      panelState('totals', null);
      $('t-miners').textContent = fmtNum(stats.miners);
      $('t-hashrate').textContent = fmtHashrate(stats.hashrate);
      $('t-accepted').textContent = fmtNum(stats.accepted_per_min, 1);
      $('t-rejected').textContent = fmtNum(stats.rejected_per_min, 1);
      $('t-upstreams').textContent = fmtNum(stats.upstreams);
      $('version').textContent = stats.version ? String(stats.version) : '';
    } catch (e) {
      stats = null;
      panelState('totals', e);
      for (const id of ['t-miners', 't-hashrate', 't-accepted', 't-rejected', 't-upstreams']) $(id).textContent = '–';
      throw e;
    }
  }

  // ---- workers ----
  const wq = { sort: 'hashrate', order: 'desc', offset: 0, limit: PAGE, user: '', pool: '', q: '' };
  const TEXT_COLUMNS = new Set(['user', 'rig', 'pool', 'algorithm', 'dialect', 'remote']);

  function workersURL() {
    const p = new URLSearchParams();
    for (const k of ['user', 'pool', 'q']) if (wq[k]) p.set(k, wq[k]);
    p.set('sort', wq.sort);
    p.set('order', wq.order);
    p.set('offset', String(wq.offset));
    p.set('limit', String(wq.limit));
    return '/api/v1/workers?' + p.toString();
  }

  function workerRow(w) {
    const text = (v) => el('td', { className: 'text', textContent: v === undefined || v === null ? '' : String(v), title: v === undefined || v === null ? '' : String(v) });
    const num = (v) => el('td', { className: 'num', textContent: v });
    const kick = armedButton('kick', async () => {
      try {
        await api('DELETE', '/api/v1/workers/' + encodeURIComponent(w.id));
        setStatus('kicked ' + (w.user || '') + '.' + (w.rig || ''), true);
        loadWorkers().catch(() => {});
      } catch (e) {
        setStatus(e.missing ? 'kick: not available in this proxy version' : 'kick: ' + e.message, false);
      }
    });
    const tr = el('tr', { dataset: { id: String(w.id || '') } },
      text(w.user), text(w.rig), text(w.pool), text(w.algorithm), text(w.dialect),
      num(fmtDiff(w.difficulty)), num(fmtHashrate(w.hashrate)), num(fmtNum(w.accepted)), num(fmtNum(w.rejected)),
      el('td', { textContent: fmtAge(w.connected_since), title: w.connected_since ? String(w.connected_since) : '' }),
      text(w.remote), el('td', null, kick));
    tr.className = 'worker';
    return tr;
  }

  async function loadWorkers() {
    const body = $('workers-body');
    let data;
    try {
      data = await api('GET', workersURL());
    } catch (e) {
      panelState('workers', e);
      body.replaceChildren(el('tr', null, el('td', { colSpan: 12, className: 'empty', textContent: e.missing ? 'not available' : '–' })));
      $('w-range').textContent = '';
      throw e;
    }
    panelState('workers', null);
    const total = typeof data.total === 'number' ? data.total : 0;
    const rows = Array.isArray(data.workers) ? data.workers : [];
    if (wq.offset > 0 && wq.offset >= total) { // the page emptied under us
      wq.offset = Math.max(0, Math.floor((total - 1) / wq.limit) * wq.limit);
      if (total > 0) return loadWorkers();
    }
    body.replaceChildren(...(rows.length ? rows.map(workerRow)
      : [el('tr', null, el('td', { colSpan: 12, className: 'empty', textContent: 'no workers' }))]));
    $('w-range').textContent = total ? (wq.offset + 1) + '–' + (wq.offset + rows.length) + ' of ' + fmtNum(total) : '0 workers';
    $('w-prev').disabled = wq.offset === 0;
    $('w-next').disabled = wq.offset + rows.length >= total;
  }

  function showSort() {
    for (const b of document.querySelectorAll('#workers-table th button[data-sort]')) {
      b.classList.toggle('asc', b.dataset.sort === wq.sort && wq.order === 'asc');
      b.classList.toggle('desc', b.dataset.sort === wq.sort && wq.order === 'desc');
    }
  }

  function initWorkers() {
    for (const b of document.querySelectorAll('#workers-table th button[data-sort]')) {
      b.addEventListener('click', () => {
        const col = b.dataset.sort;
        if (wq.sort === col) wq.order = wq.order === 'asc' ? 'desc' : 'asc';
        else { wq.sort = col; wq.order = TEXT_COLUMNS.has(col) ? 'asc' : 'desc'; }
        wq.offset = 0;
        showSort();
        loadWorkers().catch(() => {});
      });
    }
    showSort();
    let debounce = 0;
    for (const [id, key] of [['f-user', 'user'], ['f-pool', 'pool'], ['f-q', 'q']]) {
      $(id).addEventListener('input', () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => {
          wq[key] = $(id).value.trim();
          wq.offset = 0;
          loadWorkers().catch(() => {});
        }, 300);
      });
    }
    $('worker-filter').addEventListener('submit', (ev) => ev.preventDefault());
    $('w-prev').addEventListener('click', () => { wq.offset = Math.max(0, wq.offset - wq.limit); loadWorkers().catch(() => {}); });
    $('w-next').addEventListener('click', () => { wq.offset += wq.limit; loadWorkers().catch(() => {}); });
  }

  // ---- history charts ----
  function drawChart(canvas, legend, data) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 560, cssH = canvas.clientHeight || 220;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    g.font = '11px system-ui, sans-serif';

    let series = (data && Array.isArray(data.series) ? data.series : [])
      .map((s) => ({ key: String(s.key), points: (Array.isArray(s.points) ? s.points : []).filter((p) => Array.isArray(p) && isFinite(p[0]) && isFinite(p[1])) }))
      .filter((s) => s.points.length > 0);
    const hidden = Math.max(0, series.length - MAX_SERIES);
    // Keep the biggest series: by mean hashrate.
    series.forEach((s) => { s.mean = s.points.reduce((a, p) => a + p[1], 0) / s.points.length; });
    series.sort((a, b) => b.mean - a.mean);
    series = series.slice(0, MAX_SERIES);

    legend.replaceChildren();
    if (series.length === 0) {
      g.fillStyle = '#6a7380';
      g.fillText('no data yet', cssW / 2 - 28, cssH / 2);
      return;
    }
    let tMin = Infinity, tMax = -Infinity, yMax = 0;
    for (const s of series) for (const [t, v] of s.points) {
      if (t < tMin) tMin = t;
      if (t > tMax) tMax = t;
      if (v > yMax) yMax = v;
    }
    if (tMax === tMin) { tMin -= 60; tMax += 1; }
    if (yMax <= 0) yMax = 1;
    yMax *= 1.1;
    const L = 70, R = 10, T = 10, B = 22;
    const W = cssW - L - R, H = cssH - T - B;
    const x = (t) => L + (t - tMin) / (tMax - tMin) * W;
    const y = (v) => T + H - v / yMax * H;

    // grid and axis labels
    g.strokeStyle = '#dde1e6';
    g.fillStyle = '#6a7380';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = yMax * i / 4, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(L, yy); g.lineTo(L + W, yy); g.stroke();
      g.fillText(fmtHashrate(v), L - 6, yy);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let i = 0; i <= 4; i++) {
      const t = tMin + (tMax - tMin) * i / 4;
      const d = new Date(t * 1000);
      g.textAlign = i === 0 ? 'left' : i === 4 ? 'right' : 'center';
      g.fillText(d.getHours().toString().padStart(2, '0') + ':' + d.getMinutes().toString().padStart(2, '0'), x(t), T + H + 6);
    }
    // lines
    g.lineWidth = 1.5;
    series.forEach((s, i) => {
      g.strokeStyle = PALETTE[i];
      g.beginPath();
      s.points.forEach(([t, v], j) => { if (j === 0) g.moveTo(x(t), y(v)); else g.lineTo(x(t), y(v)); });
      if (s.points.length === 1) { g.arc(x(s.points[0][0]), y(s.points[0][1]), 2, 0, 2 * Math.PI); }
      g.stroke();
      const last = s.points[s.points.length - 1][1];
      legend.append(el('li', { title: s.key }, el('span', { className: 'swatch c' + i }), s.key + ' ' + fmtHashrate(last)));
    });
    if (hidden) legend.append(el('li', { className: 'muted', textContent: '+' + hidden + ' more' }));
  }

  const historyData = { user: null, pool: null };
  async function loadHistory() {
    try {
      const [u, p] = await Promise.all([api('GET', '/api/v1/history?by=user'), api('GET', '/api/v1/history?by=pool')]);
      historyData.user = u;
      historyData.pool = p;
      panelState('history', null);
    } catch (e) {
      historyData.user = historyData.pool = null;
      panelState('history', e);
      drawHistory();
      throw e;
    }
    drawHistory();
  }
  function drawHistory() {
    drawChart($('chart-user'), $('legend-user'), historyData.user);
    drawChart($('chart-pool'), $('legend-pool'), historyData.pool);
  }

  // ---- pools ----
  let pools = [];
  async function loadPools() {
    const body = $('pools-body');
    try {
      const data = await api('GET', '/api/v1/pools');
      pools = Array.isArray(data.pools) ? data.pools : [];
      // Pools in use first (miners, then up), then by address.
      const rank = (p) => (p.state && p.state.miners > 0 ? 2 : 0) + (p.state && p.state.up ? 1 : 0);
      pools.sort((a, b) => rank(b) - rank(a) || String(a.addr).localeCompare(String(b.addr)));
      panelState('pools', null);
    } catch (e) {
      panelState('pools', e);
      body.replaceChildren(el('tr', null, el('td', { colSpan: 10, className: 'empty', textContent: e.missing ? 'not available' : '–' })));
      throw e;
    }
    body.replaceChildren(...(pools.length ? pools.map(poolRow)
      : [el('tr', null, el('td', { colSpan: 10, className: 'empty', textContent: 'no pools: add one below' }))]));
    fillPoolSelect();
  }

  function poolRow(p) {
    const st = p.state && typeof p.state === 'object' ? p.state : null;
    // A pool no upstream uses and that never failed is idle, not down.
    const state = !st ? null : st.up ? 'up' : st.upstreams > 0 || st.last_error ? 'down' : 'idle';
    const stateCell = state
      ? el('td', { className: state === 'idle' ? 'muted' : state, textContent: state })
      : el('td', { className: 'muted', textContent: '–' });
    const del = armedButton('delete', async () => {
      try {
        await api('DELETE', '/api/v1/pools/' + encodeURIComponent(p.addr));
        setStatus('deleted pool ' + p.addr, true);
        loadPools().catch(() => {});
      } catch (e) {
        setStatus(e.missing ? 'delete pool: not available in this proxy version' : 'delete pool ' + p.addr + ': ' + e.message, false);
      }
    });
    return el('tr', { className: 'pool', dataset: { addr: String(p.addr || '') } },
      el('td', { className: 'text', textContent: String(p.addr || ''), title: String(p.addr || '') }),
      el('td', { textContent: String(p.algorithm || '') }),
      el('td', { textContent: p.mode ? String(p.mode) : 'default' }),
      el('td', { textContent: p.tls ? 'yes' : 'no' }),
      stateCell,
      el('td', { className: 'num', textContent: st ? fmtNum(st.upstreams) : '–' }),
      el('td', { className: 'num', textContent: st ? fmtNum(st.miners) : '–' }),
      el('td', { className: 'num', textContent: st ? fmtDiff(st.difficulty) : '–' }),
      el('td', { className: 'text', textContent: st && st.last_error ? String(st.last_error) : '', title: st && st.last_error ? String(st.last_error) : '' }),
      el('td', null, del));
  }

  function fillPoolSelect() {
    const sel = $('reg-pool');
    const prev = sel.value;
    sel.replaceChildren(...pools.map((p) => el('option', { value: String(p.addr), textContent: p.addr + ' (' + p.algorithm + ')' })));
    if (pools.some((p) => p.addr === prev)) sel.value = prev;
  }

  let algorithms = [];
  async function loadAlgorithms() {
    try {
      const data = await api('GET', '/api/v1/algorithms');
      algorithms = Array.isArray(data.algorithms) ? data.algorithms : [];
    } catch (e) {
      algorithms = [];
    }
    const sel = $('pa-algo');
    const prev = sel.value;
    const names = algorithms.length ? algorithms.map((a) => String(a.name)) : ['sha256', 'scrypt', 'randomx'];
    sel.replaceChildren(...names.map((n) => el('option', { value: n, textContent: n })));
    if (names.includes(prev)) sel.value = prev;
  }

  function initPools() {
    $('pool-add').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const msg = $('pa-msg');
      const body = { addr: $('pa-addr').value.trim(), algorithm: $('pa-algo').value, tls: $('pa-tls').checked, mode: $('pa-mode').value };
      try {
        await api('POST', '/api/v1/pools', body);
        setMsg(msg, 'added ' + body.addr, true);
        $('pa-addr').value = '';
        loadPools().catch(() => {});
      } catch (e) {
        setMsg(msg, e.missing ? 'adding pools is not available in this proxy version' : e.message, false);
      }
    });
  }

  // ---- users ----
  async function loadUsers() {
    const body = $('users-body');
    let users;
    try {
      const data = await api('GET', '/api/v1/users');
      users = Array.isArray(data.users) ? data.users : [];
      panelState('users', null);
    } catch (e) {
      panelState('users', e);
      body.replaceChildren(el('tr', null, el('td', { colSpan: 8, className: 'empty', textContent: e.missing ? 'not available' : '–' })));
      throw e;
    }
    // Keep a row whose password field is being typed in.
    const active = document.activeElement;
    if (active && active.closest && active.closest('#users-body') && active.tagName === 'INPUT' && active.value) return;
    body.replaceChildren(...(users.length ? users.map(userRow)
      : [el('tr', null, el('td', { colSpan: 8, className: 'empty', textContent: 'no users yet' }))]));
  }

  function userRow(u) {
    const name = String(u.name || '');
    const pw = el('input', { type: 'password', placeholder: 'new password', autocomplete: 'new-password' });
    const msg = el('span', { className: 'msg' });
    const set = el('button', { type: 'button', textContent: 'set' });
    set.addEventListener('click', async () => {
      try {
        await api('PATCH', '/api/v1/users/' + encodeURIComponent(name), { password: pw.value });
        pw.value = '';
        setMsg(msg, 'changed', true);
      } catch (e) {
        setMsg(msg, e.missing ? 'not available' : e.message, false);
      }
    });
    const del = armedButton('delete', async () => {
      try {
        await api('DELETE', '/api/v1/users/' + encodeURIComponent(name));
        setStatus('deleted user ' + name, true);
        loadUsers().catch(() => {});
      } catch (e) {
        setStatus(e.missing ? 'delete user: not available in this proxy version' : 'delete user: ' + e.message, false);
      }
    });
    const backups = Array.isArray(u.backups) ? u.backups.map((b) => (b && b.pool ? String(b.pool) : '')).filter(Boolean).join(', ') : '';
    return el('tr', { className: 'user', dataset: { name } },
      el('td', null, el('code', { textContent: name })),
      el('td', { className: 'text', textContent: String(u.pool || ''), title: String(u.pool || '') }),
      el('td', { className: 'text', textContent: String(u.user || ''), title: String(u.user || '') }),
      el('td', { className: 'text', textContent: backups || '–', title: backups }),
      el('td', { textContent: fmtTime(u.created) }),
      el('td', { textContent: fmtTime(u.last_seen) }),
      el('td', null, el('div', { className: 'pw-cell' }, pw, set, msg)),
      el('td', null, del));
  }

  // ---- registration ----
  function stratumHostPort() {
    let host = location.hostname || '127.0.0.1';
    if (host.includes(':')) host = '[' + host + ']';
    let port = '';
    if (stats && typeof stats.stratum_addr === 'string') {
      const i = stats.stratum_addr.lastIndexOf(':');
      if (i >= 0) port = stats.stratum_addr.slice(i + 1);
    }
    return { hostPort: host + ':' + (port || '9332'), known: !!port };
  }

  // commandBlocks are the miner settings for a pool's algorithm family:
  // [title, text] pairs.
  function commandBlocks(algorithm, name) {
    const { hostPort } = stratumHostPort();
    const url = 'stratum+tcp://' + hostPort;
    const asic = 'URL:      ' + url + '\nWorker:   ' + name + '.rig1\nPassword: x';
    switch (algorithm) {
      case 'sha256':
        return [['cpuminer', 'cpuminer -a sha256d -o ' + url + ' -u ' + name + '.rig1 -p x'], ['ASIC (pool settings page)', asic]];
      case 'scrypt':
        return [['cpuminer', 'cpuminer -a scrypt -o ' + url + ' -u ' + name + '.rig1 -p x'], ['ASIC (pool settings page)', asic]];
      case 'x11':
        return [['cpuminer', 'cpuminer -a x11 -o ' + url + ' -u ' + name + '.rig1 -p x'], ['ASIC (pool settings page)', asic]];
      case 'randomx':
        return [['xmrig', 'xmrig -o ' + hostPort + ' -u ' + name + ' -p x --nicehash']];
      default:
        return [['miner settings', asic]];
    }
  }

  function showRegistration(name, pool) {
    const p = pools.find((x) => x.addr === pool);
    const algo = p ? String(p.algorithm) : '';
    $('reg-name').textContent = name;
    $('reg-note').textContent = stratumHostPort().known ? '' : '(stratum port unknown: /api/v1/stats is not available, 9332 assumed)';
    $('reg-commands').replaceChildren(...commandBlocks(algo, name).flatMap(([title, text]) =>
      [el('h3', { textContent: title }), el('pre', { className: 'cmd', textContent: text })]));
    $('reg-result').hidden = false;
  }

  function initRegister() {
    $('reg-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const msg = $('reg-msg');
      const pool = $('reg-pool').value;
      const body = { pool, user: $('reg-user').value.trim(), password: $('reg-pass').value };
      try {
        const data = await api('POST', '/api/v1/users', body);
        if (!data.name) throw new APIError(0, data.error || 'no name in the answer');
        setMsg(msg, data.updated ? 'existing name (backups updated)' : 'registered', true);
        $('reg-pass').value = '';
        showRegistration(String(data.name), pool);
        loadUsers().catch(() => {});
      } catch (e) {
        setMsg(msg, e.message, false);
      }
    });
  }

  // ---- refresh loop ----
  function setStatus(text, ok) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('ok', !!ok);
  }

  let timer = 0;
  let running = false;
  async function refresh() {
    clearTimeout(timer);
    if (running) return;
    running = true;
    try {
      const results = await Promise.allSettled([loadStats(), loadWorkers(), loadHistory(), loadPools(), loadUsers()]);
      const unauthorized = results.some((r) => r.status === 'rejected' && r.reason && r.reason.status === 401);
      const down = results.every((r) => r.status === 'rejected' && r.reason && r.reason.status === 0);
      if (down) setStatus('proxy unreachable', false);
      else if (unauthorized) setStatus(token() ? 'the API token was refused' : 'enter the API token (--web.auth-token)', false);
      else if ($('status').textContent.startsWith('proxy unreachable') || $('status').textContent.includes('token')) setStatus('', true);
      $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
    } finally {
      running = false;
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function init() {
    $('token').value = token();
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('token').value.trim();
      if (v) localStorage.setItem(TOKEN_KEY, v); else localStorage.removeItem(TOKEN_KEY);
      setStatus('token saved', true);
      loadAlgorithms();
      refresh();
    });
    initWorkers();
    initPools();
    initRegister();
    window.addEventListener('resize', drawHistory);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
    loadAlgorithms();
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
