/**
 * WebSocket connections (RFC 6455) written on Deno's TCP sockets, for the transport's data.
 * Why not Deno's `WebSocket`: on loopback it moved 0.8–0.9 GiB/s where the same TCP socket
 * moves 3.2 GiB/s, copies every message once more on each side, and its client does not set
 * TCP_NODELAY (small messages then wait ≈ 40 ms for a delayed ACK). Here both ends set
 * TCP_NODELAY, a message may be sent as several buffers that are written as they are (no
 * concatenation), and a received payload is read straight into its own `ArrayBuffer`.
 *
 * What is implemented: the opening handshake (client and server), text and binary messages,
 * fragmented messages on receipt, ping/pong, the closing handshake with code and reason,
 * masking of client frames (and the check that client frames are masked and server frames are
 * not). Not implemented: extensions (no permessage-deflate is offered or accepted) and
 * subprotocols. Peers may be any conforming WebSocket implementation (tested against Deno's).
 * @module
 */

/** A received message: text or binary. */
export type WsMessage = string | ArrayBuffer;

/** Largest message accepted, bytes: the transport's frames stay below 16 MiB. */
export const MAX_MESSAGE_BYTES = 64 << 20;
/** Default limit of the opening handshake, ms. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Largest HTTP head of the opening handshake, bytes. */
const MAX_HEAD_BYTES = 16 << 10;
/** Messages up to this size are copied behind their header and written at once. */
const SMALL_MESSAGE_BYTES = 64 << 10;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP_CONTINUATION = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10;
/** Close codes (RFC 6455 §7.4.1). */
const PROTOCOL_ERROR = 1002, TOO_BIG = 1009, ABNORMAL = 1006, NO_STATUS = 1005;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** One end of an open WebSocket connection. */
export class TcpWebSocket {
  /** Called with each message, in order. */
  onmessage: ((message: WsMessage) => void) | undefined;
  /** Called once when the connection has closed: the close code and reason. */
  onclose: ((code: number, reason: string) => void) | undefined;
  /** Set once closed: code and reason (1006 when the TCP connection ended without a close frame). */
  closed: { code: number; reason: string } | undefined;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #closeSent = false;
  #drained: (() => void)[] = [];
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly conn: Deno.TcpConn,
    readonly role: "client" | "server",
    initial: Uint8Array,
  ) {
    conn.setNoDelay(true);
    this.#readLoop(initial).catch((e) => this.#fail(PROTOCOL_ERROR, (e as Error).message));
  }

  /** Bytes queued for sending and not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.#queued;
  }

  /**
   * Sends one message: a string as text, else binary made of `data`'s buffers in order
   * (written as they are: they must stay unchanged until `bufferedAmount` drops past them).
   * Messages sent after closing are dropped, as the WebSocket API does.
   */
  send(data: string | Uint8Array | ArrayBuffer | readonly Uint8Array[]): void {
    if (this.#closeSent || this.closed) return;
    if (typeof data === "string") this.#frame(OP_TEXT, [encoder.encode(data)]);
    else if (data instanceof ArrayBuffer) this.#frame(OP_BINARY, [new Uint8Array(data)]);
    else if (data instanceof Uint8Array) this.#frame(OP_BINARY, [data]);
    else this.#frame(OP_BINARY, data);
  }

  /** Starts the closing handshake; the connection closes when the peer answers (or in 2 s). */
  close(code = 1000, reason = ""): void {
    if (this.#closeSent || this.closed) return;
    const text = encoder.encode(reason).subarray(0, 123);
    const body = new Uint8Array(2 + text.byteLength);
    new DataView(body.buffer).setUint16(0, code);
    body.set(text, 2);
    this.#frame(OP_CLOSE, [body]);
    this.#closeSent = true;
    this.#closeTimer = setTimeout(() => this.#finish(code, reason), 2000);
  }

  /** Resolves once everything queued has been written (or the connection closed). */
  drained(): Promise<void> {
    if (this.#queued === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  #frame(opcode: number, parts: readonly Uint8Array[]): void {
    const length = parts.reduce((a, p) => a + p.byteLength, 0);
    const masked = this.role === "client";
    const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
    const head = new Uint8Array(2 + extra + (masked ? 4 : 0));
    const view = new DataView(head.buffer);
    head[0] = 0x80 | opcode;
    head[1] = (masked ? 0x80 : 0) | (extra === 0 ? length : extra === 2 ? 126 : 127);
    if (extra === 2) view.setUint16(2, length);
    if (extra === 8) view.setBigUint64(2, BigInt(length));
    let body = parts;
    if (masked) {
      // client frames must be masked (RFC 6455 §5.3): a copy, so only small messages in practice
      const key = crypto.getRandomValues(new Uint8Array(4));
      head.set(key, 2 + extra);
      const copy = concat(parts, length);
      for (let i = 0; i < length; i++) copy[i] ^= key[i & 3];
      body = [copy];
    }
    // small messages go out as one buffer: one write instead of several
    if (length <= SMALL_MESSAGE_BYTES) body = [concat([head, ...body], head.byteLength + length)];
    else body = [head, ...body];
    for (const b of body) {
      if (b.byteLength === 0) continue;
      this.#queue.push(b);
      this.#queued += b.byteLength;
    }
    if (!this.#writing) this.#writeLoop();
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const head = this.#queue[0];
        const n = await this.conn.write(head);
        this.#queued -= n;
        if (n === head.byteLength) this.#queue.shift();
        else this.#queue[0] = head.subarray(n);
      }
    } catch (e) {
      this.#finish(ABNORMAL, `write failed: ${(e as Error).message}`);
    } finally {
      this.#writing = false;
      for (const resolve of this.#drained.splice(0)) resolve();
    }
  }

  async #readLoop(initial: Uint8Array): Promise<void> {
    const input = new ConnReader(this.conn, initial);
    let fragments: Uint8Array[] = [], fragmentOp = 0, fragmentBytes = 0;
    while (!this.closed) {
      const head = await input.bytes(2);
      if (!head) return this.#finish(ABNORMAL, "connection ended without a close frame");
      const fin = (head[0] & 0x80) !== 0, opcode = head[0] & 0x0f, masked = (head[1] & 0x80) !== 0;
      if (head[0] & 0x70) return this.#fail(PROTOCOL_ERROR, "reserved bits set (no extension)");
      if (masked !== (this.role === "server")) {
        return this.#fail(PROTOCOL_ERROR, masked ? "masked server frame" : "unmasked client frame");
      }
      let length = head[1] & 0x7f;
      if (length >= 126) {
        const ext = await input.bytes(length === 126 ? 2 : 8);
        if (!ext) return this.#finish(ABNORMAL, "connection ended inside a frame header");
        const v = new DataView(ext.buffer, ext.byteOffset);
        length = length === 126 ? v.getUint16(0) : Number(v.getBigUint64(0));
      }
      if (opcode >= OP_CLOSE && (length > 125 || !fin)) {
        return this.#fail(PROTOCOL_ERROR, "control frame too long or fragmented");
      }
      if (fragmentBytes + length > MAX_MESSAGE_BYTES) {
        return this.#fail(TOO_BIG, `message over ${MAX_MESSAGE_BYTES} bytes`);
      }
      const key = masked ? await input.bytes(4) : undefined;
      const payload = await input.into(new Uint8Array(length));
      if ((masked && !key) || !payload) {
        return this.#finish(ABNORMAL, "connection ended inside a frame");
      }
      if (key) { for (let i = 0; i < length; i++) payload[i] ^= key[i & 3]; }
      if (opcode === OP_PING) this.#frame(OP_PONG, [payload]);
      else if (opcode === OP_CLOSE) return this.#onCloseFrame(payload);
      else if (opcode === OP_PONG) continue;
      else if (opcode === OP_TEXT || opcode === OP_BINARY || opcode === OP_CONTINUATION) {
        if ((opcode === OP_CONTINUATION) !== (fragments.length > 0)) {
          return this.#fail(PROTOCOL_ERROR, "unexpected continuation frame");
        }
        if (fragments.length === 0) fragmentOp = opcode;
        if (!fin || fragments.length > 0) {
          fragments.push(payload);
          fragmentBytes += length;
          if (!fin) continue;
        }
        const whole = fragments.length > 0 ? concat(fragments, fragmentBytes) : payload;
        fragments = [];
        fragmentBytes = 0;
        if (fragmentOp === OP_TEXT) {
          let text: string;
          try {
            text = decoder.decode(whole);
          } catch {
            return this.#fail(1007, "text message is not UTF-8");
          }
          this.onmessage?.(text);
        } else this.onmessage?.(whole.buffer as ArrayBuffer);
      } else return this.#fail(PROTOCOL_ERROR, `unknown opcode ${opcode}`);
    }
  }

  #onCloseFrame(payload: Uint8Array): void {
    let code = NO_STATUS, reason = "";
    if (payload.byteLength >= 2) {
      code = new DataView(payload.buffer, payload.byteOffset).getUint16(0);
      try {
        reason = decoder.decode(payload.subarray(2));
      } catch { /* keep the code */ }
    }
    if (!this.#closeSent) {
      // echo the code, then end the connection once it is written (RFC 6455 §5.5.1)
      const echo = payload;
      this.#frame(OP_CLOSE, [echo]);
      this.#closeSent = true;
    }
    this.drained().then(() => this.#finish(code, reason));
  }

  /** Closes with `code` after a protocol violation (the peer is told why, if it still listens). */
  #fail(code: number, reason: string): void {
    if (this.closed) return;
    if (!this.#closeSent) this.close(code, reason);
    this.drained().then(() => this.#finish(code, reason));
  }

  #finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = { code, reason };
    clearTimeout(this.#closeTimer);
    this.#queue = [];
    this.#queued = 0;
    closeQuietly(this.conn);
    for (const resolve of this.#drained.splice(0)) resolve();
    this.onclose?.(code, reason);
  }
}

/** Buffered reads from a connection: small pieces through a staging buffer, payloads directly. */
class ConnReader {
  #stage = new Uint8Array(64 << 10);
  #start = 0;
  #end = 0;

  constructor(readonly conn: Deno.TcpConn, initial: Uint8Array) {
    if (initial.byteLength > this.#stage.byteLength) {
      this.#stage = new Uint8Array(initial.byteLength);
    }
    this.#stage.set(initial);
    this.#end = initial.byteLength;
  }

  /** The next `n` bytes (n ≤ 8; a view valid until the next read), or null at the end. */
  async bytes(n: number): Promise<Uint8Array | null> {
    while (this.#end - this.#start < n) {
      if (this.#start > 0) {
        this.#stage.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const got = await readSome(this.conn, this.#stage.subarray(this.#end));
      if (got === null) return null;
      this.#end += got;
    }
    const out = this.#stage.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** Fills `out` (staged bytes first, the rest read straight into it); null at the end. */
  async into(out: Uint8Array): Promise<Uint8Array | null> {
    const staged = Math.min(out.byteLength, this.#end - this.#start);
    out.set(this.#stage.subarray(this.#start, this.#start + staged));
    this.#start += staged;
    let filled = staged;
    // small remainders go through the stage (fewer reads); large ones straight into `out`
    while (filled < out.byteLength) {
      const want = out.byteLength - filled;
      if (want < this.#stage.byteLength / 4) {
        const got = await this.bytesUpTo(want);
        if (!got) return null;
        out.set(got, filled);
        filled += got.byteLength;
      } else {
        const got = await readSome(this.conn, out.subarray(filled));
        if (got === null) return null;
        filled += got;
      }
    }
    return out;
  }

  /** Between 1 and `n` bytes from the stage, reading once if it is empty; null at the end. */
  async bytesUpTo(n: number): Promise<Uint8Array | null> {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      const got = await readSome(this.conn, this.#stage);
      if (got === null) return null;
      this.#end = got;
    }
    const take = Math.min(n, this.#end - this.#start);
    const out = this.#stage.subarray(this.#start, this.#start + take);
    this.#start += take;
    return out;
  }
}

/** One read; null at the end of the stream or when the connection was closed here. */
async function readSome(conn: Deno.TcpConn, into: Uint8Array): Promise<number | null> {
  try {
    return await conn.read(into);
  } catch (e) {
    if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return null;
    if (e instanceof Deno.errors.ConnectionReset) return null;
    throw e;
  }
}

/** Closes `conn` unless it is closed already. */
function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  return encodeBase64(new Uint8Array(digest));
}

/**
 * Reads an HTTP head (up to the blank line); returns its lines and the bytes after it. A peer
 * that sends none within `timeoutMs` has its connection closed.
 */
async function readHead(
  conn: Deno.TcpConn,
  timeoutMs: number,
): Promise<{ lines: string[]; rest: Uint8Array }> {
  const buf = new Uint8Array(MAX_HEAD_BYTES);
  let end = 0, late = false;
  const timer = setTimeout(() => {
    late = true;
    closeQuietly(conn);
  }, timeoutMs);
  try {
    while (true) {
      const got = await readSome(conn, buf.subarray(end));
      if (got === null) {
        throw new Error(
          late
            ? `no opening handshake within ${timeoutMs} ms`
            : "connection ended during the opening handshake",
        );
      }
      end += got;
      for (let i = 3; i < end; i++) {
        if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
          const head = new TextDecoder().decode(buf.subarray(0, i - 3));
          return { lines: head.split("\r\n"), rest: buf.slice(i + 1, end) };
        }
      }
      if (end === buf.byteLength) throw new Error(`HTTP head over ${MAX_HEAD_BYTES} bytes`);
    }
  } finally {
    clearTimeout(timer);
  }
}

function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function headerMap(lines: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) map.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return map;
}

async function writeAll(conn: Deno.TcpConn, text: string): Promise<void> {
  const bytes = encoder.encode(text);
  for (let at = 0; at < bytes.byteLength;) at += await conn.write(bytes.subarray(at));
}

/** Options of {@linkcode acceptWebSocket} and {@linkcode connectWebSocket}. */
export interface HandshakeOptions {
  /** Limit for the opening handshake, ms. Default 10 000. */
  timeoutMs?: number;
}

/**
 * Server side of the opening handshake on an accepted connection. A request that is not a
 * WebSocket upgrade is answered `426` (or `400`) with `refusal` and rejected with the reason.
 */
export async function acceptWebSocket(
  conn: Deno.TcpConn,
  options: HandshakeOptions & { refusal?: string } = {},
): Promise<TcpWebSocket> {
  const refusal = options.refusal ?? "WebSocket only";
  try {
    const { lines, rest } = await readHead(conn, options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    const headers = headerMap(lines);
    const key = headers.get("sec-websocket-key") ?? "";
    let problem: [number, string] | undefined;
    if (!/^GET \S+ HTTP\/1\.1$/.test(lines[0])) problem = [400, `bad request line "${lines[0]}"`];
    else if (headers.get("upgrade")?.toLowerCase() !== "websocket") problem = [426, refusal];
    else if (!/\bupgrade\b/i.test(headers.get("connection") ?? "")) {
      problem = [400, "no Connection: Upgrade"];
    } else if (headers.get("sec-websocket-version") !== "13") {
      problem = [426, "WebSocket version 13 only"];
    } else if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) problem = [400, "bad Sec-WebSocket-Key"];
    if (problem) {
      const [status, text] = problem;
      await writeAll(
        conn,
        `HTTP/1.1 ${status} ${status === 426 ? "Upgrade Required" : "Bad Request"}\r\n` +
          `Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nContent-Type: text/plain\r\n` +
          `Content-Length: ${encoder.encode(text).byteLength}\r\nConnection: close\r\n\r\n${text}`,
      );
      throw new Error(`refused an HTTP request: ${text}`);
    }
    await writeAll(
      conn,
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n\r\n`,
    );
    return new TcpWebSocket(conn, "server", rest);
  } catch (e) {
    closeQuietly(conn);
    throw e;
  }
}

/** Opens a WebSocket to `url` (`ws://host:port/path`); rejects with a one-line reason. */
export async function connectWebSocket(
  url: string,
  options: HandshakeOptions = {},
): Promise<TcpWebSocket> {
  const parsed = new URL(url);
  if (parsed.protocol !== "ws:") throw new Error(`Invalid WebSocket URL "${url}": must be ws://`);
  const hostname = parsed.hostname.replace(/^\[|\]$/g, "");
  const conn = await Deno.connect({ hostname, port: Number(parsed.port || 80) });
  try {
    const key = encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
    await writeAll(
      conn,
      `GET ${parsed.pathname}${parsed.search} HTTP/1.1\r\nHost: ${parsed.host}\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
        `Sec-WebSocket-Version: 13\r\n\r\n`,
    );
    const { lines, rest } = await readHead(conn, options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    if (!/^HTTP\/1\.1 101\b/.test(lines[0])) {
      throw new Error(`the server refused the WebSocket upgrade: ${lines[0]}`);
    }
    const accept = headerMap(lines).get("sec-websocket-accept");
    if (accept !== await acceptKey(key)) {
      throw new Error("the server sent a wrong Sec-WebSocket-Accept");
    }
    return new TcpWebSocket(conn, "client", rest);
  } catch (e) {
    closeQuietly(conn);
    throw e;
  }
}
