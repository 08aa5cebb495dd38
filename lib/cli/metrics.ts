/**
 * `metrics.jsonl`: one JSON object per line, a `"train"` record per optimizer step and an
 * `"eval"` record per validation. Resuming keeps the records up to the checkpoint's step and
 * drops later ones (they belong to the run that was interrupted), so the file and the loss
 * curve always describe one continuous run.
 * @module
 */

/** One optimizer step. */
export interface TrainRecord {
  /** Record kind. */
  type: "train";
  /** Optimizer steps done. */
  step: number;
  /** Mean training loss of the step's global batch. */
  loss: number;
  /** Learning rate of the step. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Target tokens of the step (all ranks). */
  tokens: number;
  /** tokens / wall time of the step. */
  tokensPerSec: number;
  /** Seconds of training since the run began (over resumes). */
  elapsed: number;
}

/** One validation. */
export interface EvalRecord {
  /** Record kind. */
  type: "eval";
  /** Optimizer steps done when evaluated. */
  step: number;
  /** Mean validation loss. */
  valLoss: number;
  /** exp(valLoss). */
  valPerplexity: number;
  /** Seconds since the run began. */
  elapsed: number;
}

/** A line of metrics.jsonl. */
export type MetricsRecord = TrainRecord | EvalRecord;

/** Appends records to metrics.jsonl and keeps them for the loss curve. */
export class MetricsLog {
  private constructor(
    readonly path: string,
    private readonly file: Deno.FsFile,
    /** Every record of the run so far (kept ones from before a resume included). */
    readonly records: MetricsRecord[],
  ) {}

  /**
   * Opens `path`: fresh (truncated), or when `resumeStep` is given, keeping the existing
   * records of steps ≤ resumeStep.
   */
  static async open(path: string, options: { resumeStep?: number } = {}): Promise<MetricsLog> {
    const kept: MetricsRecord[] = [];
    if (options.resumeStep !== undefined) {
      let text = "";
      try {
        text = await Deno.readTextFile(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        let record: MetricsRecord;
        try {
          record = JSON.parse(line);
        } catch {
          continue; // a line cut off by the interruption
        }
        if (typeof record.step === "number" && record.step <= options.resumeStep) {
          kept.push(record);
        }
      }
    }
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    const log = new MetricsLog(path, file, []);
    for (const r of kept) await log.append(r);
    return log;
  }

  /** Seconds of training recorded so far (the last record's `elapsed`, 0 when none). */
  get elapsed(): number {
    return this.records.at(-1)?.elapsed ?? 0;
  }

  /** Writes one record as a line. */
  async append(record: MetricsRecord): Promise<void> {
    this.records.push(record);
    const bytes = new TextEncoder().encode(JSON.stringify(record) + "\n");
    for (let done = 0; done < bytes.length;) done += await this.file.write(bytes.subarray(done));
  }

  /** Train and validation curves for the SVG. */
  curves(): { train: { step: number; loss: number }[]; val: { step: number; loss: number }[] } {
    const train = [], val = [];
    for (const r of this.records) {
      if (r.type === "train") train.push({ step: r.step, loss: r.loss });
      else val.push({ step: r.step, loss: r.valLoss });
    }
    return { train, val };
  }

  /** Closes the file. */
  close(): void {
    this.file.close();
  }
}
