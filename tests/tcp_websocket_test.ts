// The transport's own WebSocket (lib/dist/ws/tcp_websocket.ts) against Deno's built-in
// WebSocket on both sides, and against hand-made frames for what a conforming peer may send
// (fragments, pings) or must not (unmasked client frames, oversize messages).
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import {
  acceptWebSocket,
  connectWebSocket,
  MAX_MESSAGE_BYTES,
  type TcpWebSocket,
  type WsMessage,
} from "../lib/dist/ws/tcp_websocket.ts";

/** Messages of `ws` as they arrive, and how it closed. */
function collect(ws: TcpWebSocket) {
  const messages: WsMessage[] = [];
  const closed = Promise.withResolvers<[number, string]>();
  let wake: (() => void) | undefined;
  ws.onmessage = (m) => {
    messages.push(m);
    wake?.();
  };
  ws.onclose = (code, reason) => closed.resolve([code, reason]);
  const count = async (n: number) => {
    while (messages.length < n) await new Promise<void>((r) => wake = r);
    return messages.slice(0, n);
  };
  return { messages, closed: closed.promise, count };
}

function listen(): { listener: Deno.TcpListener; url: string } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return { listener, url: `ws://127.0.0.1:${listener.addr.port}/lasp` };
}

const bytes = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * seed) & 255);

Deno.test("client: talks to Deno's WebSocket server (text, binary in parts, 3 MiB, close)", async () => {
  const serverClosed = Promise.withResolvers<[number, string]>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => socket.send(typeof e.data === "string" ? `echo ${e.data}` : e.data);
    socket.onclose = (e) => serverClosed.resolve([e.code, e.reason]);
    return response;
  });
  const ws = await connectWebSocket(`ws://127.0.0.1:${server.addr.port}/x`);
  const got = collect(ws);
  ws.send("héllo");
  ws.send([bytes(64, 3), bytes(200_000, 7)]); // one message from two buffers
  ws.send(bytes(3 << 20, 5));
  const [text, two, big] = await got.count(3);
  equal(text, "echo héllo");
  const joined = new Uint8Array(200_064);
  joined.set(bytes(64, 3));
  joined.set(bytes(200_000, 7), 64);
  deepEqual(new Uint8Array(two as ArrayBuffer), joined);
  deepEqual(new Uint8Array(big as ArrayBuffer), bytes(3 << 20, 5));
  ws.close(4001, "bye now");
  deepEqual(await serverClosed.promise, [4001, "bye now"]);
  deepEqual(await got.closed, [4001, "bye now"]);
  await server.shutdown();
});

Deno.test("server: Deno's WebSocket client talks to it; plain HTTP gets 426", async () => {
  const { listener, url } = listen();
  const served = (async () => {
    for (let i = 0; i < 2; i++) {
      const conn = await listener.accept();
      const ws = await acceptWebSocket(conn, { refusal: "WebSocket only here" })
        .catch((e) => e as Error);
      if (ws instanceof Error) {
        match(ws.message, /refused an HTTP request: WebSocket only here/);
        continue;
      }
      ws.onmessage = (m) => ws.send(typeof m === "string" ? `echo ${m}` : m);
    }
  })();
  const client = new WebSocket(url);
  client.binaryType = "arraybuffer";
  await new Promise((r) => client.onopen = r);
  const got: (string | number)[] = [];
  const three = Promise.withResolvers<void>();
  client.onmessage = (e) => {
    got.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data).reduce((a, b) => a + b));
    if (got.length === 3) three.resolve();
  };
  client.send("hi");
  client.send(bytes(10, 1));
  client.send(bytes(1 << 20, 9));
  await three.promise;
  deepEqual(got, ["echo hi", 45, bytes(1 << 20, 9).reduce((a, b) => a + b)]);
  const closed = new Promise((r) => client.onclose = (e) => r([e.code, e.reason]));
  client.close(1000, "done");
  deepEqual(await closed, [1000, "done"]);
  const plain = await fetch(url.replace("ws:", "http:"));
  equal(plain.status, 426);
  equal(await plain.text(), "WebSocket only here");
  await served;
  listener.close();
});

