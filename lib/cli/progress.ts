/**
 * Progress of a training run on the terminal: on a TTY one bar redrawn in place (step, loss,
 * tokens/s, ETA), otherwise one plain line per step (for logs and CI). Messages (validation,
 * checkpoints) are printed above the bar.
 * @module
 */

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** Last step of the run. */
  total: number;
  /** Steps already done when this process started (a resumed run). Default 0. */
  start?: number;
  /** Draw a bar in place. Default: stdout is a terminal. */
  tty?: boolean;
  /** Where text goes. Default: stdout. */
  write?: (text: string) => void;
  /** Bar width in characters. Default 24. */
  barWidth?: number;
}

/** One step's numbers as shown. */
export interface ProgressStep {
  step: number;
  loss: number;
  lr: number;
  /** Tokens per second of this step. */
  tokensPerSec: number;
}

/** `75` → "1m15s"; `4000` → "1h06m"; non-finite → "?". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** `12345` → "12.3k". */
export function formatCount(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

function stdoutWrite(text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += Deno.stdout.writeSync(bytes.subarray(done));
}

/** Shows the steps of a run. */
export class Progress {
  readonly total: number;
  readonly tty: boolean;
  #start: number;
  #write: (text: string) => void;
  #barWidth: number;
  #began = performance.now();
  #bar = "";

  constructor(options: ProgressOptions) {
    this.total = options.total;
    this.#start = options.start ?? 0;
    this.tty = options.tty ?? Deno.stdout.isTerminal();
    this.#write = options.write ?? stdoutWrite;
    this.#barWidth = options.barWidth ?? 24;
  }

  /** Seconds left at the pace of this process's steps so far. */
  eta(step: number): number {
    const done = step - this.#start;
    const seconds = (performance.now() - this.#began) / 1000;
    return done > 0 ? (seconds / done) * (this.total - step) : NaN;
  }

  /** The text shown for `s` (bar on a TTY, else a line). */
  format(s: ProgressStep): string {
    const width = String(this.total).length;
    const head = `step ${String(s.step).padStart(width)}/${this.total}`;
    const body = `loss ${s.loss.toFixed(4)} | lr ${s.lr.toExponential(2)} | ${
      formatCount(s.tokensPerSec)
    } tok/s | ETA ${formatDuration(this.eta(s.step))}`;
    if (!this.tty) return `${head} ${body}`;
    const filled = Math.round((s.step / this.total) * this.#barWidth);
    const bar = "█".repeat(filled) + "░".repeat(this.#barWidth - filled);
    return `${head} ${bar} ${body}`;
  }

  /** Shows a finished step. */
  step(s: ProgressStep): void {
    const text = this.format(s);
    if (this.tty) {
      this.#bar = text;
      this.#write(`\r\x1b[2K${text}`);
    } else this.#write(`${text}\n`);
  }

  /** Prints a line above the bar. */
  message(line: string): void {
    if (this.tty && this.#bar) this.#write(`\r\x1b[2K${line}\n${this.#bar}`);
    else this.#write(`${line}\n`);
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.tty && this.#bar) this.#write("\n");
    this.#bar = "";
  }
}
