/** This package's version, read once from its package.json (from src/ or from dist/src/). */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const json = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (json.name === 'commons' && typeof json.version === 'string') return json.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

export const VERSION = readVersion();
