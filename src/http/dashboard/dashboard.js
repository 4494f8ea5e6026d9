'use strict';
// The live sale dashboard: the catalog's available counts (updated over /v1/stream),
// recent orders when a token is given, and per-shard health from /readyz.
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    token: sessionStorage.getItem('dashboard-token') || '',
    role: undefined, // of the token's user, once asked
    items: new Map(), // id -> { item, peak, row }
    orders: new Map(), // id -> order
    ws: null, wsOpen: false, retryMs: 500,
    changes: [], // timestamps of item changes (for the rate)
  };
  const money = (cents, cur) => `${(cents / 100).toFixed(2)} ${cur}`;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  async function api(path) {
    const headers = state.token ? { authorization: `Bearer ${state.token}` } : {};
    const res = await fetch(path, { headers, cache: 'no-store' });
    const body = await res.json().catch(() => null);
    return { status: res.status, body };
  }

  // ---- catalog -------------------------------------------------------------------
  async function loadCategories() {
    const sel = $('category');
    let cursor = '';
    for (let page = 0; page < 20; page++) { // at most 2000 categories in the menu
      const res = await api(`/v1/categories?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (res.status !== 200) break;
      for (const c of res.body.data) {
        const o = el('option', '', c.name);
        o.value = c.id;
        sel.append(o);
      }
      if (!res.body.next_cursor) break;
      cursor = res.body.next_cursor;
    }
    const wanted = params.get('category');
    if (wanted) {
      if (![...sel.options].some((o) => o.value === wanted)) {
        const o = el('option', '', `Category ${wanted}`);
        o.value = wanted;
        sel.append(o);
      }
      sel.value = wanted;
    }
  }

  async function loadItems() {
    const q = new URLSearchParams({ limit: '100' });
    if ($('category').value) q.set('category_id', $('category').value);
    if ($('search').value.trim()) q.set('q', $('search').value.trim());
    const res = await fetch(`/v1/items?${q}`, { cache: 'no-store' }); // the public view
    const body = await res.json().catch(() => null);
    const old = [...state.items.keys()];
    state.items.clear();
    const tbody = $('items');
    tbody.textContent = '';
    if (!res.ok || !body) {
      tbody.append(rowMessage('Could not load the catalog.'));
      return;
    }
    if (body.data.length === 0) tbody.append(rowMessage('No items.'));
    for (const item of body.data) {
      const entry = { item, peak: Math.max(item.available, 1), row: null };
      entry.row = itemRow(entry);
      state.items.set(item.id, entry);
      tbody.append(entry.row.tr);
    }
    resubscribe(old.filter((id) => !state.items.has(id)).map((id) => `items/${id}`),
      [...state.items.keys()].map((id) => `items/${id}`));
    totals();
  }

  function rowMessage(text) {
    const tr = el('tr');
    const td = el('td', 'muted', text);
    td.colSpan = 4;
    tr.append(td);
    return tr;
  }

  function itemRow(entry) {
    const { item } = entry;
    const tr = el('tr');
    tr.dataset.id = item.id;
    const name = el('td');
    name.append(el('div', 'item-name', item.name), el('div', 'item-id', item.id));
    const price = el('td', 'num', money(item.price_cents, item.currency));
    const availTd = el('td', 'num');
    const avail = el('span', 'avail', String(item.available));
    avail.dataset.testid = 'available';
    const badge = el('span', 'badge', 'SOLD OUT');
    availTd.append(avail, badge);
    const meterTd = el('td', 'wide');
    const meter = el('div', 'meter');
    const fill = el('span');
    meter.append(fill);
    meterTd.append(meter);
    tr.append(name, price, availTd, meterTd);
    const row = { tr, avail, badge, fill };
    paint(entry, row);
    return row;
  }

  function paint(entry, row = entry.row) {
    const n = entry.item.available;
    row.avail.textContent = String(n);
    row.avail.classList.toggle('zero', n === 0);
    row.badge.hidden = n !== 0;
    const pct = Math.max(0, Math.min(100, (n / entry.peak) * 100));
    row.fill.style.width = `${pct}%`;
    row.fill.classList.toggle('low', pct < 25);
  }

  function itemChanged(id, available) {
    const entry = state.items.get(id);
    if (!entry || entry.item.available === available) return;
    const before = entry.item.available;
    entry.item.available = available;
    entry.peak = Math.max(entry.peak, available);
    paint(entry);
    entry.row.avail.classList.add('flash');
    setTimeout(() => entry.row.avail.classList.remove('flash'), 600);
    state.changes.push(Date.now());
    activity(`${entry.item.name}: ${before} → ${available}`);
    totals();
  }

  function totals() {
    let units = 0;
    let soldOut = 0;
    for (const { item } of state.items.values()) {
      units += item.available;
      if (item.available === 0) soldOut++;
    }
    const minuteAgo = Date.now() - 60_000;
    state.changes = state.changes.filter((t) => t > minuteAgo);
    $('stat-items').textContent = String(state.items.size);
    $('stat-units').textContent = units.toLocaleString();
    $('stat-soldout').textContent = String(soldOut);
    $('stat-rate').textContent = String(state.changes.length);
  }

  function activity(text) {
    const list = $('activity');
    const li = el('li');
    li.append(el('span', '', text), el('span', 'muted', new Date().toLocaleTimeString()));
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
  }

  // ---- orders --------------------------------------------------------------------
  async function loadOrders() {
    if (!state.token) {
      $('orders').textContent = '';
      $('orders-title').textContent = 'Recent orders';
      $('orders-hint').hidden = false;
      return;
    }
    if (state.role === undefined) {
      const me = await api('/v1/users/me');
      state.role = me.status === 200 ? me.body.role : null;
    }
    const isAdmin = state.role === 'admin';
    const url = isAdmin ? '/v1/admin/orders?limit=20' : '/v1/orders?limit=20';
    const res = state.role === null ? { status: 401 } : await api(url);
    const scope = isAdmin ? 'All orders (admin)' : 'Your orders';
    $('orders-hint').hidden = res.status === 200;
    if (res.status !== 200) {
      $('orders-hint').textContent = res.status === 401 ? 'That token is not valid (expired or ' +
        'revoked).' : 'Orders are not available.';
      return;
    }
    $('orders-title').textContent = scope;
    const before = [...state.orders.keys()];
    state.orders.clear();
    for (const o of res.body.data) state.orders.set(o.id, o);
    resubscribe(before.filter((id) => !state.orders.has(id)).map((id) => `orders/${id}`),
      [...state.orders.keys()].map((id) => `orders/${id}`));
    renderOrders();
  }

  function renderOrders() {
    const list = $('orders');
    list.textContent = '';
    if (state.orders.size === 0) list.append(el('li', 'muted', 'No orders yet.'));
    for (const o of state.orders.values()) {
      const li = el('li');
      const left = el('span');
      left.append(el('span', 'item-id', o.id), document.createTextNode(`  ${money(o.total_cents, o.currency)}`));
      li.append(left, el('span', `status ${o.status}`, o.status.replace('_', ' ')));
      list.append(li);
    }
  }

  function orderChanged(id, status) {
    const o = state.orders.get(id);
    if (!o || o.status === status) return;
    activity(`Order ${id}: ${o.status} → ${status}`);
    o.status = status;
    renderOrders();
  }

  // ---- stream --------------------------------------------------------------------
  function connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${proto}://${location.host}/v1/stream`);
    state.ws = ws;
    ws.onopen = () => {
      state.wsOpen = true;
      state.retryMs = 500;
      streamState('live', 'up');
      // The token goes in a message, not the URL, so it stays out of logs.
      if (state.token) send({ op: 'auth', token: state.token });
      resubscribe([], [...[...state.items.keys()].map((id) => `items/${id}`),
        ...[...state.orders.keys()].map((id) => `orders/${id}`)]);
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg.op === 'event' && msg.type === 'item.available') itemChanged(msg.data.id, msg.data.available);
      else if (msg.op === 'event' && msg.type === 'order.status') orderChanged(msg.data.id, msg.data.status);
      else if (msg.op === 'error') streamState(`stream: ${msg.error.message}`, 'up');
    };
    ws.onclose = () => {
      state.wsOpen = false;
      streamState(`reconnecting in ${Math.round(state.retryMs / 100) / 10} s…`, 'down');
      setTimeout(connect, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 5000);
    };
  }

  function send(msg) {
    if (state.ws && state.wsOpen) state.ws.send(JSON.stringify(msg));
  }

  function resubscribe(drop, add) {
    for (let i = 0; i < drop.length; i += 100) send({ op: 'unsubscribe', topics: drop.slice(i, i + 100) });
    for (let i = 0; i < add.length; i += 100) send({ op: 'subscribe', topics: add.slice(i, i + 100) });
  }

  function streamState(text, cls) {
    $('stream-state').textContent = text;
    $('stream-dot').className = `dot ${cls}`;
  }

  // ---- health --------------------------------------------------------------------
  async function health() {
    let body = null;
    try {
      body = (await api('/readyz')).body;
    } catch { /* the engine itself is unreachable */ }
    const tiles = $('health');
    tiles.textContent = '';
    if (!body) {
      tiles.append(tile('Engine', false, 'unreachable'));
    } else {
      // Anonymous callers get statuses only; an admin token adds latency and the reason.
      for (const s of body.shards || []) tiles.append(tile(`Shard ${s.shard}`, s.status === 'up',
        s.status === 'up' ? (s.ms === undefined ? 'up' : `${s.ms} ms`) : 'down'));
      for (const r of body.redis || []) tiles.append(tile(`Redis ${r.redis}`, r.status === 'up',
        r.status === 'up' ? 'up' : `down${r.state ? ` (${r.state})` : ''}`));
    }
    $('health-at').textContent = `updated ${new Date().toLocaleTimeString()}`;
    totals();
  }

  function tile(name, up, detail) {
    const t = el('div', up ? 'tile' : 'tile down');
    t.append(el('div', 'name', name), el('div', 'detail', detail));
    return t;
  }

  // ---- token ---------------------------------------------------------------------
  function setToken(token) {
    state.token = token;
    state.role = undefined;
    if (token) sessionStorage.setItem('dashboard-token', token);
    else sessionStorage.removeItem('dashboard-token');
    $('forget').hidden = !token;
    $('token').value = '';
    $('token').placeholder = token ? 'Token in use (paste another to ' +
      'switch)' : 'Paste a token to see orders (optional)';
    if (state.ws) state.ws.close(); // reconnects, authenticates with the new token
    void loadOrders();
  }

  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setToken($('token').value.trim());
  });
  $('forget').addEventListener('click', () => setToken(''));
  $('category').addEventListener('change', () => void loadItems());
  let searchTimer = 0;
  $('search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => void loadItems(), 300);
  });

  $('search').value = params.get('q') || '';
  $('forget').hidden = !state.token;
  connect();
  void loadCategories().then(loadItems);
  void loadOrders();
  void health();
  setInterval(() => void health(), 3000);
  setInterval(() => void loadOrders(), 5000);
})();
