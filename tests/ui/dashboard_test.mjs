// The dashboard in a real browser (Debian's Chromium, headless) against a real
// purserd with seeded data: a runaway agent frozen by the ledger, an anomaly,
// a budget threshold alert and 30 days of imported history. The page must
// show the API's figures, raise no console error and no failed request, and
// fit a phone. Screenshots go to --out.
//   node tests/ui/dashboard_test.mjs --purserd build/bin/purserd --out build/ui
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from '../../ui/node_modules/playwright-core/index.mjs';
import { argument, startPurserd, usd } from './purserd.mjs';

// ---- seeded data ---------------------------------------------------------------

async function seed(api) {
  const account = (id, parent, kind, extra = {}) =>
    api('/v1/accounts', { method: 'POST', body: { id, parent, kind, wallet: !parent, name: extra.name || '' } });
  await account('acme', undefined, 'org', { name: 'Acme' });
  await api('/v1/accounts/acme/deposits', { method: 'POST', headers: { 'Idempotency-Key': 'd1' }, body: { amount_micros: 5_000_000_000 } });
  for (const team of ['research', 'support', 'ops']) await account(team, 'acme', 'team');
  for (const agent of ['agent-r1', 'agent-r2', 'agent-r3']) await account(agent, 'research', 'agent');
  for (const agent of ['agent-s1', 'agent-s2']) await account(agent, 'support', 'agent');
  await account('agent-o1', 'ops', 'agent');
  await api('/v1/accounts/research/caps', { method: 'PUT', body: { daily_limit_micros: 400_000_000, monthly_limit_micros: 3_000_000_000 } });
  await api('/v1/accounts/support/caps', { method: 'PUT', body: { daily_limit_micros: 10_000_000 } });
  await api('/v1/accounts/agent-o1/caps', { method: 'PUT', body: { runaway_action: 'freeze', runaway_error_streak: 3 } });

  // 30 days of history, imported as usage with occurred_at, over three models.
  const { prices } = await api('/v1/prices');
  const models = prices.slice(0, 3).map((p) => p.model);
  assert.equal(models.length, 3, 'the default price table has models');
  const commands = [];
  const agents = ['agent-r1', 'agent-r2', 'agent-r3', 'agent-s1', 'agent-s2', 'agent-o1'];
  for (let day = 29; day >= 1; --day) {
    const at = new Date(Date.now() - day * 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z');
    agents.forEach((agent, i) => {
      const model = models[(day + i) % 3];
      commands.push({ op: 'usage', usage_id: `h-${day}-${agent}`, account: agent, occurred_at: at, action: 'chat',
        usage: { model, input_tokens: 20_000 + 1_000 * ((day * 7 + i) % 13), output_tokens: 4_000 + 300 * (day % 5) } });
    });
  }
  const imported = await api('/v1/batch', { method: 'POST', body: { commands } });
  assert.ok(imported.results.every((r) => r.status === 201), JSON.stringify(imported.results.find((r) => r.status !== 201)));

  // Today: a budget threshold on support (over 50% of its $10 day).
  await api('/v1/usage', { method: 'POST', body: { usage_id: 'today-s1', account: 'agent-s1', amount_micros: 6_000_000 } });
  // An anomaly: agent-r1's baseline is $1/h, and it spends $4 now.
  await api('/v1/accounts/agent-r1/baseline', { method: 'PUT', body: { micros_per_hour: 1_000_000, multiplier: 3 } });
  await api('/v1/accounts/acme/baseline', { method: 'PUT', body: { micros_per_hour: 20_000_000, multiplier: 3 } });
  await api('/v1/usage', { method: 'POST', body: { usage_id: 'today-r1', account: 'agent-r1', amount_micros: 4_000_000 } });
  // A runaway: three failed calls in a row freeze agent-o1.
  for (let i = 0; i < 3; ++i) {
    await api('/v1/reservations', { method: 'POST', body: { reservation_id: `o1-${i}`, account: 'agent-o1', amount_micros: 500_000 } });
    await api(`/v1/reservations/o1-${i}/settle`, { method: 'POST', body: { amount_micros: 300_000, outcome: 'error' } });
  }
  const frozen = await api('/v1/accounts/agent-o1');
  assert.equal(frozen.frozen, true, 'the runaway agent is frozen by the ledger');
  const anomalies = await api('/v1/anomalies/active?parent=acme');
  assert.ok(anomalies.anomalies.some((a) => a.account === 'agent-r1'), 'agent-r1 is anomalous');
}

// ---- the page --------------------------------------------------------------------

// A page that records every console error, page error and failed request.
async function openPage(context) {
  const page = await context.newPage();
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  return { page, problems };
}

async function login(page) {
  await page.goto(`${purserd.base}/ui`);
  await page.fill('#key', purserd.key);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15_000 });
}

const attribute = (page, selector, name) => page.getAttribute(selector, name);
const text = (page, selector) => page.textContent(selector);

