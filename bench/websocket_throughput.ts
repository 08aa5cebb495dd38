// Loopback throughput between two processes of the transport's own WebSocket
// (lib/dist/ws/tcp_websocket.ts) beside Deno's built-in WebSocket and a bare TCP socket, for
// several message sizes: a child process sends `--mib` MiB in messages of each size, this one
// receives, checks the byte count and the last byte, and times from the first byte. Usage:
//   deno run -A bench/websocket_throughput.ts [--mib 1024] [--sizes 0.0625,1,8]
import { acceptWebSocket, connectWebSocket } from "../lib/dist/ws/tcp_websocket.ts";
import { freePort } from "../lib/dist/worker_ranks.ts";
import { flag } from "./_timing.ts";

type Kind = "ours" | "deno" | "tcp";
const KINDS: Kind[] = ["ours", "deno", "tcp"];
const MiB = 1 << 20;
const args = Deno.args;

/** Child: sends `total` bytes in messages of `size` bytes on `kind`, to whoever connects. */
async function send(kind: Kind, port: number, size: number, total: number): Promise<void> {
  const message = new Uint8Array(size).fill(7);
  const count = Math.ceil(total / size);
  const listener = kind === "deno" ? undefined : Deno.listen({ hostname: "127.0.0.1", port });
  if (listener) console.log("listening");
  if (kind === "tcp") {
    const conn = await listener!.accept();
    for (let i = 0; i < count; i++) {
      for (let at = 0; at < size;) at += await conn.write(message.subarray(at));
    }
    conn.close();
  } else if (kind === "ours") {
    const ws = await acceptWebSocket(await listener!.accept());
    for (let i = 0; i < count; i++) {
      while (ws.bufferedAmount > 32 * MiB) await ws.drained();
      ws.send(message);
    }
    await ws.drained();
    await new Promise((r) => setTimeout(r, 1000));
  } else {
    const done = Promise.withResolvers<void>();
    const onListen = () => console.log("listening");
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen }, (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onopen = async () => {
        for (let i = 0; i < count; i++) {
          while (socket.bufferedAmount > 32 * MiB) await new Promise((r) => setTimeout(r, 0));
          socket.send(message);
        }
        setTimeout(done.resolve, 1000);
      };
      return response;
    });
    await done.promise;
    await server.shutdown();
  }
  Deno.exit(0);
}

/** Parent: receives `total` bytes from a child sender; returns MiB/s. */
async function receive(kind: Kind, size: number, total: number): Promise<number> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--send", kind, "--port", `${port}`] //
      .concat(["--size", `${size}`, "--total", `${total}`]),
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // "listening"
  const bytes = Math.ceil(total / size) * size;
  let got = 0, last = 0, t0 = 0;
  const url = `ws://127.0.0.1:${port}/`;
  if (kind === "tcp") {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const buf = new Uint8Array(8 * MiB);
    while (got < bytes) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (got === 0) t0 = performance.now();
      got += n;
      last = buf[n - 1];
    }
    conn.close();
  } else {
    const done = Promise.withResolvers<void>();
    const take = (data: ArrayBuffer) => {
      if (got === 0) t0 = performance.now();
      got += data.byteLength;
      last = new Uint8Array(data)[data.byteLength - 1];
      if (got >= bytes) done.resolve();
    };
    if (kind === "ours") {
      const ws = await connectWebSocket(url);
      ws.onmessage = (m) => take(m as ArrayBuffer);
      await done.promise;
      ws.close();
    } else {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onmessage = (e) => take(e.data);
      await done.promise;
      ws.close();
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  await reader.cancel();
  await child.status;
  if (got !== bytes || last !== 7) {
    throw new Error(`${kind}: received ${got} of ${bytes} bytes (last byte ${last}, expected 7)`);
  }
  return (bytes - size) / MiB / seconds; // the first message starts the clock
}

const sending = flag(args, "send", "");
if (sending) {
  await send(
    sending as Kind,
    Number(flag(args, "port", "0")),
    Number(flag(args, "size", "0")),
    Number(flag(args, "total", "0")),
  );
}
const total = Number(flag(args, "mib", "1024")) * MiB;
const sizes = flag(args, "sizes", "0.0625,1,8").split(",").map((s) => Math.round(Number(s) * MiB));
console.log(`Loopback, two processes, ${total / MiB} MiB per run (MiB/s)`);
console.log("| message | our WebSocket | Deno's WebSocket | bare TCP |");
console.log("|---|---|---|---|");
for (const size of sizes) {
  const cells: string[] = [];
  for (const kind of KINDS) cells.push((await receive(kind, size, total)).toFixed(0));
  const label = size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`;
  console.log(`| ${label} | ${cells.join(" | ")} |`);
}
