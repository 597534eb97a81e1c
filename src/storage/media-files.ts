/**
 * Where media bytes live, behind a small interface so another backend (an S3-compatible
 * store) can follow. The filesystem one keeps each file under its SHA-256
 * (`<dir>/ab/cd/abcd…`), so content uploaded twice is stored once; a file is written to
 * `<dir>/tmp/` first, flushed, then renamed into place, so a crash mid-upload leaves only a
 * temporary file that is never served. Several processes may share the directory: a rename
 * onto an existing file of the same name replaces it with identical bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

export interface StoredFile {
  sha256: string;
  size: number;
}

export interface MediaFileStore {
  /**
   * Stores the bytes of `source`, or answers 'too_large' (and keeps nothing) once more than
   * `maxBytes` have come.
   */
  write(
    source: AsyncIterable<Uint8Array | string>,
    maxBytes: number,
  ): Promise<StoredFile | 'too_large'>;
  /** Stores bytes already in memory (thumbnails). */
  writeBuffer(data: Uint8Array): Promise<StoredFile>;
  /** The size of a stored file, or null when it is missing. */
  size(sha256: string): Promise<number | null>;
  /** A stored file's bytes, or null when it is missing. */
  read(sha256: string): Promise<Buffer | null>;
  /** A stream of a stored file, or of bytes `start`..`end` (inclusive). */
  stream(sha256: string, range?: { start: number; end: number }): Readable;
  /** Deletes a stored file (nothing when it is missing): media deleted by an admin. */
  remove?(sha256: string): Promise<void>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Temporary files older than this were left by a process that died: removed at start. */
const STALE_TEMP_MS = 24 * 3600 * 1000;

export async function openFileMediaStore(directory: string): Promise<MediaFileStore> {
  const tmp = path.join(directory, 'tmp');
  await mkdir(tmp, { recursive: true });
  await removeStaleTemps(tmp);

  const pathOf = (sha256: string): string => {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a SHA-256: ${sha256}`);
    return path.join(directory, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  };

  /** Writes chunks to a new temporary file; moves it into place under its hash. */
  const store = async (
    chunks: AsyncIterable<Uint8Array | string>,
    maxBytes: number,
  ): Promise<StoredFile | 'too_large'> => {
    const temp = path.join(tmp, `${randomBytes(12).toString('hex')}.part`);
    const hash = createHash('sha256');
    let size = 0;
    const handle = await open(temp, 'wx', 0o644);
    let moved = false;
    try {
      for await (const chunk of chunks) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        size += bytes.length;
        if (size > maxBytes) return 'too_large';
        hash.update(bytes);
        await handle.write(bytes);
      }
      await handle.sync();
      await handle.close();
      const sha256 = hash.digest('hex');
      const target = pathOf(sha256);
      await mkdir(path.dirname(target), { recursive: true });
      await rename(temp, target);
      moved = true;
      return { sha256, size };
    } finally {
      if (!moved) {
        await handle.close().catch(() => undefined);
        await rm(temp, { force: true });
      }
    }
  };

  return {
    write: store,
    async writeBuffer(data) {
      const stored = await store(
        (async function* () {
          yield data;
        })(),
        data.length,
      );
      if (stored === 'too_large') throw new Error('unreachable: buffer larger than itself');
      return stored;
    },
    async size(sha256) {
      try {
        return (await stat(pathOf(sha256))).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    async read(sha256) {
      try {
        return await readFile(pathOf(sha256));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    stream(sha256, range) {
      return createReadStream(pathOf(sha256), range);
    },
    async remove(sha256) {
      await rm(pathOf(sha256), { force: true });
    },
  };
}

async function removeStaleTemps(tmp: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(tmp)) {
    const file = path.join(tmp, name);
    try {
      if (now - (await stat(file)).mtimeMs > STALE_TEMP_MS) await rm(file, { force: true });
    } catch {
      // another process removed it first
    }
  }
}