async function desktop(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const { page, problems } = await openPage(context);
  // Without a key the page asks for one and calls nothing.
  await page.goto(`${purserd.base}/ui`);
  await page.waitForSelector('#login:not([hidden])');
  // A wrong key is refused with a message (the 401 is expected here).
  await page.fill('#key', 'purser_wrong_key_0000000000000000');
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.length > 0);
  assert.match(await text(page, '#login-error'), /refused/);
  problems.length = 0;

  await login(page);
  const api = purserd.api;
  const overview = await api('/v1/accounts/acme/overview?depth=1&minutes=180');
  const top = overview.accounts[0].balance;
  assert.equal(await attribute(page, '[data-testid=spend-today]', 'data-micros'), String(top.spent_today_micros));
  assert.equal(await text(page, '[data-testid=spend-today]'), usd(top.spent_today_micros));
  assert.equal(await text(page, '[data-testid=spend-month]'), usd(top.spent_month_micros));
  assert.equal(await text(page, '[data-testid=frozen-count]'), '1');

  // Gauges for each team.
  for (const team of ['research', 'support', 'ops']) assert.ok(await page.$(`.gauge[data-account="${team}"]`), team);
  assert.match(await text(page, '.gauge[data-account="support"]'), /of \$10\.00/);

  // The 30-day trend: every day, the three models, the API's total.
  const trends = await api('/v1/accounts/acme/trends?days=30');
  assert.equal(await attribute(page, '#trend', 'data-days'), '30');
  assert.equal(await attribute(page, '#trend', 'data-total-micros'),
    String(trends.data.reduce((s, d) => s + d.total_cost_micros, 0)));
  assert.equal((await attribute(page, '#trend', 'data-models')).split(',').length, 3);
  assert.ok(await page.$('#trend canvas'), 'the trend is drawn');
  // Burn per minute against the baseline.
  assert.equal(await attribute(page, '#burn', 'data-minutes'), '180');
  assert.equal(await attribute(page, '#burn', 'data-spend-micros'),
    String(overview.burn.micros_per_minute.reduce((s, v) => s + v, 0)));
  assert.match(await text(page, '#burn-note'), /Baseline \$20\.00\/h/);

  // Alerts, the anomaly, the frozen agent.
  assert.ok(await page.$('#alerts li[data-type="budget_threshold"][data-account="support"]'), 'threshold alert');
  assert.ok(await page.$('#alerts li[data-type="runaway"]'), 'runaway alert');
  assert.ok(await page.$('#anomalies li[data-account="agent-r1"]'), 'anomaly');
  assert.match(await text(page, '#frozen li[data-account="agent-o1"]'), /runaway/i);

  // The leaderboard and the chargeback are the API's.
  const leaders = await api('/v1/leaderboard?metric=spend&period=7d&parent=acme');
  assert.equal(await attribute(page, '#leaders tbody tr:first-child', 'data-account'), leaders.entries[0].account);
  assert.equal(await attribute(page, '#leaders tbody tr:first-child td.num', 'data-micros'), String(leaders.entries[0].spend_micros));
  const month = new Date().toISOString().slice(0, 7);
  const chargeback = await api(`/v1/chargeback?parent=acme&month=${month}`);
  assert.equal(await attribute(page, '#chargeback tfoot tr:last-child td.num', 'data-micros'), String(chargeback.total_micros));
  const download = page.waitForEvent('download');
  await page.click('#csv');
  const csv = readFileSync(await (await download).path(), 'utf8');
  const total = `${Math.floor(chargeback.total_micros / 1e6)}.${String(chargeback.total_micros % 1e6).padStart(6, '0')}`;
  assert.ok(csv.startsWith('account,calls,cost_usd\n'), csv);
  assert.ok(csv.trimEnd().endsWith(`total,,${total}`), csv);

  // The tree: teams with headroom; a click shows a team's agents.
  const research = overview.accounts.find((a) => a.id === 'research').balance;
  assert.equal(await attribute(page, '#tree tr[data-account="research"] td:nth-child(6)', 'data-micros'), String(research.headroom_micros));
  assert.equal(await page.$('#tree tr[data-account="agent-r2"]'), null);
  await page.click('#tree tr[data-account="research"] td:first-child');
  await page.waitForSelector('#tree tr[data-account="agent-r2"]');

  await page.screenshot({ path: join(out, 'dashboard-1280x800.png') });
  await page.screenshot({ path: join(out, 'dashboard-1280-full.png'), fullPage: true });

  // An admin unfreezes the runaway agent from the page.
  await page.click('#frozen li[data-account="agent-o1"] button');
  await page.waitForSelector('#frozen li[data-account="agent-o1"]', { state: 'detached' });
  assert.equal((await api('/v1/accounts/agent-o1')).frozen, false, 'unfrozen through the API');

  assert.deepEqual(problems, [], 'no console error or failed request');
  await context.close();
}

async function phone(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const { page, problems } = await openPage(context);
  await login(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page fits a phone's width (overflows by ${overflow}px)`);
  assert.equal(await text(page, '[data-testid=frozen-count]'), '0');
  await page.screenshot({ path: join(out, 'dashboard-390x844.png') });
  await page.screenshot({ path: join(out, 'dashboard-390-full.png'), fullPage: true });
  assert.deepEqual(problems, [], 'no console error or failed request');
  await context.close();
}

// ---- the run (last: the helpers above are initialized by now) -------------------

const purserd = await startPurserd(argument('purserd'));
const out = argument('out', 'build/ui');
const browserPath = argument('chromium', '/usr/bin/chromium');
mkdirSync(out, { recursive: true });

let browser;
try {
  await seed(purserd.api);
  browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
  await desktop(browser);
  await phone(browser);
  console.log(`dashboard: passed; screenshots in ${out}`);
} finally {
  if (browser) await browser.close();
  await purserd.stop();
}
