// Shared harness of the headless-Chromium end-to-end tests (the *.test.mjs
// files beside this one): an SMTP sink, the quickstart binary on a free port
// with a fresh SQLite file and FS_SPA=0, Chromium through playwright-core,
// and the page helpers a flow of steps uses (screenshots, forms, flashes,
// redirect chains).
//
// Environment: QUICKSTART_BIN (default ../../target/debug/quickstart),
// CHROMIUM_BIN (default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const QUICKSTART_BIN = process.env.QUICKSTART_BIN
  ? path.resolve(process.env.QUICKSTART_BIN)
  : path.resolve(HERE, '../../target/debug/quickstart');
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const SHOTS = path.join(HERE, 'screenshots');
export const STEP_TIMEOUT = 60_000;

// ---------------------------------------------------------------------------
// SMTP sink: just enough of RFC 5321 for a client that sends plain mail.
// ---------------------------------------------------------------------------

export class SmtpSink extends EventEmitter {
  constructor() {
    super();
    this.messages = []; // { from, to: [], raw, subject, texts: [] }
    this.sockets = new Set();
    this.server = net.createServer((sock) => this.#session(sock));
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve(this.port);
      });
    });
  }

  close() {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  #session(sock) {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    sock.setEncoding('latin1'); // bytes in = chars out; decoded per MIME part later
    const reply = (line) => sock.write(line + '\r\n');
    let buf = '';
    let from = null;
    let to = [];
    let data = null; // array of lines while in DATA
    reply('220 127.0.0.1 browser-test SMTP sink ready');
    sock.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (data !== null) {
          if (line === '.') {
            this.#store(from, to, data.join('\r\n') + '\r\n');
            data = null;
            from = null;
            to = [];
            reply('250 2.0.0 OK: queued');
          } else {
            data.push(line.startsWith('.') ? line.slice(1) : line); // dot-unstuffing
          }
          continue;
        }
        const verb = line.split(' ', 1)[0].toUpperCase();
        const arg = line.slice(verb.length).trim();
        switch (verb) {
          case 'EHLO':
            sock.write('250-127.0.0.1 greets ' + (arg || 'you') + '\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP\r\n');
            break;
          case 'HELO':
            reply('250 127.0.0.1');
            break;
          case 'MAIL':
            from = (/<([^>]*)>/.exec(arg) || [, arg])[1];
            to = [];
            reply('250 2.1.0 OK');
            break;
          case 'RCPT':
            if (from === null) {
              reply('503 5.5.1 MAIL first');
              break;
            }
            to.push((/<([^>]*)>/.exec(arg) || [, arg])[1]);
            reply('250 2.1.5 OK');
            break;
          case 'DATA':
            if (!to.length) {
              reply('503 5.5.1 RCPT first');
              break;
            }
            data = [];
            reply('354 End data with <CR><LF>.<CR><LF>');
            break;
          case 'RSET':
            from = null;
            to = [];
            reply('250 2.0.0 OK');
            break;
          case 'NOOP':
            reply('250 2.0.0 OK');
            break;
          case 'VRFY':
            reply('252 2.0.0 Cannot VRFY');
            break;
          case 'QUIT':
            reply('221 2.0.0 Bye');
            sock.end();
            break;
          default:
            reply('502 5.5.2 Command not implemented');
        }
      }
    });
  }

  #store(from, to, raw) {
    const msg = { from, to, raw, ...parseMail(raw) };
    this.messages.push(msg);
    this.emit('message', msg);
  }

  /** Resolves with the first mail (already received or arriving later) that matches. */
  waitFor(pred, what, timeout = STEP_TIMEOUT) {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (pred(m)) {
          clearTimeout(timer);
          this.off('message', onMsg);
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        this.off('message', onMsg);
        const seen = this.messages.map((m) => `${m.to.join(',')}: ${JSON.stringify(m.subject)}`);
        reject(new Error(`no mail ${what} within ${timeout} ms; received: ${seen.join('; ') || 'none'}`));
      }, timeout);
      this.on('message', onMsg);
    });
  }
}

// --- MIME, enough to read the links out of a mail --------------------------

function splitHeaders(raw) {
  const i = raw.search(/\r?\n\r?\n/);
  const head = i < 0 ? raw : raw.slice(0, i);
  const body = i < 0 ? '' : raw.slice(i).replace(/^\r?\n\r?\n/, '');
  const headers = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const c = line.indexOf(':');
    if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
  }
  return { headers, body };
}

