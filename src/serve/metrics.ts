/**
 * `GET /metrics` in the Prometheus text format, through prom-client: it is maintained, gets the
 * exposition details right (label escaping, cumulative `_bucket`s, `+Inf`) and adds the process
 * metrics a load test wants (resident memory, heap, event-loop lag, GC) for free. One registry per
 * server, so several servers in one process (tests) do not share counters.
 * Labels only ever take values the server chose (model names given at startup, status codes,
 * fixed reasons), never raw request strings, so a client cannot blow up the series count.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type RejectionReason = 'body_too_large' | 'too_many_pixels' | 'text_too_long' | 'too_busy' | 'content_type' | 'undecodable' | 'bad_request';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'headstart_requests_total',
    help: 'Prediction requests answered, by model and HTTP status',
    labelNames: ['model', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'headstart_request_duration_seconds',
    help: 'Time from receiving a prediction request to answering it, for successful requests',
    labelNames: ['model'] as const,
    buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'headstart_batch_size',
    help: 'Inputs per backbone call',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });
  readonly batchDuration = new Histogram({
    name: 'headstart_batch_duration_seconds',
    help: 'Time of one backbone call plus the head, per batch',
    labelNames: ['model'] as const,
    buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'headstart_in_flight_requests',
    help: 'Prediction requests being processed',
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'headstart_rejected_total',
    help: 'Prediction requests refused with a 4xx, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
