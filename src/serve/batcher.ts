/**
 * Dynamic micro-batching: requests that arrive close together share one backbone call. A batch
 * starts when `maxBatch` items are waiting or the oldest has waited `maxWaitMs`; while a batch runs,
 * new items queue up and the next batch takes them as soon as it ends. So an idle server answers a
 * lone request after at most `maxWaitMs`, and a busy one batches as much as the load allows.
 */
export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
}

interface Waiting<Item, Result> {
  item: Item;
  enqueued: number;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

export class MicroBatcher<Item, Result> {
  private readonly queue: Waiting<Item, Result>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    /** Runs one batch; returns one result per item, in order. */
    private readonly run: (items: Item[]) => Promise<Result[]>,
    private readonly options: BatcherOptions,
    private readonly onBatch: (size: number, seconds: number) => void = () => {},
  ) {
    if (!(options.maxBatch >= 1) || !(options.maxWaitMs >= 0)) throw new Error(`invalid batching options ${JSON.stringify(options)}`);
  }

  /** Items waiting for a batch (not counting the batch running). */
  get waiting(): number {
    return this.queue.length;
  }

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ item, enqueued: performance.now(), resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once every submitted item has been answered. */
  async drain(): Promise<void> {
    while (this.running || this.queue.length > 0) {
      if (!this.running) this.start();
      await this.running;
    }
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.queue.length >= this.options.maxBatch) {
      this.start();
      return;
    }
    if (this.timer) return;
    const due = this.queue[0]!.enqueued + this.options.maxWaitMs - performance.now();
    this.timer = setTimeout(() => this.start(), Math.max(0, due));
  }

  private start(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.running = this.execute(batch).finally(() => {
      this.running = undefined;
      this.schedule();
    });
  }

  private async execute(batch: Waiting<Item, Result>[]): Promise<void> {
    const started = performance.now();
    try {
      const results = await this.run(batch.map((entry) => entry.item));
      if (results.length !== batch.length) throw new Error(`a batch of ${batch.length} returned ${results.length} results`);
      batch.forEach((entry, i) => entry.resolve(results[i]!));
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
    this.onBatch(batch.length, (performance.now() - started) / 1000);
  }
}