function headerParam(value, name) {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value || '');
  return m ? (m[1] ?? m[2]) : undefined;
}

const latin1Bytes = (s) => Buffer.from(s, 'latin1');

function decodeQP(s) {
  const soft = s.replace(/=\r?\n/g, '');
  return latin1Bytes(soft.replace(/=([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))));
}

function decodeBody(body, cte) {
  switch ((cte || '7bit').toLowerCase()) {
    case 'quoted-printable':
      return decodeQP(body);
    case 'base64':
      return Buffer.from(body.replace(/\s+/g, ''), 'base64');
    default:
      return latin1Bytes(body);
  }
}

function decodeWords(s) {
  // RFC 2047 encoded words, e.g. =?utf-8?b?...?= or =?utf-8?q?...?=
  return (s || '')
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g, (_, cs, enc, txt) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(txt, 'base64')
          : latin1Bytes(txt.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (__, h) => String.fromCharCode(parseInt(h, 16))));
      return new TextDecoder(cs.toLowerCase() === 'utf8' ? 'utf-8' : cs).decode(bytes);
    });
}

function textParts(raw) {
  const { headers, body } = splitHeaders(raw);
  const ctype = headers['content-type'] || 'text/plain';
  if (/^multipart\//i.test(ctype)) {
    const boundary = headerParam(ctype, 'boundary');
    if (!boundary) return [];
    const delim = '--' + boundary;
    const parts = [];
    for (const chunk of body.split(delim).slice(1)) {
      if (chunk.startsWith('--')) break; // closing delimiter
      parts.push(...textParts(chunk.replace(/^[ \t]*\r?\n/, '').replace(/\r?\n$/, '')));
    }
    return parts;
  }
  if (!/^text\//i.test(ctype)) return [];
  const charset = headerParam(ctype, 'charset') || 'utf-8';
  let text;
  try {
    text = new TextDecoder(charset).decode(decodeBody(body, headers['content-transfer-encoding']));
  } catch {
    text = decodeBody(body, headers['content-transfer-encoding']).toString('utf8');
  }
  return [{ type: ctype.split(';')[0].trim().toLowerCase(), text }];
}

export function parseMail(raw) {
  const { headers } = splitHeaders(raw);
  return { subject: decodeWords(headers.subject), texts: textParts(raw).map((p) => p.text) };
}

/** The first http(s) link in the mail whose path starts with `prefix` (e.g. "/confirm/"). */
export function findLink(mail, prefix) {
  const re = new RegExp(`https?://[^\\s"'<>]+${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[^\\s"'<>]+`);
  // Decoded text parts first; then the raw message with QP soft breaks removed.
  const fallback = mail.raw.replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
  for (const text of [...mail.texts, fallback]) {
    const m = re.exec(text);
    if (m) return m[0].replace(/&amp;/g, '&');
  }
  return null;
}

// ---------------------------------------------------------------------------
// Helpers: ports, the app process, the browser.
// ---------------------------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitForApp(proc, url, output, timeout = STEP_TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`quickstart exited (${proc.exitCode ?? proc.signalCode}) before ${url} answered:\n${output()}`);
    }
    try {
      const r = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      return r.status;
    } catch (e) {
      last = e.cause?.code || e.message;
    }
    await new Promise((r) => setTimeout(r, 200)); // polling interval
  }
  throw new Error(`timeout waiting for ${url} (${last}):\n${output()}`);
}

export function stopProcess(proc, graceMs = 5000) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/**
 * Starts the quickstart on a free port (not `avoidPort`) with a fresh SQLite
 * file in a new temporary folder, mail to the SMTP sink on `smtpPort`, and
 * FS_SPA=0; resolves once /login answers.  `env` adds or overrides variables.
 * Returns { proc, base, tmpDir, output() } (output: the last 60 lines).
 */
