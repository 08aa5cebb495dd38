/**
 * The WebSocket transport: frames, authentication (bad token, wrong run id), missing and
 * vanished peers named in errors, frames of another run rejected, and a run of separate
 * `deno run` processes.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { connectWebSocketTransport, type WebSocketTransport } from "../lib/dist/ws/ws_transport.ts";
import {
  decodeHeader,
  encodeFrame,
  type FrameHeader,
  Reassembly,
  runIdHash,
} from "../lib/dist/ws/frame.ts";
import { clientHandshake, serverHandshake } from "../lib/dist/ws/handshake.ts";
import { connectWithRetry, SocketReader } from "../lib/dist/ws/socket_reader.ts";
import { acceptWebSocket } from "../lib/dist/ws/tcp_websocket.ts";
import { freePort } from "../lib/dist/worker_ranks.ts";
import { spawnProcessRanks } from "./_process_ranks.ts";
import { checkCollectives } from "./_dist_expected.ts";

const TAG = { step: 7, layer: 3, dir: 1 };

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected a failure");
}

function expectMatch(message: string, pattern: RegExp): void {
  if (!pattern.test(message)) throw new Error(`"${message}" does not match ${pattern}`);
}

function connectAll(
  world: number,
  overrides: Record<number, { token?: string; runId?: string }> = {},
  ranks = Array.from({ length: world }, (_, r) => r),
  connectTimeoutMs = 10_000,
): { master: string; runs: Promise<WebSocketTransport>[] } {
  const master = `127.0.0.1:${freePort()}`;
  const runs = ranks.map((rank) =>
    connectWebSocketTransport({
      rank,
      world,
      master,
      token: "secret",
      runId: "run-a",
      connectTimeoutMs,
      partBytes: 64,
      highWaterBytes: 256, // frames wait on bufferedAmount: the backpressure path runs
      ...overrides[rank],
    })
  );
  return { master, runs };
}

Deno.test("frames: round trip in parts; bad magic, version, run id and order rejected", () => {
  const payload = Float32Array.from({ length: 37 }, (_, i) => i * 0.5 - 3);
  const bytes = new Uint8Array(payload.buffer);
  const hash = runIdHash("run-a");
  const header = { runHash: hash, src: 2, dst: 1, tag: TAG, shape: [37] };
  const frames = [0, 1, 2].map((p) => encodeFrame(header, bytes, p, 64));
  const reassembly = new Reassembly();
  let done;
  for (const f of frames) done = reassembly.add(decodeHeader(f, hash), f);
  deepEqual(done!.data, payload);
  deepEqual(done!.header.tag, TAG);
  throws(() => decodeHeader(frames[0], runIdHash("run-b")), /run id hash/);
  const badMagic = frames[0].slice(0);
  new DataView(badMagic).setUint32(0, 1234, true);
  throws(() => decodeHeader(badMagic, hash), /bad frame magic/);
  const badVersion = frames[0].slice(0);
  new DataView(badVersion).setUint16(4, 99, true);
  throws(() => decodeHeader(badVersion, hash), /version 99/);
  const fresh = new Reassembly();
  throws(() => fresh.add(decodeHeader(frames[1], hash), frames[1]), /out of order/);
  const wrongShape = encodeFrame({ ...header, shape: [36] }, bytes, 0, 4096);
  throws(() => decodeHeader(wrongShape, hash), /does not match/);
  const empty = encodeFrame({ ...header, shape: [0] }, new Uint8Array(0), 0, 64);
  const h: FrameHeader = decodeHeader(empty, hash);
  equal(h.parts, 1);
  equal(new Reassembly().add(h, empty)!.data.length, 0);
});

Deno.test("a wrong token is rejected; the master names the rank that never registered", async () => {
  // limits leave room for a cold start of the I/O Workers (module loading on a busy machine)
  const { runs } = connectAll(2, { 1: { token: "guess" } }, [0, 1], 4000);
  const [m0, m1] = await Promise.all(runs.map(failure));
  expectMatch(
    m1,
    /^Rank 1: rank 0 \(master\) at ws:\/\/127\.0\.0\.1:\d+ rejected the connection: .*bad token/,
  );
  expectMatch(
    m0,
    /^Rank 0: rank\(s\) 1 did not register within 4000 ms; rejected: .*rank 1: bad token/,
  );
});

Deno.test("a rank of another run is rejected", async () => {
  const { runs } = connectAll(2, { 1: { runId: "run-b" } }, [0, 1], 4000);
  const [m0, m1] = await Promise.all(runs.map(failure));
  expectMatch(m1, /rejected the connection: .*wrong run id "run-b" \(this run is "run-a"\)/);
  expectMatch(m0, /did not register/);
});

Deno.test("missing master and missing peer are named with their addresses", async () => {
  const alone = connectAll(2, {}, [1], 500);
  expectMatch(
    await failure(alone.runs[0]),
    /^Rank 1: could not reach rank 0 \(master\) at ws:\/\/127\.0\.0\.1:\d+ within 500 ms/,
  );
  const partial = connectAll(3, {}, [0, 1], 3000);
  const [m0] = await Promise.all(partial.runs.map(failure));
  expectMatch(m0, /^Rank 0: rank\(s\) 2 did not register within 3000 ms$/);
});

Deno.test("receives time out naming the peer; a vanished peer fails them at once", async () => {
  const { runs } = connectAll(3);
  const [t0, t1, t2] = await Promise.all(runs);
  expectMatch(
    await failure(t0.recv(1, TAG, 200)),
    /^Rank 0 timed out after 200 ms waiting for rank 1 \(ws:\/\/127\.0\.0\.1:\d+\): step 7 layer 3 backward$/,
  );
  // a message of 1000 values in 64-byte frames arrives whole
  const sent = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
  t2.send([0, 1], TAG, sent, false);
  deepEqual(await t0.recv(2, TAG, 5000), sent);
  deepEqual(await t1.recv(2, TAG, 5000), sent);
  const pending = failure(t0.recv(2, { ...TAG, step: 8 }, 60_000)); // handled before it fails
  const start = performance.now();
  await t2.close();
  expectMatch(
    await pending,
    /^Rank 0: connection to rank 2 \(ws:\/\/127\.0\.0\.1:\d+\) closed \(code 1000: done\)$/,
  );
  if (performance.now() - start > 10_000) throw new Error("the closed link was noticed too late");
  await Promise.all([t0.close(), t1.close()]);
});

Deno.test("a peer's last message arrives whole though it closed right after sending", async () => {
  // rank 1 closes both sockets once its data has left; rank 0 still reads the data (64-byte
  // frames) on one socket when the close of the other, which carries nothing to it, arrives
  const master = `127.0.0.1:${freePort()}`;
  const [t0, t1] = await Promise.all(
    [0, 1].map((rank) =>
      connectWebSocketTransport({ rank, world: 2, master, token: "s", runId: "r", partBytes: 64 })
    ),
  );
  const last = Float32Array.from({ length: 250_000 }, (_, i) => i % 251); // 15 625 frames
  t1.send([0], TAG, last, false);
  await t1.close();
  deepEqual(await t0.recv(1, TAG, 30_000), last);
  await t0.close();
});

Deno.test("an authenticated peer's frame with another run's id is rejected", async () => {
  // a hand-made "rank 1": registers with rank 0, accepts rank 0's dial, sends frames on it
  const identity = { runId: "run-a", world: 2, token: "secret" };
  const accepted = Promise.withResolvers<SocketReader>();
  const fake = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  fake.accept().then(async (conn) => {
    const reader = new SocketReader(await acceptWebSocket(conn));
    await serverHandshake(reader, { ...identity, rank: 1 }, 5000, () => undefined);
    return reader;
  }).then(accepted.resolve, accepted.reject);
  const master = `127.0.0.1:${freePort()}`;
  const real = connectWebSocketTransport({ ...identity, rank: 0, master, connectTimeoutMs: 5000 });
  const registration = await connectWithRetry(`ws://${master}/lasp`, performance.now() + 5000);
  const address = `127.0.0.1:${(fake.addr as Deno.NetAddr).port}`;
  await clientHandshake(registration, identity, { rank: 1, purpose: "register", address }, 0, 5000);
  equal(JSON.parse(await registration.next(5000, "peer table") as string).t, "peers");
  const link = await accepted.promise;
  const t0 = await real;
  const bytes = new Uint8Array(Float32Array.of(1, 2, 3).buffer);
  const header = { runHash: runIdHash("run-a"), src: 1, dst: 0, tag: TAG, shape: [3] };
  link.socket.send(encodeFrame(header, bytes, 0, 4096));
  deepEqual(await t0.recv(1, TAG, 5000), Float32Array.of(1, 2, 3));
  link.socket.send(encodeFrame({ ...header, runHash: runIdHash("run-b") }, bytes, 0, 4096));
  expectMatch(
    await failure(t0.recv(1, TAG, 5000)),
    /^Rank 0: rejected a frame from rank 1 \(ws:\/\/127\.0\.0\.1:\d+\): frame carries run id hash/,
  );
  await t0.close();
  registration.socket.close();
  link.socket.close();
  fake.close();
});

Deno.test("collectives across 3 separate deno processes are exact", async () => {
  const results = await spawnProcessRanks<Record<string, Float32Array>>({
    world: 3,
    sp: 3,
    module: new URL("./_dist_rank.ts", import.meta.url),
    exportName: "collectives",
    timeoutMs: 60_000,
  });
  results.forEach((got, rank) => checkCollectives(got, rank, 3, 3));
});
