/* global window, document, location, console, URLSearchParams */
// Browser entry of the Hydrogen client test (test/clients/hydrogen.test.ts), bundled with
// esbuild at test time. It starts the whole Hydrogen app the way hydrogen-web's own main.js
// does — RootViewModel + RootView, so the login screen, room list, timeline and member list
// are Hydrogen's real views — with the homeserver from `?homeserver=` as the default, so the
// login screen queries it at once. Plain JavaScript: the repository's tsconfig has no DOM
// types and hydrogen-view-sdk ships no usable type declarations.
//
// `window.__commonsTest` exposes the objects the test inspects, and `hydrogenErrors`: every
// error Hydrogen's own logger records (a failed request, a failed sync, a load error), as
// "caption › caption: message" lines, also written to the console.
import {
  Platform,
  RootViewModel,
  FeatureSet,
  createNavigation,
  createRouter,
} from 'hydrogen-view-sdk';

const homeserver = new URLSearchParams(location.search).get('homeserver');
const hydrogenErrors = [];
window.__commonsTest = { ready: false, hydrogenErrors, startError: null, visibleFailure };

const text = (el) => (el?.textContent ?? '').replace(/\s+/g, ' ').trim();

/**
 * The failure Hydrogen shows on screen, or null: a failed start, its "Something went
 * wrong" page, a session that failed to load, a failed sync, or a login error.
 */
function visibleFailure() {
  const { startError } = window.__commonsTest;
  if (startError) return `the page failed to start Hydrogen: ${startError}`;
  const rootError = document.querySelector('.StatusView');
  if (rootError) return `Hydrogen shows: ${text(rootError)}`;
  for (const load of document.querySelectorAll('.SessionLoadStatusView')) {
    const buttons = [...load.querySelectorAll('button')].map(text);
    if (buttons.includes('Export logs')) return `the session failed to load: ${text(load)}`;
  }
  const status = document.querySelector('.SessionStatusView:not(.hidden)');
  if (status && /failed/i.test(text(status))) return `Hydrogen's status bar: ${text(status)}`;
  for (const error of document.querySelectorAll('.PreSessionScreen .error')) {
    if (text(error)) return `the login screen shows: ${text(error)}`;
  }
  return null;
}

/** Caption of a Hydrogen log item, like hydrogen's ConsoleReporter's itemCaption(). */
function caption(item) {
  const v = item.values ?? {};
  if (v.t === 'network') return `${v.method} ${v.url}${v.status ? ` → ${v.status}` : ''}`;
  const label = v.l ?? v.type ?? 'item';
  if (v.id !== undefined) return `${label} ${v.id}`;
  if (v.status !== undefined) return `${label} (${v.status})`;
  return label;
}

/** A log reporter that keeps each error of a finished log item with the path to it. */
const errorReporter = {
  setLogger() {},
  reportItem(item) {
    const walk = (node, path) => {
      const here = [...path, caption(node)];
      if (node.error) {
        const e = node.error;
        const line = `${here.join(' › ')}: ${e.name ?? 'Error'}: ${e.message ?? String(e)}`;
        if (!hydrogenErrors.includes(line)) {
          hydrogenErrors.push(line);
          console.error(`[hydrogen] ${line}`);
        }
      }
      for (const child of node.children ?? []) walk(child, here);
    };
    walk(item, []);
  },
};

async function main() {
  if (!homeserver) throw new Error('the page needs ?homeserver=<url>');
  const container = document.getElementById('app');
  const platform = new Platform({
    container,
    assetPaths: {
      downloadSandbox: 'assets/download-sandbox.html',
      worker: 'assets/main.js',
      olm: { wasm: 'olm/olm.wasm', legacyBundle: 'olm/olm_legacy.js', wasmBundle: 'olm/olm.js' },
      // Hydrogen 0.3 needs its service worker: Client calls platform.updateService (the
      // worker's handler) .updateAuthData() after login, and the worker adds the access
      // token to authenticated media requests.
      serviceWorker: 'sw.js',
    },
    config: { defaultHomeServer: homeserver },
    options: { development: false },
  });
  platform.logger.addReporter(errorReporter);
  const navigation = createNavigation();
  platform.setNavigation(navigation);
  await platform.init();
  const urlRouter = createRouter({ navigation, history: platform.history });
  urlRouter.attach();
  const features = await FeatureSet.load(platform.settingsStorage);
  const vm = new RootViewModel({ platform, navigation, urlRouter, features });
  await vm.load();
  platform.createAndMountRootView(vm);
  Object.assign(window.__commonsTest, { platform, navigation, urlRouter, vm, ready: true });
}

main().catch((err) => {
  window.__commonsTest.startError = `${err.name}: ${err.message}`;
  console.error(`[hydrogen] start failed: ${err.stack ?? err}`);
});