export async function startApp({ smtpPort, avoidPort = smtpPort, env = {} }) {
  let port;
  do port = await freePort();
  while (port === avoidPort);
  const base = `http://127.0.0.1:${port}`;
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fs-browser-'));
  const proc = spawn(QUICKSTART_BIN, [], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      ROCKET_ADDRESS: '127.0.0.1',
      ROCKET_PORT: String(port),
      DATABASE_URL: path.join(tmpDir, 'app.db'),
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(smtpPort),
      FS_FAST_HASH: '1',
      FS_SPA: '0',
      ROCKET_LOG_LEVEL: 'critical',
      ROCKET_CLI_COLORS: 'false',
      ...env,
    },
  });
  const out = [];
  const keep = (d) => {
    out.push(d.toString());
    if (out.length > 500) out.splice(0, out.length - 500);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const output = () => out.join('').split('\n').slice(-60).join('\n');
  const app = { proc, base, tmpDir, output };
  try {
    await waitForApp(proc, `${base}/login`, output);
  } catch (e) {
    await stopApp(app);
    throw e;
  }
  return app;
}

/** Stops the app and removes its temporary folder. */
export async function stopApp(app) {
  if (!app) return;
  await stopProcess(app.proc);
  if (app.tmpDir) fs.rmSync(app.tmpDir, { recursive: true, force: true });
}

/** Headless Chromium (CHROMIUM_BIN) through playwright-core. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    timeout: STEP_TIMEOUT,
    // launch() gives Chromium a fresh temporary --user-data-dir of its own.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** "METHOD path STATUS" for each hop of the navigation that ended in `response`. */
export async function redirectChain(response) {
  const hops = [];
  for (let req = response.request(); req; req = req.redirectedFrom()) {
    const res = req === response.request() ? response : await req.response();
    const u = new URL(req.url());
    hops.unshift({ method: req.method(), path: u.pathname + u.search, status: res ? res.status() : null, url: req.url() });
  }
  return hops;
}

export const showChain = (hops) => hops.map((h) => `${h.method} ${h.path} ${h.status}`).join(' -> ');

// ---------------------------------------------------------------------------
// A flow: one app, one SMTP sink, one browser page, and steps run in order.
// ---------------------------------------------------------------------------

/**
 * Registers the before/after hooks of a flow (call it inside `describe`) and
 * returns its helpers.  `shots`: the folder of the screenshots and saved
 * mails (its *.png and *.eml are removed first); `appEnv`: more environment
 * for the quickstart.
 */
