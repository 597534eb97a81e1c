/**
 * The federation listener's certificate, reloaded without a restart: when its certificate or
 * key file changes (both polled, so a file replaced by rename counts too) and on `reload()`
 * (SIGHUP). A pair that cannot be read or does not match is refused and the one in use kept,
 * so a half-written renewal (the certificate new, the key not yet) never takes the listener
 * down; it is taken once both files agree. New connections get the new certificate; open ones
 * keep theirs.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Server as HttpsServer } from 'node:https';

/** How often the files are looked at. */
export const TLS_POLL_INTERVAL_MS = 2000;

export interface TlsReloadLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface TlsReloader {
  /** Reads both files again and serves them if they make a pair; false (kept) otherwise. */
  reload(): boolean;
  close(): void;
}

export function reloadTlsOnChange(
  server: Pick<HttpsServer, 'setSecureContext'>,
  files: { cert: string; key: string },
  log: TlsReloadLog,
): TlsReloader {
  let served = { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
  const reload = (): boolean => {
    try {
      const next = { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
      if (next.cert === served.cert && next.key === served.key) return true;
      // Throws on an unreadable PEM or a key that is not the certificate's.
      createSecureContext(next);
      server.setSecureContext(next);
      served = next;
      log.info({ certificate: files.cert }, 'federation TLS certificate reloaded');
      return true;
    } catch (err) {
      log.error(
        { certificate: files.cert, key: files.key, err: (err as Error).message },
        'federation TLS certificate not reloaded; the one in use is kept',
      );
      return false;
    }
  };
  const onChange = () => void reload();
  for (const file of [files.cert, files.key])
    watchFile(file, { interval: TLS_POLL_INTERVAL_MS, persistent: false }, onChange);
  return {
    reload,
    close() {
      for (const file of [files.cert, files.key]) unwatchFile(file, onChange);
    },
  };
}
