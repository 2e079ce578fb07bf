import type { ConnectionOptions } from 'bullmq';
import { usageError } from '../util/errors.js';

/** The queue coordinators and workers meet on unless told otherwise. */
export const DEFAULT_QUEUE_NAME = 'headstart-features';

export interface QueueAddress {
  /** What BullMQ connects with. */
  connection: ConnectionOptions;
  /** The URL without its password, for logs. */
  display: string;
}

/**
 * `redis://[user:password@]host[:port][/db]` (or `rediss://` for TLS) → BullMQ connection options.
 * `maxRetriesPerRequest: null` makes every command wait through a Redis restart instead of failing
 * after a few retries, which is what lets a run resume when Redis comes back (BullMQ requires it for
 * workers anyway).
 */
export function queueAddress(url: string): QueueAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`--queue: "${url}" is not a URL; expected redis://host:port[/db]`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw usageError(`--queue: "${url}" is not a redis:// or rediss:// URL`);
  }
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw usageError(`--queue: the database in "${url}" must be a number (redis://host:port/0)`);
  if (!parsed.hostname) throw usageError(`--queue: "${url}" names no host`);
  const display = new URL(url);
  if (display.password) display.password = '***';
  return { connection: { url, maxRetriesPerRequest: null }, display: display.href };
}
