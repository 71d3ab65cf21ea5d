// Purser's dashboard: what a FinOps engineer opens every morning. It uses the
// public HTTP API only, with the key pasted at login (kept in this tab's
// session storage), a handful of grouped reads per refresh (never one per
// agent), and refreshes every 10 s. Money arrives as integer micro-USD and is
// printed from integers, never through floating-point arithmetic on cents.
'use strict';

(() => {
  const REFRESH_MS = 10_000;
  const KEY_STORE = 'purser.key';
  const SCOPE_STORE = 'purser.scope';
  const MODEL_COLORS = ['#3056d3', '#12a05c', '#e8a317', '#9b51e0', '#d92d20', '#0ea5b7', '#8a6d3b', '#c2410c'];

  const $ = (selector) => document.querySelector(selector);
  const state = { key: '', self: null, root: '', timer: 0, expanded: new Set(), charts: {}, refreshes: 0, chargeback: null, generation: 0 };

  // ---- the API -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${state.key}` };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, { method: options.method || 'GET', headers, body: options.body });
    const text = await response.text();
    const body = text ? JSON.parse(text) : {};
    if (!response.ok) {
      const error = body.error || {};
      throw new ApiError(response.status, error.code || 'error', error.message || response.statusText);
    }
    return body;
  }

  const enc = encodeURIComponent;

  // ---- formatting ------------------------------------------------------------

  // Micro-USD as dollars and cents (half up), from integers.
  function usd(micros) {
    if (micros === null || micros === undefined) return '—';
    const negative = micros < 0;
    const m = Math.abs(micros);
    const cents = Math.floor(m / 10_000) + (m % 10_000 >= 5_000 ? 1 : 0);
    const dollars = Math.floor(cents / 100).toLocaleString('en-US');
    return `${negative ? '−' : ''}$${dollars}.${String(cents % 100).padStart(2, '0')}`;
  }

  // Micro-USD exactly, as a decimal string of dollars (for the CSV).
  function usdExact(micros) {
    const negative = micros < 0;
    const m = Math.abs(micros);
    return `${negative ? '-' : ''}${Math.floor(m / 1e6)}.${String(m % 1e6).padStart(6, '0')}`;
  }

  // Axis labels: short, for scales only.
  function usdShort(micros) {
    const d = micros / 1e6;
    if (Math.abs(d) >= 1e6) return `$${(d / 1e6).toFixed(1)}M`;
    if (Math.abs(d) >= 1e3) return `$${(d / 1e3).toFixed(1)}k`;
    if (Math.abs(d) >= 1) return `$${d.toFixed(d >= 100 ? 0 : 2)}`;
    return `$${d.toFixed(3)}`;
  }

  const count = (n) => Number(n).toLocaleString('en-US');

  function ago(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds}s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === 'class') node.className = value;
      else if (name.startsWith('data-')) node.setAttribute(name, value);
      else node[name] = value;
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  function setMoney(selector, micros) {
    const node = $(selector);
    node.textContent = usd(micros);
    node.dataset.micros = String(micros);
  }

  const currentMonth = () => new Date().toISOString().slice(0, 7);

  // ---- login -----------------------------------------------------------------

  async function login(key) {
    state.key = key;
    try {
      state.self = await api('/v1/keys/self');
    } catch (error) {
      state.key = '';
      sessionStorage.removeItem(KEY_STORE);
      showLogin(error.status === 401 ? 'This key was refused.' : `The server answered: ${error.message}`);
      return;
    }
    let roots;
    try {
      roots = state.self.account ? [state.self.account] : (await api('/v1/accounts')).accounts.map((a) => a.id);
    } catch (error) {
      showLogin(`The server answered: ${error.message}`);
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    const select = $('#scope');
    select.replaceChildren(...roots.map((id) => el('option', { value: id }, id)));
    const saved = sessionStorage.getItem(SCOPE_STORE);
    state.root = roots.includes(saved) ? saved : roots[0] || '';
    select.value = state.root;
    $('.scope').hidden = roots.length < 2;
    $('#login').hidden = true;
    $('#dashboard').hidden = false;
    $('#logout').hidden = false;
    if (!state.root) {
      banner('No account is visible to this key yet.');
      markReady();
      return;
    }
    await refresh();
    state.timer = setInterval(refresh, REFRESH_MS);
  }

  function showLogin(message = '') {
    clearInterval(state.timer);
    $('#dashboard').hidden = true;
    $('#logout').hidden = true;
    $('.scope').hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = message;
    $('#key').value = '';
    $('#key').focus();
  }

  function banner(message) {
    $('#banner').hidden = !message;
    $('#banner').textContent = message || '';
  }

  function markReady() {
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
    if (document.body.dataset.ready !== '1') {
      document.body.dataset.ready = '1';
      performance.mark('purser-drawn');
    }
  }

  // ---- one refresh: every panel from a few grouped reads -----------------------

  // Refreshes may overlap (the timer, a new scope, an expanded team): only
  // the newest one draws, so an older answer never shows under a new scope.
  async function refresh() {
    const generation = ++state.generation;
    const root = enc(state.root);
    const month = $('#month').value || currentMonth();
    const since = new Date(Date.now() - 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
    try {
      const [overview, trends, leaders, alerts, anomalies, chargeback, teams] = await Promise.all([
        api(`/v1/accounts/${root}/overview?depth=1&minutes=180`),
        api(`/v1/accounts/${root}/trends?days=30`),
        api(`/v1/leaderboard?metric=spend&period=7d&parent=${root}`),
        api(`/v1/alerts?account=${root}&since=${enc(since)}&order=newest`),
        api(`/v1/anomalies/active?parent=${root}`),
        api(`/v1/chargeback?parent=${root}&month=${enc(month)}`),
        Promise.all([...state.expanded].map((team) =>
          api(`/v1/accounts/${enc(team)}/overview?depth=1&minutes=1`).catch(() => null))),
      ]);
      if (generation !== state.generation) return;
      drawTiles(overview, trends, alerts);
      drawGauges(overview);
      drawTrend(trends);
      drawBurn(overview);
      drawAlerts(alerts, anomalies);
      drawFrozen(overview);
      drawLeaders(leaders);
      drawChargeback(chargeback);
      drawTree(overview, teams.filter(Boolean));
      banner('');
      $('#updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
      markReady();
    } catch (error) {
      if (generation !== state.generation) return;
      if (error.status === 401) {
        sessionStorage.removeItem(KEY_STORE);
        showLogin('The key is no longer accepted.');
        return;
      }
      banner(`Could not refresh: ${error.message}`);
    }
  }

  function drawTiles(overview, trends, alerts) {
    const top = overview.accounts[0].balance;
    setMoney('[data-testid=spend-today]', top.spent_today_micros);
    setMoney('[data-testid=spend-month]', top.spent_month_micros);
    const today = trends.data[trends.data.length - 1];
    $('[data-testid=calls-today]').textContent = count(today ? today.calls : 0);
    $('[data-testid=pending]').textContent = count(top.inflight);
    $('[data-testid=alerts-active]').textContent = count(alerts.alerts.length) + (alerts.truncated ? '+' : '');
    $('[data-testid=frozen-count]').textContent = count(overview.frozen_count);  // the list stops at 1,000
  }

  function meter(spent, limit) {
    const pct = limit === null ? 0 : limit === 0 ? 100 : Math.min(100, (spent / limit) * 100);
    const bar = el('span');
    bar.style.width = `${pct.toFixed(1)}%`;
    return el('div', { class: `meter${pct >= 100 ? ' bad' : pct >= 80 ? ' warn' : ''}` }, bar);
  }

  function gaugeLine(label, spent, limit) {
    const share = limit === null ? 'no cap' : limit === 0 ? '—' : `${Math.floor((spent / limit) * 100)}%`;
    return [
      meter(spent, limit),
      el('div', { class: 'detail' }, el('span', {}, `${label} ${usd(spent)}${limit === null ? '' : ` of ${usd(limit)}`}`), el('span', {}, share)),
    ];
  }

  function drawGauges(overview) {
    const teams = overview.accounts.filter((a) => a.depth === 1);
    const shown = teams.length ? teams : overview.accounts.slice(0, 1);
    $('#gauges').replaceChildren(...shown.map((a) => {
      const b = a.balance;
      return el('div', { class: 'gauge', 'data-account': a.id },
        el('div', { class: 'name' }, el('span', {}, a.name || a.id), el('span', { class: 'muted' }, `headroom ${usd(b.headroom_micros)}`)),
        ...gaugeLine('Today', b.spent_today_micros, b.daily_limit_micros),
        ...gaugeLine('Month', b.spent_month_micros, b.monthly_limit_micros));
    }));
  }

  // ---- charts (uPlot) ------------------------------------------------------------

  function chartWidth(container) {
    return Math.max(260, container.clientWidth);
  }

  // Replaces a chart when its series change, else gives it new data.
  function plot(name, container, options, data) {
    const signature = JSON.stringify(options.series.map((s) => s.label));
    const existing = state.charts[name];
    if (existing && existing.signature === signature) {
      existing.chart.setData(data);
      return;
    }
    if (existing) existing.chart.destroy();
    container.replaceChildren();
    const chart = new uPlot({ width: chartWidth(container), height: 240, ...options }, data, container);
    state.charts[name] = { chart, signature, container };
  }

  window.addEventListener('resize', () => {
    for (const { chart, container } of Object.values(state.charts)) chart.setSize({ width: chartWidth(container), height: 240 });
  });

  const moneyAxis = { values: (u, splits) => splits.map(usdShort), size: 64 };

  function drawTrend(trends) {
    const days = trends.data.map((d) => Date.parse(`${d.date}T00:00:00Z`) / 1000);
    const totals = new Map();
    for (const day of trends.data) {
      for (const [model, micros] of Object.entries(day.cost_by_model || {})) totals.set(model, (totals.get(model) || 0) + micros);
    }
    // The largest models first; the rest in one band.
    let models = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
    const other = models.slice(MODEL_COLORS.length - 1);
    if (other.length > 1) models = models.slice(0, MODEL_COLORS.length - 1).concat(['other']);
    const own = models.map((model) => trends.data.map((day) => {
      const by = day.cost_by_model || {};
      return model === 'other' && other.length > 1 ? other.reduce((s, m) => s + (by[m] || 0), 0) : by[model] || 0;
    }));
    if (models.length === 0) {
      models = ['spend'];
      own.push(trends.data.map((day) => day.total_cost_micros));
    }
    // Stacked: each band is drawn as the sum of itself and the bands below,
    // the top one first so that the lower ones paint over it.
    const stacked = own.map((_, i) => own[0].map((__, d) => own.slice(i).reduce((s, series) => s + series[d], 0)));
    const bars = uPlot.paths.bars({ size: [0.75, 40] });
    const series = [{}].concat(models.map((model, i) => ({
      label: model,
      stroke: MODEL_COLORS[i % MODEL_COLORS.length],
      fill: MODEL_COLORS[i % MODEL_COLORS.length],
      paths: bars,
      points: { show: false },
      value: (u, v, si, di) => (di === null || di === undefined ? '—' : usd(own[si - 1][di])),
    })));
    const container = $('#trend');
    container.dataset.days = String(days.length);
    container.dataset.models = models.join(',');
    container.dataset.totalMicros = String(trends.data.reduce((s, d) => s + d.total_cost_micros, 0));
    plot('trend', container, {
      series,
      // Half a day of room on each side, so that the first and last bars show whole.
      scales: { x: { time: true, range: (u, min, max) => [min - 43_200, max + 43_200] } },
      axes: [{}, moneyAxis],
      legend: { live: true },
      cursor: { points: { show: false } },
    }, [days, ...stacked]);
  }

  function drawBurn(overview) {
    const burn = overview.burn;
    const first = Date.parse(burn.first_minute) / 1000;
    const minutes = burn.micros_per_minute.map((_, i) => first + i * 60);
    const data = [minutes, burn.micros_per_minute];
    const series = [{}, { label: 'spend / min', stroke: '#3056d3', fill: 'rgba(48,86,211,.12)', width: 1.5, value: (u, v) => usd(v) }];
    const note = $('#burn-note');
    if (burn.baseline_micros_per_hour) {
      const baseline = Math.round(burn.baseline_micros_per_hour / 60);
      const threshold = Math.round((burn.baseline_micros_per_hour * Number(burn.multiplier)) / 60);
      data.push(minutes.map(() => baseline), minutes.map(() => threshold));
      series.push({ label: 'baseline', stroke: '#12a05c', dash: [6, 4], value: (u, v) => usd(v) },
        { label: `× ${burn.multiplier}`, stroke: '#d92d20', dash: [2, 4], value: (u, v) => usd(v) });
      note.textContent = `Baseline ${usd(burn.baseline_micros_per_hour)}/h; an anomaly above ${burn.multiplier}×.`;
    } else {
      note.textContent = 'No baseline is set for this account.';
    }
    const container = $('#burn');
    container.dataset.minutes = String(minutes.length);
    container.dataset.spendMicros = String(burn.micros_per_minute.reduce((s, v) => s + v, 0));
    plot('burn', container, { series, scales: { x: { time: true } }, axes: [{}, moneyAxis] }, data);
  }

  // ---- lists and tables ------------------------------------------------------------

  function emptyItem(text) {
    return el('li', { class: 'empty' }, text);
  }

  function drawAlerts(alerts, anomalies) {
    $('#anomalies').replaceChildren(...anomalies.anomalies.map((a) => el('li', { 'data-account': a.account },
      el('span', { class: 'badge anomaly' }, 'anomaly'), el('strong', {}, a.account),
      el('span', {}, `${usd(a.micros_per_hour)}/h, ${a.ratio_pct}% of baseline`), el('span', { class: 'when' }, `since ${ago(a.since)}`))));
    const recent = alerts.alerts.slice(0, 20);  // the newest first
    $('#alerts').replaceChildren(...(recent.length ? recent.map((a) => el('li', { 'data-type': a.type, 'data-account': a.account },
      el('span', { class: `badge ${a.type === 'runaway' ? 'runaway' : a.severity}` }, a.type.replace('_', ' ')),
      el('span', {}, a.message), el('span', { class: 'when' }, ago(a.created_at)))) : [emptyItem('No alerts in the last 24 hours.')]));
  }

  function drawFrozen(overview) {
    const admin = state.self && state.self.role === 'admin';
    $('#frozen').replaceChildren(...(overview.frozen.length ? overview.frozen.map((a) => {
      const item = el('li', { 'data-account': a.id }, el('strong', {}, a.id), el('span', { class: 'muted' }, a.frozen_reason || ''));
      if (admin) {
        const button = el('button', { class: 'small', type: 'button' }, 'Unfreeze');
        button.addEventListener('click', async () => {
          button.disabled = true;
          try {
            await api(`/v1/accounts/${enc(a.id)}/unfreeze`, { method: 'POST', body: '{}' });
            await refresh();
          } catch (error) {
            banner(`Could not unfreeze ${a.id}: ${error.message}`);
            button.disabled = false;
          }
        });
        item.append(el('span', { class: 'when' }, button));
      }
      return item;
    }) : [emptyItem('Nothing is frozen.')]));
    const unlisted = overview.frozen_count - overview.frozen.length;
    if (unlisted > 0) $('#frozen').append(emptyItem(`and ${count(unlisted)} more`));
  }

  function drawLeaders(leaders) {
    const top = leaders.entries.slice(0, 10);
    const max = Math.max(1, ...top.map((e) => e.spend_micros));
    $('#leaders tbody').replaceChildren(...top.map((e, i) => {
      const bar = el('span', { class: 'bar-cell' });
      bar.style.width = `${Math.max(2, Math.round((e.spend_micros / max) * 80))}px`;
      return el('tr', { 'data-account': e.account }, el('td', {}, i + 1), el('td', {}, e.account),
        el('td', { class: 'num', 'data-micros': String(e.spend_micros) }, usd(e.spend_micros)), el('td', {}, bar));
    }));
  }

  function drawChargeback(chargeback) {
    state.chargeback = chargeback;
    const lines = chargeback.lines.filter((l) => l.cost_micros !== 0 || l.calls !== 0);
    $('#chargeback tbody').replaceChildren(...lines.map((l) => el('tr', { 'data-account': l.account },
      el('td', {}, l.account), el('td', { class: 'num' }, count(l.calls)), el('td', { class: 'num', 'data-micros': String(l.cost_micros) }, usd(l.cost_micros)))));
    const foot = [['Subtotal', chargeback.subtotal_micros]];
    if (chargeback.markup_micros) foot.push(['Markup', chargeback.markup_micros]);
    foot.push(['Total', chargeback.total_micros]);
    $('#chargeback tfoot').replaceChildren(...foot.map(([label, micros]) => el('tr', {},
      el('td', {}, label), el('td'), el('td', { class: 'num', 'data-micros': String(micros) }, usd(micros)))));
  }

  function downloadCsv() {
    const c = state.chargeback;
    if (!c) return;
    const quote = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
    const rows = [['account', 'calls', 'cost_usd']].concat(c.lines.map((l) => [quote(l.account), l.calls, usdExact(l.cost_micros)]));
    rows.push(['subtotal', '', usdExact(c.subtotal_micros)], ['markup', '', usdExact(c.markup_micros)], ['total', '', usdExact(c.total_micros)]);
    const blob = new Blob([rows.map((r) => r.join(',')).join('\n') + '\n'], { type: 'text/csv' });
    const link = el('a', { href: URL.createObjectURL(blob), download: `chargeback-${c.parent}-${c.month}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  function treeRow(a, kind) {
    const b = a.balance;
    const money = (micros) => el('td', { class: 'num', 'data-micros': micros === null ? '' : String(micros) }, usd(micros));
    const name = kind === 'team' ? `${state.expanded.has(a.id) ? '▾' : '▸'} ${a.id}` : a.id;
    const row = el('tr', { class: `${kind}${b.frozen ? ' frozen' : ''}`, 'data-account': a.id },
      el('td', {}, name), money(b.spent_today_micros), money(b.daily_limit_micros), money(b.spent_month_micros),
      money(b.monthly_limit_micros), money(b.headroom_micros), el('td', { class: 'num' }, count(b.inflight)));
    if (kind === 'team') {
      row.addEventListener('click', () => {
        if (state.expanded.has(a.id)) state.expanded.delete(a.id);
        else state.expanded.add(a.id);
        refresh();
      });
    }
    return row;
  }

  function drawTree(overview, teams) {
    const children = new Map(teams.map((t) => [t.account, t.accounts.filter((a) => a.depth === 1)]));
    const rows = [treeRow(overview.accounts[0], 'root')];
    for (const team of overview.accounts.filter((a) => a.depth === 1)) {
      rows.push(treeRow(team, 'team'));
      if (state.expanded.has(team.id)) for (const agent of children.get(team.id) || []) rows.push(treeRow(agent, 'agent'));
    }
    $('#tree tbody').replaceChildren(...rows);
  }

  // ---- wiring ------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('#month').value = currentMonth();
    $('#login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      login($('#key').value.trim());
    });
    $('#logout').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORE);
      state.key = '';
      showLogin();
    });
    $('#scope').addEventListener('change', () => {
      state.root = $('#scope').value;
      state.expanded.clear();
      sessionStorage.setItem(SCOPE_STORE, state.root);
      refresh();
    });
    $('#month').addEventListener('change', refresh);
    $('#csv').addEventListener('click', downloadCsv);
    const saved = sessionStorage.getItem(KEY_STORE);
    if (saved) login(saved);
    else showLogin();
  });
})();
