/**
 * Hydrogen (hydrogen-view-sdk) in headless Chromium, pointed at a test server.
 *
 * openHydrogen(homeserverUrl):
 * 1. bundles ./app.js (the browser entry: Hydrogen's whole app) with esbuild into a temporary
 *    directory, next to ./index.html, Hydrogen's CSS and assets and Olm's JS and WASM;
 * 2. serves that directory with a small node:http server on 127.0.0.1 (random port), so the
 *    page and Commons are different origins and every request goes through CORS;
 * 3. launches Debian's /usr/bin/chromium through playwright-core and opens the page with
 *    `?homeserver=<url>`.
 *
 * Everything the browser does against the homeserver is recorded — each request with its
 * status, the body of every error answer, requests the browser itself failed (CORS, refused
 * connections), console messages, page errors and the errors Hydrogen's own logger records —
 * and report() prints it. `until()` waits for a condition in the page and fails at once, with
 * that report, when Hydrogen shows a failure (see visibleFailure() in app.js).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { CHROMIUM_PATH } from '../../helpers/requirements.js';
import { chromium, type Browser, type Page, type Request, type Response } from 'playwright-core';

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
];

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
/** hydrogen-view-sdk's asset-build/assets: its CSS, fonts, icons, download sandbox, worker. */
const hydrogenAssets = path.join(
  path.dirname(require.resolve('hydrogen-view-sdk')),
  '..',
  'asset-build',
  'assets',
);
/** @matrix-org/olm, which Hydrogen loads with a script tag (olm.js + olm.wasm). */
const olmDir = path.dirname(require.resolve('@matrix-org/olm'));

/**
 * hydrogen.es.js imports "@matrix-org/olm/olm.js" for its side effect only; Hydrogen's
 * Platform loads Olm itself from assetPaths.olm with a script tag, so the bundle leaves it out.
 */
const olmFromScriptTag: Plugin = {
  name: 'olm-from-script-tag',
  setup(b) {
    b.onResolve({ filter: /^@matrix-org\/olm\/olm\.js$/ }, () => ({
      path: 'olm',
      namespace: 'empty',
    }));
    b.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: '', loader: 'js' }));
  },
};

/** Builds the site into a new temporary directory and returns it. */
async function buildSite(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'commons-hydrogen-'));
  await build({
    entryPoints: [path.join(here, 'app.js')],
    outfile: path.join(dir, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome110',
    plugins: [olmFromScriptTag],
    logLevel: 'silent',
    legalComments: 'none',
  });
  cpSync(path.join(here, 'index.html'), path.join(dir, 'index.html'));
  cpSync(
    path.join(path.dirname(require.resolve('hydrogen-view-sdk')), 'sw.js'),
    path.join(dir, 'sw.js'),
  );
  cpSync(hydrogenAssets, path.join(dir, 'assets'), { recursive: true });
  for (const name of ['olm.js', 'olm.wasm', 'olm_legacy.js']) {
    cpSync(path.join(olmDir, name), path.join(dir, 'olm', name));
  }
  return dir;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
};

