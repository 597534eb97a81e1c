// The quick build behind `npm start` and `npm ci` (the `prepare` script): each file of src/
// transpiled on its own by esbuild into dist/src (the layout `tsc -p tsconfig.build.json`
// writes, which stays `npm run build`: it also type-checks, and takes 7-30 s where this takes
// well under one).
//
//   node scripts/build.mjs             build
//   node scripts/build.mjs --if-stale  build only when a source is newer than its output (or
//                                      has none), saying so in one line; otherwise silent
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SRC = path.join(ROOT, 'src');
const OUT = path.join(ROOT, 'dist', 'src');

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

const mtime = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return null;
  }
};

/** Sources whose compiled file is missing or older than they are. */
function stale(files) {
  return files.filter((file) => {
    const out = path.join(OUT, path.relative(SRC, file)).replace(/\.ts$/, '.js');
    const built = mtime(out);
    return built === null || built < mtime(file);
  });
}

const files = sources(SRC);
if (process.argv.includes('--if-stale')) {
  const changed = stale(files);
  if (changed.length === 0) process.exit(0);
  process.stderr.write(
    `commons: ${changed.length} source file${changed.length === 1 ? '' : 's'} changed since the last build (${path.relative(ROOT, changed[0])}${changed.length > 1 ? ', …' : ''}): rebuilding dist/\n`,
  );
}

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  process.stderr.write(
    'commons: esbuild is not installed (npm ci installs it); building with tsc instead\n',
  );
  const { spawnSync } = await import('node:child_process');
  const tsc = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  process.exit(tsc.status ?? 1);
}
await esbuild.build({
  entryPoints: files,
  outdir: OUT,
  outbase: SRC,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
});
