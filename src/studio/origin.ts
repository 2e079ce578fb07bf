/**
 * Which requests may change a project. The studio listens on a loopback address, but any web page
 * the user visits can still send requests to it; a browser always marks those with an `Origin` (and
 * `Sec-Fetch-Site`), so a write that carries another origin is refused (403). Host names are checked
 * too, against the addresses the server listens on, so a DNS-rebinding page (evil.example resolving
 * to 127.0.0.1) is refused even for reads. Requests without those headers come from local programs
 * (curl, scripts), which could read the files anyway.
 */
import { networkInterfaces } from 'node:os';
import type { FastifyRequest } from 'fastify';
import { HttpError } from '../serve/inputs.js';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export class OriginPolicy {
  private hosts = new Set<string>();

  /** Before listening (Fastify inject in tests): the host Fastify's inject sends. */
  constructor(initialHosts: string[] = ['localhost:80', 'localhost']) {
    for (const host of initialHosts) this.hosts.add(host.toLowerCase());
  }

  /** The hosts the server is reachable under once it listens on `host`:`port`. */
  listening(host: string, port: number): void {
    const names = new Set<string>(['127.0.0.1', 'localhost', '[::1]']);
    if (host === '0.0.0.0' || host === '::') {
      for (const addresses of Object.values(networkInterfaces())) for (const a of addresses ?? []) names.add(a.family === 'IPv6' ? `[${a.address}]` : a.address);
    } else names.add(host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);
    this.hosts = new Set([...names].map((name) => `${name}:${port}`.toLowerCase()));
  }

  /** The studio's own origins, e.g. `http://127.0.0.1:7860`. */
  origins(): string[] {
    return [...this.hosts].map((host) => `http://${host}`);
  }

  check(request: FastifyRequest): void {
    const host = (request.headers.host ?? '').toLowerCase();
    if (host && !this.hosts.has(host)) throw new HttpError(403, 'unknown_host', `the studio does not answer to host "${host.slice(0, 100)}"; open ${this.origins()[0]}`);
    if (READS.has(request.method)) return;
    const site = request.headers['sec-fetch-site'];
    const origin = request.headers.origin;
    if ((site && site !== 'same-origin' && site !== 'none') || (origin !== undefined && !this.origins().includes(origin.toLowerCase()))) {
      throw new HttpError(403, 'cross_origin', `writes are only accepted from the studio's own page (${this.origins()[0]}), not from ${String(origin ?? site).slice(0, 100)}`);
    }
  }
}
