import { createRequire } from 'node:module';

/** headstart's own version, recorded in every model it writes. */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