/** A server-side socket and the raw TCP connection of its client, for hand-made frames. */
async function rawClient(): Promise<{ server: TcpWebSocket; conn: Deno.TcpConn; close(): void }> {
  const { listener, url } = listen();
  const accepted = listener.accept().then((c) => acceptWebSocket(c));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(url).port) });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await conn.write(
    new TextEncoder().encode(
      `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ),
  );
  const head = new Uint8Array(4096);
  const n = await conn.read(head);
  match(new TextDecoder().decode(head.subarray(0, n!)), /^HTTP\/1\.1 101 /);
  const server = await accepted;
  return { server, conn, close: () => listener.close() };
}

/** A client frame: masked unless `masked` is false. */
function frame(fin: boolean, opcode: number, payload: Uint8Array, masked = true): Uint8Array {
  const key = Uint8Array.of(1, 2, 3, 4);
  const ext = payload.length < 126 ? 0 : 2;
  const out = new Uint8Array(2 + ext + (masked ? 4 : 0) + payload.length);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out[1] = (masked ? 0x80 : 0) | (ext ? 126 : payload.length);
  if (ext) new DataView(out.buffer).setUint16(2, payload.length);
  const body = 2 + ext + (masked ? 4 : 0);
  if (masked) out.set(key, 2 + ext);
  payload.forEach((b, i) => out[body + i] = masked ? b ^ key[i & 3] : b);
  return out;
}

async function readFrame(conn: Deno.TcpConn): Promise<{ opcode: number; payload: Uint8Array }> {
  const buf = new Uint8Array(256);
  const n = (await conn.read(buf))!;
  equal(buf[1] & 0x80, 0, "server frames are not masked");
  return { opcode: buf[0] & 0x0f, payload: buf.slice(2, n) };
}

Deno.test("server: reassembles fragments, answers pings, rejects unmasked client frames", async () => {
  const { server, conn, close } = await rawClient();
  const got = collect(server);
  const part = (s: string) => new TextEncoder().encode(s);
  await conn.write(frame(false, 1, part("frag")));
  await conn.write(frame(true, 9, part("ping!"))); // a control frame between fragments
  await conn.write(frame(false, 0, part("men")));
  await conn.write(frame(true, 0, part("ted")));
  deepEqual(await readFrame(conn), { opcode: 10, payload: part("ping!") });
  deepEqual(await got.count(1), ["fragmented"]);
  await conn.write(frame(true, 2, Uint8Array.of(1, 2), false));
  const [code, reason] = await got.closed;
  equal(code, 1002);
  equal(reason, "unmasked client frame");
  const { opcode, payload } = await readFrame(conn);
  equal(opcode, 8, "the server says why it closes");
  equal(new DataView(payload.buffer).getUint16(0), 1002);
  conn.close();
  close();
});

Deno.test("server: a message over the limit closes with 1009; a vanished peer is 1006", async () => {
  const { server, conn, close } = await rawClient();
  const got = collect(server);
  const head = new Uint8Array(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  new DataView(head.buffer).setBigUint64(2, BigInt(MAX_MESSAGE_BYTES + 1));
  await conn.write(head);
  deepEqual(await got.closed, [1009, `message over ${MAX_MESSAGE_BYTES} bytes`]);
  conn.close();
  const second = await rawClient();
  const got2 = collect(second.server);
  second.conn.close();
  deepEqual(await got2.closed, [1006, "connection ended without a close frame"]);
  ok(second.server.closed);
  close();
  second.close();
});

Deno.test("client: a server that is no WebSocket, or answers a wrong key, is refused", async () => {
  const { listener, url } = listen();
  const answers = [
    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
  ];
  const served = (async () => {
    for (const answer of answers) {
      const conn = await listener.accept();
      await conn.read(new Uint8Array(4096));
      await conn.write(new TextEncoder().encode(answer));
      conn.close();
    }
  })();
  await rejects(connectWebSocket(url), /the server refused the WebSocket upgrade: HTTP\/1\.1 404/);
  await rejects(connectWebSocket(url), /the server sent a wrong Sec-WebSocket-Accept/);
  await rejects(
    connectWebSocket("http://x/"),
    /Invalid WebSocket URL "http:\/\/x\/": must be ws:\/\//,
  );
  await served;
  listener.close();
});

Deno.test("a peer that never completes the opening handshake is dropped after the limit", async () => {
  const { listener, url } = listen();
  const port = Number(new URL(url).port);
  // a client that connects and says nothing
  const silentClient = await Deno.connect({ hostname: "127.0.0.1", port });
  await rejects(
    acceptWebSocket(await listener.accept(), { timeoutMs: 200 }),
    /no opening handshake within 200 ms/,
  );
  equal(await silentClient.read(new Uint8Array(16)), null, "the server closed the connection");
  silentClient.close();
  // a server that accepts and says nothing
  const held = listener.accept();
  await rejects(connectWebSocket(url, { timeoutMs: 200 }), /no opening handshake within 200 ms/);
  (await held).close();
  listener.close();
});