export function flow({ shots = SHOTS, appEnv = {} } = {}) {
  const sink = new SmtpSink();
  let app = null;
  let browser = null;
  let context = null;
  let page = null;
  let broken = null; // name of the first failed step: later steps are skipped
  let shotNo = 0;

  const appOutput = () => (app ? app.output() : '');

  async function screenshot(name) {
    if (!page) return;
    shotNo += 1;
    const file = path.join(shots, `${String(shotNo).padStart(2, '0')}-${name}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: 10_000 });
    } catch (e) {
      process.stderr.write(`(screenshot ${file} failed: ${e.message})\n`);
    }
  }

  /** Keeps a received mail beside the screenshots (for humans). */
  function saveMail(name, mail) {
    shotNo += 1;
    fs.writeFileSync(path.join(shots, `${String(shotNo).padStart(2, '0')}-${name}.eml`), mail.raw, 'latin1');
  }

  const bodyText = () => page.locator('body').innerText({ timeout: 5000 });

  /** One step of the flow; skipped once an earlier step failed.  A step that
   * takes no screenshot (shot: false) is one that looks at mail only. */
  function step(name, fn, { shot = true } = {}) {
    test(name, { timeout: STEP_TIMEOUT }, async (t) => {
      if (broken) {
        t.skip(`needs "${broken}"`);
        return;
      }
      const slug = name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
      try {
        await fn(t);
        if (shot) await screenshot(slug);
      } catch (e) {
        broken = name;
        await screenshot(`${slug}-FAILED`);
        if (page) e.message += `\n  page: ${page.url()}\n  body: ${(await bodyText().catch(() => '?')).slice(0, 600)}`;
        throw e;
      }
    });
  }

  async function goto(pathOrUrl) {
    const response = await page.goto(new URL(pathOrUrl, app.base).href, { waitUntil: 'load', timeout: STEP_TIMEOUT });
    assert.ok(response, `no response for ${pathOrUrl}`);
    return { response, chain: await redirectChain(response) };
  }

  /** Checks the contract every form page has; returns the form locator. */
  async function formOnPage(name, fields) {
    const form = page.locator(`form[name="${name}"]`);
    assert.equal(await form.count(), 1, `one <form name="${name}"> on ${page.url()}`);
    assert.equal((await form.getAttribute('method'))?.toUpperCase(), 'POST', `${name} method`);
    const csrf = form.locator('input[type="hidden"][name="csrf_token"]');
    assert.equal(await csrf.count(), 1, `${name}: one hidden csrf_token input`);
    assert.ok(await csrf.getAttribute('value'), `${name}: csrf_token has a value`);
    assert.equal(await form.locator('input[type="submit"]').count(), 1, `${name}: one submit input`);
    for (const f of fields) {
      assert.equal(await form.locator(`[name="${f}"]`).count(), 1, `${name}: field ${f}`);
    }
    return form;
  }

  /** Waits for the page that the action `act` (a click, a form.submit())
   * navigates the main frame to; redirects are followed. */
  async function navigation(act) {
    const final = [];
    const onResponse = (r) => {
      const q = r.request();
      if (q.isNavigationRequest() && q.frame() === page.mainFrame() && !(r.status() >= 300 && r.status() < 400)) {
        final.push(r);
      }
    };
    page.on('response', onResponse);
    try {
      await Promise.all([
        page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: STEP_TIMEOUT }),
        act(),
      ]);
      await page.waitForLoadState('load', { timeout: STEP_TIMEOUT });
    } finally {
      page.off('response', onResponse);
    }
    assert.ok(final.length, `no page loaded after submitting the form (now at ${page.url()})`);
    const response = final[final.length - 1];
    return { response, chain: await redirectChain(response) };
  }

  /** Fills the fields, clicks the submit input, waits for the resulting page. */
  async function submit(form, values) {
    for (const [k, v] of Object.entries(values)) await form.locator(`[name="${k}"]`).fill(v);
    return navigation(() => form.locator('input[type="submit"]').click({ timeout: STEP_TIMEOUT }));
  }

  const flashes = async () => (await page.locator('ul.flashes li').allInnerTexts()).map((s) => s.trim());
  const fsErrors = async () => (await page.locator('ul.fs-error li').allInnerTexts()).map((s) => s.trim());

  async function assertFlash(text) {
    const seen = await flashes();
    assert.ok(seen.includes(text), `flash ${JSON.stringify(text)} on ${page.url()}; flashes seen: ${JSON.stringify(seen)}`);
    const cls = await page.locator('ul.flashes li', { hasText: text }).first().getAttribute('class');
    assert.ok(['info', 'success', 'error'].includes(cls), `flash class info|success|error, got ${JSON.stringify(cls)}`);
  }

  function assertChain(chain, expected) {
    // expected: [[method, pathname, status], ...]; the query string of the
    // last hop is checked by the caller where it matters.
    const got = chain.map((h) => [h.method, new URL(h.url).pathname, h.status]);
    assert.deepEqual(got, expected, `redirect chain: ${showChain(chain)}`);
  }

  before(async () => {
    fs.mkdirSync(shots, { recursive: true });
    for (const f of fs.readdirSync(shots)) if (/\.(png|eml)$/.test(f)) fs.rmSync(path.join(shots, f));
    assert.ok(fs.existsSync(QUICKSTART_BIN), `quickstart binary not found: ${QUICKSTART_BIN} (set QUICKSTART_BIN)`);
    assert.ok(fs.existsSync(CHROMIUM_BIN), `chromium not found: ${CHROMIUM_BIN} (apt-get install chromium, or set CHROMIUM_BIN)`);

    const smtpPort = await sink.listen();
    app = await startApp({ smtpPort, env: appEnv });

    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    page = await context.newPage();
  }, { timeout: 3 * STEP_TIMEOUT });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopApp(app);
    await sink.close();
    if (broken) {
      process.stderr.write(`--- last quickstart output ---\n${appOutput()}\n--- screenshots in ${shots} ---\n`);
    }
  }, { timeout: STEP_TIMEOUT });

  return {
    sink,
    get base() {
      return app?.base ?? null;
    },
    get page() {
      return page;
    },
    get context() {
      return context;
    },
    step,
    screenshot,
    saveMail,
    bodyText,
    goto,
    formOnPage,
    navigation,
    submit,
    flashes,
    fsErrors,
    assertFlash,
    assertChain,
  };
}
