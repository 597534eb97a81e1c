/**
 * What some suites need that a fresh clone cannot carry: the Matrix spec's data beside the
 * repository (../shared/matrix-spec), Debian's Chromium. Each is checked here once, the same way
 * by the test runner (scripts/run-tests.ts prints one SKIPPED banner for whatever is missing) and
 * by the suites themselves (which skip, or check less, when theirs is missing).
 *
 * CI sets each requirement's `COMMONS_TEST_REQUIRE_…` variable, so there a missing one fails the
 * run instead of being skipped silently.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installSynapse, type SynapseInstall } from '../../bench/synapse.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Root of the read-only copy of the matrix-spec data (`<repo>/../shared/matrix-spec`). */
export const SPEC_ROOT = path.resolve(
  REPO_ROOT,
  process.env.COMMONS_TEST_SPEC_ROOT ?? '../shared/matrix-spec',
);

/** Debian's Chromium, which the Hydrogen test drives. */
export const CHROMIUM_PATH = process.env.COMMONS_TEST_CHROMIUM ?? '/usr/bin/chromium';

export interface Requirement {
  /** What runs only with it, as the banner says it. */
  readonly suites: string;
  /** Set to 1 to make its absence fail the run (CI does). */
  readonly requireVariable: string;
  /** Why it is missing, or null when it is there. */
  missing(): string | null;
}

export const MATRIX_SPEC: Requirement = {
  suites: 'Matrix spec cross-checks (test/contract, response bodies checked against the spec)',
  requireVariable: 'COMMONS_TEST_REQUIRE_SPEC',
  missing: () =>
    existsSync(path.join(SPEC_ROOT, 'data', 'api', 'client-server'))
      ? null
      : `${SPEC_ROOT} not found (the matrix-spec repository's data, beside this one)`,
};

export const CHROMIUM: Requirement = {
  suites: 'Hydrogen in headless Chromium (test/clients/hydrogen.test.ts)',
  requireVariable: 'COMMONS_TEST_REQUIRE_CHROMIUM',
  missing: () =>
    existsSync(CHROMIUM_PATH)
      ? null
      : `${CHROMIUM_PATH} not found (Debian: apt-get install chromium)`,
};

/** Where the Synapse peer's virtual environment is kept (the bench's cache, gitignored). */
export const SYNAPSE_CACHE_DIR = path.join(REPO_ROOT, 'bench', '.cache');
let synapse: SynapseInstall | { problem: string } | undefined;

/** Synapse from PyPI in a cached virtual environment, installed on first use. */
export function synapseInstall(): SynapseInstall | { problem: string } {
  synapse ??= installSynapse(SYNAPSE_CACHE_DIR);
  return synapse;
}

export const SYNAPSE: Requirement = {
  suites: 'Commons beside Synapse over federation (test/http/federation-synapse*.test.ts)',
  requireVariable: 'COMMONS_TEST_REQUIRE_SYNAPSE',
  missing: () => {
    const install = synapseInstall();
    return 'problem' in install ? install.problem : null;
  },
};

/** The matrix-rust-sdk program (test/clients/rust-sdk), built once into this gitignored cache. */
export const RUST_SDK_DIR = path.join(REPO_ROOT, 'test', 'clients', 'rust-sdk');
export const RUST_SDK_TARGET = path.resolve(
  REPO_ROOT,
  process.env.COMMONS_TEST_RUST_SDK_TARGET ?? '.cache/rust-sdk',
);
export const RUST_SDK_BINARY = path.join(RUST_SDK_TARGET, 'release', 'commons-rust-sdk-check');

/** Whether crates.io's index answers (a child process, so that the check stays synchronous). */
function cratesIoProblem(): string | null {
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      "fetch('https://index.crates.io/config.json', { signal: AbortSignal.timeout(10000) })" +
        '.then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))',
    ],
    { timeout: 15_000 },
  );
  return probe.status === 0 ? null : 'crates.io is unreachable (the first build downloads crates)';
}

let rustSdkProblem: string | null | undefined;

export const RUST_SDK: Requirement = {
  suites: 'matrix-rust-sdk, Element X’s engine (test/clients/rust-sdk.test.ts)',
  requireVariable: 'COMMONS_TEST_REQUIRE_RUST_SDK',
  missing: () => {
    if (rustSdkProblem !== undefined) return rustSdkProblem;
    if (existsSync(RUST_SDK_BINARY)) rustSdkProblem = null;
    else if (spawnSync('cargo', ['--version']).status !== 0)
      rustSdkProblem = 'cargo not found (install Rust: https://rustup.rs)';
    else rustSdkProblem = cratesIoProblem();
    return rustSdkProblem;
  },
};

/** mautrix-python (PyPI) in a cached virtual environment beside Synapse's, installed on first use. */
export const MAUTRIX_VENV = path.join(SYNAPSE_CACHE_DIR, 'mautrix-venv');
export const MAUTRIX_PYTHON = path.join(MAUTRIX_VENV, 'bin', 'python');
let mautrixProblem: string | null | undefined;

function installMautrix(): string | null {
  const imports = () =>
    spawnSync(MAUTRIX_PYTHON, ['-c', 'import mautrix.appservice, aiohttp'], { encoding: 'utf8' });
  if (existsSync(MAUTRIX_PYTHON) && imports().status === 0) return null;
  const made = spawnSync('python3', ['-m', 'venv', MAUTRIX_VENV], { encoding: 'utf8' });
  if (made.status !== 0) return `python3 -m venv failed: ${made.stderr.trim()}`;
  const pip = spawnSync(MAUTRIX_PYTHON, ['-m', 'pip', 'install', '--quiet', 'mautrix', 'aiohttp'], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (pip.status !== 0) return `pip install mautrix failed: ${(pip.stderr || pip.stdout).trim()}`;
  const installed = imports();
  return installed.status === 0 ? null : `mautrix does not import: ${installed.stderr.trim()}`;
}

export const MAUTRIX: Requirement = {
  suites: 'a mautrix-python bridge (PyPI) on Commons (test/clients/mautrix.test.ts)',
  requireVariable: 'COMMONS_TEST_REQUIRE_MAUTRIX',
  missing: () => (mautrixProblem ??= installMautrix()),
};

export const REQUIREMENTS: readonly Requirement[] = [
  MATRIX_SPEC,
  CHROMIUM,
  SYNAPSE,
  RUST_SDK,
  MAUTRIX,
];

export const isRequired = (requirement: Requirement): boolean =>
  process.env[requirement.requireVariable] === '1';

/**
 * For a suite's `skip` option: undefined when the requirement is met; the reason to skip when it
 * is not; an error when it is not and the run requires it.
 */
export function skipUnless(requirement: Requirement): string | undefined {
  const problem = requirement.missing();
  if (problem === null) return undefined;
  if (isRequired(requirement)) throw new Error(`${requirement.requireVariable}=1 but ${problem}`);
  return `SKIPPED: ${problem}`;
}