/** A static file server for `root` on 127.0.0.1, on a random port. */
async function serveStatic(root: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(root, pathname === '/' ? 'index.html' : pathname);
    if (!file.startsWith(root + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const type = CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}`, server };
}

/** One request of the page to the homeserver that did not succeed. */
export interface HttpProblem {
  method: string;
  path: string;
  /** The answer's status; absent when the browser failed the request (CORS, connection). */
  status?: number;
  /** The answer's body, or the browser's reason for failing the request. */
  detail: string;
  requestBody?: string;
}

const clip = (s: string, n = 600): string => (s.length > n ? `${s.slice(0, n)}…` : s);

export interface HydrogenPage {
  page: Page;
  /** The page's URL (the static server). */
  siteUrl: string;
  /** "METHOD /path → status" for each request to the homeserver, in order. */
  requests: string[];
  problems: HttpProblem[];
  /**
   * Waits until `probe` answers truthy; fails at once if Hydrogen shows a failure and, after
   * `timeoutMs`, with `what` and report().
   */
  until<T>(
    what: string,
    probe: () => Promise<T | null | undefined | false>,
    timeoutMs?: number,
  ): Promise<T>;
  /** Hydrogen's visible failure, or null. */
  visibleFailure(): Promise<string | null>;
  /** Everything recorded, for a failure message. */
  report(): Promise<string>;
  screenshot(file: string): Promise<void>;
  close(): Promise<void>;
}

export async function openHydrogen(homeserverUrl: string): Promise<HydrogenPage> {
  const siteDir = await buildSite();
  const cleanups: (() => Promise<unknown> | void)[] = [
    () => rmSync(siteDir, { recursive: true, force: true }),
  ];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
    cleanups.length = 0;
  };
  try {
    const site = await serveStatic(siteDir);
    cleanups.push(
      () => new Promise((resolve) => site.server.close(resolve)),
      () => site.server.closeAllConnections(),
    );
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      chromiumSandbox: false,
      args: CHROMIUM_FLAGS,
      timeout: 30_000,
    });
    cleanups.push(() => browser.close());
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    // Clicks and reads act on elements until() has already seen: they need no long waits.
    page.setDefaultTimeout(10_000);

    const homeserver = new URL(homeserverUrl).origin;
    const requests: string[] = [];
    const problems: HttpProblem[] = [];
    const consoleLines: string[] = [];
    const pageErrors: string[] = [];
    const pending: Promise<void>[] = [];
    let closing = false;
    // Paths on the homeserver are shown without its origin; any other origin but the page's
    // own (where a wrong /.well-known answer would send Hydrogen) is shown in full.
    // Hydrogen's `_cacheBuster` parameter and the empty query it leaves are dropped.
    const relative = (url: string) =>
      (url.startsWith(`${homeserver}/`) ? url.slice(homeserver.length) : url)
        .replace(/[?&]_cacheBuster=\d+/, '')
        .replace(/[?&]+$/, '')
        .replace('?&', '?');
    const offSite = (url: string) => !url.startsWith(`${site.url}/`);

    page.on('console', (msg) => consoleLines.push(`[${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => pageErrors.push(err.stack ?? err.message));
    context.on('response', (response: Response) => {
      const request = response.request();
      // Hydrogen's GETs go through its service worker, and both the worker's request to
      // Commons and the page's answer from the worker are reported: the page's one is kept
      // (its body is readable), and of the worker's, only the CORS preflight.
      if (!offSite(request.url())) return;
      if (request.serviceWorker() && request.method() !== 'OPTIONS') return;
      const status = response.status();
      const line = `${request.method()} ${relative(request.url())} → ${status}`;
      requests.push(line);
      // Where /.well-known sends Hydrogen decides every request after it: show the answer.
      if (status === 200 && request.url().includes('/.well-known/matrix/client')) {
        const at = requests.length - 1;
        pending.push(
          response.text().then(
            (body) => void (requests[at] = `${line} ${clip(body, 200)}`),
            () => {},
          ),
        );
      }
      if (status < 400) return;
      pending.push(
        response
          .text()
          .catch((err: Error) => `(body unavailable: ${err.message})`)
          .then((body) => {
            problems.push({
              method: request.method(),
              path: relative(request.url()),
              status,
              detail: clip(body),
              ...(request.postData() ? { requestBody: clip(request.postData() ?? '') } : {}),
            });
          }),
      );
    });
    context.on('requestfailed', (request: Request) => {
      if (closing || !offSite(request.url())) return;
      const by = request.serviceWorker() ? ' (in the service worker)' : '';
      const reason = `${request.failure()?.errorText ?? 'failed'}${by}`;
      requests.push(`${request.method()} ${relative(request.url())} → ${reason}`);
      // Hydrogen aborts its own long-polling /sync when it stops or restarts it.
      if (reason.startsWith('net::ERR_ABORTED')) return;
      problems.push({ method: request.method(), path: relative(request.url()), detail: reason });
    });

    const visibleFailure = async (): Promise<string | null> =>
      (await page.evaluate(
        'window.__commonsTest ? window.__commonsTest.visibleFailure() : null',
      )) as string | null;

    const report = async (): Promise<string> => {
      await Promise.all(pending.splice(0));
      const hydrogenErrors = (await page
        .evaluate('window.__commonsTest ? window.__commonsTest.hydrogenErrors : []')
        .catch(() => [])) as string[];
      const failure = await visibleFailure().catch(() => null);
      const lines: string[] = [];
      if (failure) lines.push(`Hydrogen shows a failure: ${failure}`);
      if (problems.length > 0) {
        lines.push('Requests to Commons that did not succeed:');
        for (const p of problems) {
          lines.push(`  ${p.method} ${p.path} → ${p.status ?? 'browser error'}: ${p.detail}`);
          if (p.requestBody) lines.push(`      request body: ${p.requestBody}`);
        }
      }
      if (hydrogenErrors.length > 0) {
        lines.push("Errors in Hydrogen's log:", ...hydrogenErrors.map((e) => `  ${e}`));
      }
      if (pageErrors.length > 0) lines.push('Page errors:', ...pageErrors.map((e) => `  ${e}`));
      lines.push(`Requests to Commons (${requests.length}):`, ...requests.map((r) => `  ${r}`));
      const tail = consoleLines.slice(-30);
      if (tail.length > 0) lines.push('Browser console (last 30):', ...tail.map((l) => `  ${l}`));
      return lines.join('\n');
    };

    const until = async <T>(
      what: string,
      probe: () => Promise<T | null | undefined | false>,
      timeoutMs = 20_000,
    ): Promise<T> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const failure = await visibleFailure();
        if (failure) throw new Error(`${what}: ${failure}\n${await report()}`);
        const value = await probe();
        if (value) return value;
        if (Date.now() > deadline) {
          throw new Error(`${what}: not within ${timeoutMs} ms\n${await report()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    await page.goto(`${site.url}/?homeserver=${encodeURIComponent(homeserverUrl)}`);
    cleanups.push(() => {
      closing = true;
    });
    return {
      page,
      siteUrl: site.url,
      requests,
      problems,
      until,
      visibleFailure,
      report,
      screenshot: async (file) => {
        await page.screenshot({ path: file });
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
