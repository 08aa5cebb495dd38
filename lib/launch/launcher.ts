/**
 * Starting N ranks of a script on this host, torchrun-style: each child gets RANK,
 * WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and — on a multi-GPU host — its own
 * GPU through Mesa's device-select layer (Vulkan lists identical GPUs in PCI order and both
 * WebGPU implementations take the first; `DRI_PRIME=pci-…` picks one by PCI address).
 * Every launch gets a fresh random `LASP_TOKEN` and `LASP_RUN_ID` (unless set), so ranks of
 * different runs never talk to each other. SIGINT and SIGTERM are passed on to the ranks (they
 * checkpoint and stop) while the launcher waits for them; if a rank fails, the others are
 * stopped and its exit code is returned.
 * @module
 */

/** Options of {@linkcode launch}. */
export interface LaunchOptions {
  /** Processes to start. */
  nproc: number;
  /** Script and its arguments, run as `deno run -A <script> <args…>`. */
  command: string[];
  /** Rendezvous address (default 127.0.0.1). */
  masterAddr?: string;
  /** Rendezvous port (default 29500). */
  masterPort?: number;
  /** PCI addresses (`pci-0000_07_00_0`) to spread local ranks over; default: detected NVIDIA GPUs. */
  gpus?: string[];
  /** Extra environment for every rank. */
  env?: Record<string, string>;
  /** Where each rank's output lines go (default: this process's stdout/stderr, prefixed). */
  onLine?: (rank: number, line: string, stream: "stdout" | "stderr") => void;
  /** Called as each rank ends, with its exit code (in the order they end). */
  onExit?: (rank: number, code: number) => void;
  /** Aborting kills the ranks still running (SIGKILL: a hung rank may ignore SIGTERM). */
  signal?: AbortSignal;
}

/** Converts nvidia-smi's `00000000:07:00.0` to the device-select layer's `pci-0000_07_00_0`. */
export function driPrimeAddress(busId: string): string {
  const m = busId.trim().match(
    /^(?:[0-9a-fA-F]*?([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/,
  );
  if (!m) throw new Error(`Cannot parse PCI bus id "${busId}": expected e.g. 00000000:07:00.0`);
  const [, domain = "0000", bus, dev, fn] = m;
  return `pci-${domain.toLowerCase()}_${bus.toLowerCase()}_${dev.toLowerCase()}_${fn}`;
}

/** PCI addresses of the NVIDIA GPUs on this host, in nvidia-smi order; [] without nvidia-smi. */
export async function detectGpus(): Promise<string[]> {
  try {
    const out = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=pci.bus_id", "--format=csv,noheader"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return [];
    return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim()).map(
      driPrimeAddress,
    );
  } catch {
    return [];
  }
}

async function pipeLines(
  stream: ReadableStream<Uint8Array>,
  emit: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) emit(line);
  }
  if (rest) emit(rest);
}

/** Starts the ranks and resolves with the first non-zero exit code, or 0 when all succeed. */
export async function launch(options: LaunchOptions): Promise<number> {
  const { nproc, command } = options;
  if (!Number.isInteger(nproc) || nproc < 1) {
    throw new Error(`Invalid --nproc ${nproc}: must be an integer ≥ 1`);
  }
  if (command.length === 0) {
    throw new Error("No script to launch: usage launch.ts --nproc N script.ts [args…]");
  }
  const gpus = options.gpus ?? await detectGpus();
  const onLine = options.onLine ?? ((rank, line, stream) => {
    (stream === "stdout" ? console.log : console.error)(
      nproc > 1 ? `[rank ${rank}] ${line}` : line,
    );
  });
  const secret = () =>
    Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0"))
      .join("");
  const shared = {
    LASP_TOKEN: Deno.env.get("LASP_TOKEN") || secret(),
    LASP_RUN_ID: Deno.env.get("LASP_RUN_ID") || `run-${secret().slice(0, 12)}`,
  };
  const children = Array.from({ length: nproc }, (_, rank) => {
    const env: Record<string, string> = {
      ...shared,
      ...options.env,
      RANK: String(rank),
      WORLD_SIZE: String(nproc),
      LOCAL_RANK: String(rank),
      MASTER_ADDR: options.masterAddr ?? "127.0.0.1",
      MASTER_PORT: String(options.masterPort ?? 29500),
    };
    if (gpus.length > 1) {
      env.DRI_PRIME = gpus[rank % gpus.length];
      env.MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE = "1";
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...command],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = Promise.all([
      pipeLines(child.stdout, (l) => onLine(rank, l, "stdout")),
      pipeLines(child.stderr, (l) => onLine(rank, l, "stderr")),
    ]);
    return { child, done: child.status.then(async (s) => (await output, s.code)) };
  });
  const forward = (signal: Deno.Signal) => () => {
    for (const { child } of children) {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
    }
  };
  const kill = forward("SIGKILL");
  options.signal?.addEventListener("abort", kill);
  if (options.signal?.aborted) kill();
  const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const handler = forward(signal);
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  });
  let firstFailure = 0;
  await Promise.all(children.map(async ({ done }, rank) => {
    const code = await done;
    options.onExit?.(rank, code);
    if (code !== 0 && firstFailure === 0) {
      firstFailure = code;
      onLine(rank, `exited with code ${code}; stopping the other ranks`, "stderr");
      for (const other of children) {
        try {
          other.child.kill("SIGTERM");
        } catch { /* already gone */ }
      }
    }
  }));
  for (const remove of handlers) remove();
  options.signal?.removeEventListener("abort", kill);
  return firstFailure;
}
