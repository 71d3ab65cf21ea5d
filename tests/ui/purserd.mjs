// Starts the real purserd on ephemeral loopback ports for the browser tests
// and the page benchmark, and talks to its HTTP API as a client would.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export function argument(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  if (at > 0 && at + 1 < process.argv.length) return process.argv[at + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
}

export async function startPurserd(binary) {
  const dir = mkdtempSync(join(tmpdir(), 'purser-ui-'));
  const child = spawn(binary, ['--data-dir', dir, '--rpc', '127.0.0.1:0', '--http', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', process.env.PURSER_TEST_VERBOSE ? 'inherit' : 'ignore'],
  });
  const line = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`purserd exited with ${code} before serving`)));
  });
  const port = /http_port=(\d+)/.exec(line);
  if (!port) throw new Error(`purserd did not start: ${line}`);
  const base = `http://127.0.0.1:${port[1]}`;
  const key = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
  return {
    base,
    key,
    api: (path, options) => call(base, key, path, options),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// One API call; a status other than `expect` (any 2xx by default) throws.
export async function call(base, key, path, { method = 'GET', body, headers = {}, expect } = {}) {
  const response = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const ok = expect === undefined ? response.ok : response.status === expect;
  if (!ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

// The page's money format, written independently of the page: dollars and
// cents, half up, from integer micro-USD.
export function usd(micros) {
  const negative = micros < 0;
  const m = Math.abs(micros);
  const cents = Math.floor(m / 10_000) + (m % 10_000 >= 5_000 ? 1 : 0);
  return `${negative ? '−' : ''}$${Math.floor(cents / 100).toLocaleString('en-US')}.${String(cents % 100).padStart(2, '0')}`;
}
