// The dashboard's speed in Chromium (headless) against a real purserd holding
// 10,000 agents under 100 teams, with a week of spend: the time from
// navigation to the fully drawn page (the page's `purser-drawn` mark, set
// after its first refresh has drawn every panel), and what the page
// transfers. Prints a Markdown summary for bench/RESULTS.md.
//   node bench/ui_bench.mjs --purserd build/bin/purserd [--agents 10000] [--runs 7]
import { gzipSync } from 'node:zlib';
import { chromium } from '../ui/node_modules/playwright-core/index.mjs';
import { argument, startPurserd } from '../tests/ui/purserd.mjs';

const agents = Number(argument('agents', '10000'));
const runs = Number(argument('runs', '7'));
const teams = Math.max(1, Math.round(agents / 100));
const purserd = await startPurserd(argument('purserd'));
let browser;
try {
  const seeded = await seed(purserd.api);
  browser = await chromium.launch({ executablePath: argument('chromium', '/usr/bin/chromium'), args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // Logged in already, as after a reload: the key is in session storage.
  await context.addInitScript((key) => sessionStorage.setItem('purser.key', key), purserd.key);
  const drawn = [];
  let transfer = null;
  for (let i = 0; i < runs; ++i) {
    const page = await context.newPage();
    const bodies = new Map();
    page.on('response', async (response) => {
      const path = new URL(response.url()).pathname;
      try {
        bodies.set(path, await response.body());
      } catch {
        // a body the page dropped; not counted
      }
    });
    await page.goto(`${purserd.base}/ui`);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
    drawn.push(await page.evaluate(() => performance.getEntriesByName('purser-drawn')[0].startTime));
    await page.waitForTimeout(200);
    if (transfer === null) transfer = sizes(bodies);
    await page.close();
  }
  drawn.sort((a, b) => a - b);
  const median = drawn[Math.floor(drawn.length / 2)];
  console.log(`ui bench: ${seeded.agents} agents under ${teams} teams, ${seeded.usages} usage records, ${runs} loads`);
  console.log(`navigation to fully drawn: median ${median.toFixed(0)} ms, min ${drawn[0].toFixed(0)} ms, max ${drawn[drawn.length - 1].toFixed(0)} ms`);
  console.log(`page's own files (HTML, JS, CSS): ${transfer.own.raw} bytes, ${transfer.own.gzip} gzip -9`);
  console.log(`chart library (uPlot JS + CSS): ${transfer.vendor.raw} bytes, ${transfer.vendor.gzip} gzip -9`);
  console.log(`API answers of one refresh: ${transfer.api.raw} bytes, ${transfer.api.gzip} gzip -9, ${transfer.api.count} requests`);
} finally {
  if (browser) await browser.close();
  await purserd.stop();
}

function sizes(bodies) {
  const sum = (filter) => {
    const picked = [...bodies.entries()].filter(([path]) => filter(path));
    return {
      raw: picked.reduce((s, [, body]) => s + body.length, 0),
      gzip: picked.reduce((s, [, body]) => s + gzipSync(body, { level: 9 }).length, 0),
      count: picked.length,
    };
  };
  return {
    own: sum((p) => p === '/ui' || p === '/ui/app.js' || p === '/ui/app.css'),
    vendor: sum((p) => p.startsWith('/ui/vendor/')),
    api: sum((p) => p.startsWith('/v1/')),
  };
}

async function seed(api) {
  await api('/v1/accounts', { method: 'POST', body: { id: 'org', kind: 'org', wallet: true } });
  await api('/v1/accounts/org/deposits', { method: 'POST', headers: { 'Idempotency-Key': 'seed' }, body: { amount_micros: 1e12 } });
  const opens = [];
  for (let t = 0; t < teams; ++t) opens.push({ id: `team-${t}`, parent: 'org', kind: 'team' });
  await inParallel(opens, (body) => api('/v1/accounts', { method: 'POST', body }));
  const agentOpens = [];
  for (let a = 0; a < agents; ++a) agentOpens.push({ id: `agent-${a}`, parent: `team-${a % teams}`, kind: 'agent' });
  await inParallel(agentOpens, (body) => api('/v1/accounts', { method: 'POST', body }));
  await inParallel([...Array(teams).keys()], (t) =>
    api(`/v1/accounts/team-${t}/caps`, { method: 'PUT', body: { daily_limit_micros: 50_000_000 + t * 1_000_000 } }));
  // A week of spend, one record per agent and day, as imported history.
  let usages = 0;
  for (let day = 6; day >= 0; --day) {
    const at = new Date(Date.now() - day * 86_400_000 - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    for (let from = 0; from < agents; from += 5_000) {
      const commands = [];
      for (let a = from; a < Math.min(agents, from + 5_000); ++a) {
        commands.push({ op: 'usage', usage_id: `u-${day}-${a}`, account: `agent-${a}`, occurred_at: at,
          amount_micros: 10_000 + ((a * 7919 + day) % 500_000) });
      }
      const answer = await api('/v1/batch', { method: 'POST', body: { commands } });
      usages += answer.results.filter((r) => r.status === 201).length;
    }
  }
  return { agents, usages };
}

async function inParallel(items, work, width = 16) {
  let next = 0;
  await Promise.all([...Array(width)].map(async () => {
    while (next < items.length) await work(items[next++]);
  }));
}
